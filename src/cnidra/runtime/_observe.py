"""Thin observing wrappers over the kubelet and NRI entry points: metrics, log identifiers, and
the in-flight count that shutdown drains. No logic of their own: they delegate every call.

``ObservedClaims`` wraps ``ClaimState`` for the kubelet plugin (prepare/unprepare);
``ObservedHandler`` wraps ``Attacher`` for the NRI plugin (pod sandbox events, Synchronize).
Inside each call, every log record carries the claim or pod identifiers (``log_fields``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Protocol, TypeVar

from cnidra.attach import Sandbox
from cnidra.claims import Fetched
from cnidra.model.claims import ClaimRef, PrepareOutcome
from cnidra.model.plan import Attachment
from cnidra.runtime._logging import log_fields
from cnidra.runtime._metrics import Metrics

log = logging.getLogger("cnidra.driver")
T = TypeVar("T")


class ClaimsPort(Protocol):
    async def fetch(self, claims: Sequence[ClaimRef]) -> Fetched: ...
    async def apply_prepare(self, fetched: Fetched) -> dict[str, PrepareOutcome]: ...
    async def unprepare(self, claims: Sequence[ClaimRef]) -> dict[str, str]: ...


class HandlerPort(Protocol):
    async def run_pod_sandbox(self, sandbox: Sandbox) -> list[Attachment]: ...
    async def stop_pod_sandbox(self, sandbox: Sandbox) -> None: ...
    async def remove_pod_sandbox(self, sandbox: Sandbox) -> None: ...
    async def synchronize(self, live_sandboxes: Collection[Sandbox]) -> int: ...


def _claim_fields(claims: Sequence[ClaimRef]) -> dict[str, str]:
    if len(claims) == 1:
        return {"claim": f"{claims[0].namespace}/{claims[0].name}", "claim_uid": claims[0].uid}
    return {"claims": ",".join(f"{c.namespace}/{c.name}" for c in claims)}


class ObservedClaims:
    """``prepare``/``unprepare`` with ``cnidra_kubelet_*`` metrics and claim log fields."""

    def __init__(self, inner: ClaimsPort, metrics: Metrics,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._inner = inner
        self._metrics = metrics
        self._clock = clock

    async def prepare(self, claims: Sequence[ClaimRef]) -> dict[str, PrepareOutcome]:
        """Both phases in one (tests and tools; the kubelet plugin calls them apart)."""
        return await self.apply_prepare(await self.fetch(claims))

    async def fetch(self, claims: Sequence[ClaimRef]) -> Fetched:
        """The reads (outside the kubelet plugin's lock); the call is observed by
        :meth:`apply_prepare`, timed from ``Fetched.started`` (so ``clock`` must be
        ``time.monotonic``'s)."""
        with log_fields(call="prepare", **_claim_fields(claims)):
            return await self._inner.fetch(claims)

    async def apply_prepare(self, fetched: Fetched) -> dict[str, PrepareOutcome]:
        claims = fetched.refs
        start = fetched.started
        with log_fields(call="prepare", **_claim_fields(claims)):
            try:
                outcomes = await self._inner.apply_prepare(fetched)
            except BaseException:
                self._metrics.observe_kubelet_call("prepare", self._clock() - start, 0,
                                                   len(claims))
                raise
            refs = {c.uid: c for c in claims}
            for uid, outcome in outcomes.items():
                ref = refs.get(uid)
                name = f"{ref.namespace}/{ref.name}" if ref else ""
                with log_fields(claim=name, claim_uid=uid):
                    if outcome.ok:
                        log.info("prepared claim %s (%d device(s))", name, len(outcome.devices))
                    else:
                        log.warning("prepare failed: %s", outcome.error)
        failed = sum(1 for o in outcomes.values() if not o.ok)
        self._metrics.observe_kubelet_call("prepare", self._clock() - start,
                                           len(outcomes) - failed, failed)
        return outcomes

    async def unprepare(self, claims: Sequence[ClaimRef]) -> dict[str, str]:
        start = self._clock()
        with log_fields(call="unprepare", **_claim_fields(claims)):
            try:
                answers = await self._inner.unprepare(claims)
            except BaseException:
                self._metrics.observe_kubelet_call("unprepare", self._clock() - start, 0,
                                                   len(claims))
                raise
            for uid, error in answers.items():
                with log_fields(claim_uid=uid):
                    if error:
                        log.warning("unprepare refused: %s", error)
                    else:
                        log.info("unprepared claim %s", uid)
        failed = sum(1 for e in answers.values() if e)
        self._metrics.observe_kubelet_call("unprepare", self._clock() - start,
                                           len(answers) - failed, failed)
        return answers


class ObservedHandler:
    """The NRI handler with pod log fields and a drainable in-flight count; with ``metrics``
    also ``cnidra_nri_hook_*`` (the driver leaves them to the NRI plugin's ``on_hook``, which
    also sees a hook's deadline pass)."""

    def __init__(self, inner: HandlerPort, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._inner = inner
        self._metrics = metrics
        self._clock = clock
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def drain(self, timeout: float) -> bool:
        """Wait (bounded) until no hook is running; False when some were still running."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("%d NRI hook(s) still running after %.1fs", self._in_flight, timeout)
            return False
        return True

    async def _observe(self, event: str, sandbox: Sandbox | None,
                       call: Callable[[], Awaitable[T]]) -> T:
        fields = {"event": event}
        if sandbox is not None:
            fields |= {"pod": f"{sandbox.pod_namespace}/{sandbox.pod_name}",
                       "pod_uid": sandbox.pod_uid, "sandbox": sandbox.id[:12]}
        self._in_flight += 1
        self._idle.clear()
        start = self._clock()
        outcome = "error"
        try:
            with log_fields(**fields):
                try:
                    value = await call()
                except asyncio.CancelledError:
                    outcome = "timeout"
                    log.warning("%s cancelled", event)
                    raise
                except Exception as exc:
                    log.warning("%s failed: %s", event, exc)
                    raise
            outcome = "ok"
            return value
        finally:
            if self._metrics is not None:
                self._metrics.observe_hook(event, outcome, self._clock() - start)
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def run_pod_sandbox(self, sandbox: Sandbox) -> list[Attachment]:
        added = await self._observe("RunPodSandbox", sandbox,
                                    lambda: self._inner.run_pod_sandbox(sandbox))
        if added:
            with log_fields(pod=f"{sandbox.pod_namespace}/{sandbox.pod_name}",
                            pod_uid=sandbox.pod_uid):
                log.info("attached %s", ", ".join(a.if_name for a in added))
        return added

    async def stop_pod_sandbox(self, sandbox: Sandbox) -> None:
        await self._observe("StopPodSandbox", sandbox,
                            lambda: self._inner.stop_pod_sandbox(sandbox))

    async def remove_pod_sandbox(self, sandbox: Sandbox) -> None:
        await self._observe("RemovePodSandbox", sandbox,
                            lambda: self._inner.remove_pod_sandbox(sandbox))

    async def synchronize(self, live_sandboxes: Collection[Sandbox]) -> int:
        changed = await self._observe("Synchronize", None,
                                      lambda: self._inner.synchronize(live_sandboxes))
        log.info("Synchronize: %d live sandbox(es), %d attachment(s) removed or made",
                 len(live_sandboxes), changed)
        return changed
