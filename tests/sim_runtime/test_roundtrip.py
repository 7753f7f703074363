"""The real NRIPlugin against the containerd stand-in over a real unix socket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from nri.nrikit import Recorder

from cnidra.attach import Sandbox
from cnidra.errors import CNIError, NRIError
from cnidra.nri import PLUGIN_SERVICE, RUNTIME_SERVICE, NRIPlugin, api
from cnidra.sim.runtime import NRIRuntime, PodHookError, SimPod
from cnidra.ttrpc import Call, Client, Code, Mux, Server, TTRPCError


def pod(n: int, netns: str | None = "/run/netns/cnpod-x") -> SimPod:
    return SimPod(id=f"{n:064x}", uid=f"0000000{n}-0000-4000-8000-000000000000",
                  name=f"pod-{n}", namespace="demo", netns=netns, ips=(f"10.88.0.{n}",),
                  pid=1000 + n)


@dataclass
class Rig:
    runtime: NRIRuntime
    plugin: NRIPlugin
    rec: Recorder
    task: asyncio.Task[None]
    hooks: list[tuple[str, str, float]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def rig(sock_dir: Path, *, pods: tuple[SimPod, ...] = (), **opts: Any
              ) -> AsyncIterator[Rig]:
    runtime = NRIRuntime(str(sock_dir / "nri.sock"), **opts)
    runtime.pods.update({p.id: p for p in pods})
    rec = Recorder()
    hooks: list[tuple[str, str, float]] = []
    plugin = NRIPlugin(rec, socket_path=runtime.socket_path, reconnect_min=0.05,
                       reconnect_max=0.2, on_hook=lambda *a: hooks.append(a))
    await runtime.start()
    task = asyncio.create_task(plugin.run())
    try:
        await runtime.wait_for_plugin()
        yield Rig(runtime, plugin, rec, task, hooks)
    finally:
        await plugin.stop()
        async with asyncio.timeout(5):
            await task
        await runtime.close()


async def test_register_configure_and_synchronize_in_batches(sock_dir: Path) -> None:
    live = (pod(1), pod(2), pod(3))
    async with rig(sock_dir, pods=live, sync_batch=2) as r:
        assert r.plugin.connected
        assert r.runtime.registrations == ["50-cnidra"]
        assert [m for m, _ in r.runtime.sent] == ["Configure", "Synchronize", "Synchronize"]
        assert await r.rec.wait("sync") == [frozenset(p.id for p in live)]
        assert r.hooks[0][:2] == ("Synchronize", "ok")
    assert not r.plugin.connected


async def test_synchronize_hands_the_handler_full_sandboxes(sock_dir: Path) -> None:
    live = (pod(1), pod(2, netns=None), pod(3))  # pod 2: host network
    async with rig(sock_dir, pods=live, sync_batch=2) as r:
        await r.rec.wait("sync")
        assert r.rec.synced == [[
            Sandbox(id=p.id, pod_uid=p.uid, pod_name=p.name, pod_namespace="demo",
                    netns=p.netns) for p in live]]


async def test_configure_may_come_before_the_register_reply(sock_dir: Path) -> None:
    async with rig(sock_dir, configure_before_register_reply=True) as r:
        assert r.plugin.connected
        assert await r.rec.wait("sync") == [frozenset()]


async def test_pod_events_arrive_with_the_right_sandbox(sock_dir: Path) -> None:
    async with rig(sock_dir) as r:
        p = pod(4, "/run/netns/cnpod-4")
        await r.runtime.run_pod_sandbox(p)
        await r.runtime.stop_pod_sandbox(p)
        await r.runtime.remove_pod_sandbox(p)
        host = pod(5, None)
        await r.runtime.run_pod_sandbox(host)
        assert [m for m, _ in r.runtime.sent[2:]] == [
            "RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "RunPodSandbox"]
        run, host_run = r.rec.of("run")
        assert (run.id, run.pod_uid, run.pod_name, run.pod_namespace, run.netns) == (
            p.id, p.uid, "pod-4", "demo", "/run/netns/cnpod-4")
        assert host_run.netns is None
        assert r.rec.of("stop")[0].netns == "/run/netns/cnpod-4"
        assert r.rec.of("remove")[0].netns is None  # the network entry is gone by then
        assert [(e, o) for e, o, _ in r.hooks[1:]] == [
            ("RunPodSandbox", "ok"), ("StopPodSandbox", "ok"), ("RemovePodSandbox", "ok"),
            ("RunPodSandbox", "ok")]


async def test_an_older_runtime_sends_only_statechange(sock_dir: Path) -> None:
    async with rig(sock_dir, mode="state-change") as r:
        p = pod(6)
        await r.runtime.run_pod_sandbox(p)
        await r.runtime.stop_pod_sandbox(p)
        await r.runtime.remove_pod_sandbox(p)
        assert [m for m, _ in r.runtime.sent[2:]] == ["StateChange"] * 3
        assert [k for k, _ in r.rec.calls] == ["sync", "run", "stop", "remove"]
        assert r.rec.of("run")[0].netns == p.netns


async def test_runtime_restart_makes_the_plugin_register_again(sock_dir: Path) -> None:
    async with rig(sock_dir, pods=(pod(7),)) as r:
        await r.runtime.restart()
        await r.runtime.wait_for_plugin(registrations=2)
        assert r.plugin.registrations == 2
        assert r.rec.of("sync") == [frozenset({pod(7).id})] * 2
        await r.runtime.run_pod_sandbox(pod(8))
        assert r.rec.of("run")[0].id == pod(8).id


async def test_a_handler_error_fails_the_pod_with_the_cni_message(sock_dir: Path) -> None:
    async with rig(sock_dir) as r:
        r.rec.fail_run = CNIError(7, "Link not found", plugin="macvlan", verb="ADD")
        with pytest.raises(PodHookError) as exc:
            await r.runtime.run_pod_sandbox(pod(9))
        assert exc.value.code == Code.UNKNOWN
        assert "macvlan ADD: Link not found [CNI code 7]" in exc.value.message
        assert "pod demo/pod-9" in exc.value.message
        assert pod(9).id not in r.runtime.pods
        assert r.hooks[-1][:2] == ("RunPodSandbox", "error")
        assert r.plugin.connected and r.runtime.plugin_ready  # an error is not a disconnect


async def test_a_slow_hook_is_answered_before_the_runtimes_deadline(sock_dir: Path) -> None:
    async with rig(sock_dir, request_timeout=0.6) as r:
        r.rec.delay = 5.0
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(PodHookError, match="did not finish within"):
            await r.runtime.run_pod_sandbox(pod(10))
        assert loop.time() - start < 0.6
        assert r.hooks[-1][:2] == ("RunPodSandbox", "timeout")
        assert r.runtime.plugin_ready and r.runtime.disconnects == []


async def test_malformed_bytes_close_the_connection_and_the_plugin_reconnects(
        sock_dir: Path) -> None:
    async with rig(sock_dir) as r:
        await r.runtime.send_raw(bytes.fromhex("01000000" "00000063" "01" "00"))  # > 4 MiB
        await r.runtime.wait_for_plugin(registrations=2)
        assert r.runtime.disconnects == ["connection closed"]
        assert r.plugin.registrations == 2
        await r.runtime.run_pod_sandbox(pod(11))
        assert len(r.rec.of("run")) == 1


async def test_shutdown_ends_the_session_and_unknown_methods_are_unimplemented(
        sock_dir: Path) -> None:
    async with rig(sock_dir) as r:
        with pytest.raises(TTRPCError) as exc:
            await r.runtime.call_plugin("CreateContainer", api.Empty(), api.Empty)
        assert exc.value.code == Code.UNIMPLEMENTED
        assert await r.runtime.call_plugin("Shutdown", api.Empty(), api.Empty) == api.Empty()
        await r.runtime.wait_for_plugin(registrations=2)


async def test_the_runtime_refusing_registration_ends_run(sock_dir: Path) -> None:
    """A name the runtime refuses (bypassing our own check) closes and reports."""
    runtime = NRIRuntime(str(sock_dir / "nri.sock"))
    await runtime.start()
    plugin = NRIPlugin(Recorder(), socket_path=runtime.socket_path)
    plugin.name = "bad name"
    try:
        with pytest.raises(NRIError, match="refused to register plugin 50-bad name"):
            async with asyncio.timeout(5):
                await plugin.run()
        assert not plugin.connected
    finally:
        await runtime.close()


async def test_the_plugin_waits_for_a_runtime_that_is_not_there_yet(sock_dir: Path) -> None:
    rec = Recorder()
    runtime = NRIRuntime(str(sock_dir / "nri.sock"))
    plugin = NRIPlugin(rec, socket_path=runtime.socket_path, reconnect_min=0.05,
                       reconnect_max=0.1)
    task = asyncio.create_task(plugin.run())
    try:
        await asyncio.sleep(0.3)  # a few refused connects, with backoff
        assert (plugin.connected, task.done()) == (False, False)
        with pytest.raises(RuntimeError, match="already running"):
            await plugin.run()
        await runtime.start()
        await runtime.wait_for_plugin()
        assert plugin.connected and plugin.registrations == 1
    finally:
        await plugin.stop()
        async with asyncio.timeout(5):
            await task
        await runtime.close()


async def test_a_slow_synchronize_clean_up_goes_on_in_the_background(sock_dir: Path) -> None:
    rec = SlowSync()
    async with NRIRuntime(str(sock_dir / "nri.sock"), request_timeout=0.5) as runtime:
        plugin = NRIPlugin(rec, socket_path=runtime.socket_path)
        task = asyncio.create_task(plugin.run())
        try:
            await runtime.wait_for_plugin()  # answered before the clean-up finished
            assert not rec.done.is_set()
            async with asyncio.timeout(5):
                await rec.done.wait()
            assert runtime.plugin_ready and runtime.disconnects == []
        finally:
            await plugin.stop()
            async with asyncio.timeout(5):
                await task


async def test_stop_drains_a_synchronize_still_running_in_the_background(
    sock_dir: Path
) -> None:
    rec = SlowSync()
    async with NRIRuntime(str(sock_dir / "nri.sock"), request_timeout=0.5) as runtime:
        plugin = NRIPlugin(rec, socket_path=runtime.socket_path)
        task = asyncio.create_task(plugin.run())
        try:
            await runtime.wait_for_plugin()
            assert not rec.done.is_set()  # the catch-up is still running
        finally:
            await plugin.stop()  # drains it (bounded) rather than cut it off
            async with asyncio.timeout(5):
                await task
        assert rec.done.is_set()


@dataclass
class SlowSync(Recorder):
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def synchronize(self, live_sandboxes: Collection[Sandbox]) -> int:
        await asyncio.sleep(0.6)
        self.done.set()
        return 0


async def test_no_plugin_means_the_pod_goes_on(sock_dir: Path) -> None:
    async with NRIRuntime(str(sock_dir / "nri.sock")) as runtime:
        await runtime.run_pod_sandbox(pod(12))
        assert runtime.sent == [] and pod(12).id in runtime.pods


# --- the stand-in against hand-made old or slow plugins ------------------------------------

@contextlib.asynccontextmanager
async def old_plugin(path: str, state_change: Callable[[api.StateChangeEvent], Any]
                     ) -> AsyncIterator[Mux]:
    """A pre-v0.12 plugin: Configure, Synchronize and StateChange only."""
    reader, writer = await asyncio.open_unix_connection(path)
    mux = Mux(reader, writer)
    server = Server()

    async def configure(req: api.ConfigureRequest, call: Call) -> api.ConfigureResponse:
        return api.ConfigureResponse(events=0x7)

    async def sync(req: api.SynchronizeRequest, call: Call) -> api.SynchronizeResponse:
        return api.SynchronizeResponse(more=req.more)

    async def change(req: api.StateChangeEvent, call: Call) -> api.Empty:
        await state_change(req)
        return api.Empty()

    server.register(PLUGIN_SERVICE, "Configure", api.ConfigureRequest, configure)
    server.register(PLUGIN_SERVICE, "Synchronize", api.SynchronizeRequest, sync)
    server.register(PLUGIN_SERVICE, "StateChange", api.StateChangeEvent, change)
    serving = asyncio.create_task(server.serve(mux.open(1)))
    client = Client(mux.open(2))
    mux.start()
    await client.call(RUNTIME_SERVICE, "RegisterPlugin",
                      api.RegisterPluginRequest(plugin_name="old", plugin_idx="10"), api.Empty,
                      timeout=5)
    try:
        yield mux
    finally:
        await mux.close()
        await client.close()
        await serving


async def test_the_stand_in_falls_back_to_statechange_after_unimplemented(
        sock_dir: Path) -> None:
    events: list[int] = []

    async def note(req: api.StateChangeEvent) -> None:
        events.append(req.event)

    async with NRIRuntime(str(sock_dir / "nri.sock")) as runtime:
        async with old_plugin(runtime.socket_path, note):
            await runtime.wait_for_plugin()
            p = pod(13)
            await runtime.run_pod_sandbox(p)
            await runtime.stop_pod_sandbox(p)
            await runtime.remove_pod_sandbox(p)
        assert [m for m, _ in runtime.sent[2:]] == [
            "RunPodSandbox", "StateChange", "StateChange", "StateChange"]
        assert events == [api.RUN_POD_SANDBOX, api.STOP_POD_SANDBOX, api.REMOVE_POD_SANDBOX]


async def test_the_stand_in_disconnects_a_plugin_that_misses_the_deadline(
        sock_dir: Path) -> None:
    async def stall(req: api.StateChangeEvent) -> None:
        await asyncio.sleep(5)

    runtime = NRIRuntime(str(sock_dir / "nri.sock"), mode="state-change", request_timeout=0.2)
    async with runtime, old_plugin(runtime.socket_path, stall) as mux:
        await runtime.wait_for_plugin()
        await runtime.run_pod_sandbox(pod(14))  # the pod goes on
        async with asyncio.timeout(5):
            await mux.wait_closed()
        assert runtime.disconnects[0].startswith("RunPodSandbox: ")
        assert not runtime.plugin_ready
        assert pod(14).id in runtime.pods
