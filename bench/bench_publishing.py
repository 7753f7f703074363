"""1024 synthetic interfaces from snapshot to written ResourceSlices, against the stand-in API
server on loopback (real HTTP through ``connect()``, the stand-in's validation included).

Per round, on a fresh pool: ``create`` (first publish: build, list, 8 POSTs), ``no-op``
(unchanged snapshot: build, list, compare, no write) and ``change`` (one MTU changed: generation
bump, 8 PUTs). ``build`` is the pure builder alone. Target: create and change <= 1 s.

    python -m bench.bench_publishing [-n 5] [--devices 1024] [--api v1|v1beta1]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from collections.abc import Awaitable, Callable

from cnidra.kube import connect
from cnidra.model.devices import Device, Snapshot
from cnidra.publishing import Publisher, build_slices
from cnidra.sim.apiserver import ApiServer

DRIVER = "cni.dra.networking.x-k8s.io"
NODE = "bench-node"
TARGET_S = 1.0


def snapshot(n: int, mtu_of_last: int = 1500) -> Snapshot:
    devices = []
    for i in range(n):
        devices.append(Device(
            if_name=f"ens{i}", index=i + 2, mac=f"02:00:00:00:{i // 256:02x}:{i % 256:02x}",
            mtu=mtu_of_last if i == n - 1 else 1500, oper_state="up", admin_up=True,
            carrier=True, virtual=False, encapsulation="ether", driver="mlx5_core",
            pci_address=f"0000:{i // 32:02x}:{i % 32:02x}.0", pci_vendor="0x15b3",
            pci_device="0x101d", pcie_root=f"pci0000:{i // 64:02x}", numa_node=i % 2,
            speed_mbps=100000, ipv4=(f"10.{i // 256}.{i % 256}.1/24",)))
    return Snapshot(tuple(devices))


async def timed(samples: list[float], op: Callable[[], Awaitable[object]]) -> object:
    start = time.perf_counter()
    result = await op()
    samples.append(time.perf_counter() - start)
    return result


async def bench(rounds: int, n: int, api: str) -> bool:
    served = ("v1", "v1beta1") if api == "v1" else ("v1beta1",)
    git_version = "v1.36.2" if api == "v1" else "v1.33.4"
    same, changed = snapshot(n), snapshot(n, mtu_of_last=9000)
    build: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter()
        build_slices(same, driver=DRIVER, node_name=NODE, generation=1, api_version="v1",
                     consumable_capacity=True)
        build.append(time.perf_counter() - start)
    create: list[float] = []
    noop: list[float] = []
    change: list[float] = []
    async with ApiServer(served=served, git_version=git_version) as server:
        client = await connect(str(server.kubeconfig), field_manager=DRIVER)
        try:
            pub = Publisher(client, driver=DRIVER, node_name=NODE, owner_reference=False)
            for _ in range(rounds):
                await pub.remove_all()
                assert await timed(create, lambda: pub.publish(same)) is True
                assert await timed(noop, lambda: pub.publish(same)) is False
                assert await timed(change, lambda: pub.publish(changed)) is True
            slices = len(server.store.list("resourceslices.resource.k8s.io",
                                           version=client.api.version)["items"])
        finally:
            await client.close()

    def row(label: str, samples: list[float]) -> None:
        print(f"{label:7} median {statistics.median(samples) * 1000:8.1f} ms   "
              f"max {max(samples) * 1000:8.1f} ms")

    print(f"{n} devices -> {slices} ResourceSlices, resource.k8s.io/{api}, "
          f"consumable capacity {'on' if api == 'v1' else 'off'}, rounds={rounds}")
    row("build", build)
    row("create", create)
    row("no-op", noop)
    row("change", change)
    ok = max(create + change) <= TARGET_S
    print(f"target: snapshot -> written slices <= {TARGET_S:g} s: {'met' if ok else 'MISSED'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=5, help="rounds (default: %(default)s)")
    parser.add_argument("--devices", type=int, default=1024)
    parser.add_argument("--api", default="v1", choices=["v1", "v1beta1"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(bench(args.n, args.devices, args.api))


if __name__ == "__main__":
    main()
