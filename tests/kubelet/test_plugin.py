"""The real gRPC servers over unix sockets, driven by clients from our generated stubs, over the
real ClaimState with an in-memory API reader."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
import pytest
from claims.claimkit import DRIVER, cni, entry, fixture_claim, make_claim, result
from kubelet.kubeletkit import (
    MemoryReader,
    clients,
    ref,
    running_plugin,
    v1_request,
    v1_unprepare,
    v1beta1_request,
)

from cnidra.claims import Fetched
from cnidra.errors import ConfigError
from cnidra.kubelet import KubeletPlugin
from cnidra.kubelet._proto import dra_v1_pb2, dra_v1beta1_pb2, pluginregistration_pb2
from cnidra.model.claims import ClaimRef, PrepareOutcome
from cnidra.model.plan import Attachment

SHARED = "8da36f67-19a7-4e63-939a-033552ec117b"


async def test_get_info_and_notify_are_recorded(tmp_path: Path) -> None:
    async with running_plugin(tmp_path, MemoryReader()) as (plugin, _, c):
        info = await c.registration.GetInfo(pluginregistration_pb2.InfoRequest(), timeout=1)
        assert (info.type, info.name) == ("DRAPlugin", DRIVER)
        assert info.endpoint == str(tmp_path / "plug" / "dra.sock")
        assert os.path.isabs(info.endpoint)
        assert list(info.supported_versions) == ["v1.DRAPlugin", "v1beta1.DRAPlugin"]
        assert plugin.paths.registration == str(tmp_path / "reg" / f"{DRIVER}-reg.sock")
        assert not plugin.registered
        assert not await plugin.wait_registered(0.01)
        await c.registration.NotifyRegistrationStatus(
            pluginregistration_pb2.RegistrationStatus(plugin_registered=True), timeout=5)
        assert await plugin.wait_registered(1)
        assert plugin.registration_error == ""
        await c.registration.NotifyRegistrationStatus(
            pluginregistration_pb2.RegistrationStatus(error="versions unknown"), timeout=5)
        assert not plugin.registered
        assert plugin.registration_error == "versions unknown"


async def test_rejection_is_logged_as_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_plugin(tmp_path, MemoryReader()) as (plugin, _, c):
        await c.registration.NotifyRegistrationStatus(
            pluginregistration_pb2.RegistrationStatus(plugin_registered=False, error="nope"))
        assert not await plugin.wait_registered(1)
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "rejected" in record.getMessage()
    assert "nope" in record.getMessage()


async def test_prepare_one_fixture_claim_v1_with_share_id(tmp_path: Path) -> None:
    claim = fixture_claim("adminaccess.v1")
    async with running_plugin(tmp_path, MemoryReader(claim)) as (_, state, c):
        resp = await c.v1.NodePrepareResources(v1_request(ref(claim)), timeout=45)
        uid = claim["metadata"]["uid"]
        assert list(resp.claims) == [uid]
        answer = resp.claims[uid]
        assert answer.error == ""
        (dev,) = answer.devices
        (want,) = claim["status"]["allocation"]["devices"]["results"]
        assert (dev.pool_name, dev.device_name, dev.share_id) == (want["pool"], "eth1", SHARED)
        assert list(dev.request_names) == [want["request"]]
        assert dev.HasField("share_id")
        assert state.get(uid) is not None


async def test_v1beta1_is_served_without_share_id(tmp_path: Path) -> None:
    claim = fixture_claim("adminaccess.v1")
    async with running_plugin(tmp_path, MemoryReader(claim)) as (_, _state, c):
        resp = await c.v1beta1.NodePrepareResources(v1beta1_request(ref(claim)), timeout=45)
        (dev,) = resp.claims[claim["metadata"]["uid"]].devices
        assert dev.device_name == "eth1"
        # v1beta1 has no field 5: decoding the same bytes as v1 shows nothing was sent.
        as_v1 = dra_v1_pb2.NodePrepareResourcesResponse.FromString(resp.SerializeToString())
        assert not as_v1.claims[claim["metadata"]["uid"]].devices[0].HasField("share_id")
        assert "share_id" not in dra_v1beta1_pb2.Device.DESCRIPTOR.fields_by_name


async def test_no_share_id_on_v1_when_unset(tmp_path: Path) -> None:
    claim = make_claim(uid="u1", name="c1")
    async with running_plugin(tmp_path, MemoryReader(claim)) as (_, _state, c):
        resp = await c.v1.NodePrepareResources(v1_request(ref(claim)), timeout=45)
        (dev,) = resp.claims["u1"].devices
        assert (list(dev.request_names), dev.pool_name, dev.device_name) == (["net"], "node1",
                                                                             "eth1")
        assert not dev.HasField("share_id")


async def test_subrequest_is_cut_to_its_request(tmp_path: Path) -> None:
    claim = make_claim(
        [result(request="net/fast")], [entry(cni(), ["net"])], uid="u1", name="c1",
        requests=[{"name": "net", "firstAvailable": [
            {"name": "fast", "deviceClassName": "cni-class"}]}],
    )
    async with running_plugin(tmp_path, MemoryReader(claim)) as (_, _state, c):
        resp = await c.v1.NodePrepareResources(v1_request(ref(claim)), timeout=45)
        assert resp.claims["u1"].error == ""
        assert list(resp.claims["u1"].devices[0].request_names) == ["net"]


async def test_prepare_32_claims_in_one_call(tmp_path: Path) -> None:
    claims = [make_claim(uid=f"u{i}", name=f"c{i}", pods=(f"pod{i % 4}",)) for i in range(32)]
    calls: list[tuple[str, str, float, int]] = []
    async with running_plugin(tmp_path, MemoryReader(*claims),
                              on_call=lambda *a: calls.append(a)) as (_, state, c):
        resp = await c.v1.NodePrepareResources(v1_request(*map(ref, claims)), timeout=45)
        assert sorted(resp.claims) == sorted(f"u{i}" for i in range(32))
        assert all(r.error == "" and len(r.devices) == 1 for r in resp.claims.values())
        assert len(state.plans_for_pod("pod3")) == 8
    ((name, outcome, seconds, count),) = calls
    assert (name, outcome, count) == ("prepare", "ok", 32)
    assert 0 < seconds < 45


async def test_claim_problems_are_per_claim_errors(tmp_path: Path) -> None:
    good = make_claim(uid="good", name="good")
    unallocated = make_claim(uid="na", name="na", allocated=False)
    recreated = make_claim(uid="new-uid", name="recreated")
    broken = make_claim(uid="bad", name="bad", configs=[entry(cni("eth0/1"), ["net"])])
    calls: list[tuple[str, str, float, int]] = []
    reader = MemoryReader(good, unallocated, recreated, broken)
    async with running_plugin(tmp_path, reader, on_call=lambda *a: calls.append(a)) as (
        _, _s, c,
    ):
        resp = await c.v1.NodePrepareResources(v1_request(
            ref(good), ref(unallocated), ClaimRef("default", "recreated", "old-uid"),
            ref(broken), ClaimRef("default", "", "empty-name"),
        ), timeout=45)
    assert sorted(resp.claims) == ["bad", "empty-name", "good", "na", "old-uid"]
    assert resp.claims["good"].error == ""
    assert "status.allocation" in resp.claims["na"].error
    assert "not allocated" in resp.claims["na"].error
    assert not resp.claims["na"].devices
    assert "the API server has UID new-uid" in resp.claims["old-uid"].error
    assert "spec.devices.config[0].opaque.parameters.ifName" in resp.claims["bad"].error
    assert resp.claims["empty-name"].error.startswith("claims[4]: name must not be empty")
    assert calls == [("prepare", "error", calls[0][2], 5)]


async def test_unprepare_after_delete_twice_and_still_attached(tmp_path: Path) -> None:
    claim = make_claim(uid="u1", name="c1")
    other = make_claim(uid="u2", name="c2")
    reader = MemoryReader(claim, other)
    async with running_plugin(tmp_path, reader) as (_, state, c):
        await c.v1.NodePrepareResources(v1_request(ref(claim), ref(other)), timeout=45)
        reader.delete("default", "c1")  # gone from the API server: unprepare needs no read
        plan = state.get("u2")
        assert plan is not None
        await state.record_attachment(Attachment(
            claim_uid="u2", if_name="net1", sandbox_id="sandbox-123456789", pod_uid="pod-1",
            netns="/run/netns/x", network_name="macvlan-eth1"))
        resp = await c.v1.NodeUnprepareResources(v1_unprepare(ref(claim), ref(other)),
                                                 timeout=45)
        assert resp.claims["u1"].error == ""
        assert "still attached" in resp.claims["u2"].error
        again = await c.v1.NodeUnprepareResources(v1_unprepare(ref(claim)), timeout=45)
        assert list(again.claims) == ["u1"]
        assert again.claims["u1"].error == ""
        assert state.get("u1") is None


async def test_restart_between_prepare_and_unprepare(tmp_path: Path) -> None:
    claim = make_claim(uid="u1", name="c1")
    reader = MemoryReader(claim)
    async with running_plugin(tmp_path, reader, state_dir=tmp_path / "cp") as (_, _s, c):
        first = await c.v1.NodePrepareResources(v1_request(ref(claim)), timeout=45)
    reader.delete("default", "c1")
    async with running_plugin(tmp_path, reader, state_dir=tmp_path / "cp") as (_, state, c):
        assert state.get("u1") is not None  # the checkpoint survived the restart
        resp = await c.v1beta1.NodeUnprepareResources(
            dra_v1beta1_pb2.NodeUnprepareResourcesRequest(claims=[
                dra_v1beta1_pb2.Claim(namespace="default", name="c1", uid="u1")]), timeout=45)
        assert resp.claims["u1"].error == ""
        assert state.get("u1") is None
    assert first.claims["u1"].devices[0].device_name == "eth1"


class ExplodingClaims:
    async def fetch(self, claims: Sequence[ClaimRef]) -> Fetched:
        return Fetched(tuple(claims), time.monotonic())

    async def apply_prepare(self, fetched: Fetched) -> dict[str, PrepareOutcome]:
        raise ConfigError("checkpoint directory is not writable", "state_dir")

    async def unprepare(self, claims: Sequence[ClaimRef]) -> dict[str, str]:
        raise RuntimeError("bug")


class SlowClaims:
    def __init__(self) -> None:
        self.active = 0
        self.max_active = 0

    async def fetch(self, claims: Sequence[ClaimRef]) -> Fetched:
        return Fetched(tuple(claims), time.monotonic())

    async def apply_prepare(self, fetched: Fetched) -> dict[str, PrepareOutcome]:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(0.05)
        finally:
            self.active -= 1
        return {r.uid: PrepareOutcome() for r in fetched.refs}

    async def unprepare(self, claims: Sequence[ClaimRef]) -> dict[str, str]:
        await asyncio.sleep(10)
        return {}


async def test_state_errors_fail_each_claim_and_bugs_fail_the_call(tmp_path: Path) -> None:
    calls: list[tuple[str, str, float, int]] = []
    plugin = KubeletPlugin(driver=DRIVER, node_name="n", claims=ExplodingClaims(),
                           registry_dir=str(tmp_path / "r"), plugin_dir=str(tmp_path / "p"),
                           on_call=lambda *a: calls.append(a))
    async with plugin, clients(plugin) as c:
        r = ClaimRef("ns", "a", "ua")
        resp = await c.v1.NodePrepareResources(v1_request(r), timeout=5)
        assert resp.claims["ua"].error == (
            "claim ns/a: state_dir: checkpoint directory is not writable")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await c.v1.NodeUnprepareResources(v1_unprepare(r), timeout=5)
        assert info.value.code() == grpc.StatusCode.INTERNAL
        assert info.value.details() == "NodeUnprepareResources: internal error: bug"
    assert [(c[0], c[1], c[3]) for c in calls] == [("prepare", "error", 1),
                                                   ("unprepare", "error", 1)]


async def test_calls_are_serialized_and_time_limited(tmp_path: Path) -> None:
    slow = SlowClaims()
    plugin = KubeletPlugin(driver=DRIVER, node_name="n", claims=slow,
                           registry_dir=str(tmp_path / "r"), plugin_dir=str(tmp_path / "p"),
                           rolling_update_pod_uid="pod-a")
    async with plugin, clients(plugin) as c:
        refs = [ClaimRef("ns", f"c{i}", f"u{i}") for i in range(4)]
        answers = await asyncio.gather(
            *(c.v1.NodePrepareResources(v1_request(r), timeout=5) for r in refs))
        assert slow.max_active == 1
        assert [list(a.claims) for a in answers] == [[r.uid] for r in refs]
        resp = await c.v1.NodeUnprepareResources(v1_unprepare(refs[0]), timeout=1.5)
        assert "did not finish within" in resp.claims["u0"].error
    assert os.path.exists(tmp_path / "p" / "serialize.lock")


async def test_stale_sockets_replaced_and_own_sockets_removed(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "p" / "dra.sock"))
    stale.close()
    plugin = KubeletPlugin(driver=DRIVER, node_name="n", claims=SlowClaims(),
                           registry_dir=str(tmp_path / "r"), plugin_dir=str(tmp_path / "p"))
    await plugin.start()
    assert plugin.state == "running"
    async with clients(plugin) as c:
        info = await c.registration.GetInfo(pluginregistration_pb2.InfoRequest(), timeout=1)
        assert info.name == DRIVER
    await plugin.stop()
    assert not os.path.exists(plugin.paths.dra)
    assert not os.path.exists(plugin.paths.registration)
    await plugin.stop()  # idempotent
    with pytest.raises(Exception, match="create a new one"):
        await plugin.start()


async def test_a_socket_replaced_by_another_instance_is_left(tmp_path: Path) -> None:
    def make() -> KubeletPlugin:
        return KubeletPlugin(driver=DRIVER, node_name="n", claims=SlowClaims(),
                             registry_dir=str(tmp_path / "r"), plugin_dir=str(tmp_path / "p"))

    old, new = make(), make()
    await old.start()
    await new.start()  # removes old's sockets as stale and listens on the same paths
    await old.stop()
    assert os.path.exists(new.paths.registration)
    assert os.path.exists(new.paths.dra)
    await new.stop()
    assert not os.path.exists(new.paths.registration)


async def test_not_a_socket_is_not_removed(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "dra.sock").write_text("precious")
    plugin = KubeletPlugin(driver=DRIVER, node_name="n", claims=SlowClaims(),
                           registry_dir=str(tmp_path / "r"), plugin_dir=str(tmp_path / "p"))
    with pytest.raises(ConfigError, match="is not a socket") as info:
        await plugin.start()
    assert info.value.path == "plugin_dir"
    assert (tmp_path / "p" / "dra.sock").read_text() == "precious"
    assert plugin.state == "stopped"


async def test_rolling_update_instances_share_the_flock(tmp_path: Path) -> None:
    slow = SlowClaims()

    def make(uid: str) -> KubeletPlugin:
        return KubeletPlugin(driver=DRIVER, node_name="n", claims=slow,
                             registry_dir=str(tmp_path / "r"), plugin_dir=str(tmp_path / "p"),
                             rolling_update_pod_uid=uid)

    old, new = make("pod-old"), make("pod-new")
    assert old.paths.lock == new.paths.lock
    assert {old.paths.dra, new.paths.dra} == {str(tmp_path / "p" / "dra-pod-old.sock"),
                                              str(tmp_path / "p" / "dra-pod-new.sock")}
    async with old, new, clients(old) as a, clients(new) as b:
        calls = [stub.NodePrepareResources(v1_request(ClaimRef("ns", f"c{i}", f"u{i}")),
                                           timeout=5)
                 for i, stub in enumerate([a.v1, b.v1] * 3)]
        answers = await asyncio.gather(*calls)
        assert [list(x.claims) for x in answers] == [[f"u{i}"] for i in range(6)]
    assert slow.max_active == 1
    assert sorted(os.listdir(tmp_path / "r")) == []
