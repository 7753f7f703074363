"""Attach/detach for real: Debian CNI plugins, real namespaces, IPAM leases on disk."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from cnidra.attach._attacher import Attacher, AttachError
from cnidra.attach._ports import Sandbox
from cnidra.cni import CNIRuntime, RuntimeConf, parse_conflist
from cnidra.errors import CheckpointError, ConfigError
from cnidra.model.claims import PreparedDevice
from cnidra.model.plan import Attachment, ClaimPlan, PlannedInterface
from support import ip, unique

pytestmark = pytest.mark.root
DRIVER = "cni.dra.networking.x-k8s.io"


@dataclass
class FakeState:
    plans: dict[str, ClaimPlan] = field(default_factory=dict)
    attachments: dict[tuple[str, str, str], Attachment] = field(default_factory=dict)
    fail_record: bool = False

    def get(self, claim_uid: str) -> ClaimPlan | None:
        return self.plans.get(claim_uid)

    def plans_for_pod(self, pod_uid: str) -> list[ClaimPlan]:
        return [p for p in self.plans.values() if pod_uid in p.pod_uids]

    def attachments_for_sandbox(self, sandbox_id: str) -> list[Attachment]:
        return [a for a in self.attachments.values() if a.sandbox_id == sandbox_id]

    def all_attachments(self) -> list[Attachment]:
        return list(self.attachments.values())

    async def record_attachments(self, attachments: Iterable[Attachment]) -> None:
        if self.fail_record:
            raise CheckpointError("disk full")
        for a in attachments:
            self.attachments[a.key] = a

    async def remove_attachments(self, keys: Iterable[tuple[str, str, str]]) -> list[Attachment]:
        return [a for k in list(keys) if (a := self.attachments.pop(k, None)) is not None]


@dataclass
class Sink:
    status: list[tuple[str, list[Mapping[str, Any]]]] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)

    def submit(self, namespace: str, name: str, uid: str,
               devices: Sequence[Mapping[str, Any]]) -> None:
        self.status.append((f"{namespace}/{name}", list(devices)))

    def claim_event(self, namespace: str, name: str, uid: str, *, reason: str, message: str,
                    warning: bool) -> None:
        self.events.append((reason, message))


def macvlan_conflist(name: str, master: str, data_dir: Path, subnet: str) -> bytes:
    conf = {"cniVersion": "1.0.0", "name": name, "plugins": [{
        "type": "macvlan", "master": master, "mode": "bridge",
        "ipam": {"type": "host-local", "dataDir": str(data_dir), "ranges": [[{"subnet": subnet}]]},
    }]}
    return json.dumps(conf, sort_keys=True, separators=(",", ":")).encode()


def plan(uid: str, pod_uid: str, if_name: str, conflist: bytes, net: str,
         device: str = "eth1") -> ClaimPlan:
    iface = PlannedInterface(
        claim_uid=uid, claim_namespace="default", claim_name=f"claim-{uid}", request="req",
        driver=DRIVER, pool="node-a", device=device, device_if_name=device, share_id=None,
        admin_access=True, if_name=if_name, network_name=net, cni_version="1.0.0",
        conflist=conflist, config_source="FromClaim", if_name_source="FromClaim",
    )
    return ClaimPlan(claim_uid=uid, namespace="default", name=f"claim-{uid}",
                     allocation_digest="d", pod_uids=(pod_uid,), interfaces=(iface,),
                     devices=(PreparedDevice(("req",), "node-a", device),))


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
    live, dead = world.sandbox("pod-1"), world.sandbox("pod-1")
    await world.attacher.run_pod_sandbox(dead)
    # A restart in the middle of an ADD: the plugin ran, the checkpoint never heard of it.
    orphan = world.sandbox("pod-2")
    await world.cni.add(parse_conflist(conflist), RuntimeConf(orphan.id, orphan.netns or "",
                                                              "net9"))
    assert len(world.leases(net)) == 2
    removed = await world.attacher.synchronize({live.id})
    assert removed == 2
    assert world.leases(net) == []
    assert world.state.attachments == {}


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
