"""Running one plugin for one verb, with version negotiation.

**Version negotiation** (why: Debian's plugins 1.1.1 speak up to 1.0.0, configs often say 1.1.0,
and a strict runtime then fails every ADD with "incompatible CNI versions"):

1. The plugin runs at the config's version, unless we already know (from a cached VERSION
   answer) that it lacks that version.
2. If it answers code 1 (incompatible version), we ask its VERSION once; the answer is cached per
   binary (path, inode, device, mtime, size), so in steady state an ADD costs no extra exec.
3. If the plugin supports an older version in the same major line that is wire-compatible for
   this verb (1.1.0 → 1.0.0 for ADD/DEL/CHECK only; GC and STATUS do not exist in 1.0.0), it
   runs at that version: ``cniVersion`` and ``prevResult`` are sent in the older format and the
   result is converted back up to the config's version. Otherwise the plugin's error stands.

GC and STATUS (1.1.0 verbs) always consult the cached VERSION answer first: a plugin that does not
support the config's version is not called for them (see ``_gc``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cnidra.cni import _exec, _version
from cnidra.cni._config import NetworkConfigList, PluginConf
from cnidra.cni._input import RuntimeConf, plugin_stdin
from cnidra.cni._results import Result, VersionInfo, parse_result, parse_version_info
from cnidra.errors import CNIError, CNITimeoutError

log = logging.getLogger(__name__)
INCOMPATIBLE_VERSION = 1

ExecObserver = Callable[[str, str, str, float], None]
"""Called after every plugin exec with (plugin, verb, outcome, seconds); outcome is ``ok``,
``error`` or ``timeout``. The daemon wires its metrics here."""


class PluginRunner:
    """Finds plugins in ``bin_dirs``, runs them with ``exec_timeout``, caches VERSION answers."""

    def __init__(
        self, bin_dirs: Sequence[str], exec_timeout: float, on_exec: ExecObserver | None = None
    ) -> None:
        self.bin_dirs = tuple(bin_dirs)
        self.exec_timeout = exec_timeout
        self.on_exec = on_exec
        self._versions: dict[tuple[str, int, int, int, int], VersionInfo] = {}

    async def _run_once(
        self, plugin: _exec.Plugin, verb: str, stdin: bytes, env: Mapping[str, str]
    ) -> tuple[bytes, bytes]:
        start = time.monotonic()
        outcome = "error"
        try:
            out = await _exec.run_plugin(plugin, verb, stdin, env, self.exec_timeout)
        except CNITimeoutError:
            outcome = "timeout"
            raise
        else:
            outcome = "ok"
        finally:
            if self.on_exec is not None:
                self.on_exec(plugin.name, verb, outcome, time.monotonic() - start)
        return out

    def find(self, name: str) -> _exec.Plugin:
        return _exec.find_plugin(name, self.bin_dirs)

    async def version_info(self, plugin: _exec.Plugin) -> VersionInfo:
        """The plugin's VERSION answer, exec'd once per binary identity."""
        known = self._versions.get(plugin.key)
        if known is not None:
            return known
        stdin = json.dumps({"cniVersion": _version.LATEST}).encode()
        env = _exec.build_env("VERSION", cni_path=self.bin_dirs)
        out, err = await self._run_once(plugin, "VERSION", stdin, env)
        info = parse_version_info(_exec.decode_json(plugin.name, "VERSION", out, err))
        self._versions[plugin.key] = info
        return info

    def _known_wire_version(self, plugin: _exec.Plugin, version: str, verb: str) -> str:
        known = self._versions.get(plugin.key)
        if known is None or known.supports(version):
            return version
        return _version.fallback_version(version, verb, known.supported_versions) or version

    async def attachment(
        self, net: NetworkConfigList, conf: PluginConf, verb: str, rt: RuntimeConf,
        prev: Result | None,
    ) -> Result | None:
        """ADD/DEL/CHECK one plugin; ADD returns its result in the config's version."""
        plugin = self.find(conf.type)
        version = self._known_wire_version(plugin, net.cni_version, verb)
        try:
            out, err = await self._run(net, conf, plugin, verb, rt=rt, prev=prev, version=version)
        except CNIError as exc:
            if exc.code != INCOMPATIBLE_VERSION or version != net.cni_version:
                raise
            info = await self.version_info(plugin)
            older = None if info.supports(version) else _version.fallback_version(
                version, verb, info.supported_versions
            )
            if older is None:
                raise
            log.info("%s supports up to %s: running %s at %s (config says %s)", plugin.path,
                     info.supported_versions[-1:], verb, older, version)
            version = older
            out, err = await self._run(net, conf, plugin, verb, rt=rt, prev=prev, version=version)
        if verb != "ADD":
            return None
        raw = _exec.decode_json(plugin.name, verb, out, err)
        try:
            return parse_result(raw, version).with_version(net.cni_version)
        except CNIError as exc:
            raise _exec.garbage(plugin.name, verb, exc.msg, out, err) from exc

    async def _run(
        self, net: NetworkConfigList, conf: PluginConf, plugin: _exec.Plugin, verb: str, *,
        rt: RuntimeConf, prev: Result | None, version: str,
    ) -> tuple[bytes, bytes]:
        stdin = plugin_stdin(net, conf, version, verb, rt=rt, prev=prev)
        env = _exec.build_env(
            verb, container_id=rt.container_id, netns=rt.netns, ifname=rt.ifname, args=rt.args,
            cni_path=self.bin_dirs,
        )
        return await self._run_once(plugin, verb, stdin, env)

    async def network_verb(
        self, net: NetworkConfigList, conf: PluginConf, verb: str,
        extra: Mapping[str, Any] | None = None,
    ) -> bool:
        """GC or STATUS one plugin at the config's version; False when it lacks that version."""
        plugin = self.find(conf.type)
        info = await self.version_info(plugin)
        if not info.supports(net.cni_version):
            return False
        stdin = plugin_stdin(net, conf, net.cni_version, verb, extra=extra)
        env = _exec.build_env(verb, cni_path=self.bin_dirs)
        await self._run_once(plugin, verb, stdin, env)
        return True
