"""A real Attacher (real CNI, real netns) behind the NRI plugin and the runtime stand-in.

The fakes mirror tests/attach: an in-memory prepared state and a status/event sink."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnidra.model.claims import PreparedDevice
from cnidra.model.plan import Attachment, ClaimPlan, PlannedInterface
from cnidra.nri import NRIPlugin
from cnidra.sim.runtime import NRIRuntime, SimPod
from support import unique

DRIVER = "cni.dra.networking.x-k8s.io"


@dataclass
class MemState:
    plans: dict[str, ClaimPlan] = field(default_factory=dict)
    attachments: dict[tuple[str, str, str], Attachment] = field(default_factory=dict)

    def get(self, claim_uid: str) -> ClaimPlan | None:
        return self.plans.get(claim_uid)

    def plans_for_pod(self, pod_uid: str) -> list[ClaimPlan]:
        return [p for p in self.plans.values() if pod_uid in p.pod_uids]

    def attachments_for_sandbox(self, sandbox_id: str) -> list[Attachment]:
        return [a for a in self.attachments.values() if a.sandbox_id == sandbox_id]

    def all_attachments(self) -> list[Attachment]:
        return list(self.attachments.values())

    async def record_attachments(self, attachments: Iterable[Attachment]) -> None:
        for a in attachments:
            self.attachments[a.key] = a

    async def remove_attachments(self, keys: Iterable[tuple[str, str, str]]) -> list[Attachment]:
        return [a for k in list(keys) if (a := self.attachments.pop(k, None)) is not None]


@dataclass
class Sink:
    status: list[tuple[str, list[Mapping[str, Any]]]] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)

    def submit(self, namespace: str, name: str, uid: str,
               devices: Sequence[Mapping[str, Any]]) -> None:
        self.status.append((f"{namespace}/{name}", list(devices)))

    def claim_event(self, namespace: str, name: str, uid: str, *, reason: str, message: str,
                    warning: bool) -> None:
        self.events.append((reason, message))


def macvlan_conflist(name: str, master: str, data_dir: Path, subnet: str) -> bytes:
    conf = {"cniVersion": "1.0.0", "name": name, "plugins": [{
        "type": "macvlan", "master": master, "mode": "bridge",
        "ipam": {"type": "host-local", "dataDir": str(data_dir), "ranges": [[{"subnet": subnet}]]},
    }]}
    return json.dumps(conf, sort_keys=True, separators=(",", ":")).encode()


def claim_plan(uid: str, pod_uid: str, if_name: str, conflist: bytes, net: str) -> ClaimPlan:
    iface = PlannedInterface(
        claim_uid=uid, claim_namespace="default", claim_name=f"claim-{uid}", request="req",
        driver=DRIVER, pool="node-a", device="eth1", device_if_name="eth1", share_id=None,
        admin_access=True, if_name=if_name, network_name=net, cni_version="1.0.0",
        conflist=conflist, config_source="FromClaim", if_name_source="FromClaim",
    )
    return ClaimPlan(claim_uid=uid, namespace="default", name=f"claim-{uid}",
                     allocation_digest="d", pod_uids=(pod_uid,), interfaces=(iface,),
                     devices=(PreparedDevice(("req",), "node-a", "eth1"),))


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
