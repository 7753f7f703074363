"""Looking into the embedded cluster: a pod's interfaces (kind, state, address), ping from a
pod, and what is left over once the pods are gone (namespaces, links, IPAM leases, checkpoint
entries, objects).

Read-only: every look is ``ip -j`` (or ``ip netns exec ... ping``) as a subprocess, or a file
read in a thread; nothing is changed. :class:`~cnidra.sim._cluster.Cluster` exposes these as
its ``link_kind``, ``interface``, ``ping`` and ``leftovers`` methods.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cnidra.claims import Checkpoint
from cnidra.sim._fabric import Fabric
from cnidra.sim._objects import StoreObjects
from cnidra.sim._records import ClusterError, Leftovers, SimNode, key_of, meta_of


async def ip_json(*args: str) -> Any:
    proc = await asyncio.create_subprocess_exec(
        "ip", "-j", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise ClusterError(f"ip -j {' '.join(args)}: {err.decode().strip()}")
    return json.loads(out or b"[]")


async def link_kind(netns: str, ifname: str) -> tuple[str, bool]:
    """(link kind such as ``macvlan``, administratively UP) of ``ifname`` in ``netns``."""
    links = await ip_json("-n", netns, "-d", "link", "show", ifname)
    if not links:
        return "", False
    kind = str((links[0].get("linkinfo") or {}).get("info_kind") or "")
    return kind, "UP" in (links[0].get("flags") or [])


async def addresses(netns: str, ifname: str) -> list[tuple[str, str]]:
    """(address/prefix, mac) of ``ifname`` in ``netns`` (IPv4 first)."""
    links = await ip_json("-n", netns, "addr", "show", ifname)
    out = []
    for link in links:
        mac = str(link.get("address", ""))
        infos = sorted(link.get("addr_info") or [], key=lambda a: a.get("family") != "inet")
        for info in infos:
            if info.get("scope") == "link" and info.get("family") == "inet6":
                continue
            out.append((f"{info['local']}/{info['prefixlen']}", mac))
        if not out:
            out.append(("", mac))
    return out


async def interface(netns: str, ifname: str) -> tuple[str, str] | None:
    """(address/prefix, MAC) of ``ifname`` inside ``netns``, None when it is not there."""
    try:
        found = await addresses(netns, ifname)
    except ClusterError:
        return None
    return found[0] if found else None


async def ping(netns: str, address: str, count: int = 1) -> tuple[bool, str]:
    """``ip netns exec <netns> ping -c N -W 2 <address>``: (ok, ping's summary line)."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, "ping", "-c", str(count), "-W", "2", address,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 5 + 2 * count)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False, "ping timed out"
    lines = out.decode(errors="replace").splitlines()
    summary = next((ln for ln in lines if "packets transmitted" in ln), lines[-1] if lines
                   else "")
    rtt = next((ln for ln in lines if ln.startswith(("rtt", "round-trip"))), "")
    return proc.returncode == 0, (summary + (f"; {rtt}" if rtt else "")).strip()


async def leftovers(fabric: Fabric, nodes: Iterable[SimNode], objects: StoreObjects,
                    settle: float = 3.0) -> Leftovers:
    """Interfaces, namespaces, IPAM leases, checkpoint entries and objects still present.

    The kernel destroys a deleted namespace (and the veth ends in it) asynchronously, so
    this looks again for up to ``settle`` seconds before it reports anything."""
    node_list = list(nodes)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle
    while True:
        found = await leftovers_now(fabric, node_list, objects)
        if found.clean or loop.time() >= deadline:
            return found
        await asyncio.sleep(0.1)


async def leftovers_now(fabric: Fabric, nodes: list[SimNode],
                        objects: StoreObjects) -> Leftovers:
    """What :func:`leftovers` reports, looked at once (no settling)."""
    found = Leftovers()
    nodes_and_lan = {fabric.lan, *(n.netns for n in nodes)}
    found.pod_namespaces = [ns for ns in await asyncio.to_thread(fabric.namespaces)
                            if ns not in nodes_and_lan]
    for node in nodes:
        links = await ip_json("-n", node.netns, "link", "show")
        expected = {"lo", *node.spec.interfaces}
        found.links[node.name] = sorted(str(li["ifname"]) for li in links
                                        if li.get("ifname") not in expected)
        found.ipam_leases[node.name] = await asyncio.to_thread(_leases, node.paths.ipam_dir)
        claims = await asyncio.to_thread(Checkpoint(node.paths.state_dir).load)
        found.checkpoint[node.name] = sorted(claims)
    found.pods = [key_of(meta_of(p)["namespace"], meta_of(p)["name"])
                  for p in objects.list("pods")]
    found.claims = [key_of(meta_of(c)["namespace"], meta_of(c)["name"])
                    for c in objects.list("resourceclaims")]
    return found


def _leases(ipam_dir: Path) -> list[str]:
    """host-local lease files (one per allocated address) under ``<dir>/networks/<net>/``."""
    networks = ipam_dir / "networks"
    if not networks.is_dir():
        return []
    return sorted(f"{net.name}/{lease.name}" for net in networks.iterdir() if net.is_dir()
                  for lease in net.iterdir()
                  if lease.name != "lock" and not lease.name.startswith("last_reserved_ip"))
