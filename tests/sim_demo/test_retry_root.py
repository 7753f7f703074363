"""A pod whose sandbox fails is retried with a new sandbox, as the kubelet does, for real.

The first attempt is made slow without touching the driver: the test holds host-local's own
lock file (``<ipam>/networks/<net>/lock``, flock) so the real ADD blocks inside the real IPAM
plugin, the driver's hook guard answers "did not finish within 1.75s" before the runtime's 2 s
deadline, exactly as on a loaded machine. The runtime tears the sandbox down, the lock is let
go once the runtime has sent StopPodSandbox for each failed sandbox (so the tear-down's DEL is
not held up too), and the next sandbox of the pod comes up. Nothing of the failed attempts may
stay behind.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

import pytest

from cnidra.sim._cluster import Cluster, SimNode
from cnidra.sim._demo import DemoOptions, select_manifests
from cnidra.sim.runtime import SimPod

pytestmark = pytest.mark.root
NETWORK = "macvlan-eth1"  # the talk demo's CNI network name


class IpamLock:
    """Holds host-local's lock of one network on one node (its ADDs block meanwhile)."""

    def __init__(self, ipam_dir: Path) -> None:
        self.path = ipam_dir / "networks" / NETWORK / "lock"
        self.fd: int | None = None

    def hold(self) -> None:
        if self.fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644)
            fcntl.flock(self.fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def leases(node: SimNode) -> list[str]:
    return sorted(p.name for p in (node.paths.ipam_dir / "networks" / NETWORK).glob("10.*"))


async def test_failed_sandboxes_are_torn_down_and_retried(cni_bin_dirs: list[str]) -> None:
    manifests, _ = select_manifests(DemoOptions())
    cluster = Cluster()
    failed_attempts: list[SimPod] = []
    lock: IpamLock | None = None
    keep_failing = False
    held_for: set[str] = set()  # sandboxes whose attempt the lock is held for
    watchers: list[asyncio.Task[None]] = []

    async def release_after_stop(node: SimNode, sandbox_id: str) -> None:
        assert lock is not None and node.runtime is not None
        async with asyncio.timeout(20):
            while ("StopPodSandbox", sandbox_id) not in node.runtime.sent:
                await asyncio.sleep(0.01)
        held_for.discard(sandbox_id)
        if not held_for:
            lock.release()

    async def before_sandbox(node: SimNode, sandbox: SimPod, attempt: int) -> None:
        assert lock is not None
        if attempt == 1 or keep_failing:
            lock.hold()
            held_for.add(sandbox.id)
            failed_attempts.append(sandbox)
            watchers.append(asyncio.create_task(release_after_stop(node, sandbox.id)))
        else:
            assert lock.fd is None  # let go when the failed attempt was torn down

    try:
        async with cluster:
            worker = cluster.nodes["kind-worker"]
            assert worker.runtime is not None
            lock = IpamLock(worker.paths.ipam_dir)
            cluster.before_sandbox = before_sandbox
            cluster.apply(manifests)

            scaled = await cluster.scale("demo-application", 3)
            assert not scaled.failed
            assert len(scaled.started) == 3 and len(failed_attempts) == 3
            assert [(r.attempt, r.reason) for r in scaled.retried] == [
                (1, "RunPodSandbox did not finish within 1.75s")] * 3
            assert sorted(r.pod for r in scaled.retried) == sorted(
                f"{p.namespace}/{p.name}" for p in scaled.started)
            # the pods run in new sandboxes; the runtime sent stop + remove for each failed one
            live = {p.sandbox.id for p in scaled.started}
            for dead in failed_attempts:
                assert dead.id not in live and dead.id not in worker.runtime.pods
                assert ("StopPodSandbox", dead.id) in worker.runtime.sent
                assert ("RemovePodSandbox", dead.id) in worker.runtime.sent
            namespaces = set(cluster.fabric.namespaces())
            assert {p.netns for p in scaled.started} <= namespaces
            assert not {cluster.fabric.pods.get(d.id) for d in failed_attempts} - {None}
            for pod in scaled.started:
                assert await cluster.interface(pod, "net1") is not None
            assert len(leases(worker)) == 3  # one per running pod, none of a failed attempt

            # every attempt fails: the pod is Failed, its claim let go, nothing allocated
            keep_failing = True
            cluster.sandbox_attempts = 2
            more = await cluster.scale("demo-application", 4)
            assert not more.started
            (failure,) = more.failed
            assert failure.reason.endswith("did not finish within 1.75s (code 2) "
                                           "(after 2 sandbox attempts)"), failure.reason
            assert [r.attempt for r in more.retried] == [1]
            assert len(leases(worker)) == 3
            obj = cluster.objects.get("pods", failure.pod.split("/")[1], "default")
            assert obj is not None and obj["status"]["phase"] == "Failed"

            result = await cluster.scale("demo-application", 0)
            assert len(result.stopped) == 4
            left = await cluster.leftovers()
            assert left.clean, left
            await asyncio.gather(*watchers)
    finally:
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        if lock is not None:
            lock.release()
    assert await cluster.residue() == []
