"""status.devices validation against the 1.36 capture (``status-errors.json``).

Every case is rebuilt from its description and sent over HTTP to a stand-in holding the
captured claims; status, reason, message and causes must be the real server's.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sim_apiserver.apikit import (
    DRIVER,
    MERGE,
    V1,
    V1BETA1,
    Client,
    cases,
    fixture,
    running,
)

CASES = {c["case"].split(":")[0]: c for c in cases("status-errors.json")}
SHARED = fixture("demo/resourceclaim-shared-capacity.v1.json")
ADMIN = fixture("demo/resourceclaim-adminaccess.v1.json")
REQUEST = fixture("status-write/shared-claim.apply-request.json")["body"]
ENTRY: dict[str, Any] = REQUEST["status"]["devices"][0]
SHARE = ENTRY["shareID"]
CLAIMS = f"{V1}/namespaces/default/resourceclaims"


def claim_path(name: str = SHARED["metadata"]["name"], prefix: str = V1) -> str:
    return f"{prefix}/namespaces/default/resourceclaims/{name}/status"


def body(devices: list[Any], name: str = SHARED["metadata"]["name"],
         api_version: str = "resource.k8s.io/v1") -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": "ResourceClaim",
            "metadata": {"name": name, "namespace": "default"}, "status": {"devices": devices}}


def entry(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(ENTRY)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def network(**changes: Any) -> dict[str, Any]:
    return entry(networkData={**ENTRY["networkData"], **changes})


def condition(**changes: Any) -> dict[str, Any]:
    cond = {**ENTRY["conditions"][0], **changes}
    return entry(conditions=[{k: v for k, v in cond.items() if v is not None}])


def compact(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def padded(size: int) -> dict[str, Any]:
    data = {**ENTRY["data"], "pad": ""}
    data["pad"] = "x" * (size - compact(data))
    assert compact(data) == size
    return data


Devices = Callable[[], list[dict[str, Any]]]
APPLY: dict[str, Devices] = {
    "a": lambda: [entry(), entry(device="eth0", shareID=None)],
    "a2": lambda: [entry(pool="kind-worker2")],
    "b1": lambda: [network(ips=["10.10.1.016/24"])],
    "b2": lambda: [network(ips=["10.10.1.0/24"])],
    "b4": lambda: [network(ips=["10.10.1.16/24", "10.10.1.16/24"])],
    "b5": lambda: [network(hardwareAddress="6E:9C:2B:41:D0:17")],
    "b6": lambda: [network(interfaceName="n" * 257)],
    "c": lambda: [network(ips=[f"10.10.1.{i}/24" for i in range(16, 33)])],
    "c2": lambda: [network(ips=[f"10.10.1.{i}/24" for i in range(16, 32)])],
    "d": lambda: [entry(data=padded(10489))],
    "d2": lambda: [entry(data=padded(10240))],
    "d3": lambda: [entry(data=padded(10241))],
    "d4": lambda: [entry(data=[1, 2, 3])],
    "d5": lambda: [entry(data="a string")],
    "e": lambda: [condition(reason=None)],
    "e2": lambda: [condition(lastTransitionTime=None)],
    "e3": lambda: [condition(reason="network interface ready")],
    "e4": lambda: [condition(status="Yes")],
    "e5": lambda: [entry(conditions=[{**ENTRY["conditions"][0], "type": f"T{i}"}
                                     for i in range(9)])],
    "f": lambda: [entry(shareID="3c413016-d010-40c8-887a-99eb65b73b10")],
    "f2": lambda: [entry(shareID=None)],
    "f3": lambda: [entry(shareID="not-a-uuid")],
    "f4": lambda: [entry(shareID=SHARE.upper())],
    "x1": lambda: [entry(driver="other.example.com")],
    "x2": lambda: [entry(), entry()],
}
IPS = {"10.10.1.16": "b3-cidr", "2001:DB8::10/64": "b3-upper", "2001:db8:0::10/64": "b3-long",
       "2001:db8::10/64": "b3-ok", "::ffff:10.10.1.16/120": "b3-mapped"}
B3 = [c for c in cases("status-errors.json") if c["case"].startswith("b3:")]


def check(reply: Any, case: dict[str, Any], name: str = SHARED["metadata"]["name"]) -> None:
    assert reply.status == case["httpStatus"], reply.body
    if reply.status >= 300:
        expected = case["message"]
        for real in ("demo-shared-d85ddbb65-9mb7q-macvlan-eth1-shared-8wlds",):
            expected = expected.replace(real, name)
        assert reply.message == expected
        assert reply.body.get("reason") == case["reason"]
        if "causes" in case:
            assert reply.body["details"]["causes"] == case["causes"]


async def loaded() -> Any:
    return running()


def load(api: Client) -> None:
    for claim in (SHARED, ADMIN):
        api.server.store.load(claim)


@pytest.mark.parametrize("case_id", list(APPLY))
async def test_apply_case(case_id: str) -> None:
    async with running() as api:
        load(api)
        reply = await api.apply(claim_path(), body(APPLY[case_id]()))
        check(reply, CASES[case_id])
        after = await api.get(claim_path())
        assert bool(after.body["status"].get("devices")) is (reply.status == 200)


@pytest.mark.parametrize("case", B3, ids=[c["request"] for c in B3])
async def test_apply_ip_forms(case: dict[str, Any]) -> None:
    ip = case["request"].split("= [", 1)[1].strip('"]')
    async with running() as api:
        load(api)
        check(await api.apply(claim_path(), body([network(ips=[ip])])), case)


async def test_unallocated_claim() -> None:
    claim = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
             "metadata": {"name": "unallocated"}, "spec": SHARED["spec"]}
    async with running() as api:
        assert (await api.post(CLAIMS, claim)).status == 201
        reply = await api.apply(claim_path("unallocated"),
                                body([entry(shareID=None)], name="unallocated"))
        check(reply, CASES["a3"], "unallocated")


async def test_admin_access_claim_needs_its_share_id() -> None:
    name = ADMIN["metadata"]["name"]
    async with running() as api:
        load(api)
        reply = await api.apply(claim_path(name), body([entry(shareID=None)], name=name))
        check(reply, CASES["f5"], name)


async def test_duplicate_through_merge_patch() -> None:
    async with running() as api:
        load(api)
        reply = await api.patch(claim_path(), {"status": {"devices": [entry(), entry()]}}, MERGE,
                                fieldManager=DRIVER)
        check(reply, CASES["x3"])


async def test_other_manager_without_force_conflicts() -> None:
    async with running() as api:
        load(api)
        assert (await api.apply(claim_path(), body([entry()]))).status == 200
        theirs = network(interfaceName="net9")
        theirs["data"] = {**ENTRY["data"], "interfaces": [
            {**ENTRY["data"]["interfaces"][0], "name": "net9"}]}
        reply = await api.apply(claim_path(), body([theirs]), "someone-else", force=False)
        check(reply, CASES["x4"])
        forced = await api.apply(claim_path(), body([theirs]), "someone-else", force=True)
        assert forced.status == 200
        assert forced.body["status"]["devices"][0]["networkData"]["interfaceName"] == "net9"


@pytest.mark.parametrize("content_type", ["application/apply-patch+yaml", MERGE])
async def test_status_on_the_main_resource_is_ignored(content_type: str) -> None:
    async with running() as api:
        load(api)
        path = claim_path().removesuffix("/status")
        reply = await api.patch(path, body([entry()]) if content_type != MERGE else
                                {"status": {"devices": [entry()]}}, content_type,
                                fieldManager=DRIVER, force="true")
        check(reply, CASES["x5" if content_type != MERGE else "x5b"])
        assert "devices" not in (await api.get(path)).body["status"]


async def test_v1beta1_status_endpoint() -> None:
    async with running() as api:
        load(api)
        reply = await api.apply(claim_path(prefix=V1BETA1),
                                body([entry()], api_version="resource.k8s.io/v1beta1"))
        check(reply, CASES["x6"])
        assert reply.body["apiVersion"] == "resource.k8s.io/v1beta1"
        assert reply.body["status"]["devices"] == [entry()]
        assert any("deprecated" in w for w in reply.warnings)


async def test_v1beta1_body_to_the_v1_url() -> None:
    async with running() as api:
        load(api)
        beta = body([entry()], api_version="resource.k8s.io/v1beta1")
        reply = await api.apply(claim_path(), beta)
        check(reply, CASES["x7"])


async def test_apply_without_field_manager() -> None:
    async with running() as api:
        load(api)
        reply = await api.patch(claim_path(), body([entry()]), "application/apply-patch+yaml")
        check(reply, CASES["x8"])


def _pretty_put(claim: dict[str, Any], data: dict[str, Any]) -> bytes:
    marker = str(uuid.uuid4())
    claim = copy.deepcopy(claim)
    claim["status"]["devices"] = [entry(data=marker)]
    raw = json.dumps(claim, separators=(",", ":"))
    return raw.replace(json.dumps(marker), json.dumps(data, indent=1)).encode()


async def test_put_counts_raw_bytes_of_data() -> None:
    data = padded(10240)
    assert len(json.dumps(data, indent=1).encode()) > 10240
    async with running() as api:
        load(api)
        current = (await api.get(claim_path())).body
        pretty = await api.request("PUT", claim_path(), raw=_pretty_put(current, data),
                                   dryRun="All", fieldManager=DRIVER)
        check(pretty, CASES["x9"])
        tight = copy.deepcopy(current)
        tight["status"]["devices"] = [entry(data=data)]
        raw = json.dumps(tight, separators=(",", ":")).encode()
        check(await api.request("PUT", claim_path(), raw=raw, dryRun="All", fieldManager=DRIVER),
              CASES["x10"])
        # patches re-encode data compactly before counting (x11)
        raw_patch = json.dumps({"status": {"devices": ["MARK"]}}).replace(
            '"MARK"', json.dumps(entry(data=data), indent=1)).encode()
        merged = await api.request("PATCH", claim_path(), raw=raw_patch, content_type=MERGE,
                                   dryRun="All", fieldManager=DRIVER)
        check(merged, CASES["x11"])
        raw_apply = json.dumps(body(["MARK"])).replace(
            '"MARK"', json.dumps(entry(data=data), indent=1)).encode()
        applied = await api.request("PATCH", claim_path(), raw=raw_apply,
                                    content_type="application/apply-patch+yaml", dryRun="All",
                                    fieldManager=DRIVER, force="true")
        check(applied, CASES["x11"])
        assert "devices" not in (await api.get(claim_path())).body["status"]


def test_every_case_is_covered() -> None:
    covered = set(APPLY) | {"a3", "f5", "x3", "x4", "x5", "x5b", "x6", "x7", "x8", "x9", "x10",
                            "x11", "b3", "g", "g2", "g3"}  # g*: test_status_write.py
    assert set(CASES) == covered
