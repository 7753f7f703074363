"""StatusWriter (queue, coalescing, retries, give-up) and the list+watch claim cache, against
the stand-in API server."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from typing import Any

import pytest

from cnidra.claims import ClaimState
from cnidra.errors import ConflictError, KubeAPIError, NotFoundError
from cnidra.kube import Backoff, ClaimCache, KubeClient, Reflector, StatusWriter, WatchEvent
from cnidra.kube import connect as kube_connect
from cnidra.model.claims import ClaimRef
from cnidra.sim.apiserver import ApiServer
from support import SHARED

DRIVER = "cni.dra.networking.x-k8s.io"
FIX = SHARED / "fixtures/apiserver-1.36"


def adminaccess_claim() -> dict[str, Any]:
    claim: dict[str, Any] = json.loads((FIX / "demo/resourceclaim-adminaccess.v1.json").read_text())
    return claim


def applied_entry() -> dict[str, Any]:
    request = json.loads((FIX / "status-write/adminaccess-claim.apply-request.json").read_text())
    entry: dict[str, Any] = request["body"]["status"]["devices"][0]
    return entry


FAST = Backoff(base=0.01, cap=0.05)
CLAIMS = "resourceclaims.resource.k8s.io"


class FlakyClient(KubeClient):
    """A real client whose first ``conflicts`` status applies fail with a 409 first."""

    conflicts = 0
    applies: list[int]

    async def apply_claim_status(
        self, namespace: str, name: str, uid: str, devices: Sequence[Mapping[str, Any]],
        *, field_manager: str | None = None, timeout: float | None = None,
    ) -> dict[str, Any]:
        self.applies.append(len(devices))
        if self.conflicts:
            self.conflicts -= 1
            raise ConflictError(f"PATCH {name}: the object has been modified")
        return await super().apply_claim_status(namespace, name, uid, devices,
                                                field_manager=field_manager, timeout=timeout)


@pytest.fixture
async def server() -> AsyncIterator[ApiServer]:
    async with ApiServer(bookmark_interval=0.2) as srv:
        yield srv


@pytest.fixture
async def client(server: ApiServer) -> AsyncIterator[FlakyClient]:
    kube = await kube_connect(str(server.kubeconfig), field_manager=DRIVER, timeout=5)
    kube.__class__ = FlakyClient
    assert isinstance(kube, FlakyClient)
    kube.applies = []
    try:
        yield kube
    finally:
        await kube.close()


@contextlib.asynccontextmanager
async def running(coro: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_writer_applies_and_retries_a_conflict(
    server: ApiServer, client: FlakyClient,
) -> None:
    real = adminaccess_claim()
    name, uid = real["metadata"]["name"], real["metadata"]["uid"]
    server.store.load(real)
    client.conflicts = 2
    retries: list[None] = []
    writer = StatusWriter(client, DRIVER, backoff=FAST, on_retry=lambda: retries.append(None))
    async with running(writer.run()):
        writer.submit("default", name, uid, [applied_entry()])  # returns at once
        assert await writer.drain(5.0)
    assert len(retries) == 2 and client.applies == [1, 1, 1]
    assert writer.written == 1 and writer.failed == 0
    stored = server.store.get(CLAIMS, name, "default")
    assert stored["status"]["devices"][0]["device"] == "eth1"
    assert stored["status"]["devices"][0]["conditions"][0]["status"] == "True"


async def test_latest_submission_wins(server: ApiServer, client: FlakyClient) -> None:
    real = adminaccess_claim()
    name, uid = real["metadata"]["name"], real["metadata"]["uid"]
    server.store.load(real)
    writer = StatusWriter(client, DRIVER, backoff=FAST)
    failed = copy.deepcopy(applied_entry())
    failed["conditions"][0].update(status="False", reason="NetworkInterfaceFailed")
    writer.submit("default", name, uid, [failed])
    writer.submit("default", name, uid, [applied_entry()])  # replaces the first, unwritten
    async with running(writer.run()):
        assert await writer.drain(5.0)
    assert client.applies == [1]
    stored = server.store.get(CLAIMS, name, "default")
    assert stored["status"]["devices"][0]["conditions"][0]["status"] == "True"


async def test_gives_up_on_not_found_and_validation(client: FlakyClient,
                                                    server: ApiServer) -> None:
    real = adminaccess_claim()
    server.store.load(real)
    retries: list[None] = []
    writer = StatusWriter(client, DRIVER, backoff=FAST, on_retry=lambda: retries.append(None))
    wrong = copy.deepcopy(applied_entry())
    wrong["pool"] = "elsewhere"
    async with running(writer.run()):
        writer.submit("default", "gone", "u", [applied_entry()])
        writer.submit("default", real["metadata"]["name"], real["metadata"]["uid"], [wrong])
        assert await writer.drain(5.0)
    assert writer.failed == 2 and writer.written == 0 and not retries
    assert len(client.applies) == 2


async def test_retries_are_capped(server: ApiServer, client: FlakyClient) -> None:
    real = adminaccess_claim()
    server.store.load(real)
    client.conflicts = 100
    writer = StatusWriter(client, DRIVER, backoff=FAST, max_attempts=3)
    async with running(writer.run()):
        writer.submit("default", real["metadata"]["name"], real["metadata"]["uid"], [])
        assert await writer.drain(5.0)
    assert len(client.applies) == 3 and writer.failed == 1


async def test_events_are_sent_off_the_caller_path(server: ApiServer,
                                                   client: FlakyClient) -> None:
    writer = StatusWriter(client, DRIVER, backoff=FAST)
    writer.claim_event("default", "c1", "u1", reason="NetworkInterfaceFailed",
                       message="CNI ADD failed: boom", warning=True)
    assert server.store.list("events", "default")["items"] == []  # nothing sent yet
    async with running(writer.run()):
        assert await writer.drain(5.0)
    events = server.store.list("events", "default")["items"]
    assert [e["reason"] for e in events] == ["NetworkInterfaceFailed"]
    assert events[0]["involvedObject"]["uid"] == "u1" and writer.events_sent == 1


async def test_drain_times_out_when_the_writer_does_not_run(client: FlakyClient) -> None:
    writer = StatusWriter(client, DRIVER)
    writer.submit("default", "c", "u", [])
    assert not await writer.drain(0.05)


async def until(check: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_claim_cache_hit_miss_and_watch(server: ApiServer, client: FlakyClient) -> None:
    real = adminaccess_claim()
    name, uid = real["metadata"]["name"], real["metadata"]["uid"]
    server.store.load(real)
    cache = ClaimCache(client, backoff=FAST, watch_timeout=2)
    async with running(cache.run()):
        assert await cache.wait_synced(5.0)
        sent = client.requests
        claim = await cache.get_claim("default", name)
        assert claim["metadata"]["uid"] == uid and cache.hits == 1
        assert client.requests == sent  # served from memory
        # a UID mismatch (the kubelet asks about a re-created claim) goes to the server
        await cache.get_claim("default", name, uid="other")
        assert cache.misses == 1 and client.requests == sent + 1
        with pytest.raises(NotFoundError):
            await cache.get_claim("default", "unknown")
        assert cache.misses == 2
        # a change arrives through the watch
        other = copy.deepcopy(real)
        other["metadata"].update(name="second", uid="5d6f0a10-0000-4000-8000-000000000001")
        server.store.load(other)
        await until(lambda: cache.peek("default", "second") is not None)
        assert (await cache.get_claim("default", "second"))["metadata"]["name"] == "second"
        assert cache.hits == 2
        server.store.delete(CLAIMS, "second", "default")
        await until(lambda: cache.peek("default", "second") is None)
        # unallocated claims are always read fresh
        pending = copy.deepcopy(real)
        pending["metadata"].update(name="pending", uid="5d6f0a10-0000-4000-8000-000000000002")
        del pending["status"]
        server.store.load(pending)
        await until(lambda: cache.peek("default", "pending") is not None)
        before = cache.misses
        await cache.get_claim("default", "pending")
        assert cache.misses == before + 1


async def test_reflector_relists_on_410_and_backs_off_on_errors() -> None:
    lists: list[int] = []
    seen: list[str] = []
    replaced: list[int] = []
    watches = 0

    async def lister() -> tuple[list[dict[str, Any]], str]:
        lists.append(1)
        if len(lists) == 2:
            raise KubeAPIError("GET: unreachable")  # retried after a backoff
        return [{"metadata": {"name": "a", "resourceVersion": "5"}}], "5"

    async def watcher(rv: str) -> AsyncIterator[WatchEvent]:
        nonlocal watches
        watches += 1
        seen.append(rv)
        if watches == 1:
            yield WatchEvent("MODIFIED", {"metadata": {"name": "a", "resourceVersion": "7"}})
            yield WatchEvent("BOOKMARK", {"metadata": {"resourceVersion": "9"}})
            return  # a normal end: resumed from the bookmark
        if watches == 2:
            raise KubeAPIError("WATCH: too old resource version", 410, "Expired")
        await asyncio.sleep(10)
        yield WatchEvent("ADDED", {})

    events: list[str] = []
    reflector = Reflector(lister, watcher, on_replace=lambda items: replaced.append(len(items)),
                          on_event=lambda e: events.append(e.type), what="test", backoff=FAST)
    async with running(reflector.run()):
        await until(lambda: watches >= 3)
    assert seen == ["5", "9", "5"]
    assert events == ["MODIFIED"]
    assert len(lists) == 3 and replaced == [1, 1]


async def test_claim_state_prepares_through_the_cache(
    server: ApiServer, client: FlakyClient, tmp_path: Any,
) -> None:
    real = adminaccess_claim()
    server.store.load(real)
    server.store.load(json.loads((FIX / "demo/deviceclass.v1.json").read_text()))
    cache = ClaimCache(client, backoff=FAST)
    async with running(cache.run()):
        assert await cache.wait_synced(5.0)
        state = await ClaimState.open(str(tmp_path), cache, driver=DRIVER)
        ref = ClaimRef("default", real["metadata"]["name"], real["metadata"]["uid"])
        outcome = (await state.prepare([ref]))[ref.uid]
        assert outcome.ok, outcome.error
        assert [d.device_name for d in outcome.devices] == ["eth1"]
        assert cache.hits >= 1
        wrong = ClaimRef("default", real["metadata"]["name"], "1" * 8 + ref.uid[8:])
        assert "UID" in (await state.prepare([wrong]))[wrong.uid].error
