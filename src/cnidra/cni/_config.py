"""Network configuration lists (conflists): parse and validate, load from files off the loop.

Pure parsing; every problem is a :class:`~cnidra.errors.ConfigError` naming the field path.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnidra.cni import _version
from cnidra.errors import ConfigError

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
"""Network names and container IDs (the spec's rule, as libcni's ``ValidateNetworkName``)."""


@dataclass(frozen=True)
class PluginConf:
    """One plugin entry of a conflist: its ``type`` (a bare binary name) and its raw JSON."""

    type: str
    raw: dict[str, Any] = field(compare=True)
    capabilities: frozenset[str] = frozenset()
    """Capability names the plugin declares with ``true`` (``"capabilities": {"ips": true}``)."""


@dataclass(frozen=True)
class NetworkConfigList:
    """A validated conflist. ``bytes`` is what the cache stores (base64) as ``config``.

    ``bytes`` is the caller's own JSON when a conflist was given as text (exactly what libcni
    caches); otherwise (a mapping, a promoted single-plugin ``.conf``, or snippets appended by
    :func:`load_conflist`) it is the compact JSON of the list.
    """

    name: str
    cni_version: str
    plugins: tuple[PluginConf, ...]
    bytes: builtins.bytes
    cni_versions: tuple[str, ...] = ()
    disable_check: bool = False
    disable_gc: bool = False
    load_only_inlined_plugins: bool = False


def _bool(raw: Mapping[str, Any], key: str) -> bool:
    """libcni accepts a JSON bool or the strings ``"true"``/``"false"`` (any case)."""
    value = raw.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "t", "f"}:
        return value.lower() in {"true", "1", "t"}
    raise ConfigError(f"must be a boolean, got {value!r}", key)


def _decode(data: builtins.bytes | str | Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The JSON object and whether ``data`` was text (so its bytes can be kept as they are)."""
    if isinstance(data, Mapping):
        return dict(data), False
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ConfigError(f"must be a JSON object, got {type(obj).__name__}")
    return obj, True


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def validate_plugin_type(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError("is required and must be a non-empty string (the plugin binary)", path)
    if "/" in value or ".." in value or "\x00" in value or value.strip() != value:
        raise ConfigError(f"{value!r} must be a bare plugin name (no '/', '..', blanks)", path)
    return value


def parse_plugin(raw: Any, path: str) -> PluginConf:
    if not isinstance(raw, dict):
        raise ConfigError("must be a JSON object", path)
    ptype = validate_plugin_type(raw.get("type"), _join(path, "type"))
    caps_raw = raw.get("capabilities", {})
    if not isinstance(caps_raw, dict):
        raise ConfigError(
            "must be an object of capability names to booleans", _join(path, "capabilities")
        )
    caps: set[str] = set()
    for key, enabled in caps_raw.items():
        if not isinstance(enabled, bool):
            raise ConfigError("must be a boolean", _join(path, f"capabilities.{key}"))
        if enabled:
            caps.add(key)
    return PluginConf(type=ptype, raw=raw, capabilities=frozenset(caps))


def _pick_version(obj: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    declared = obj.get("cniVersion")
    if declared is not None and not isinstance(declared, str):
        raise ConfigError("must be a string", "cniVersion")
    if declared:
        _version.parse(declared, "cniVersion")
    many = obj.get("cniVersions")
    if many is None:
        if not declared:
            raise ConfigError("cniVersion (or cniVersions) is required", "cniVersion")
        return _version.check_supported(declared), ()
    if not isinstance(many, list):
        raise ConfigError("must be a list of version strings", "cniVersions")
    best = _version.highest_supported([*many, *([declared] if declared else [])])
    if best is None:
        raise ConfigError(
            f"none of {many!r} is supported ({', '.join(_version.SUPPORTED_VERSIONS)})",
            "cniVersions",
        )
    return best, tuple(many)


def parse_conflist(
    data: builtins.bytes | str | Mapping[str, Any], *, allow_no_plugins: bool = False
) -> NetworkConfigList:
    """Parse and validate a conflist, or a single-plugin ``.conf`` (promoted to a list).

    Text (bytes/str) is parsed once: the same text returns the same (frozen) result from a
    small cache, as every ADD/DEL of a prepared interface parses the same conflist bytes.
    Treat the result's ``raw`` plugin dicts as read-only."""
    if isinstance(data, (builtins.bytes, str)):
        return _parse_text(data, allow_no_plugins)
    return _parse(data, allow_no_plugins)


@functools.lru_cache(maxsize=256)
def _parse_text(data: builtins.bytes | str, allow_no_plugins: bool) -> NetworkConfigList:
    return _parse(data, allow_no_plugins)


def _parse(
    data: builtins.bytes | str | Mapping[str, Any], allow_no_plugins: bool
) -> NetworkConfigList:
    obj, was_text = _decode(data)
    if "plugins" not in obj and "type" in obj:
        plugin = parse_plugin(obj, "")  # path "" so errors read "type: ..." like the file
        obj = {
            "cniVersion": obj.get("cniVersion"), "name": obj.get("name"), "plugins": [plugin.raw]
        }
        if obj["cniVersion"] is None:
            del obj["cniVersion"]
        was_text = False
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError("is required and must be a non-empty string", "name")
    if not NAME_RE.fullmatch(name):
        raise ConfigError(
            f"{name!r} must start with a letter or digit and contain only letters, digits, "
            "'_', '.', '-'", "name",
        )
    version, versions = _pick_version(obj)
    raw_plugins = obj.get("plugins", [])
    if not isinstance(raw_plugins, list):
        raise ConfigError("must be a list", "plugins")
    if not raw_plugins and not allow_no_plugins:
        raise ConfigError("no plugins in list", "plugins")
    plugins = tuple(parse_plugin(p, f"plugins[{i}]") for i, p in enumerate(raw_plugins))
    out_bytes = (
        (data.encode() if isinstance(data, str) else data)
        if was_text and isinstance(data, (str, builtins.bytes))
        else json.dumps(obj, separators=(",", ":")).encode()
    )
    return NetworkConfigList(
        name=name, cni_version=version, plugins=plugins, bytes=out_bytes, cni_versions=versions,
        disable_check=_bool(obj, "disableCheck"), disable_gc=_bool(obj, "disableGC"),
        load_only_inlined_plugins=_bool(obj, "loadOnlyInlinedPlugins"),
    )


def _load_sync(path: Path) -> NetworkConfigList:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    net = parse_conflist(data, allow_no_plugins=True)
    snippet_dir = path.parent / net.name
    if net.load_only_inlined_plugins or not snippet_dir.is_dir():
        if not net.plugins:
            raise ConfigError("no plugins in list", "plugins")
        return net
    # libcni LoadNetworkConf: append <confdir>/<name>/*.conf plugin snippets, sorted by name.
    obj = json.loads(net.bytes)
    plugins = list(obj.get("plugins", []))
    for snippet in sorted(snippet_dir.glob("*.conf")):
        try:
            raw = json.loads(snippet.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load plugin snippet {snippet}: {exc}") from exc
        parse_plugin(raw, snippet.name)
        plugins.append(raw)
    obj["plugins"] = plugins
    if net.cni_versions:
        obj["cniVersion"] = net.cni_version
    return parse_conflist(obj)


async def load_conflist(path: str | Path) -> NetworkConfigList:
    """Read and parse a conflist or ``.conf`` file in a worker thread.

    When ``loadOnlyInlinedPlugins`` is false and ``<dir>/<name>/`` exists, its ``*.conf`` plugin
    snippets are appended (libcni's ``LoadNetworkConf``).
    """
    return await asyncio.to_thread(_load_sync, Path(path))
