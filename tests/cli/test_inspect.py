"""``cnidra inspect``: a checkpoint written by the driver's own code, read back read-only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli.clirun import cnidra

from cnidra.claims import Checkpoint, PreparedClaim, compute_plan
from cnidra.model.plan import Attachment
from support import SHARED

CLAIM = SHARED / "fixtures" / "apiserver-1.36" / "demo" / "resourceclaim-adminaccess.v1.json"
DRIVER = "cni.dra.networking.x-k8s.io"
RESULT = {"cniVersion": "1.0.0",
          "interfaces": [{"name": "net1", "mac": "aa:bb:cc:00:11:22",
                          "sandbox": "/var/run/netns/x"}],
          "ips": [{"address": "10.10.1.7/24", "interface": 0}]}


def _prepared(attached: bool) -> tuple[str, PreparedClaim]:
    claim = json.loads(CLAIM.read_text())
    plan = compute_plan(claim, {}, driver=DRIVER)
    attachments: tuple[Attachment, ...] = ()
    if attached:
        attachments = (Attachment(plan.claim_uid, "net1", "pod-uid-1", "sandbox-1",
                                  "/var/run/netns/x", plan.interfaces[0].network_name, RESULT,
                                  since=1_780_000_000.0, status_reported=True),)
    return plan.claim_uid, PreparedClaim(plan, attachments)


def test_lists_attachments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uid, prepared = _prepared(attached=True)
    Checkpoint(tmp_path).save({uid: prepared})
    before = sorted(p.name for p in tmp_path.iterdir())
    run = cnidra(capsys, "inspect", "--state-dir", str(tmp_path))
    assert run.code == 0, run.err
    key = prepared.plan.key
    assert run.lines[0] == f"{tmp_path / 'checkpoint.json'}: 1 prepared claims, 1 attachments"
    header, row = run.lines[1].split(), run.lines[2].split()
    assert header == ["POD", "UID", "CLAIM", "IFNAME", "IPS", "MAC", "DEVICE", "STATE", "SINCE"]
    pool = prepared.plan.interfaces[0].pool
    assert row == ["pod-uid-1", key, "net1", "10.10.1.7/24", "aa:bb:cc:00:11:22",
                   f"{pool}/eth1", "attached", "2026-05-28T20:26:40Z"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_json_and_prepared_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uid, prepared = _prepared(attached=False)
    node_dir = tmp_path / "kind-worker" / "state"
    Checkpoint(node_dir).save({uid: prepared})
    run = cnidra(capsys, "inspect", "--state-dir", str(tmp_path), "--node", "kind-worker",
                 "--json")
    assert run.code == 0, run.err
    doc = json.loads(run.out)
    assert doc["checkpoint"] == str(node_dir / "checkpoint.json")
    [item] = doc["interfaces"]
    assert (item["state"], item["ifName"], item["claimUID"], item["ips"]) == (
        "prepared", "net1", uid, [])
    assert item["podUIDs"] == list(prepared.plan.pod_uids)


def test_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = cnidra(capsys, "inspect", "--state-dir", str(tmp_path))
    assert run.code == 1
    assert run.err == (f"cnidra inspect: no checkpoint at {tmp_path / 'checkpoint.json'}: the "
                       "driver has not prepared a claim on this node yet, or --state-dir/--node "
                       "point elsewhere\n")


@pytest.mark.parametrize(("content", "message"), [
    (b"{not json", "not valid JSON (Expecting property name enclosed in double quotes: line 1 "
                   "column 2 (char 1))"),
    (b'{"version": 9, "claims": {}}', "unknown format version 9"),
])
def test_unreadable_checkpoint_is_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       content: bytes, message: str) -> None:
    path = tmp_path / "checkpoint.json"
    path.write_bytes(content)
    stale = tmp_path / ".checkpoint.json.abc.tmp"
    stale.write_bytes(b"x")
    run = cnidra(capsys, "inspect", "--state-dir", str(tmp_path))
    assert run.code == 2
    assert message in run.err
    assert path.read_bytes() == content
    assert stale.exists()  # read-only: not even the temp files of a save are touched
