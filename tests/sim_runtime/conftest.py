"""Short socket directories (unix socket paths are limited to 108 bytes) and ``node``: the
runtime stand-in driving the real plugin over a real Attacher with real CNI (root)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from attach.kit import DRIVER, Sink
from attach.kit import FakeState as MemState
from sim_runtime.attachkit import Node

from cnidra.attach import Attacher
from cnidra.cni import CNIRuntime
from cnidra.nri import NRIPlugin
from cnidra.sim.runtime import NRIRuntime
from support import unique


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cnnri-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def node(tmp_path: Path, sock_dir: Path, netns: Callable[[str], str], links: list[str],
               cni_bin_dirs: list[str]) -> AsyncIterator[Node]:
    master = unique("cnm", 8)
    subprocess.run(["ip", "link", "add", master, "type", "veth", "peer", "name", master + "p"],
                   check=True)
    links.append(master)
    subprocess.run(["ip", "link", "set", master, "up"], check=True)
    cni = CNIRuntime(cni_bin_dirs, cache_dir=str(tmp_path / "cache"))
    state, sink = MemState(), Sink()
    attacher = Attacher(driver=DRIVER, state=state, cni=cni, status=sink, events=sink)
    runtime = NRIRuntime(str(sock_dir / "nri.sock"))
    hooks: list[tuple[str, str, float]] = []
    plugin = NRIPlugin(attacher, socket_path=runtime.socket_path, reconnect_min=0.05,
                       reconnect_max=0.2, on_hook=lambda *a: hooks.append(a))
    await runtime.start()
    task = asyncio.create_task(plugin.run())
    try:
        await runtime.wait_for_plugin()
        yield Node(runtime, plugin, state, sink, master, tmp_path / "ipam", netns, hooks)
    finally:
        await plugin.stop()
        async with asyncio.timeout(10):
            await task
        await runtime.close()
