"""Discovery, CRUD with resourceVersions, generic errors, watch and conversion of the stand-in,
compared with what a real kube-apiserver 1.36 returned (fixtures under apiserver-1.36/)."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import aiohttp
import pytest
from sim_apiserver.apikit import (
    DRIVER,
    SSA,
    V1,
    V1BETA1,
    Client,
    cases,
    fixture,
    running,
    stored,
)

GENERIC = {c["case"]: c for c in cases("misc/generic-errors.json")}
SLICES_V1 = fixture("demo/resourceslices.v1.list.json")["items"]
SLICES_V1BETA1 = fixture("demo/resourceslices.v1beta1.list.json")["items"]


def load_slices(api: Client) -> None:
    for item in SLICES_V1:
        api.server.store.load({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
                               **item})


def watch_slice() -> dict[str, Any]:
    first = fixture("misc/watch-resourceslices.events.json")["events"][0]["object"]
    return {"apiVersion": first["apiVersion"], "kind": first["kind"],
            "metadata": {"name": first["metadata"]["name"]}, "spec": first["spec"]}


# -- discovery -------------------------------------------------------------------------------
async def test_discovery_documents() -> None:
    async with running() as api:
        version = (await api.get("/version")).body
        assert version["gitVersion"] == "v1.36.2" and (version["major"], version["minor"]) == (
            "1", "36")
        groups = (await api.get("/apis")).body
        dra = next(g for g in groups["groups"] if g["name"] == "resource.k8s.io")
        assert dra["preferredVersion"]["version"] == "v1"
        assert [v["version"] for v in dra["versions"]] == ["v1", "v1beta1", "v1beta2"]
        resources = (await api.get(V1)).body
        names = {r["name"] for r in resources["resources"]}
        assert {"resourceslices", "resourceclaims", "resourceclaims/status", "deviceclasses",
                "resourceclaimtemplates"} <= names
        core = {r["name"] for r in (await api.get("/api/v1")).body["resources"]}
        assert {"nodes", "pods", "pods/status", "namespaces", "events"} <= core
        beta = await api.get(V1BETA1)
        assert beta.status == 200 and beta.warnings == []


async def test_an_old_server_serves_only_v1beta1() -> None:
    async with running(served=("v1beta1",)) as api:
        dra = next(g for g in (await api.get("/apis")).body["groups"]
                   if g["name"] == "resource.k8s.io")
        assert dra["preferredVersion"]["version"] == "v1beta1"
        assert (await api.get(f"{V1}/resourceslices")).status == 404
        assert (await api.get(f"{V1BETA1}/resourceslices")).status == 200


async def test_token_is_required() -> None:
    async with running() as api, aiohttp.ClientSession() as bare:
        async with bare.get(api.server.url + f"{V1}/resourceslices") as resp:
            assert resp.status == 401
        config = api.server.kubeconfig.read_text()
        assert api.server.token in config and api.server.url in config


# -- CRUD, resourceVersion, generic errors ---------------------------------------------------
async def test_create_get_update_delete_with_resource_versions() -> None:
    async with running() as api:
        created = await api.post(f"{V1}/resourceslices", watch_slice(), fieldManager=DRIVER)
        assert created.status == 201
        meta = created.body["metadata"]
        assert meta["generation"] == 1 and meta["uid"] and meta["resourceVersion"]
        assert created.body["spec"] == watch_slice()["spec"]
        path = f"{V1}/resourceslices/{meta['name']}"
        again = await api.post(f"{V1}/resourceslices", watch_slice())
        assert (again.status, again.body) == (409, GENERIC[
            "POST a ResourceSlice whose name already exists"]["body"])
        body = copy.deepcopy(created.body)
        body["spec"]["pool"]["generation"] = 2
        updated = await api.put(path, body)
        assert updated.status == 200
        assert int(updated.body["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
        assert updated.body["metadata"]["generation"] == 2
        assert (await api.put(path, body)).status == 409  # stale resourceVersion now
        listed = await api.get(f"{V1}/resourceslices")
        assert listed.body["metadata"]["resourceVersion"] == updated.body["metadata"][
            "resourceVersion"]
        assert [i["metadata"]["name"] for i in listed.body["items"]] == [meta["name"]]
        deleted = await api.request("DELETE", path)
        assert deleted.status == 200
        missing = await api.get(f"{V1}/resourceslices/does-not-exist")
        assert (missing.status, missing.body) == (404, GENERIC[
            "GET a slice that does not exist"]["body"])


@pytest.mark.parametrize(("case", "method", "content_type", "raw"), [
    ("GET a claim that does not exist", "GET", "application/json", None),
    ("SSA on the status of a claim that does not exist", "PATCH", SSA,
     b'{"apiVersion":"resource.k8s.io/v1","kind":"ResourceClaim",'
     b'"metadata":{"name":"does-not-exist"}}'),
    ("merge patch on the status of a claim that does not exist", "PATCH",
     "application/merge-patch+json", b"{}"),
    ("SSA with a body that is not valid YAML (existing claim kw2-eth0)", "PATCH", SSA, b"{"),
    ("PATCH with Content-Type application/json", "PATCH", "application/json", b"{}"),
    ("SSA body without apiVersion/kind (existing claim kw2-eth0)", "PATCH", SSA,
     b'{"metadata":{"name":"kw2-eth0"}}'),
])
async def test_generic_errors(case: str, method: str, content_type: str,
                              raw: bytes | None) -> None:
    expected = GENERIC[case]
    name = "kw2-eth0" if "kw2-eth0" in case else "does-not-exist"
    path = f"{V1}/namespaces/default/resourceclaims/{name}"
    if method == "PATCH" and "status" in case:
        path += "/status"
    async with running() as api:
        claim = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
                 "metadata": {"name": "kw2-eth0"}, "spec": {"devices": {"requests": []}}}
        assert (await api.post(f"{V1}/namespaces/default/resourceclaims", claim)).status == 201
        reply = await api.request(method, path, raw=raw, content_type=content_type,
                                  fieldManager=DRIVER)
    assert reply.status == expected["httpStatus"]
    if "YAML" in case:  # the YAML parser's own words differ; the frame must not
        assert reply.message.startswith("error decoding YAML: error converting YAML to JSON: ")
        assert {k: v for k, v in reply.body.items() if k != "message"} == {
            k: v for k, v in expected["body"].items() if k != "message"}
    else:
        assert reply.body == expected["body"]


# -- watch -----------------------------------------------------------------------------------
async def _events(api: Client, path: str, count: int, **query: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {api.server.token}"}
    events: list[dict[str, Any]] = []
    async with api.session.get(api.server.url + path, params={"watch": "true", **query},
                               headers=headers) as resp:
        assert resp.status == 200
        async with asyncio.timeout(10):
            while len(events) < count:
                line = await resp.content.readline()
                if not line:
                    break
                events.append(json.loads(line))
    return events


def _comparable(event: dict[str, Any]) -> tuple[str, Any, Any]:
    obj = event["object"]
    return event["type"], obj.get("spec"), obj.get("metadata", {}).get("generation")


async def test_watch_matches_the_captured_stream() -> None:
    real = fixture("misc/watch-resourceslices.events.json")["events"]
    async with running(bookmark_interval=0.2) as api:
        load_slices(api)
        start = (await api.get(f"{V1}/resourceslices")).body["metadata"]["resourceVersion"]
        path = f"{V1}/resourceslices"

        async def change() -> None:
            await asyncio.sleep(0.05)
            other = watch_slice()
            other["metadata"]["name"] = "kind-worker-other"
            other["spec"]["nodeName"] = "kind-worker"
            assert (await api.post(path, other)).status == 201  # filtered out by the selector
            created = (await api.post(path, watch_slice())).body
            created["spec"]["pool"]["generation"] = 2
            assert (await api.put(f"{path}/{created['metadata']['name']}", created)).status == 200
            assert (await api.request("DELETE", f"{path}/{created['metadata']['name']}")
                    ).status == 200

        writer = asyncio.create_task(change())
        events = await _events(api, path, len(real), resourceVersion=start,
                               allowWatchBookmarks="true", timeoutSeconds="8",
                               fieldSelector="spec.nodeName=kind-worker2")
        await writer
    assert [_comparable(e) for e in events] == [_comparable(e) for e in real]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs[:3] == sorted(rvs[:3]) and rvs[3] == rvs[4] == rvs[2]
    assert events[3]["object"] == {**real[3]["object"], "metadata": {
        "resourceVersion": str(rvs[2])}}


async def test_watch_resumes_from_a_resource_version_and_expires() -> None:
    async with running() as api:
        path = f"{V1}/resourceslices"
        created = (await api.post(path, watch_slice())).body
        created["spec"]["pool"]["generation"] = 2
        updated = (await api.put(f"{path}/{created['metadata']['name']}", created)).body
        events = await _events(api, path, 1, resourceVersion=created["metadata"][
            "resourceVersion"], timeoutSeconds="2")
        assert [(e["type"], e["object"]["metadata"]["resourceVersion"]) for e in events] == [
            ("MODIFIED", updated["metadata"]["resourceVersion"])]
        initial = await _events(api, path, 1, timeoutSeconds="2")
        assert [e["type"] for e in initial] == ["ADDED"]
        api.server.store.history.clear()  # as if compacted
        api.server.store.load({**watch_slice(), "metadata": {"name": "later"}})
        expired = await api.get(path, watch="true", resourceVersion="1")
        assert expired.status == 410 and expired.body["reason"] == "Expired"


async def test_watch_by_driver_and_through_v1beta1() -> None:
    async with running() as api:
        load_slices(api)
        events = await _events(api, f"{V1BETA1}/resourceslices", 2, timeoutSeconds="2",
                               fieldSelector=f"spec.driver={DRIVER}")
        assert sorted(e["object"]["metadata"]["name"] for e in events) == sorted(
            i["metadata"]["name"] for i in SLICES_V1)
        assert all("basic" in e["object"]["spec"]["devices"][0] for e in events)
        bad = await api.get(f"{V1}/resourceslices", watch="true",
                            fieldSelector="spec.pool.name=kind-worker")
        assert bad.status == 400


# -- conversion ------------------------------------------------------------------------------
async def test_slices_read_back_through_v1beta1() -> None:
    async with running() as api:
        load_slices(api)
        listed = await api.get(f"{V1BETA1}/resourceslices")
        assert listed.body["apiVersion"] == "resource.k8s.io/v1beta1"
        assert any("deprecated" in w for w in listed.warnings)
        ours = {i["metadata"]["name"]: i["spec"] for i in listed.body["items"]}
        assert ours == {i["metadata"]["name"]: i["spec"] for i in SLICES_V1BETA1}
        v1 = {i["metadata"]["name"]: i["spec"] for i in
              (await api.get(f"{V1}/resourceslices")).body["items"]}
        assert v1 == {i["metadata"]["name"]: i["spec"] for i in SLICES_V1}


async def test_a_v1beta1_slice_with_basic_is_stored_flat() -> None:
    response = fixture("slice-validation/v1beta1-basic.create-response.json")
    as_v1 = fixture("slice-validation/v1beta1-basic.read-back-as-v1.json")
    request = {"apiVersion": response["apiVersion"], "kind": "ResourceSlice",
               "metadata": {"generateName": "test-v1beta1-"}, "spec": response["spec"]}
    async with running() as api:
        created = await api.post(f"{V1BETA1}/resourceslices", request, fieldManager=DRIVER)
        assert created.status == 201
        assert stored(created.body)["spec"] == response["spec"]
        assert created.body["metadata"]["name"].startswith("test-v1beta1-")
        read = await api.get(f"{V1}/resourceslices/{created.body['metadata']['name']}")
        assert read.body["spec"] == as_v1["spec"] and read.body["apiVersion"] == as_v1[
            "apiVersion"]


@pytest.mark.parametrize(("name", "version"), [
    ("resourceclaim-adminaccess", "v1beta1"), ("resourceclaim-adminaccess", "v1beta2"),
    ("resourceclaim-shared-capacity", "v1beta1")])
async def test_claims_read_through_every_version(name: str, version: str) -> None:
    real = fixture(f"demo/{name}.{version}.json")
    async with running() as api:
        v1 = api.server.store.load(fixture(f"demo/{name}.v1.json"))
        path = f"/apis/resource.k8s.io/{version}/namespaces/default/resourceclaims/" + \
            v1["metadata"]["name"]
        read = (await api.get(path)).body
        assert (read["apiVersion"], read["spec"], read["status"]) == (
            real["apiVersion"], real["spec"], real["status"])


async def test_templates_convert_both_ways() -> None:
    template = fixture("demo/resourceclaimtemplate-macvlan-eth1-attachment.v1.json")
    async with running() as api:
        api.server.store.load(template)
        name = template["metadata"]["name"]
        beta = (await api.get(f"{V1BETA1}/namespaces/default/resourceclaimtemplates/{name}")).body
        request = beta["spec"]["spec"]["devices"]["requests"][0]
        assert "exactly" not in request and request["adminAccess"] is True
        beta["metadata"] = {"name": "copy"}
        created = await api.post(f"{V1BETA1}/namespaces/default/resourceclaimtemplates", beta)
        assert created.status == 201
        back = (await api.get(f"{V1}/namespaces/default/resourceclaimtemplates/copy")).body
        assert back["spec"] == template["spec"]


async def test_a_new_claim_has_an_empty_status() -> None:
    claim = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
             "metadata": {"name": "c"}, "spec": {"devices": {"requests": []}},
             "status": {"reservedFor": [{"resource": "pods", "name": "p", "uid": "u"}]}}
    async with running() as api:
        created = await api.post(f"{V1}/namespaces/default/resourceclaims", claim)
        assert created.status == 201 and created.body["status"] == {}
        assert "generation" not in created.body["metadata"]


async def test_core_objects_labels_and_status_subresource() -> None:
    pods = "/api/v1/namespaces/default/pods"
    async with running() as api:
        for name, app in (("a", "web"), ("b", "db"), ("c", "web")):
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "labels": {"app": app}},
                   "spec": {"containers": []}, "status": {"phase": "Running"}}
            assert (await api.post(pods, pod)).status == 201
        web = await api.get(pods, labelSelector="app=web")
        assert [p["metadata"]["name"] for p in web.body["items"]] == ["a", "c"]
        notweb = await api.get(pods, labelSelector="app notin (web)")
        assert [p["metadata"]["name"] for p in notweb.body["items"]] == ["b"]
        current = (await api.get(f"{pods}/a")).body
        current["status"] = {"phase": "Succeeded"}
        current["spec"]["nodeName"] = "kind-worker"
        main = await api.put(f"{pods}/a", current)
        assert main.body["spec"]["nodeName"] == "kind-worker"
        assert main.body["status"] == (await api.get(f"{pods}/a")).body["status"]
        status = await api.patch(f"{pods}/a/status", {"status": {"phase": "Succeeded"}},
                                 "application/merge-patch+json")
        assert status.body["status"]["phase"] == "Succeeded"
        on_node = await api.get(pods, fieldSelector="spec.nodeName=kind-worker")
        assert [p["metadata"]["name"] for p in on_node.body["items"]] == ["a"]
        gone = await api.request("DELETE", pods, labelSelector="app=web")
        assert sorted(p["metadata"]["name"] for p in gone.body["items"]) == ["a", "c"]
        assert [p["metadata"]["name"] for p in (await api.get(pods)).body["items"]] == ["b"]
        assert (await api.get(pods, labelSelector="app in (web")).status == 400
