"""Root task guarding, health/readiness endpoints and the metrics registry."""

from __future__ import annotations

import asyncio

import aiohttp

from cnidra.runtime._health import HealthServer
from cnidra.runtime._metrics import Metrics
from cnidra.runtime._tasks import RootTasks


async def test_root_task_that_raises_sets_failed() -> None:
    tasks = RootTasks()

    async def boom() -> None:
        raise RuntimeError("netlink socket closed")

    tasks.start("inventory", boom())
    await asyncio.wait_for(tasks.failed.wait(), 1)
    assert tasks.failure is not None
    assert tasks.failure[0] == "inventory"
    assert isinstance(tasks.failure[1], RuntimeError)
    await tasks.stop_all()


async def test_root_task_that_returns_is_a_failure_too() -> None:
    tasks = RootTasks()

    async def quits() -> None:
        return None

    tasks.start("nri", quits())
    await asyncio.wait_for(tasks.failed.wait(), 1)
    assert tasks.failure == ("nri", None)
    await tasks.stop_all()


async def test_stop_all_follows_order_and_is_not_a_failure() -> None:
    tasks = RootTasks()
    stopped: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.append(name)

    for name in ("a", "b", "c"):
        tasks.start(name, forever(name))
    await asyncio.sleep(0)
    await tasks.stop_all(order=["c", "a"])
    assert stopped == ["c", "a", "b"]
    assert not tasks.failed.is_set()


async def test_health_readiness_and_metrics() -> None:
    metrics = Metrics()
    server = HealthServer("127.0.0.1", 0, metrics.registry)
    ready = {"kubelet": False}
    server.add_check("kubelet-registered", lambda: ready["kubelet"])
    server.add_check("nri-connected", lambda: True)
    metrics.observe_hook("RunPodSandbox", "ok", 0.012)
    metrics.observe_cni_exec("macvlan", "ADD", "ok", 0.02)
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200
            async with http.get(f"{base}/readyz") as r:
                assert r.status == 503
                assert "kubelet-registered" in await r.text()
            ready["kubelet"] = True
            async with http.get(f"{base}/readyz") as r:
                assert r.status == 200
            async with http.get(f"{base}/metrics") as r:
                text = await r.text()
        assert 'cnidra_nri_hooks_total{event="RunPodSandbox",outcome="ok"} 1.0' in text
        assert 'cnidra_cni_exec_duration_seconds_count{outcome="ok",plugin="macvlan",verb="ADD"}' \
            in text
    finally:
        await server.stop()


def test_broken_check_counts_as_failing() -> None:
    server = HealthServer("127.0.0.1", 0, Metrics().registry)

    def broken() -> bool:
        raise OSError("gone")

    server.add_check("slices-published", broken)
    assert server.failing_checks() == ["slices-published"]
