"""status.devices entries, checked against the exact request a 1.36 API server accepted."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate

from cnidra.attach._status import (
    MAX_DATA_BYTES,
    bounded_data,
    canonical_ips,
    failed_entry,
    ready_entry,
)

FIXTURES = Path(__file__).parents[2].parent / "shared" / "fixtures" / "apiserver-1.36"


def fixture_entry(name: str) -> dict[str, Any]:
    body = json.loads((FIXTURES / "status-write" / name).read_text())["body"]
    entry: dict[str, Any] = body["status"]["devices"][0]
    return entry


def test_ready_entry_matches_the_accepted_fixture_request() -> None:
    for name in ("adminaccess-claim.apply-request.json", "shared-claim.apply-request.json"):
        want = fixture_entry(name)
        got = ready_entry(
            driver=want["driver"], pool=want["pool"], device=want["device"],
            share_id=want.get("shareID"), if_name="net1", result=want["data"],
            now=datetime(2026, 11, 23, 19, 14, 4, 123456, tzinfo=UTC), generation=1,
        )
        assert got == want


def test_ips_are_canonical_with_host_bits_and_only_ours() -> None:
    result = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "br0", "mac": "aa:aa:aa:aa:aa:aa"},
                       {"name": "net1", "mac": "AA:BB:CC:DD:EE:FF", "sandbox": "/run/netns/x"}],
        "ips": [{"address": "10.10.1.7/24", "interface": 1},
                {"address": "2001:DB8:0:0::5/64", "interface": 1},
                {"address": "10.10.1.7/24", "interface": 1},
                {"address": "192.168.0.1/24", "interface": 0}],
    }
    assert canonical_ips(result, "net1") == ["10.10.1.7/24", "2001:db8::5/64"]
    entry = ready_entry(driver="d", pool="p", device="eth1", share_id=None, if_name="net1",
                        result=result)
    assert entry["networkData"]["hardwareAddress"] == "aa:bb:cc:dd:ee:ff"
    assert "shareID" not in entry


def test_ipam_only_result_without_interface_index_is_kept() -> None:
    result = {"cniVersion": "1.0.0", "ips": [{"address": "10.1.2.3/16"}]}
    assert canonical_ips(result, "net1") == ["10.1.2.3/16"]


def test_data_is_bounded_to_10_kib() -> None:
    big = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "net1", "mac": "aa:bb:cc:dd:ee:ff", "sandbox": "/x"}],
        "ips": [{"address": "10.0.0.2/24", "interface": 0}],
        "routes": [{"dst": f"10.{i // 250}.{i % 250}.0/24"} for i in range(2000)],
    }
    data = bounded_data(big, "net1")
    assert len(json.dumps(data)) <= MAX_DATA_BYTES
    assert data["truncated"] is True
    assert data["ips"] == [{"address": "10.0.0.2/24"}]


def test_failed_entry_carries_the_error() -> None:
    entry = failed_entry(driver="d", pool="p", device="eth1", share_id="s", if_name="net1",
                         error="macvlan ADD: Link not found [CNI code 7]", generation=2)
    (cond,) = entry["conditions"]
    assert cond["status"] == "False"
    assert cond["reason"] == "NetworkInterfaceFailed"
    assert "Link not found" in cond["message"]
    assert cond["observedGeneration"] == 2
    assert "networkData" not in entry


def test_claim_with_our_entries_validates_against_the_1_37_schema() -> None:
    claim = json.loads(
        (FIXTURES / "status-write" / "adminaccess-claim.after-apply.v1.json").read_text()
    )
    want = fixture_entry("adminaccess-claim.apply-request.json")
    ok = ready_entry(driver=want["driver"], pool=want["pool"], device=want["device"],
                     share_id=want.get("shareID"), if_name="net1", result=want["data"],
                     generation=1)
    bad = failed_entry(driver=want["driver"], pool=want["pool"], device=want["device"],
                       share_id=want.get("shareID"), if_name="net1", error="boom")
    for entry in (ok, bad):
        claim["status"]["devices"] = [entry]
        assert kubernetes_validate.validate(claim, "1.37.0", strict=True) == "1.37"
