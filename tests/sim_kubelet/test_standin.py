"""The kubelet stand-in against the real KubeletPlugin over unix sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from claims.claimkit import DRIVER, fixture_claim, make_claim
from kubelet.kubeletkit import NODE, FakeHealth, MemoryReader, ref

from cnidra.claims import ClaimState
from cnidra.kubelet import KubeletPlugin
from cnidra.kubelet._proto import pluginregistration_pb2_grpc
from cnidra.kubelet._services import Registration
from cnidra.model.claims import ClaimRef
from cnidra.model.devices import DeviceHealth, Health
from cnidra.sim.kubelet import KubeletCallError, KubeletStandIn


@asynccontextmanager
async def node(
    tmp: Path, reader: MemoryReader, health: FakeHealth | None = None,
) -> AsyncIterator[tuple[KubeletStandIn, KubeletPlugin, ClaimState]]:
    state = await ClaimState.open(str(tmp / "state"), reader, driver=DRIVER)
    plugin = KubeletPlugin(driver=DRIVER, node_name=NODE, claims=state, health=health,
                           registry_dir=str(tmp / "reg"), plugin_dir=str(tmp / "plug"))
    async with KubeletStandIn(str(tmp / "reg"), node_name=NODE,
                              health_retry=0.2) as kubelet, plugin:
        yield kubelet, plugin, state


async def test_registers_prepares_and_unprepares_over_v1(tmp_path: Path) -> None:
    claim = fixture_claim("adminaccess.v1")
    other = make_claim(uid="u2", name="c2")
    async with node(tmp_path, MemoryReader(claim, other)) as (kubelet, plugin, state):
        registered = await kubelet.wait_registered(DRIVER, 5)
        assert (registered.service, registered.endpoint) == ("v1.DRAPlugin", plugin.paths.dra)
        assert await plugin.wait_registered(5)
        uid = claim["metadata"]["uid"]
        out = await kubelet.prepare([ref(claim), ref(other)])
        assert sorted(out) == sorted([uid, "u2"])
        assert out[uid].ok and out["u2"].ok
        assert out[uid].devices[0].share_id == "8da36f67-19a7-4e63-939a-033552ec117b"
        assert out["u2"].devices[0].share_id is None
        gone = await kubelet.prepare([ClaimRef("default", "missing", "u9")])
        assert gone["u9"].error == "claim default/missing: not found in the API server"
        assert await kubelet.unprepare([ref(claim), ref(other)]) == {uid: "", "u2": ""}
        assert state.get(uid) is None
    assert kubelet.plugins == {}


async def test_v1beta1_first_is_chosen(tmp_path: Path) -> None:
    claim = fixture_claim("adminaccess.v1")
    reader = MemoryReader(claim)
    state = await ClaimState.open(str(tmp_path / "state"), reader, driver=DRIVER)
    plugin = KubeletPlugin(driver=DRIVER, node_name=NODE, claims=state,
                           registry_dir=str(tmp_path / "reg"), plugin_dir=str(tmp_path / "plug"))
    plugin._registration._info.supported_versions[:] = ["v1beta1.DRAPlugin", "v1.DRAPlugin"]
    async with KubeletStandIn(str(tmp_path / "reg"), node_name=NODE) as kubelet, plugin:
        assert (await kubelet.wait_registered(DRIVER, 5)).service == "v1beta1.DRAPlugin"
        out = await kubelet.prepare([ref(claim)])
        (device,) = out[claim["metadata"]["uid"]].devices
        assert (device.device_name, device.share_id) == ("eth1", None)


async def test_unknown_versions_are_rejected_with_the_kubelets_reason(tmp_path: Path) -> None:
    reg_dir = tmp_path / "reg"
    reg_dir.mkdir()
    servicer = Registration(driver=DRIVER, endpoint="/nowhere/dra.sock",
                            versions=["v1alpha3.Node", "v2.DRAPlugin"])
    server = grpc.aio.server()
    pluginregistration_pb2_grpc.add_RegistrationServicer_to_server(servicer, server)
    server.add_insecure_port(f"unix://{reg_dir / 'x-reg.sock'}")
    await server.start()
    try:
        async with KubeletStandIn(str(reg_dir), node_name=NODE) as kubelet:
            ((path, reason),) = await kubelet.wait_rejected(1, 5)
            await asyncio.wait_for(servicer.notified.wait(), 5)
            assert servicer.error == reason
            assert not servicer.registered
            assert reason == (
                "RegisterPlugin error -- plugin validation failed with err: invalid supported "
                f"gRPC versions of DRA driver plugin {DRIVER} at endpoint /nowhere/dra.sock: "
                'none of services supported by the plugin (["v1alpha3.Node" "v2.DRAPlugin"]) '
                'are supported by the kubelet (["v1.DRAPlugin" "v1beta1.DRAPlugin"])'
            )
            assert path == str(reg_dir / "x-reg.sock")
            # It tries again after 0.5 s, like the kubelet.
            assert len(await kubelet.wait_rejected(2, 3)) == 2
            assert kubelet.plugins == {}
    finally:
        await server.stop(0)


async def test_dotfiles_and_plain_files_are_ignored(tmp_path: Path) -> None:
    reg_dir = tmp_path / "reg"
    reg_dir.mkdir()
    (reg_dir / "not-a-socket.sock").write_text("")
    hidden = socket.socket(socket.AF_UNIX)
    hidden.bind(str(reg_dir / ".hidden-reg.sock"))
    hidden.listen()
    try:
        async with KubeletStandIn(str(reg_dir), node_name=NODE) as kubelet:
            await asyncio.sleep(0.3)
            assert kubelet.plugins == {}
            assert kubelet.rejections == []
            assert kubelet._registering == {}
            with pytest.raises(KubeletCallError, match="0 DRA drivers are registered"):
                await kubelet.prepare([])
            with pytest.raises(KubeletCallError, match=f"DRA driver {DRIVER} is not registered"):
                await kubelet.unprepare([], driver=DRIVER)
    finally:
        hidden.close()


async def test_health_stream_is_consumed(tmp_path: Path) -> None:
    source = FakeHealth([DeviceHealth("eth1", Health.HEALTHY, "up")])
    async with node(tmp_path, MemoryReader(), health=source) as (kubelet, _, _s):
        await kubelet.wait_registered(DRIVER, 5)
        assert await kubelet.wait_health(lambda h: h) == {"eth1": (Health.HEALTHY, "up")}
        await source.set([DeviceHealth("eth1", Health.UNHEALTHY, "no carrier"),
                          DeviceHealth("eth2", Health.HEALTHY, "up")])
        got = await kubelet.wait_health(lambda h: len(h) == 2)
        assert got == {"eth1": (Health.UNHEALTHY, "no carrier"), "eth2": (Health.HEALTHY, "up")}


async def test_plugin_without_health_and_deregistration(tmp_path: Path) -> None:
    async with node(tmp_path, MemoryReader()) as (kubelet, plugin, _):
        await kubelet.wait_registered(DRIVER, 5)
        await asyncio.sleep(0.5)  # a few UNIMPLEMENTED health attempts, retried quietly
        assert kubelet.health() == {}
        await plugin.stop()
        await kubelet.wait_gone(DRIVER, 5)
        with pytest.raises(KubeletCallError) as info:
            await kubelet.prepare([], driver=DRIVER)
        assert info.value.code == "NOT_REGISTERED"


async def test_a_replaced_socket_is_registered_again(tmp_path: Path) -> None:
    claim = make_claim(uid="u1", name="c1")
    reader = MemoryReader(claim)

    async def make(name: str) -> KubeletPlugin:
        state = await ClaimState.open(str(tmp_path / name), reader, driver=DRIVER)
        return KubeletPlugin(driver=DRIVER, node_name=NODE, claims=state,
                             registry_dir=str(tmp_path / "reg"), plugin_dir=str(tmp_path / "plug"))

    old, new = await make("old"), await make("new")
    async with KubeletStandIn(str(tmp_path / "reg"), node_name=NODE) as kubelet, old:
        first = await kubelet.wait_registered(DRIVER, 5)
        assert await old.wait_registered(5)
        async with new:  # the new process replaces both socket files
            assert await new.wait_registered(5)
            second = await kubelet.wait_registered(DRIVER, 5)
            assert second is not first
            await old.stop()  # leaves the new instance's sockets alone
            await asyncio.sleep(0.2)
            assert kubelet.plugins[DRIVER] is second
            out = await kubelet.prepare([ref(claim)])
            assert out["u1"].ok
        await kubelet.wait_gone(DRIVER, 5)
