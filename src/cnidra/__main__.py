"""``python -m cnidra`` runs the command line."""

import sys

from cnidra.cli import main

sys.exit(main())
