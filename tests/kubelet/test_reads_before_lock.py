"""Prepare reads its claims before the serialization lock (as the Go helper): concurrent calls
overlap their API reads but never their state phase, with the mutex and with the rolling-update
flock across two instances over one state directory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from claims.claimkit import DRIVER, make_claim
from kubelet.kubeletkit import MemoryReader, clients, v1_request, v1_unprepare

from cnidra.claims import ClaimState, Fetched
from cnidra.errors import KubeAPIError
from cnidra.kubelet import KubeletPlugin
from cnidra.model.claims import ClaimRef, PrepareOutcome


class BarrierReader(MemoryReader):
    """Each claim read waits until ``parties`` reads have started: it only returns when the
    calls' reads really run at the same time (else it fails the read after ``wait``)."""

    def __init__(self, *claims: dict[str, Any], parties: int, wait: float = 2.0) -> None:
        super().__init__(*claims)
        self.parties = parties
        self.wait = wait
        self.started = 0
        self.all_started = asyncio.Event()

    async def get_claim(self, namespace: str, name: str) -> Mapping[str, Any]:
        self.started += 1
        if self.started >= self.parties:
            self.all_started.set()
        try:
            async with asyncio.timeout(self.wait):
                await self.all_started.wait()
        except TimeoutError as exc:
            raise KubeAPIError(f"only {self.started} of {self.parties} reads started", 0) from exc
        return await super().get_claim(namespace, name)


class Phases:
    """Counts state phases running at once (shared by the instances of one test)."""

    def __init__(self) -> None:
        self.active = 0
        self.max_active = 0
        self.runs = 0


class Recording:
    """A ClaimPreparer that records its state phases around the real ClaimState."""

    def __init__(self, inner: ClaimState, phases: Phases) -> None:
        self.inner = inner
        self.phases = phases

    async def fetch(self, claims: Sequence[ClaimRef]) -> Fetched:
        return await self.inner.fetch(claims)

    async def apply_prepare(self, fetched: Fetched) -> dict[str, PrepareOutcome]:
        self.phases.active += 1
        self.phases.runs += 1
        self.phases.max_active = max(self.phases.max_active, self.phases.active)
        try:
            await asyncio.sleep(0.02)  # a window another state phase would fall into
            return await self.inner.apply_prepare(fetched)
        finally:
            self.phases.active -= 1

    async def unprepare(self, claims: Sequence[ClaimRef]) -> dict[str, str]:
        self.phases.active += 1
        self.phases.max_active = max(self.phases.max_active, self.phases.active)
        try:
            await asyncio.sleep(0.02)
            return await self.inner.unprepare(claims)
        finally:
            self.phases.active -= 1


def claims(n: int) -> list[dict[str, Any]]:
    return [make_claim(uid=f"u{i}", name=f"c{i}", pods=(f"pod-{i}",)) for i in range(n)]


def refs(items: list[dict[str, Any]]) -> list[ClaimRef]:
    return [ClaimRef("default", c["metadata"]["name"], c["metadata"]["uid"]) for c in items]


@pytest.mark.parametrize("rolling", [False, True], ids=["mutex", "flock"])
async def test_concurrent_prepares_overlap_reads_not_state(tmp_path: Path, rolling: bool) -> None:
    items = claims(4)
    reader = BarrierReader(*items, parties=len(items))
    phases = Phases()
    state_dir = str(tmp_path / "state")
    count = 2 if rolling else 1
    plugins = []
    for i in range(count):
        state = await ClaimState.open(state_dir, reader, driver=DRIVER)
        plugins.append(KubeletPlugin(
            driver=DRIVER, node_name="n", claims=Recording(state, phases),
            registry_dir=str(tmp_path / "r"), plugin_dir=str(tmp_path / "p"),
            rolling_update_pod_uid=f"pod-{i}" if rolling else "",
        ))
    async with contextlib.AsyncExitStack() as stack:
        for plugin in plugins:
            await stack.enter_async_context(plugin)
        a = await stack.enter_async_context(clients(plugins[0]))
        b = await stack.enter_async_context(clients(plugins[-1]))
        stubs = [a.v1, b.v1] * 2
        answers = await asyncio.gather(*(
            stub.NodePrepareResources(v1_request(r), timeout=10)
            for stub, r in zip(stubs, refs(items), strict=True)))
        errors = [x.claims[r.uid].error for x, r in zip(answers, refs(items), strict=True)]
        assert errors == ["", "", "", ""]  # every read saw all four reads in flight at once
        assert reader.started == 4
        assert (phases.runs, phases.max_active) == (4, 1)
        # One checkpoint holds all four, whichever instance prepared which.
        fresh = await ClaimState.open(state_dir, reader, driver=DRIVER)
        assert sorted(p.claim_uid for p in fresh.plans_for_pod("pod-3")) == ["u3"]
        assert all(fresh.get(r.uid) is not None for r in refs(items))
        others = [b.v1, a.v1] * 2  # with two instances, each claim via the one not preparing it
        gone = await asyncio.gather(*(
            stub.NodeUnprepareResources(v1_unprepare(r), timeout=10)
            for stub, r in zip(others, refs(items), strict=True)))
        assert [x.claims[r.uid].error for x, r in zip(gone, refs(items), strict=True)] == [""] * 4
        assert phases.max_active == 1
        assert await fresh.refresh() and fresh.all_attachments() == []
        assert all(fresh.get(r.uid) is None for r in refs(items))


async def test_reads_count_against_the_call_time(tmp_path: Path) -> None:
    """Reads that never finish still get a per-claim answer within the call's time."""
    (item,) = claims(1)
    reader = BarrierReader(item, parties=2, wait=30)  # the second read never comes
    state = await ClaimState.open(str(tmp_path / "s"), reader, driver=DRIVER)
    plugin = KubeletPlugin(driver=DRIVER, node_name="n", claims=state,
                           registry_dir=str(tmp_path / "r"), plugin_dir=str(tmp_path / "p"))
    async with plugin, clients(plugin) as c:
        (r,) = refs([item])
        resp = await c.v1.NodePrepareResources(v1_request(r), timeout=1.5)
        assert "did not finish within" in resp.claims[r.uid].error
        assert state.get(r.uid) is None
