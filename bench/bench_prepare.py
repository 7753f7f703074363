"""NodePrepareResources of one claim, end to end, as the kubelet calls it.

The kubelet stand-in calls the real plugin over its unix socket (gRPC); the plugin's ClaimState
reads the ResourceClaim (and its DeviceClass) from the API server stand-in over loopback HTTP
through ``cnidra.kube``, computes the plan and writes the checkpoint (fsync, rename, dir fsync).
Each run is one Prepare and one Unprepare (so every Prepare does the full work, not the
already-prepared shortcut). For scale, the same run also times the parts alone: an empty
NodePrepareResources (the gRPC round trip) and a bare claim GET.

Then ``--concurrent`` (default 8) different claims are prepared by as many NodePrepareResources
calls at once (as the kubelet does for pods starting together), timed as one round from the
first call to the last answer, and unprepared again. The plugin reads each call's claims before
it takes its serialization lock, so the rounds' reads overlap; only the state phase (plan,
checkpoint write) runs one call at a time. ``--read-delay MS`` adds that much latency to every
API read (a remote API server; with ``--memory`` or over HTTP).

    python -m bench.bench_prepare [-n 200] [--memory] [--concurrent 8] [--read-delay 0]
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
    def __init__(self, claims: list[dict[str, Any]], device_class: dict[str, Any]) -> None:
        self.claims = {(c["metadata"]["namespace"], c["metadata"]["name"]): c for c in claims}
        self.device_class = device_class

    async def get_claim(self, namespace: str, name: str) -> Mapping[str, Any]:
        return copy.deepcopy(self.claims[(namespace, name)])

    async def get_device_class(self, name: str) -> Mapping[str, Any]:
        if name != self.device_class["metadata"]["name"]:
            raise NotFoundError(f"deviceclasses {name} not found", 404)
        return self.device_class


class DelayedReader:
    """Every read ``delay`` seconds slower (an API server further away than loopback)."""

    def __init__(self, inner: ClaimReader, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    async def get_claim(self, namespace: str, name: str) -> Mapping[str, Any]:
        await asyncio.sleep(self.delay)
        return await self.inner.get_claim(namespace, name)

    async def get_device_class(self, name: str) -> Mapping[str, Any]:
        await asyncio.sleep(self.delay)
        return await self.inner.get_device_class(name)


def copies(claim: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """``count`` further claims like ``claim`` (own name and UID, same allocation)."""
    out = []
    for i in range(count):
        other = copy.deepcopy(claim)
        other["metadata"]["name"] = f"{claim['metadata']['name']}-c{i}"
        other["metadata"]["uid"] = f"{claim['metadata']['uid'][:-4]}c{i:03d}"
        out.append(other)
    return out


def ref_of(claim: dict[str, Any]) -> ClaimRef:
    meta = claim["metadata"]
    return ClaimRef(meta["namespace"], meta["name"], meta["uid"])


async def run(n: int, reader: ClaimReader, claim: dict[str, Any], others: list[dict[str, Any]],
              tmp: Path, source: str) -> None:
    meta = claim["metadata"]
    ref = ref_of(claim)
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

        refs = [ref_of(c) for c in others]
        rounds: list[float] = []
        calls: list[float] = []

        async def one(r: ClaimRef) -> None:
            start = time.perf_counter()
            out = await kubelet.prepare([r])
            calls.append((time.perf_counter() - start) * 1000)
            if not out[r.uid].ok:
                raise RuntimeError(out[r.uid].error)

        async def do_round() -> None:
            await asyncio.gather(*(one(r) for r in refs))

        async def undo_round() -> None:
            out = await kubelet.unprepare(refs)
            if any(out.values()):
                raise RuntimeError(out)

        for _ in range(3):  # warm-up
            await do_round()
            await undo_round()
        calls.clear()
        for _ in range(max(1, n // 4)):
            await timed(rounds, do_round)
            await undo_round()

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
    print(f"{len(refs)} concurrent NodePrepareResources (1 claim each), {len(rounds)} rounds")
    row(f"round ({len(refs)} calls, first to last)", rounds)
    row("one call within a round", calls)
    print(f"round p50 / one-claim prepare p50: {pct(rounds, .5) / pct(prepare, .5):.2f} "
          f"(1 = fully overlapped, {len(refs)} = one after the other)")


async def main_async(n: int, memory: bool, concurrent: int, read_delay: float) -> None:
    claim = json.loads((FIXTURES / "resourceclaim-adminaccess.v1.json").read_text())
    device_class = json.loads((FIXTURES / "deviceclass.v1.json").read_text())
    others = copies(claim, concurrent)
    delay = f", +{read_delay * 1000:g} ms per read" if read_delay else ""

    def slowed(reader: ClaimReader) -> ClaimReader:
        return DelayedReader(reader, read_delay) if read_delay else reader

    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        if memory:
            reader = MemoryReader([claim, *others], device_class)
            await run(n, slowed(reader), claim, others, Path(tmp), f"memory{delay}")
            return
        async with ApiServer() as server:
            server.store.load(device_class)
            for item in (claim, *others):
                server.store.load(item)
            kube = await connect(str(server.kubeconfig), field_manager=DRIVER, timeout=5)
            try:
                await run(n, slowed(kube), claim, others, Path(tmp),
                          f"the sim API server over loopback HTTP (cnidra.kube){delay}")
            finally:
                await kube.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="iterations (default: %(default)s)")
    parser.add_argument("--memory", action="store_true", help="read claims from memory")
    parser.add_argument("--concurrent", type=int, default=8,
                        help="calls at once in the concurrent rounds (default: %(default)s)")
    parser.add_argument("--read-delay", type=float, default=0.0, metavar="MS",
                        help="extra latency of every API read, ms (default: %(default)s)")
    args = parser.parse_args()
    asyncio.run(main_async(args.n, args.memory, args.concurrent, args.read_delay / 1000))


if __name__ == "__main__":
    main()
