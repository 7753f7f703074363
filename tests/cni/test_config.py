"""Conflist parsing and validation (pure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnidra.cni import NetworkConfigList, load_conflist, parse_conflist
from cnidra.errors import ConfigError

BASE: dict[str, Any] = {
    "cniVersion": "1.0.0",
    "name": "net-a",
    "plugins": [
        {"type": "macvlan", "master": "eth0", "ipam": {"type": "host-local"}},
        {"type": "tuning", "capabilities": {"mac": True, "ips": False}},
    ],
}


def with_(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(BASE))
    out.update(changes)
    return out


def error_path(data: Any) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_conflist(data)
    return exc.value.path


def test_parses_a_conflist_and_keeps_its_bytes() -> None:
    text = json.dumps(BASE).encode()
    net = parse_conflist(text)
    assert isinstance(net, NetworkConfigList)
    assert (net.name, net.cni_version) == ("net-a", "1.0.0")
    assert [p.type for p in net.plugins] == ["macvlan", "tuning"]
    assert net.plugins[1].capabilities == frozenset({"mac"})
    assert net.plugins[0].raw["master"] == "eth0"
    assert net.bytes == text
    assert not net.disable_check and not net.disable_gc and not net.load_only_inlined_plugins


def test_mapping_input_gets_canonical_bytes() -> None:
    net = parse_conflist(BASE)
    assert json.loads(net.bytes) == BASE
    assert parse_conflist(net.bytes) == net


def test_single_plugin_conf_is_promoted() -> None:
    net = parse_conflist({"cniVersion": "0.4.0", "name": "single", "type": "bridge", "x": 1})
    assert len(net.plugins) == 1
    assert net.plugins[0].raw["x"] == 1
    assert json.loads(net.bytes)["plugins"][0]["type"] == "bridge"
    assert error_path({"cniVersion": "0.4.0", "name": "single", "type": "a/b"}) == "type"


def test_cni_versions_pick_the_highest_supported() -> None:
    net = parse_conflist(with_(cniVersions=["0.4.0", "1.1.0", "9.0.0"]))
    assert net.cni_version == "1.1.0"
    assert net.cni_versions == ("0.4.0", "1.1.0", "9.0.0")
    only_v = with_(cniVersions=["0.3.1"])
    del only_v["cniVersion"]
    assert parse_conflist(only_v).cni_version == "0.3.1"
    assert error_path(with_(cniVersions=["9.0.0"], cniVersion="8.0.0")) == "cniVersions"
    assert error_path(with_(cniVersions=["1.0"])) == "cniVersions[0]"
    assert error_path(with_(cniVersions="1.0.0")) == "cniVersions"


def test_flags_accept_bools_and_strings() -> None:
    net = parse_conflist(with_(disableCheck="true", disableGC=True, loadOnlyInlinedPlugins=True))
    assert net.disable_check and net.disable_gc and net.load_only_inlined_plugins
    assert error_path(with_(disableCheck=3)) == "disableCheck"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"name": ""}, "name"),
        ({"name": "-lead"}, "name"),
        ({"name": "a b"}, "name"),
        ({"name": "ok\n"}, "name"),
        ({"name": 5}, "name"),
        ({"cniVersion": "1.0"}, "cniVersion"),
        ({"cniVersion": "0.5.0"}, "cniVersion"),
        ({"cniVersion": 1}, "cniVersion"),
        ({"plugins": []}, "plugins"),
        ({"plugins": {}}, "plugins"),
        ({"plugins": [{"type": "ok"}, {}]}, "plugins[1].type"),
        ({"plugins": [{"type": "ok"}, "x"]}, "plugins[1]"),
        ({"plugins": [{"type": "../bin/sh"}]}, "plugins[0].type"),
        ({"plugins": [{"type": "/usr/bin/true"}]}, "plugins[0].type"),
        ({"plugins": [{"type": ".."}]}, "plugins[0].type"),
        ({"plugins": [{"type": ""}]}, "plugins[0].type"),
        ({"plugins": [{"type": "a", "capabilities": []}]}, "plugins[0].capabilities"),
        ({"plugins": [{"type": "a", "capabilities": {"mac": 1}}]}, "plugins[0].capabilities.mac"),
    ],
)
def test_errors_name_the_field(change: dict[str, Any], path: str) -> None:
    assert error_path(with_(**change)) == path


def test_missing_version_and_bad_json() -> None:
    data = with_()
    del data["cniVersion"]
    assert error_path(data) == "cniVersion"
    assert error_path(b"{not json") == ""
    assert error_path("[1, 2]") == ""


async def test_load_conflist_appends_snippets(tmp_path: Path) -> None:
    conf = tmp_path / "10-net.conflist"
    conf.write_text(json.dumps({"cniVersion": "1.0.0", "name": "snip", "plugins": [
        {"type": "bridge"}]}))
    (tmp_path / "snip").mkdir()
    (tmp_path / "snip" / "b.conf").write_text(json.dumps({"type": "tuning"}))
    (tmp_path / "snip" / "a.conf").write_text(json.dumps({"type": "portmap"}))
    net = await load_conflist(conf)
    assert [p.type for p in net.plugins] == ["bridge", "portmap", "tuning"]
    assert [p["type"] for p in json.loads(net.bytes)["plugins"]] == ["bridge", "portmap", "tuning"]
    conf.write_text(json.dumps({"cniVersion": "1.0.0", "name": "snip", "plugins": [
        {"type": "bridge"}], "loadOnlyInlinedPlugins": True}))
    assert [p.type for p in (await load_conflist(conf)).plugins] == ["bridge"]
    with pytest.raises(ConfigError, match="cannot read"):
        await load_conflist(tmp_path / "missing.conflist")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
KEYS = ["cniVersion", "cniVersions", "name", "plugins", "type", "disableCheck", "disableGC",
        "loadOnlyInlinedPlugins", "capabilities"]
plugin_like = st.dictionaries(st.sampled_from(["type", "capabilities", "ipam"]), json_values)
conflist_like = st.dictionaries(
    st.sampled_from(KEYS),
    json_values | st.sampled_from(["1.0.0", "1.1.0", "0.4.0", "net", "a/b", ".."])
    | st.lists(plugin_like, max_size=3) | st.lists(st.sampled_from(["1.0.0", "x", "2.0.0"])),
)


def _never_crashes(data: Any) -> None:
    try:
        net = parse_conflist(data)
    except ConfigError as exc:
        decoded = data if isinstance(data, dict) else json.loads(data)
        if isinstance(decoded, dict):
            assert exc.path, f"no field path for {data!r}: {exc}"
        return
    assert net.plugins and net.name
    assert parse_conflist(net.bytes).plugins == net.plugins


@settings(max_examples=300, deadline=None)
@given(conflist_like)
def test_random_conflists_never_crash(data: dict[str, Any]) -> None:
    _never_crashes(data)
    _never_crashes(json.dumps(data))


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_random_json_never_crashes(data: Any) -> None:
    _never_crashes(json.dumps(data))
    _never_crashes(json.dumps(data).encode())


def test_the_same_text_is_parsed_once_and_errors_are_not_remembered() -> None:
    text = json.dumps({"cniVersion": "1.0.0", "name": "memo",
                       "plugins": [{"type": "macvlan", "master": "eth1"}]}).encode()
    first = parse_conflist(text)
    assert parse_conflist(text) is first
    assert parse_conflist(text.decode()) == first  # str and bytes: equal results
    mapping = json.loads(text)
    assert parse_conflist(mapping).plugins == first.plugins
    assert parse_conflist(mapping) is not parse_conflist(mapping)  # mappings: parsed each time
    other = parse_conflist(text.replace(b"eth1", b"eth2"))
    assert other.plugins[0].raw["master"] == "eth2" and first.plugins[0].raw["master"] == "eth1"
    bad = b'{"cniVersion":"1.0.0","name":"memo","plugins":[]}'
    for _ in range(2):
        with pytest.raises(ConfigError, match="no plugins"):
            parse_conflist(bad)
    assert parse_conflist(bad, allow_no_plugins=True).plugins == ()
