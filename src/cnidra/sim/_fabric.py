"""The embedded cluster's network: one namespace per node, shared L2 segments, pod namespaces.

Layout for a run with id ``<rid>`` (names stay within 15 bytes where they are link names)::

    netns cns<rid>-lan      bridges br0 (the eth0 segment) and br1 (the eth1 segment)
    netns cns<rid>-<n>      one per node: eth0 (and eth1 where the node has it), veth pairs
                            whose peers sit on br0/br1 in the lan namespace, so pods on
                            different nodes share an L2 segment through eth1
    netns cns<rid>-p<hash>  one per pod sandbox, with eth0 (the "primary network": a veth
                            to its node) created by the runtime stand-in

Nodes have no default route, as on an isolated lab segment, so the node's ``eth0`` is not a
default-route uplink and is published like in the talk's kind cluster.

Everything is named after the run id, which embeds the owning process id: ``reap_stale()``
removes what a crashed or killed run left behind without touching another live run.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cnidra.errors import CnidraError

log = logging.getLogger(__name__)

NETNS_DIR = Path("/run/netns")
_PREFIX = "cns"
_RUN_RE = re.compile(rf"^{_PREFIX}(?P<pid>\d+)x[0-9a-f]{{3}}-")


class FabricError(CnidraError):
    """An ``ip`` command failed while building or tearing down the embedded network."""


async def _ip(*args: str, check: bool = True) -> str:
    proc = await asyncio.create_subprocess_exec(
        "ip", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if check and proc.returncode != 0:
        raise FabricError(f"ip {' '.join(args)}: {err.decode().strip()}")
    return out.decode()


@dataclass(frozen=True)
class NodeSpec:
    """A simulated node: its name and which of the lab segments it is plugged into."""

    name: str
    interfaces: tuple[str, ...] = ("eth0",)


@dataclass
class Node:
    spec: NodeSpec
    index: int
    netns: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def netns_path(self) -> str:
        return str(NETNS_DIR / self.netns)

    @property
    def address(self) -> str:
        return f"172.18.0.{self.index + 2}"


@dataclass
class Fabric:
    """Builds and removes the embedded cluster's namespaces and links."""

    run_id: str = field(default_factory=lambda: f"{os.getpid()}x{os.urandom(2).hex()[:3]}")
    nodes: dict[str, Node] = field(default_factory=dict)
    pods: dict[str, str] = field(default_factory=dict)  # sandbox id -> netns name

    @property
    def lan(self) -> str:
        return f"{_PREFIX}{self.run_id}-lan"

    def _ns(self, suffix: str) -> str:
        return f"{_PREFIX}{self.run_id}-{suffix}"

    async def create(self, specs: list[NodeSpec]) -> None:
        await _ip("netns", "add", self.lan)
        await _ip("-n", self.lan, "link", "set", "lo", "up")
        for bridge in ("br0", "br1"):
            await _ip("-n", self.lan, "link", "add", bridge, "type", "bridge")
            await _ip("-n", self.lan, "link", "set", bridge, "up")
        for index, spec in enumerate(specs):
            await self._add_node(index, spec)

    async def _add_node(self, index: int, spec: NodeSpec) -> None:
        node = Node(spec, index, self._ns(f"n{index}"))
        self.nodes[spec.name] = node
        await _ip("netns", "add", node.netns)
        await _ip("-n", node.netns, "link", "set", "lo", "up")
        for ifname in spec.interfaces:
            segment = {"eth0": "br0", "eth1": "br1"}.get(ifname)
            if segment is None:
                raise FabricError(f"node {spec.name}: unknown lab segment for {ifname}")
            lan_end = f"n{index}{ifname}"
            tmp = f"t{self.run_id[-3:]}{index}{ifname}"
            await _ip("link", "add", tmp, "type", "veth", "peer", "name", lan_end)
            await _ip("link", "set", lan_end, "netns", self.lan)
            await _ip("-n", self.lan, "link", "set", lan_end, "master", segment, "up")
            await _ip("link", "set", tmp, "netns", node.netns)
            await _ip("-n", node.netns, "link", "set", tmp, "name", ifname)
            await _ip("-n", node.netns, "link", "set", ifname, "up")
        await _ip("-n", node.netns, "addr", "add", f"{node.address}/16", "dev", "eth0")

    async def add_pod(self, node_name: str, sandbox_id: str, pod_index: int) -> str:
        """Create a pod's network namespace with a primary ``eth0``; returns the netns path."""
        node = self.nodes[node_name]
        digest = hashlib.sha256(sandbox_id.encode()).hexdigest()[:8]
        netns = self._ns(f"p{digest}")
        host_end = f"v{digest}"
        await _ip("netns", "add", netns)
        self.pods[sandbox_id] = netns
        await _ip("-n", netns, "link", "set", "lo", "up")
        await _ip("-n", node.netns, "link", "add", host_end, "type", "veth", "peer", "name", "eth0",
                  "netns", netns)
        await _ip("-n", node.netns, "link", "set", host_end, "up")
        octet3, octet4 = divmod(pod_index + 2, 250)
        await _ip("-n", netns, "addr", "add", f"10.244.{node.index * 10 + octet3}.{octet4}/32",
                  "dev", "eth0")
        await _ip("-n", netns, "link", "set", "eth0", "up")
        return str(NETNS_DIR / netns)

    async def remove_pod(self, sandbox_id: str) -> None:
        netns = self.pods.pop(sandbox_id, None)
        if netns is not None:
            await _ip("netns", "del", netns, check=False)

    async def destroy(self) -> None:
        for sandbox_id in list(self.pods):
            await self.remove_pod(sandbox_id)
        for node in self.nodes.values():
            await _ip("netns", "del", node.netns, check=False)
        self.nodes.clear()
        await _ip("netns", "del", self.lan, check=False)

    def namespaces(self) -> list[str]:
        """This run's namespaces that still exist."""
        prefix = f"{_PREFIX}{self.run_id}-"
        return sorted(p.name for p in NETNS_DIR.glob(f"{prefix}*")) if NETNS_DIR.is_dir() else []


def _stale_namespaces() -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    stale = []
    for path in sorted(NETNS_DIR.iterdir()):
        match = _RUN_RE.match(path.name)
        if match is not None and not Path(f"/proc/{match['pid']}").exists():
            stale.append(path.name)
    return stale


async def reap_stale() -> list[str]:
    """Delete namespaces of embedded runs whose owning process is gone."""
    removed = await asyncio.to_thread(_stale_namespaces)
    for name in removed:
        await _ip("netns", "del", name, check=False)
    if removed:
        log.info("removed %d namespaces left by earlier runs", len(removed))
    return removed
