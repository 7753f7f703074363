"""``cnidra demo`` as a user runs it: the whole demo, --keep, Ctrl-C/SIGTERM and a killed run's
leftovers removed by the next one."""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
from pathlib import Path

import pytest

from cnidra.sim._cluster import reap_stale

pytestmark = pytest.mark.root


def residue(pid: int) -> list[str]:
    """Namespaces, work dirs and processes of the demo run of process ``pid``."""
    tag = f"{pid}x"
    found = [str(p) for p in Path("/run/netns").glob(f"cns{tag}*")]
    found += [str(p) for p in Path(tempfile.gettempdir()).glob(f"cnidra-sim-{tag}*")]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if f"cnidra-sim-{tag}".encode() in (proc / "cmdline").read_bytes():
                    found.append(f"process {proc.name}")
            except OSError:
                continue
    return found


class Demo:
    """A ``cnidra demo`` child process whose output is read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    @classmethod
    async def start(cls, *args: str) -> Demo:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cnidra", "demo", *args, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        return cls(proc)

    async def wait_for(self, needle: str, timeout: float = 60.0) -> None:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while not any(needle in line for line in self.lines):
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise AssertionError(f"demo ended before {needle!r}:\n" + "\n".join(
                        self.lines))
                self.lines.append(raw.decode().rstrip("\n"))

    async def finish(self, timeout: float = 60.0) -> tuple[int, str, str]:
        async with asyncio.timeout(timeout):
            out, err = await self.proc.communicate()
        text = "\n".join([*self.lines, out.decode()])
        assert self.proc.returncode is not None
        return self.proc.returncode, text, err.decode()

    async def kill(self) -> None:
        """Whatever happened: the demo is gone and so is everything it left."""
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if residue(self.proc.pid):
            await reap_stale()


async def test_the_readme_command(cni_bin_dirs: list[str]) -> None:
    demo = await Demo.start()
    try:
        code, out, err = await demo.finish(90)
    finally:
        await demo.kill()
    assert code == 0, out + err
    assert err == ""
    for expected in ("$ kubectl get resourceslices", "eth0 (name=eth0), eth1 (name=eth1)",
                     "$ kubectl get resourceclaims", "allocated,reserved",
                     "NET1 ADDRESS", "networkData:", "interfaceName: net1",
                     "OK: 1 packets transmitted, 1 received",
                     "nothing left: 0 interfaces, 0 pod namespaces, 0 IPAM leases, "
                     "0 checkpoint entries, 0 pods, 0 claims"):
        assert expected in out, expected
    last = out.strip().splitlines()[-1]
    assert last.startswith("15/15 pods on kind-worker; 15 distinct net1 addresses in "
                           "10.10.1.0/24 (macvlan, 15/15 UP); 15/15 claims Ready; ping ok; "
                           "nothing left — OK (")
    assert last.endswith("everything removed)")
    assert out.count(" Running ") == 15
    assert residue(demo.proc.pid) == []


async def test_sigterm_while_starting_removes_everything(cni_bin_dirs: list[str]) -> None:
    demo = await Demo.start()
    try:
        await demo.wait_for("manifests:")
        await asyncio.sleep(0.3)  # inside the cluster start: namespaces exist, drivers start
        demo.proc.send_signal(signal.SIGTERM)
        code, out, err = await demo.finish(30)
    finally:
        await demo.kill()
    assert code == 130, out + err
    assert err.splitlines()[-1] == "cnidra demo: interrupted; everything it created was removed"
    assert residue(demo.proc.pid) == []


async def test_keep_runs_until_ctrl_c(cni_bin_dirs: list[str]) -> None:
    demo = await Demo.start("--keep", "--replicas", "2")
    try:
        await demo.wait_for("Running until Ctrl-C")
        await demo.wait_for("kubeconfig of the API server stand-in")
        assert any(p.startswith(f"/run/netns/cns{demo.proc.pid}x") for p in residue(
            demo.proc.pid))
        health = next(ln for ln in demo.lines if "DEVICE HEALTH" in ln)
        assert health.split()[-2:] == ["DEVICE", "HEALTH"]
        assert sum(ln.rstrip().endswith("Healthy") for ln in demo.lines) == 2
        demo.proc.send_signal(signal.SIGINT)
        code, out, err = await demo.finish(30)
    finally:
        await demo.kill()
    assert code == 0, out + err
    assert "Stopping: scaling down and cleaning up." in out
    assert "2 pods deleted" in out and "nothing left: 0 interfaces" in out
    assert residue(demo.proc.pid) == []


async def test_a_killed_run_is_reaped(cni_bin_dirs: list[str]) -> None:
    demo = await Demo.start("--keep", "--replicas", "2")
    try:
        await demo.wait_for("Running until Ctrl-C")
        demo.proc.kill()  # SIGKILL: no cleanup at all
        await demo.proc.wait()
        left = residue(demo.proc.pid)
        assert any("process" in p for p in left) and any("/run/netns/" in p for p in left)
        await reap_stale()  # (a run starting elsewhere meanwhile may have reaped it first)
        for _ in range(50):  # killed processes disappear asynchronously
            if not residue(demo.proc.pid):
                break
            await asyncio.sleep(0.1)
        assert residue(demo.proc.pid) == []
    finally:
        await demo.kill()
