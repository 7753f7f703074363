"""sysfs facts from fake trees laid out like the kernel's (relative symlinks and all)."""

from __future__ import annotations

import os
from pathlib import Path

from cnidra.inventory import SysfsFacts, read_sysfs


class Tree:
    """A fake ``/sys`` under ``root`` with just the files the scanner reads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "class" / "net").mkdir(parents=True)
        (root / "devices" / "virtual" / "net").mkdir(parents=True)
        (root / "bus" / "pci" / "drivers").mkdir(parents=True)

    def _link(self, at: Path, target: Path) -> None:
        at.parent.mkdir(parents=True, exist_ok=True)
        at.symlink_to(os.path.relpath(target, at.parent))

    def _write(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")

    def virtual(self, if_name: str) -> None:
        net = self.root / "devices" / "virtual" / "net" / if_name
        net.mkdir(parents=True)
        self._link(self.root / "class" / "net" / if_name, net)

    def pci(
        self, bdf: str, *, bridge: str = "pci0000:00", via: str = "", vendor: str = "0x8086",
        device: str = "0x1572", numa: int = 0, driver: str = "i40e",
        total_vfs: int | None = None, num_vfs: int | None = None,
    ) -> Path:
        """A PCI function (``via`` = an upstream port it sits behind); returns its directory."""
        parent = self.root / "devices" / bridge
        if via:
            parent = parent / via
        fn = parent / bdf
        fn.mkdir(parents=True)
        self._write(fn / "vendor", vendor)
        self._write(fn / "device", device)
        self._write(fn / "numa_node", str(numa))
        if total_vfs is not None:
            self._write(fn / "sriov_totalvfs", str(total_vfs))
            self._write(fn / "sriov_numvfs", str(num_vfs or 0))
        drv = self.root / "bus" / "pci" / "drivers" / driver
        drv.mkdir(exist_ok=True)
        self._link(fn / "driver", drv)
        return fn

    def netdev(self, fn: Path, if_name: str, *, speed: str | None = "25000",
               sub: str = "") -> Path:
        """Interface ``if_name`` backed by ``fn`` (or by a child device ``sub`` of it)."""
        dev = fn / sub if sub else fn
        net = dev / "net" / if_name
        net.mkdir(parents=True)
        self._link(net / "device", dev)
        if speed is not None:
            self._write(net / "speed", speed)
        self._link(self.root / "class" / "net" / if_name, net)
        return net

    def vf(self, pf: Path, vf: Path, index: int) -> None:
        self._link(pf / f"virtfn{index}", vf)
        self._link(vf / "physfn", pf)

    def rdma(self, fn: Path, name: str) -> None:
        (fn / "infiniband" / name).mkdir(parents=True)


def test_virtual_interface_has_no_device_facts(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.virtual("veth0")
    assert read_sysfs(tmp_path, "veth0") == SysfsFacts(present=True, virtual=True)


def test_missing_interface_is_not_present(tmp_path: Path) -> None:
    Tree(tmp_path)
    facts = read_sysfs(tmp_path, "eth9")
    assert not facts.present
    assert facts.virtual  # the scanner's default for what it cannot see


def test_plain_pci_nic(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    fn = tree.pci("0000:3b:00.0", bridge="pci0000:3a", via="0000:3a:00.0", numa=1,
                  vendor="0x15B3", device="0x1017", driver="mlx5_core")
    tree.netdev(fn, "ens1f0", speed="100000")
    facts = read_sysfs(tmp_path, "ens1f0")
    assert facts.present and not facts.virtual
    assert facts.pci_address == "0000:3b:00.0"
    assert (facts.pci_vendor, facts.pci_device) == ("0x15b3", "0x1017")
    assert facts.driver == "mlx5_core"
    assert facts.numa_node == 1
    assert facts.pcie_root == "pci0000:3a"
    assert facts.speed_mbps == 100000
    assert facts.sriov_total_vfs is None and facts.sriov_pf == "" and facts.rdma_device == ""


def test_numa_minus_one_and_unknown_speed_are_none(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    fn = tree.pci("0000:00:05.0", numa=-1)
    tree.netdev(fn, "eth1", speed="-1")
    fn2 = tree.pci("0000:00:06.0")
    tree.netdev(fn2, "eth2", speed=None)  # reading speed of a down link fails (EINVAL)
    one, two = read_sysfs(tmp_path, "eth1"), read_sysfs(tmp_path, "eth2")
    assert one.numa_node is None and one.speed_mbps is None
    assert two.numa_node == 0 and two.speed_mbps is None


def test_virtio_nic_takes_pci_identity_from_its_parent_function(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    fn = tree.pci("0000:00:03.0", vendor="0x1af4", device="0x1041", driver="virtio-pci")
    virtio = fn / "virtio2"
    virtio.mkdir()
    drv = tmp_path / "bus" / "virtio" / "drivers" / "virtio_net"
    drv.mkdir(parents=True)
    (virtio / "driver").symlink_to(os.path.relpath(drv, virtio))
    tree.netdev(fn, "eth0", sub="virtio2")
    facts = read_sysfs(tmp_path, "eth0")
    assert facts.driver == "virtio_net"  # the net device's own driver, not the transport's
    assert facts.pci_address == "0000:00:03.0"
    assert (facts.pci_vendor, facts.pci_device) == ("0x1af4", "0x1041")
    assert facts.pcie_root == "pci0000:00"
    assert not facts.virtual


def test_sriov_pf_with_vfs_and_vf_with_pf(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    pf = tree.pci("0000:5e:00.0", bridge="pci0000:5d", total_vfs=8, num_vfs=2, numa=0)
    tree.netdev(pf, "ens2f0")
    vfs = []
    for i in range(2):
        vf = tree.pci(f"0000:5e:02.{i}", bridge="pci0000:5d", device="0x154c", driver="iavf")
        tree.netdev(vf, f"ens2f0v{i}")
        tree.vf(pf, vf, i)
        vfs.append(vf)

    pf_facts = read_sysfs(tmp_path, "ens2f0")
    assert (pf_facts.sriov_total_vfs, pf_facts.sriov_num_vfs) == (8, 2)
    assert pf_facts.sriov_pf == "" and pf_facts.sriov_vf_index is None

    vf1 = read_sysfs(tmp_path, "ens2f0v1")
    assert vf1.sriov_pf == "ens2f0"
    assert vf1.sriov_vf_index == 1
    assert vf1.driver == "iavf" and vf1.pci_device == "0x154c"
    assert vf1.pci_address == "0000:5e:02.1" and vf1.pcie_root == "pci0000:5d"
    assert vf1.sriov_total_vfs is None


def test_vf_whose_pf_has_no_netdev(tmp_path: Path) -> None:
    """A PF bound to a driver without a netdev (e.g. switchdev setups): VF index, no PF name."""
    tree = Tree(tmp_path)
    pf = tree.pci("0000:5e:00.0", total_vfs=4, num_vfs=1)
    vf = tree.pci("0000:5e:02.0", driver="iavf")
    tree.netdev(vf, "vf0")
    tree.vf(pf, vf, 0)
    facts = read_sysfs(tmp_path, "vf0")
    assert facts.sriov_pf == "" and facts.sriov_vf_index == 0


def test_rdma_device(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    fn = tree.pci("0000:af:00.1", bridge="pci0000:ae", driver="mlx5_core", numa=1)
    tree.netdev(fn, "ens3f1np1")
    tree.rdma(fn, "mlx5_1")
    facts = read_sysfs(tmp_path, "ens3f1np1")
    assert facts.rdma_device == "mlx5_1"
    assert facts.numa_node == 1 and facts.pcie_root == "pci0000:ae"


def test_dangling_driver_link_gives_empty_driver(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    fn = tree.pci("0000:00:07.0", driver="gone")
    (tmp_path / "bus" / "pci" / "drivers" / "gone").rmdir()
    tree.netdev(fn, "eth7")
    facts = read_sysfs(tmp_path, "eth7")
    assert facts.driver == "" and facts.pci_address == "0000:00:07.0"


def test_this_machines_real_sysfs_agrees_with_itself() -> None:
    """On the real /sys: every class/net entry is present; virtual ones live under virtual/."""
    for entry in sorted(Path("/sys/class/net").iterdir()):
        facts = read_sysfs(Path("/sys"), entry.name)
        assert facts.present
        assert facts.virtual == ("/devices/virtual/" in str(entry.resolve()))
        if not facts.virtual and (entry / "device").exists():
            assert facts.driver == (entry / "device" / "driver").resolve().name


def test_usb_nic_has_no_pci_identity_of_its_host_controller(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    xhci = tree.pci("0000:00:14.0", vendor="0x8086", device="0xa36d", driver="xhci_hcd")
    iface = xhci / "usb1" / "1-1" / "1-1:1.0"
    iface.mkdir(parents=True)
    drv = tmp_path / "bus" / "usb" / "drivers" / "cdc_ether"
    drv.mkdir(parents=True)
    (iface / "driver").symlink_to(os.path.relpath(drv, iface))
    tree.netdev(xhci, "usb0", sub="usb1/1-1/1-1:1.0", speed="480")
    facts = read_sysfs(tmp_path, "usb0")
    assert not facts.virtual and facts.driver == "cdc_ether" and facts.speed_mbps == 480
    assert facts.pci_address == "" and facts.pci_vendor == "" and facts.numa_node is None
    assert facts.pcie_root == "pci0000:00"
