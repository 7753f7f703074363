"""ClaimState with a fake API reader: per-claim answers, idempotence, restarts, attachments."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from claims.claimkit import DRIVER, cni, entry, fixture_claim, make_claim

from cnidra.claims import Checkpoint, ClaimState, Stamp
from cnidra.errors import CheckpointError, KubeAPIError, NotFoundError
from cnidra.model.claims import ClaimRef
from cnidra.model.plan import Attachment


class FakeReader:
    """Claims by (namespace, name); records concurrency of reads."""

    def __init__(self, *claims: dict[str, Any]) -> None:
        self.claims: dict[tuple[str, str], dict[str, Any]] = {}
        self.classes: dict[str, dict[str, Any]] = {}
        self.errors: dict[tuple[str, str], Exception] = {}
        self.active = 0
        self.max_active = 0
        for claim in claims:
            self.add(claim)

    def add(self, claim: dict[str, Any]) -> ClaimRef:
        meta = claim["metadata"]
        self.claims[(meta["namespace"], meta["name"])] = claim
        return ClaimRef(meta["namespace"], meta["name"], meta["uid"])

    async def get_claim(self, namespace: str, name: str) -> Mapping[str, Any]:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(0.001)
            if (namespace, name) in self.errors:
                raise self.errors[(namespace, name)]
            if (namespace, name) not in self.claims:
                raise NotFoundError(f"resourceclaims {name} not found", 404)
            return copy.deepcopy(self.claims[(namespace, name)])
        finally:
            self.active -= 1

    async def get_device_class(self, name: str) -> Mapping[str, Any]:
        if name not in self.classes:
            raise NotFoundError(f"deviceclasses {name} not found", 404)
        return self.classes[name]


class CountingCheckpoint(Checkpoint):
    saves = 0
    fail = False

    def save(self, claims: Any) -> Stamp:
        if self.fail:
            raise CheckpointError("checkpoint /x: cannot write: disk full")
        self.saves += 1
        return super().save(claims)


def ref_of(claim: dict[str, Any]) -> ClaimRef:
    m = claim["metadata"]
    return ClaimRef(m["namespace"], m["name"], m["uid"])


async def open_state(path: Path, reader: FakeReader) -> tuple[ClaimState, CountingCheckpoint]:
    cp = CountingCheckpoint(path)
    claims, stamp = await asyncio.to_thread(cp.load_stamped, clean=True)
    return ClaimState(cp, claims, reader, driver=DRIVER, stamp=stamp), cp


async def test_prepare_one_fixture_claim(tmp_path: Path) -> None:
    claim = fixture_claim("adminaccess.v1")
    reader = FakeReader(claim)
    state = await ClaimState.open(str(tmp_path), reader, driver=DRIVER)
    out = await state.prepare([ref_of(claim)])
    outcome = out["c90f1819-d334-4ea0-b341-b2d5ee6842fe"]
    assert outcome.ok, outcome.error
    assert [(d.device_name, d.share_id) for d in outcome.devices] == [
        ("eth1", "8da36f67-19a7-4e63-939a-033552ec117b")]
    (plan,) = state.plans_for_pod("9b9f70b0-6d10-489c-bbc4-18fc71da0a2d")
    assert plan.interfaces[0].if_name == "net1"
    assert state.get(plan.claim_uid) == plan
    assert set(Checkpoint(tmp_path).load()) == {plan.claim_uid}


async def test_prepare_32_claims_one_write_parallel_reads(tmp_path: Path) -> None:
    claims = [make_claim(uid=f"u{i}", name=f"c{i}", pods=(f"pod{i % 4}",)) for i in range(32)]
    reader = FakeReader(*claims)
    state, cp = await open_state(tmp_path, reader)
    out = await state.prepare([ref_of(c) for c in claims])
    assert sorted(out) == sorted(f"u{i}" for i in range(32))
    assert all(o.ok for o in out.values())
    assert cp.saves == 1
    assert reader.max_active > 1
    assert [p.name for p in state.plans_for_pod("pod1")] == sorted(
        f"c{i}" for i in range(32) if i % 4 == 1)


async def test_per_claim_errors_do_not_fail_the_call(tmp_path: Path) -> None:
    good = make_claim(uid="good", name="good")
    unallocated = make_claim(uid="na", name="na", allocated=False)
    recreated = make_claim(uid="new-uid", name="recreated")
    broken = make_claim(uid="bad", name="bad", configs=[entry(cni("eth0/1"), ["net"])])
    reader = FakeReader(good, unallocated, recreated, broken)
    reader.errors[("default", "flaky")] = KubeAPIError("connection refused")
    state, _ = await open_state(tmp_path, reader)
    out = await state.prepare([
        ref_of(good), ref_of(unallocated), ClaimRef("default", "recreated", "old-uid"),
        ref_of(broken), ClaimRef("default", "gone", "g"), ClaimRef("default", "flaky", "f"),
    ])
    assert out["good"].ok
    assert out["na"].error == (
        "claim default/na: status.allocation: is not set: the claim is not allocated yet")
    assert out["old-uid"].error == (
        "claim default/recreated: the API server has UID new-uid, the kubelet asked for "
        "old-uid (the claim was deleted and re-created)")
    assert out["bad"].error.startswith(
        'claim default/bad: spec.devices.config[0].opaque.parameters.ifName: "eth0/1" is not')
    assert out["g"].error == "claim default/gone: not found in the API server"
    assert out["f"].error == "claim default/flaky: cannot read it: connection refused"
    assert [p.claim_uid for p in state.plans_for_pod("pod-1")] == ["good"]


async def test_prepare_is_idempotent_and_refreshes_pods(tmp_path: Path) -> None:
    claim = make_claim()
    reader = FakeReader(claim)
    state, cp = await open_state(tmp_path, reader)
    first = await state.prepare([ref_of(claim)])
    plan = state.get("uid-1")
    second = await state.prepare([ref_of(claim)])
    assert first == second
    assert state.get("uid-1") is plan
    assert cp.saves == 1
    claim["status"]["reservedFor"].append({"resource": "pods", "name": "p2", "uid": "pod-2"})
    assert (await state.prepare([ref_of(claim)])) == first
    assert cp.saves == 2
    assert [p.claim_uid for p in state.plans_for_pod("pod-2")] == ["uid-1"]
    assert state.get("uid-1").interfaces == plan.interfaces  # type: ignore[union-attr]


async def test_unprepare_after_delete_twice_and_after_restart(tmp_path: Path) -> None:
    a, b = make_claim(uid="a", name="a"), make_claim(uid="b", name="b", pods=("pod-2",))
    reader = FakeReader(a, b)
    state, _ = await open_state(tmp_path, reader)
    assert all(o.ok for o in (await state.prepare([ref_of(a), ref_of(b)])).values())
    reader.claims.clear()  # deleted from the API server
    assert await state.unprepare([ref_of(a)]) == {"a": ""}
    assert await state.unprepare([ref_of(a)]) == {"a": ""}
    assert state.plans_for_pod("pod-1") == []
    restarted, _ = await open_state(tmp_path, FakeReader())
    assert [p.claim_uid for p in restarted.plans_for_pod("pod-2")] == ["b"]
    assert await restarted.unprepare([ref_of(b), ref_of(a)]) == {"b": "", "a": ""}
    assert Checkpoint(tmp_path).load() == {}


async def test_attachments_block_unprepare_until_removed(tmp_path: Path) -> None:
    claim = make_claim()
    state, _ = await open_state(tmp_path, FakeReader(claim))
    await state.prepare([ref_of(claim)])
    att = Attachment("uid-1", "net1", "pod-1", "sb" * 32, "/run/netns/x", "macvlan-eth1",
                     {"cniVersion": "1.0.0"}, since=5.0)
    await state.record_attachment(att)
    await state.record_attachment(Attachment(**{**_fields(att), "status_reported": True}))
    assert state.all_attachments() == [Attachment(**{**_fields(att), "status_reported": True})]
    answer = await state.unprepare([ref_of(claim)])
    assert answer["uid-1"].startswith("claim default/foo: 1 interface(s) still attached in pod "
                                      "sandbox(es) sbsbsbsbsbsb")
    restarted, _ = await open_state(tmp_path, FakeReader())
    assert restarted.attachments_for_sandbox("sb" * 32)[0].status_reported
    assert restarted.attachments_for_sandbox("other") == []
    assert await restarted.remove_attachment("uid-1", "net1", "sb" * 32)
    assert not await restarted.remove_attachment("uid-1", "net1", "sb" * 32)
    assert await restarted.unprepare([ref_of(claim)]) == {"uid-1": ""}


async def test_record_attachment_checks(tmp_path: Path) -> None:
    claim = make_claim()
    state, _ = await open_state(tmp_path, FakeReader(claim))
    await state.prepare([ref_of(claim)])
    with pytest.raises(CheckpointError, match="claim nope is not prepared"):
        await state.record_attachment(Attachment("nope", "net1", "p", "s", "/n", "n"))
    with pytest.raises(CheckpointError, match="plans no interface 'net9'"):
        await state.record_attachment(Attachment("uid-1", "net9", "p", "s", "/n", "n"))
    assert state.all_attachments() == []


async def test_reallocation_refused_while_attached(tmp_path: Path) -> None:
    claim = make_claim()
    reader = FakeReader(claim)
    state, _ = await open_state(tmp_path, reader)
    await state.prepare([ref_of(claim)])
    await state.record_attachment(Attachment("uid-1", "net1", "pod-1", "s", "/n", "n"))
    claim["status"]["allocation"]["devices"]["results"][0]["device"] = "eth2"
    out = await state.prepare([ref_of(claim)])
    assert "its allocation changed while interfaces" in out["uid-1"].error
    assert state.get("uid-1").devices[0].device_name == "eth1"  # type: ignore[union-attr]


async def test_checkpoint_write_failure_is_per_claim_and_keeps_state(tmp_path: Path) -> None:
    claim = make_claim()
    state, cp = await open_state(tmp_path, FakeReader(claim))
    cp.fail = True
    out = await state.prepare([ref_of(claim)])
    assert out["uid-1"].error == (
        "claim default/foo: cannot record the prepared claim on this node: checkpoint /x: "
        "cannot write: disk full")
    assert state.get("uid-1") is None
    cp.fail = False
    assert (await state.prepare([ref_of(claim)]))["uid-1"].ok
    cp.fail = True
    assert "disk full" in (await state.unprepare([ref_of(claim)]))["uid-1"]
    assert state.get("uid-1") is not None


async def test_corrupt_checkpoint_stops_open(tmp_path: Path) -> None:
    (tmp_path / "checkpoint.json").write_text("{oops")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        await ClaimState.open(str(tmp_path), FakeReader(), driver=DRIVER)
    assert (tmp_path / "checkpoint.json").read_text() == "{oops"


async def test_class_fetched_only_for_class_configs(tmp_path: Path) -> None:
    bad = cni(config={"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "host-device"}]})
    claim = make_claim(configs=[entry(bad, ["net"], source="FromClass")])
    reader = FakeReader(claim)
    reader.classes["cni-class"] = {"spec": {"config": [{"opaque": {"driver": DRIVER,
                                                                   "parameters": bad}}]}}
    state, _ = await open_state(tmp_path, reader)
    out = await state.prepare([ref_of(claim)])
    assert "[from DeviceClass 'cni-class' (spec.config[0]): ask the cluster admin]" in (
        out["uid-1"].error)


def _fields(att: Attachment) -> dict[str, Any]:
    return {name: getattr(att, name) for name in Attachment.__slots__}


class SlowCheckpoint(Checkpoint):
    def save(self, claims: Any) -> Stamp:
        time.sleep(0.2)
        return super().save(claims)


async def test_cancelled_prepare_keeps_memory_and_file_in_step(tmp_path: Path) -> None:
    claim = make_claim()
    cp = SlowCheckpoint(tmp_path)
    state = ClaimState(cp, {}, FakeReader(claim), driver=DRIVER)
    task = asyncio.create_task(state.prepare([ref_of(claim)]))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert set(cp.load()) == {"uid-1"}
    assert state.get("uid-1") is not None
