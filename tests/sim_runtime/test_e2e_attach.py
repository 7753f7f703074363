"""Root end to end: runtime stand-in -> NRI -> Attacher -> real CNI in real namespaces."""

from __future__ import annotations

from pathlib import Path

import pytest
from sim_runtime.attachkit import Node

from cnidra.sim._fabric import Fabric, NodeSpec
from cnidra.sim.runtime import PodHookError, SimPod
from support import ip, unique

pytestmark = pytest.mark.root


async def test_run_attaches_and_stop_releases(node: Node) -> None:
    net = node.add_plan("c1", "pod-1", "net1", "10.79.1.0/24")
    pod = node.pod("pod-1")
    await node.runtime.run_pod_sandbox(pod)
    ns = Path(pod.netns or "").name
    assert "inet 10.79.1." in ip("-o", "addr", "show", "net1", netns=ns)
    assert len(node.leases(net)) == 1
    assert node.sink.status[-1][1][0]["conditions"][0]["status"] == "True"
    await node.runtime.stop_pod_sandbox(pod)
    assert "net1" not in ip("-o", "link", netns=ns)
    assert node.leases(net) == []
    await node.runtime.remove_pod_sandbox(pod)
    assert node.state.attachments == {}
    assert [(e, o) for e, o, _ in node.hooks[1:]] == [
        ("RunPodSandbox", "ok"), ("StopPodSandbox", "ok"), ("RemovePodSandbox", "ok")]
    assert max(s for _, _, s in node.hooks) < 1.0


async def test_a_failing_second_interface_rolls_back_and_fails_the_pod(node: Node) -> None:
    good = node.add_plan("a", "pod-2", "net1", "10.79.2.0/24")
    bad = node.add_plan("b", "pod-2", "net2", "10.79.3.0/24", master="nosuchmaster0")
    pod = node.pod("pod-2")
    with pytest.raises(PodHookError) as exc:
        await node.runtime.run_pod_sandbox(pod)
    assert "claim default/claim-b: net2" in exc.value.message
    assert "macvlan ADD: Link not found" in exc.value.message
    links = ip("-o", "link", netns=Path(pod.netns or "").name)
    assert "net1" not in links and "net2" not in links
    assert node.leases(good) == [] and node.leases(bad) == []
    assert node.state.attachments == {}
    assert node.runtime.plugin_ready


async def test_resync_after_a_runtime_restart_detaches_dead_sandboxes(node: Node) -> None:
    net = node.add_plan("c3", "pod-3", "net1", "10.79.4.0/24")
    pod = node.pod("pod-3")
    await node.runtime.run_pod_sandbox(pod)
    assert len(node.leases(net)) == 1
    node.runtime.pods.clear()  # the sandbox died while the runtime was down
    await node.runtime.restart()
    await node.runtime.wait_for_plugin(registrations=2)
    assert node.state.attachments == {}
    assert node.leases(net) == []
    assert "net1" not in ip("-o", "link", netns=Path(pod.netns or "").name)


async def test_a_fabric_pod_keeps_its_primary_eth0(node: Node) -> None:
    """The pod netns comes from the sim's fabric (with the runtime's primary eth0)."""
    fabric = Fabric()
    try:
        await fabric.create([NodeSpec("node-a")])
        net = node.add_plan("c4", "pod-4", "net1", "10.79.5.0/24")
        sandbox_id = unique("sb", 12)
        netns = await fabric.add_pod("node-a", sandbox_id, 0)
        pod = SimPod(id=sandbox_id, uid="pod-4", name="pod-4", namespace="default",
                     netns=netns, ips=("10.244.0.2",))
        await node.runtime.run_pod_sandbox(pod)
        ns = Path(netns).name
        assert "inet 10.79.5." in ip("-o", "addr", "show", "net1", netns=ns)
        assert "inet 10.244.0.2/32" in ip("-o", "addr", "show", "eth0", netns=ns)
        await node.runtime.stop_pod_sandbox(pod)
        links = ip("-o", "link", netns=ns)
        assert "net1" not in links and "eth0" in links
        await fabric.remove_pod(sandbox_id)
        await node.runtime.remove_pod_sandbox(pod)
        assert node.leases(net) == [] and node.state.attachments == {}
    finally:
        await fabric.destroy()
