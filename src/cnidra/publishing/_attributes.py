"""One ``Device`` record -> the DRA device it is published as (v1 shape). Pure.

Attribute names are C identifiers of at most 32 bytes; unprefixed ones are in the driver's
domain (``device.attributes["<driver>"].name``). Kubernetes' standard attributes go under
``resource.kubernetes.io/`` (``pcieRoot``, ``pciBusID``, ``numaNode``). Values: int, bool or
string (at most 64 bytes, cut at a UTF-8 boundary). Unknown facts are left out rather than
published as zero/empty, so a selector on them does not match by accident.

Addresses: only the **first** IPv4 and the first IPv6 address are published (``ipv4``,
``ipv6``), in CIDR form as configured (``10.0.0.5/24``; at most 43 bytes, within the limit).
Joining all of them could exceed 64 bytes and would make equality selectors useless; list
attributes (DRAListTypeAttributes) are alpha and off by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from cnidra.cel import format_quantity
from cnidra.model.devices import Device

STANDARD = "resource.kubernetes.io"
MAX_STRING = 64
MAX_ATTRIBUTES_AND_CAPACITIES = 32
ATTACHMENTS = "attachments"
_LIST_KINDS = frozenset(("ints", "bools", "strings", "versions"))


def clip(text: str, limit: int = MAX_STRING) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes without splitting a character."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[:limit].decode(errors="ignore")


def _attributes(dev: Device) -> list[tuple[str, dict[str, Any]]]:
    """(name, value) in priority order; the tail is dropped first if over the limit."""
    out: list[tuple[str, dict[str, Any]]] = []

    def string(name: str, value: str) -> None:
        if value:
            out.append((name, {"string": clip(value)}))

    def integer(name: str, value: int | None, *, minimum: int = 0) -> None:
        if value is not None and value >= minimum:
            out.append((name, {"int": int(value)}))

    def boolean(name: str, value: bool | None) -> None:
        if value is not None:
            out.append((name, {"bool": bool(value)}))

    string("name", dev.if_name)
    string("mac", dev.mac.lower())
    integer("mtu", dev.mtu, minimum=1)
    string("state", dev.oper_state)
    boolean("virtual", dev.virtual)
    string("kind", dev.kind)
    string("driver", dev.driver)
    boolean("sriov", bool(dev.sriov_total_vfs))
    integer("sriovVfs", dev.sriov_total_vfs if dev.sriov_total_vfs else None)
    string("sriovPf", dev.sriov_pf)
    integer("sriovVf", dev.sriov_vf_index if dev.sriov_pf else None)
    boolean("rdma", dev.rdma)
    string("rdmaDevice", dev.rdma_device)
    string("ipv4", dev.ipv4[0] if dev.ipv4 else "")
    string("ipv6", dev.ipv6[0] if dev.ipv6 else "")
    string("pciVendor", dev.pci_vendor)
    string("pciDevice", dev.pci_device)
    integer("numaNode", dev.numa_node)
    integer("speed", dev.speed_mbps, minimum=1)
    string("encapsulation", dev.encapsulation)
    string("master", dev.master)
    integer("vxlanId", dev.vxlan_id)
    boolean("carrier", dev.carrier)
    boolean("adminUp", dev.admin_up)
    string("alias", dev.alias)
    string(f"{STANDARD}/pcieRoot", dev.pcie_root)
    string(f"{STANDARD}/pciBusID", dev.pci_address)
    integer(f"{STANDARD}/numaNode", dev.numa_node)
    return out


def shareable(dev: Device) -> bool:
    """Whether many pods may attach through this device at once (macvlan/ipvlan masters,
    bridges...): the consumable-capacity candidates."""
    return dev.can_carry_virtual_interfaces


def slice_device(
    dev: Device, *, consumable_capacity: bool, max_attachments: int = 1000,
) -> dict[str, Any]:
    """The v1-shaped slice device for ``dev``.

    With ``consumable_capacity``, a shareable device gets ``allowMultipleAllocations: true``
    and a capacity ``attachments`` = ``max_attachments`` whose request policy makes every
    allocation consume exactly 1 (default 1, validRange 1..1), so claims that do not mention
    capacity (the talk's shared-capacity demo) are allocated up to ``max_attachments`` times.
    Without it nothing is added and sharing falls back to adminAccess.
    """
    capacity: dict[str, Any] = {}
    if consumable_capacity and shareable(dev):
        capacity[ATTACHMENTS] = {
            "value": format_quantity(Fraction(max_attachments), "DecimalSI"),  # as stored
            "requestPolicy": {"default": "1",
                              "validRange": {"min": "1", "max": "1", "step": "1"}},
        }
    room = MAX_ATTRIBUTES_AND_CAPACITIES - len(capacity)
    attributes = dict(_attributes(dev)[:room])
    out: dict[str, Any] = {"name": dev.name, "attributes": attributes}
    if capacity:
        out["allowMultipleAllocations"] = True
        out["capacity"] = capacity
    return out


def uses_advanced_features(device: Mapping[str, Any]) -> bool:
    """Taints, counters or list attributes: the slice limit drops from 128 to 64 devices."""
    if device.get("taints") or device.get("consumesCounters"):
        return True
    return any(not _LIST_KINDS.isdisjoint(v) for v in (device.get("attributes") or {}).values()
               if isinstance(v, Mapping))
