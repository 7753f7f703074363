"""Netlink: one dump of links, addresses and default routes; and the event socket that wakes the
watch loop.

The dump uses pyroute2's blocking ``IPRoute`` and must run in a worker thread. The event socket
is a plain non-blocking ``AF_NETLINK`` socket bound to the link, address and route groups and
read with ``loop.sock_recv``, so waiting for events costs the loop nothing and needs no thread.
Events are only wake-ups: their content is never trusted, the next dump is the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import socket
import struct
from dataclasses import dataclass
from typing import Any

from cnidra.inventory._errors import InventoryError

# rtnetlink multicast groups (linux/rtnetlink.h)
_RTMGRP_LINK = 0x1
_RTMGRP_IPV4_IFADDR = 0x10
_RTMGRP_IPV4_ROUTE = 0x40
_RTMGRP_IPV6_IFADDR = 0x100
_RTMGRP_IPV6_ROUTE = 0x400
GROUPS = (
    _RTMGRP_LINK | _RTMGRP_IPV4_IFADDR | _RTMGRP_IPV6_IFADDR
    | _RTMGRP_IPV4_ROUTE | _RTMGRP_IPV6_ROUTE
)
_RTM_NEWROUTE, _RTM_DELROUTE = 24, 25
_NLMSG_HDR = struct.Struct("=IHHII")
_MAIN_TABLE = 254
_RTN_UNICAST = 1
_IFF_UP = 0x1

# ARPHRD_* (linux/if_arp.h) -> the names iproute2 prints after "link/"
_LINK_TYPES = {
    1: "ether", 32: "infiniband", 512: "ppp", 768: "ipip", 769: "tunnel6", 772: "loopback",
    776: "sit", 778: "gre", 823: "ip6gre", 280: "can", 65534: "none",
}


def encapsulation(link_type: int) -> str:
    """The link type's name (``ether``, ``ipip``, ``none``…); ``type<N>`` for the rest."""
    return _LINK_TYPES.get(link_type, f"type{link_type}")


@dataclass(frozen=True, slots=True)
class LinkFacts:
    """What one RTM_NEWLINK dump entry says (no sysfs, no addresses)."""

    index: int
    if_name: str
    link_type: int
    admin_up: bool
    oper_state: str
    carrier: bool | None
    mac: str
    mtu: int
    kind: str
    master_index: int
    vxlan_id: int | None
    alias: str


def _nested(msg: Any, *names: str) -> Any:
    for name in names:
        if msg is None:
            return None
        msg = msg.get(name)
    return msg


def link_facts(msg: Any) -> LinkFacts:
    """Parse a pyroute2 ``ifinfmsg`` into :class:`LinkFacts`."""
    carrier = msg.get("IFLA_CARRIER")
    vxlan_id = _nested(msg, "IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_VXLAN_ID")
    kind = _nested(msg, "IFLA_LINKINFO", "IFLA_INFO_KIND") or ""
    return LinkFacts(
        index=int(msg["index"]),
        if_name=str(msg.get("IFLA_IFNAME") or ""),
        link_type=int(msg["ifi_type"]),
        admin_up=bool(int(msg["flags"]) & _IFF_UP),
        oper_state=str(msg.get("IFLA_OPERSTATE") or "unknown").lower(),
        carrier=None if carrier is None else bool(carrier),
        mac=str(msg.get("IFLA_ADDRESS") or "").lower(),
        mtu=int(msg.get("IFLA_MTU") or 0),
        kind=str(kind),
        master_index=int(msg.get("IFLA_MASTER") or 0),
        vxlan_id=int(vxlan_id) if kind == "vxlan" and vxlan_id is not None else None,
        alias=str(msg.get("IFLA_IFALIAS") or ""),
    )


def address_cidr(msg: Any) -> tuple[int, str] | None:
    """``(family, "addr/len")`` of a pyroute2 ``ifaddrmsg``; None for IPv6 link-local."""
    family = int(msg["family"])
    addr = msg.get("IFA_LOCAL") if family == socket.AF_INET else None
    addr = addr or msg.get("IFA_ADDRESS")
    if not addr:
        return None
    if family == socket.AF_INET6 and ipaddress.IPv6Address(addr).is_link_local:
        return None
    return family, f"{addr}/{int(msg['prefixlen'])}"


def default_route_oifs(msg: Any) -> set[int]:
    """Interface indexes a main-table default route (v4 or v6) leaves through, else empty."""
    table = msg.get("RTA_TABLE") or msg["table"]
    if int(msg["dst_len"]) != 0 or int(table) != _MAIN_TABLE or int(msg["type"]) != _RTN_UNICAST:
        return set()
    out = {int(msg.get("RTA_OIF") or 0)}
    for hop in msg.get("RTA_MULTIPATH") or ():
        out.add(int(hop["oif"]))
    out.discard(0)
    return out


@dataclass(frozen=True, slots=True)
class Dump:
    links: tuple[LinkFacts, ...]
    ipv4: dict[int, tuple[str, ...]]
    ipv6: dict[int, tuple[str, ...]]
    uplinks: frozenset[int]


def dump() -> Dump:
    """Links, addresses and default-route interfaces of this thread's netns (blocking)."""
    from pyroute2 import IPRoute  # noqa: PLC0415 - heavy import, only where netlink is used
    from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

    try:
        with IPRoute() as ipr:
            links = tuple(link_facts(m) for m in ipr.get_links())
            addrs = list(ipr.get_addr())
            routes = [*ipr.get_routes(family=socket.AF_INET),
                      *ipr.get_routes(family=socket.AF_INET6)]
    except (OSError, NetlinkError) as exc:
        raise InventoryError(f"netlink dump failed: {exc}") from exc
    v4: dict[int, list[str]] = {}
    v6: dict[int, list[str]] = {}
    for msg in addrs:
        parsed = address_cidr(msg)
        if parsed is not None:
            family, cidr = parsed
            (v4 if family == socket.AF_INET else v6).setdefault(int(msg["index"]), []).append(cidr)
    uplinks: set[int] = set()
    for msg in routes:
        uplinks |= default_route_oifs(msg)
    return Dump(
        links=links,
        ipv4={k: tuple(v) for k, v in v4.items()},
        ipv6={k: tuple(v) for k, v in v6.items()},
        uplinks=frozenset(uplinks),
    )


def _relevant(data: bytes) -> bool:
    """Whether a datagram holds anything but non-default route changes (which never matter)."""
    offset = 0
    while offset + _NLMSG_HDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSG_HDR.unpack_from(data, offset)
        if length < _NLMSG_HDR.size:
            return True  # malformed: be safe and rescan
        if kind not in (_RTM_NEWROUTE, _RTM_DELROUTE):
            return True
        dst_len_at = offset + _NLMSG_HDR.size + 1  # rtmsg: family, dst_len, …
        if dst_len_at < len(data) and data[dst_len_at] == 0:
            return True
        offset += (length + 3) & ~3
    return False


class NetlinkWatch:
    """A bound rtnetlink event socket in the netns of the creating thread."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.overruns = 0

    @classmethod
    def open(cls) -> NetlinkWatch:
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        except OSError as exc:
            raise InventoryError(f"cannot open a netlink socket: {exc.strerror}") from exc
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((0, GROUPS))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise InventoryError(f"cannot bind the netlink event socket: {exc.strerror}") from exc
        return cls(sock)

    def drain(self) -> bool:
        """Read everything queued without waiting; True if any of it matters."""
        relevant = False
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                return relevant
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise InventoryError(f"netlink event socket: {exc.strerror}") from exc
                self.overruns += 1  # events were lost: rescan
                relevant = True
                continue
            relevant = relevant or _relevant(data)

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for relevant events; True when some arrived (all drained)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                async with asyncio.timeout(remaining):
                    data = await loop.sock_recv(self._sock, 1 << 16)
            except TimeoutError:
                return False
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise InventoryError(f"netlink event socket: {exc.strerror}") from exc
                self.overruns += 1
                self.drain()
                return True
            if self.drain() or _relevant(data):
                return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
