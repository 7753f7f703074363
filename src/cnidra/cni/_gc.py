"""GC and STATUS of a network (CNI 1.1.0 verbs), as libcni's ``GCNetworkList`` and
``GetStatusNetworkList``, plus what happens with plugins that predate 1.1.0.

GC: nothing at all when the list says ``disableGC`` (libcni). Otherwise every cached attachment
of the network that is not in the valid set is DELeted (with the current config, as libcni), then,
for configs ≥ 1.1.0, each plugin gets GC with ``cni.dev/valid-attachments`` (and the older
``cni.dev/attachments``). A plugin that does not support the config's version (e.g. Debian's
1.1.1 plugins, ≤ 1.0.0) is not given GC — 1.0.0 has no GC verb — and is listed in
``GCReport.skipped_plugins``; the stale attachments were still removed through DEL.
Errors are collected in the report rather than raised, so one bad entry does not stop the rest.

STATUS: a plugin that lacks the config's version reports ``unsupported`` (not a failure); codes
50/51 or any other error report ``not-ready``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from cnidra.cni import _cache, _version
from cnidra.cni._config import NetworkConfigList
from cnidra.cni._input import RuntimeConf
from cnidra.cni._plugins import PluginRunner
from cnidra.errors import CNIError

Deleter = Callable[[NetworkConfigList, RuntimeConf], Awaitable[None]]


@dataclass(frozen=True)
class GCReport:
    deleted: tuple[tuple[str, str], ...] = ()
    """(container ID, ifname) of the stale attachments DELeted."""
    collected_plugins: tuple[str, ...] = ()
    """Plugins that were given the GC verb."""
    skipped_plugins: tuple[str, ...] = ()
    """Plugins not given GC because they do not support the config's version."""
    errors: tuple[CNIError, ...] = ()
    disabled: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class PluginStatus:
    type: str
    state: Literal["ready", "not-ready", "unsupported"]
    reason: str = ""
    error: CNIError | None = None


@dataclass(frozen=True)
class NetworkStatus:
    plugins: tuple[PluginStatus, ...]

    @property
    def ready(self) -> bool:
        return all(p.state != "not-ready" for p in self.plugins)


async def collect(
    runner: PluginRunner, cache_dir: str, delete: Deleter, net: NetworkConfigList,
    valid: Iterable[tuple[str, str]],
) -> GCReport:
    if net.disable_gc:
        return GCReport(disabled=True)
    keep = {(cid, ifname) for cid, ifname in valid}
    deleted: list[tuple[str, str]] = []
    errors: list[CNIError] = []
    for entry in await _cache.list_entries(cache_dir, net.name):
        if (entry.container_id, entry.ifname) in keep:
            continue
        rt = RuntimeConf(entry.container_id, entry.netns, entry.ifname, entry.cni_args,
                         entry.capability_args)
        try:
            await delete(net, rt)
        except CNIError as exc:
            errors.append(exc)
        else:
            deleted.append((entry.container_id, entry.ifname))
    collected: list[str] = []
    skipped: list[str] = []
    if _version.at_least(net.cni_version, "1.1.0"):
        attachments = [{"containerID": c, "ifname": i} for c, i in sorted(keep)]
        extra = {"cni.dev/valid-attachments": attachments, "cni.dev/attachments": attachments}
        for conf in net.plugins:
            try:
                called = await runner.network_verb(net, conf, "GC", extra)
            except CNIError as exc:
                errors.append(exc)
                continue
            (collected if called else skipped).append(conf.type)
    return GCReport(tuple(deleted), tuple(collected), tuple(skipped), tuple(errors))


async def status(runner: PluginRunner, net: NetworkConfigList) -> NetworkStatus:
    if not _version.at_least(net.cni_version, "1.1.0"):
        reason = f"config version {net.cni_version} has no STATUS verb (needs 1.1.0)"
        return NetworkStatus(
            tuple(PluginStatus(p.type, "unsupported", reason) for p in net.plugins)
        )
    out: list[PluginStatus] = []
    for conf in net.plugins:
        try:
            called = await runner.network_verb(net, conf, "STATUS")
        except CNIError as exc:
            out.append(PluginStatus(conf.type, "not-ready", exc.msg, exc))
            continue
        if called:
            out.append(PluginStatus(conf.type, "ready"))
        else:
            out.append(PluginStatus(
                conf.type, "unsupported",
                f"not supported by plugin (it does not speak CNI {net.cni_version})",
            ))
    return NetworkStatus(tuple(out))
