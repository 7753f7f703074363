"""Daemon restart mid-attach: a real ``cnidra driver`` process SIGKILLed and started again.

The runtime never re-sends RunPodSandbox, and a plugin that is down is simply skipped; on the
driver's reconnect the runtime sends Synchronize with every live sandbox, and the driver must
attach what is missing (FACTS.md s. 4, s. 6). The node, API server, kubelet and runtime
stand-ins are those of ``test_driver_process``; the CNI plugins are the real ones. To kill the
driver while an ADD is in flight, the test holds host-local's own lock on the network's lease
directory (``flock``), so the real macvlan plugin has made the link and waits in IPAM.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from driver.test_driver_process import (
    CLAIMS,
    DRIVER,
    Node,
    allocate,
    eventually,
    net1_addresses,
    node,
    short_dir,
)

from cnidra.model.claims import ClaimRef
from cnidra.sim._node import DriverProcess
from cnidra.sim.runtime import SimPod
from support import ip

pytestmark = pytest.mark.root
__all__ = ["node", "short_dir"]  # fixtures, re-used
NETWORK = "macvlan-eth1"  # the demo claim's network name
V1_ONLY = pytest.mark.parametrize("node", ["v1"], indirect=True)


class Restarts:
    """Restarted driver processes of one node; all stopped at teardown."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.started: list[DriverProcess] = []

    async def kill(self) -> None:
        """SIGKILL the driver process only (not its CNI plugin children: a real crash)."""
        self.node.driver.signal(signal.SIGKILL)
        assert await self.node.driver.wait(10) == -signal.SIGKILL
        await eventually(lambda: not self.node.runtime.plugin_ready,
                         "the runtime to notice the plugin is gone")

    async def restart(self) -> DriverProcess:
        old = self.node.driver
        new = DriverProcess(netns=old.netns, node_name=old.node_name,
                            kubeconfig=old.kubeconfig, paths=old.paths,
                            metrics_port=old.metrics_port, extra_args=old.extra_args)
        self.started.append(new)
        await new.start()
        self.node.driver = new
        return new


@pytest.fixture
async def restarts(node: Node) -> AsyncIterator[Restarts]:
    r = Restarts(node)
    try:
        yield r
    finally:
        for proc in r.started:
            if proc.returncode is None:
                await proc.stop(timeout=10)


async def _prepared(node: Node, pod_uid: str) -> ClaimRef:
    await node.kubelet.wait_registered(DRIVER, timeout=20)
    await node.runtime.wait_for_plugin(timeout=20)
    claim = allocate(node, pod_uid)
    ref = ClaimRef("default", "web-net", claim["metadata"]["uid"])
    outcomes = await node.kubelet.prepare([ref])
    assert outcomes[ref.uid].error == ""
    return ref


def _pod(netns: Callable[[str], str], pod_uid: str) -> tuple[SimPod, str]:
    pod_ns = netns("cnp")
    ip("link", "set", "lo", "up", netns=pod_ns)
    return SimPod(id=uuid.uuid4().hex * 2, uid=pod_uid, name="web", namespace="default",
                  netns=f"/run/netns/{pod_ns}", pid=1), pod_ns


def _lease_dir(node: Node) -> Path:
    return node.paths.ipam_dir / "networks" / NETWORK  # the driver's /var/lib/cni


def _leases(node: Node) -> list[str]:
    d = _lease_dir(node)
    return sorted(p.name for p in d.iterdir() if p.name[0].isdigit()) if d.exists() else []


def _net1_links(pod_ns: str) -> int:
    return sum(1 for link in json.loads(ip("-j", "link", "show", netns=pod_ns))
               if link["ifname"] == "net1")


def _ready_entry(node: Node) -> dict[str, Any] | None:
    got = node.api.store.get(CLAIMS, "web-net", "default", version=node.version)
    for entry in (got.get("status") or {}).get("devices") or []:
        ready = {c["type"]: c["status"] for c in entry.get("conditions") or []}
        if entry.get("networkData") and ready.get("Ready") == "True":
            return dict(entry)
    return None


async def _attached_after_restart(node: Node, restarts: Restarts, pod_ns: str) -> str:
    """Restart; the runtime's Synchronize makes the driver attach net1. Its address."""
    registrations = len(node.runtime.registrations) + 1
    await restarts.restart()
    await node.runtime.wait_for_plugin(timeout=20, registrations=registrations)
    entry = await eventually(lambda: _ready_entry(node), "claim status.devices Ready", node)
    (address,) = net1_addresses(pod_ns)
    assert address.startswith("10.10.1.") and address.endswith("/24")
    assert entry["networkData"]["interfaceName"] == "net1"
    assert entry["networkData"]["ips"] == [address]
    assert _net1_links(pod_ns) == 1
    assert _leases(node) == [address.split("/")[0]]  # exactly one lease: no duplicate
    return address


@V1_ONLY
async def test_a_pod_started_while_the_driver_was_down_is_attached_on_restart(
    node: Node, restarts: Restarts, netns: Callable[[str], str]
) -> None:
    pod_uid = str(uuid.uuid4())
    await _prepared(node, pod_uid)
    await restarts.kill()
    pod, pod_ns = _pod(netns, pod_uid)
    await node.runtime.run_pod_sandbox(pod)  # no plugin: the pod goes on without it
    assert ("RunPodSandbox", pod.id) not in node.runtime.sent
    assert _net1_links(pod_ns) == 0
    await _attached_after_restart(node, restarts, pod_ns)
    assert node.runtime.sent.count(("RunPodSandbox", pod.id)) == 0  # never re-sent
    assert "caught up pod default/web" in node.driver.log_text()
    # the caught-up attachment is an ordinary one: Stop DELs it and releases the lease
    await node.runtime.stop_pod_sandbox(pod)
    assert _net1_links(pod_ns) == 0
    assert _leases(node) == []


def _plugin_pids(container_id: str) -> list[int]:
    """CNI plugin processes (any binary) running for ``container_id``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and f"CNI_CONTAINERID={container_id}".encode() in env:
            found.append(int(entry.name))
    return found


def _host_local_waiting(container_id: str) -> bool:
    for pid in _plugin_pids(container_id):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "host-local":
                return True
        except OSError:
            continue
    return False


@V1_ONLY
async def test_driver_killed_while_an_add_is_in_flight(
    node: Node, restarts: Restarts, netns: Callable[[str], str]
) -> None:
    pod_uid = str(uuid.uuid4())
    await _prepared(node, pod_uid)
    # A roomy hook deadline (the driver learns it from Configure on its next connection), so
    # the kill surely lands in the ADD and not in the rollback of a hook past its deadline.
    node.runtime.request_timeout = 10.0
    await node.runtime.disconnect_plugin("test: a longer hook deadline")
    await node.runtime.wait_for_plugin(timeout=20, registrations=2)
    pod, pod_ns = _pod(netns, pod_uid)
    _lease_dir(node).mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(_lease_dir(node) / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    locked = True
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # host-local's own lock: its ADD now waits
        run = asyncio.create_task(node.runtime.run_pod_sandbox(pod))
        try:
            await eventually(lambda: _host_local_waiting(pod.id), "host-local waiting",
                             node, timeout=8)
            assert _net1_links(pod_ns) == 1  # macvlan made the link before IPAM
            await restarts.kill()
        finally:
            async with asyncio.timeout(10):
                await run  # the connection is gone: the pod goes on without the plugin
        assert pod.id in node.runtime.pods
        fcntl.flock(lock_fd, fcntl.LOCK_UN)  # the orphaned plugins now finish their ADD
        locked = False
        await eventually(lambda: not _plugin_pids(pod.id), "the orphaned ADD to finish")
    finally:
        if locked:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
        os.close(lock_fd)
    left = _leases(node)
    assert len(left) == 1, "the killed ADD took a lease"
    assert _net1_links(pod_ns) == 1
    address = await _attached_after_restart(node, restarts, pod_ns)
    assert address.split("/")[0] != left[0], "the leftover was DELeted, this is a new ADD"
    cache = list(Path(node.paths.state_dir, "cni").rglob(f"*{pod.id}*"))
    assert len(cache) == 1, cache
