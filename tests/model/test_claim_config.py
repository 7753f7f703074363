"""The opaque config schema: strict parsing, exact field paths, random input never crashes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnidra.errors import ConfigError
from cnidra.model.claim_config import (
    API_VERSION,
    CNIConfig,
    CNIPolicyConfig,
    if_name_problem,
    parse_opaque,
)
from support import SHARED

FIXTURE = SHARED / "fixtures/apiserver-1.36/demo/resourceclaim-adminaccess.v1.json"


def demo_parameters() -> dict[str, Any]:
    claim = json.loads(FIXTURE.read_text())
    params: dict[str, Any] = claim["spec"]["devices"]["config"][0]["opaque"]["parameters"]
    return params


def test_demo_parameters_parse() -> None:
    cfg = parse_opaque(demo_parameters())
    assert isinstance(cfg, CNIConfig)
    assert cfg.if_name == "net1"
    assert cfg.config is not None
    assert cfg.config["plugins"][0]["type"] == "macvlan"


def test_policy_kind_parses() -> None:
    cfg = parse_opaque({
        "apiVersion": API_VERSION, "kind": "CNIPolicy", "allowedPluginTypes": ["macvlan"],
        "requireMasterIsAllocatedDevice": True,
    })
    assert isinstance(cfg, CNIPolicyConfig)
    assert cfg.allowed_plugin_types == ["macvlan"]


@pytest.mark.parametrize(
    ("change", "path", "text"),
    [
        ({"apiVersion": "v1"}, "parameters.apiVersion",
         '"v1" is not supported: use "cni.networking.x-k8s.io/v1alpha1"'),
        ({"apiVersion": None}, "parameters.apiVersion", "is missing: use"),
        ({"kind": "Cni"}, "parameters.kind", '"Cni" is not supported: use "CNI" or "CNIPolicy"'),
        ({"kind": 3}, "parameters.kind", '"3" is not supported'),
        ({"extra": 1}, "parameters.extra", "unknown field (allowed: apiVersion, kind, ifName"),
        ({"ifName": "eth0/1"}, "parameters.ifName",
         '"eth0/1" is not a valid interface name (must not contain \'/\')'),
        ({"ifName": "a" * 16}, "parameters.ifName", "is 16 bytes long; Linux allows at most 15"),
        ({"ifName": ""}, "parameters.ifName", "must not be empty"),
        ({"ifName": "net 1"}, "parameters.ifName", "must not contain whitespace"),
        ({"ifName": "net:1"}, "parameters.ifName", "must not contain ':'"),
        ({"ifName": "n\0"}, "parameters.ifName", "must not contain NUL"),
        ({"ifName": ".."}, "parameters.ifName", "is reserved by the kernel"),
        ({"ifName": 5}, "parameters.ifName", "Input should be a valid string (got a number)"),
        ({"config": "{}"}, "parameters.config", "valid dictionary (got a string)"),
        ({"config": []}, "parameters.config", "(got an array)"),
    ],
)
def test_errors_name_the_field(change: dict[str, Any], path: str, text: str) -> None:
    params = demo_parameters()
    for key, value in change.items():
        if value is None:
            del params[key]
        else:
            params[key] = value
    with pytest.raises(ConfigError) as exc:
        parse_opaque(params)
    assert exc.value.path == path
    assert text in exc.value.message


def test_policy_errors() -> None:
    base = {"apiVersion": API_VERSION, "kind": "CNIPolicy"}
    with pytest.raises(ConfigError) as exc:
        parse_opaque({**base, "allowedPluginTypes": ["macvlan", 3]})
    assert exc.value.path == "parameters.allowedPluginTypes[1]"
    with pytest.raises(ConfigError) as exc:
        parse_opaque({**base, "allowedPluginTypes": [""]})
    assert exc.value.path == "parameters.allowedPluginTypes"
    with pytest.raises(ConfigError) as exc:
        parse_opaque({**base, "ifName": "net1"})
    assert exc.value.path == "parameters.ifName"


def test_not_an_object_and_custom_path() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_opaque([1, 2], "spec.devices.config[3].opaque.parameters")
    assert exc.value.path == "spec.devices.config[3].opaque.parameters"
    assert "must be an object, not an array" in exc.value.message


@pytest.mark.parametrize("name", ["net1", "a" * 15, "é" * 7, "eth0.100", "v-1_x", "@x"])
def test_valid_if_names(name: str) -> None:
    assert if_name_problem(name) == ""


def test_if_name_bytes_not_characters() -> None:
    assert "16 bytes" in if_name_problem("é" * 8)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_near_valid = st.fixed_dictionaries(
    {"apiVersion": st.sampled_from([API_VERSION, "v1", ""]),
     "kind": st.sampled_from(["CNI", "CNIPolicy", "X"])},
    optional={
        "ifName": st.text(max_size=20) | _json, "config": _json,
        "allowedPluginTypes": st.lists(st.text(max_size=8)) | _json,
        "requireMasterIsAllocatedDevice": st.booleans() | _json, "other": _json,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_json, _near_valid))
def test_random_input_never_crashes(data: Any) -> None:
    try:
        cfg = parse_opaque(data)
    except ConfigError as exc:
        assert exc.path.startswith("parameters")
        assert exc.message
        return
    assert cfg.api_version == API_VERSION
    if isinstance(cfg, CNIConfig) and cfg.if_name is not None:
        assert if_name_problem(cfg.if_name) == ""
