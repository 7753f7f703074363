"""``cnidra validate``: real files in, exact findings and exit codes out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli.clirun import cnidra

from support import SHARED

MANIFESTS = Path(__file__).resolve().parents[2] / "src" / "cnidra" / "sim" / "manifests"
FIXTURES = SHARED / "fixtures"
DRIVER = "cni.dra.networking.x-k8s.io"
API = "cni.networking.x-k8s.io/v1alpha1"


def _conflist(plugin: dict[str, object]) -> dict[str, object]:
    return {"cniVersion": "1.0.0", "name": "net", "plugins": [plugin]}


def _claim(configs: list[dict[str, Any]], requests: list[dict[str, Any]] | None = None,
           api: str = "resource.k8s.io/v1", name: str = "c1") -> dict[str, Any]:
    return {
        "apiVersion": api, "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {"devices": {
            "requests": requests or [
                {"name": "r1", "exactly": {"deviceClassName": "cni.networking.x-k8s.io"}}],
            "config": configs}},
    }


def _cni(**params: object) -> dict[str, Any]:
    return {"requests": ["r1"], "opaque": {"driver": DRIVER, "parameters": {
        "apiVersion": API, "kind": "CNI", **params}}}


def _write(tmp_path: Path, *objs: object, name: str = "in.json") -> str:
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(o) for o in objs) if name.endswith(".json") and
                    len(objs) == 1 else "\n---\n".join(json.dumps(o) for o in objs))
    return str(path)


def test_talk_manifests_are_clean(capsys: pytest.CaptureFixture[str]) -> None:
    files = [*sorted((FIXTURES / "seed-demo" / "v1").glob("*.yaml")),
             FIXTURES / "seed-demo" / "v1beta1" / "demo.yaml",
             *sorted((FIXTURES / "apiserver-1.36" / "demo").glob("resourceclaim*.json"))]
    run = cnidra(capsys, "validate", *map(str, files))
    assert run.out == ""
    assert run.code == 0
    assert "0 errors, 0 warnings" in run.err
    # 2 templates + 1 class (v1), 1 class + 1 template (v1beta1), the fixture claims/templates
    assert "objects checked" in run.err
    assert int(run.err.split(" objects")[0].rsplit(" ", 1)[-1]) >= 5


def test_embedded_manifests_are_clean(capsys: pytest.CaptureFixture[str]) -> None:
    run = cnidra(capsys, "validate", *map(str, sorted(MANIFESTS.rglob("*.yaml"))))
    assert (run.code, run.out) == (0, "")


def test_schema_errors_name_file_object_and_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, _claim([_cni(ifName="net1", config=_conflist(
        {"type": "macvlan", "master": "eth1"}), mtu=9000)]))
    run = cnidra(capsys, "validate", path)
    assert run.code == 1
    assert run.lines == [
        f"{path}: ResourceClaim team-a/c1: spec.devices.config[0].opaque.parameters.mtu: "
        "unknown field (allowed: apiVersion, kind, ifName, config)"]


def test_wrong_api_version_and_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad_api = _cni(ifName="net1")
    bad_api["opaque"]["parameters"]["apiVersion"] = "cni.networking.x-k8s.io/v1"
    bad_kind = _cni(ifName="net1")
    bad_kind["opaque"]["parameters"]["kind"] = "Network"
    path = _write(tmp_path, _claim([bad_api], name="a"), _claim([bad_kind], name="b"),
                  name="two.yaml")
    run = cnidra(capsys, "validate", path)
    assert run.code == 1
    assert run.lines == [
        f'{path}: ResourceClaim team-a/a: spec.devices.config[0].opaque.parameters.apiVersion: '
        f'"cni.networking.x-k8s.io/v1" is not supported: use "{API}"',
        f'{path}: ResourceClaim team-a/b: spec.devices.config[0].opaque.parameters.kind: '
        '"Network" is not supported: use "CNI" or "CNIPolicy"',
    ]


def test_conflist_and_policy_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    no_type = _cni(ifName="net1", config={"cniVersion": "1.0.0", "name": "n", "plugins": [{}]})
    host_device = _cni(ifName="net1", config=_conflist({"type": "host-device", "device": "eth1"}))
    no_master = _cni(ifName="net1", config=_conflist({"type": "macvlan", "ipam": {"type": "x"}}))
    path = _write(tmp_path, _claim([no_type], name="a"), _claim([host_device], name="b"),
                  _claim([no_master], name="c"), name="p.yaml")
    run = cnidra(capsys, "validate", path)
    prefix = "spec.devices.config[0].opaque.parameters.config"
    allowed = ("bandwidth, bridge, dhcp, firewall, host-local, ipvlan, macvlan, portmap, sbr, "
               "static, tuning, vrf")
    assert run.lines == [
        f"{path}: ResourceClaim team-a/a: {prefix}.plugins[0].type: is required and must be a "
        "non-empty string (the plugin binary)",
        f"{path}: ResourceClaim team-a/b: {prefix}.plugins[0].type: plugin type 'host-device' "
        f"is not allowed by the node's admin policy (allowed: {allowed})",
        f"{path}: ResourceClaim team-a/c: {prefix}.plugins[0].ipam.type: plugin type 'x' is not "
        f"allowed by the node's admin policy (allowed: {allowed})",
        f"{path}: ResourceClaim team-a/c: {prefix}.plugins[0].master: is required for macvlan "
        "by the node's admin policy: set it to the interface of the allocated device",
    ]
    assert run.code == 1
    # the operator's node policy: allow host-device, do not require master
    run = cnidra(capsys, "validate", "--allowed-plugins", "host-device,macvlan,x",
                 "--no-require-master", path)
    assert [line.split(": ", 3)[2] for line in run.lines] == [f"{prefix}.plugins[0].type"]


def test_if_name_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = _conflist({"type": "macvlan", "master": "eth1"})
    two = [{"name": "r1", "exactly": {"deviceClassName": "cni.networking.x-k8s.io"}},
           {"name": "r2", "exactly": {"deviceClassName": "cni.networking.x-k8s.io"}}]
    dup = _claim([_cni(ifName="net1", config=conf),
                  {**_cni(ifName="net1", config=conf), "requests": ["r2"]}], two, name="dup")
    long_name = _claim([_cni(ifName="averyveryverylong0", config=conf)], name="long")
    slash = _claim([_cni(ifName="a/b", config=conf)], name="slash")
    eth0 = _claim([_cni(ifName="eth0", config=conf)], name="eth0")
    count = _claim([_cni(ifName="net1", config=conf)], [
        {"name": "r1", "exactly": {"deviceClassName": "cni.networking.x-k8s.io", "count": 2}}],
        name="count")
    path = _write(tmp_path, dup, long_name, slash, eth0, count, name="if.yaml")
    run = cnidra(capsys, "validate", path)
    p = "spec.devices.config[0].opaque.parameters.ifName"
    assert run.lines == [
        f"{path}: ResourceClaim team-a/dup: spec.devices.config[1].opaque.parameters.ifName: "
        "'net1' is also the interface of request 'r1' (spec.devices.config[0].opaque.parameters"
        ".ifName); pod interface names must be unique within a claim",
        f'{path}: ResourceClaim team-a/long: {p}: "averyveryverylong0" is not a valid interface '
        "name (is 18 bytes long; Linux allows at most 15)",
        f'{path}: ResourceClaim team-a/slash: {p}: "a/b" is not a valid interface name (must not '
        "contain '/')",
        f"{path}: ResourceClaim team-a/eth0: {p}: 'eth0' is reserved in the pod (reserved: eth0, "
        "lo); choose another name, e.g. net1",
        f"{path}: ResourceClaim team-a/count: spec.devices.requests[0].exactly: count 2 gives "
        "this request more than one device, but its config names one pod interface 'net1'; pod "
        "interface names must be unique (use one request per interface)",
    ]


def test_class_policy_narrows_and_class_fills_in(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    device_class = {
        "apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass",
        "metadata": {"name": "macvlan-only"},
        "spec": {"selectors": [{"cel": {"expression": f'device.driver == "{DRIVER}"'}}],
                 "config": [
                     {"opaque": {"driver": DRIVER, "parameters": {
                         "apiVersion": API, "kind": "CNIPolicy",
                         "allowedPluginTypes": ["macvlan", "host-local"]}}},
                     {"opaque": {"driver": DRIVER, "parameters": {
                         "apiVersion": API, "kind": "CNI", "ifName": "net7"}}}]},
    }
    req = [{"name": "r1", "exactly": {"deviceClassName": "macvlan-only"}}]
    ok = _claim([_cni(config=_conflist({"type": "macvlan", "master": "eth1"}))], req, name="ok")
    bridge = _claim([_cni(config=_conflist({"type": "bridge"}))], req, name="bridge")
    policy_in_claim = _claim([{"requests": ["r1"], "opaque": {"driver": DRIVER, "parameters": {
        "apiVersion": API, "kind": "CNIPolicy"}}}], req, name="pol")
    missing = _claim([], req, name="none")
    path = _write(tmp_path, ok, bridge, policy_in_claim, missing, device_class, name="c.yaml")
    run = cnidra(capsys, "validate", path)
    assert run.lines == [
        f"{path}: ResourceClaim team-a/bridge: spec.devices.config[0].opaque.parameters.config."
        "plugins[0].type: plugin type 'bridge' is not allowed by the node's admin policy "
        "(narrowed by the DeviceClass's CNIPolicy) (allowed: host-local, macvlan)",
        f"{path}: ResourceClaim team-a/pol: spec.devices.config[0].opaque.parameters.kind: "
        "CNIPolicy is an admin setting honoured only in a DeviceClass config; remove it from "
        "the claim",
        f"{path}: ResourceClaim team-a/pol: spec.devices.requests[0].exactly: config is "
        "required: give the CNI network configuration list for this device; neither the claim "
        "nor DeviceClass 'macvlan-only' (spec.config[1].opaque.parameters) sets it",
        f"{path}: ResourceClaim team-a/none: spec.devices.requests[0].exactly: config is "
        "required: give the CNI network configuration list for this device; neither the claim "
        "nor DeviceClass 'macvlan-only' (spec.config[1].opaque.parameters) sets it",
    ]


def test_unknown_class_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, _claim([_cni(ifName="net1")]))
    run = cnidra(capsys, "validate", path)
    assert run.code == 0
    assert run.lines == [
        f"{path}: ResourceClaim team-a/c1: spec.devices.config[0].opaque.parameters.config: "
        "warning: is not set: DeviceClass 'cni.networking.x-k8s.io' must give it (it is not "
        "among the files given)"]
    assert "0 errors, 1 warnings" in run.err


def test_shapes_requests_and_selectors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = _conflist({"type": "macvlan", "master": "eth1"})
    flat_in_v1 = _claim([_cni(ifName="net1", config=conf)],
                        [{"name": "r1", "deviceClassName": "cni.networking.x-k8s.io"}], name="flat")
    exactly_in_beta = _claim([_cni(ifName="net1", config=conf)],
                             [{"name": "r1", "exactly": {"deviceClassName": "x"}}],
                             api="resource.k8s.io/v1beta1", name="beta")
    bad_cel = _claim([_cni(ifName="net1", config=conf)], [{"name": "r1", "exactly": {
        "deviceClassName": "cni.networking.x-k8s.io",
        "selectors": [{"cel": {"expression": "device.attributes["}}]}}], name="cel")
    bad_target = _claim([{**_cni(ifName="net1", config=conf), "requests": ["r9"]}], name="tgt")
    old_api = _claim([], api="resource.k8s.io/v1alpha3", name="old")
    template = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
                "metadata": {"name": "t", "namespace": "team-a"},
                "spec": {"spec": _claim([_cni(ifName="lo", config=conf)])["spec"]}}
    path = _write(tmp_path, flat_in_v1, exactly_in_beta, bad_cel, bad_target, old_api, template,
                  name="s.yaml")
    run = cnidra(capsys, "validate", path)
    assert run.lines == [
        f"{path}: ResourceClaim team-a/flat: spec.devices.requests[0]: set exactly or "
        "firstAvailable (deviceClassName sits under exactly in resource.k8s.io/v1; the flat form "
        "is v1beta1)",
        f"{path}: ResourceClaim team-a/beta: spec.devices.requests[0].exactly: is not a field in "
        "resource.k8s.io/v1beta1 (give deviceClassName on the request itself)",
        f"{path}: ResourceClaim team-a/cel: spec.devices.requests[0].exactly.selectors[0].cel."
        "expression: CEL expression 'device.attributes[' does not compile: syntax error at "
        "line 1, column 18",
        f"{path}: ResourceClaim team-a/tgt: spec.devices.config[0].requests[0]: 'r9' is not a "
        "request of this claim (requests: r1)",
        f"{path}: ResourceClaim team-a/tgt: spec.devices.requests[0].exactly: warning: request "
        f"'r1' has no config of kind CNI: add one to spec.devices.config with opaque.driver "
        f"'{DRIVER}' and requests ['r1'], unless DeviceClass 'cni.networking.x-k8s.io' (not "
        "among the files given) has one",
        f"{path}: ResourceClaim team-a/old: apiVersion: 'resource.k8s.io/v1alpha3' is not "
        "supported for ResourceClaim (use resource.k8s.io/v1, resource.k8s.io/v1beta2, "
        "resource.k8s.io/v1beta1)",
        f"{path}: ResourceClaimTemplate team-a/t: spec.spec.devices.config[0].opaque.parameters."
        "ifName: 'lo' is reserved in the pod (reserved: eth0, lo); choose another name, e.g. net1",
    ]
    assert run.code == 1


def test_other_drivers_and_kinds_are_ignored(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = _claim([{"requests": ["r1"], "opaque": {"driver": "gpu.example.com",
                                                    "parameters": {"whatever": True}}}],
                   [{"name": "r1", "exactly": {"deviceClassName": "gpu"}}])
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
    run = cnidra(capsys, "validate", _write(tmp_path, other, pod, name="o.yaml"))
    assert (run.code, run.out) == (0, "")
    assert "1 objects checked" in run.err


def test_list_objects_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _claim([_cni(ifName="", config=_conflist({"type": "macvlan", "master": "eth1"}))])
    path = _write(tmp_path, {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimList",
                             "items": [{k: v for k, v in bad.items() if k != "kind"}]})
    run = cnidra(capsys, "validate", path)
    assert run.lines == [
        f'{path}: ResourceClaim team-a/c1: spec.devices.config[0].opaque.parameters.ifName: "" '
        "is not a valid interface name (must not be empty)"]


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read"),
    ("a: [1, 2\n", "not valid YAML or JSON: did not find expected ',' or ']' at line 2, "
                   "column 1"),
    ("- 1\n- 2\n", "a document is list, not an object"),
])
def test_unreadable_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  content: str | None, message: str) -> None:
    path = tmp_path / "x.yaml"
    if content is not None:
        path.write_text(content)
    good = _write(tmp_path, _claim([_cni(ifName="eth0")]), name="good.json")
    run = cnidra(capsys, "validate", str(path), good)
    assert run.code == 2
    assert f"{path}: {message}" in run.err
    assert "reserved in the pod" in run.out  # the readable file is still checked


def test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, _claim([_cni(ifName="eth0")]))
    run = cnidra(capsys, "validate", "--json", path)
    assert run.code == 1
    assert json.loads(run.out) == [
        {"file": path, "kind": "ResourceClaim", "object": "team-a/c1",
         "path": "spec.devices.config[0].opaque.parameters.ifName",
         "message": "'eth0' is reserved in the pod (reserved: eth0, lo); choose another name, "
                    "e.g. net1", "severity": "error"},
        {"file": path, "kind": "ResourceClaim", "object": "team-a/c1",
         "path": "spec.devices.config[0].opaque.parameters.config",
         "message": "is not set: DeviceClass 'cni.networking.x-k8s.io' must give it (it is not "
                    "among the files given)", "severity": "warning"},
    ]
