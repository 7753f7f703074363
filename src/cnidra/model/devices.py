"""Node network interfaces as pure records: what inventory discovers, publishing advertises and
the health stream reports. No I/O.

``Device`` holds facts about one interface exactly as discovered (names, numbers, flags);
turning them into DRA attributes, names and sharing policy is publishing's job. ``device_name``
is here because three packages must agree on it: the DRA device name of an interface.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass, field

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def device_name(if_name: str) -> str:
    """The DRA device name (a DNS label, <= 63) for an interface name.

    Names that already are DNS labels stay as they are (``eth1`` -> ``eth1``), so the talk's
    claims still show ``device: eth1``. Others are lowered, every character outside
    ``[a-z0-9-]`` becomes ``-``, and a short hash of the original is appended so that two
    different interfaces never map to the same name (``enp0s3.100`` -> ``enp0s3-100-1a2b3c``).
    """
    if _DNS_LABEL.match(if_name) and len(if_name) <= 63:
        return if_name
    cleaned = re.sub(r"[^a-z0-9-]", "-", if_name.lower()).strip("-") or "if"
    digest = hashlib.sha256(if_name.encode()).hexdigest()[:6]
    return f"{cleaned[:55]}-{digest}"


@dataclass(frozen=True, slots=True)
class Device:
    """One network interface of the node, as discovered.

    ``kind`` is the netlink link kind (``veth``, ``bridge``, ``macvlan``, ``vxlan``, …), empty for
    a physical NIC. ``virtual`` is True when the interface has no backing device under
    ``/sys/devices`` other than ``virtual``. Unknown numbers are ``None``, unknown strings ``""``.
    """

    if_name: str
    index: int
    mac: str = ""
    mtu: int = 0
    oper_state: str = "unknown"  # netlink IFLA_OPERSTATE lowered: up, down, lowerlayerdown…
    admin_up: bool = False
    carrier: bool | None = None
    kind: str = ""
    virtual: bool = True
    encapsulation: str = ""  # ether, ipip, none… (from the link type)
    driver: str = ""
    pci_address: str = ""
    pci_vendor: str = ""
    pci_device: str = ""
    pcie_root: str = ""
    numa_node: int | None = None
    speed_mbps: int | None = None
    sriov_total_vfs: int | None = None  # set on an SR-IOV PF
    sriov_num_vfs: int | None = None
    sriov_pf: str = ""  # set on a VF: the interface name of its PF
    sriov_vf_index: int | None = None
    rdma: bool = False
    rdma_device: str = ""
    master: str = ""  # the bridge/bond this interface is enslaved to
    vxlan_id: int | None = None
    ipv4: tuple[str, ...] = ()  # CIDR, as configured
    ipv6: tuple[str, ...] = ()
    alias: str = ""

    @property
    def name(self) -> str:
        """The DRA device name."""
        return device_name(self.if_name)

    @property
    def can_carry_virtual_interfaces(self) -> bool:
        """Whether many attachments can share it (macvlan/ipvlan master, bridge ports)."""
        return self.kind in ("", "bridge", "veth", "bond", "vxlan", "team") and not self.sriov_pf


@dataclass(frozen=True, slots=True)
class Snapshot:
    """All interfaces inventory decided to publish, sorted by interface name."""

    devices: tuple[Device, ...] = ()
    taken_at: float = 0.0  # unix seconds
    excluded: tuple[str, ...] = field(default=())  # interface names left out, for logs

    def by_if_name(self) -> dict[str, Device]:
        return {d.if_name: d for d in self.devices}


class Health(enum.IntEnum):
    """Device health, with the kubelet health API's numbers."""

    UNKNOWN = 0
    HEALTHY = 1
    UNHEALTHY = 2


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """Health of one published device (``device`` is the DRA device name)."""

    device: str
    health: Health
    message: str = ""
    since: float = 0.0  # unix seconds of the last change of ``health``
