"""StoreObjects: the scheduler's whole-object view over the API store (status subresource)."""

from __future__ import annotations

import json
import random

from cnidra.sim._manifests import default_manifests, deployment_pods, load
from cnidra.sim._objects import StoreObjects
from cnidra.sim.apiserver import Store
from cnidra.sim.scheduler import Scheduler
from support import SHARED

SLICES = SHARED / "fixtures" / "apiserver-1.36" / "demo" / "resourceslices.v1.list.json"


def test_status_goes_through_the_status_subresource() -> None:
    objects = StoreObjects(Store())
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
           "spec": {"containers": []}, "status": {"phase": "Pending"}}
    created = objects.create("pods", pod)
    assert created["status"] == {"phase": "Pending"} and created["metadata"]["uid"]
    created["status"]["phase"] = "Running"
    created["spec"]["nodeName"] = "n1"
    created["metadata"]["resourceVersion"] = "1"  # stale on purpose: update re-reads
    updated = objects.update("pods", created)
    assert updated["status"]["phase"] == "Running" and updated["spec"]["nodeName"] == "n1"
    listed = objects.list("pods")
    assert [(p["kind"], p["apiVersion"], p["metadata"]["name"]) for p in listed] == [
        ("Pod", "v1", "p")]
    assert objects.get("pods", "missing", "default") is None
    objects.delete("pods", "p", "default")
    objects.delete("pods", "p", "default")  # already gone: fine
    assert objects.list("pods") == []


def test_the_scheduler_runs_over_a_v1beta1_only_store() -> None:
    store = Store(("v1beta1",))
    objects = StoreObjects(store)
    for name in ("kind-worker", "kind-worker2"):
        objects.create("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    objects.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "default", "labels": {"resource.kubernetes.io/admin-access": "true"}}})
    for item in json.loads(SLICES.read_text())["items"]:
        store.load({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", **item})
    manifests = load(default_manifests("v1beta1"))
    for obj in manifests.objects:
        plural = {"DeviceClass": "deviceclasses",
                  "ResourceClaimTemplate": "resourceclaimtemplates"}[obj["kind"]]
        store.create(f"{plural}.resource.k8s.io", obj, obj["metadata"].get("namespace"),
                     version="v1beta1")
    talk = next(w for w in load(default_manifests("v1")).workloads if w["kind"] == "Deployment")
    for pod in deployment_pods(talk, 3):
        objects.create("pods", pod)
    report = Scheduler(objects, rng=random.Random(1)).sync()
    assert sorted(report.scheduled.values()) == ["kind-worker"] * 3
    claims = objects.list("resourceclaims")
    assert len(claims) == 3
    for claim in claims:
        assert claim["apiVersion"] == "resource.k8s.io/v1beta1"
        assert claim["status"]["allocation"]["devices"]["results"][0]["device"] == "eth1"
        assert claim["status"]["reservedFor"]
    stored = store.get("pods", claims[0]["metadata"]["ownerReferences"][0]["name"], "default")
    assert stored["spec"]["nodeName"] == "kind-worker"
    assert stored["status"]["resourceClaimStatuses"][0]["resourceClaimName"] in {
        c["metadata"]["name"] for c in claims}
