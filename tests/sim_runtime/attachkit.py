"""A real Attacher (real CNI, real netns) behind the NRI plugin and the runtime stand-in.

The fakes are tests/attach's: an in-memory prepared state and a status/event sink."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from attach.kit import FakeState as MemState
from attach.kit import Sink, macvlan_conflist
from attach.kit import plan as claim_plan

from cnidra.nri import NRIPlugin
from cnidra.sim.runtime import NRIRuntime, SimPod
from support import unique


@dataclass
class Node:
    runtime: NRIRuntime
    plugin: NRIPlugin
    state: MemState
    sink: Sink
    master: str
    data_dir: Path
    netns: Callable[[str], str]
    hooks: list[tuple[str, str, float]]

    def pod(self, pod_uid: str) -> SimPod:
        name = self.netns("cnpod")
        return SimPod(id=unique("sb", 12), uid=pod_uid, name=f"pod-{pod_uid}",
                      namespace="default", netns=f"/run/netns/{name}", ips=("10.88.0.9",))

    def add_plan(self, uid: str, pod_uid: str, if_name: str, subnet: str,
                 master: str | None = None) -> str:
        net = unique("net")
        self.state.plans[uid] = claim_plan(uid, pod_uid, if_name, macvlan_conflist(
            net, master or self.master, self.data_dir, subnet), net)
        return net

    def leases(self, net: str) -> list[str]:
        d = self.data_dir / net
        return sorted(p.name for p in d.iterdir() if p.name[0].isdigit()) if d.exists() else []
