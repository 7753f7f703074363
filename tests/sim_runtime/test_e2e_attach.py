"""Root end to end: runtime stand-in -> NRI -> Attacher -> real CNI in real namespaces."""

from __future__ import annotations

from pathlib import Path

import pytest
from sim_runtime.attachkit import Node

from cnidra.sim.runtime import PodHookError
from support import ip

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
