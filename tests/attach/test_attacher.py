"""Attach/detach for real: Debian CNI plugins, real namespaces, IPAM leases on disk."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from attach.kit import DRIVER, FakeState, Sink, macvlan_conflist, plan
from claims.claimkit import cni, make_claim, result
from claims.claimkit import entry as config_entry
from claims.test_claim_state import FakeReader, ref_of

from cnidra.attach._attacher import Attacher, AttachError, cni_args
from cnidra.attach._ports import Sandbox
from cnidra.claims import ClaimState
from cnidra.cni import CNIRuntime, RuntimeConf, parse_conflist
from cnidra.errors import ConfigError
from cnidra.model.plan import Attachment
from support import ip, unique

pytestmark = pytest.mark.root


@dataclass
class World:
    attacher: Attacher
    state: FakeState
    sink: Sink
    cni: CNIRuntime
    master: str
    data_dir: Path
    netns: Callable[[str], str]

    def sandbox(self, pod_uid: str = "pod-1") -> Sandbox:
        name = self.netns("cnpod")
        return Sandbox(unique("sb"), pod_uid, "demo", "default", f"/run/netns/{name}")

    def leases(self, net: str) -> list[str]:
        d = self.data_dir / net
        return sorted(p.name for p in d.iterdir() if p.name[0].isdigit()) if d.exists() else []


@pytest.fixture
def world(tmp_path: Path, netns: Callable[[str], str], links: list[str],
          cni_bin_dirs: list[str]) -> World:
    master = unique("cnm", 8)
    subprocess.run(["ip", "link", "add", master, "type", "veth", "peer", "name", master + "p"],
                   check=True)
    links.append(master)
    subprocess.run(["ip", "link", "set", master, "up"], check=True)
    cni = CNIRuntime(cni_bin_dirs, cache_dir=str(tmp_path / "cache"))
    state, sink = FakeState(), Sink()
    attacher = Attacher(driver=DRIVER, state=state, cni=cni, status=sink, events=sink)
    return World(attacher, state, sink, cni, master, tmp_path / "ipam", netns)


async def test_run_attaches_reports_and_stop_releases(world: World) -> None:
    net = unique("net")
    world.state.plans["c1"] = plan("c1", "pod-1", "net1",
                                   macvlan_conflist(net, world.master, world.data_dir,
                                                    "10.77.1.0/24"), net)
    sb = world.sandbox()
    added = await world.attacher.run_pod_sandbox(sb)
    assert [a.if_name for a in added] == ["net1"]
    ns = Path(sb.netns or "").name
    assert "10.77.1." in ip("-o", "addr", "show", "net1", netns=ns)
    assert len(world.leases(net)) == 1
    (key, devices), = world.sink.status
    assert key == "default/claim-c1"
    assert devices[0]["conditions"][0]["status"] == "True"
    assert devices[0]["networkData"]["ips"][0].startswith("10.77.1.")
    assert await world.attacher.run_pod_sandbox(sb) == []  # repeated: no-op
    await world.attacher.stop_pod_sandbox(sb)
    assert "net1" not in ip("-o", "link", netns=ns)
    assert world.leases(net) == []
    assert world.state.attachments == {}
    assert world.sink.status[-1] == ("default/claim-c1", [])
    await world.attacher.remove_pod_sandbox(replace(sb, netns=None))  # idempotent


async def test_failing_second_interface_rolls_back_the_first(world: World) -> None:
    good, bad = unique("net"), unique("net")
    world.state.plans["a"] = plan("a", "pod-1", "net1", macvlan_conflist(
        good, world.master, world.data_dir, "10.77.2.0/24"), good)
    world.state.plans["b"] = plan("b", "pod-1", "net2", macvlan_conflist(
        bad, "nosuchmaster0", world.data_dir, "10.77.3.0/24"), bad)
    sb = world.sandbox()
    with pytest.raises(AttachError) as exc:
        await world.attacher.run_pod_sandbox(sb)
    assert "claim default/claim-b: net2" in str(exc.value)
    assert "macvlan ADD: Link not found" in str(exc.value)
    ns = Path(sb.netns or "").name
    links_now = ip("-o", "link", netns=ns)
    assert "net1" not in links_now
    assert "net2" not in links_now
    assert world.leases(good) == []
    assert world.leases(bad) == []
    assert world.state.attachments == {}
    assert await world.cni.cached_attachments() == []
    failed = world.sink.status[-1]
    assert failed[0] == "default/claim-b"
    assert failed[1][0]["conditions"][0]["status"] == "False"
    assert world.sink.events[0][0] == "NetworkAttachFailed"


async def test_checkpoint_failure_rolls_back(world: World) -> None:
    net = unique("net")
    world.state.plans["c1"] = plan("c1", "pod-1", "net1", macvlan_conflist(
        net, world.master, world.data_dir, "10.77.4.0/24"), net)
    world.state.fail_record = True
    sb = world.sandbox()
    with pytest.raises(AttachError, match="disk full"):
        await world.attacher.run_pod_sandbox(sb)
    assert "net1" not in ip("-o", "link", netns=Path(sb.netns or "").name)
    assert world.leases(net) == []


async def test_remove_after_netns_is_gone_releases_the_lease(world: World) -> None:
    net = unique("net")
    world.state.plans["c1"] = plan("c1", "pod-1", "net1", macvlan_conflist(
        net, world.master, world.data_dir, "10.77.5.0/24"), net)
    sb = world.sandbox()
    await world.attacher.run_pod_sandbox(sb)
    subprocess.run(["ip", "netns", "del", Path(sb.netns or "").name], check=True)
    await world.attacher.remove_pod_sandbox(replace(sb, netns=None))
    assert world.leases(net) == []
    assert world.state.attachments == {}


async def test_synchronize_detaches_dead_sandboxes_and_unrecorded_cache(world: World) -> None:
    net = unique("net")
    conflist = macvlan_conflist(net, world.master, world.data_dir, "10.77.6.0/24")
    world.state.plans["c1"] = plan("c1", "pod-1", "net1", conflist, net)
    dead = world.sandbox("pod-1")
    live = world.sandbox("pod-3")  # a live pod without claims of ours: nothing to catch up
    await world.attacher.run_pod_sandbox(dead)
    # A restart in the middle of an ADD: the plugin ran, the checkpoint never heard of it.
    orphan = world.sandbox("pod-2")
    await world.cni.add(parse_conflist(conflist), RuntimeConf(orphan.id, orphan.netns or "",
                                                              "net9"))
    assert len(world.leases(net)) == 2
    removed = await world.attacher.synchronize({live})
    assert removed == 2
    assert world.leases(net) == []
    assert world.state.attachments == {}


def _addresses(sb: Sandbox, if_name: str) -> list[str]:
    out = json.loads(ip("-j", "addr", "show", "dev", if_name, netns=Path(sb.netns or "").name))
    return [a["local"] for a in out[0]["addr_info"] if a["family"] == "inet"]


async def test_synchronize_attaches_a_live_sandbox_that_missed_run(world: World) -> None:
    """The pod started while the driver was down: RunPodSandbox never reached us."""
    net = unique("net")
    world.state.plans["c1"] = plan("c1", "pod-1", "net1", macvlan_conflist(
        net, world.master, world.data_dir, "10.77.9.0/24"), net)
    sb = world.sandbox("pod-1")
    host_net = Sandbox(unique("sb"), "pod-1", "demo", "default", None)  # skipped
    assert await world.attacher.synchronize([sb, host_net]) == 1
    (address,) = _addresses(sb, "net1")
    assert address.startswith("10.77.9.")
    assert world.leases(net) == [address]
    assert [(a.sandbox_id, a.if_name) for a in world.state.all_attachments()] == [
        (sb.id, "net1")]
    (key, devices), = world.sink.status
    assert key == "default/claim-c1"
    assert devices[0]["conditions"][0]["status"] == "True"
    assert devices[0]["networkData"]["ips"] == [f"{address}/24"]
    assert await world.attacher.synchronize([sb]) == 0  # a second Synchronize: nothing to do
    assert world.leases(net) == [address]
    await world.attacher.stop_pod_sandbox(sb)
    assert world.leases(net) == []


async def test_catch_up_deletes_what_a_killed_add_left_first(world: World) -> None:
    """The driver died after the plugin ran (link, lease, cache entry) but before the
    checkpoint write; and a second, unplanned interface is in the cache of the sandbox."""
    net = unique("net")
    conflist = macvlan_conflist(net, world.master, world.data_dir, "10.77.10.0/24")
    world.state.plans["c1"] = plan("c1", "pod-1", "net1", conflist, net)
    sb = world.sandbox("pod-1")
    for if_name in ("net1", "net9"):
        await world.cni.add(parse_conflist(conflist),
                            RuntimeConf(sb.id, sb.netns or "", if_name, cni_args(sb)))
    half_made = world.leases(net)
    assert len(half_made) == 2
    assert await world.attacher.synchronize([sb]) == 1  # made; the leftovers are not counted
    links_now = ip("-o", "link", netns=Path(sb.netns or "").name)
    assert "net9" not in links_now
    (address,) = _addresses(sb, "net1")
    assert world.leases(net) == [address]  # one lease: the half-made ones were released
    assert address not in half_made  # and this is a new ADD, not the leftover link
    assert [(e.container_id, e.ifname) for e in await world.cni.cached_attachments()] == [
        (sb.id, "net1")]
    assert len(world.state.all_attachments()) == 1


async def test_catch_up_deletes_a_link_left_without_cache_entry(world: World) -> None:
    """Killed before the cache write (macvlan made the link, IPAM finished later): no cache
    entry to go by, so the planned config is DELeted before the ADD."""
    net = unique("net")
    conflist = macvlan_conflist(net, world.master, world.data_dir, "10.77.11.0/24")
    world.state.plans["c1"] = plan("c1", "pod-1", "net1", conflist, net)
    sb = world.sandbox("pod-1")
    await world.cni.add(parse_conflist(conflist),
                        RuntimeConf(sb.id, sb.netns or "", "net1", cni_args(sb)))
    for entry in await world.cni.cached_attachments():  # drop the cache entry only
        for path in (Path(world.cni.cache_dir)).rglob(f"*{entry.container_id}*"):
            path.unlink()
    assert await world.cni.cached_attachments() == []
    (left,) = world.leases(net)
    assert await world.attacher.synchronize([sb]) == 1
    (address,) = _addresses(sb, "net1")
    assert world.leases(net) == [address] and address != left


async def test_failing_catch_up_reports_the_claim_and_leaves_nothing(world: World) -> None:
    good, bad, other = unique("net"), unique("net"), unique("net")
    world.state.plans["a"] = plan("a", "pod-1", "net1", macvlan_conflist(
        good, world.master, world.data_dir, "10.77.12.0/24"), good)
    world.state.plans["b"] = plan("b", "pod-1", "net2", macvlan_conflist(
        bad, "nosuchmaster0", world.data_dir, "10.77.13.0/24"), bad)
    world.state.plans["c"] = plan("c", "pod-2", "net1", macvlan_conflist(
        other, world.master, world.data_dir, "10.77.14.0/24"), other)
    failing, fine = world.sandbox("pod-1"), world.sandbox("pod-2")
    assert await world.attacher.synchronize([failing, fine]) == 1  # never raises for a pod
    links_now = ip("-o", "link", netns=Path(failing.netns or "").name)
    assert "net1" not in links_now and "net2" not in links_now
    assert world.leases(good) == [] and world.leases(bad) == []
    assert [e.container_id for e in await world.cni.cached_attachments()] == [fine.id]
    assert [a.sandbox_id for a in world.state.all_attachments()] == [fine.id]
    failed = dict(world.sink.status)["default/claim-b"]
    assert failed[0]["conditions"][0]["status"] == "False"
    assert "Link not found" in failed[0]["conditions"][0]["message"]
    assert world.sink.events[0][0] == "NetworkAttachFailed"
    assert dict(world.sink.status)["default/claim-c"][0]["conditions"][0]["status"] == "True"
    assert len(_addresses(fine, "net1")) == 1


async def test_catch_up_runs_pods_in_parallel_within_the_bound(world: World) -> None:
    class Counting(CNIRuntime):
        now = peak = 0

        async def add(self, net: Any, rt: RuntimeConf) -> Any:
            Counting.now += 1
            Counting.peak = max(Counting.peak, Counting.now)
            try:
                return await super().add(net, rt)
            finally:
                Counting.now -= 1

    cni = Counting(world.cni.bin_dirs, cache_dir=world.cni.cache_dir)
    attacher = Attacher(driver=DRIVER, state=world.state, cni=cni, status=world.sink,
                        events=world.sink, catch_up_concurrency=2)
    net = unique("net")
    conflist = macvlan_conflist(net, world.master, world.data_dir, "10.77.15.0/24")
    pods = [world.sandbox(f"pod-{n}") for n in range(5)]
    for n in range(5):
        world.state.plans[f"c{n}"] = plan(f"c{n}", f"pod-{n}", "net1", conflist, net)
    assert await attacher.synchronize(pods) == 5
    assert len(world.leases(net)) == 5
    assert Counting.peak == 2
    for sb in pods:
        await attacher.stop_pod_sandbox(sb)
    assert world.leases(net) == []


async def test_host_network_pod_is_skipped(world: World) -> None:
    world.state.plans["c1"] = plan("c1", "pod-1", "net1", b"{}", "n")
    assert await world.attacher.run_pod_sandbox(Sandbox("sb", "pod-1", "p", "ns", None)) == []


async def test_same_ifname_in_two_claims_fails_before_any_add(world: World) -> None:
    a, b = unique("net"), unique("net")
    world.state.plans["a"] = plan("a", "pod-1", "net1", macvlan_conflist(
        a, world.master, world.data_dir, "10.77.7.0/24"), a)
    world.state.plans["b"] = plan("b", "pod-1", "net1", macvlan_conflist(
        b, world.master, world.data_dir, "10.77.8.0/24"), b)
    with pytest.raises(ConfigError, match="both ask for interface 'net1'; pod interface names"):
        await world.attacher.run_pod_sandbox(world.sandbox())
    assert world.leases(a) == [] and world.leases(b) == []


@dataclass
class SlowRecordState(FakeState):
    """Records like FakeState, but the checkpoint write takes a while (so a cancel lands in it)."""

    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def record_attachments(self, attachments: Iterable[Attachment]) -> None:
        self.started.set()
        await asyncio.sleep(0.3)
        await super().record_attachments(attachments)


async def _cancel_when(task: asyncio.Task[Any], ready: Callable[[], bool]) -> None:
    for _ in range(500):
        if ready():
            break
        await asyncio.sleep(0.01)
    assert ready(), "the attach never reached the point to cancel at"
    task.cancel()
    await asyncio.sleep(0.05)
    task.cancel()  # a second cancel (the driver stopping) must not cut the rollback short
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancel_during_add_leaves_nothing_behind(world: World) -> None:
    nets = [unique("net"), unique("net")]
    for n, (uid, if_name, net) in enumerate(zip(("a", "b"), ("net1", "net2"), nets, strict=True)):
        world.state.plans[uid] = plan(uid, "pod-1", if_name, macvlan_conflist(
            net, world.master, world.data_dir, f"10.77.{20 + n}.0/24"), net)
    sb = world.sandbox()
    task = asyncio.ensure_future(world.attacher.run_pod_sandbox(sb))
    # cancel once the first interface exists (its lease is taken), while the second is added
    await _cancel_when(task, lambda: bool(world.leases(nets[0])))
    ns = Path(sb.netns or "").name
    links_now = ip("-o", "link", netns=ns)
    assert "net1" not in links_now and "net2" not in links_now
    assert world.leases(nets[0]) == [] and world.leases(nets[1]) == []
    assert world.state.attachments == {}
    assert await world.cni.cached_attachments() == []


async def test_cancel_during_the_checkpoint_write_rolls_back(world: World) -> None:
    slow = SlowRecordState()
    world.attacher = Attacher(driver=DRIVER, state=slow, cni=world.cni, status=world.sink,
                              events=world.sink)
    net = unique("net")
    slow.plans["c1"] = plan("c1", "pod-1", "net1", macvlan_conflist(
        net, world.master, world.data_dir, "10.77.22.0/24"), net)
    sb = world.sandbox()
    task = asyncio.ensure_future(world.attacher.run_pod_sandbox(sb))
    await _cancel_when(task, slow.started.is_set)
    ns = Path(sb.netns or "").name
    assert "net1" not in ip("-o", "link", netns=ns)
    assert world.leases(net) == []
    assert slow.attachments == {}  # the write finished, then the undo forgot it again
    assert await world.cni.cached_attachments() == []
    assert world.sink.status == []  # never reported Ready


async def test_a_sandbox_stopped_before_its_catch_up_is_not_attached(world: World) -> None:
    slow = SlowRecordState()
    attacher = Attacher(driver=DRIVER, state=slow, cni=world.cni, status=world.sink,
                        events=world.sink, catch_up_concurrency=1)
    net = unique("net")
    conflist = macvlan_conflist(net, world.master, world.data_dir, "10.77.16.0/24")
    slow.plans["a"] = plan("a", "pod-a", "net1", conflist, net)
    slow.plans["b"] = plan("b", "pod-b", "net1", conflist, net)
    first, second = world.sandbox("pod-a"), world.sandbox("pod-b")
    sync = asyncio.ensure_future(attacher.synchronize([first, second]))
    try:
        async with asyncio.timeout(10):
            await slow.started.wait()  # the first pod is being caught up, the second waits
        await attacher.stop_pod_sandbox(second)
        await attacher.remove_pod_sandbox(replace(second, netns=None))
    finally:
        async with asyncio.timeout(10):
            assert await sync == 1
    assert [a.sandbox_id for a in slow.all_attachments()] == [first.id]
    assert "net1" not in ip("-o", "link", netns=Path(second.netns or "").name)
    assert len(world.leases(net)) == 1
    await attacher.stop_pod_sandbox(first)
    assert world.leases(net) == []


async def test_attach_sees_claims_the_other_instance_prepared(world: World, tmp_path: Path) -> None:
    """Rolling update: the kubelet prepared through instance B, NRI talks to instance A."""
    net = unique("net")
    conf = json.loads(macvlan_conflist(net, world.master, world.data_dir, "10.77.30.0/24"))
    claim = make_claim([result(device=world.master)], [config_entry(cni(config=conf), ["net"])])
    state_dir = str(tmp_path / "state")
    a = await ClaimState.open(state_dir, FakeReader(claim), driver=DRIVER)
    b = await ClaimState.open(state_dir, FakeReader(claim), driver=DRIVER)
    attacher = Attacher(driver=DRIVER, state=a, cni=world.cni, status=world.sink,
                        events=world.sink)
    assert (await b.prepare([ref_of(claim)]))["uid-1"].ok
    sb = world.sandbox("pod-1")
    added = await attacher.run_pod_sandbox(sb)
    assert [x.if_name for x in added] == ["net1"]
    assert len(world.leases(net)) == 1
    assert (await b.unprepare([ref_of(claim)]))["uid-1"]  # B sees A's attachment: refused
    await attacher.stop_pod_sandbox(sb)
    assert world.leases(net) == []
    assert await b.unprepare([ref_of(claim)]) == {"uid-1": ""}
    assert not await a.refresh() or a.get("uid-1") is None
