"""``cnidra demo``: the talk's demo on an embedded cluster around real driver processes."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from cnidra.errors import CnidraError
from cnidra.sim._demo import DemoOptions, run_demo

EXIT_FAILED = 1
CNI_BIN_DIRS = ("/opt/cni/bin", "/usr/lib/cni")  # the driver's default --cni-bin-dirs
EXIT_INTERRUPTED = 130

_DESCRIPTION = """\
Build a two-node cluster inside this machine (network namespaces kind-worker with eth0+eth1
and kind-worker2 with eth0 on shared L2 segments, an API server stand-in, a kubelet and a
containerd NRI stand-in per node, a scheduler stand-in) and run one real `cnidra driver`
process per node, as in production. Then run the talk's demo (a Deployment of 15 pods, each
with a macvlan `net1` on eth1) or --manifests, show what kubectl would show, ping between two
pods, scale down to 0 and check that nothing is left. Everything is removed on exit, also
after Ctrl-C; leftovers of killed earlier runs are removed at start. Needs root.

Exit status: 0 when every check passed, 1 when one failed or the cluster could not be built,
130 when interrupted (without --keep)."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the demo on an embedded cluster with real driver processes (root)",
        description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifests", nargs="+", type=Path, default=[], metavar="DIR|FILE",
                        help="manifests to run instead of the embedded demo (directories: "
                             "their *.yaml); without any workload (Deployment or Pod) the "
                             "talk's Deployment runs, and the demo's DeviceClass is added "
                             "when they only name it")
    parser.add_argument("--api-version", choices=("v1", "v1beta1"), default="v1",
                        help="resource.k8s.io version the cluster serves: v1 (1.34+, also "
                             "serves v1beta1) or v1beta1 only (1.32/1.33) (default: %(default)s)")
    parser.add_argument("--replicas", type=int, metavar="N",
                        help="replicas of the Deployment (default: the manifest's, 15)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the cluster running until Ctrl-C and show how to look "
                             "around, then scale down and clean up")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="log what the stand-ins do (stderr)")
    parser.set_defaults(func=run)


def _one_line(text: str) -> str:
    return " ".join(text.split())


async def _main(options: DemoOptions) -> int:
    """Run the demo; SIGINT/SIGTERM interrupt it (everything is removed). With ``--keep``
    the first signal during the keep phase only ends that phase."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    keeping, keep_done = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        if keeping.is_set() and not keep_done.is_set():
            keep_done.set()
            return
        interrupted.set()
        task.cancel()

    async def keep_running() -> None:
        keeping.set()
        await keep_done.wait()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        result = await run_demo(options, sys.stdout, keep_running=keep_running,
                                interrupted=interrupted)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    if interrupted.is_set():
        raise asyncio.CancelledError
    return 0 if result.ok else EXIT_FAILED


def _missing_tools() -> str:
    """What the demo needs on this machine and does not find ("" when all is there)."""
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is not installed"
    dirs = [d for d in CNI_BIN_DIRS if Path(d).is_dir()]
    for plugin in ("macvlan", "host-local"):
        if shutil.which(plugin, path=os.pathsep.join(dirs)) is None:
            return (f"the CNI plugin {plugin!r} is not in {' or '.join(CNI_BIN_DIRS)} "
                    "(install containernetworking-plugins)")
    return ""


def run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        sys.stderr.write("cnidra demo: needs root (it creates network namespaces and runs a "
                         "driver per node); run it with sudo\n")
        return EXIT_FAILED
    missing = _missing_tools()
    if missing:
        sys.stderr.write(f"cnidra demo: {missing}\n")
        return EXIT_FAILED
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    options = DemoOptions(manifests=tuple(args.manifests), api_version=args.api_version,
                          replicas=args.replicas, keep=args.keep)
    try:
        return asyncio.run(_main(options))
    except asyncio.CancelledError:
        sys.stderr.write("cnidra demo: interrupted; everything it created was removed\n")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        sys.stderr.write("cnidra demo: interrupted\n")
        return EXIT_INTERRUPTED
    except CnidraError as exc:
        saved = getattr(exc, "saved_logs", None)
        tail = f" (driver logs kept in {saved})" if saved else ""
        sys.stderr.write(f"cnidra demo: {_one_line(str(exc))}{tail}\n")
        return EXIT_FAILED
