"""Plugin lookup, environment and output handling, with real plugin binaries."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from cnidra.cni import CNIRuntime, _exec
from cnidra.errors import CNIError


def test_env_sets_all_six_variables_over_inherited_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNI_COMMAND", "DEL")
    monkeypatch.setenv("CNI_NETNS", "/stale")
    env = _exec.build_env("ADD", container_id="c1", netns="/n", ifname="eth1",
                          args=[("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web")],
                          cni_path=["/a", "/b"])
    assert env["CNI_COMMAND"] == "ADD"
    assert env["CNI_NETNS"] == "/n"
    assert env["CNI_CONTAINERID"] == "c1"
    assert env["CNI_IFNAME"] == "eth1"
    assert env["CNI_ARGS"] == "IgnoreUnknown=1;K8S_POD_NAME=web"
    assert env["CNI_PATH"] == "/a:/b"
    assert env["PATH"] == os.environ["PATH"]
    assert _exec.build_env("DEL")["CNI_NETNS"] == ""


def test_find_plugin_first_executable_regular_file(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "noexec").write_bytes(b"")
    (first / "adir").mkdir()
    for d in (first, second):
        shutil.copy("/usr/lib/cni/loopback", d / "lo")
    shutil.copy("/usr/lib/cni/loopback", second / "noexec")
    shutil.copy("/usr/lib/cni/loopback", second / "adir")
    dirs = [str(first), str(second)]
    assert _exec.find_plugin("lo", dirs).path == str(first / "lo")
    assert _exec.find_plugin("noexec", dirs).path == str(second / "noexec")
    assert _exec.find_plugin("adir", dirs).path == str(second / "adir")
    with pytest.raises(CNIError) as exc:
        _exec.find_plugin("nothere", dirs)
    assert exc.value.code == 999
    assert "nothere" in str(exc.value) and str(first) in str(exc.value)
    with pytest.raises(CNIError, match="bare name"):
        _exec.find_plugin("../a/lo", dirs)


def test_error_json_keeps_code_and_garbage_is_quoted() -> None:
    err = _exec._error_from_output(
        "p", "ADD", 1, b'{"code": 7, "msg": "bad conf", "details": "no master"}', b"")
    assert (err.code, err.msg, err.details) == (7, "bad conf", "no master")
    junk = _exec._error_from_output("p", "ADD", 2, b"panic: " + b"x" * 2000, b"goroutine 1")
    assert junk.code == 999 and "exit status 2" in junk.msg
    assert "panic: x" in junk.details and "goroutine 1" in junk.details
    assert len(junk.details) < 1200


async def test_real_plugin_garbage_output_is_a_quoted_error() -> None:
    plugin = _exec.find_plugin("macvlan", ["/usr/lib/cni"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    out, err = await _exec.run_plugin(plugin, "", b"", env, 5.0)
    with pytest.raises(CNIError) as exc:
        _exec.decode_json("macvlan", "ADD", out, err)
    assert exc.value.code == 999 and "CNI macvlan plugin" in exc.value.details


async def test_version_of_a_real_plugin_is_cached_and_observed(tmp_path: Path) -> None:
    seen: list[tuple[str, str, str, float]] = []
    runtime = CNIRuntime(["/usr/lib/cni"], cache_dir=str(tmp_path),
                         on_exec=lambda *event: seen.append(event))
    info = await runtime.version("bridge")
    assert "1.0.0" in info.supported_versions
    assert await runtime.version("bridge") is info
    assert [e[:3] for e in seen] == [("bridge", "VERSION", "ok")]
    assert 0 < seen[0][3] < 5


async def test_etxtbsy_is_retried(tmp_path: Path) -> None:
    """A real plugin binary still open for writing (being installed) cannot be exec'd yet."""
    target = tmp_path / "bridge"
    data = Path("/usr/lib/cni/bridge").read_bytes()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o755)
    os.write(fd, data)
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, os.close, fd)
    runtime = CNIRuntime([str(tmp_path)], cache_dir=str(tmp_path))
    info = await runtime.version("bridge")
    assert "1.0.0" in info.supported_versions


async def test_etxtbsy_gives_up_after_retries(tmp_path: Path) -> None:
    target = tmp_path / "bridge"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o755)
    try:
        os.write(fd, Path("/usr/lib/cni/bridge").read_bytes())
        runtime = CNIRuntime([str(tmp_path)], cache_dir=str(tmp_path))
        with pytest.raises(CNIError, match="cannot execute") as exc:
            await runtime.version("bridge")
        assert exc.value.code == 999
    finally:
        os.close(fd)
