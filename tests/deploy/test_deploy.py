"""The Helm chart, the plain manifests rendered from it, and the Dockerfile.

Docker does not run here, so the Dockerfile is checked as text. Helm lint/template run when a
``helm`` binary is on PATH (skipped otherwise, with the reason); the plain manifests are always
validated against the 1.37 OpenAPI schemas and compared with the chart's values and templates.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

import cnidra
from cnidra.claims import DEFAULT_ALLOWED_PLUGIN_TYPES
from cnidra.cli import _commands
from cnidra.runtime import Settings, from_sources
from support import SHARED

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "cnidra"
MANIFESTS = ROOT / "deploy" / "manifests" / "cnidra.yaml"
DOCKERFILE = ROOT / "Dockerfile"
K8S = "1.37.0"
# `make setup` and .ci/run install helm into the virtualenv (scripts/install-helm)
HELM = shutil.which("helm") or shutil.which("helm", path=str(Path(sys.executable).parent))
needs_helm = pytest.mark.skipif(
    HELM is None, reason="no helm binary (run scripts/install-helm); the rendered manifests "
                         "are still validated and compared with the chart")


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _manifests() -> list[dict[str, Any]]:
    return _docs(MANIFESTS.read_text())


def _values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def _one(kind: str, docs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    [obj] = [d for d in (docs if docs is not None else _manifests()) if d["kind"] == kind]
    return obj


def _container() -> dict[str, Any]:
    return _container_of(_manifests())


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


# ------------------------------------------------------------------ schemas


def test_every_manifest_validates_against_the_1_37_schemas() -> None:
    docs = _manifests()
    assert [d["kind"] for d in docs] == [
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet", "DeviceClass"]
    for doc in docs:
        assert kubernetes_validate.validate(doc, K8S, strict=True) == "1.37"


def test_the_schema_check_can_fail() -> None:
    daemonset = copy.deepcopy(_one("DaemonSet"))
    daemonset["spec"]["template"]["spec"]["containers"][0]["mountPropagaton"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, K8S, strict=True)


# ------------------------------------------------------------------ settings


def test_every_setting_is_a_chart_value_and_an_env_var() -> None:
    settings = _values()["settings"]
    env = {e["name"]: e for e in _container()["env"]}
    for f in fields(Settings):
        if f.name in ("extra", "node_name"):
            continue
        assert _camel(f.name) in settings, f"values.yaml settings lacks {_camel(f.name)}"
        assert f"CNIDRA_{f.name.upper()}" in env, f"the DaemonSet lacks CNIDRA_{f.name.upper()}"
    assert set(settings) == {_camel(f.name) for f in fields(Settings)} - {"extra", "nodeName"}
    for name in ("NODE_NAME", "CNIDRA_NODE_NAME"):
        assert env[name]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}


def test_the_rendered_environment_gives_the_driver_its_defaults() -> None:
    environ = {e["name"]: e["value"] for e in _container()["env"] if "value" in e}
    environ["CNIDRA_NODE_NAME"] = "kind-worker"
    assert from_sources(None, environ) == Settings(node_name="kind-worker")
    assert frozenset(_values()["settings"]["allowedPlugins"]) == DEFAULT_ALLOWED_PLUGIN_TYPES


def test_values_defaults_are_the_drivers() -> None:
    settings = _values()["settings"]
    defaults = Settings()
    for f in fields(Settings):
        if f.name in ("extra", "node_name"):
            continue
        value = settings[_camel(f.name)]
        expected = getattr(defaults, f.name)
        if isinstance(expected, tuple):
            value = tuple(value)
        assert value == expected, f.name


def test_templates_use_only_defined_values() -> None:
    values = _values()
    for template in (CHART / "templates").iterdir():
        text = template.read_text()
        for ref in re.findall(r"\.Values((?:\.[A-Za-z]\w*)+)", text):
            node: Any = values
            for part in ref.strip(".").split("."):
                assert isinstance(node, dict) and part in node, f"{template.name}: .Values{ref}"
                node = node[part]
        for ref in re.findall(r"\$s((?:\.[A-Za-z]\w*)+)", text):
            assert ref.strip(".") in values["settings"], f"{template.name}: $s{ref}"


# ------------------------------------------------------------------ the DaemonSet


def test_daemonset_host_access() -> None:
    values = _values()
    spec = _one("DaemonSet")["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert "hostPID" not in spec
    assert spec["priorityClassName"] == "system-node-critical"
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert spec["serviceAccountName"] == _one("ServiceAccount")["metadata"]["name"]
    container = _container()
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    host = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    s = Settings()
    for path in (s.kubelet_registry_dir, s.plugin_dir, str(Path(s.nri_socket).parent),
                 "/var/run/netns", s.state_dir, "/var/lib/cni"):
        assert host[mounts[path]["name"]] == path, path
    assert mounts["/var/run/netns"]["mountPropagation"] == "HostToContainer"
    assert "/opt/cni/bin" not in mounts  # the image's plugins unless cni.hostBinDir is set
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert container["image"] == f"{values['image']['repository']}:{app_version}"


def test_daemonset_privileges_and_probes() -> None:
    container = _container()
    sc = container["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN", "SYS_ADMIN"]}
    assert sc["privileged"] is False
    assert sc["runAsUser"] == 0
    assert "allowPrivilegeEscalation" not in sc  # the API refuses false together with SYS_ADMIN
    port = int(Settings().metrics_address.rpartition(":")[2])
    assert container["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    dockerfile = DOCKERFILE.read_text()
    for cap in sc["capabilities"]["add"]:
        assert f"#   {cap}" in dockerfile, f"the Dockerfile does not explain {cap}"


# ------------------------------------------------------------------ RBAC and DeviceClass


def _grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    return {(group, resource, verb, name)
            for rule in rules for group in rule["apiGroups"] for resource in rule["resources"]
            for verb in rule["verbs"] for name in rule.get("resourceNames") or ["*"]}


def test_clusterrole_is_least_privilege_and_covers_the_1_36_minimum() -> None:
    rules = _one("ClusterRole")["rules"]
    grants = _grants(rules)
    fixture = _docs((SHARED / "fixtures" / "apiserver-1.36" / "rbac" /
                     "clusterrole-cni-dra-driver.yaml").read_text())
    minimal = _grants(_one("ClusterRole", fixture)["rules"])
    assert minimal <= grants, minimal - grants
    driver = Settings().driver_name
    assert {("resource.k8s.io", "resourceclaims/driver", v, driver)
            for v in ("associated-node:patch", "associated-node:update")} <= grants
    assert not any("arbitrary-node" in g[2] for g in grants)
    assert not any("*" in (g[0], g[1], g[2]) for g in grants)
    assert {g[2] for g in grants if g[1] == "resourceclaims"} == {"get", "list", "watch"}
    binding = _one("ClusterRoleBinding")
    assert binding["roleRef"]["name"] == _one("ClusterRole")["metadata"]["name"]
    sa = _one("ServiceAccount")["metadata"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"],
                                    "namespace": sa["namespace"]}]


def test_deviceclass_is_the_talks() -> None:
    talk = _docs((ROOT / "src" / "cnidra" / "sim" / "manifests" / "v1" / "deviceclass.yaml")
                 .read_text())[0]
    ours = _one("DeviceClass")
    assert (ours["apiVersion"], ours["metadata"]["name"], ours["spec"]) == (
        talk["apiVersion"], talk["metadata"]["name"], talk["spec"])


# ------------------------------------------------------------------ Dockerfile


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), " ".join(rest.split())))
    return out


def test_dockerfile() -> None:
    steps = _instructions()
    assert steps[0][0] == "FROM"
    assert re.fullmatch(r"python:3\.1[1-9]-slim-\w+", steps[0][1])
    runs = " && ".join(arg for op, arg in steps if op == "RUN")
    assert "apt-get install -y --no-install-recommends containernetworking-plugins" in runs
    assert "pip install --no-cache-dir ." in runs
    assert steps[-1] == ("ENTRYPOINT", '["cnidra", "driver"]')
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["cnidra"] == "cnidra.cli:main"
    assert "driver" in {m.__name__.rsplit("._", 1)[-1] for m in _commands.ALL}
    copied = [arg.split()[:-1] for op, arg in steps if op == "COPY"]
    for sources in copied:
        for source in sources:
            assert (ROOT / source).exists(), source


# ------------------------------------------------------------------ helm itself


def _helm(*args: str) -> str:
    assert HELM is not None
    done = subprocess.run([HELM, *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@needs_helm
def test_helm_lint() -> None:
    _helm("lint", "--strict", str(CHART))


@needs_helm
def test_helm_template_matches_the_manifests() -> None:
    rendered = _docs(_helm("template", "cnidra", str(CHART), "--namespace", "kube-system"))
    assert rendered == _manifests()


def _container_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [container] = _one("DaemonSet", docs)["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


OPTIONS = Path(__file__).parent / "rendered" / "all-options.yaml"
OPTION_VALUES = ["--set", "serviceMonitor.enabled=true,rollingUpdate.enabled=true",
                 "--set", "cni.hostBinDir=/opt/cni/bin,privileged=true",
                 "--set", "deviceClass.apiVersion=resource.k8s.io/v1beta1"]


def test_optional_parts_render_valid_objects() -> None:
    docs = _docs(OPTIONS.read_text())
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":  # a CRD: not in the OpenAPI schemas
            assert doc["spec"]["endpoints"] == [
                {"interval": "30s", "path": "/metrics", "port": "metrics"}]
            continue
        version = "1.34.0" if doc["apiVersion"].endswith("v1beta1") else K8S
        kubernetes_validate.validate(doc, version, strict=True)
    container = _container_of(docs)
    env = {e["name"]: e for e in container["env"]}
    assert env["CNIDRA_ROLLING_UPDATE_POD_UID"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.uid"}}
    assert _one("DaemonSet", docs)["spec"]["updateStrategy"]["rollingUpdate"] == {
        "maxSurge": 1, "maxUnavailable": 0}
    assert {"mountPath": "/opt/cni/bin", "name": "cni-bin", "readOnly": True} in container[
        "volumeMounts"]
    assert container["securityContext"]["privileged"] is True
    service = _one("Service", docs)
    assert service["spec"]["ports"][0]["port"] == 9177
    assert _one("ServiceMonitor", docs)["spec"]["selector"]["matchLabels"] == service["spec"][
        "selector"]


@needs_helm
def test_helm_template_with_options_matches() -> None:
    rendered = _docs(_helm("template", "cnidra", str(CHART), "--namespace", "kube-system",
                           *OPTION_VALUES))
    assert rendered == _docs(OPTIONS.read_text())


def test_chart_version_is_the_packages() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"] == cnidra.__version__
