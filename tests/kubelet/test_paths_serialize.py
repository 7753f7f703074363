"""Socket naming (defaults, rolling update, length fallback) and cross-process serialization."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from claims.claimkit import DRIVER

from cnidra.errors import ConfigError
from cnidra.kubelet import MAX_SOCKET_PATH, LockTimeoutError, socket_paths
from cnidra.kubelet._serialize import CallSerializer

UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def test_default_and_rolling_update_names() -> None:
    plain = socket_paths(DRIVER)
    assert plain.registration == f"/var/lib/kubelet/plugins_registry/{DRIVER}-reg.sock"
    assert plain.dra == f"/var/lib/kubelet/plugins/{DRIVER}/dra.sock"
    assert plain.lock == f"/var/lib/kubelet/plugins/{DRIVER}/serialize.lock"
    rolling = socket_paths(DRIVER, rolling_update_pod_uid=UID)
    assert rolling.registration == f"/var/lib/kubelet/plugins_registry/{DRIVER}-{UID}-reg.sock"
    assert rolling.dra == f"/var/lib/kubelet/plugins/{DRIVER}/dra-{UID}.sock"
    relative = socket_paths(DRIVER, registry_dir="r", plugin_dir="p")
    assert relative.dra == str(Path("p").absolute() / "dra.sock")


def test_long_paths_fall_back_to_hashed_names() -> None:
    deep = "/" + "d" * 40
    rolling = socket_paths(DRIVER, registry_dir=deep, plugin_dir=deep + "/p" * 15,
                           rolling_update_pod_uid=UID)
    for path in (rolling.registration, rolling.dra):
        assert len(path) <= MAX_SOCKET_PATH
        assert UID not in path
    assert rolling.registration.startswith(f"{deep}/{DRIVER}-")
    other = socket_paths(DRIVER, registry_dir=deep, rolling_update_pod_uid=UID.replace("0", "1"))
    assert other.registration != rolling.registration
    deeper = "/" + "d" * 70
    assert os.path.basename(socket_paths(
        DRIVER, registry_dir=deeper, rolling_update_pod_uid=UID).registration).startswith("dra-")
    with pytest.raises(ConfigError, match="too long") as info:
        socket_paths(DRIVER, registry_dir="/" + "x" * 100)
    assert info.value.path == "registry_dir"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"driver": ""}, "driver"), ({"driver": "a/b"}, "driver"),
    ({"driver": DRIVER, "rolling_update_pod_uid": "../x"}, "rolling_update_pod_uid"),
])
def test_bad_names_are_config_errors(kwargs: dict[str, str], field: str) -> None:
    driver = kwargs.pop("driver")
    with pytest.raises(ConfigError) as info:
        socket_paths(driver, **kwargs)
    assert info.value.path == field


async def test_flock_serializes_two_instances(tmp_path: Path) -> None:
    lock = str(tmp_path / "serialize.lock")
    a = CallSerializer(lock_path=lock)
    b = CallSerializer(lock_path=lock)
    a.open()
    b.open()
    order: list[str] = []
    try:
        async with a.hold(5):
            waiter = asyncio.ensure_future(_enter(b, order, 5))
            await asyncio.sleep(0.1)
            assert order == []  # b waits for a's flock in its worker thread
            order.append("a-done")
        await waiter
        assert order == ["a-done", "b"]
        async with a.hold(5):
            with pytest.raises(LockTimeoutError, match="held by another instance"):
                await _enter(b, order, 0.2)
            cancelled = asyncio.ensure_future(_enter(b, order, 5))
            await asyncio.sleep(0.05)
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
        await _enter(b, order, 1)  # nothing left locked by the cancelled attempt
        assert order == ["a-done", "b", "b"]
    finally:
        a.close()
        b.close()


async def _enter(s: CallSerializer, order: list[str], timeout: float) -> None:
    async with s.hold(timeout):
        order.append("b")
