"""``Inventory``: scans on demand, watches netlink, publishes snapshots and device health."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

from cnidra.errors import ConfigError
from cnidra.inventory._errors import InventoryError
from cnidra.inventory._health import HealthTracker
from cnidra.inventory._netlink import NetlinkWatch
from cnidra.inventory._scan import scan_blocking
from cnidra.inventory._schedule import ScanSchedule
from cnidra.model.devices import DeviceHealth, Snapshot

log = logging.getLogger(__name__)


class EventSource(Protocol):
    """What the watch loop needs from the netlink event socket (tests pass a fake)."""

    def drain(self) -> bool: ...
    async def wait(self, timeout: float) -> bool: ...
    def close(self) -> None: ...


class _PollOnly:
    """Stands in while the event socket cannot be reopened: the loop only polls."""

    def drain(self) -> bool:
        return False

    async def wait(self, timeout: float) -> bool:
        await asyncio.sleep(timeout)
        return False

    def close(self) -> None:
        pass


class _Signal:
    """A version number and a way to wait until it moves (loop thread only)."""

    def __init__(self) -> None:
        self.version = 0
        self._event = asyncio.Event()

    def bump(self) -> None:
        self.version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_past(self, version: int) -> None:
        while self.version == version:
            await self._event.wait()


class Inventory:
    """The node's interfaces: scanned on demand, watched by :meth:`run`.

    All state lives on the event loop's thread; scans run in a worker thread (netlink dump and
    sysfs reads), so the loop never blocks.
    """

    def __init__(
        self,
        *,
        include_default_route_uplink: bool = False,
        poll_seconds: float = 60.0,
        coalesce_seconds: float = 0.5,
        min_interval: float = 1.0,
        sysfs: Path = Path("/sys"),
        clock: Callable[[], float] = time.time,
        gone_retention: float = 300.0,
    ) -> None:
        for name, value in (("poll_seconds", poll_seconds),
                            ("coalesce_seconds", coalesce_seconds),
                            ("min_interval", min_interval), ("gone_retention", gone_retention)):
            if not value >= 0:  # negative or NaN
                raise ConfigError(f"must be a number >= 0, got {value}", name)
        self.include_default_route_uplink = include_default_route_uplink
        self.poll_seconds = poll_seconds
        self.coalesce_seconds = coalesce_seconds
        self.min_interval = min_interval
        self.sysfs = sysfs
        self._clock = clock
        self._current: Snapshot | None = None
        self._health = HealthTracker(gone_retention)
        self._snapshots: _Signal | None = None
        self._health_signal: _Signal | None = None
        self._lock: asyncio.Lock | None = None
        self._scans = 0
        self._running = False
        # seams for tests: the blocking scan and the event socket
        self._scan_fn: Callable[[], Snapshot] = functools.partial(
            scan_blocking, sysfs=sysfs, include_default_route_uplink=include_default_route_uplink,
            clock=clock,
        )
        self._open_events: Callable[[], EventSource] = NetlinkWatch.open

    # -- state -------------------------------------------------------------------------------

    @property
    def current(self) -> Snapshot | None:
        """The latest snapshot, None before the first scan."""
        return self._current

    @property
    def scan_count(self) -> int:
        """How many scans completed successfully (for metrics and tests)."""
        return self._scans

    def _signals(self) -> tuple[_Signal, _Signal, asyncio.Lock]:
        if self._snapshots is None or self._health_signal is None or self._lock is None:
            self._snapshots, self._health_signal, self._lock = _Signal(), _Signal(), asyncio.Lock()
        return self._snapshots, self._health_signal, self._lock

    # -- scanning ----------------------------------------------------------------------------

    async def scan_once(self) -> Snapshot:
        """Scan now, publish the result (if it differs) and return it.

        Raises :class:`InventoryError` when netlink cannot be read; device health then turns
        UNKNOWN for the present interfaces.
        """
        snapshots, health, lock = self._signals()
        async with lock:
            try:
                snap = await asyncio.to_thread(self._scan_fn)
            except InventoryError:
                if self._health.unreadable(self._clock()):
                    health.bump()
                raise
            self._scans += 1
            previous = self._current
            self._current = snap
            if previous is None or previous.devices != snap.devices:
                snapshots.bump()
            if self._health.observe(snap, snap.taken_at or self._clock()):
                health.bump()
            return snap

    async def run(self) -> None:
        """Root task: scan, then rescan on netlink events (coalesced, rate limited) and at least
        every ``poll_seconds``. Runs until cancelled; closes its socket on the way out. Failed
        scans (also unexpected exceptions) are logged and retried with capped backoff. An event
        socket that cannot be opened at start raises ``InventoryError``; one that fails later is
        reopened (polling only, reopened before each scan, while that fails). One ``run()`` at a
        time (``RuntimeError`` otherwise)."""
        if self._running:
            raise RuntimeError("Inventory.run() is already running")
        loop = asyncio.get_running_loop()
        schedule = ScanSchedule(self.coalesce_seconds, self.min_interval, self.poll_seconds)
        events = self._open_events()
        self._running = True
        try:
            while True:
                wait = schedule.deadline() - loop.time()
                try:
                    if wait > 0:
                        if await events.wait(wait):
                            schedule.event(loop.time())
                        continue
                    if isinstance(events, _PollOnly):
                        events = self._reopen_events()
                    events.drain()  # what happened until now is covered by this scan
                except InventoryError as exc:
                    log.warning("netlink events lost (%s): reopening the socket", exc)
                    events.close()
                    events = self._reopen_events()
                    schedule.event(loop.time())  # something may have been missed
                    continue
                schedule.started(loop.time())
                try:
                    await self.scan_once()
                except InventoryError as exc:
                    schedule.finished(ok=False)
                    log.warning("interface scan failed (retry in %.1fs): %s",
                                schedule.backoff(), exc)
                except Exception:  # a bug in parsing must not stop the node's inventory
                    schedule.finished(ok=False)
                    log.exception("interface scan crashed (retry in %.1fs)", schedule.backoff())
                else:
                    schedule.finished(ok=True)
        finally:
            self._running = False
            events.close()

    def _reopen_events(self) -> EventSource:
        try:
            return self._open_events()
        except InventoryError as exc:
            log.warning("%s: polling every %gs until it opens", exc, self.poll_seconds)
            return _PollOnly()

    # -- consumers ---------------------------------------------------------------------------

    def subscribe(self) -> AsyncIterator[Snapshot]:
        """The current snapshot (after the first scan), then each one whose devices differ.

        Latest-value semantics: a slow subscriber skips intermediate snapshots, never the
        newest. Each call is an independent subscriber; stop it by breaking out / ``aclose``.
        """
        return self._subscription()

    async def _subscription(self) -> AsyncIterator[Snapshot]:
        snapshots, _, _ = self._signals()
        last: Snapshot | None = None
        while True:
            version = snapshots.version
            snap = self._current
            if snap is not None and (last is None or snap.devices != last.devices):
                last = snap
                yield snap
                continue
            await snapshots.wait_past(version)

    def device_health(self) -> tuple[int, list[DeviceHealth]]:
        """``(version, complete list)``; the version increases on every change of the list."""
        _, health, _ = self._signals()
        return health.version, self._health.view()

    async def wait_health(
        self, version: int, timeout: float | None = None
    ) -> tuple[int, list[DeviceHealth]]:
        """Wait until the health version differs from ``version`` (or ``timeout`` s passed),
        then return the current ``device_health()``."""
        _, health, _ = self._signals()
        try:
            async with asyncio.timeout(timeout):
                await health.wait_past(version)
        except TimeoutError:
            pass
        return self.device_health()
