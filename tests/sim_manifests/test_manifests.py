"""The embedded demo manifests are the talk's, unchanged; loading and pod expansion."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnidra.errors import ConfigError
from cnidra.sim._manifests import MANIFESTS, default_manifests, deployment_pods, load
from support import SHARED

SEED = SHARED / "fixtures" / "seed-demo"


def test_embedded_manifests_are_byte_identical_to_the_fixtures() -> None:
    shipped = sorted(p.relative_to(MANIFESTS) for p in MANIFESTS.rglob("*.yaml"))
    expected = sorted(p.relative_to(SEED) for p in SEED.rglob("*.yaml"))
    assert shipped == expected
    for rel in shipped:
        assert (MANIFESTS / rel).read_bytes() == (SEED / rel).read_bytes(), rel


def test_default_demo_has_class_template_and_15_replicas() -> None:
    m = load(default_manifests("v1"))
    assert [o["kind"] for o in m.objects] == ["DeviceClass", "ResourceClaimTemplate"]
    (deployment,) = m.workloads
    pods = deployment_pods(deployment)
    assert len(pods) == 15
    assert len({p["metadata"]["name"] for p in pods}) == 15
    name = pods[0]["metadata"]["name"]
    assert name.startswith("demo-application-")
    assert pods[0]["spec"]["resourceClaims"] == [
        {"name": "macvlan-eth1-attachment",
         "resourceClaimTemplateName": "macvlan-eth1-attachment"}]
    assert pods[0]["metadata"]["labels"]["app"] == "demo-application"
    assert len(deployment_pods(deployment, replicas=3)) == 3


def test_v1beta1_variant_and_unknown_variant() -> None:
    m = load(default_manifests("v1beta1"))
    assert {o["apiVersion"] for o in m.objects} == {"resource.k8s.io/v1beta1"}
    with pytest.raises(ConfigError, match="unknown demo variant"):
        default_manifests("v2")


def test_bad_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load([tmp_path / "missing.yaml"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load([bad])
    nokind = tmp_path / "nokind.yaml"
    nokind.write_text("metadata: {}\n")
    with pytest.raises(ConfigError, match="apiVersion and kind are required"):
        load([nokind])
