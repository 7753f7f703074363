"""The Driver's wiring over fake parts: start order, readiness, ordered shutdown, failures."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import aiohttp
import pytest
from prometheus_client import generate_latest
from runtime.fakes import FakeBuilder, Journal

from cnidra.attach import Sandbox
from cnidra.cli import main
from cnidra.errors import ConfigError
from cnidra.model.claims import ClaimRef
from cnidra.model.devices import Device, Snapshot
from cnidra.runtime import (
    EXIT_FAILED,
    EXIT_OK,
    SHUTDOWN_ORDER,
    Driver,
    ProductionBuilder,
    Settings,
)

SETTINGS = Settings(node_name="node1", metrics_address="127.0.0.1:0", shutdown_timeout=2.0)

BUILD_ORDER = ["build.kube", "build.cni", "build.claims", "build.status", "build.attacher",
               "build.inventory", "build.publisher", "build.kubelet", "kubelet.start",
               "build.nri"]


def driver(builder: FakeBuilder, settings: Settings = SETTINGS) -> Driver:
    return Driver(settings, builder=builder, configure_logging=False)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def built(journal: Journal) -> list[str]:
    return [e for e in journal.events if e.startswith("build.") or e == "kubelet.start"]


async def test_start_builds_in_order_and_runs_named_root_tasks() -> None:
    journal = Journal()
    d = driver(FakeBuilder(journal))
    await d.start()
    await settle()
    assert built(journal) == BUILD_ORDER
    assert sorted(d.tasks.names) == ["inventory", "nri", "publisher", "status-writer"]
    assert {"status.run", "inventory.run", "publisher.run", "nri.run"} <= set(journal.events)
    await d.shutdown()


async def test_readiness_needs_kubelet_nri_and_slices() -> None:
    journal = Journal()
    b = FakeBuilder(journal)
    d = driver(b)
    assert d.readiness() == dict.fromkeys(
        ("kubelet-registered", "nri-connected", "slices-published"), False)
    await d.start()
    assert d.health is not None
    url = f"http://127.0.0.1:{d.health.port}/readyz"
    assert b.kubelet_part and b.nri_part and b.publisher_part
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            assert resp.status == 503
            text = await resp.text()
            assert "kubelet-registered" in text and "slices-published" in text
        b.kubelet_part.registered = True
        b.publisher_part.published = True
        async with http.get(url) as resp:
            assert resp.status == 503
            assert (await resp.text()).strip() == "not ready: nri-connected"
        b.nri_part.connected = True
        async with http.get(url) as resp:
            assert resp.status == 200
        assert d.ready
        b.kubelet_part.registered = False  # the kubelet restarted: not ready again
        async with http.get(url) as resp:
            assert resp.status == 503
    await d.shutdown()


async def test_shutdown_order_and_hook_drain() -> None:
    journal = Journal()
    b = FakeBuilder(journal)
    d = driver(b)
    await d.start()
    await settle()
    assert d.handler is not None and b.handler_part is not None
    b.handler_part.release.clear()
    sandbox = Sandbox("sb1", "uid-p", "web", "default", "/run/netns/x")
    hook = asyncio.create_task(d.handler.run_pod_sandbox(sandbox))
    await settle()
    assert d.handler.in_flight == 1
    start = len(journal.events)
    stopping = asyncio.create_task(d.shutdown())
    await asyncio.sleep(0.05)
    # the kubelet plugin is gone, but NRI waits for the running hook
    assert "kubelet.stop" in journal.events[start:]
    assert "nri.stop" not in journal.events
    b.handler_part.release.set()
    await stopping
    await hook
    after = journal.events[start:]
    wanted = ["kubelet.stop", "hook.run.end", "nri.stop", "nri.cancelled", "status.drain",
              "status.cancelled", "publisher.cancelled", "inventory.cancelled", "kube.close"]
    assert [e for e in after if e in wanted] == wanted
    assert "publisher.remove_all" not in after  # slices stay unless cleanup on exit
    assert d.stopped_steps == list(SHUTDOWN_ORDER)
    assert d.tasks.names == []
    assert d.health is not None and d.health._runner is None


async def test_cleanup_on_exit_removes_slices_after_the_publisher_stopped() -> None:
    journal = Journal()
    d = driver(FakeBuilder(journal), Settings(**{**SETTINGS.__dict__, "cleanup_on_exit": True}))
    await d.start()
    await settle()
    await d.shutdown()
    events = journal.events
    assert events.index("publisher.cancelled") < events.index("publisher.remove_all")
    assert events.index("publisher.remove_all") < events.index("kube.close")


async def test_signal_stops_cleanly_with_exit_0() -> None:
    journal = Journal()
    d = driver(FakeBuilder(journal))
    run = asyncio.create_task(d.run())
    while d.nri is None:
        await asyncio.sleep(0.01)
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(run, 5) == EXIT_OK
    assert d.stopped_steps == list(SHUTDOWN_ORDER)


async def test_stop_during_start_abandons_it_with_exit_0() -> None:
    journal = Journal()
    d = driver(FakeBuilder(journal, kube_hangs=True))
    run = asyncio.create_task(d.run(handle_signals=False))
    while "build.kube" not in journal.events:
        await asyncio.sleep(0.01)
    d.request_stop("SIGTERM")
    assert await asyncio.wait_for(run, 5) == EXIT_OK
    assert built(journal) == ["build.kube"]
    assert d.stopped_steps == ["health"]
    assert d.health is not None and d.health._runner is None


async def test_root_task_that_ends_stops_the_driver_with_exit_1(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal = Journal()
    d = driver(FakeBuilder(journal, nri_quits=True))
    code = await asyncio.wait_for(d.run(handle_signals=False), 5)
    assert code == EXIT_FAILED
    assert "root task nri failed: NRI socket vanished" in caplog.text
    assert "kube.close" in journal.events


@pytest.mark.parametrize("step", ["kube", "claims", "publisher", "kubelet"])
async def test_failed_start_stops_what_was_started(step: str) -> None:
    journal = Journal()
    d = driver(FakeBuilder(journal, fail_at=step))
    assert await d.run(handle_signals=False) == EXIT_FAILED
    assert built(journal)[-1] == f"build.{step}"
    assert d.tasks.names == []
    assert ("kube.close" in journal.events) == (step != "kube")
    assert "kubelet.stop" not in journal.events or step == "kubelet"
    assert d.health is not None and d.health._runner is None


async def test_config_error_from_a_part_propagates_for_exit_2() -> None:
    journal = Journal()
    d = driver(FakeBuilder(journal, fail_at="publisher",
                           error=ConfigError("bad", "deviceFilter")))
    with pytest.raises(ConfigError):
        await d.run(handle_signals=False)
    assert "kube.close" in journal.events


async def test_bad_filter_stops_before_anything_connects() -> None:
    journal = Journal()
    d = driver(FakeBuilder(journal), Settings(**{**SETTINGS.__dict__,
                                                 "device_filter": "device.attributes["}))
    with pytest.raises(ConfigError) as exc:
        await d.run(handle_signals=False)
    assert exc.value.path == "device-filter"
    assert journal.events == []
    assert d.health is None


def test_cli_bad_filter_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["driver", "--node-name", "n1", "--metrics-address", "127.0.0.1:0",
                 "--device-filter", "device.attributes["])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("cnidra driver: device-filter: the device filter is not valid CEL")


def test_cli_missing_node_name_exits_2(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    monkeypatch.delenv("CNIDRA_NODE_NAME", raising=False)
    assert main(["driver"]) == 2
    assert capsys.readouterr().err == (
        "cnidra driver: node-name: the node name is required (set --node-name or NODE_NAME)\n")


def test_cli_help_lists_every_setting() -> None:
    out = subprocess.run([sys.executable, "-m", "cnidra", "driver", "--help"], check=True,
                         capture_output=True, text=True).stdout
    for flag in ("--node-name", "--kubeconfig", "--nri-socket", "--device-filter",
                 "--cleanup-on-exit", "--shutdown-timeout", "--metrics-address"):
        assert flag in out
    assert "CNIDRA_NODE_NAME or NODE_NAME" in " ".join(out.split())


async def test_metrics_from_wrappers_and_cni_observer() -> None:
    journal = Journal()
    b = FakeBuilder(journal)
    d = driver(b)
    await d.start()
    assert b.kubelet_part is not None and b.on_exec is not None and d.handler is not None
    claims = b.kubelet_part.claims
    await claims.apply_prepare(await claims.fetch([ClaimRef("default", "c1", "u1"),
                                                   ClaimRef("default", "c2", "u2")]))
    await claims.unprepare([ClaimRef("default", "c1", "u1")])
    assert b.nri_part is not None
    b.nri_part.on_hook("RunPodSandbox", "ok", 0.01)  # the NRI plugin reports each hook
    b.on_exec("macvlan", "ADD", "ok", 0.01)
    text = generate_latest(d.metrics.registry).decode()
    assert 'cnidra_kubelet_claims_total{call="prepare",outcome="ok"} 2.0' in text
    assert 'cnidra_kubelet_claims_total{call="unprepare",outcome="ok"} 1.0' in text
    assert 'cnidra_nri_hooks_total{event="RunPodSandbox",outcome="ok"} 1.0' in text
    assert ('cnidra_cni_exec_duration_seconds_count{outcome="ok",plugin="macvlan",verb="ADD"}'
            ' 1.0') in text
    assert "cnidra_published_devices 0.0" in text
    assert "cnidra_attachments 0.0" in text
    assert 'cnidra_build_info{version="' in text
    await d.shutdown()


async def test_metrics_address_in_use_is_a_config_error() -> None:
    journal = Journal()
    first = driver(FakeBuilder(journal))
    await first.start()
    assert first.health is not None
    taken = Settings(**{**SETTINGS.__dict__, "metrics_address": f"127.0.0.1:{first.health.port}"})
    second = driver(FakeBuilder(Journal()), taken)
    try:
        with pytest.raises(ConfigError) as exc:
            await second.run(handle_signals=False)
        assert exc.value.path == "metrics-address"
        assert "cannot listen on 127.0.0.1:" in exc.value.message
    finally:
        await first.shutdown()


def test_inventory_resolves_hashed_device_names_to_interfaces() -> None:
    class Inv:
        current = Snapshot(devices=(Device("enp0s3.100", 3), Device("eth1", 4)))

    builder = ProductionBuilder()
    assert builder._if_name("eth1") == "eth1"  # before the inventory exists: identity
    builder._inventory = Inv()  # type: ignore[assignment]
    hashed = Device("enp0s3.100", 3).name
    assert hashed != "enp0s3.100"
    assert builder._if_name(hashed) == "enp0s3.100"
    assert builder._if_name("eth1") == "eth1"
