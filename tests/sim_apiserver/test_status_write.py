"""Writing status.devices: SSA with two managers, merge/strategic/JSON patch, deallocation.

Replays ``merge-patch-vs-ssa.steps.json`` step by step over HTTP and compares entries and
per-manager ownership with the real server after every step, plus the full captured claims
(``two-managers.*``) and the driver's real apply request (``adminaccess-claim.*``).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sim_apiserver.apikit import (
    DRIVER,
    JSON_PATCH,
    MERGE,
    STRATEGIC,
    V1,
    V1BETA1,
    Client,
    fixture,
    owned_devices,
    running,
    status_fields,
)

from cnidra.sim.apiserver import _ssa

OTHER = "other-manager"
AFTER_SSA = fixture("status-write/two-managers.after-ssa.v1.json")
ETH1, ETH0 = AFTER_SSA["status"]["devices"]
PATH = f"{V1}/namespaces/default/resourceclaims/two-nics/status"
STEPS = fixture("status-write/merge-patch-vs-ssa.steps.json")["steps"]


CLOCK = ["2026-11-23T19:14:38Z"]


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """managedFields are sorted by (operation, time in seconds, manager): the capture ran steps
    1-8 within one second and step 9 a second later, so the test sets the clock the same way."""
    CLOCK[0] = "2026-11-23T19:14:38Z"
    monkeypatch.setattr(_ssa, "now", lambda: CLOCK[0])


def fresh_claim() -> dict[str, Any]:
    claim: dict[str, Any] = copy.deepcopy(AFTER_SSA)
    claim["status"].pop("devices")
    claim["metadata"]["managedFields"] = [mf for mf in claim["metadata"]["managedFields"]
                                          if mf["manager"] not in (DRIVER, OTHER)]
    return claim


def with_message(entry: dict[str, Any], message: str) -> dict[str, Any]:
    out = copy.deepcopy(entry)
    out["conditions"][0]["message"] = message
    return out


def apply_body(devices: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": "two-nics", "namespace": "default"},
            "status": {"devices": devices}}


def summary(claim: dict[str, Any]) -> tuple[list[list[Any]], list[tuple[str, str, list[str]]]]:
    devices = [[d["device"], d.get("shareID"), d["conditions"][0]["message"]]
               for d in claim["status"].get("devices") or []]
    return devices, owned_devices(claim)


def expected(step: dict[str, Any]) -> tuple[list[list[Any]], list[tuple[str, str, list[str]]]]:
    owners = [(m["manager"], m["operation"], sorted(m["ownsStatusDevices"]))
              for m in step["managedFields"]]
    return step["statusDevices"], owners


def same_status_fields(ours: dict[str, Any], real: dict[str, Any]) -> None:
    for manager, operation, _ in owned_devices(real):
        assert status_fields(ours, manager, operation) == status_fields(real, manager, operation)
    assert len(owned_devices(ours)) == len(owned_devices(real))


async def run_step(api: Client, index: int) -> dict[str, Any]:
    if index == 0:
        assert (await api.apply(PATH, apply_body([ETH1]))).status == 200
        reply = await api.apply(PATH, apply_body([ETH0]), OTHER)
    elif index in (1, 3):
        patch = {"status": {"devices": [with_message(ETH1, "updated via merge patch")]}}
        reply = await api.patch(PATH, patch, MERGE if index == 1 else STRATEGIC,
                                fieldManager=DRIVER)
    elif index in (2, 4):
        reply = await api.apply(PATH, apply_body([ETH0]), OTHER)
    elif index == 5:
        current = (await api.get(PATH)).body
        at = next(i for i, d in enumerate(current["status"]["devices"]) if d["device"] == "eth1")
        ops = [{"op": "test", "path": "/metadata/resourceVersion",
                "value": current["metadata"]["resourceVersion"]},
               {"op": "replace", "path": f"/status/devices/{at}",
                "value": with_message(ETH1, "added via JSON patch")}]
        reply = await api.patch(PATH, ops, JSON_PATCH, fieldManager=DRIVER)
    elif index in (6, 8):
        if index == 8:
            CLOCK[0] = "2026-11-23T19:14:39Z"
        reply = await api.apply(PATH, apply_body([ETH1]))
    else:
        reply = await api.apply(PATH, apply_body([]))
    assert reply.status == 200, reply.body
    claim: dict[str, Any] = reply.body
    return claim


async def test_two_managers_step_by_step() -> None:
    async with running() as api:
        api.server.store.load(fresh_claim())
        for index, step in enumerate(STEPS):
            claim = await run_step(api, index)
            assert summary(claim) == expected(step), step["step"]
            assert summary((await api.get(PATH)).body) == expected(step)
            if index == 0:
                same_status_fields(claim, AFTER_SSA)
                assert claim["status"]["devices"] == AFTER_SSA["status"]["devices"]
            if index == 1:
                real = fixture("status-write/two-managers.after-merge-patch.v1.json")
                same_status_fields(claim, real)
                assert claim["status"]["devices"] == real["status"]["devices"]
            if index == 7:
                real = fixture("status-write/two-managers.after-driver-applies-empty-list.v1.json")
                same_status_fields(claim, real)
                assert claim["status"]["devices"] == real["status"]["devices"]
        # the pod goes away: the controller removes reservedFor and the allocation
        current = (await api.get(PATH)).body
        current["status"] = {k: v for k, v in current["status"].items()
                             if k not in ("allocation", "reservedFor")}
        reply = await api.put(PATH, current, fieldManager="kube-controller-manager")
        assert reply.status == 200, reply.body
        real = fixture("status-write/two-managers.after-pod-deleted-deallocated.v1.json")
        assert reply.body["status"] == real["status"] == {}
        same_status_fields(reply.body, real)


async def test_merge_patch_replaces_the_whole_list() -> None:
    async with running() as api:
        api.server.store.load(fresh_claim())
        await run_step(api, 0)
        claim = await run_step(api, 1)
        assert [d["device"] for d in claim["status"]["devices"]] == ["eth1"]
        assert OTHER not in {m for m, _, _ in owned_devices(claim)}


@pytest.mark.parametrize("name", ["adminaccess-claim", "shared-claim"])
async def test_the_drivers_real_apply_request(name: str) -> None:
    request = fixture(f"status-write/{name}.apply-request.json")
    real = fixture(f"status-write/{name}.after-apply.v1.json")
    before = copy.deepcopy(real)
    before["status"].pop("devices")
    before["metadata"]["managedFields"] = [m for m in real["metadata"]["managedFields"]
                                           if m["manager"] != DRIVER]
    path, _, query = request["path"].partition("?")
    params = dict(p.split("=", 1) for p in query.split("&"))
    async with running() as api:
        api.server.store.load(before)
        reply = await api.request(request["method"], path, request["body"],
                                  content_type=request["headers"]["Content-Type"], **params)
        assert reply.status == 200, reply.body
        assert reply.body["status"] == real["status"]
        assert status_fields(reply.body, DRIVER, "Apply") == status_fields(real, DRIVER, "Apply")
        if name == "adminaccess-claim":
            response = fixture("status-write/adminaccess-claim.apply-response.json")
            assert response["httpStatus"] == 200
            assert reply.body["status"] == response["body"]["status"]
            beta = fixture("status-write/adminaccess-claim.after-apply.v1beta1.json")
            read = await api.get(path.replace(V1, V1BETA1))
            assert read.body["spec"] == beta["spec"]
            assert read.body["status"] == beta["status"]
            assert read.body["apiVersion"] == "resource.k8s.io/v1beta1"
        # applying the same again changes nothing, not even the resourceVersion
        again = await api.request(request["method"], path, request["body"],
                                  content_type=request["headers"]["Content-Type"], **params)
        assert again.body["metadata"]["resourceVersion"] == reply.body["metadata"][
            "resourceVersion"]
