"""NodePrepareResources of one claim, end to end, as the kubelet calls it.

The kubelet stand-in calls the real plugin over its unix socket (gRPC); the plugin's ClaimState
reads the ResourceClaim (and its DeviceClass) from the API server stand-in over loopback HTTP
through ``cnidra.kube``, computes the plan and writes the checkpoint (fsync, rename, dir fsync).
Each run is one Prepare and one Unprepare (so every Prepare does the full work, not the
already-prepared shortcut). For scale, the same run also times the parts alone: an empty
NodePrepareResources (the gRPC round trip) and a bare claim GET.

    python -m bench.bench_prepare [-n 200] [--memory]   (--memory: claims from memory, no HTTP)
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from cnidra.claims import ClaimReader, ClaimState
from cnidra.errors import NotFoundError
from cnidra.kube import connect
from cnidra.kubelet import KubeletPlugin
from cnidra.model.claims import ClaimRef
from cnidra.sim.apiserver import ApiServer
from cnidra.sim.kubelet import KubeletStandIn

DRIVER = "cni.dra.networking.x-k8s.io"
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "apiserver-1.36" / "demo"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(samples: list[float], op: Callable[[], Awaitable[object]]) -> None:
    start = time.perf_counter()
    await op()
    samples.append((time.perf_counter() - start) * 1000)


class MemoryReader:
    def __init__(self, claim: dict[str, Any], device_class: dict[str, Any]) -> None:
        self.claim = claim
        self.device_class = device_class

    async def get_claim(self, namespace: str, name: str) -> Mapping[str, Any]:
        return copy.deepcopy(self.claim)

    async def get_device_class(self, name: str) -> Mapping[str, Any]:
        if name != self.device_class["metadata"]["name"]:
            raise NotFoundError(f"deviceclasses {name} not found", 404)
        return self.device_class


async def run(n: int, reader: ClaimReader, claim: dict[str, Any], tmp: Path, source: str) -> None:
    meta = claim["metadata"]
    ref = ClaimRef(meta["namespace"], meta["name"], meta["uid"])
    state = await ClaimState.open(str(tmp / "state"), reader, driver=DRIVER)
    plugin = KubeletPlugin(driver=DRIVER, node_name="bench", claims=state,
                           registry_dir=str(tmp / "reg"), plugin_dir=str(tmp / "plug"))
    prepare: list[float] = []
    unprepare: list[float] = []
    empty: list[float] = []
    get: list[float] = []
    async with KubeletStandIn(str(tmp / "reg"), node_name="bench") as kubelet, plugin:
        await kubelet.wait_registered(DRIVER, 10)

        async def do_prepare() -> None:
            out = await kubelet.prepare([ref])
            if not out[ref.uid].ok:
                raise RuntimeError(out[ref.uid].error)

        async def do_unprepare() -> None:
            out = await kubelet.unprepare([ref])
            if out[ref.uid]:
                raise RuntimeError(out[ref.uid])

        async def do_empty() -> None:
            await kubelet.prepare([])

        async def do_get() -> None:
            await reader.get_claim(ref.namespace, ref.name)

        for _ in range(5):  # warm-up: connections, caches
            await do_prepare()
            await do_unprepare()
        for _ in range(n):
            await timed(prepare, do_prepare)
            await timed(unprepare, do_unprepare)
            await timed(empty, do_empty)
            await timed(get, do_get)

    def row(label: str, values: list[float]) -> None:
        print(f"{label:34} p50 {pct(values, .5):7.3f} ms  p99 {pct(values, .99):7.3f} ms  "
              f"mean {statistics.fmean(values):7.3f} ms")

    print(f"one claim ({meta['name']}), n={n}, claims read from {source}, interleaved")
    row("NodePrepareResources (end to end)", prepare)
    row("NodeUnprepareResources", unprepare)
    row("empty NodePrepareResources (gRPC)", empty)
    row("claim GET alone", get)
    print(f"prepare p50 / (gRPC + GET) p50: "
          f"{pct(prepare, .5) / (pct(empty, .5) + pct(get, .5)):.2f}")


async def main_async(n: int, memory: bool) -> None:
    claim = json.loads((FIXTURES / "resourceclaim-adminaccess.v1.json").read_text())
    device_class = json.loads((FIXTURES / "deviceclass.v1.json").read_text())
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        if memory:
            await run(n, MemoryReader(claim, device_class), claim, Path(tmp), "memory")
            return
        async with ApiServer() as server:
            server.store.load(device_class)
            server.store.load(claim)
            kube = await connect(str(server.kubeconfig), field_manager=DRIVER, timeout=5)
            try:
                await run(n, kube, claim, Path(tmp),
                          "the sim API server over loopback HTTP (cnidra.kube)")
            finally:
                await kube.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="iterations (default: %(default)s)")
    parser.add_argument("--memory", action="store_true", help="read claims from memory")
    args = parser.parse_args()
    asyncio.run(main_async(args.n, args.memory))


if __name__ == "__main__":
    main()
