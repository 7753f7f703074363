"""The scheduler + claim controller stand-in against the seed demo and the real fixtures."""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sim_scheduler.storekit import DictStore

from cnidra.errors import KubeAPIError
from cnidra.sim.scheduler import (
    Scheduler,
    claim_name,
    explain_claim,
)
from support import SHARED

FIX = SHARED / "fixtures"
DEMO = FIX / "apiserver-1.36/demo"
SEED = FIX / "seed-demo"
KINDS = {"ResourceClaimTemplate": "resourceclaimtemplates", "DeviceClass": "deviceclasses",
         "ResourceClaim": "resourceclaims"}


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def cluster(slices: str = "v1", labelled: bool = True) -> DictStore:
    store = DictStore()
    for name in ("kind-worker", "kind-worker2"):
        store.create("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    labels = {"resource.kubernetes.io/admin-access": "true"} if labelled else {}
    store.create("namespaces", {"metadata": {"name": "default", "labels": labels}})
    for item in json.loads((DEMO / f"resourceslices.{slices}.list.json").read_text())["items"]:
        store.create("resourceslices", item)
    return store


def apply(store: DictStore, path: Path) -> list[dict[str, Any]]:
    deployments = []
    for doc in docs(path):
        if doc["kind"] == "Deployment":
            deployments.append(doc)
        else:
            store.create(KINDS[doc["kind"]], doc)
    return deployments


def add_pods(store: DictStore, deployment: dict[str, Any], replicas: int) -> list[str]:
    rng = random.Random(replicas)
    names = []
    for _ in range(replicas):
        name = f"{deployment['metadata']['name']}-5f7f6b6894-" + "".join(
            rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        pod = copy.deepcopy(deployment["spec"]["template"])
        pod["metadata"].update(name=name, namespace="default")
        store.create("pods", {"apiVersion": "v1", "kind": "Pod", **pod})
        names.append(name)
    return names


def scheduler(store: DictStore) -> Scheduler:
    clock = lambda: dt.datetime(2026, 11, 23, 19, 12, 4, tzinfo=dt.UTC)  # noqa: E731
    return Scheduler(store, rng=random.Random(7), clock=clock)


def strip_ids(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for result in results:
        r = dict(result)
        share = r.pop("shareID")
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                            share)
        out.append(r)
    return out


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_seed_demo_adminaccess_all_on_kind_worker(version: str) -> None:
    store = cluster(slices=version)
    manifests = [SEED / version / "demo.yaml"]
    if version == "v1":
        manifests.insert(0, SEED / "v1/deviceclass.yaml")
    deployments = [d for m in manifests for d in apply(store, m)]
    if not deployments:  # the v1beta1 fixture ships no workload: the talk's Deployment is apps/v1
        deployments = [next(d for d in docs(SEED / "v1/demo.yaml") if d["kind"] == "Deployment")]
    pods = add_pods(store, deployments[0], 15)
    report = scheduler(store).sync()
    assert report.scheduled == {f"default/{p}": "kind-worker" for p in pods}
    assert not report.unschedulable and not report.errors

    summary = json.loads((DEMO / "claims-summary.adminaccess.json").read_text())["rows"][0]
    real = json.loads((DEMO / f"resourceclaim-adminaccess.{version}.json").read_text())
    claims = store.list("resourceclaims")
    assert len(claims) == 15
    share_ids = set()
    for claim in claims:
        allocation = claim["status"]["allocation"]
        share_ids.add(allocation["devices"]["results"][0]["shareID"])
        assert strip_ids(allocation["devices"]["results"]) == strip_ids(summary["results"])
        assert allocation["devices"]["config"] == real["status"]["allocation"]["devices"]["config"]
        assert allocation["nodeSelector"] == summary["allocationNodeSelector"]
        assert allocation["allocationTimestamp"] == "2026-11-23T19:12:04Z"
        assert claim["metadata"]["finalizers"] == ["resource.kubernetes.io/delete-protection"]
        assert claim["metadata"]["annotations"] == real["metadata"]["annotations"]
        owner = claim["metadata"]["ownerReferences"][0]
        pod = store.get("pods", owner["name"], "default")
        assert pod is not None and pod["spec"]["nodeName"] == "kind-worker"
        assert claim["status"]["reservedFor"] == [
            {"resource": "pods", "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}]
        assert pod["status"]["resourceClaimStatuses"] == [
            {"name": "macvlan-eth1-attachment", "resourceClaimName": claim["metadata"]["name"]}]
        assert claim["apiVersion"] == f"resource.k8s.io/{version}"
    assert len(share_ids) == 15


def test_claim_names_follow_the_controller() -> None:
    name = claim_name("demo-application-5f7f6b6894-4g24h", "macvlan-eth1-attachment",
                      random.Random(1))
    assert name.startswith("demo-application-5f7f6b6894-4g24-macvlan-eth1-attachmen")
    assert len(name) == len("demo-application-5f7f6b6894-4g24-macvlan-eth1-attachmenbj9zx")
    short = claim_name("demo-shared-d85ddbb65-8xrws", "macvlan-eth1-shared", random.Random(1))
    assert short.startswith("demo-shared-d85ddbb65-8xrws-macvlan-eth1-shared-")


def test_adminaccess_without_namespace_label_is_the_real_422() -> None:
    expected = json.loads((FIX / "apiserver-1.36/errors/adminaccess-without-namespace-label.json")
                          .read_text())["response"]
    store = cluster(labelled=False)
    store.create("deviceclasses", docs(SEED / "v1/deviceclass.yaml")[0])
    template = next(d for d in docs(SEED / "v1/demo.yaml") if d["kind"] != "Deployment")
    with pytest.raises(KubeAPIError) as info:
        store.create("resourceclaimtemplates", template)
    assert info.value.status == 422
    assert info.value.body == expected
    # created anyway (e.g. label removed later): the claim from it is refused the same way
    store.objects[("resourceclaimtemplates", "default", template["metadata"]["name"])] = template
    deployment = next(d for d in docs(SEED / "v1/demo.yaml") if d["kind"] == "Deployment")
    pods = add_pods(store, deployment, 1)
    report = scheduler(store).sync()
    assert report.errors[f"default/{pods[0]}"].endswith(
        expected["message"].split(" is invalid: ")[1])
    assert store.list("resourceclaims") == []


@pytest.mark.parametrize("replicas", [3, 15])
def test_shared_capacity(replicas: int) -> None:
    store = cluster(labelled=False)
    apply(store, SEED / "v1/deviceclass.yaml")
    deployment = apply(store, SEED / "v1/shared-capacity.yaml")
    assert deployment == []
    deployment_doc = next(d for d in docs(SEED / "v1/demo.yaml") if d["kind"] == "Deployment")
    deployment_doc["metadata"]["name"] = "demo-shared"
    deployment_doc["spec"]["template"]["spec"]["resourceClaims"] = [
        {"name": "macvlan-eth1-shared", "resourceClaimTemplateName": "macvlan-eth1-shared"}]
    add_pods(store, deployment_doc, replicas)
    report = scheduler(store).sync()
    assert set(report.scheduled.values()) == {"kind-worker"} and len(report.scheduled) == replicas
    real = json.loads((DEMO / "resourceclaim-shared-capacity.v1.json").read_text())
    for claim in store.list("resourceclaims"):
        allocation = claim["status"]["allocation"]
        assert strip_ids(allocation["devices"]["results"]) == strip_ids(
            real["status"]["allocation"]["devices"]["results"])
        assert allocation["devices"]["config"] == real["status"]["allocation"]["devices"]["config"]


def test_capacity_exhaustion_makes_later_pods_unschedulable() -> None:
    store = cluster(labelled=False)
    slice_key = next(k for k in store.objects if k[0] == "resourceslices"
                     and k[2].startswith("kind-worker-"))
    eth1 = store.objects[slice_key]["spec"]["devices"][1]
    eth1["capacity"]["attachments"]["value"] = "2"
    apply(store, SEED / "v1/deviceclass.yaml")
    apply(store, SEED / "v1/shared-capacity.yaml")
    deployment = next(d for d in docs(SEED / "v1/demo.yaml") if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["resourceClaims"] = [
        {"name": "net", "resourceClaimTemplateName": "macvlan-eth1-shared"}]
    pods = add_pods(store, deployment, 3)
    sched = scheduler(store)
    report = sched.sync()
    assert len(report.scheduled) == 2
    (late,) = report.unschedulable.values()
    assert late.message == (
        "0/2 nodes are available: 2 cannot allocate all claims. still not schedulable, "
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.")
    notes = [n for attempt in late.per_node["kind-worker"] for n in attempt.notes]
    assert any(n.device == "eth1" and "insufficient capacity attachments: 2 of 2 in use"
               in n.reason for n in notes)
    pod = store.get("pods", late.pod.split("/")[1], "default")
    assert pod is not None and pod["status"]["conditions"][-1]["reason"] == "Unschedulable"

    # deleting a scheduled pod releases its claim and its capacity
    gone = next(p for p in pods if f"default/{p}" in report.scheduled)
    store.delete("pods", gone, "default")
    report = sched.sync()
    assert len(report.released) == 1
    assert report.scheduled == {late.pod: "kind-worker"}
    assert len(store.list("resourceclaims")) == 3 - 1 + 0  # the gone pod's claim was deleted


def test_selector_matching_nothing_and_explanations() -> None:
    store = cluster()
    apply(store, SEED / "v1/deviceclass.yaml")
    store.create("resourceclaims", {
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
        "metadata": {"name": "eth9", "namespace": "default"},
        "spec": {"devices": {"requests": [{"name": "r", "exactly": {
            "deviceClassName": "cni.networking.x-k8s.io",
            "selectors": [
                {"cel": {"expression": 'device.attributes["cni.dra.networking.x-k8s.io"]'
                                       '.name == "eth9"'}}]}}]}}})
    store.create("pods", {"metadata": {"name": "p", "namespace": "default"},
                          "spec": {"resourceClaims": [{"name": "n", "resourceClaimName": "eth9"}]}})
    report = scheduler(store).sync()
    outcome = report.unschedulable["default/p"]
    assert outcome.message.startswith("0/2 nodes are available: 2 cannot allocate all claims.")
    (attempt,) = outcome.per_node["kind-worker2"]
    assert attempt.failure == "request r: 0 of 1 devices available"
    assert [n.device for n in attempt.notes] == ["eth0"]
    assert "claim default/eth9 selector #0" in attempt.notes[0].reason

    claim = store.get("resourceclaims", "eth9", "default")
    assert claim is not None
    explanation = explain_claim(claim, store.list("resourceslices"),
                                store.list("deviceclasses"))
    assert explanation.feasible_nodes == ()
    assert list(explanation.nodes) == ["kind-worker", "kind-worker2"]
    assert any("eth1 for request r: claim default/eth9 selector #0" in line
               for line in explanation.lines())


def test_runtime_error_is_reported_not_raised() -> None:
    store = cluster()
    store.create("deviceclasses", {"metadata": {"name": "broken"}, "spec": {"selectors": [
        {"cel": {"expression": 'device.attributes["cni.dra.networking.x-k8s.io"].speed > 1'}}]}})
    store.create("resourceclaims", {
        "metadata": {"name": "c", "namespace": "default"},
        "spec": {"devices": {"requests": [{"name": "r", "deviceClassName": "broken"}]}}})
    store.create("pods", {"metadata": {"name": "p", "namespace": "default"},
                          "spec": {"resourceClaims": [{"name": "n", "resourceClaimName": "c"}]}})
    outcome = scheduler(store).sync().unschedulable["default/p"]
    assert ("class broken: selector #0: CEL runtime error: no such key: speed"
            in outcome.runtime_errors)


def test_exclusive_device_goes_to_one_claim_at_a_time() -> None:
    store = cluster()
    apply(store, SEED / "v1/deviceclass.yaml")
    for name in ("a", "b"):
        store.create("resourceclaims", {
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"devices": {"requests": [{"name": "r", "exactly": {
                "deviceClassName": "cni.networking.x-k8s.io", "count": 2}}]}}})
        store.create("pods", {"metadata": {"name": f"p{name}", "namespace": "default"},
                              "spec": {"resourceClaims": [
                                  {"name": "n", "resourceClaimName": name}]}})
    report = scheduler(store).sync()
    # kind-worker has eth0 (exclusive) + eth1 (shareable): two devices for one claim only
    assert report.scheduled == {"default/pa": "kind-worker"}
    attempt = report.unschedulable["default/pb"].per_node["kind-worker"][0]
    assert any("already allocated to claim default/a" in n.reason for n in attempt.notes)
    claim = store.get("resourceclaims", "a", "default")
    assert claim is not None
    devices = [r["device"] for r in claim["status"]["allocation"]["devices"]["results"]]
    assert devices == ["eth0", "eth1"]
