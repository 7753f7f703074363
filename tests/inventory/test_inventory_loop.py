"""The watch loop and the consumer API over a fake scan and a fake event source (short periods).

The fakes sit exactly at the two seams the real thing uses: the blocking scan function (run in a
worker thread) and the netlink event socket's ``drain``/``wait``/``close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from cnidra.errors import ConfigError
from cnidra.inventory import Inventory, InventoryError
from cnidra.model.devices import Device, Health, Snapshot

T0 = 1_800_000_000.0


class FakeEvents:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[float] = asyncio.Queue()
        self.closed = False

    def fire(self, n: int = 1) -> float:
        now = time.monotonic()
        for _ in range(n):
            self.queue.put_nowait(now)
        return now

    def drain(self) -> bool:
        got = False
        while not self.queue.empty():
            self.queue.get_nowait()
            got = True
        return got

    async def wait(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self.queue.get()
        except TimeoutError:
            return False
        self.drain()
        return True

    def close(self) -> None:
        self.closed = True


class World:
    """What the fake scan sees; ``fail`` makes scans raise like a failed netlink dump."""

    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}
        self.scans: list[float] = []  # monotonic start of each scan
        self.fail = False
        self.now = T0
        self._lock = threading.Lock()

    def set(self, name: str, **kw: object) -> None:
        fields = {"index": len(self.devices) + 2, "oper_state": "up", "admin_up": True,
                  "carrier": True, "kind": "veth"} | kw
        with self._lock:
            self.devices[name] = Device(if_name=name, **fields)  # type: ignore[arg-type]

    def remove(self, name: str) -> None:
        with self._lock:
            del self.devices[name]

    def clock(self) -> float:
        return self.now

    def scan(self) -> Snapshot:
        self.scans.append(time.monotonic())
        if self.fail:
            raise InventoryError("netlink dump failed: boom")
        with self._lock:
            devices = tuple(sorted(self.devices.values(), key=lambda d: d.if_name))
        return Snapshot(devices=devices, taken_at=self.now)


def make(world: World, events: FakeEvents, **kw: float) -> Inventory:
    inv = Inventory(clock=world.clock, **kw)  # type: ignore[arg-type]
    inv._scan_fn = world.scan
    inv._open_events = lambda: events
    return inv


@contextlib.asynccontextmanager
async def running(inv: Inventory) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(inv.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(cond: object, timeout: float = 3.0) -> None:
    assert callable(cond)
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    w.set("eth1")
    yield w


async def test_burst_gives_one_scan_one_coalescing_period_after_its_first_event(
    world: World,
) -> None:
    events = FakeEvents()
    inv = make(world, events, coalesce_seconds=0.15, min_interval=0.0)
    async with running(inv):
        await until(lambda: len(world.scans) == 1)
        await asyncio.sleep(0.05)
        first = events.fire()
        for _ in range(5):
            await asyncio.sleep(0.02)
            events.fire(3)
        await until(lambda: len(world.scans) == 2)
        delay = world.scans[1] - first
        await asyncio.sleep(0.3)
        assert len(world.scans) == 2, "one burst must give exactly one scan"
    assert 0.15 <= delay < 0.15 + 0.25


async def test_rate_limited_to_one_scan_per_min_interval(world: World) -> None:
    events = FakeEvents()
    inv = make(world, events, coalesce_seconds=0.01, min_interval=0.4)
    async with running(inv):
        await until(lambda: len(world.scans) == 1)
        for _ in range(10):
            events.fire()
            await asyncio.sleep(0.05)
        await until(lambda: len(world.scans) == 3)
    gaps = [b - a for a, b in zip(world.scans, world.scans[1:], strict=False)]
    assert all(g >= 0.4 - 0.01 for g in gaps), gaps


async def test_polls_without_events(world: World) -> None:
    events = FakeEvents()
    inv = make(world, events, poll_seconds=0.1, min_interval=0.0)
    async with running(inv):
        await until(lambda: len(world.scans) >= 4)
    assert inv.scan_count >= 4


async def test_cancel_closes_the_event_source(world: World) -> None:
    events = FakeEvents()
    inv = make(world, events)
    async with running(inv) as task:
        await until(lambda: inv.current is not None)
    assert task.cancelled() and events.closed


async def test_subscribers_get_current_then_each_change(world: World) -> None:
    events = FakeEvents()
    inv = make(world, events, coalesce_seconds=0.01, min_interval=0.0)
    await inv.scan_once()
    got: dict[str, list[tuple[str, ...]]] = {"a": [], "b": []}

    async def consume(key: str, count: int) -> None:
        async for snap in inv.subscribe():
            got[key].append(tuple(d.if_name for d in snap.devices))
            if len(got[key]) == count:
                return

    subs = [asyncio.create_task(consume("a", 3)), asyncio.create_task(consume("b", 3))]
    async with running(inv):
        await until(lambda: all(got.values()))
        world.now += 1  # same devices, new taken_at: not a change
        await inv.scan_once()
        world.set("eth2")
        events.fire()
        await until(lambda: all(len(v) >= 2 for v in got.values()))
        world.remove("eth1")
        events.fire()
        async with asyncio.timeout(3):
            await asyncio.gather(*subs)
    expected = [("eth1",), ("eth1", "eth2"), ("eth2",)]
    assert got == {"a": expected, "b": expected}


async def test_subscriber_waits_for_the_first_scan(world: World) -> None:
    inv = make(world, FakeEvents())
    it = inv.subscribe()
    first = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0.05)
    assert not first.done()
    snap = await inv.scan_once()
    assert await asyncio.wait_for(first, 2) is snap
    await it.aclose()  # type: ignore[attr-defined]


async def test_health_versions_and_wait(world: World) -> None:
    inv = make(world, FakeEvents())
    assert inv.device_health() == (0, [])
    assert await inv.wait_health(0, timeout=0.05) == (0, [])  # timeout: current state

    waiter = asyncio.ensure_future(inv.wait_health(0, timeout=5))
    await asyncio.sleep(0.01)
    await inv.scan_once()
    version, items = await asyncio.wait_for(waiter, 2)
    assert version == 1
    assert [(h.device, h.health, h.message, h.since) for h in items] == [
        ("eth1", Health.HEALTHY, "eth1: up", T0)]

    await inv.scan_once()  # nothing changed: version stays
    assert inv.device_health()[0] == 1

    world.now = T0 + 5
    world.set("eth1", carrier=False, oper_state="lowerlayerdown")
    await inv.scan_once()
    version, (h,) = inv.device_health()
    assert version == 2 and h.health is Health.UNHEALTHY and h.since == T0 + 5
    assert h.message == "eth1: no carrier since 08:00:05Z"

    world.now = T0 + 9
    world.remove("eth1")
    await inv.scan_once()
    version, (h,) = inv.device_health()
    assert version == 3 and h.message == "eth1: interface disappeared at 08:00:09Z"


async def test_failed_scans_back_off_and_report_unknown(world: World) -> None:
    events = FakeEvents()
    inv = make(world, events, min_interval=0.05, coalesce_seconds=0.0)
    await inv.scan_once()
    world.fail = True
    with pytest.raises(InventoryError):
        await inv.scan_once()
    assert inv.device_health()[1][0].health is Health.UNKNOWN
    assert inv.current is not None and inv.current.devices  # last good snapshot kept
    async with running(inv):
        await until(lambda: len(world.scans) >= 5)  # 0 + 0.05 + 0.1 + 0.2 … backing off
        gaps = [b - a for a, b in zip(world.scans[2:], world.scans[3:], strict=False)]
        assert gaps[-1] > gaps[0] * 1.5, gaps
        world.fail = False
        await until(lambda: inv.device_health()[1][0].health is Health.HEALTHY)


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ConfigError, match="coalesce_seconds"):
        Inventory(coalesce_seconds=-1)
    with pytest.raises(ConfigError, match="poll_seconds"):
        Inventory(poll_seconds=float("nan"))


async def test_a_crashing_scan_does_not_end_run_and_one_run_at_a_time(world: World) -> None:
    events = FakeEvents()
    inv = make(world, events, min_interval=0.02)
    calls = 0

    def flaky() -> Snapshot:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyError("IFLA_IFNAME")  # stands for a parsing bug
        return world.scan()

    inv._scan_fn = flaky
    async with running(inv) as task:
        await until(lambda: inv.current is not None)
        assert not task.done()
        with pytest.raises(RuntimeError, match="already running"):
            await inv.run()
    assert calls >= 2 and events.closed


class BrokenEvents(FakeEvents):
    async def wait(self, timeout: float) -> bool:
        await asyncio.sleep(0.01)
        raise InventoryError("netlink event socket: Bad file descriptor")


async def test_a_failing_event_socket_is_reopened(world: World) -> None:
    broken, good = BrokenEvents(), FakeEvents()
    opened: list[FakeEvents] = []
    inv = make(world, broken, min_interval=0.0, coalesce_seconds=0.01)

    def reopen() -> FakeEvents:
        events: FakeEvents = broken if not opened else good
        opened.append(events)
        if len(opened) == 2:  # the first reopen fails: polling only until the next scan
            raise InventoryError("cannot open a netlink socket: Too many open files")
        return events

    inv._open_events = reopen
    async with running(inv):
        await until(lambda: len(opened) >= 3)
        await until(lambda: len(world.scans) >= 2)
        before = len(world.scans)
        good.fire()  # events flow again through the reopened socket
        await until(lambda: len(world.scans) > before)
    assert broken.closed and good.closed and opened[2] is good
