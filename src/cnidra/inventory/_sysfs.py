"""Facts about one interface from sysfs: backing device, PCI identity, NUMA, speed, SR-IOV, RDMA.

Everything is read relative to an injectable sysfs root, so a fake tree under a temporary
directory can stand in for ``/sys``. Missing or unreadable files give ``None``/``""`` (never an
error): a virtual interface simply has none of them.

Layout read (``<root>`` is normally ``/sys``)::

    <root>/class/net/<if>                 -> ../../devices/<path>/net/<if>  (or devices/virtual/…)
    <root>/class/net/<if>/speed           Mb/s; -1 or unreadable (link down) -> None
    <root>/class/net/<if>/device          -> the backing device (a PCI function, or virtioN)
    <device>/driver                       -> …/drivers/<name>
    <pci>/vendor, device                  as read, lowered: "0x8086"
    <pci>/numa_node                       -1 -> None
    <pci>/sriov_totalvfs, sriov_numvfs    on an SR-IOV PF
    <pci>/physfn                          on a VF: -> the PF's PCI function, whose net/ names the PF
    <pf>/virtfn<N>                        -> a VF's PCI function (gives the VF index)
    <pci>/infiniband/<dev>                RDMA device (mlx5_0, …)

``<pci>`` is the device itself when it is a PCI function (``0000:3b:00.0``), or the function a
``virtioN`` device sits on; a NIC on another bus (USB) has none. The PCIe root is the
``pciDDDD:BB`` component of the resolved path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_PCI_ADDRESS = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
_PCI_ROOT = re.compile(r"^pci[0-9a-f]{4}:[0-9a-f]{2}$")
_VIRTFN = re.compile(r"^virtfn(\d+)$")
_VIRTIO = re.compile(r"^virtio\d+$")


@dataclass(frozen=True, slots=True)
class SysfsFacts:
    """What sysfs says about one interface (``present`` False: not under class/net at all)."""

    present: bool = False
    virtual: bool = True
    driver: str = ""
    pci_address: str = ""
    pci_vendor: str = ""
    pci_device: str = ""
    pcie_root: str = ""
    numa_node: int | None = None
    speed_mbps: int | None = None
    sriov_total_vfs: int | None = None
    sriov_num_vfs: int | None = None
    sriov_pf: str = ""
    sriov_vf_index: int | None = None
    rdma_device: str = ""


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):  # absent, or EINVAL (speed of a down link)
        return ""


def _read_int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text, 0)
    except ValueError:
        return None


def _resolve(path: Path) -> Path | None:
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, dangling, or a symlink loop
        return None


def _hex_id(path: Path) -> str:
    return _read(path).lower()


def _sorted_names(path: Path) -> list[str]:
    try:
        return sorted(p.name for p in path.iterdir())
    except OSError:
        return []


def _pci_function(device: Path) -> Path | None:
    """The PCI function behind ``device``: itself, or the function a virtio device sits on.

    Other buses (a USB NIC under its host controller) have no PCI function of their own.
    """
    if _PCI_ADDRESS.match(device.name):
        return device
    if _VIRTIO.match(device.name) and _PCI_ADDRESS.match(device.parent.name):
        return device.parent
    return None


def _vf_index(pf: Path, vf: Path) -> int | None:
    for name in _sorted_names(pf):
        match = _VIRTFN.match(name)
        if match and _resolve(pf / name) == vf:
            return int(match.group(1))
    return None


def read_sysfs(root: Path, if_name: str) -> SysfsFacts:
    """Read the sysfs facts of ``if_name`` under ``root`` (blocking file I/O: call off the loop)."""
    link = root / "class" / "net" / if_name
    real = _resolve(link)
    if real is None:
        return SysfsFacts()
    devices_root = _resolve(root / "devices") or root / "devices"
    try:
        parts = real.relative_to(devices_root).parts
    except ValueError:
        parts = real.parts
    virtual = not parts or parts[0] == "virtual"
    speed = _read_int(link / "speed")
    base = SysfsFacts(
        present=True,
        virtual=virtual,
        speed_mbps=speed if speed is not None and speed > 0 else None,
        pcie_root=next((p for p in parts if _PCI_ROOT.match(p)), ""),
    )
    device = _resolve(link / "device")
    if device is None:
        return base
    driver = _resolve(device / "driver")
    pci = _pci_function(device)
    if pci is None:
        return SysfsFacts(
            present=True, virtual=virtual, speed_mbps=base.speed_mbps,
            pcie_root=base.pcie_root, driver=driver.name if driver else "",
        )
    numa = _read_int(pci / "numa_node")
    pf = _resolve(pci / "physfn")
    pf_names = _sorted_names(pf / "net") if pf is not None else []
    rdma = _sorted_names(pci / "infiniband") or _sorted_names(device / "infiniband")
    return SysfsFacts(
        present=True,
        virtual=virtual,
        driver=driver.name if driver else "",
        pci_address=pci.name,
        pci_vendor=_hex_id(pci / "vendor"),
        pci_device=_hex_id(pci / "device"),
        pcie_root=base.pcie_root,
        numa_node=numa if numa is not None and numa >= 0 else None,
        speed_mbps=base.speed_mbps,
        sriov_total_vfs=_read_int(pci / "sriov_totalvfs"),
        sriov_num_vfs=_read_int(pci / "sriov_numvfs"),
        sriov_pf=pf_names[0] if pf_names else "",
        sriov_vf_index=_vf_index(pf, pci) if pf is not None else None,
        rdma_device=rdma[0] if rdma else "",
    )
