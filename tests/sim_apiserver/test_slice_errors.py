"""ResourceSlice validation, conversion warnings and field selectors against the 1.36 capture.

Each case of ``slice-errors.json`` is rebuilt from its request description and sent to the
stand-in over HTTP; status, reason, message, causes and Warning headers must match.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
from sim_apiserver.apikit import DRIVER, V1, V1BETA1, Client, cases, fixture, running

CASES = {c["case"]: c for c in cases("slice-errors.json")}
CAP = {"value": "1000", "requestPolicy": {"default": "1", "validRange": {
    "min": "1", "max": "1", "step": "1"}}}


def device(name: str = "eth0", index: int = 0) -> dict[str, Any]:
    return {"name": name, "attributes": {
        "name": {"string": name}, "mac": {"string": f"be:a1:b9:1e:4c:{index % 256:02x}"},
        "mtu": {"int": 1500}}}


def base(devices: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"generateName": "test-kind-worker2-"},
            "spec": {"driver": DRIVER, "nodeName": "kind-worker2",
                     "pool": {"name": "test-kind-worker2", "generation": 1,
                              "resourceSliceCount": 1},
                     "devices": [device()] if devices is None else devices}}


def attrs(**extra: Any) -> dict[str, Any]:
    body = base()
    body["spec"]["devices"][0]["attributes"].update(extra)
    return body


def changed(body: dict[str, Any], **device_fields: Any) -> dict[str, Any]:
    body["spec"]["devices"][0].update(device_fields)
    return body


def many_attributes(total: int) -> dict[str, Any]:
    return attrs(**{f"attr{i:02d}": {"int": i} for i in range(total - 3)})


def with_spec(**changes: Any) -> dict[str, Any]:
    body = base()
    body["spec"].update(changes)
    for key, value in changes.items():
        if value is None:
            del body["spec"][key]
    return body


def with_capacity(cap: dict[str, Any], multi: bool) -> dict[str, Any]:
    body = base()
    body["spec"]["devices"][0]["capacity"] = {"attachments": cap}
    if multi:
        body["spec"]["devices"][0]["allowMultipleAllocations"] = True
    return body


def tainted(count: int) -> dict[str, Any]:
    devs = [device(f"eth{i}", i) for i in range(count)]
    for dev in devs:
        dev["taints"] = [{"key": "example.com/unhealthy", "value": "x", "effect": "NoSchedule"}]
    return base(devs)


def v1beta1(flat: bool) -> dict[str, Any]:
    body = base()
    body["apiVersion"] = "resource.k8s.io/v1beta1"
    dev = body["spec"]["devices"][0]
    if not flat:
        body["spec"]["devices"][0] = {"name": dev["name"], "basic": {
            "attributes": dev["attributes"]}}
    return body


def v1_with_basic() -> dict[str, Any]:
    body = base()
    dev = body["spec"]["devices"][0]
    body["spec"]["devices"][0] = {"name": dev["name"], "basic": {"attributes": dev["attributes"]}}
    return body


Build = Callable[[], dict[str, Any]]
CREATES: dict[str, tuple[str, Build, dict[str, str]]] = {
    "129 devices in one slice": (V1, lambda: base([device(f"eth{i}", i) for i in range(129)]), {}),
    "128 devices in one slice (the limit)":
        (V1, lambda: base([device(f"eth{i}", i) for i in range(128)]), {}),
    "65 devices when one uses taints (advanced-features limit 64)": (V1, lambda: tainted(65), {}),
    "device name with uppercase": (V1, lambda: base([device("Eth0")]), {}),
    "device name with a dot (VLAN interface)": (V1, lambda: base([device("eth0.100")]), {}),
    "device name with underscore": (V1, lambda: base([device("br_ex")]), {}),
    "device name 64 chars": (V1, lambda: base([device("e" * 64)]), {}),
    "duplicate device names": (V1, lambda: base([device("eth0"), device("eth0")]), {}),
    "attribute name longer than 32 chars (unqualified)":
        (V1, lambda: attrs(**{"a" * 33: {"string": "x"}}), {}),
    "attribute name longer than 32 chars (qualified, driver domain)":
        (V1, lambda: attrs(**{f"{DRIVER}/{'a' * 33}": {"string": "x"}}), {}),
    "attribute name exactly 32 chars": (V1, lambda: attrs(**{"a" * 32: {"string": "x"}}), {}),
    "attribute name with a dash": (V1, lambda: attrs(**{"pcie-root": {"string": "x"}}), {}),
    "string attribute value longer than 64 chars":
        (V1, lambda: attrs(description={"string": "x" * 65}), {}),
    "string attribute value exactly 64 chars":
        (V1, lambda: attrs(description={"string": "x" * 64}), {}),
    "33 attributes on one device": (V1, lambda: many_attributes(33), {}),
    "32 attributes on one device (the limit)": (V1, lambda: many_attributes(32), {}),
    "32 attributes + 1 capacity (limit is attributes+capacities <= 32)": (V1, lambda: changed(
        many_attributes(32), capacity={"attachments": {"value": "1"}}), {}),
    "nodeName and allNodes both set": (V1, lambda: with_spec(allNodes=True), {}),
    "nodeName and nodeSelector both set": (V1, lambda: with_spec(nodeSelector={
        "nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["kind-worker2"]}]}]}), {}),
    "none of nodeName/nodeSelector/allNodes/perDeviceNodeSelection":
        (V1, lambda: with_spec(nodeName=None), {}),
    "attribute with two value types": (V1, lambda: attrs(mtu={"int": 1500, "string": "1500"}), {}),
    "attribute with no value": (V1, lambda: attrs(mtu={}), {}),
    "same attribute unqualified and qualified with the driver domain": (V1, lambda: changed(
        base(), attributes={"name": {"string": "eth0"}, f"{DRIVER}/name": {"string": "eth0"}}), {}),
    "version attribute not semver": (V1, lambda: attrs(driverVersion={"version": "1.0"}), {}),
    "capacity requestPolicy without allowMultipleAllocations":
        (V1, lambda: with_capacity(copy.deepcopy(CAP), multi=False), {}),
    "requestPolicy.validRange without default": (V1, lambda: with_capacity(
        {"value": "1000", "requestPolicy": {"validRange": {"min": "1"}}}, multi=True), {}),
    "requestPolicy default above validRange.max": (V1, lambda: with_capacity(
        {"value": "1000", "requestPolicy": {"default": "2", "validRange": {
            "min": "1", "max": "1", "step": "1"}}}, multi=True), {}),
    "driver name not a DNS subdomain": (V1, lambda: with_spec(driver="CNI_DRA"), {}),
    "pool resourceSliceCount 0": (V1, lambda: with_spec(pool={
        "name": "test-kind-worker2", "generation": 1, "resourceSliceCount": 0}), {}),
    "empty devices list (node with no usable interfaces)": (V1, lambda: base([]), {}),
    "nodeName of a node that does not exist": (V1, lambda: with_spec(nodeName="no-such-node"), {}),
    "v1beta1 slice using basic: (posted to the v1beta1 endpoint)":
        (V1BETA1, lambda: v1beta1(flat=False), {}),
    "v1 slice using basic: (default fieldValidation)": (V1, v1_with_basic, {}),
    "v1 slice using basic: with fieldValidation=Strict":
        (V1, v1_with_basic, {"fieldValidation": "Strict"}),
    "v1beta1 slice using the v1 flat shape (no basic:)": (V1BETA1, lambda: v1beta1(flat=True), {}),
    "v1beta1 slice using the v1 flat shape, fieldValidation=Strict":
        (V1BETA1, lambda: v1beta1(flat=True), {"fieldValidation": "Strict"}),
}
_NAME = re.compile(r'"(test-kind-worker2-[a-z0-9]{5})"')


def test_every_create_case_is_covered() -> None:
    creates = {k for k, c in CASES.items() if not c["request"].startswith(("PUT", "GET"))}
    assert creates == set(CREATES)


@pytest.mark.parametrize("name", list(CREATES))
async def test_create_matches_the_real_server(name: str) -> None:
    case = CASES[name]
    prefix, build, query = CREATES[name]
    async with running() as api:
        reply = await api.post(f"{prefix}/resourceslices", build(), fieldManager=DRIVER, **query)
    assert reply.status == case["httpStatus"], reply.body
    if "warnings" in case:
        assert ", ".join(reply.warnings) == case["warnings"]
    elif reply.status < 300:
        assert reply.warnings == [] or prefix == V1BETA1
    if reply.status >= 300:
        assert reply.body["reason"] == case["reason"]
        expected = case["message"]
        found = _NAME.search(expected)
        if found:  # generated names differ; the rest must be identical
            ours = _NAME.search(reply.message)
            assert ours is not None, reply.message
            expected = expected.replace(found.group(1), ours.group(1))
        assert reply.message == expected
        assert reply.body["code"] == case["httpStatus"]
        if "causes" in case:
            assert reply.body["details"]["causes"] == case["causes"]
            assert reply.body["details"]["kind"] == "ResourceSlice"
            assert reply.body["details"]["group"] == "resource.k8s.io"
        return
    stored = reply.body["spec"]["devices"]
    if "storedSpecDevices" in case:
        assert stored == case["storedSpecDevices"]
    if "storedAttributes" in case:
        assert stored[0]["attributes"] == case["storedAttributes"]


async def _demo_slices(api: Client) -> dict[str, dict[str, Any]]:
    names = {}
    for item in fixture("demo/resourceslices.v1.list.json")["items"]:
        api.server.store.load({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", **item})
        names[item["spec"]["nodeName"]] = item
    return names


@pytest.mark.parametrize(("name", "change"), [
    ("update: change spec.nodeName of an existing slice (dryRun)", ("nodeName", "kind-worker")),
    ("update: change spec.driver of an existing slice (dryRun)", ("driver", "other.example.com")),
    ("update: change spec.pool.name (dryRun)", ("pool", "renamed")),
    ("update with a stale resourceVersion (dryRun)", ("resourceVersion", "1")),
])
async def test_update_rules(name: str, change: tuple[str, str]) -> None:
    case = CASES[name]
    async with running() as api:
        await _demo_slices(api)
        current = (await api.get(f"{V1}/resourceslices/"
                                 "kind-worker2-cni.dra.networking.x-k8s.io-qxjxq")).body
        before = current["metadata"]["resourceVersion"]
        key, value = change
        if key == "resourceVersion":
            current["metadata"]["resourceVersion"] = value
        elif key == "pool":
            current["spec"]["pool"]["name"] = value
        else:
            current["spec"][key] = value
        reply = await api.put(f"{V1}/resourceslices/{current['metadata']['name']}", current,
                              dryRun="All")
        assert (reply.status, reply.body["reason"], reply.message) == (
            case["httpStatus"], case["reason"], case["message"])
        again = await api.get(f"{V1}/resourceslices/{current['metadata']['name']}")
        assert again.body["metadata"]["resourceVersion"] == before


async def test_dry_run_update_and_real_update_bump_generation() -> None:
    async with running() as api:
        await _demo_slices(api)
        path = f"{V1}/resourceslices/kind-worker2-cni.dra.networking.x-k8s.io-qxjxq"
        current = (await api.get(path)).body
        current["spec"]["pool"]["generation"] = 2
        dry = await api.put(path, current, dryRun="All")
        assert dry.status == 200 and dry.body["metadata"]["generation"] == 2
        assert (await api.get(path)).body["spec"]["pool"]["generation"] == 1
        real = await api.put(path, current)
        assert real.status == 200
        assert real.body["metadata"]["generation"] == 2
        assert int(real.body["metadata"]["resourceVersion"]) > int(
            current["metadata"]["resourceVersion"])
        stale = await api.put(path, current)
        assert stale.status == 409 and stale.body["reason"] == "Conflict"


@pytest.mark.parametrize("name", [k for k in CASES if k.startswith("list with")])
async def test_list_field_selectors(name: str) -> None:
    case = CASES[name]
    selector = case["request"].split("fieldSelector=", 1)[1]
    async with running() as api:
        await _demo_slices(api)
        extra = base()
        extra["metadata"] = {"name": "test-kind-worker2-9wwrt"}
        assert (await api.post(f"{V1}/resourceslices", extra)).status == 201
        reply = await api.get(f"{V1}/resourceslices", fieldSelector=selector)
    assert reply.status == case["httpStatus"]
    if reply.status != 200:
        assert (reply.body["reason"], reply.message) == (case["reason"], case["message"])
        return
    names = [i["metadata"]["name"] for i in reply.body["items"]]
    expected = case["result"].split(": ", 1)[1].split(", ")
    assert names == sorted(n for n in expected if n in {
        "kind-worker-cni.dra.networking.x-k8s.io-jtrh7",
        "kind-worker2-cni.dra.networking.x-k8s.io-qxjxq", "test-kind-worker2-9wwrt"})
    assert reply.body["kind"] == "ResourceSliceList"
