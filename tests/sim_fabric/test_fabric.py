"""The embedded cluster's network, for real: namespaces, veths, shared L2, cleanup."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cnidra.sim._fabric import Fabric, NodeSpec, reap_stale

pytestmark = pytest.mark.root


def links_in(netns: str) -> set[str]:
    out = subprocess.run(["ip", "-n", netns, "-o", "link"], check=True, capture_output=True,
                         text=True).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()}


async def test_two_nodes_only_one_with_eth1_and_pods_share_l2() -> None:
    fabric = Fabric()
    try:
        await fabric.create([NodeSpec("kind-worker", ("eth0", "eth1")),
                             NodeSpec("kind-worker2", ("eth0",))])
        w1, w2 = fabric.nodes["kind-worker"], fabric.nodes["kind-worker2"]
        assert {"lo", "eth0", "eth1"} <= links_in(w1.netns)
        assert "eth1" not in links_in(w2.netns)
        # eth0 segment: node addresses reach each other across the lan bridge
        ping = subprocess.run(["ip", "netns", "exec", w1.netns, "ping", "-c1", "-W2",
                               w2.address], check=False, capture_output=True, text=True)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        path = await fabric.add_pod("kind-worker", "sandbox-a", 0)
        assert Path(path).exists()
        assert "eth0" in links_in(Path(path).name)
        await fabric.remove_pod("sandbox-a")
        assert not Path(path).exists()
    finally:
        await fabric.destroy()
    assert fabric.namespaces() == []


async def test_reap_stale_removes_only_dead_runs() -> None:
    dead = Fabric(run_id="999999999x0ab")  # no such pid
    live = Fabric()
    try:
        subprocess.run(["ip", "netns", "add", f"{dead.lan}"], check=True)
        subprocess.run(["ip", "netns", "add", f"{live.lan}"], check=True)
        removed = await reap_stale()
        assert dead.lan in removed
        assert live.lan not in removed
        assert live.namespaces() == [live.lan]
    finally:
        subprocess.run(["ip", "netns", "del", dead.lan], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", live.lan], check=False, capture_output=True)
