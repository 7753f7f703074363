"""The gRPC servicers: registration, DRA v1 and v1beta1 (one shared core) and the health stream.

The core turns every claim problem into that claim's ``error``; only a bug (an unexpected
exception) fails the whole call, with INTERNAL. As the Go helper, Prepare reads its claims
(``ClaimPreparer.fetch``) before it takes the serialization lock, so concurrent calls read the
API server concurrently; only the state phase (``apply_prepare``) and Unprepare are serialized.
One time limit covers the whole call (reads, waiting for the lock, state phase).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import grpc

from cnidra.claims import Fetched
from cnidra.errors import CnidraError
from cnidra.kubelet import _convert
from cnidra.kubelet._proto import (
    dra_v1_pb2,
    dra_v1_pb2_grpc,
    dra_v1beta1_pb2,
    dra_v1beta1_pb2_grpc,
    health_v1alpha1_pb2,
    health_v1alpha1_pb2_grpc,
    pluginregistration_pb2,
    pluginregistration_pb2_grpc,
)
from cnidra.kubelet._serialize import CallSerializer
from cnidra.model.claims import ClaimRef, PrepareOutcome
from cnidra.model.devices import DeviceHealth

log = logging.getLogger("cnidra.kubelet")

PREPARE = "prepare"
UNPREPARE = "unprepare"
_METHODS = {PREPARE: "NodePrepareResources", UNPREPARE: "NodeUnprepareResources"}
OnCall = Callable[[str, str, float, int], None]
"""``(call, outcome, seconds, claims)`` once per call, as ``docs/metrics.md`` labels them: call
``prepare``/``unprepare``, outcome ``ok``, or ``error`` when any claim (or the call) failed."""


class ClaimPreparer(Protocol):
    """The claims side of the plugin (``cnidra.claims.ClaimState`` has these)."""

    async def fetch(self, claims: Sequence[ClaimRef]) -> Fetched:
        """Read the claims from the API server; called outside the serialized section, so it
        must not touch shared state (read problems are per-claim errors of apply_prepare)."""
        ...

    async def apply_prepare(self, fetched: Fetched) -> dict[str, PrepareOutcome]:
        """The state phase of Prepare; called inside the serialized section."""
        ...

    async def unprepare(self, claims: Sequence[ClaimRef]) -> dict[str, str]:
        """Called inside the serialized section."""
        ...


class HealthSource(Protocol):
    """Device health, versioned: the version changes whenever the list changes."""

    def device_health(self) -> tuple[int, list[DeviceHealth]]: ...

    async def wait_health(
        self, version: int, timeout: float | None = None
    ) -> tuple[int, list[DeviceHealth]]:
        """The list once its version differs from ``version``, or the current one on timeout."""
        ...


class Core:
    """Prepare/unprepare shared by both DRA versions: validation, serialization, time limit,
    per-claim errors, logging and the metrics hook."""

    def __init__(
        self, claims: ClaimPreparer, serializer: CallSerializer, *, call_timeout: float,
        on_call: OnCall | None,
    ) -> None:
        self._claims = claims
        self._serializer = serializer
        self._call_timeout = call_timeout
        self._on_call = on_call

    def _budget(self, context: grpc.aio.ServicerContext[object, object]) -> float:
        remaining: float | None = context.time_remaining()  # None without a deadline
        if remaining is None:
            return self._call_timeout
        # Answer (with per-claim errors) a little before the kubelet gives up on the call.
        return max(0.05, min(self._call_timeout, remaining - min(1.0, remaining / 10)))

    async def prepare(
        self, claims: Sequence[object], context: grpc.aio.ServicerContext[object, object],
    ) -> dict[str, PrepareOutcome]:
        refs, bad = _convert.claim_refs(claims)
        outcomes = {uid: PrepareOutcome(error=msg) for uid, msg in bad.items()}

        async def run(hold: Callable[[], AbstractAsyncContextManager[None]]) -> None:
            if not refs:
                return
            fetched = await self._claims.fetch(refs)  # before the lock, as the Go helper
            async with hold():
                got = await self._claims.apply_prepare(fetched)
            for ref in refs:
                outcomes[ref.uid] = got.get(ref.uid) or PrepareOutcome(error=_no_answer(ref))

        def fail_all(message: str) -> None:
            for ref in refs:
                outcomes[ref.uid] = PrepareOutcome(error=f"claim {_key(ref)}: {message}")

        def errors() -> dict[str, str]:
            return {uid: o.error for uid, o in outcomes.items()}

        await self._call(PREPARE, count=len(claims), context=context, run=run,
                         fail_all=fail_all, errors=errors)
        return outcomes

    async def unprepare(
        self, claims: Sequence[object], context: grpc.aio.ServicerContext[object, object],
    ) -> dict[str, str]:
        refs, answers = _convert.claim_refs(claims)

        async def run(hold: Callable[[], AbstractAsyncContextManager[None]]) -> None:
            if not refs:
                return
            async with hold():
                got = await self._claims.unprepare(refs)
            for ref in refs:
                answers[ref.uid] = got.get(ref.uid, _no_answer(ref))

        def fail_all(message: str) -> None:
            for ref in refs:
                answers[ref.uid] = f"claim {_key(ref)}: {message}"

        await self._call(UNPREPARE, count=len(claims), context=context, run=run,
                         fail_all=fail_all, errors=lambda: answers)
        return answers

    async def _call(
        self, name: str, *, count: int, context: grpc.aio.ServicerContext[object, object],
        run: Callable[[Callable[[], AbstractAsyncContextManager[None]]], Awaitable[None]],
        fail_all: Callable[[str], None], errors: Callable[[], Mapping[str, str]],
    ) -> None:
        """``run(hold)`` does the call; ``async with hold():`` is its serialized section,
        waiting at most what is left of the call's time."""
        label, name = name, _METHODS[name]
        start = time.monotonic()
        budget = self._budget(context)
        deadline = start + budget

        def hold() -> AbstractAsyncContextManager[None]:
            return self._serializer.hold(max(0.0, deadline - time.monotonic()))

        outcome = "error"
        try:
            try:
                async with asyncio.timeout(budget):
                    await run(hold)
            except TimeoutError:
                fail_all(f"{name} did not finish within {budget:.1f}s on this node "
                         "(the kubelet retries)")
            except CnidraError as exc:
                fail_all(str(exc))
            failed = {uid: e for uid, e in errors().items() if e}
            for uid, error in failed.items():
                log.warning("%s: claim %s: %s", name, uid, error)
            outcome = "error" if failed else "ok"
            log.info("%s: %d claim(s), %d failed, %.1f ms", name, count, len(failed),
                     (time.monotonic() - start) * 1000)
        except Exception as exc:
            log.exception("%s failed unexpectedly", name)
            await context.abort(grpc.StatusCode.INTERNAL, f"{name}: internal error: {exc}")
        finally:
            if self._on_call is not None:
                try:
                    self._on_call(label, outcome, time.monotonic() - start, count)
                except Exception:
                    log.exception("on_call hook failed")


def _key(ref: ClaimRef) -> str:
    return f"{ref.namespace}/{ref.name}"


def _no_answer(ref: ClaimRef) -> str:
    return (f"claim {_key(ref)}: no answer from the claim state "
            "(internal error; the kubelet retries)")


class DRAv1(dra_v1_pb2_grpc.DRAPluginServicer):
    def __init__(self, core: Core) -> None:
        self._core = core

    async def NodePrepareResources(  # noqa: N802 (gRPC method name)
        self, request: dra_v1_pb2.NodePrepareResourcesRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> dra_v1_pb2.NodePrepareResourcesResponse:
        outcomes = await self._core.prepare(request.claims, context)
        return _convert.prepare_response_v1(outcomes)

    async def NodeUnprepareResources(  # noqa: N802
        self, request: dra_v1_pb2.NodeUnprepareResourcesRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> dra_v1_pb2.NodeUnprepareResourcesResponse:
        answers = await self._core.unprepare(request.claims, context)
        return _convert.unprepare_response_v1(answers)


class DRAv1beta1(dra_v1beta1_pb2_grpc.DRAPluginServicer):
    def __init__(self, core: Core) -> None:
        self._core = core

    async def NodePrepareResources(  # noqa: N802
        self, request: dra_v1beta1_pb2.NodePrepareResourcesRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> dra_v1beta1_pb2.NodePrepareResourcesResponse:
        outcomes = await self._core.prepare(request.claims, context)
        return _convert.prepare_response_v1beta1(outcomes)

    async def NodeUnprepareResources(  # noqa: N802
        self, request: dra_v1beta1_pb2.NodeUnprepareResourcesRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> dra_v1beta1_pb2.NodeUnprepareResourcesResponse:
        answers = await self._core.unprepare(request.claims, context)
        return _convert.unprepare_response_v1beta1(answers)


class Registration(pluginregistration_pb2_grpc.RegistrationServicer):
    """GetInfo answers who we are; NotifyRegistrationStatus is recorded (the latest wins)."""

    def __init__(self, *, driver: str, endpoint: str, versions: Sequence[str]) -> None:
        self._info = pluginregistration_pb2.PluginInfo(
            type="DRAPlugin", name=driver, endpoint=endpoint, supported_versions=list(versions),
        )
        self._driver = driver
        self.registered = False
        self.error = ""
        self.notified = asyncio.Event()
        self.calls = 0

    async def GetInfo(  # noqa: N802
        self, request: pluginregistration_pb2.InfoRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pluginregistration_pb2.PluginInfo:
        self.calls += 1
        log.debug("kubelet asked for plugin info (GetInfo)")
        return self._info

    async def NotifyRegistrationStatus(  # noqa: N802
        self, request: pluginregistration_pb2.RegistrationStatus,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pluginregistration_pb2.RegistrationStatusResponse:
        self.registered = request.plugin_registered
        self.error = "" if request.plugin_registered else (request.error or "no reason given")
        if self.registered:
            log.info("kubelet registered DRA plugin %s (endpoint %s)", self._driver,
                     self._info.endpoint)
        else:
            log.error("kubelet rejected DRA plugin %s: %s", self._driver, self.error)
        self.notified.set()
        return pluginregistration_pb2.RegistrationStatusResponse()


class Health(health_v1alpha1_pb2_grpc.DRAResourceHealthServicer):
    """Complete lists: one at once, then one per version change, and the same list again every
    ``resend`` seconds so the kubelet's health-check timeout never expires on a quiet node."""

    def __init__(
        self, source: HealthSource, *, pool: str, timeout_seconds: int, resend: float,
        stopping: asyncio.Event, clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._pool = pool
        self._timeout_seconds = timeout_seconds
        self._resend = resend
        self._stopping = stopping
        self._clock = clock
        self.streams = 0

    def _message(
        self, devices: Sequence[DeviceHealth],
    ) -> health_v1alpha1_pb2.NodeWatchResourcesResponse:
        return _convert.health_response(
            devices, pool=self._pool, now=self._clock(), timeout_seconds=self._timeout_seconds,
        )

    async def NodeWatchResources(  # noqa: N802
        self, request: health_v1alpha1_pb2.NodeWatchResourcesRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> AsyncIterator[health_v1alpha1_pb2.NodeWatchResourcesResponse]:
        self.streams += 1
        log.info("kubelet opened the health stream (%d open)", self.streams)
        try:
            version, devices = self._source.device_health()
            yield self._message(devices)
            while not self._stopping.is_set():
                got = await self._next(version)
                if got is None:
                    break
                version, devices = got
                yield self._message(devices)
        except Exception as exc:
            log.exception("health stream failed")
            await context.abort(grpc.StatusCode.INTERNAL, f"device health unavailable: {exc}")
        finally:
            self.streams -= 1
            log.info("health stream closed (%d open)", self.streams)

    async def _next(self, version: int) -> tuple[int, list[DeviceHealth]] | None:
        """The next list to send, or None once the plugin stops."""
        change = asyncio.ensure_future(self._source.wait_health(version, timeout=self._resend))
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait([change, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (change, stop):
                task.cancel()
            await asyncio.gather(change, stop, return_exceptions=True)
        if stop.done() and not stop.cancelled():
            return None
        return change.result()
