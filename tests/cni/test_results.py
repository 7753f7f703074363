"""Result parsing and conversion across CNI versions (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from cnidra.cni import SUPPORTED_VERSIONS, parse_result, parse_version_info
from cnidra.cni._version import fallback_version, highest_supported
from cnidra.errors import CNIError

R100: dict[str, Any] = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "eth1", "mac": "02:00:00:00:00:01", "sandbox": "/var/run/netns/x"}],
    "ips": [
        {"interface": 0, "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
        {"interface": 0, "address": "fd00::5/64"},
        {"address": "10.2.0.5/24"},
    ],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "fd01::/64"}],
    "dns": {"nameservers": ["10.1.0.1"], "domain": "example", "search": ["a"], "options": ["x"]},
}


def test_parse_1_0_0_and_back() -> None:
    result = parse_result(R100)
    assert result.cni_version == "1.0.0"
    assert result.interfaces[0].sandbox == "/var/run/netns/x"
    assert [ip.address for ip in result.ips] == ["10.1.0.5/24", "fd00::5/64", "10.2.0.5/24"]
    assert result.ips[2].interface is None
    assert result.to_dict() == R100


def test_down_to_0_4_0_adds_ip_version_and_back_up_drops_it() -> None:
    old = parse_result(R100).to_dict("0.4.0")
    assert old["cniVersion"] == "0.4.0"
    assert [ip["version"] for ip in old["ips"]] == ["4", "6", "4"]
    again = parse_result(old)
    assert again.cni_version == "0.4.0"
    assert again.to_dict("1.0.0") == R100
    assert parse_result(old).to_dict("0.3.1")["cniVersion"] == "0.3.1"


def test_1_1_0_fields_are_kept_in_1_x_and_dropped_below() -> None:
    raw = {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth1", "mtu": 1400, "socketPath": "/s", "pciID": "0000:00:01.0"}],
        "ips": [{"interface": 0, "address": "10.1.0.5/24"}],
        "routes": [{"dst": "10.9.0.0/16", "gw": "10.1.0.1", "mtu": 1300, "advmss": 1200,
                    "priority": 5, "table": 100, "scope": 0}],
        "dns": {},
    }
    result = parse_result(raw)
    assert result.routes[0].table == 100 and result.routes[0].scope == 0
    assert result.to_dict() == raw
    assert result.to_dict("1.0.0") == raw | {"cniVersion": "1.0.0"}
    assert result.to_dict("0.4.0")["interfaces"] == [{"name": "eth1"}]


def test_legacy_0_2_0_both_ways() -> None:
    legacy = {
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.1.0.5/24", "gateway": "10.1.0.1",
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]},
        "ip6": {"ip": "fd00::5/64"},
        "dns": {"nameservers": ["10.1.0.1"]},
    }
    result = parse_result(legacy)
    assert [ip.address for ip in result.ips] == ["10.1.0.5/24", "fd00::5/64"]
    assert result.to_dict("0.2.0") == legacy
    up = result.to_dict("1.1.0")
    assert up["ips"] == [{"address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                         {"address": "fd00::5/64"}]
    down = parse_result(R100).to_dict("0.1.0")
    assert down["ip4"] == {"ip": "10.1.0.5/24", "gateway": "10.1.0.1",
                           "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]}
    assert down["ip6"] == {"ip": "fd00::5/64", "routes": [{"dst": "fd01::/64"}]}


@pytest.mark.parametrize(
    "raw",
    [
        {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5"}]},
        {"cniVersion": "1.0.0", "ips": [{"address": "nope/24"}]},
        {"cniVersion": "1.0.0", "ips": [{"interface": 3, "address": "10.1.0.5/24"}]},
        {"cniVersion": "1.0.0", "interfaces": {"name": "x"}},
        {"cniVersion": "1.0.0", "routes": [{"dst": "10.0.0.0/8", "mtu": "x"}]},
        {"cniVersion": "1.0.0", "dns": []},
        {"cniVersion": "7.0.0"},
        {"cniVersion": "0.2.0", "ip4": "10.0.0.1/8"},
        [],
    ],
)
def test_invalid_results_are_cni_errors(raw: Any) -> None:
    with pytest.raises(CNIError, match="invalid CNI result"):
        parse_result(raw)


def test_every_supported_version_round_trips_through_every_other() -> None:
    base = parse_result(R100)
    for a in SUPPORTED_VERSIONS:
        for b in SUPPORTED_VERSIONS:
            out = parse_result(base.to_dict(a)).to_dict(b)
            assert out["cniVersion"] == b
            assert parse_result(out).cni_version == b


def test_version_info_and_negotiation_rules() -> None:
    info = parse_version_info({"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]})
    assert info.supports("1.0.0") and not info.supports("1.1.0")
    assert parse_version_info({}).supported_versions == ("0.1.0",)
    with pytest.raises(CNIError):
        parse_version_info({"supportedVersions": "1.0.0"})
    assert fallback_version("1.1.0", "ADD", info.supported_versions) == "1.0.0"
    assert fallback_version("1.1.0", "DEL", info.supported_versions) == "1.0.0"
    assert fallback_version("1.1.0", "GC", info.supported_versions) is None
    assert fallback_version("1.1.0", "STATUS", info.supported_versions) is None
    assert fallback_version("1.0.0", "ADD", ["0.4.0"]) is None
    assert highest_supported(["0.3.1", "1.1.0", "1.2.0"]) == "1.1.0"
