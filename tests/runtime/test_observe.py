"""The observing wrappers: outcomes, in-flight drain, per-claim kubelet counts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from prometheus_client import generate_latest
from runtime.fakes import FakeClaims, FakeHandler, Journal

from cnidra.attach import Sandbox
from cnidra.errors import CNIError
from cnidra.model.claims import ClaimRef, PrepareOutcome
from cnidra.model.plan import Attachment
from cnidra.runtime import Metrics, ObservedClaims, ObservedHandler

SANDBOX = Sandbox("sb1", "uid-p", "web", "default", "/run/netns/x")


def sample(metrics: Metrics, line: str) -> float:
    for got in generate_latest(metrics.registry).decode().splitlines():
        if got.startswith(line + " "):
            return float(got.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {line}")


class Failing(FakeHandler):
    async def run_pod_sandbox(self, sandbox: Sandbox) -> list[Attachment]:
        raise CNIError(7, "no master", plugin="macvlan", verb="ADD")


async def test_hook_outcomes_ok_error_and_timeout() -> None:
    metrics = Metrics()
    slow = FakeHandler(Journal())
    slow.release.clear()
    handler = ObservedHandler(slow, metrics)
    task = asyncio.create_task(handler.run_pod_sandbox(SANDBOX))
    await asyncio.sleep(0.01)
    assert handler.in_flight == 1
    assert not await handler.drain(0.05)
    task.cancel()  # the NRI plugin cancels a RunPodSandbox past its deadline
    with pytest.raises(asyncio.CancelledError):
        await task
    assert handler.in_flight == 0 and await handler.drain(0.05)
    with pytest.raises(CNIError):
        await ObservedHandler(Failing(Journal()), metrics).run_pod_sandbox(SANDBOX)
    await handler.stop_pod_sandbox(SANDBOX)
    assert sample(metrics, 'cnidra_nri_hooks_total{event="RunPodSandbox",outcome="timeout"}') == 1
    assert sample(metrics, 'cnidra_nri_hooks_total{event="RunPodSandbox",outcome="error"}') == 1
    assert sample(metrics, 'cnidra_nri_hooks_total{event="StopPodSandbox",outcome="ok"}') == 1


async def test_without_metrics_the_handler_only_counts_in_flight() -> None:
    metrics = Metrics()
    handler = ObservedHandler(FakeHandler(Journal()))
    await handler.run_pod_sandbox(SANDBOX)
    assert "cnidra_nri_hooks_total{" not in generate_latest(metrics.registry).decode()


class Mixed(FakeClaims):
    async def prepare(self, claims: Sequence[ClaimRef]) -> dict[str, PrepareOutcome]:
        return {c.uid: PrepareOutcome(error="bad config") if c.name.startswith("bad")
                else PrepareOutcome() for c in claims}

    async def unprepare(self, claims: Sequence[ClaimRef]) -> dict[str, str]:
        raise CNIError(999, "checkpoint gone")


async def test_kubelet_counts_per_claim_and_latency_by_call_outcome() -> None:
    metrics = Metrics()
    claims = ObservedClaims(Mixed(Journal()), metrics)
    await claims.prepare([ClaimRef("ns", "a", "1"), ClaimRef("ns", "bad", "2"),
                          ClaimRef("ns", "b", "3")])
    await claims.prepare([ClaimRef("ns", "c", "4")])
    with pytest.raises(CNIError):
        await claims.unprepare([ClaimRef("ns", "a", "1")])
    assert sample(metrics, 'cnidra_kubelet_claims_total{call="prepare",outcome="ok"}') == 3
    assert sample(metrics, 'cnidra_kubelet_claims_total{call="prepare",outcome="error"}') == 1
    assert sample(metrics, 'cnidra_kubelet_claims_total{call="unprepare",outcome="error"}') == 1
    assert sample(metrics, 'cnidra_kubelet_call_duration_seconds_count'
                           '{call="prepare",outcome="error"}') == 1
    assert sample(metrics, 'cnidra_kubelet_call_duration_seconds_count'
                           '{call="prepare",outcome="ok"}') == 1
