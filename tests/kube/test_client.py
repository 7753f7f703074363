"""KubeClient against the stand-in API server on loopback, through a generated kubeconfig and
the real ``connect()`` path (lightkube config -> httpx2 -> aiohttp)."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cnidra.errors import ConfigError, KubeAPIError, NotFoundError
from cnidra.kube import KubeClient, connect
from cnidra.sim.apiserver import ApiServer
from support import SHARED

DRIVER = "cni.dra.networking.x-k8s.io"
FIX = SHARED / "fixtures/apiserver-1.36"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIX / name).read_text())
    return data


def adminaccess_claim() -> dict[str, Any]:
    return fixture("demo/resourceclaim-adminaccess.v1.json")


def applied_entry() -> dict[str, Any]:
    entry: dict[str, Any] = fixture("status-write/adminaccess-claim.apply-request.json")[
        "body"]["status"]["devices"][0]
    return entry


@pytest.fixture
async def server() -> AsyncIterator[ApiServer]:
    async with ApiServer() as srv:
        yield srv


@pytest.fixture
async def client(server: ApiServer) -> AsyncIterator[KubeClient]:
    kube = await connect(str(server.kubeconfig), field_manager=DRIVER, timeout=5)
    try:
        yield kube
    finally:
        await kube.close()


async def test_discovery_prefers_v1_and_detects_consumable_capacity(
    client: KubeClient,
) -> None:
    assert client.api.version == "v1"
    assert client.api.server == (1, 36)
    assert client.api.consumable_capacity is True
    assert client.namespace == "default"


async def test_v1beta1_only_server() -> None:
    async with ApiServer(served=("v1beta1",), git_version="v1.33.4") as srv:
        srv.store.load(adminaccess_claim())
        kube = await connect(str(srv.kubeconfig), field_manager=DRIVER)
        try:
            assert kube.api.version == "v1beta1"
            assert kube.api.group_version == "resource.k8s.io/v1beta1"
            assert kube.api.consumable_capacity is False  # the field does not exist before 1.34
            real = adminaccess_claim()
            claim = await kube.get_claim("default", real["metadata"]["name"])
            # v1 shape on every server: the v1beta1 request's fields sit under ``exactly``
            request = claim["spec"]["devices"]["requests"][0]
            assert request["exactly"]["deviceClassName"] == "cni.networking.x-k8s.io"
            assert claim["apiVersion"] == "resource.k8s.io/v1"
            assert claim["status"]["allocation"] == real["status"]["allocation"]
        finally:
            await kube.close()


async def test_bad_kubeconfig_is_a_config_error(tmp_path: Any) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    with pytest.raises(ConfigError):
        await connect(str(path))


async def test_wrong_token_is_an_api_error(server: ApiServer, tmp_path: Any) -> None:
    text = server.kubeconfig.read_text().replace(server.token, "not-the-token")
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    with pytest.raises(KubeAPIError) as info:
        await connect(str(path))
    assert info.value.status == 401


async def test_claims_and_classes(server: ApiServer, client: KubeClient) -> None:
    real = adminaccess_claim()
    server.store.load(real)
    server.store.load(fixture("demo/deviceclass.v1.json"))
    claim = await client.get_claim("default", real["metadata"]["name"])
    assert claim["metadata"]["uid"] == real["metadata"]["uid"]
    klass = await client.get_device_class("cni.networking.x-k8s.io")
    assert klass["spec"]["selectors"]
    with pytest.raises(NotFoundError):
        await client.get_claim("default", "nope")
    with pytest.raises(NotFoundError):
        await client.get_device_class("nope")
    items, rv = await client.list_claims("default")
    assert [i["metadata"]["name"] for i in items] == [real["metadata"]["name"]] and rv


async def test_apply_claim_status_is_validated_and_keyed(
    server: ApiServer, client: KubeClient,
) -> None:
    real = adminaccess_claim()
    name, uid = real["metadata"]["name"], real["metadata"]["uid"]
    server.store.load(real)
    entry = applied_entry()
    out = await client.apply_claim_status("default", name, uid, [entry])
    assert out["status"]["devices"][0]["networkData"] == entry["networkData"]
    stored = server.store.get("resourceclaims.resource.k8s.io", name, "default")
    managers = {m["manager"] for m in stored["metadata"]["managedFields"]}
    assert DRIVER in managers
    # the stand-in validates like the real server: a wrong device is a 422
    wrong = copy.deepcopy(entry)
    wrong["device"] = "eth9"
    with pytest.raises(KubeAPIError) as info:
        await client.apply_claim_status("default", name, uid, [wrong])
    assert info.value.status == 422 and "must be an allocated device" in str(info.value)
    # the uid precondition: a re-created claim of the same name does not get our entries
    with pytest.raises(KubeAPIError) as info:
        await client.apply_claim_status("default", name, "0" * 8 + uid[8:], [entry])
    assert info.value.status == 422 and "metadata.uid" in str(info.value)
    # an empty list removes our entries only
    await client.apply_claim_status("default", name, uid, [])
    stored = server.store.get("resourceclaims.resource.k8s.io", name, "default")
    assert not stored["status"].get("devices")


async def test_event_on_a_claim(server: ApiServer, client: KubeClient) -> None:
    involved = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim", "name": "c1",
                "uid": "u1"}
    await client.create_event("default", involved=involved, reason="NetworkInterfaceFailed",
                              message="CNI ADD failed", warning=True, component=DRIVER)
    events = server.store.list("events", "default")["items"]
    assert len(events) == 1
    assert events[0]["involvedObject"]["name"] == "c1" and events[0]["type"] == "Warning"


def slice_body(node: str, pool: str, driver: str = DRIVER) -> dict[str, Any]:
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"generateName": f"{node}-"},
            "spec": {"driver": driver, "nodeName": node,
                     "pool": {"name": pool, "generation": 1, "resourceSliceCount": 1},
                     "devices": [{"name": "eth0", "attributes": {"name": {"string": "eth0"}}}]}}


async def test_slice_crud_and_selectors(client: KubeClient) -> None:
    a = await client.create_slice(slice_body("n1", "n1"))
    await client.create_slice(slice_body("n2", "n2"))
    await client.create_slice(slice_body("n1", "n1", driver="other.example.com"))
    mine, rv = await client.list_slices(node_name="n1", driver=DRIVER)
    assert [s["metadata"]["name"] for s in mine] == [a["metadata"]["name"]] and rv
    assert mine[0]["apiVersion"] == "resource.k8s.io/v1"
    assert len((await client.list_slices(driver=DRIVER))[0]) == 2
    a["spec"]["devices"][0]["attributes"]["mtu"] = {"int": 1500}
    b = await client.update_slice(a)
    assert b["metadata"]["resourceVersion"] != a["metadata"]["resourceVersion"]
    with pytest.raises(KubeAPIError) as info:
        await client.update_slice(a)  # stale resourceVersion
    assert info.value.status == 409 and info.value.retryable
    bad = slice_body("n3", "n3")
    bad["spec"]["devices"][0]["basic"] = {}  # the wrong shape is refused (strict), not dropped
    with pytest.raises(KubeAPIError) as info:
        await client.create_slice(bad)
    assert info.value.status == 400
    await client.delete_slice(b["metadata"]["name"])
    await client.delete_slice(b["metadata"]["name"])  # already gone: fine
    assert (await client.list_slices(node_name="n1", driver=DRIVER))[0] == []


async def test_closed_client_refuses(server: ApiServer) -> None:
    kube = await connect(str(server.kubeconfig))
    await kube.close()
    assert kube.closed
    with pytest.raises(KubeAPIError):
        await kube.get_claim("default", "x")


async def test_unreachable_server_is_a_retryable_api_error(tmp_path: Any) -> None:
    config = ("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
              "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
              "users: [{name: u, user: {token: t}}]\n"
              "contexts: [{name: c, context: {cluster: c, user: u}}]\n")
    path = tmp_path / "kubeconfig"
    path.write_text(config)
    with pytest.raises(KubeAPIError) as info:
        await connect(str(path), timeout=2)
    assert info.value.status == 0 and info.value.retryable


async def test_capacity_probe_is_a_dry_run_and_decides() -> None:
    """On 1.35 the gate is off by default; the probe asks the server instead of guessing
    (the stand-in has no feature gates and keeps the field). Nothing is stored."""
    async with ApiServer(git_version="v1.35.3") as srv:
        kube = await connect(str(srv.kubeconfig))
        try:
            assert kube.api.consumable_capacity is True
            assert srv.store.list("resourceslices.resource.k8s.io")["items"] == []
        finally:
            await kube.close()
