"""The ``cnidra`` command line: one subcommand module per command, wired here.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``func`` to a callable taking the parsed namespace and returning the exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cnidra import __version__
from cnidra.cli import _commands

_COMMANDS = _commands.ALL


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnidra",
        description="Kubernetes DRA driver for secondary pod network interfaces, built on CNI.",
    )
    parser.add_argument("--version", action="version", version=f"cnidra {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
