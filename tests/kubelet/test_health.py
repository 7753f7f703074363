"""NodeWatchResources over the real server with a fake HealthSource."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
from kubelet.kubeletkit import NODE, FakeHealth, MemoryReader, running_plugin

from cnidra.kubelet._proto import health_v1alpha1_pb2
from cnidra.model.devices import DeviceHealth, Health

REQ = health_v1alpha1_pb2.NodeWatchResourcesRequest()
START = [DeviceHealth("eth2", Health.UNHEALTHY, "no carrier" * 200, since=100.0),
         DeviceHealth("eth1", Health.HEALTHY, "up")]


def summary(msg: health_v1alpha1_pb2.NodeWatchResourcesResponse) -> list[tuple[str, str, int]]:
    return [(d.device.pool_name, d.device.device_name, d.health) for d in msg.devices]


async def read(stream: object) -> health_v1alpha1_pb2.NodeWatchResourcesResponse:
    msg = await stream.read()  # type: ignore[attr-defined]
    assert isinstance(msg, health_v1alpha1_pb2.NodeWatchResourcesResponse), msg
    return msg


async def until(cond: object, timeout: float = 2.0) -> None:
    assert callable(cond)
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_full_list_then_a_new_list_per_change(tmp_path: Path) -> None:
    source = FakeHealth(START)
    async with running_plugin(tmp_path, MemoryReader(), health=source) as (plugin, _, c):
        assert plugin.supported_versions[-1] == "v1alpha1.DRAResourceHealth"
        stream = c.health.NodeWatchResources(REQ)
        first = await read(stream)
        assert summary(first) == [(NODE, "eth1", 1), (NODE, "eth2", 2)]
        eth2 = first.devices[1]
        assert len(eth2.message) == 1024
        assert abs(eth2.last_updated_time - time.time()) < 5
        assert eth2.health_check_timeout_seconds == 30
        await source.set([DeviceHealth("eth1", Health.UNKNOWN, "state cannot be read")])
        second = await read(stream)
        assert summary(second) == [(NODE, "eth1", 0)]
        assert second.devices[0].message == "state cannot be read"
        stream.cancel()


async def test_two_streams_and_cancellation_cleans_up(tmp_path: Path) -> None:
    source = FakeHealth(START)
    async with running_plugin(tmp_path, MemoryReader(), health=source) as (plugin, _, c):
        a = c.health.NodeWatchResources(REQ)
        b = c.health.NodeWatchResources(REQ)
        assert len((await read(a)).devices) == 2
        assert len((await read(b)).devices) == 2
        await until(lambda: plugin.health_streams == 2 and source.waiters == 2)
        await source.set(START[:1])
        for stream in (a, b):
            msg = await read(stream)
            assert summary(msg) == [(NODE, "eth2", 2)]
        a.cancel()
        await until(lambda: plugin.health_streams == 1 and source.waiters == 1)
        await source.set(START)
        msg = await read(b)
        assert len(msg.devices) == 2
        b.cancel()
        await until(lambda: plugin.health_streams == 0 and source.waiters == 0)


async def test_quiet_list_is_sent_again_within_the_timeout(tmp_path: Path) -> None:
    source = FakeHealth(START)
    async with running_plugin(tmp_path, MemoryReader(), health=source,
                              health_check_timeout=1.5) as (_, _s, c):
        stream = c.health.NodeWatchResources(REQ)
        first = await read(stream)
        started = time.monotonic()
        again = await asyncio.wait_for(read(stream), 2)
        assert 0.3 < time.monotonic() - started < 1.5
        assert summary(again) == summary(first)
        assert again.devices[0].health_check_timeout_seconds == 2
        stream.cancel()


async def test_stop_ends_open_streams_without_waiting_for_grace(tmp_path: Path) -> None:
    source = FakeHealth(START)
    async with running_plugin(tmp_path, MemoryReader(), health=source) as (plugin, _, c):
        stream = c.health.NodeWatchResources(REQ)
        await read(stream)
        started = time.monotonic()
        await plugin.stop(grace=10)
        assert time.monotonic() - started < 2
        assert plugin.health_streams == 0
        assert source.waiters == 0
        rest = await stream.read()
        assert not isinstance(rest, health_v1alpha1_pb2.NodeWatchResourcesResponse)
        assert stream.done()


class BrokenHealth(FakeHealth):
    async def wait_health(
        self, version: int, timeout: float | None = None
    ) -> tuple[int, list[DeviceHealth]]:
        raise RuntimeError("netlink socket closed")


async def test_a_failing_source_ends_the_stream_with_internal(tmp_path: Path) -> None:
    async with running_plugin(tmp_path, MemoryReader(), health=BrokenHealth(START)) as (
        plugin, _, c,
    ):
        stream = c.health.NodeWatchResources(REQ)
        assert len((await read(stream)).devices) == 2
        try:
            await stream.read()
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.INTERNAL
            assert "netlink socket closed" in (exc.details() or "")
        else:
            raise AssertionError("the stream should have failed")
        await until(lambda: plugin.health_streams == 0)
