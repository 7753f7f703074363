"""The pure slice builder: limits, names, attributes, capacity, filter; every object checked
against the official Kubernetes 1.37 OpenAPI schemas (kubernetes-validate, strict)."""

from __future__ import annotations

import copy
import re
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cnidra.cel import DeviceView, Match, compile_selector, parse_quantity
from cnidra.errors import ConfigError
from cnidra.kube import slice_from_version
from cnidra.model.devices import Device, Snapshot
from cnidra.publishing import (
    ATTACHMENTS,
    MAX_DEVICES,
    build_pool,
    build_slices,
    clip,
    compile_filter,
    pool_matches,
    slice_device,
)
from support import SHARED

DRIVER = "cni.dra.networking.x-k8s.io"
NODE = "kind-worker"
SCHEMA = "1.37.0"  # the newest kubernetes-validate ships (it also has 1.35 and 1.36)
C_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def nic(i: int, **kw: Any) -> Device:
    base: dict[str, Any] = dict(
        if_name=f"eth{i}", index=i + 2, mac=f"be:a1:b9:1e:{i // 256:02x}:{i % 256:02x}",
        mtu=1500, oper_state="up", admin_up=True, carrier=True, virtual=False,
        encapsulation="ether", driver="virtio_net", pci_address=f"0000:00:{i % 32:02x}.0",
        pci_vendor="0x1af4", pci_device="0x1041", pcie_root="pci0000:00", numa_node=0,
        speed_mbps=10000, ipv4=(f"10.0.{i // 256}.{i % 256}/16",), ipv6=("fd00::1/64",),
    )
    base.update(kw)
    return Device(**base)


def snapshot(n: int) -> Snapshot:
    return Snapshot(tuple(nic(i) for i in range(n)))


def validate(obj: dict[str, Any]) -> None:
    assert kubernetes_validate.validate(obj, SCHEMA, strict=True) == "1.37"


def check_limits(obj: dict[str, Any]) -> None:
    spec = slice_from_version(obj)["spec"]
    assert len(spec["devices"]) <= MAX_DEVICES
    for dev in spec["devices"]:
        assert DNS_LABEL.match(dev["name"]) and len(dev["name"]) <= 63
        names = list(dev.get("attributes", {})) + list(dev.get("capacity", {}))
        assert len(names) <= 32
        for name in names:
            ident = name.rpartition("/")[2]
            assert C_IDENT.match(ident) and len(ident.encode()) <= 32, name
        for value in dev["attributes"].values():
            assert len(value) == 1
            if "string" in value:
                assert len(value["string"].encode()) <= 64


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
@pytest.mark.parametrize(("n", "slices"), [(0, 1), (1, 1), (127, 1), (128, 1), (129, 2),
                                           (1024, 8)])
def test_sizes_are_cut_into_valid_slices(version: str, n: int, slices: int) -> None:
    objs = build_slices(snapshot(n), driver=DRIVER, node_name=NODE, generation=3,
                        api_version=version, consumable_capacity=True)  # type: ignore[arg-type]
    assert len(objs) == slices
    seen: list[str] = []
    for obj in objs:
        assert obj["apiVersion"] == f"resource.k8s.io/{version}"
        spec = obj["spec"]
        assert spec["driver"] == DRIVER and spec["nodeName"] == NODE
        assert spec["pool"] == {"name": NODE, "generation": 3, "resourceSliceCount": slices}
        if version == "v1beta1":
            assert all(set(d) == {"name", "basic"} for d in spec["devices"])
        else:
            assert all("basic" not in d for d in spec["devices"])
        seen += [d["name"] for d in spec["devices"]]
        check_limits(obj)
        validate(obj)
    assert len(seen) == n == len(set(seen))
    assert seen == sorted(seen)


def test_v1beta1_is_v1_nested_under_basic() -> None:
    v1 = build_slices(snapshot(3), driver=DRIVER, node_name=NODE, generation=1,
                      api_version="v1", consumable_capacity=True)
    beta = build_slices(snapshot(3), driver=DRIVER, node_name=NODE, generation=1,
                        api_version="v1beta1", consumable_capacity=True)
    assert slice_from_version(beta[0])["spec"] == v1[0]["spec"]


@pytest.mark.parametrize("if_name", ["eth0.100", "br_ex", "Eth0", "enp0s31f6.4094",
                                     "x" * 15, "veth@if3"])
def test_names_needing_mapping(if_name: str) -> None:
    dev = slice_device(nic(0, if_name=if_name), consumable_capacity=False)
    assert DNS_LABEL.match(dev["name"]) and len(dev["name"]) <= 63
    assert dev["attributes"]["name"] == {"string": if_name}
    objs = build_slices(Snapshot((nic(0, if_name=if_name), nic(1, if_name="eth0"))),
                        driver=DRIVER, node_name=NODE, generation=1, api_version="v1",
                        consumable_capacity=False)
    validate(objs[0])


def test_attributes_cover_the_interface_facts() -> None:
    pf = nic(1, sriov_total_vfs=8, sriov_num_vfs=4, rdma=True, rdma_device="mlx5_0",
             kind="", master="br0", alias="uplink", numa_node=1)
    attrs = slice_device(pf, consumable_capacity=False)["attributes"]
    assert attrs["name"] == {"string": "eth1"}
    assert attrs["mac"]["string"] == "be:a1:b9:1e:00:01"
    assert attrs["mtu"] == {"int": 1500}
    assert attrs["state"] == {"string": "up"}
    assert attrs["virtual"] == {"bool": False}
    assert attrs["sriov"] == {"bool": True} and attrs["sriovVfs"] == {"int": 8}
    assert attrs["rdma"] == {"bool": True}
    assert attrs["numaNode"] == {"int": 1}
    assert attrs["resource.kubernetes.io/numaNode"] == {"int": 1}
    assert attrs["resource.kubernetes.io/pcieRoot"] == {"string": "pci0000:00"}
    assert attrs["resource.kubernetes.io/pciBusID"] == {"string": "0000:00:01.0"}
    assert attrs["ipv4"] == {"string": "10.0.0.1/16"} and attrs["ipv6"] == {"string": "fd00::1/64"}
    assert attrs["speed"] == {"int": 10000} and attrs["master"] == {"string": "br0"}
    vf = slice_device(nic(2, sriov_pf="eth1", sriov_vf_index=3), consumable_capacity=True)
    assert vf["attributes"]["sriovPf"] == {"string": "eth1"}
    assert vf["attributes"]["sriovVf"] == {"int": 3}
    assert vf["attributes"]["sriov"] == {"bool": False}
    assert "allowMultipleAllocations" not in vf  # a VF is not shareable
    vx = slice_device(nic(3, kind="vxlan", vxlan_id=42, virtual=True, numa_node=None,
                          speed_mbps=None), consumable_capacity=False)["attributes"]
    assert vx["vxlanId"] == {"int": 42} and vx["kind"] == {"string": "vxlan"}
    assert "numaNode" not in vx and "speed" not in vx  # unknown facts are left out


def test_values_at_the_limits() -> None:
    long_alias = "a" * 64
    assert slice_device(nic(0, alias=long_alias), consumable_capacity=False)[
        "attributes"]["alias"]["string"] == long_alias
    clipped = slice_device(nic(0, alias="b" * 65), consumable_capacity=False)
    assert clipped["attributes"]["alias"]["string"] == "b" * 64
    multibyte = slice_device(nic(0, alias="é" * 40), consumable_capacity=False)
    text = multibyte["attributes"]["alias"]["string"]
    assert text == "é" * 32 and len(text.encode()) == 64
    assert clip("ab€", 4) == "ab"
    ib_mac = ":".join(["80"] * 20)  # an InfiniBand hardware address, 59 characters
    dev = nic(0, mac=ib_mac, alias="z" * 200, ipv6=("2001:db8:1234:5678:9abc:def0:1234:5678/128",))
    objs = build_slices(Snapshot((dev,)), driver=DRIVER, node_name=NODE, generation=1,
                        api_version="v1", consumable_capacity=True)
    check_limits(objs[0])
    validate(objs[0])


def test_capacity_only_for_shareable_devices_and_only_when_served() -> None:
    eth = nic(1)
    shared = slice_device(eth, consumable_capacity=True)
    assert shared["allowMultipleAllocations"] is True
    cap = shared["capacity"][ATTACHMENTS]
    assert parse_quantity(cap["value"]).value == 1000
    assert cap["requestPolicy"] == {"default": "1",
                                    "validRange": {"min": "1", "max": "1", "step": "1"}}
    plain = slice_device(eth, consumable_capacity=False)
    assert "allowMultipleAllocations" not in plain and "capacity" not in plain
    macvlan = slice_device(nic(2, kind="macvlan", virtual=True), consumable_capacity=True)
    assert "capacity" not in macvlan


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((SHARED / "fixtures/seed-demo" / name).read_text())
            if d]


def test_published_eth1_satisfies_the_demo_selectors() -> None:
    """The DeviceClass and both templates' selectors match our eth1 (and only eth1)."""
    objs = build_slices(Snapshot((nic(0), nic(1))), driver=DRIVER, node_name=NODE,
                        generation=1, api_version="v1", consumable_capacity=True)
    devices = {d["name"]: DeviceView.from_slice_device(d, DRIVER, NODE)
               for d in objs[0]["spec"]["devices"]}
    klass = _docs("v1/deviceclass.yaml")[0]
    template = next(d for d in _docs("v1/shared-capacity.yaml")
                    if d["kind"] == "ResourceClaimTemplate")
    request = template["spec"]["spec"]["devices"]["requests"][0]["exactly"]
    expressions = [s["cel"]["expression"] for s in klass["spec"]["selectors"]]
    expressions += [s["cel"]["expression"] for s in request["selectors"]]
    selectors = [compile_selector(e) for e in expressions]
    matching = [name for name, view in devices.items()
                if all(isinstance(s.evaluate(view), Match) for s in selectors)]
    assert matching == ["eth1"]
    assert devices["eth1"].allow_multiple_allocations
    cap = devices["eth1"].capacity[DRIVER][ATTACHMENTS]
    assert cap.default is not None and cap.value.compare(cap.default) > 0


def test_filter_selects_on_the_published_view() -> None:
    flt = compile_filter(f'device.attributes["{DRIVER}"].name.startsWith("eth1")'
                         f' && device.driver == "{DRIVER}"')
    assert flt is not None
    pool = build_pool(snapshot(12), driver=DRIVER, node_name=NODE, consumable_capacity=False,
                      device_filter=flt)
    assert [d["name"] for d in pool.chunks[0]] == ["eth1", "eth10", "eth11"]
    assert set(pool.excluded) == {f"eth{i}" for i in (0, *range(2, 10))}
    assert "returned false" in pool.excluded["eth0"]
    # a runtime error (missing attribute) leaves the device out, with the message
    err = compile_filter(f'device.attributes["{DRIVER}"].vxlanId == 1')
    pool = build_pool(snapshot(1), driver=DRIVER, node_name=NODE, consumable_capacity=False,
                      device_filter=err)
    assert pool.chunks == ((),) and "failed" in pool.excluded["eth0"]
    assert compile_filter("") is None and compile_filter("   ") is None


def test_bad_filter_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        compile_filter('device.attributes["x"].name ==')
    assert info.value.path == "deviceFilter"
    assert "not valid CEL" in str(info.value)


def test_pool_matching_is_semantic() -> None:
    pool = build_pool(snapshot(130), driver=DRIVER, node_name=NODE, consumable_capacity=True)
    objs = build_slices(snapshot(130), driver=DRIVER, node_name=NODE, generation=4,
                        api_version="v1beta1", consumable_capacity=True)
    assert pool_matches(objs, pool, driver=DRIVER, node_name=NODE)
    stored = copy.deepcopy(objs[::-1])  # order of slices and devices does not matter
    stored[0]["spec"]["devices"].reverse()
    for dev in stored[0]["spec"]["devices"]:
        dev["basic"]["capacity"][ATTACHMENTS]["value"] = "1000"  # the same quantity
    assert pool_matches(stored, pool, driver=DRIVER, node_name=NODE)
    changed = copy.deepcopy(objs)
    changed[1]["spec"]["devices"][0]["basic"]["attributes"]["mtu"] = {"int": 9000}
    assert not pool_matches(changed, pool, driver=DRIVER, node_name=NODE)
    mixed = copy.deepcopy(objs)
    mixed[1]["spec"]["pool"]["generation"] = 5
    assert not pool_matches(mixed, pool, driver=DRIVER, node_name=NODE)
    assert not pool_matches(objs[:1], pool, driver=DRIVER, node_name=NODE)


def test_unsupported_version_is_rejected() -> None:
    with pytest.raises(ConfigError):
        build_slices(snapshot(1), driver=DRIVER, node_name=NODE, generation=1,
                     api_version="v2", consumable_capacity=False)  # type: ignore[arg-type]


def test_a_device_with_every_fact_stays_within_32() -> None:
    full = nic(0, kind="bridge", sriov_total_vfs=64, sriov_num_vfs=8, sriov_pf="ens1f0",
               sriov_vf_index=7, rdma=True, rdma_device="mlx5_3", master="br-ex",
               vxlan_id=4096, alias="uplink to the top-of-rack switch", numa_node=3)
    dev = slice_device(full, consumable_capacity=True)
    total = len(dev["attributes"]) + len(dev.get("capacity", {}))
    assert 25 <= total <= 32
    objs = build_slices(Snapshot((full,)), driver=DRIVER, node_name=NODE, generation=1,
                        api_version="v1", consumable_capacity=True)
    check_limits(objs[0])
    validate(objs[0])
