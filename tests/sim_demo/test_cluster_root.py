"""The embedded cluster end to end, for real: real driver processes, real CNI plugins, real
namespaces. One cluster per scenario; pods start in parallel as the kubelet would."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path
from typing import Any

import pytest

from cnidra.sim._cluster import DRIVER, Cluster, ClusterError, RunningPod
from cnidra.sim._demo import DemoOptions, select_manifests
from support import SHARED

pytestmark = pytest.mark.root
SEED = SHARED / "fixtures" / "seed-demo"
SUBNET = ipaddress.ip_network("10.10.1.0/24")


def spec_devices(cluster: Cluster) -> dict[str, dict[str, dict[str, Any]]]:
    """node -> device name -> device (v1 shape, whatever the cluster serves)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for item in cluster.api.store.list("resourceslices.resource.k8s.io",
                                       version=cluster.api.store.served[0])["items"]:
        for dev in item["spec"]["devices"]:
            flat = {"name": dev["name"], **(dev.get("basic") or {}),
                    **{k: v for k, v in dev.items() if k not in ("name", "basic")}}
            out.setdefault(item["spec"]["nodeName"], {})[dev["name"]] = flat
    return out


def check_slices(cluster: Cluster) -> None:
    devices = spec_devices(cluster)
    assert {n: sorted(d) for n, d in devices.items()} == {
        "kind-worker": ["eth0", "eth1"], "kind-worker2": ["eth0"]}
    for node in devices.values():
        for name, dev in node.items():
            assert dev["attributes"]["name"] == {"string": name}


async def check_running(cluster: Cluster, pods: list[RunningPod], *,
                        shared: bool = False) -> dict[str, tuple[str, str]]:
    """Every pod on kind-worker with a distinct net1 in 10.10.1.0/24 that its claim reports."""
    assert len(pods) == 15
    assert {p.node for p in pods} == {"kind-worker"}
    found: dict[str, tuple[str, str]] = {}
    for pod in pods:
        net1 = await cluster.interface(pod, "net1")
        assert net1 is not None, f"{pod.name}: no net1"
        address, mac = net1
        assert ipaddress.ip_interface(address).network == SUBNET
        assert await cluster.interface(pod, "eth0") is not None
        assert await cluster.link_kind(pod, "net1") == ("macvlan", True)
        found[pod.name] = (address, mac)
        (ref,) = pod.claims
        claim = cluster.objects.get("resourceclaims", ref.name, ref.namespace)
        assert claim is not None
        status = claim["status"]
        (result,) = status["allocation"]["devices"]["results"]
        assert (result["driver"], result["pool"], result["device"]) == (DRIVER, "kind-worker",
                                                                      "eth1")
        assert ("adminAccess" in result) is not shared
        assert [r["uid"] for r in status["reservedFor"]] == [pod.uid]
        (entry,) = status["devices"]
        assert (entry["driver"], entry["pool"], entry["device"], entry.get("shareID")) == (
            DRIVER, "kind-worker", "eth1", result.get("shareID"))
        assert entry["networkData"] == {"interfaceName": "net1", "ips": [address],
                                        "hardwareAddress": mac}
        ready = next(c for c in entry["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
        assert entry["data"]["interfaces"][0]["name"] == "net1"
        assert entry["data"]["ips"][0]["address"] == address
    assert len({a for a, _ in found.values()}) == 15
    assert len({m for _, m in found.values()}) == 15
    return found


async def scale_down_and_check(cluster: Cluster, deployment: str) -> None:
    kind_worker = cluster.nodes["kind-worker"]
    leases = (await cluster._leftovers_now()).ipam_leases["kind-worker"]
    assert len(leases) == 15  # the check below can see leases: it must find none after
    result = await cluster.scale(deployment, 0)
    assert len(result.stopped) == 15
    left = await cluster.leftovers()
    assert left.clean, left
    assert not list((kind_worker.paths.ipam_dir / "networks" / "macvlan-eth1").glob("10.*"))
    assert cluster.objects.list("pods") == [] and cluster.objects.list("resourceclaims") == []


async def ping(cluster: Cluster, pods: list[RunningPod], found: dict[str, tuple[str, str]]
               ) -> None:
    target = found[pods[-1].name][0].split("/")[0]
    ok, text = await cluster.ping(pods[0], target)
    assert ok, text


async def after_exit(cluster: Cluster) -> None:
    assert await cluster.residue() == []
    assert not Path(cluster.workdir).exists()


async def test_talk_demo_end_to_end(cni_bin_dirs: list[str]) -> None:
    manifests, _ = select_manifests(DemoOptions())
    cluster = Cluster()
    async with cluster:
        check_slices(cluster)
        assert "allowMultipleAllocations" in spec_devices(cluster)["kind-worker"]["eth1"]
        cluster.apply(manifests)
        scaled = await cluster.scale("demo-application", 15)
        assert not scaled.failed and not scaled.report.unschedulable
        pods = sorted(scaled.started, key=lambda p: p.name)
        found = await check_running(cluster, pods)
        for claim in cluster.objects.list("resourceclaims"):
            assert claim["status"]["reservedFor"] and claim["status"]["allocation"]
        checkpoint = (await cluster._leftovers_now()).checkpoint["kind-worker"]
        assert len(checkpoint) == 15
        await ping(cluster, pods, found)
        await scale_down_and_check(cluster, "demo-application")

        # a claim whose selector matches nothing: the pod stays Pending with the reason
        template = cluster.objects.get("resourceclaimtemplates", "macvlan-eth1-attachment",
                                       "default")
        assert template is not None
        template["metadata"] = {"name": "no-such-nic", "namespace": "default"}
        request = template["spec"]["spec"]["devices"]["requests"][0]["exactly"]
        request["selectors"][0]["cel"]["expression"] = (
            'device.attributes["cni.dra.networking.x-k8s.io"].name == "eth9"')
        cluster.create(template)
        cluster.create({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": "lonely", "namespace": "default"},
                        "spec": {"containers": [{"name": "c", "image": "alpine"}],
                                 "resourceClaims": [{"name": "nic",
                                                     "resourceClaimTemplateName": "no-such-nic"}]}})
        started, failed, report = await cluster.reconcile()
        assert not started and not failed
        outcome = report.unschedulable["default/lonely"]
        assert outcome.message.startswith("0/2 nodes are available: 2 cannot allocate all claims")
        pod = cluster.objects.get("pods", "lonely", "default")
        assert pod is not None
        condition = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
        assert (condition["status"], condition["reason"]) == ("False", "Unschedulable")
        assert condition["message"] == outcome.message
        notes = [n.reason for attempts in outcome.per_node.values() for a in attempts
                 for n in a.notes]
        assert notes and all("is false" in n for n in notes)
        (claim,) = cluster.objects.list("resourceclaims")
        assert "allocation" not in claim["status"]
    await after_exit(cluster)


async def test_v1beta1_cluster(cni_bin_dirs: list[str]) -> None:
    manifests, _ = select_manifests(DemoOptions(api_version="v1beta1"))
    cluster = Cluster(api_version="v1beta1")
    async with cluster:
        assert cluster.api.store.served == ("v1beta1",)
        check_slices(cluster)
        raw = cluster.api.store.list("resourceslices.resource.k8s.io", version="v1beta1")
        assert all("basic" in d for s in raw["items"] for d in s["spec"]["devices"])
        cluster.apply(manifests)
        scaled = await cluster.scale("demo-application", 15)
        assert not scaled.failed
        pods = sorted(scaled.started, key=lambda p: p.name)
        found = await check_running(cluster, pods)
        await ping(cluster, pods, found)
        await scale_down_and_check(cluster, "demo-application")
    await after_exit(cluster)


async def test_consumable_capacity_variant(cni_bin_dirs: list[str]) -> None:
    manifests, _ = select_manifests(DemoOptions(manifests=(
        SEED / "v1" / "deviceclass.yaml", SEED / "v1" / "shared-capacity.yaml")))
    cluster = Cluster(admin_namespaces=())  # no admin-access label needed for sharing
    async with cluster:
        eth1 = spec_devices(cluster)["kind-worker"]["eth1"]
        assert eth1["allowMultipleAllocations"] is True
        assert "attachments" in eth1["capacity"]
        cluster.apply(manifests)
        scaled = await cluster.scale("demo-application", 15)
        assert not scaled.failed and not scaled.report.errors
        pods = sorted(scaled.started, key=lambda p: p.name)
        await check_running(cluster, pods, shared=True)
        shares = set()
        for claim in cluster.objects.list("resourceclaims"):
            (result,) = claim["status"]["allocation"]["devices"]["results"]
            assert result["consumedCapacity"] == {"attachments": "1"}
            shares.add(result["shareID"])
        assert len(shares) == 15
        await scale_down_and_check(cluster, "demo-application")
    await after_exit(cluster)


async def test_a_driver_that_cannot_start_is_one_clear_error(cni_bin_dirs: list[str]) -> None:
    cluster = Cluster(driver_args=("--log-level", "bogus"), start_timeout=20)
    with pytest.raises(ClusterError) as caught:
        async with cluster:
            pass
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("node kind-worker") or message.startswith("node kind-worker2")
    assert "stopped before it registered with the kubelet and the runtime (exited with 2)" in \
        message
    assert message.endswith("last log line: cnidra driver: log-level: 'bogus' is not one of "
                            "debug, info, warning, error")
    assert cluster.saved_logs is not None
    try:
        assert sorted(p.name for p in cluster.saved_logs.iterdir()) == [
            "kind-worker.driver.log", "kind-worker2.driver.log"]
    finally:
        shutil.rmtree(cluster.saved_logs)
    await after_exit(cluster)
