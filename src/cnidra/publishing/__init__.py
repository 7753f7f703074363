"""Snapshot -> ResourceSlices for this node's pool, kept on the API server.

Job: a pure builder (``build_slices``: device names, attributes in the driver's domain and the
standard ``resource.kubernetes.io/`` ones, consumable capacity for shareable devices, at most
128 devices per slice, pool = node) and the ``Publisher`` that writes only when the server's
slices differ semantically, bumps the pool generation on every change, retries conflicts,
removes stale slices, re-publishes when our slices vanish (watch + periodic resync) and removes
everything on a clean uninstall. The operator's CEL device filter is compiled at start
(``ConfigError`` on a bad expression) and evaluated on the device as it would be published.

Limits: one pool per node, no taints, counters or partitionable devices; list attributes
(alpha) are not used, so only the first IPv4/IPv6 address is published; attributes beyond the
32 per device limit are dropped from the end of a fixed priority order (never the name).
"""

from cnidra.publishing._attributes import ATTACHMENTS, STANDARD, clip, shareable, slice_device
from cnidra.publishing._build import (
    MAX_DEVICES,
    MAX_DEVICES_ADVANCED,
    Pool,
    build_pool,
    build_slices,
    pool_matches,
)
from cnidra.publishing._filter import CompiledFilter, compile_filter
from cnidra.publishing._publisher import Publisher

__all__ = [
    "ATTACHMENTS",
    "MAX_DEVICES",
    "MAX_DEVICES_ADVANCED",
    "STANDARD",
    "CompiledFilter",
    "Pool",
    "Publisher",
    "build_pool",
    "build_slices",
    "clip",
    "compile_filter",
    "pool_matches",
    "shareable",
    "slice_device",
]
