"""One scan: a netlink dump plus sysfs facts, merged into pure ``Device`` records."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from cnidra.inventory._netlink import Dump, LinkFacts, dump, encapsulation
from cnidra.inventory._sysfs import SysfsFacts, read_sysfs
from cnidra.model.devices import Device, Snapshot

log = logging.getLogger(__name__)

_LOOPBACK_TYPE = 772


def _device(link: LinkFacts, facts: SysfsFacts, d: Dump, names: dict[int, str]) -> Device:
    return Device(
        if_name=link.if_name,
        index=link.index,
        mac=link.mac,
        mtu=link.mtu,
        oper_state=link.oper_state,
        admin_up=link.admin_up,
        carrier=link.carrier,
        kind=link.kind,
        # without a sysfs entry (a /sys of another netns) a link with a kind is still virtual
        virtual=facts.virtual if facts.present else True,
        encapsulation=encapsulation(link.link_type),
        driver=facts.driver,
        pci_address=facts.pci_address,
        pci_vendor=facts.pci_vendor,
        pci_device=facts.pci_device,
        pcie_root=facts.pcie_root,
        numa_node=facts.numa_node,
        speed_mbps=facts.speed_mbps,
        sriov_total_vfs=facts.sriov_total_vfs,
        sriov_num_vfs=facts.sriov_num_vfs,
        sriov_pf=facts.sriov_pf,
        sriov_vf_index=facts.sriov_vf_index,
        rdma=bool(facts.rdma_device),
        rdma_device=facts.rdma_device,
        master=names.get(link.master_index, "") if link.master_index else "",
        vxlan_id=link.vxlan_id,
        ipv4=d.ipv4.get(link.index, ()),
        ipv6=d.ipv6.get(link.index, ()),
        alias=link.alias,
    )


def build_snapshot(
    d: Dump,
    sysfs: Callable[[str], SysfsFacts],
    *,
    include_default_route_uplink: bool,
    taken_at: float,
) -> Snapshot:
    """Merge a dump with sysfs facts; loopback and (unless included) uplinks are left out."""
    names = {link.index: link.if_name for link in d.links}
    devices: list[Device] = []
    excluded: list[str] = []
    missing: list[str] = []
    for link in d.links:
        if not link.if_name:
            continue
        if link.link_type == _LOOPBACK_TYPE or (
            link.index in d.uplinks and not include_default_route_uplink
        ):
            excluded.append(link.if_name)
            continue
        facts = sysfs(link.if_name)
        if not facts.present:
            missing.append(link.if_name)
        devices.append(_device(link, facts, d, names))
    if missing:
        log.debug("sysfs has no entry for %s: is /sys mounted for this network namespace?",
                  ", ".join(sorted(missing)))
    return Snapshot(
        devices=tuple(sorted(devices, key=lambda dev: dev.if_name)),
        taken_at=taken_at,
        excluded=tuple(sorted(excluded)),
    )


def scan_blocking(
    *, sysfs: Path, include_default_route_uplink: bool, clock: Callable[[], float]
) -> Snapshot:
    """Scan this thread's netns (blocking: netlink dump + sysfs reads; run it in a thread)."""
    taken_at = clock()
    return build_snapshot(
        dump(),
        lambda if_name: read_sysfs(sysfs, if_name),
        include_default_route_uplink=include_default_route_uplink,
        taken_at=taken_at,
    )
