"""The checkpoint file: round trip, atomic replace, hard errors that keep the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from claims.claimkit import DRIVER, fixture_claim

from cnidra.claims import Checkpoint, PreparedClaim, compute_plan
from cnidra.errors import CheckpointError
from cnidra.model.plan import Attachment


def sample() -> dict[str, PreparedClaim]:
    admin = compute_plan(fixture_claim("adminaccess.v1"), {}, driver=DRIVER)
    shared = compute_plan(fixture_claim("shared-capacity.v1beta1"), {}, driver=DRIVER)
    att = Attachment(
        claim_uid=admin.claim_uid, if_name="net1", pod_uid=admin.pod_uids[0],
        sandbox_id="f" * 64, netns="/var/run/netns/cni-1234",
        network_name="macvlan-eth1",
        cni_result={"cniVersion": "1.0.0", "interfaces": [{"name": "net1", "sandbox": "/x"}],
                    "ips": [{"address": "10.10.1.2/24", "interface": 0}]},
        since=1763925124.25, status_reported=True,
    )
    return {admin.claim_uid: PreparedClaim(admin, (att,)), shared.claim_uid: PreparedClaim(shared)}


def test_round_trip(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path / "state")
    assert cp.load() == {}
    claims = sample()
    cp.save(claims)
    assert Checkpoint(tmp_path / "state").load() == claims
    doc = json.loads(cp.path.read_text())
    assert doc["version"] == 1
    assert set(doc["claims"]) == set(claims)
    assert [p.name for p in cp.directory.iterdir()] == ["checkpoint.json"]


def test_save_replaces(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path)
    claims = sample()
    cp.save(claims)
    first = next(iter(claims))
    del claims[first]
    cp.save(claims)
    assert set(cp.load()) == set(claims)


def test_failed_rename_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cp = Checkpoint(tmp_path)
    cp.save(sample())
    before = cp.path.read_bytes()

    def crash(self: Path, target: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", crash)
    with pytest.raises(CheckpointError, match="No space left"):
        cp.save({})
    monkeypatch.undo()
    assert cp.path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.json"]


def test_crash_before_rename_leaves_old_state(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path)
    claims = sample()
    cp.save(claims)
    # what a process killed between write and rename leaves behind
    (tmp_path / ".checkpoint.json.abc123.tmp").write_bytes(b'{"version": 1, "cla')
    assert cp.load() == claims
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.json"]


@pytest.mark.parametrize(
    ("content", "text"),
    [
        (b'{"version": 1, "claims": {', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"version": 2, "claims": {}}', "unknown format version 2"),
        (b'{"claims": {}}', "unknown format version None"),
        (b'{"version": 1}', "claims is missing"),
        (b'{"version": 1, "claims": {"u": {"namespace": "n"}}}', "claims.u.name is missing"),
    ],
)
def test_unreadable_is_hard_error_and_file_kept(tmp_path: Path, content: bytes, text: str) -> None:
    cp = Checkpoint(tmp_path)
    cp.path.write_bytes(content)
    with pytest.raises(CheckpointError, match=text.replace("(", r"\(")):
        cp.load()
    assert cp.path.read_bytes() == content


def test_wrong_types_in_entry(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path)
    cp.save(sample())
    doc = json.loads(cp.path.read_text())
    uid = next(iter(doc["claims"]))
    doc["claims"][uid]["interfaces"][0]["adminAccess"] = "yes"
    cp.path.write_text(json.dumps(doc))
    wrong = rf"claims\.{uid}\.interfaces\[0\]\.adminAccess has the wrong type"
    with pytest.raises(CheckpointError, match=wrong):
        cp.load()
    doc["claims"][uid]["interfaces"][0]["adminAccess"] = True
    doc["claims"][uid]["interfaces"][0]["configSource"] = "FromNowhere"
    cp.path.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="not FromClass or FromClaim"):
        cp.load()


def test_unwritable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CheckpointError, match="cannot write"):
        Checkpoint(blocker / "sub").save({})
