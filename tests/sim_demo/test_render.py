"""The demo's report from stored objects (no root): tables, states, manifests selection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cnidra import cli
from cnidra.errors import ConfigError
from cnidra.sim._cluster import Leftovers, SandboxRetry, retry_reason
from cnidra.sim._demo import (
    DemoOptions,
    DemoResult,
    PodView,
    _verdicts,
    claim_state,
    claims_table,
    leftovers_line,
    pods_table,
    retries_lines,
    select_manifests,
    slices_table,
    status_devices_yaml,
    summary_line,
    table,
)
from support import SHARED

FIX = SHARED / "fixtures" / "apiserver-1.36"
SEED = SHARED / "fixtures" / "seed-demo"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIX / name).read_text())
    return data


def test_table_aligns_columns_like_kubectl() -> None:
    text = table(["NAME", "STATE"], [["a-long-name", "pending"], ["b", "allocated,reserved"]])
    assert text.splitlines() == ["NAME          STATE", "a-long-name   pending",
                                 "b             allocated,reserved"]


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_slices_show_devices_and_their_name_attribute(version: str) -> None:
    items = fixture(f"demo/resourceslices.{version}.list.json")["items"]
    lines = slices_table(items).splitlines()
    assert lines[0].split()[:4] == ["NAME", "NODE", "DRIVER", "POOL"]
    worker = next(ln for ln in lines if " kind-worker " in ln)
    worker2 = next(ln for ln in lines if " kind-worker2 " in ln)
    assert worker.endswith("eth0 (name=eth0), eth1 (name=eth1)")
    assert worker2.endswith("eth0 (name=eth0)")


def test_claim_states_and_status_devices() -> None:
    after = fixture("status-write/adminaccess-claim.after-apply.v1.json")
    assert claim_state(after) == "allocated,reserved"
    unallocated = {"metadata": {"name": "x"}, "status": {}}
    assert claim_state(unallocated) == "pending"
    assert claim_state({"metadata": {"name": "x", "deletionTimestamp": "now"}}) == "deleted"
    row = claims_table([after, unallocated]).splitlines()
    assert row[1].split() == [after["metadata"]["name"], "allocated,reserved", "kind-worker/eth1",
                              "True"]
    assert row[2].split() == ["x", "pending", "-", "-"]
    text = status_devices_yaml(after)
    assert "interfaceName: net1" in text and "- 10.10.1.16/24" in text
    assert "hardwareAddress: 6e:9c:2b:41:d0:16" in text and "reason: NetworkInterfaceReady" in text


def test_pods_table_and_summary() -> None:
    pods = [PodView(f"demo-{i}", "kind-worker", "Running", "net1", f"10.10.1.{i + 2}/24",
                    f"aa:bb:cc:dd:ee:{i:02x}", "Healthy", kind="macvlan", up=True)
            for i in range(15)]
    text = pods_table(pods, health=True)
    assert text.splitlines()[0].split() == ["NAME", "STATUS", "NODE", "NET1", "ADDRESS", "NET1",
                                            "MAC", "DEVICE", "HEALTH"]
    assert len(text.splitlines()) == 16
    result = DemoResult(pods=pods, by_node={"kind-worker": 15}, claims_ready=15,
                        claims_total=15, ping=(True, "1 received"), leftovers=Leftovers())
    assert summary_line(result) == ("15/15 pods on kind-worker; 15 distinct net1 addresses in "
                                    "10.10.1.0/24 (macvlan, 15/15 UP); 15/15 claims Ready; "
                                    "ping ok; nothing left")
    _verdicts(result, 15)
    assert result.ok
    pods[3].up = False
    _verdicts(result, 15)
    assert result.problems == ["1 pods' interface not UP"]


def test_leftovers_are_named() -> None:
    left = Leftovers(pod_namespaces=["cns1x2ab-p1"], links={"kind-worker": ["v1234"]},
                     ipam_leases={"kind-worker": ["macvlan-eth1/10.10.1.2"]},
                     checkpoint={"kind-worker": ["uid-1"]})
    line = leftovers_line(left)
    assert line.startswith("LEFT BEHIND: 1 interfaces, 1 pod namespaces, 1 IPAM leases, "
                           "1 checkpoint entries, 0 pods, 0 claims")
    assert "kind-worker: lease macvlan-eth1/10.10.1.2" in line and "cns1x2ab-p1" in line
    assert leftovers_line(Leftovers()).startswith("nothing left: 0 interfaces")


def test_default_manifests_are_the_talks() -> None:
    manifests, shown = select_manifests(DemoOptions())
    assert [o["kind"] for o in manifests.objects] == ["DeviceClass", "ResourceClaimTemplate"]
    assert [w["kind"] for w in manifests.workloads] == ["Deployment"]
    assert manifests.workloads[0]["spec"]["replicas"] == 15
    assert shown == ["<builtin>/v1/deviceclass.yaml", "<builtin>/v1/demo.yaml"]


def test_v1beta1_gets_the_talks_deployment() -> None:
    manifests, shown = select_manifests(DemoOptions(api_version="v1beta1", replicas=3))
    assert {o["apiVersion"] for o in manifests.objects} == {"resource.k8s.io/v1beta1"}
    deployment = manifests.workloads[0]
    assert deployment["apiVersion"] == "apps/v1" and deployment["spec"]["replicas"] == 3
    assert shown[-1] == "<builtin>/v1/demo.yaml (Deployment only)"


def test_shared_capacity_alone_gets_the_class_and_a_deployment() -> None:
    manifests, shown = select_manifests(DemoOptions(manifests=(SEED / "v1/shared-capacity.yaml",)))
    assert [o["kind"] for o in manifests.objects] == ["DeviceClass", "ResourceClaimTemplate"]
    claims = manifests.workloads[0]["spec"]["template"]["spec"]["resourceClaims"]
    assert [c["resourceClaimTemplateName"] for c in claims] == ["macvlan-eth1-shared"]
    assert len(shown) == 3


def test_bad_manifest_paths_and_replicas(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        select_manifests(DemoOptions(manifests=(tmp_path / "missing.yaml",)))
    with pytest.raises(ConfigError, match="replicas"):
        select_manifests(DemoOptions(replicas=-1))


def test_demo_without_root_says_so(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert cli.main(["demo"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cnidra demo: needs root") and err.count("\n") == 1


def test_retried_sandboxes_are_counted_by_reason() -> None:
    hook = ("NRI plugin failed RunPodSandbox: cnidra: RunPodSandbox for pod default/demo-a "
            "(sandbox 0123456789abc) did not finish within 1.75s (code 2)")
    failed = ("NRI plugin failed RunPodSandbox: cnidra: RunPodSandbox for pod default/demo-b "
              "(sandbox 0123456789abd): ADD net1: macvlan: file exists (code 2)")
    assert retry_reason(Exception(hook)) == "RunPodSandbox did not finish within 1.75s"
    assert retry_reason(Exception(failed)) == "RunPodSandbox: ADD net1: macvlan: file exists"
    assert retry_reason(Exception("socket closed")) == "RunPodSandbox: socket closed"
    retried = [SandboxRetry("default/demo-a", "kind-worker", 1, retry_reason(Exception(hook))),
               SandboxRetry("default/demo-b", "kind-worker", 1, retry_reason(Exception(hook))),
               SandboxRetry("default/demo-b", "kind-worker", 2, retry_reason(Exception(failed)))]
    lines = retries_lines(retried)
    assert lines[:2] == ["2 sandboxes retried after: RunPodSandbox did not finish within 1.75s",
                         "1 sandbox retried after: RunPodSandbox: ADD net1: macvlan: file exists"]
    assert "default/demo-b: 2 failed attempts" in lines[2]
    assert retries_lines([]) == []
    assert "3 sandboxes retried" in summary_line(DemoResult(retried=retried))
