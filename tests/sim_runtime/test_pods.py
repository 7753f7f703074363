"""The stand-in encodes pods as containerd does (checked against the captured vectors)."""

from __future__ import annotations

from nri.nrikit import index

import cnidra.sim.runtime
from cnidra.nri import netns_path, sandbox_from_pod
from cnidra.sim.runtime import SimPod


def test_public_api() -> None:
    assert sorted(cnidra.sim.runtime.__all__) == ["Mode", "NRIRuntime", "PodHookError", "SimPod"]


def test_pod_messages_follow_the_runtimes_shape() -> None:
    captured = next(e for e in index()["files"] if e["file"].startswith("07"))["decoded"]["pod"]
    pod = SimPod(id=captured["id"], uid=captured["uid"], name=captured["name"],
                 namespace=captured["namespace"], netns=captured["netns_path"],
                 ips=tuple(captured["ips"]), pid=captured["pid"])
    run = pod.to_proto()
    assert [n.type for n in run.linux.namespaces] == [
        n["type"] for n in captured["linux_namespaces"]]
    assert netns_path(run) == captured["netns_path"]
    assert run.linux.cgroup_parent == captured["linux_cgroup_parent"]
    assert run.linux.cgroups_path == captured["linux_cgroups_path"]
    labels = dict(captured["labels_wire_order"])
    assert {k: labels[k] for k in run.labels} == dict(run.labels)
    assert run.pid == captured["pid"]
    removed = pod.to_proto(removed=True)
    assert netns_path(removed) is None and removed.pid == 0 and list(removed.ips) == list(pod.ips)
    assert pod.to_proto(stopped=True).pid == 0
    assert sandbox_from_pod(removed).netns is None
