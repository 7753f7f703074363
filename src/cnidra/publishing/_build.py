"""Snapshot -> the ResourceSlices of this node's pool, and their semantic comparison. Pure.

One pool per node (pool name = node name, ``spec.nodeName`` set). Devices are sorted by name
and cut into slices of at most 128 (64 when any device uses taints, counters or list
attributes); every slice carries the pool's ``generation`` and ``resourceSliceCount``. A node
with no devices publishes one slice with ``devices: []`` (the pool exists and is empty).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cnidra.cel import parse_quantity
from cnidra.errors import ConfigError
from cnidra.kube import slice_to_version
from cnidra.model.devices import Snapshot
from cnidra.publishing._attributes import slice_device, uses_advanced_features
from cnidra.publishing._filter import CompiledFilter

log = logging.getLogger(__name__)

GROUP = "resource.k8s.io"
MAX_DEVICES = 128
MAX_DEVICES_ADVANCED = 64


@dataclass(frozen=True)
class Pool:
    """The devices of the pool, already cut into slices (v1 device shape), and what was left
    out (``excluded``: device name -> reason)."""

    chunks: tuple[tuple[dict[str, Any], ...], ...]
    excluded: Mapping[str, str] = field(default_factory=dict)

    @property
    def device_count(self) -> int:
        return sum(len(c) for c in self.chunks)


def build_pool(
    snapshot: Snapshot, *, driver: str, node_name: str, consumable_capacity: bool,
    device_filter: CompiledFilter | None = None, max_attachments: int = 1000,
) -> Pool:
    devices: dict[str, dict[str, Any]] = {}
    excluded: dict[str, str] = {}
    for dev in snapshot.devices:
        built = slice_device(dev, consumable_capacity=consumable_capacity,
                             max_attachments=max_attachments)
        if built["name"] in devices:
            excluded[built["name"]] = f"interface {dev.if_name} maps to a device name in use"
            continue
        if device_filter is not None:
            reason = device_filter.check(built, driver=driver, pool=node_name)
            if reason:
                excluded[built["name"]] = f"interface {dev.if_name}: {reason}"
                continue
        devices[built["name"]] = built
    ordered = [devices[name] for name in sorted(devices)]
    limit = MAX_DEVICES_ADVANCED if any(uses_advanced_features(d) for d in ordered) else (
        MAX_DEVICES)
    chunks = tuple(tuple(ordered[i:i + limit]) for i in range(0, len(ordered), limit)) or ((),)
    return Pool(chunks, excluded)


def slice_object(
    devices: Sequence[Mapping[str, Any]], *, driver: str, node_name: str, generation: int,
    count: int, api_version: str,
) -> dict[str, Any]:
    """One ResourceSlice (``metadata.generateName``; the publisher sets ``name`` on updates)."""
    prefix = f"{node_name}-{driver}"[:200].rstrip("-.") + "-"
    obj: dict[str, Any] = {
        "apiVersion": f"{GROUP}/v1", "kind": "ResourceSlice",
        "metadata": {"generateName": prefix},
        "spec": {
            "driver": driver, "nodeName": node_name,
            "pool": {"name": node_name, "generation": generation, "resourceSliceCount": count},
            "devices": [dict(d) for d in devices],
        },
    }
    return slice_to_version(obj, f"{GROUP}/{api_version}") if api_version != "v1" else obj


def build_slices(
    snapshot: Snapshot, *, driver: str, node_name: str, generation: int,
    api_version: Literal["v1", "v1beta1"], consumable_capacity: bool,
    device_filter: CompiledFilter | None = None,
) -> list[dict[str, Any]]:
    """The ResourceSlice objects of this node's pool for ``snapshot``, in ``api_version``'s
    shape (v1beta1 nests device fields under ``basic:``)."""
    if api_version not in ("v1", "v1beta1"):
        raise ConfigError(f"unsupported resource.k8s.io version {api_version!r}", "apiVersion")
    pool = build_pool(snapshot, driver=driver, node_name=node_name,
                      consumable_capacity=consumable_capacity, device_filter=device_filter)
    return [slice_object(chunk, driver=driver, node_name=node_name, generation=generation,
                         count=len(pool.chunks), api_version=api_version)
            for chunk in pool.chunks]


# --- semantic comparison ------------------------------------------------------------------

@functools.lru_cache(maxsize=1024)
def _quantity_text(text: str) -> Any:
    try:
        return parse_quantity(text).value
    except ConfigError:
        return text


def _quantity(value: Any) -> Any:
    return _quantity_text(str(value))


def _norm_capacity(cap: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"value": _quantity(cap.get("value"))}
    policy = cap.get("requestPolicy")
    if isinstance(policy, Mapping):
        norm: dict[str, Any] = {}
        if "default" in policy:
            norm["default"] = _quantity(policy["default"])
        if policy.get("validValues"):
            norm["validValues"] = [_quantity(v) for v in policy["validValues"]]
        if isinstance(policy.get("validRange"), Mapping):
            norm["validRange"] = {k: _quantity(v) for k, v in policy["validRange"].items()}
        out["requestPolicy"] = norm
    return out


def normalize_device(device: Mapping[str, Any]) -> dict[str, Any]:
    """A v1-shaped device with quantities compared by value and defaults made explicit."""
    out = {k: v for k, v in device.items() if k not in ("capacity", "allowMultipleAllocations",
                                                          "attributes")}
    out["attributes"] = dict(device.get("attributes") or {})
    out["capacity"] = {k: _norm_capacity(v) for k, v in (device.get("capacity") or {}).items()
                       if isinstance(v, Mapping)}
    out["allowMultipleAllocations"] = bool(device.get("allowMultipleAllocations", False))
    return out


def content_key(devices: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return sorted((normalize_device(d) for d in devices), key=lambda d: str(d.get("name")))


def _v1_devices(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The devices of a slice in the v1 shape, without copying (v1beta1 ``basic:`` lifted)."""
    out: list[Mapping[str, Any]] = []
    for dev in (obj.get("spec") or {}).get("devices") or []:
        basic = dev.get("basic")
        out.append({"name": dev.get("name"), **basic} if isinstance(basic, Mapping) else dev)
    return out


def _same_devices(found: list[Mapping[str, Any]], wanted: Sequence[Mapping[str, Any]]) -> bool:
    by_name = sorted(found, key=lambda d: str(d.get("name")))
    if by_name == list(wanted):  # the usual case: stored exactly as we build it
        return True
    return content_key(by_name) == content_key(wanted)


def pool_matches(existing: Sequence[Mapping[str, Any]], pool: Pool, *, driver: str,
                 node_name: str) -> bool:
    """Whether the slices on the server (any served shape) already publish ``pool``: same
    generation and slice count everywhere and the same devices, slice by slice (quantities
    compared by value, order ignored)."""
    if len(existing) != len(pool.chunks):
        return False
    generations = set()
    found: list[list[Mapping[str, Any]]] = []
    for obj in existing:
        spec = obj.get("spec") or {}
        pool_spec = spec.get("pool") or {}
        if (spec.get("driver") != driver or spec.get("nodeName") != node_name
                or pool_spec.get("name") != node_name
                or pool_spec.get("resourceSliceCount") != len(pool.chunks)
                or any(spec.get(k) for k in ("nodeSelector", "allNodes",
                                              "perDeviceNodeSelection", "sharedCounters"))):
            return False
        generations.add(pool_spec.get("generation"))
        found.append(_v1_devices(obj))
    if len(generations) != 1:
        return False
    wanted = {_first_name(chunk): chunk for chunk in pool.chunks}
    for devices in found:
        chunk = wanted.pop(_first_name(sorted(devices, key=lambda d: str(d.get("name")))),
                           None)
        if chunk is None or not _same_devices(devices, chunk):
            return False
    return not wanted


def _first_name(devices: Sequence[Mapping[str, Any]]) -> str:
    return str(devices[0].get("name")) if devices else ""
