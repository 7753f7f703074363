"""Publisher against the stand-in API server on loopback (real connect() path)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from cnidra.errors import ConfigError, KubeAPIError
from cnidra.kube import Backoff, KubeClient, WatchEvent, connect
from cnidra.model.devices import Device, Snapshot
from cnidra.publishing import Publisher
from cnidra.sim.apiserver import ApiServer

DRIVER = "cni.dra.networking.x-k8s.io"
NODE = "kind-worker"
SLICES = "resourceslices.resource.k8s.io"
FAST = Backoff(base=0.01, cap=0.05, attempts=6)


def nic(i: int, **kw: Any) -> Device:
    return Device(**{"if_name": f"eth{i}", "index": i + 2, "mac": f"02:00:00:00:{i // 256:02x}:"
                     f"{i % 256:02x}", "mtu": 1500, "oper_state": "up", "virtual": False,
                     "pcie_root": "pci0000:00", **kw})


def snapshot(n: int, **kw: Any) -> Snapshot:
    return Snapshot(tuple(nic(i, **kw) for i in range(n)))


def stored(server: ApiServer, version: str = "v1") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = server.store.list(SLICES, version=version)["items"]
    return items


def generations(server: ApiServer) -> set[int]:
    return {s["spec"]["pool"]["generation"] for s in stored(server)}


@pytest.fixture
async def server() -> AsyncIterator[ApiServer]:
    async with ApiServer(bookmark_interval=0.2) as srv:
        yield srv


@pytest.fixture
async def client(server: ApiServer) -> AsyncIterator[KubeClient]:
    kube = await connect(str(server.kubeconfig), field_manager=DRIVER, timeout=5)
    try:
        yield kube
    finally:
        await kube.close()


def publisher(client: KubeClient, **kw: Any) -> Publisher:
    return Publisher(client, driver=DRIVER, node_name=NODE, backoff=FAST, **kw)


async def test_first_publish_creates_then_unchanged_writes_nothing(
    server: ApiServer, client: KubeClient,
) -> None:
    pub = publisher(client)
    before = pub.published
    assert before is False
    assert await pub.publish(snapshot(300)) is True
    assert pub.published and pub.device_count == 300
    items = stored(server)
    assert len(items) == 3
    assert {s["spec"]["pool"]["resourceSliceCount"] for s in items} == {3}
    assert generations(server) == {1}
    assert sum(len(s["spec"]["devices"]) for s in items) == 300
    rv, sent = server.store.rv, client.requests
    assert await pub.publish(snapshot(300)) is False
    assert server.store.rv == rv  # nothing written
    assert client.requests == sent + 1  # one list
    # a fresh publisher (driver restart) also finds nothing to do
    assert await publisher(client).publish(snapshot(300)) is False
    assert server.store.rv == rv


async def test_a_change_bumps_the_generation_of_every_slice(
    server: ApiServer, client: KubeClient,
) -> None:
    pub = publisher(client)
    await pub.publish(snapshot(200))
    names = sorted(s["metadata"]["name"] for s in stored(server))
    changed = Snapshot((*snapshot(200).devices[:-1], nic(199, mtu=9000)))
    assert await pub.publish(changed) is True
    assert generations(server) == {2} and pub.generation == 2
    assert sorted(s["metadata"]["name"] for s in stored(server)) == names  # updated in place
    mtu = {d["name"]: d["attributes"]["mtu"]["int"]
           for s in stored(server) for d in s["spec"]["devices"]}
    assert mtu["eth199"] == 9000 and mtu["eth0"] == 1500


async def test_shrinking_removes_stale_slices_and_other_pools(
    server: ApiServer, client: KubeClient,
) -> None:
    stray: dict[str, Any] = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
                             "metadata": {"name": "left-over"},
                             "spec": {"driver": DRIVER, "nodeName": NODE,
                                      "pool": {"name": "old-pool", "generation": 7,
                                               "resourceSliceCount": 1},
                                      "devices": []}}
    foreign = copy.deepcopy(stray)
    foreign["metadata"]["name"] = "foreign"
    foreign["spec"]["driver"] = "other.example.com"
    server.store.create(SLICES, stray)
    server.store.create(SLICES, foreign)
    pub = publisher(client)
    await pub.publish(snapshot(300))
    assert await pub.publish(snapshot(10)) is True
    ours = [s for s in stored(server) if s["spec"]["driver"] == DRIVER]
    assert len(ours) == 1 and ours[0]["spec"]["pool"]["name"] == NODE
    assert ours[0]["spec"]["pool"]["resourceSliceCount"] == 1
    assert len(ours[0]["spec"]["devices"]) == 10
    assert [s["metadata"]["name"] for s in stored(server)
            if s["spec"]["driver"] != DRIVER] == ["foreign"]  # never touch another driver's


async def test_a_conflict_is_retried_by_re_reading(server: ApiServer, client: KubeClient) -> None:
    pub = publisher(client)
    await pub.publish(snapshot(5))
    real_list = client.list_slices
    calls = 0

    async def racing_list(**kw: Any) -> tuple[list[dict[str, Any]], str]:
        nonlocal calls
        calls += 1
        result = await real_list(**kw)
        if calls == 1:  # someone else updates the slice after we read it
            obj = server.store.list(SLICES)["items"][0]
            obj["spec"]["devices"][0]["attributes"]["mtu"] = {"int": 1400}
            server.store.update(SLICES, {"apiVersion": "resource.k8s.io/v1",
                                         "kind": "ResourceSlice", **obj})
        return result

    client.list_slices = racing_list  # type: ignore[method-assign]
    assert await pub.publish(snapshot(6)) is True
    assert calls == 2  # the 409 made it read again
    items = stored(server)
    assert len(items[0]["spec"]["devices"]) == 6
    assert items[0]["spec"]["devices"][0]["attributes"]["mtu"] == {"int": 1500}


async def test_v1beta1_only_server_gets_the_v1beta1_shape() -> None:
    async with ApiServer(served=("v1beta1",), git_version="v1.33.1") as srv:
        kube = await connect(str(srv.kubeconfig), field_manager=DRIVER)
        try:
            pub = publisher(kube)
            assert await pub.publish(snapshot(3)) is True  # strict validation: right shape
            items = stored(srv, "v1beta1")
            assert all("basic" in d for d in items[0]["spec"]["devices"])
            first = items[0]["spec"]["devices"][0]["basic"]
            assert first["attributes"]["name"] == {"string": "eth0"}
            assert "allowMultipleAllocations" not in first  # not probed before 1.34
            assert await pub.publish(snapshot(3)) is False
        finally:
            await kube.close()


async def test_capacity_published_when_served(server: ApiServer, client: KubeClient) -> None:
    await publisher(client).publish(snapshot(2))
    dev = stored(server)[0]["spec"]["devices"][1]
    assert dev["allowMultipleAllocations"] is True
    assert dev["capacity"]["attachments"]["value"] == "1k"  # canonical, as the server stores it
    off = publisher(client, consumable_capacity=False)
    assert await off.publish(snapshot(2)) is True  # a semantic change: capacity removed
    assert "capacity" not in stored(server)[0]["spec"]["devices"][1]


async def test_filter_and_bad_filter(server: ApiServer, client: KubeClient) -> None:
    with pytest.raises(ConfigError):
        publisher(client, device_filter="device.attributes[")
    pub = publisher(client, device_filter=f'device.attributes["{DRIVER}"].name == "eth1"')
    await pub.publish(snapshot(4))
    assert [d["name"] for d in stored(server)[0]["spec"]["devices"]] == ["eth1"]
    assert pub.device_count == 1


async def test_owner_reference_to_the_node(server: ApiServer, client: KubeClient) -> None:
    node = server.store.create("nodes", {"apiVersion": "v1", "kind": "Node",
                                         "metadata": {"name": NODE}}).obj
    await publisher(client).publish(snapshot(1))
    refs = stored(server)[0]["metadata"]["ownerReferences"]
    assert refs == [{"apiVersion": "v1", "kind": "Node", "name": NODE,
                     "uid": node["metadata"]["uid"], "controller": True}]


async def test_remove_all(server: ApiServer, client: KubeClient) -> None:
    pub = publisher(client)
    await pub.publish(snapshot(130))
    assert await pub.remove_all() == 2
    assert stored(server) == [] and not pub.published


@contextlib.asynccontextmanager
async def running(coro: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_run_publishes_snapshots_and_republishes_deleted_slices(
    server: ApiServer, client: KubeClient,
) -> None:
    queue: asyncio.Queue[Snapshot] = asyncio.Queue()

    async def snapshots() -> AsyncIterator[Snapshot]:
        while True:
            yield await queue.get()

    pub = publisher(client, resync_interval=60.0)
    queue.put_nowait(snapshot(3))
    async with running(pub.run(snapshots())):
        await until(lambda: pub.published and len(stored(server)) == 1)
        queue.put_nowait(snapshot(4))
        await until(lambda: pub.device_count == 4)
        assert len(stored(server)[0]["spec"]["devices"]) == 4
        writes = pub.writes
        await asyncio.sleep(0.5)  # our own writes do not wake a re-publish
        assert pub.writes == writes
        # the kubelet deletes the driver's slices when it starts: they come back
        server.store.delete_collection(SLICES)
        # the slice is stored before the publisher has read the create's answer: wait for both
        await until(lambda: len(stored(server)) == 1 and generations(server) == {pub.generation})
        assert len(stored(server)[0]["spec"]["devices"]) == 4
        assert pub.generation >= 3


async def test_a_rejected_slice_is_reported_not_retried(server: ApiServer,
                                                        client: KubeClient) -> None:
    pub = Publisher(client, driver="CNI_DRA", node_name=NODE, backoff=FAST)
    with pytest.raises(KubeAPIError) as info:
        await pub.publish(snapshot(1))
    assert info.value.status == 422 and "spec.driver" in str(info.value)
    assert not pub.published and stored(server) == []


async def test_own_writes_whose_event_comes_first_are_not_someone_elses(
    server: ApiServer, client: KubeClient, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue: asyncio.Queue[Snapshot] = asyncio.Queue()

    async def snapshots() -> AsyncIterator[Snapshot]:
        while True:
            yield await queue.get()

    def late(write: Callable[..., Coroutine[Any, Any, dict[str, Any]]]
             ) -> Callable[..., Coroutine[Any, Any, dict[str, Any]]]:
        async def answer_late(*args: Any, **kwargs: Any) -> dict[str, Any]:
            written = await write(*args, **kwargs)
            await asyncio.sleep(0.3)  # the watch event of this write arrives before we return
            return written
        return answer_late

    pub = publisher(client, resync_interval=60.0)
    queue.put_nowait(snapshot(3))
    async with running(pub.run(snapshots())):
        await until(lambda: pub.published and len(stored(server)) == 1)
        with caplog.at_level("INFO", logger="cnidra.publishing"):
            # someone else labels the slice: once that is seen, the slice watch is up
            (mine,) = stored(server)
            mine["metadata"].setdefault("labels", {})["touched"] = "yes"
            server.store.update(SLICES, mine)
            await until(lambda: any("by someone else" in r.getMessage()
                                    for r in caplog.records))
        monkeypatch.setattr(client, "create_slice", late(client.create_slice))
        monkeypatch.setattr(client, "update_slice", late(client.update_slice))
        caplog.clear()
        with caplog.at_level("INFO", logger="cnidra.publishing"):
            queue.put_nowait(snapshot(200))  # one slice updated, one created
            await until(lambda: pub.device_count == 200)
            writes = pub.writes
            await asyncio.sleep(0.5)
        assert len(stored(server)) == 2 and pub.writes == writes
        assert not [r for r in caplog.records if "someone else" in r.getMessage()], [
            r.getMessage() for r in caplog.records]
        # while a write is in flight, an event that none of our writes explains still counts
        pub._dirty.clear()
        pub._writing = 1
        pub._on_event(WatchEvent("MODIFIED", {"metadata": {"name": "x", "resourceVersion": "1"}}))
        assert not pub._dirty.is_set()
        pub._writing = 0
        with caplog.at_level("INFO", logger="cnidra.publishing"):
            pub._settle_held()
        assert pub._dirty.is_set()
        assert any("slice x modified by someone else" in r.getMessage() for r in caplog.records)
