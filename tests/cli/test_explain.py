"""``cnidra explain``: the talk's template against the real 1.36 slices, and failures."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from cli.clirun import cnidra

from cnidra.cli import main
from cnidra.sim.apiserver import ApiServer
from support import SHARED

DEMO = SHARED / "fixtures" / "seed-demo" / "v1"
SLICES = SHARED / "fixtures" / "apiserver-1.36" / "demo" / "resourceslices.v1.list.json"
SLICES_BETA = SHARED / "fixtures" / "apiserver-1.36" / "demo" / "resourceslices.v1beta1.list.json"
DRIVER = "cni.dra.networking.x-k8s.io"
EXPR = 'device.attributes["cni.dra.networking.x-k8s.io"].name == "eth1"'


def test_template_against_real_slices(capsys: pytest.CaptureFixture[str]) -> None:
    run = cnidra(capsys, "explain", "default/macvlan-eth1-attachment",
                 "--manifests", str(DEMO / "demo.yaml"), str(DEMO / "deviceclass.yaml"),
                 "--slices", str(SLICES))
    assert run.code == 0, run.err
    rejected = (f"claim default/macvlan-eth1-attachment selector #0 ({EXPR}) is false")
    assert run.lines == [
        "ResourceClaimTemplate default/macvlan-eth1-attachment:",
        f"  node kind-worker: can allocate: request macvlan-eth1 -> {DRIVER}/kind-worker/eth1",
        f"    {DRIVER}/kind-worker/eth0 for request macvlan-eth1: {rejected}",
        f"    {DRIVER}/kind-worker/eth1 for request macvlan-eth1: selected",
        "  node kind-worker2: cannot allocate: request macvlan-eth1: 0 of 1 devices available",
        f"    {DRIVER}/kind-worker2/eth0 for request macvlan-eth1: {rejected}",
        "  result: would be allocated on kind-worker",
    ]


def test_v1beta1_slices_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    run = cnidra(capsys, "explain", "macvlan-eth1-attachment", "--json",
                 "--manifests", str(SHARED / "fixtures" / "seed-demo" / "v1beta1" / "demo.yaml"),
                 "--slices", str(SLICES_BETA))
    assert run.code == 0, run.err
    doc = json.loads(run.out)
    assert doc["feasibleNodes"] == ["kind-worker"]
    assert [r["device"] for r in doc["nodes"]["kind-worker"]["results"]] == ["eth1"]
    assert doc["nodes"]["kind-worker2"]["ok"] is False


def test_class_selector_rejects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other_class = {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass",
                   "metadata": {"name": "cni.networking.x-k8s.io"},
                   "spec": {"selectors": [{"cel": {"expression":
                                                   'device.driver == "other.example.com"'}}]}}
    (tmp_path / "class.json").write_text(json.dumps(other_class))
    run = cnidra(capsys, "explain", "macvlan-eth1-attachment", "--manifests",
                 str(DEMO / "demo.yaml"), str(tmp_path / "class.json"), "--slices", str(SLICES))
    assert run.code == 1
    assert (f"    {DRIVER}/kind-worker/eth1 for request macvlan-eth1: class "
            'cni.networking.x-k8s.io selector #0 (device.driver == "other.example.com") is '
            "false") in run.lines
    assert run.lines[-1] == "  result: cannot be allocated on any node"


@pytest.mark.parametrize(("args", "message"), [
    (["nope", "--manifests", str(DEMO / "demo.yaml"), "--slices", str(SLICES)],
     "cnidra explain: CLAIM: no ResourceClaim or ResourceClaimTemplate default/nope (found: "
     "ResourceClaimTemplate default/macvlan-eth1-attachment)"),
    (["macvlan-eth1-attachment", "--manifests", str(DEMO / "demo.yaml")],
     "cnidra explain: slices: no ResourceSlices given: pass --slices FILE (or --cluster)"),
    (["x", "--slices", "/nonexistent/slices.json"],
     "cnidra explain: /nonexistent/slices.json: cannot read: [Errno 2] No such file or "
     "directory: '/nonexistent/slices.json'"),
])
def test_bad_input_exits_2(capsys: pytest.CaptureFixture[str], args: list[str],
                           message: str) -> None:
    run = cnidra(capsys, "explain", *args)
    assert (run.code, run.err.strip()) == (2, message)


async def test_cluster_mode_reads_the_api_server(capsys: pytest.CaptureFixture[str]) -> None:
    template, _ = list(yaml.safe_load_all((DEMO / "demo.yaml").read_text()))
    device_class = yaml.safe_load((DEMO / "deviceclass.yaml").read_text())
    claim = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
             "metadata": {"name": "c1", "namespace": "default"},
             "spec": template["spec"]["spec"]}
    async with ApiServer() as server:
        store = server.store
        store.create("deviceclasses.resource.k8s.io", device_class)
        store.create("resourceclaims.resource.k8s.io", claim, "default")
        for item in json.loads(SLICES.read_text())["items"]:
            meta = {"name": item["metadata"]["name"]}
            store.create("resourceslices.resource.k8s.io", {"apiVersion": "resource.k8s.io/v1",
                                            "kind": "ResourceSlice", "metadata": meta,
                                            "spec": item["spec"]})
        code = await asyncio.to_thread(main, ["explain", "c1", "--cluster", "--kubeconfig",
                                              str(server.kubeconfig)])
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = out.out.splitlines()
    assert lines[0] == "ResourceClaim default/c1:"
    assert f"  node kind-worker: can allocate: request macvlan-eth1 -> {DRIVER}/kind-worker/eth1" \
        in lines
    assert lines[-1] == "  result: would be allocated on kind-worker"


def test_cluster_mode_unreachable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "x", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}]}))
    run = cnidra(capsys, "explain", "c1", "--cluster", "--kubeconfig", str(kubeconfig))
    assert run.code == 2
    assert run.err.startswith("cnidra explain: ")
