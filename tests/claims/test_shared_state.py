"""Two-phase prepare and two ClaimState instances over one directory (the kubelet plugin's
rolling update): no instance acts on a stale cache of the checkpoint."""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from pathlib import Path

from claims.claimkit import DRIVER, make_claim
from claims.test_claim_state import FakeReader, open_state, ref_of

from cnidra.claims import Checkpoint, ClaimState
from cnidra.model.plan import Attachment


async def test_fetch_takes_no_lock_and_apply_prepare_uses_its_reads(tmp_path: Path) -> None:
    good, gone = make_claim(uid="u1", name="a"), make_claim(uid="u2", name="b")
    reader = FakeReader(good)
    state, cp = await open_state(tmp_path, reader)
    async with state._lock:  # the state phase of another call is running
        fetched = await asyncio.wait_for(state.fetch([ref_of(good), ref_of(gone),
                                                      ref_of(good)]), 2)
    assert [r.uid for r in fetched.refs] == ["u1", "u2"]  # one per UID
    assert cp.saves == 0 and state.get("u1") is None  # reads touch no state
    reader.claims.clear()  # the answer comes from the fetch, not from new reads
    out = await state.apply_prepare(fetched)
    assert out["u1"].ok and [d.device_name for d in out["u1"].devices] == ["eth1"]
    assert out["u2"].error == "claim default/b: not found in the API server"
    assert cp.saves == 1 and state.get("u1") is not None


async def test_prepare_via_a_unprepare_via_b(tmp_path: Path) -> None:
    claim = make_claim()
    a, _ = await open_state(tmp_path, FakeReader(claim))
    b, cp_b = await open_state(tmp_path, FakeReader(claim))  # both opened on an empty directory
    assert (await a.prepare([ref_of(claim)]))["uid-1"].ok
    assert b.get("uid-1") is None  # B's memory is as of its last read...
    assert await b.unprepare([ref_of(claim)]) == {"uid-1": ""}  # ...but it acts on the file
    assert cp_b.saves == 1 and Checkpoint(tmp_path).load() == {}
    assert await a.refresh() and a.get("uid-1") is None
    assert not await a.refresh()  # unchanged since: no reload


async def test_prepare_via_b_sees_a_claim_and_keeps_it(tmp_path: Path) -> None:
    one = make_claim(uid="u1", name="one", pods=("p1",))
    two = make_claim(uid="u2", name="two", pods=("p2",))
    reader = FakeReader(one, two)
    a, cp_a = await open_state(tmp_path, reader)
    b, cp_b = await open_state(tmp_path, reader)
    assert (await a.prepare([ref_of(one)]))["u1"].ok
    plan = Checkpoint(tmp_path).load()["u1"].plan
    again = await b.prepare([ref_of(one)])  # the kubelet retried on the other instance
    assert again["u1"].ok and again["u1"].devices == plan.devices
    assert cp_b.saves == 0  # A's plan was reused, not recomputed and rewritten
    assert b.get("u1") == plan
    assert (await b.prepare([ref_of(two)]))["u2"].ok  # B's write keeps A's claim
    assert sorted(Checkpoint(tmp_path).load()) == ["u1", "u2"]
    assert (await a.prepare([ref_of(two)]))["u2"].ok and cp_a.saves == 1
    assert [p.claim_uid for p in a.plans_for_pod("p2")] == ["u2"]


async def test_attachment_via_a_blocks_unprepare_via_b(tmp_path: Path) -> None:
    claim = make_claim()
    a, _ = await open_state(tmp_path, FakeReader(claim))
    b, _ = await open_state(tmp_path, FakeReader(claim))
    await b.prepare([ref_of(claim)])
    att = Attachment("uid-1", "net1", "pod-1", "sb" * 32, "/run/netns/x", "macvlan-eth1")
    await a.record_attachment(att)  # A had never seen the claim in memory
    assert "still attached" in (await b.unprepare([ref_of(claim)]))["uid-1"]
    assert b.all_attachments() == [att]
    assert await b.remove_attachment("uid-1", "net1", "sb" * 32)
    assert await a.unprepare([ref_of(claim)]) == {"uid-1": ""}


async def test_unreadable_file_from_the_other_instance_is_per_claim(tmp_path: Path) -> None:
    claim = make_claim()
    a, cp = await open_state(tmp_path, FakeReader(claim))
    await a.prepare([ref_of(claim)])
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'{"version": 1, "cla')
    broken.replace(cp.path)  # a new file (new inode), as another instance's save would leave
    out = await a.prepare([ref_of(claim)])
    assert out["uid-1"].error.startswith(
        "claim default/foo: cannot use the prepared claims of this node: checkpoint ")
    assert "not valid JSON" in (await a.unprepare([ref_of(claim)]))["uid-1"]
    assert cp.path.read_bytes() == b'{"version": 1, "cla'  # never overwritten


async def test_changes_of_two_instances_are_never_lost(tmp_path: Path) -> None:
    items = [make_claim(uid=f"u{i}", name=f"c{i}", pods=(f"p{i}",)) for i in range(12)]
    reader = FakeReader(*items)
    a, _ = await open_state(tmp_path, reader)
    b, _ = await open_state(tmp_path, reader)
    answers = await asyncio.gather(*(
        (a if i % 2 else b).prepare([ref_of(item)]) for i, item in enumerate(items)))
    assert all(out[f"u{i}"].ok for i, out in enumerate(answers))
    assert sorted(Checkpoint(tmp_path).load()) == sorted(f"u{i}" for i in range(12))
    atts = [Attachment(f"u{i}", "net1", f"p{i}", f"sb{i:02d}" * 16, "/x", "n") for i in range(12)]
    await asyncio.gather(*(  # NRI on one instance, the kubelet on the other
        *(a.record_attachment(att) for att in atts[:6]),
        *(b.unprepare([ref_of(item)]) for item in items[6:]),
    ))
    saved = Checkpoint(tmp_path).load()
    assert sorted(saved) == sorted(f"u{i}" for i in range(6))
    assert all(saved[f"u{i}"].attachments == (atts[i],) for i in range(6))


async def test_a_held_lock_is_waited_for_then_a_per_claim_error(tmp_path: Path) -> None:
    claim = make_claim()
    cp = Checkpoint(tmp_path)
    state = ClaimState(cp, {}, FakeReader(claim), driver=DRIVER, lock_timeout=0.2)
    other = cp.open_lock()  # another instance in its state phase
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        started = time.monotonic()
        out = await state.prepare([ref_of(claim)])
        assert time.monotonic() - started >= 0.2
        assert out["uid-1"].error == (
            "claim default/foo: cannot use the prepared claims of this node: checkpoint lock "
            f"{tmp_path}/checkpoint.lock: held by another instance for more than 0.2s")
        task = asyncio.create_task(state.prepare([ref_of(claim)]))
        await asyncio.sleep(0.05)
        fcntl.flock(other, fcntl.LOCK_UN)  # released: the waiting call goes on
        assert (await asyncio.wait_for(task, 2))["uid-1"].ok
    finally:
        os.close(other)
    assert sorted(cp.load()) == ["uid-1"]


def test_stamp_changes_on_every_save_and_matches_load(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path)
    assert cp.stamp() is None and cp.load_stamped() == ({}, None)
    first = cp.save({})
    assert first is not None and cp.stamp() == first and cp.load_stamped()[1] == first
    second = cp.save({})  # same content, new file
    assert second != first and cp.stamp() == second
    leftover = tmp_path / ".checkpoint.json.other.tmp"  # another instance mid-save
    leftover.write_bytes(b"{")
    cp.load_stamped()
    assert leftover.exists()
    cp.load()  # at start only
    assert not leftover.exists()


async def test_open_records_the_stamp(tmp_path: Path) -> None:
    claim = make_claim()
    await (await ClaimState.open(str(tmp_path), FakeReader(claim), driver=DRIVER)).prepare(
        [ref_of(claim)])
    mtime = os.stat(tmp_path / "checkpoint.json").st_mtime_ns
    state = await ClaimState.open(str(tmp_path), FakeReader(claim), driver=DRIVER)
    assert not await state.refresh()
    assert os.stat(tmp_path / "checkpoint.json").st_mtime_ns == mtime
