"""What we publish lets the talk's demos allocate: the scheduler stand-in (CEL selectors,
consumable capacity, adminAccess) over slices built by ``build_slices``."""

from __future__ import annotations

import copy
import datetime as dt
import random
from typing import Any

import pytest
import yaml
from sim_scheduler.storekit import DictStore

from cnidra.model.devices import Device, Snapshot
from cnidra.publishing import build_slices
from cnidra.sim.scheduler import Scheduler
from support import SHARED

DRIVER = "cni.dra.networking.x-k8s.io"
SEED = SHARED / "fixtures/seed-demo"
KINDS = {"ResourceClaimTemplate": "resourceclaimtemplates", "DeviceClass": "deviceclasses"}


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((SEED / name).read_text()) if d]


def nic(name: str, index: int) -> Device:
    return Device(if_name=name, index=index, mac=f"be:a1:b9:1e:4c:1{index}", mtu=1500,
                  oper_state="up", virtual=False, pcie_root="pci0000:00")


def cluster(consumable: bool, version: str = "v1") -> DictStore:
    store = DictStore()
    store.create("namespaces", {"metadata": {"name": "default", "labels": {
        "resource.kubernetes.io/admin-access": "true"}}})
    nodes = {"kind-worker": (nic("eth0", 0), nic("eth1", 1)), "kind-worker2": (nic("eth0", 0),)}
    for node, devices in nodes.items():
        store.create("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
        for i, obj in enumerate(build_slices(
                Snapshot(devices), driver=DRIVER, node_name=node, generation=1,
                api_version=version, consumable_capacity=consumable)):  # type: ignore[arg-type]
            obj["metadata"] = {"name": f"{node}-{i}"}
            store.create("resourceslices", obj)
    return store


def deploy(store: DictStore, manifest: str, replicas: int, claim_template: str = "") -> None:
    deployment = None
    for doc in docs(manifest):
        if doc["kind"] == "Deployment":
            deployment = doc
        else:
            store.create(KINDS[doc["kind"]], doc)
    if deployment is None:
        deployment = next(d for d in docs("v1/demo.yaml") if d["kind"] == "Deployment")
    template = deployment["spec"]["template"]
    if claim_template:
        template["spec"]["resourceClaims"] = [
            {"name": claim_template, "resourceClaimTemplateName": claim_template}]
    for i in range(replicas):
        pod = copy.deepcopy(template)
        pod["metadata"].update(name=f"demo-{i:02d}", namespace="default")
        store.create("pods", {"apiVersion": "v1", "kind": "Pod", **pod})


def schedule(store: DictStore) -> dict[str, str]:
    clock = lambda: dt.datetime(2026, 11, 23, 19, 12, 4, tzinfo=dt.UTC)  # noqa: E731
    scheduled: dict[str, str] = Scheduler(store, rng=random.Random(7), clock=clock).sync(
        ).scheduled
    return scheduled


def test_shared_capacity_demo_allocates_15_times_on_eth1() -> None:
    store = cluster(consumable=True)
    store.create("deviceclasses", docs("v1/deviceclass.yaml")[0])
    deploy(store, "v1/shared-capacity.yaml", 15, "macvlan-eth1-shared")
    scheduled = schedule(store)
    assert len(scheduled) == 15 and set(scheduled.values()) == {"kind-worker"}
    for claim in store.list("resourceclaims"):
        (result,) = claim["status"]["allocation"]["devices"]["results"]
        assert (result["pool"], result["device"]) == ("kind-worker", "eth1")
        assert result["consumedCapacity"] == {"attachments": "1"} and result["shareID"]


def test_without_consumable_capacity_the_shared_demo_gets_one_pod() -> None:
    store = cluster(consumable=False)
    store.create("deviceclasses", docs("v1/deviceclass.yaml")[0])
    deploy(store, "v1/shared-capacity.yaml", 3, "macvlan-eth1-shared")
    assert len(schedule(store)) == 1  # an exclusive device; sharing needs adminAccess then


@pytest.mark.parametrize(("consumable", "version"), [(True, "v1"), (False, "v1"),
                                                     (False, "v1beta1")])
def test_admin_access_demo_allocates_15_times(consumable: bool, version: str) -> None:
    store = cluster(consumable=consumable, version=version)
    if version == "v1":  # the v1beta1 manifest carries its DeviceClass
        store.create("deviceclasses", docs("v1/deviceclass.yaml")[0])
    deploy(store, f"{version}/demo.yaml", 15)
    scheduled = schedule(store)
    assert len(scheduled) == 15 and set(scheduled.values()) == {"kind-worker"}
