"""Real netlink and sysfs in a fresh network namespace: records, exclusions, watching, health.

Each test builds its own namespace (deleted by the ``netns`` fixture, whatever happens) and runs
the inventory in a child started with ``ip netns exec`` (see ``inventory_child.py``), so netlink
and /sys both belong to that namespace. Latencies are measured from just before the ``ip``
command that changes a link to the child's monotonic stamp of the resulting snapshot/health.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from support import ip

pytestmark = pytest.mark.root

CHILD = Path(__file__).with_name("inventory_child.py")
COALESCE = 0.3
SLACK = 1.0  # scan + process scheduling on a loaded 2-core CI box

Msg = dict[str, Any]

SETUP = """\
link set lo up
link add va type veth peer name vb
link set va address 02:00:00:00:0a:01 mtu 1400
addr add 10.211.0.1/24 dev va
addr add fd00:211::1/64 dev va nodad
link add br0 type bridge
link set vb master br0
link add mv0 link va type macvlan mode bridge
link add vx0 type vxlan id 42 dstport 4789 dev va
link add up4 type veth peer name up4p
addr add 10.212.0.1/24 dev up4
link add up6 type veth peer name up6p
addr add fd00:213::1/64 dev up6 nodad
link set va up
link set vb up
link set br0 up
link set mv0 up
link set vx0 up
link set up4 up
link set up4p up
link set up6 up
link set up6p up
route add default via 10.212.0.2 dev up4
route add default via fd00:213::2 dev up6
"""


def batch(ns: str, commands: str) -> None:
    subprocess.run(["ip", "-n", ns, "-batch", "-"], input=commands, text=True, check=True,
                   capture_output=True)


@pytest.fixture
def node(netns: Callable[[str], str]) -> str:
    ns = netns("cninv")
    # no IPv6 DAD: its late address events would wake the watcher in the middle of a test
    for conf in ("all", "default"):
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                        f"net.ipv6.conf.{conf}.accept_dad=0"], check=True)
    batch(ns, SETUP)
    return ns


class Child:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seen: list[Msg] = []

    async def next(self, timeout: float) -> Msg:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            line = await self.proc.stdout.readline()
        if not line:
            assert self.proc.stderr is not None
            err = await self.proc.stderr.read()
            raise AssertionError(f"child exited: {err.decode()[-2000:]}")
        msg: Msg = json.loads(line)
        self.seen.append(msg)
        return msg

    async def settle(self, quiet: float = 0.5, limit: float = 5.0) -> None:
        """Read until nothing arrives for ``quiet`` s (links coming up, bridge ports settling)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                await self.next(quiet)
            except TimeoutError:
                return
        raise AssertionError("the namespace never settled")

    def last(self, kind: str) -> Msg:
        return next(m for m in reversed(self.seen) if m["kind"] == kind)

    async def expect(self, pred: Callable[[Msg], bool], timeout: float = 5.0) -> Msg:
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.next(max(deadline - time.monotonic(), 0.01))
            if pred(msg):
                return msg


@contextlib.asynccontextmanager
async def child(ns: str, *args: str) -> AsyncIterator[Child]:
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, sys.executable, str(CHILD), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    c = Child(proc)
    watching = args[0] == "watch"
    try:
        yield c
    finally:
        if proc.returncode is None and watching:
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(5):
                out, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    if watching:  # cancellation is clean: run() closed and returned
        tail = [json.loads(x) for x in out.decode().splitlines()]
        assert tail and tail[-1]["kind"] == "closed", err.decode()[-2000:]
    assert proc.returncode == 0, err.decode()[-2000:]


def by_name(msg: Msg) -> dict[str, Msg]:
    return {d["if_name"]: d for d in msg["devices"]}


def health_of(msg: Msg, device: str) -> Msg | None:
    return next((h for h in msg["items"] if h["device"] == device), None)


async def scan_once(ns: str, *args: str) -> Msg:
    async with child(ns, "once", *args) as c:
        return await c.next(10)


async def test_records_of_veth_bridge_macvlan_vxlan(node: str) -> None:
    snap = await scan_once(node)
    devs = by_name(snap)
    assert sorted(devs) == ["br0", "mv0", "up4p", "up6p", "va", "vb", "vx0"]
    assert [d["if_name"] for d in snap["devices"]] == sorted(devs)  # sorted by name
    assert snap["excluded"] == ["lo", "up4", "up6"]  # loopback and both default-route uplinks

    va = devs["va"]
    assert (va["kind"], va["mac"], va["mtu"], va["master"]) == ("veth", "02:00:00:00:0a:01",
                                                                 1400, "")
    assert va["ipv4"] == ["10.211.0.1/24"]
    assert va["ipv6"] == ["fd00:211::1/64"]  # the fe80:: address is left out
    assert va["virtual"] and va["encapsulation"] == "ether"
    assert va["oper_state"] == "up" and va["admin_up"] and va["carrier"] is True
    assert va["speed_mbps"] == 10000  # read from this namespace's /sys (veth reports 10G)
    assert va["index"] > 1 and va["pci_address"] == "" and va["driver"] == ""

    assert (devs["vb"]["kind"], devs["vb"]["master"]) == ("veth", "br0")
    assert (devs["br0"]["kind"], devs["br0"]["master"]) == ("bridge", "")
    assert devs["mv0"]["kind"] == "macvlan" and devs["mv0"]["vxlan_id"] is None
    vx0 = devs["vx0"]
    assert (vx0["kind"], vx0["vxlan_id"], vx0["mtu"]) == ("vxlan", 42, 1350)
    assert vx0["oper_state"] == "unknown" and vx0["carrier"] is True


async def test_uplinks_included_when_configured(node: str) -> None:
    snap = await scan_once(node, "--include-uplink")
    devs = by_name(snap)
    assert {"up4", "up6"} <= set(devs)
    assert snap["excluded"] == ["lo"]
    assert devs["up4"]["ipv4"] == ["10.212.0.1/24"]
    assert devs["up6"]["ipv6"] == ["fd00:213::1/64"]


async def test_removing_the_default_route_publishes_the_interface(node: str) -> None:
    ip("route", "del", "default", netns=node)
    snap = await scan_once(node)
    assert "up4" in by_name(snap) and snap["excluded"] == ["lo", "up6"]


async def test_link_added_and_removed_within_one_coalescing_period(node: str) -> None:
    async with child(node, "watch", "--coalesce", str(COALESCE), "--min-interval", "0.2") as c:
        await c.expect(lambda m: m["kind"] == "snapshot")
        await asyncio.sleep(0.4)  # past min_interval: only coalescing delays the next scan

        t_event = time.monotonic()
        ip("link", "add", "nv0", "type", "veth", "peer", "name", "nv1", netns=node)
        added = await c.expect(lambda m: m["kind"] == "snapshot" and "nv0" in by_name(m))
        assert {"nv0", "nv1"} <= set(by_name(added))
        assert by_name(added)["nv0"]["oper_state"] == "down"
        latency = added["mono"] - t_event
        assert latency <= COALESCE + SLACK, latency

        await asyncio.sleep(0.4)
        t_event = time.monotonic()
        ip("link", "del", "nv0", netns=node)
        removed = await c.expect(lambda m: m["kind"] == "snapshot" and "nv0" not in by_name(m))
        assert not {"nv0", "nv1"} & set(by_name(removed))
        latency = removed["mono"] - t_event
        assert latency <= COALESCE + SLACK, latency


async def test_a_burst_of_link_changes_is_one_scan(node: str) -> None:
    async with child(node, "watch", "--coalesce", str(COALESCE), "--min-interval", "0.2") as c:
        await c.expect(lambda m: m["kind"] == "snapshot")
        await c.settle()
        first = c.last("snapshot")
        scans_before = max(m["scans"] for m in c.seen if "scans" in m)
        names = [f"bu{i}" for i in range(4)]
        batch(node, "".join(f"link add {n} type veth peer name {n}p\n" for n in names))
        snap = await c.expect(lambda m: m["kind"] == "snapshot" and set(names) <= set(by_name(m)))
        # no snapshot in between showed part of the burst, and one scan covered it all
        partial = [m for m in c.seen[c.seen.index(first) + 1:-1] if m["kind"] == "snapshot"]
        assert partial == []
        assert snap["scans"] == scans_before + 1


async def test_health_follows_link_state(node: str) -> None:
    def healthy_va(m: Msg) -> bool:
        h = health_of(m, "va") if m["kind"] == "health" else None
        return h is not None and h["health"] == "HEALTHY"

    async with child(node, "watch", "--coalesce", str(COALESCE), "--min-interval", "0.2") as c:
        start = await c.expect(healthy_va)
        va = health_of(start, "va")
        assert va is not None and va["message"] == "va: up"
        assert {h["device"] for h in start["items"]} == {"br0", "mv0", "up4p", "up6p", "va",
                                                         "vb", "vx0"}

        await asyncio.sleep(0.4)
        t_event, wall_event = time.monotonic(), time.time()
        ip("link", "set", "vb", "down", netns=node)  # va loses its carrier (peer down)
        down = await c.expect(lambda m: m["kind"] == "health"
                              and (health_of(m, "va") or {}).get("health") == "UNHEALTHY")
        assert down["mono"] - t_event <= COALESCE + SLACK
        va, vb = health_of(down, "va"), health_of(down, "vb")
        assert va is not None and vb is not None
        assert va["message"].startswith("va: no carrier since ") and va["message"].endswith("Z")
        assert vb["health"] == "UNHEALTHY"
        assert vb["message"].startswith("vb: administratively down since ")
        assert wall_event - 0.05 <= va["since"] <= time.time()  # since moved with the change

        await asyncio.sleep(0.4)
        ip("link", "set", "vb", "up", netns=node)
        up = await c.expect(healthy_va)
        va = health_of(up, "va")
        assert va is not None and va["message"] == "va: up"
        assert up["version"] > down["version"]

        await asyncio.sleep(0.4)
        t_event = time.monotonic()
        ip("link", "del", "va", netns=node)  # takes vb and the macvlan on it along
        gone = await c.expect(lambda m: m["kind"] == "health"
                              and "disappeared" in ((health_of(m, "va") or {}).get("message", "")))
        assert gone["mono"] - t_event <= COALESCE + SLACK
        for name in ("va", "vb", "mv0"):
            h = health_of(gone, name)
            assert h is not None and h["health"] == "UNHEALTHY"
            assert h["message"].startswith(f"{name}: interface disappeared at ")
        still = health_of(gone, "br0")
        assert still is not None and "disappeared" not in still["message"]


async def test_event_socket_wakes_on_links_addresses_and_default_routes_only(
    netns: Callable[[str], str],
) -> None:
    from cnidra.attach import run_in_netns_blocking  # noqa: PLC0415
    from cnidra.inventory._netlink import NetlinkWatch  # noqa: PLC0415

    ns = netns("cnev")
    subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                    "net.ipv6.conf.default.accept_dad=0"], check=True)
    watch = run_in_netns_blocking(f"/run/netns/{ns}", NetlinkWatch.open)  # bound in ns

    async def quiet() -> None:
        for _ in range(20):
            if not await watch.wait(0.5):
                return
        raise AssertionError("events never stopped")

    try:
        assert not await watch.wait(0.1)
        ip("link", "add", "t0", "type", "veth", "peer", "name", "t1", netns=ns)
        assert await watch.wait(2)
        await quiet()
        ip("addr", "add", "10.215.0.1/24", "dev", "t0", netns=ns)
        assert await watch.wait(2)
        ip("link", "set", "t0", "up", netns=ns)
        ip("link", "set", "t1", "up", netns=ns)
        await quiet()
        ip("route", "add", "10.216.0.0/24", "via", "10.215.0.2", netns=ns)
        assert not await watch.wait(0.3)  # a non-default route never matters
        ip("route", "add", "default", "via", "10.215.0.2", netns=ns)
        assert await watch.wait(2)
        assert not watch.drain()
    finally:
        watch.close()
