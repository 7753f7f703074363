"""The CNI runtime (our libcni): conflist load/validate, plugin exec for
ADD/CHECK/DEL/STATUS/GC/VERSION, result parsing and version conversion, libcni-compatible result
cache. Async; never blocks the event loop (plugins run as asyncio subprocesses, file I/O in
worker threads).

Limits: plugins are looked up only by bare name in the configured directories; results are
converted between 0.1.0 … 1.1.0 as libcni does; a plugin lacking a 1.1.0 config's version runs at
1.0.0 for ADD/DEL/CHECK (see ``_plugins``) and is skipped for GC/STATUS. Runtime-side failures
(plugin missing, exec failure, garbage output) are ``CNIError`` code 999; a plugin's own error
keeps its code. No rollback of a failed ADD: the caller DELs.
"""

from cnidra.cni._cache import CachedAttachment
from cnidra.cni._config import NetworkConfigList, PluginConf, load_conflist, parse_conflist
from cnidra.cni._gc import GCReport, NetworkStatus, PluginStatus
from cnidra.cni._input import RuntimeConf
from cnidra.cni._results import (
    DNS,
    Interface,
    IPConfig,
    Result,
    Route,
    VersionInfo,
    parse_result,
    parse_version_info,
)
from cnidra.cni._runtime import CNIRuntime
from cnidra.cni._version import SUPPORTED_VERSIONS

__all__ = [
    "DNS",
    "SUPPORTED_VERSIONS",
    "CNIRuntime",
    "CachedAttachment",
    "GCReport",
    "IPConfig",
    "Interface",
    "NetworkConfigList",
    "NetworkStatus",
    "PluginConf",
    "PluginStatus",
    "Result",
    "Route",
    "RuntimeConf",
    "VersionInfo",
    "load_conflist",
    "parse_conflist",
    "parse_result",
    "parse_version_info",
]
