"""Device health of real links reaches the kubelet's health stream (issue 8, end to end).

The real Inventory and the real KubeletPlugin run in a child process inside a fresh network
namespace; the test reads NodeWatchResources over the real unix socket with a client generated
from our protos, while it changes a veth in that namespace.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest

from cnidra.kubelet._proto import health_v1alpha1_pb2, health_v1alpha1_pb2_grpc
from support import ip

pytestmark = pytest.mark.root
CHILD = Path(__file__).with_name("health_child.py")
HEALTHY, UNHEALTHY = health_v1alpha1_pb2.HEALTHY, health_v1alpha1_pb2.UNHEALTHY
Response = health_v1alpha1_pb2.NodeWatchResourcesResponse
Stream = grpc.aio.UnaryStreamCall[health_v1alpha1_pb2.NodeWatchResourcesRequest, Response]


def state(msg: Response) -> dict[str, tuple[int, str]]:
    return {d.device.device_name: (d.health, d.message) for d in msg.devices}


async def next_matching(stream: Stream,
                        want: Callable[[dict[str, tuple[int, str]]], bool],
                        timeout: float = 5.0) -> tuple[dict[str, tuple[int, str]], float]:
    """The first message satisfying ``want``, and how long after the call it came."""
    start = time.monotonic()
    async with asyncio.timeout(timeout):
        while True:
            msg = await stream.read()
            assert isinstance(msg, Response), msg
            seen = state(msg)
            if want(seen):
                return seen, time.monotonic() - start


@pytest.fixture
async def health_stream(netns: Callable[[str], str], tmp_path: Path
                        ) -> AsyncIterator[tuple[str, Stream]]:
    ns = netns("cnh")
    ip("link", "add", "hp0", "type", "veth", "peer", "name", "hp1", netns=ns)
    ip("link", "set", "hp0", "up", netns=ns)
    ip("link", "set", "hp1", "up", netns=ns)
    plugin_dir = tmp_path / "plugin"
    child = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, str(CHILD), str(tmp_path / "reg"),
         str(plugin_dir)], stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 20)
        assert line.strip() == "ready", line
        async with grpc.aio.insecure_channel(f"unix:{plugin_dir / 'dra.sock'}") as channel:
            stub = health_v1alpha1_pb2_grpc.DRAResourceHealthStub(channel)
            stream = stub.NodeWatchResources(health_v1alpha1_pb2.NodeWatchResourcesRequest())
            yield ns, stream
            stream.cancel()
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


async def test_link_down_up_and_deleted(
        health_stream: tuple[str, Stream]) -> None:
    ns, stream = health_stream
    first, _ = await next_matching(stream, lambda s: "hp0" in s)
    assert first["hp0"] == (HEALTHY, "hp0: up")
    assert first["hp1"][0] == HEALTHY
    assert "lo" not in first

    ip("link", "set", "hp0", "down", netns=ns)
    seen, took = await next_matching(stream, lambda s: s["hp0"][0] == UNHEALTHY)
    assert seen["hp0"][1].startswith("hp0: "), seen["hp0"]
    assert "down" in seen["hp0"][1], seen["hp0"]
    # its peer lost its carrier: unhealthy too, and the message says why
    seen, _ = await next_matching(stream, lambda s: s["hp1"][0] == UNHEALTHY)
    assert "no carrier" in seen["hp1"][1], seen["hp1"]
    assert took < 2.0  # one coalescing period (0.1 s) and a scan, with slack for a busy machine

    ip("link", "set", "hp0", "up", netns=ns)
    seen, _ = await next_matching(
        stream, lambda s: s["hp0"][0] == HEALTHY and s["hp1"][0] == HEALTHY)
    assert seen["hp0"] == (HEALTHY, "hp0: up")

    ip("link", "del", "hp0", netns=ns)  # takes its peer with it
    seen, _ = await next_matching(stream, lambda s: s.get("hp0", (0, ""))[0] == UNHEALTHY)
    assert "disappeared" in seen["hp0"][1], seen["hp0"]
    # after the retention (1.5 s here) the next scan drops it from the complete list
    seen, _ = await next_matching(stream, lambda s: "hp0" not in s and "hp1" not in s,
                                  timeout=10.0)
