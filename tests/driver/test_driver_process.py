"""A real ``cnidra driver`` process on one simulated node, end to end over the real protocols.

The node is a fresh network namespace with a veth ``eth1`` (its peer in a second namespace, so
it has a carrier). The API server stand-in runs in this test process and is also served inside
the node namespace; the kubelet and containerd stand-ins run here too, on the driver's unix
sockets. The driver runs as ``ip netns exec NODE sh -c 'mount --bind … /var/lib/cni && exec
cnidra driver …'`` (``cnidra.sim._node``), so host-local IPAM leases stay private.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from cnidra.model.claims import ClaimRef
from cnidra.sim._node import (
    DriverPaths,
    DriverProcess,
    free_port_in_netns,
    http_get_in_netns,
    serve_api_in_netns,
    write_kubeconfig,
)
from cnidra.sim.apiserver import ApiServer
from cnidra.sim.kubelet import KubeletStandIn
from cnidra.sim.runtime import NRIRuntime, SimPod
from support import ip

pytestmark = pytest.mark.root

DRIVER = "cni.dra.networking.x-k8s.io"
MANIFESTS = Path(__file__).resolve().parents[2] / "src/cnidra/sim/manifests/v1"
CLAIMS = "resourceclaims.resource.k8s.io"
SLICES = "resourceslices.resource.k8s.io"


@dataclass
class Node:
    name: str
    netns: str
    path: str
    api: ApiServer
    paths: DriverPaths
    driver: DriverProcess
    kubelet: KubeletStandIn
    runtime: NRIRuntime

    @property
    def version(self) -> str:
        return self.api.store.served[0]

    async def get(self, path: str) -> tuple[int, str]:
        return await http_get_in_netns(self.path, "127.0.0.1", self.driver.metrics_port, path)


async def eventually(check: Callable[[], Any], what: str, node: Node | None = None,
                     timeout: float = 15.0) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if node is not None and node.driver.returncode is not None:
            pytest.fail(f"driver exited ({node.driver.returncode}) while waiting for {what}:\n"
                        f"{node.driver.log_tail(40)}")
        if loop.time() > deadline:
            tail = node.driver.log_tail(40) if node is not None else ""
            pytest.fail(f"timed out waiting for {what}\n{tail}")
        await asyncio.sleep(0.05)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Unix socket paths must stay under 108 bytes: a short directory under /tmp."""
    path = Path(tempfile.mkdtemp(prefix="cnd"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["v1", "v1beta1"])
async def node(request: pytest.FixtureRequest, netns: Callable[[str], str], short_dir: Path
               ) -> AsyncIterator[Node]:
    """``v1beta1``: a 1.32/1.33-like API server serving resource.k8s.io v1beta1 only."""
    name = f"node-{os.getpid()}-{uuid.uuid4().hex[:4]}"
    ns, lan = netns("cnd"), netns("cnl")
    ns_path = f"/run/netns/{ns}"
    ip("link", "set", "lo", "up", netns=ns)
    tmp_a, tmp_b = f"d{uuid.uuid4().hex[:8]}a", f"d{uuid.uuid4().hex[:8]}b"
    ip("link", "add", tmp_a, "netns", ns, "type", "veth", "peer", "name", tmp_b, "netns", lan)
    ip("link", "set", tmp_a, "name", "eth1", netns=ns)
    ip("link", "set", "eth1", "up", netns=ns)
    ip("link", "set", tmp_b, "up", netns=lan)

    api = ApiServer(workdir=short_dir, served=(request.param,))
    await api.start()
    try:
        url = await serve_api_in_netns(api, ns_path)
        kubeconfig = write_kubeconfig(api, url, short_dir / "node.kubeconfig")
        api.store.create("nodes", {"apiVersion": "v1", "kind": "Node",
                                   "metadata": {"name": name}})
        device_class = yaml.safe_load((MANIFESTS / "deviceclass.yaml").read_text())
        device_class["apiVersion"] = f"resource.k8s.io/{request.param}"
        api.store.create("deviceclasses.resource.k8s.io", device_class,
                         version=request.param)
        paths = DriverPaths.under(short_dir / "n")
        port = free_port_in_netns(ns_path)
        driver = DriverProcess(netns=ns, node_name=name, kubeconfig=kubeconfig, paths=paths,
                               metrics_port=port,
                               extra_args=("--log-format", "json", "--log-level", "debug",
                                           "--shutdown-timeout", "3"))
        runtime = NRIRuntime(str(paths.nri_socket))
        await runtime.start()
        kubelet = KubeletStandIn(str(paths.registry_dir), node_name=name)
        await kubelet.start()
        try:
            await driver.start()
            yield Node(name, ns, ns_path, api, paths, driver, kubelet, runtime)
        finally:
            if driver.returncode is None:
                await driver.stop(timeout=10)
            await kubelet.stop()
            await runtime.close()
    finally:
        await api.stop()


def our_slices(node: Node) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = node.api.store.list(
        SLICES, field_selector=f"spec.nodeName={node.name},spec.driver={DRIVER}",
        version=node.version)["items"]
    return items


def allocate(node: Node, pod_uid: str) -> dict[str, Any]:
    """What the scheduler does for a pod's claim: allocate eth1 of this node, reserve it."""
    template = next(d for d in yaml.safe_load_all((MANIFESTS / "demo.yaml").read_text())
                    if d["kind"] == "ResourceClaimTemplate")
    spec = copy.deepcopy(template["spec"]["spec"])
    request = spec["devices"]["requests"][0]
    request["exactly"].pop("adminAccess")
    if node.version == "v1beta1":  # no ``exactly`` in v1beta1: the fields sit on the request
        request.update(request.pop("exactly"))
    body = {"apiVersion": f"resource.k8s.io/{node.version}", "kind": "ResourceClaim",
            "metadata": {"name": "web-net", "namespace": "default"}, "spec": spec}
    claim: dict[str, Any] = node.api.store.create(CLAIMS, body, "default",
                                                  version=node.version).obj
    config = [{"source": "FromClaim", **c} for c in spec["devices"]["config"]]
    claim["status"] = {
        "allocation": {"devices": {
            "results": [{"request": "macvlan-eth1", "driver": DRIVER, "pool": node.name,
                         "device": "eth1"}],
            "config": config}},
        "reservedFor": [{"resource": "pods", "name": "web", "uid": pod_uid}],
    }
    written: dict[str, Any] = node.api.store.update(CLAIMS, claim, "default",
                                                    subresource="status",
                                                    version=node.version).obj
    return written


def net1_addresses(pod_ns: str) -> list[str]:
    out = json.loads(ip("-j", "addr", "show", "dev", "net1", netns=pod_ns))
    return [f"{a['local']}/{a['prefixlen']}" for a in out[0]["addr_info"]
            if a["family"] == "inet"]


def metric(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {line_start!r} in /metrics")


async def test_driver_process_end_to_end(node: Node, netns: Callable[[str], str]) -> None:
    # registration, slices, readiness
    plugin = await node.kubelet.wait_registered(DRIVER, timeout=20)
    assert plugin.service == "v1.DRAPlugin"
    await node.runtime.wait_for_plugin(timeout=20)
    slices = await eventually(lambda: our_slices(node), "slices published", node)
    assert [d["name"] for d in slices[0]["spec"]["devices"]] == ["eth1"]
    assert slices[0]["spec"]["pool"]["name"] == node.name
    await eventually(lambda: node.get("/readyz"), "reachable /readyz", node)
    status, body = await eventually(
        lambda: _ready(node), "/readyz 200", node)
    assert (status, body) == (200, "ok\n")

    # prepare a claim allocated to the pod
    pod_uid = str(uuid.uuid4())
    claim = allocate(node, pod_uid)
    ref = ClaimRef("default", "web-net", claim["metadata"]["uid"])
    outcomes = await node.kubelet.prepare([ref])
    assert outcomes[ref.uid].error == ""
    assert f"resource.k8s.io/{node.version}" in node.driver.log_text()
    assert [(d.pool_name, d.device_name) for d in outcomes[ref.uid].devices] == [
        (node.name, "eth1")]

    # RunPodSandbox over NRI attaches net1 in the pod's netns
    pod_ns = netns("cnp")
    ip("link", "set", "lo", "up", netns=pod_ns)
    pod = SimPod(id=uuid.uuid4().hex * 2, uid=pod_uid, name="web", namespace="default",
                 netns=f"/run/netns/{pod_ns}", pid=1)
    await node.runtime.run_pod_sandbox(pod)
    (address,) = net1_addresses(pod_ns)
    assert address.startswith("10.10.1.") and address.endswith("/24")

    def reported() -> dict[str, Any] | None:
        got = node.api.store.get(CLAIMS, "web-net", "default", version=node.version)
        devices = (got.get("status") or {}).get("devices") or []
        return devices[0] if devices and devices[0].get("networkData") else None

    entry = await eventually(reported, "claim status.devices", node)
    assert (entry["driver"], entry["pool"], entry["device"]) == (DRIVER, node.name, "eth1")
    assert entry["networkData"]["interfaceName"] == "net1"
    assert entry["networkData"]["ips"] == [address]
    ready = {c["type"]: c["status"] for c in entry["conditions"]}
    assert ready["Ready"] == "True"

    # metrics, scraped from inside the node's namespace
    status, text = await node.get("/metrics")
    assert status == 200
    assert metric(text, 'cnidra_kubelet_claims_total{call="prepare",outcome="ok"}') == 1
    assert metric(text, 'cnidra_nri_hooks_total{event="RunPodSandbox",outcome="ok"}') == 1
    assert metric(text, 'cnidra_cni_exec_duration_seconds_count'
                        '{outcome="ok",plugin="macvlan",verb="ADD"}') == 1
    assert metric(text, "cnidra_published_devices") == 1
    assert metric(text, "cnidra_attachments") == 1

    # the JSON log carries the claim identifiers
    records = [json.loads(line) for line in node.driver.log_text().splitlines()
               if line.startswith("{")]
    prepared = next(r for r in records if r["message"].startswith("prepared claim"))
    assert prepared["claim"] == "default/web-net" and prepared["claim_uid"] == ref.uid

    # the pod goes away; then SIGTERM: sockets removed, exit 0, slices left for the kubelet
    await node.runtime.stop_pod_sandbox(pod)
    assert "net1" not in ip("link", netns=pod_ns)
    await node.runtime.remove_pod_sandbox(pod)
    assert (await node.kubelet.unprepare([ref]))[ref.uid] == ""
    registration = list(node.paths.registry_dir.glob("*.sock"))
    assert registration and (node.paths.plugin_dir / "dra.sock").exists()
    code = await node.driver.stop(timeout=15)
    assert code == 0, node.driver.log_tail(40)
    assert list(node.paths.registry_dir.glob("*.sock")) == []
    assert not (node.paths.plugin_dir / "dra.sock").exists()
    assert our_slices(node), "slices are left for the kubelet to wipe"
    assert "driver stopped" in node.driver.log_text()
    records = [json.loads(line) for line in node.driver.log_text().splitlines()
               if line.startswith("{")]
    assert [r for r in records if r["level"] == "error"] == []


async def _ready(node: Node) -> tuple[int, str] | None:
    status, body = await node.get("/readyz")
    return (status, body) if status == 200 else None
