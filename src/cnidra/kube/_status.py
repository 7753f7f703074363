"""``StatusWriter``: ``status.devices`` applies and claim Events, off the caller's path.

``submit`` and ``claim_event`` only record work and return. The root task ``run()`` drains it:
per claim the **latest** submitted status wins (an older one still waiting is replaced, never
written after a newer one); retryable failures (409, 429, 5xx, unreachable) are retried with
capped, jittered backoff up to ``max_attempts``; NotFound and validation errors (the claim is
gone, or was re-created with another UID, or the entry does not match the allocation) are
logged and dropped. Events are best effort: a few attempts, then dropped with a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnidra.errors import CnidraError, KubeAPIError
from cnidra.kube._client import KubeClient
from cnidra.kube._retry import Backoff

log = logging.getLogger(__name__)
_BACKOFF = Backoff(base=0.2, cap=5.0)


@dataclass(slots=True)
class _Pending:
    uid: str
    devices: list[dict[str, Any]]
    attempt: int = 0
    not_before: float = 0.0


@dataclass(slots=True)
class _Event:
    namespace: str
    name: str
    uid: str
    reason: str
    message: str
    warning: bool
    attempt: int = 0


class StatusWriter:
    """Implements attach's ``StatusSink`` and ``EventSink`` over a :class:`KubeClient`."""

    def __init__(
        self, client: KubeClient, driver: str, *, max_attempts: int = 8,
        backoff: Backoff = _BACKOFF, on_retry: Callable[[], None] | None = None,
        concurrency: int = 8, request_timeout: float = 10.0, event_attempts: int = 3,
        max_events: int = 1000, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._driver = driver
        self._max_attempts = max(1, max_attempts)
        self._backoff = backoff
        self._on_retry = on_retry
        self._sem = asyncio.Semaphore(max(1, concurrency))
        self._timeout = request_timeout
        self._event_attempts = max(1, event_attempts)
        self._clock = clock
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._events: deque[_Event] = deque(maxlen=max_events)
        self._inflight = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.written = 0
        self.failed = 0
        self.events_sent = 0

    # --- sinks (never block, never raise) -------------------------------------------------

    def submit(
        self, namespace: str, name: str, uid: str, devices: Sequence[Mapping[str, Any]]
    ) -> None:
        """Queue the desired ``status.devices`` of our driver for one claim (latest wins)."""
        self._pending[(namespace, name)] = _Pending(uid, [dict(d) for d in devices])
        self._kick()

    def claim_event(
        self, namespace: str, name: str, uid: str, *, reason: str, message: str, warning: bool
    ) -> None:
        """Queue an Event on the claim (bounded queue: the oldest is dropped when full)."""
        if len(self._events) == self._events.maxlen:
            log.warning("event queue full; dropping the oldest event")
        self._events.append(_Event(namespace, name, uid, reason, message, warning))
        self._kick()

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._pending) + len(self._events) + self._inflight

    # --- root task ------------------------------------------------------------------------

    async def run(self) -> None:
        """Drain the queues until cancelled."""
        while True:
            now = self._clock()
            ready = [k for k, p in self._pending.items() if p.not_before <= now]
            events = list(self._events)
            self._events.clear()
            if not ready and not events:
                if not self._pending:
                    self._idle.set()
                wait = min((p.not_before for p in self._pending.values()), default=now + 1.0)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, min(1.0, wait - now))):
                        await self._wake.wait()
                continue
            jobs = [self._apply(k, self._pending.pop(k)) for k in ready]
            jobs += [self._event(e) for e in events]
            self._inflight += len(jobs)
            try:
                await asyncio.gather(*jobs)
            finally:
                self._inflight -= len(jobs)

    async def drain(self, timeout: float) -> bool:
        """Wait until nothing is queued, waiting or in flight; False if ``timeout`` passed."""
        try:
            async with asyncio.timeout(timeout):
                while self.backlog:
                    self._idle.clear()
                    await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def _apply(self, key: tuple[str, str], item: _Pending) -> None:
        namespace, name = key
        try:
            async with self._sem:
                await self._client.apply_claim_status(
                    namespace, name, item.uid, item.devices, field_manager=self._driver,
                    timeout=self._timeout)
        except CnidraError as exc:
            self._failed(key, item, exc)
            return
        self.written += 1
        log.debug("status of claim %s/%s written (%d device entries)", namespace, name,
                  len(item.devices))

    def _failed(self, key: tuple[str, str], item: _Pending, exc: CnidraError) -> None:
        namespace, name = key
        if key in self._pending:
            return  # a newer status was submitted meanwhile; it replaces this one
        item.attempt += 1
        if exc.retryable and item.attempt < self._max_attempts:
            delay = self._backoff.delay(item.attempt - 1)
            item.not_before = self._clock() + delay
            self._pending[key] = item
            log.info("status of claim %s/%s: %s; retry %d in %.2fs", namespace, name, exc,
                     item.attempt, delay)
            if self._on_retry is not None:
                self._on_retry()
            return
        self.failed += 1
        why = f"giving up after {item.attempt} attempts" if exc.retryable else "not retried"
        status = exc.status if isinstance(exc, KubeAPIError) else 0
        log.error("status of claim %s/%s (uid %s) %s: %s [HTTP %s]", namespace, name, item.uid,
                  why, exc, status)

    async def _event(self, event: _Event) -> None:
        involved = {"apiVersion": self._client.api.group_version, "kind": "ResourceClaim",
                    "name": event.name, "uid": event.uid}
        while True:
            try:
                await self._client.create_event(
                    event.namespace, involved=involved, reason=event.reason,
                    message=event.message, warning=event.warning, component=self._driver)
            except CnidraError as exc:
                event.attempt += 1
                if not exc.retryable or event.attempt >= self._event_attempts:
                    log.warning("event %s on claim %s/%s dropped: %s", event.reason,
                                event.namespace, event.name, exc)
                    return
                await asyncio.sleep(min(1.0, self._backoff.delay(event.attempt - 1)))
                continue
            self.events_sent += 1
            return
