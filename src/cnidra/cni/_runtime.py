"""``CNIRuntime``: libcni's ``CNIConfig`` for conflists (ADD/CHECK/DEL/STATUS/GC/VERSION).

Semantics follow libcni: ADD chains ``prevResult`` through the plugins and caches the final result;
CHECK (config ≥ 0.4.0, skipped with ``disableCheck``) and DEL (reverse order) get the cached final
ADD result as ``prevResult``, converted to the config's version (DEL of a config < 0.4.0 gets none);
DEL removes the cache entry and may be repeated. A failed ADD is not rolled back here: the caller
DELs. Runtime-side failures are ``CNIError`` code 999; see ``_plugins`` for version negotiation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from pathlib import Path

from cnidra.cni import _cache, _gc, _version
from cnidra.cni._cache import CachedAttachment
from cnidra.cni._config import NetworkConfigList, parse_conflist
from cnidra.cni._input import RuntimeConf
from cnidra.cni._plugins import ExecObserver, PluginRunner
from cnidra.cni._results import Result, VersionInfo, parse_result
from cnidra.errors import CNIError, ConfigError


class CNIRuntime:
    """Runs conflists with plugins found (by bare name) in ``bin_dirs``.

    ``on_exec(plugin, verb, outcome, seconds)`` is called after every plugin exec (metrics).
    """

    def __init__(
        self, bin_dirs: Sequence[str], cache_dir: str = "/var/lib/cni", exec_timeout: float = 10.0,
        *, on_exec: ExecObserver | None = None,
    ) -> None:
        if not bin_dirs:
            raise ConfigError("at least one plugin directory is required", "binDirs")
        self.bin_dirs = tuple(bin_dirs)
        self.cache_dir = cache_dir
        self.exec_timeout = exec_timeout
        self._runner = PluginRunner(self.bin_dirs, exec_timeout, on_exec)

    async def add(self, net: NetworkConfigList, rt: RuntimeConf) -> Result:
        """ADD every plugin in order; cache and return the final result (config's version)."""
        rt.validate()
        result: Result | None = None
        for conf in net.plugins:
            result = await self._runner.attachment(net, conf, "ADD", rt, result)
        if result is None:
            raise CNIError(999, "no plugin returned a result", plugin=net.name, verb="ADD")
        entry = _cache.entry_for(
            net.name, config=net.bytes, container_id=rt.container_id, ifname=rt.ifname,
            netns=rt.netns, args=rt.args, capability_args=rt.capability_args,
            result=result.to_dict(net.cni_version),
        )
        try:
            await _cache.write(self.cache_dir, entry)
        except OSError as exc:
            raise CNIError(5, f"cannot write the result cache: {exc}", verb="ADD") from exc
        return result

    async def check(self, net: NetworkConfigList, rt: RuntimeConf) -> None:
        """CHECK every plugin with the cached result; refused for configs older than 0.4.0."""
        if not _version.at_least(net.cni_version, "0.4.0"):
            raise CNIError(1, f"configuration version {net.cni_version!r} does not support the "
                              "CHECK command", verb="CHECK")
        rt.validate()
        if net.disable_check:
            return
        prev = await self._cached_result(net, rt)
        for conf in net.plugins:
            await self._runner.attachment(net, conf, "CHECK", rt, prev)

    async def delete(self, net: NetworkConfigList, rt: RuntimeConf) -> None:
        """DEL in reverse order, then drop the cache entry. Repeating it is a no-op.

        Pass ``netns=""`` when the namespace is already gone (as containerd does).
        """
        rt.validate()
        prev = None
        if _version.at_least(net.cni_version, "0.4.0"):
            prev = await self._cached_result(net, rt)
        await self._delete(net, rt, prev)

    async def _delete(self, net: NetworkConfigList, rt: RuntimeConf, prev: Result | None) -> None:
        for conf in reversed(net.plugins):
            await self._runner.attachment(net, conf, "DEL", rt, prev)
        await _cache.remove(self.cache_dir, net.name, rt.container_id, rt.ifname)

    async def delete_from_cache(
        self, container_id: str, ifname: str, net_name: str, netns: str | None = None
    ) -> bool:
        """DEL an attachment known only from the cache (after a restart, config gone).

        Uses the cached conflist, netns, CNI_ARGS and capability args. ``netns=None`` takes the
        cached path if it still exists, else ``""``. False when there is no cache entry.
        """
        RuntimeConf(container_id, "", ifname).validate()
        path = _cache.cache_path(self.cache_dir, net_name, container_id, ifname)
        entry, exists = await asyncio.to_thread(_entry_and_netns, path, netns is None)
        if entry is None:
            return False
        net = parse_conflist(entry.config)
        if netns is None:
            netns = entry.netns if exists else ""
        rt = RuntimeConf(container_id, netns, ifname, entry.cni_args, entry.capability_args)
        if net.name != net_name:  # a foreign entry: DEL reads the cache of the config's name
            await self.delete(net, rt)
            return True
        rt.validate()
        prev = None  # the entry just read is the one delete() would read again
        if _version.at_least(net.cni_version, "0.4.0"):
            prev = _result_of(entry, net.cni_version)
        await self._delete(net, rt, prev)
        return True

    async def status(self, net: NetworkConfigList) -> _gc.NetworkStatus:
        """STATUS of each plugin (1.1.0 configs); see ``_gc`` for unsupported plugins."""
        return await _gc.status(self._runner, net)

    async def gc(
        self, net: NetworkConfigList, valid: Iterable[tuple[str, str]]
    ) -> _gc.GCReport:
        """DEL cached attachments of ``net`` not in ``valid`` (container ID, ifname), then GC."""
        return await _gc.collect(self._runner, self.cache_dir, self.delete, net, valid)

    async def version(self, plugin_type: str) -> VersionInfo:
        """The plugin's VERSION answer (cached per binary)."""
        return await self._runner.version_info(self._runner.find(plugin_type))

    async def cached_attachments(self, net_name: str | None = None) -> list[CachedAttachment]:
        """Every readable cache entry (of one network when ``net_name`` is given)."""
        return await _cache.list_entries(self.cache_dir, net_name)

    async def get_cached(
        self, net_name: str, container_id: str, ifname: str
    ) -> CachedAttachment | None:
        RuntimeConf(container_id, "", ifname).validate()
        return await _cache.read(self.cache_dir, net_name, container_id, ifname)

    async def _cached_result(self, net: NetworkConfigList, rt: RuntimeConf) -> Result | None:
        entry = await _cache.read(self.cache_dir, net.name, rt.container_id, rt.ifname)
        return _result_of(entry, net.cni_version)


def _result_of(entry: CachedAttachment | None, version: str) -> Result | None:
    """The entry's cached result in ``version``; None when there is none or it is unusable."""
    if entry is None or entry.result is None:
        return None
    try:
        return parse_result(entry.result).with_version(version)
    except CNIError:
        return None


def _entry_and_netns(path: Path, check_netns: bool) -> tuple[CachedAttachment | None, bool]:
    """One trip off the loop: the cache entry and whether its netns still exists."""
    entry = _cache.read_sync(path)
    exists = (check_netns and entry is not None and bool(entry.netns)
              and Path(entry.netns).exists())
    return entry, exists
