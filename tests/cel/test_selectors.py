"""CEL selectors over the real fixture slices (v1 and v1beta1), as the scheduler evaluates them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cnidra.cel import (
    DeviceView,
    Error,
    Match,
    NoMatch,
    compile_selector,
    compile_selectors,
    evaluate_request,
    format_quantity,
    parse_quantity,
    parse_semver,
)
from cnidra.errors import ConfigError
from support import SHARED

DEMO = SHARED / "fixtures/apiserver-1.36/demo"
DRIVER = "cni.dra.networking.x-k8s.io"
ETH1 = 'device.attributes["cni.dra.networking.x-k8s.io"].name == "eth1"'
CLASS = 'device.driver == "cni.dra.networking.x-k8s.io"'


def devices(version: str) -> list[tuple[str, DeviceView]]:
    items: list[dict[str, Any]] = json.loads(
        (DEMO / f"resourceslices.{version}.list.json").read_text())["items"]
    return [
        (item["spec"]["nodeName"], DeviceView.from_slice_device(d, item["spec"]["driver"]))
        for item in items for d in item["spec"]["devices"]
    ]


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_eth1_matches_only_on_kind_worker(version: str) -> None:
    selector = compile_selector(ETH1)
    matched = [(node, d.name) for node, d in devices(version)
               if isinstance(selector.evaluate(d), Match)]
    assert matched == [("kind-worker", "eth1")]


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_device_view_shapes_agree(version: str) -> None:
    eth1 = next(d for node, d in devices(version) if d.name == "eth1")
    assert eth1.attributes[DRIVER]["name"] == "eth1"
    assert eth1.attributes["resource.kubernetes.io"]["pcieRoot"] == "pci0000:00"
    assert eth1.allow_multiple_allocations is True
    assert eth1.capacity[DRIVER]["attachments"].value == parse_quantity("1000")


def test_device_class_selector_matches_every_device() -> None:
    selector = compile_selector(CLASS)
    assert all(isinstance(selector.evaluate(d), Match) for _, d in devices("v1"))
    other = compile_selector('device.driver == "other.example.com"')
    assert all(isinstance(other.evaluate(d), NoMatch) for _, d in devices("v1"))


def test_missing_attribute_is_a_reported_error_not_a_crash() -> None:
    eth0 = devices("v1")[0][1]
    outcome = compile_selector(f'device.attributes["{DRIVER}"].speed > 10').evaluate(eth0)
    assert outcome == Error("no such key: speed")
    assert outcome.matched is False
    # an unknown domain is an empty map, so the error names the attribute, as upstream
    unknown = compile_selector('device.attributes["x.example.com"].name == "a"').evaluate(eth0)
    assert unknown == Error("no such key: name")
    assert isinstance(compile_selector('"x.example.com" in device.attributes').evaluate(eth0),
                      NoMatch)


def test_non_bool_result_is_an_error() -> None:
    eth0 = devices("v1")[0][1]
    outcome = compile_selector(f'device.attributes["{DRIVER}"].name').evaluate(eth0)
    assert outcome == Error("CEL result of type string could not be converted to bool")
    mismatch = compile_selector(f'device.attributes["{DRIVER}"].mtu == "1500"').evaluate(eth0)
    assert isinstance(mismatch, Error)
    assert "no matching overload" in mismatch.message


@pytest.mark.parametrize("expression", ["device.attributes[", "1 +", "a b", ""])
def test_bad_expression_is_config_error_at_compile_time(expression: str) -> None:
    with pytest.raises(ConfigError) as info:
        compile_selector(expression)
    assert repr(expression) in str(info.value)


def test_quantities_and_allow_multiple_allocations() -> None:
    eth1 = next(d for _, d in devices("v1") if d.name == "eth1")
    cap = f'device.capacity["{DRIVER}"].attachments'
    for expression, expected in [
        (f'{cap}.compareTo(quantity("1k")) == 0', Match()),
        (f'{cap} == quantity("1000")', Match()),
        (f'{cap}.isGreaterThan(quantity("1Gi"))', NoMatch()),
        (f'{cap}.isLessThan(quantity("1Ki"))', Match()),
        ("device.allowMultipleAllocations", Match()),
        ('quantity("1k").add(5).asInteger() == 1005', Match()),
    ]:
        assert compile_selector(expression).evaluate(eth1) == expected, expression
    bad = compile_selector('quantity("lots") == quantity("1")').evaluate(eth1)
    assert isinstance(bad, Error) and "lots" in bad.message


def test_version_attributes_and_semver() -> None:
    device = DeviceView.from_slice_device(
        {"name": "nic0", "attributes": {"fw": {"version": "1.10.0"}}}, DRIVER)
    assert device.attributes[DRIVER]["fw"] == parse_semver("1.10.0")
    fw = f'device.attributes["{DRIVER}"].fw'
    assert isinstance(compile_selector(f'{fw}.isGreaterThan(semver("1.9.9"))').evaluate(device),
                      Match)
    assert isinstance(compile_selector(f'{fw}.major() == 2').evaluate(device), NoMatch)
    assert parse_semver("1.0.0-alpha").compare(parse_semver("1.0.0")) == -1
    assert parse_semver("1.0.0-alpha.1").compare(parse_semver("1.0.0-alpha.beta")) == -1
    with pytest.raises(ConfigError):
        parse_semver("1.0")


def test_quantity_canonical_forms() -> None:
    assert str(parse_quantity("1000")) == "1k"
    assert str(parse_quantity("0.5")) == "500m"
    assert str(parse_quantity("1536Mi")) == "1536Mi"
    assert format_quantity(parse_quantity("1Ki").value, "BinarySI") == "1Ki"
    with pytest.raises(ConfigError):
        parse_quantity("1.2.3")


def test_request_evaluation_class_first_then_request() -> None:
    eth0 = devices("v1")[0][1]
    class_set = compile_selectors([{"cel": {"expression": CLASS}}], "class", "net", "spec")
    claim_set = compile_selectors([{"cel": {"expression": ETH1}}], "claim", "default/c", "spec")
    verdict = evaluate_request(eth0, class_set, claim_set)
    assert not verdict.matched and verdict.owner == "claim default/c" and verdict.index == 0
    wrong_class = compile_selectors([{"cel": {"expression": 'device.driver == "x"'}}],
                                    "class", "net", "spec")
    assert evaluate_request(eth0, wrong_class, claim_set).owner == "class net"
    broken = compile_selectors([{"cel": {"expression": "device.attributes[\"d\"].x"}}],
                               "class", "net", "spec")
    assert "CEL runtime error: no such key: x" in evaluate_request(eth0, broken).reason
    with pytest.raises(ConfigError) as info:
        compile_selectors([{"cel": {"expression": "1 +"}}], "claim", "c", "spec.selectors")
    assert info.value.path == "spec.selectors[0].cel.expression"
