"""Netlink parsing and the dump + sysfs merge, without touching the kernel."""

from __future__ import annotations

import socket
import struct
from typing import Any

from cnidra.inventory import SysfsFacts
from cnidra.inventory._netlink import (
    Dump,
    _relevant,
    address_cidr,
    default_route_oifs,
    encapsulation,
    link_facts,
)
from cnidra.inventory._scan import build_snapshot


def link_msg(index: int, name: str, *, kind: str = "", ltype: int = 1, up: bool = True,
             master: int = 0, vni: int | None = None, **extra: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "index": index, "ifi_type": ltype, "flags": 0x1043 if up else 0x1002,
        "IFLA_IFNAME": name, "IFLA_OPERSTATE": "UP" if up else "DOWN", "IFLA_CARRIER": 1,
        "IFLA_ADDRESS": f"02:AA:00:00:00:{index:02X}", "IFLA_MTU": 1500,
        **({"IFLA_MASTER": master} if master else {}), **extra,
    }
    if kind:
        data = {"IFLA_VXLAN_ID": vni} if vni is not None else {}
        msg["IFLA_LINKINFO"] = {"IFLA_INFO_KIND": kind, "IFLA_INFO_DATA": data}
    return msg


def test_link_facts() -> None:
    f = link_facts(link_msg(7, "vx0", kind="vxlan", vni=42, master=3, IFLA_IFALIAS="lab"))
    assert (f.index, f.if_name, f.kind, f.vxlan_id, f.master_index) == (7, "vx0", "vxlan", 42, 3)
    assert f.admin_up and f.oper_state == "up" and f.carrier is True
    assert f.mac == "02:aa:00:00:00:07" and f.mtu == 1500 and f.alias == "lab"
    down = link_facts({"index": 2, "ifi_type": 1, "flags": 0, "IFLA_IFNAME": "x"})
    assert (down.admin_up, down.oper_state, down.carrier, down.kind) == (False, "unknown", None, "")


def test_encapsulation_names() -> None:
    assert [encapsulation(t) for t in (1, 772, 768, 65534, 32, 9999)] == [
        "ether", "loopback", "ipip", "none", "infiniband", "type9999"]


def test_addresses() -> None:
    v4 = {"family": socket.AF_INET, "prefixlen": 24, "IFA_LOCAL": "10.1.0.1",
          "IFA_ADDRESS": "10.1.0.2"}  # point-to-point: ADDRESS is the peer
    assert address_cidr(v4) == (socket.AF_INET, "10.1.0.1/24")
    v6 = {"family": socket.AF_INET6, "prefixlen": 64, "IFA_ADDRESS": "fd00:1::5"}
    assert address_cidr(v6) == (socket.AF_INET6, "fd00:1::5/64")
    ll = {"family": socket.AF_INET6, "prefixlen": 64, "IFA_ADDRESS": "fe80::1"}
    assert address_cidr(ll) is None


def route(dst_len: int, oif: int = 0, table: int = 254, rtype: int = 1,
          hops: tuple[int, ...] = ()) -> dict[str, Any]:
    msg: dict[str, Any] = {"dst_len": dst_len, "table": table, "type": rtype, "RTA_TABLE": table}
    if oif:
        msg["RTA_OIF"] = oif
    if hops:
        msg["RTA_MULTIPATH"] = [{"oif": h} for h in hops]
    return msg


def test_default_route_oifs() -> None:
    assert default_route_oifs(route(0, 4)) == {4}
    assert default_route_oifs(route(0, hops=(5, 6))) == {5, 6}
    assert default_route_oifs(route(24, 4)) == set()
    assert default_route_oifs(route(0, 4, table=100)) == set()  # policy table: not the uplink
    assert default_route_oifs(route(0, 4, rtype=7)) == set()  # blackhole/unreachable


def nl(kind: int, payload: bytes = b"") -> bytes:
    body = struct.pack("=IHHII", 16 + len(payload), kind, 0, 0, 0) + payload
    return body + b"\0" * (-len(body) % 4)


def test_event_relevance() -> None:
    rt = bytes([socket.AF_INET, 24, 0, 0, 254, 0, 0, 1, 0, 0, 0, 0])
    default = bytes([socket.AF_INET, 0, 0, 0, 254, 0, 0, 1, 0, 0, 0, 0])
    assert _relevant(nl(16, b"\0" * 16))  # RTM_NEWLINK
    assert _relevant(nl(20, b"\0" * 8))  # RTM_NEWADDR
    assert not _relevant(nl(24, rt))  # a /24 route: never matters
    assert _relevant(nl(24, rt) + nl(25, default))  # a default route went away
    assert not _relevant(b"")


def test_build_snapshot_excludes_loopback_and_uplinks() -> None:
    links = tuple(link_facts(m) for m in (
        link_msg(1, "lo", ltype=772), link_msg(2, "eth0"), link_msg(3, "br0", kind="bridge"),
        link_msg(4, "veth1", kind="veth", master=3), link_msg(5, "eth1", up=False),
    ))
    d = Dump(links=links, ipv4={2: ("192.0.2.2/24",), 3: ("10.0.0.1/24",)},
             ipv6={3: ("fd00::1/64",)}, uplinks=frozenset({2}))

    def sysfs(name: str) -> SysfsFacts:
        if name == "eth1":
            return SysfsFacts(present=True, virtual=False, pci_address="0000:00:04.0",
                              driver="e1000", rdma_device="rxe0", speed_mbps=1000)
        return SysfsFacts(present=name != "veth1")

    snap = build_snapshot(d, sysfs, include_default_route_uplink=False, taken_at=5.0)
    assert [x.if_name for x in snap.devices] == ["br0", "eth1", "veth1"]
    assert snap.excluded == ("eth0", "lo") and snap.taken_at == 5.0
    br0, eth1, veth1 = snap.devices
    assert (br0.kind, br0.ipv4, br0.ipv6, br0.encapsulation) == (
        "bridge", ("10.0.0.1/24",), ("fd00::1/64",), "ether")
    assert veth1.master == "br0" and veth1.virtual  # no sysfs entry: still virtual
    assert not eth1.virtual and eth1.rdma and eth1.rdma_device == "rxe0"
    assert (eth1.pci_address, eth1.driver, eth1.speed_mbps) == ("0000:00:04.0", "e1000", 1000)
    assert not eth1.admin_up and eth1.oper_state == "down"

    with_uplink = build_snapshot(d, sysfs, include_default_route_uplink=True, taken_at=5.0)
    assert [x.if_name for x in with_uplink.devices] == ["br0", "eth0", "eth1", "veth1"]
    assert with_uplink.excluded == ("lo",)
