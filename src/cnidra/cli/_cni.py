"""``cnidra cni``: run a conflist by hand, like ``cnitool``, through ``cnidra.cni``."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
from typing import Any

from cnidra.cni import CNIRuntime, NetworkConfigList, RuntimeConf, load_conflist
from cnidra.errors import CNIError, ConfigError

DEFAULT_BIN_DIRS = ("/opt/cni/bin", "/usr/lib/cni")
EXIT_CNI_ERROR = 1
EXIT_BAD_INPUT = 2


def _default_bin_dirs() -> list[str]:
    env = os.environ.get("CNI_PATH", "")
    return [d for d in env.split(os.pathsep) if d] or list(DEFAULT_BIN_DIRS)


def _cni_args(text: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for part in filter(None, text.split(";")):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{part!r} is not K=V")
        pairs.append((key, value))
    return tuple(pairs)


def _attachment(text: str) -> tuple[str, str]:
    cid, sep, ifname = text.rpartition(":")
    if not sep or not cid or not ifname:
        raise argparse.ArgumentTypeError(f"{text!r} is not CONTAINER_ID:IFNAME")
    return cid, ifname


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bin-dir", action="append", metavar="DIR", dest="bin_dirs",
                   help="plugin directory, repeatable, searched in order "
                        f"(default: $CNI_PATH, else {':'.join(DEFAULT_BIN_DIRS)})")
    p.add_argument("--cache-dir", default="/var/lib/cni", metavar="DIR",
                   help="libcni result cache directory (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="kill a plugin after this long (default: %(default)s)")


def _attach_args(p: argparse.ArgumentParser, netns_required: bool) -> None:
    p.add_argument("--netns", required=netns_required, default="", metavar="PATH",
                   help="network namespace path, or a name under /var/run/netns"
                        + ("" if netns_required else
                                                    " (omit or empty when already gone)"))
    p.add_argument("--ifname", default="eth0", metavar="NAME",
                   help="interface name in the namespace (default: %(default)s)")
    p.add_argument("--container-id", metavar="ID",
                   help="container ID (default: cnitool's, derived from the netns path)")
    p.add_argument("--args", type=_cni_args, default=(), metavar="K=V;...",
                   help="CNI_ARGS, e.g. 'IgnoreUnknown=1;K8S_POD_NAME=web'")
    p.add_argument("--capability-args", type=_json_object, default={}, metavar="JSON",
                   help='capability args, e.g. \'{"mac":"02:00:00:00:00:01"}\'')


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cni", help="run CNI plugins for a network config (like cnitool)",
        description="Run a CNI network configuration list with cnidra's CNI runtime. Results "
                    "and reports are printed as JSON; errors go to stderr as CNI error JSON "
                    f"(exit {EXIT_CNI_ERROR}; bad input exits {EXIT_BAD_INPUT}).",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, text in (("add", "ADD the network and print the result"),
                       ("check", "CHECK the attachment against the cached result"),
                       ("del", "DEL the attachment (a no-op when already gone)")):
        p = verbs.add_parser(verb, help=text, description=text)
        _attach_args(p, netns_required=verb != "del")
        _common(p)
        if verb == "del":
            p.add_argument("config", nargs="?", metavar="CONFIG",
                           help="conflist or .conf file (omit with --network to use the cache)")
            p.add_argument("--network", metavar="NAME",
                           help="without CONFIG: DEL using the conflist stored in the cache")
        else:
            p.add_argument("config", metavar="CONFIG", help="conflist or .conf file")
    p = verbs.add_parser("gc", help="DEL stale cached attachments, then GC each plugin",
                         description="DEL every cached attachment of the network not listed "
                                     "with --valid, then call GC on each plugin (CNI 1.1.0).")
    p.add_argument("--valid", type=_attachment, action="append", default=[],
                   metavar="CONTAINER_ID:IFNAME", help="an attachment to keep, repeatable")
    _common(p)
    p.add_argument("config", metavar="CONFIG", help="conflist or .conf file")
    p = verbs.add_parser("status", help="STATUS of each plugin (exit 1 if not ready)",
                         description="Ask each plugin for STATUS (CNI 1.1.0).")
    _common(p)
    p.add_argument("config", metavar="CONFIG", help="conflist or .conf file")
    p = verbs.add_parser("version", help="VERSION of each plugin of CONFIG (or --plugin)",
                         description="Print each plugin's supported CNI versions.")
    p.add_argument("--plugin", action="append", default=[], metavar="TYPE",
                   help="a plugin name instead of CONFIG, repeatable")
    _common(p)
    p.add_argument("config", nargs="?", metavar="CONFIG", help="conflist or .conf file")
    parser.set_defaults(func=run)


def _print(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _netns(value: str) -> str:
    return value if not value or "/" in value else f"/var/run/netns/{value}"


def _rt(args: argparse.Namespace) -> RuntimeConf:
    netns = _netns(args.netns)
    cid = args.container_id or "cnitool-" + hashlib.sha512(netns.encode()).hexdigest()[:20]
    return RuntimeConf(cid, netns, args.ifname, tuple(args.args), args.capability_args)


async def _run(args: argparse.Namespace) -> int:
    runtime = CNIRuntime(args.bin_dirs or _default_bin_dirs(), args.cache_dir, args.timeout)
    net: NetworkConfigList | None = (
        await load_conflist(args.config) if getattr(args, "config", None) else None
    )
    verb = args.verb
    if verb == "version":
        types = list(args.plugin) + ([p.type for p in net.plugins] if net else [])
        if not types:
            raise ConfigError("give CONFIG or --plugin", "config")
        out = {}
        for name in dict.fromkeys(types):
            info = await runtime.version(name)
            out[name] = {"cniVersion": info.cni_version,
                         "supportedVersions": list(info.supported_versions)}
        _print(out)
        return 0
    if verb == "del" and net is None:
        if not args.network:
            raise ConfigError("give CONFIG, or --network to use the cached config", "config")
        rt = _rt(args)
        known = await runtime.delete_from_cache(rt.container_id, rt.ifname, args.network,
                                                _netns(args.netns) or None)
        if not known:
            sys.stderr.write("no cached attachment: nothing to delete\n")
        return 0
    if net is None:
        raise ConfigError("CONFIG is required", "config")
    if verb == "add":
        _print((await runtime.add(net, _rt(args))).to_dict())
    elif verb == "check":
        await runtime.check(net, _rt(args))
    elif verb == "del":
        await runtime.delete(net, _rt(args))
    elif verb == "gc":
        report = await runtime.gc(net, args.valid)
        _print({"deleted": [list(a) for a in report.deleted], "disabled": report.disabled,
                "collectedPlugins": list(report.collected_plugins),
                "skippedPlugins": list(report.skipped_plugins),
                "errors": [e.to_dict() | {"plugin": e.plugin} for e in report.errors]})
        return 0 if report.ok else EXIT_CNI_ERROR
    else:
        status = await runtime.status(net)
        _print({"ready": status.ready, "plugins": [
            {"type": p.type, "state": p.state, "reason": p.reason} for p in status.plugins]})
        return 0 if status.ready else EXIT_CNI_ERROR
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except CNIError as exc:
        sys.stderr.write(json.dumps(exc.to_dict() | {"error": str(exc)}) + "\n")
        return EXIT_CNI_ERROR
    except ConfigError as exc:
        sys.stderr.write(f"cnidra cni {args.verb}: invalid input: {exc}\n")
        return EXIT_BAD_INPUT
