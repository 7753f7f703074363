"""compute_plan with the real 1.36 claims and every error a tenant or admin can cause."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from claims.claimkit import (
    API,
    DRIVER,
    MACVLAN,
    cni,
    device_class,
    entry,
    fixture_claim,
    make_claim,
    result,
)

from cnidra.claims import AdminPolicy, ClaimConfigError, check_pod_interfaces, compute_plan
from cnidra.errors import ConfigError
from cnidra.model.plan import ClaimPlan


def plan(claim: dict[str, Any], **kw: Any) -> ClaimPlan:
    return compute_plan(claim, kw.pop("classes", {}), driver=DRIVER, **kw)


def fails(claim: dict[str, Any], path: str, text: str, **kw: Any) -> ClaimConfigError:
    with pytest.raises(ClaimConfigError) as exc:
        plan(claim, **kw)
    assert exc.value.path == path, str(exc.value)
    assert text in exc.value.message, str(exc.value)
    assert str(exc.value).startswith(f"claim {exc.value.claim}: {path}: ")
    return exc.value


@pytest.mark.parametrize("version", ["v1", "v1beta1", "v1beta2"])
def test_adminaccess_fixture(version: str) -> None:
    p = plan(fixture_claim(f"adminaccess.{version}"), classes={"cni.networking.x-k8s.io":
                                                               device_class()})
    assert (p.namespace, p.name) == ("default",
                                     "demo-application-5f7f6b6894-4g24-macvlan-eth1-attachmenbj9zx")
    assert p.claim_uid == "c90f1819-d334-4ea0-b341-b2d5ee6842fe"
    assert p.pod_uids == ("9b9f70b0-6d10-489c-bbc4-18fc71da0a2d",)
    (itf,) = p.interfaces
    assert (itf.pool, itf.device, itf.device_if_name, itf.if_name) == (
        "kind-worker", "eth1", "eth1", "net1")
    assert itf.admin_access is True
    assert itf.share_id == "8da36f67-19a7-4e63-939a-033552ec117b"
    assert (itf.network_name, itf.cni_version, itf.config_source) == (
        "macvlan-eth1", "1.0.0", "FromClaim")
    assert json.loads(itf.conflist)["plugins"][0]["master"] == "eth1"
    assert itf.conflist == json.dumps(json.loads(itf.conflist), sort_keys=True,
                                      separators=(",", ":")).encode()
    (dev,) = p.devices
    assert (dev.request_names, dev.pool_name, dev.device_name, dev.share_id) == (
        ("macvlan-eth1",), "kind-worker", "eth1", "8da36f67-19a7-4e63-939a-033552ec117b")


def test_shared_capacity_fixture_same_in_v1_and_v1beta1() -> None:
    v1 = plan(fixture_claim("shared-capacity.v1"))
    assert v1 == plan(fixture_claim("shared-capacity.v1beta1"))
    (itf,) = v1.interfaces
    assert itf.admin_access is False
    assert itf.share_id == "53f576d7-69ef-4546-a717-901d7a05f53e"
    assert itf.cni_version == "1.1.0"
    assert v1.pod_uids == ("a0865b0f-58bf-4506-91c1-a5f8cd360e8f",)


def test_deterministic_and_canonical() -> None:
    claim = make_claim()
    reordered = copy.deepcopy(claim)
    conf = reordered["status"]["allocation"]["devices"]["config"][0]["opaque"]["parameters"]
    conf["config"] = dict(reversed(list(conf["config"].items())))
    assert plan(claim).interfaces[0].conflist == plan(reordered).interfaces[0].conflist
    assert plan(claim) == plan(copy.deepcopy(claim))


def test_other_drivers_ignored() -> None:
    claim = make_claim(
        [result(), result("gpu", "gpu0", driver="gpu.example.com")],
        [entry({"anything": True}, ["gpu"], driver="gpu.example.com"), entry(cni(), ["net"])],
    )
    p = plan(claim)
    assert [i.device for i in p.interfaces] == ["eth1"]
    assert [d.device_name for d in p.devices] == ["eth1"]


def test_not_allocated() -> None:
    err = fails(make_claim(allocated=False), "status.allocation", "not allocated yet")
    assert err.claim == "default/foo"


def test_class_then_claim_per_field() -> None:
    claim = make_claim(configs=[
        entry(cni(if_name="cls0"), ["net"], source="FromClass"),
        entry({"apiVersion": API, "kind": "CNI", "ifName": "net7"}, ["net"]),
    ])
    (itf,) = plan(claim).interfaces
    assert (itf.if_name, itf.if_name_source, itf.config_source) == ("net7", "FromClaim",
                                                                   "FromClass")
    other = copy.deepcopy(MACVLAN) | {"name": "claims-own"}
    claim = make_claim(configs=[
        entry(cni(if_name="cls0"), ["net"], source="FromClass"),
        entry({"apiVersion": API, "kind": "CNI", "config": other}, ["net"]),
    ])
    (itf,) = plan(claim).interfaces
    assert (itf.if_name, itf.network_name, itf.config_source) == ("cls0", "claims-own",
                                                                 "FromClaim")


def test_two_configs_same_source() -> None:
    claim = make_claim(configs=[entry(cni(), ["net"]), entry(cni("net2"), [])])
    fails(claim, "spec.devices.config[1].opaque.parameters",
          "two CNI configs of driver 'cni.dra.networking.x-k8s.io' from the claim "
          "(spec.devices.config[0].opaque.parameters and this one)")
    claim = make_claim(configs=[entry(cni(), ["net"], source="FromClass"),
                                entry(cni(), ["net"], source="FromClass")])
    fails(claim, "status.allocation.devices.config[1].opaque.parameters", "from the DeviceClass")


def test_requests_targeting() -> None:
    claim = make_claim(
        [result("net/fast", "eth1"), result("other", "eth2")],
        [entry(cni("net1"), ["net"]),
         entry(cni("net2", copy.deepcopy(MACVLAN) | {"plugins": [{"type": "bridge"}]}),
               ["other"])],
        requests=[{"name": "net", "firstAvailable": [{"name": "fast", "deviceClassName": "c"}]},
                  {"name": "other", "exactly": {"deviceClassName": "c"}}],
    )
    p = plan(claim)
    assert [(i.request, i.if_name) for i in p.interfaces] == [("net/fast", "net1"),
                                                              ("other", "net2")]
    assert p.devices[0].request_names == ("net",)
    everything = make_claim([result("a", "eth1")], [entry(cni("x1"))], requests=None)
    assert plan(everything).interfaces[0].if_name == "x1"


def test_if_name_required_and_config_required() -> None:
    fails(make_claim(configs=[entry(cni(if_name=None), ["net"])]),
          "spec.devices.config[0].opaque.parameters.ifName", "is required")
    fails(make_claim(configs=[entry({"apiVersion": API, "kind": "CNI", "ifName": "n1"})]),
          "spec.devices.config[0].opaque.parameters.config", "is required")


def test_no_config_for_device() -> None:
    fails(make_claim(configs=[]), "status.allocation.devices.results[0]",
          "device 'eth1' of request 'net' has no config of kind CNI: add one to "
          "spec.devices.config with opaque.driver 'cni.dra.networking.x-k8s.io' and requests "
          "['net']")


def test_invalid_if_name_message() -> None:
    err = fails(make_claim(configs=[entry(cni("eth0/1"), ["net"])]),
                "spec.devices.config[0].opaque.parameters.ifName", "is not a valid")
    assert str(err) == (
        'claim default/foo: spec.devices.config[0].opaque.parameters.ifName: "eth0/1" is not a '
        "valid interface name (must not contain '/')"
    )


def test_reserved_if_name() -> None:
    fails(make_claim(configs=[entry(cni("eth0"), ["net"])]),
          "spec.devices.config[0].opaque.parameters.ifName", "'eth0' is reserved in the pod")


def test_duplicate_if_name_within_claim() -> None:
    bridge = {"cniVersion": "1.0.0", "name": "b", "plugins": [{"type": "bridge"}]}
    claim = make_claim([result("net", "eth1"), result("net", "eth2")],
                       [entry(cni(config=bridge))])
    fails(claim, "spec.devices.config[0].opaque.parameters.ifName",
          "'net1' is used by device 'eth1' (request 'net') and device 'eth2' (request 'net')")


def test_conflist_validation_path() -> None:
    bad = copy.deepcopy(MACVLAN)
    del bad["plugins"][0]["type"]
    fails(make_claim(configs=[entry(cni(config=bad), ["net"])]),
          "spec.devices.config[0].opaque.parameters.config.plugins[0].type", "is required")
    fails(make_claim(configs=[entry(cni(config={"plugins": [{"type": "macvlan"}]}))]),
          "spec.devices.config[0].opaque.parameters.config.name", "is required")


def test_wrong_api_version_in_our_config() -> None:
    fails(make_claim(configs=[entry({"apiVersion": "x/v1", "kind": "CNI"})]),
          "spec.devices.config[0].opaque.parameters.apiVersion", "is not supported")


def conflist(*plugins: dict[str, Any]) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "n", "plugins": list(plugins)}


def test_policy_plugin_types() -> None:
    path = "spec.devices.config[0].opaque.parameters.config.plugins[0]"
    fails(make_claim(configs=[entry(cni(config=conflist({"type": "host-device",
                                                         "device": "eth1"})))]),
          f"{path}.type", "plugin type 'host-device' is not allowed by the node's admin policy")
    fails(make_claim(configs=[entry(cni(config=conflist({"type": "bridge",
                                                         "ipam": {"type": "whereabouts"}})))]),
          f"{path}.ipam.type", "'whereabouts' is not allowed")
    open_policy = AdminPolicy(allowed_plugin_types=frozenset({"host-device"}))
    claim = make_claim(configs=[entry(cni(config=conflist({"type": "host-device"})))])
    assert plan(claim, policy=open_policy).interfaces[0].if_name == "net1"


def test_policy_master() -> None:
    path = "spec.devices.config[0].opaque.parameters.config.plugins[1].master"
    wrong = conflist({"type": "tuning"}, {"type": "macvlan", "master": "eth2"})
    fails(make_claim(configs=[entry(cni(config=wrong))]), path,
          "'eth2' is not the allocated device's interface 'eth1'")
    missing = conflist({"type": "tuning"}, {"type": "ipvlan"})
    fails(make_claim(configs=[entry(cni(config=missing))]), path,
          "is required for ipvlan by the node's admin policy: set it to 'eth1'")
    relaxed = AdminPolicy(require_master_is_allocated_device=False)
    assert plan(make_claim(configs=[entry(cni(config=wrong))]), policy=relaxed).interfaces
    # device names may be sanitized labels of the real interface names
    renamed = conflist({"type": "macvlan", "master": "enp0s1.100"})
    claim = make_claim([result(device="enp0s1-100")], [entry(cni(config=renamed))])
    p = plan(claim, device_if_name={"enp0s1-100": "enp0s1.100"}.get)
    assert p.interfaces[0].device_if_name == "enp0s1.100"
    fails(claim, "spec.devices.config[0].opaque.parameters.config.plugins[0].master",
          "not a known interface on this node", device_if_name=lambda _d: None)


def test_class_policy_narrows_only() -> None:
    narrow = {"apiVersion": API, "kind": "CNIPolicy", "allowedPluginTypes": ["bridge"]}
    claim = make_claim(configs=[entry(narrow, ["net"], source="FromClass"),
                                entry(cni(), ["net"])])
    fails(claim, "spec.devices.config[0].opaque.parameters.config.plugins[0].type",
          "'macvlan' is not allowed by the node's admin policy (narrowed by the DeviceClass's "
          "CNIPolicy) (allowed: bridge)")
    widen = {"apiVersion": API, "kind": "CNIPolicy", "allowedPluginTypes": ["host-device"],
             "requireMasterIsAllocatedDevice": False}
    claim = make_claim(configs=[entry(widen, ["net"], source="FromClass"),
                                entry(cni(config=conflist({"type": "host-device"})), ["net"])])
    fails(claim, "spec.devices.config[0].opaque.parameters.config.plugins[0].type",
          "allowed: none")
    claim = make_claim(configs=[entry(widen, ["net"], source="FromClass"),
                                entry(cni(config=conflist({"type": "macvlan"})), ["net"])])
    fails(claim, "spec.devices.config[0].opaque.parameters.config.plugins[0].type",
          "not allowed")


def test_policy_kind_refused_in_claim() -> None:
    claim = make_claim(configs=[entry({"apiVersion": API, "kind": "CNIPolicy"}, ["net"]),
                                entry(cni(), ["net"])])
    fails(claim, "spec.devices.config[0].opaque.parameters.kind",
          "honoured only in a DeviceClass config")


def test_class_config_errors_name_the_device_class() -> None:
    bad = cni(config=conflist({"type": "host-device"}))
    klass = {"metadata": {"name": "cni-class"},
             "spec": {"config": [{"opaque": {"driver": "x", "parameters": {}}},
                                 {"opaque": {"driver": DRIVER, "parameters": bad}}]}}
    claim = make_claim(configs=[entry(bad, ["net"], source="FromClass")])
    err = fails(claim, "status.allocation.devices.config[0].opaque.parameters.config.plugins[0]"
                ".type", "[from DeviceClass 'cni-class' (spec.config[1]): ask the cluster admin]",
                classes={"cni-class": klass})
    assert "host-device" in err.message
    fails(claim, "status.allocation.devices.config[0].opaque.parameters.config.plugins[0].type",
          "[from DeviceClass 'cni-class': ask the cluster admin]")


def test_malformed_claim() -> None:
    claim = make_claim()
    claim["status"]["allocation"]["devices"]["results"] = {"not": "a list"}
    fails(claim, "status.allocation.devices.results", "must be a list")
    claim = make_claim()
    claim["status"]["allocation"]["devices"]["results"][0]["device"] = 7
    fails(claim, "status.allocation.devices.results[0].device", "must be a string")


def test_duplicates_across_claims_of_a_pod() -> None:
    a = plan(make_claim(uid="a", name="a"))
    b = plan(make_claim(uid="b", name="b"))
    c = plan(make_claim(uid="c", name="c", configs=[entry(cni("net2"), ["net"])]))
    check_pod_interfaces([a, c])
    with pytest.raises(ConfigError) as exc:
        check_pod_interfaces([a, c, b])
    assert "claims default/a and default/b of the pod both ask for interface 'net1'" in str(
        exc.value)
