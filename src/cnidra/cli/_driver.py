"""``cnidra driver``: the node daemon (what the DaemonSet runs), through ``cnidra.runtime``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from cnidra.errors import ConfigError
from cnidra.runtime import Driver, add_arguments, from_sources

EXIT_CONFIG = 2

_DESCRIPTION = """\
Run the DRA driver on this node: publish the node's interfaces as ResourceSlices, serve the
kubelet (registration, NodePrepare/UnprepareResources, device health) and containerd's NRI
(attach and detach secondary interfaces with CNI in pod sandboxes), write claim status.

Every flag also reads the environment variable CNIDRA_<FLAG> (upper case, '-' as '_'); the
node name also reads NODE_NAME. A flag wins over the environment, which wins over the default.
SIGTERM or SIGINT stops the driver in order (exit 0). A bad setting, including a device filter
that is not valid CEL, exits 2 with one line naming it; a part that fails exits 1."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "driver", help="run the DRA driver daemon on this node",
        description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def _config_line(exc: ConfigError) -> str:
    text = f"{exc.path}: {exc.message}" if exc.path else exc.message
    return f"cnidra driver: {' '.join(text.split())}\n"


def run(args: argparse.Namespace) -> int:
    try:
        settings = from_sources(args).validate()
        return asyncio.run(Driver(settings).run())
    except ConfigError as exc:
        sys.stderr.write(_config_line(exc))
        return EXIT_CONFIG
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130
