"""In-memory fakes for the attach tests (prepared state, status/event sink) and plan builders:
the Attacher itself, the CNI plugins and the namespaces stay real."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnidra.errors import CheckpointError
from cnidra.model.claims import PreparedDevice
from cnidra.model.plan import Attachment, ClaimPlan, PlannedInterface

DRIVER = "cni.dra.networking.x-k8s.io"


@dataclass
class FakeState:
    """Prepared state in memory (``fail_record``: the checkpoint write fails)."""

    plans: dict[str, ClaimPlan] = field(default_factory=dict)
    attachments: dict[tuple[str, str, str], Attachment] = field(default_factory=dict)
    fail_record: bool = False

    refreshes: int = 0

    async def refresh(self) -> bool:
        self.refreshes += 1
        return False

    def get(self, claim_uid: str) -> ClaimPlan | None:
        return self.plans.get(claim_uid)

    def plans_for_pod(self, pod_uid: str) -> list[ClaimPlan]:
        return [p for p in self.plans.values() if pod_uid in p.pod_uids]

    def attachments_for_sandbox(self, sandbox_id: str) -> list[Attachment]:
        return [a for a in self.attachments.values() if a.sandbox_id == sandbox_id]

    def all_attachments(self) -> list[Attachment]:
        return list(self.attachments.values())

    async def record_attachments(self, attachments: Iterable[Attachment]) -> None:
        if self.fail_record:
            raise CheckpointError("disk full")
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


def plan(uid: str, pod_uid: str, if_name: str, conflist: bytes, net: str,
         device: str = "eth1") -> ClaimPlan:
    iface = PlannedInterface(
        claim_uid=uid, claim_namespace="default", claim_name=f"claim-{uid}", request="req",
        driver=DRIVER, pool="node-a", device=device, device_if_name=device, share_id=None,
        admin_access=True, if_name=if_name, network_name=net, cni_version="1.0.0",
        conflist=conflist, config_source="FromClaim", if_name_source="FromClaim",
    )
    return ClaimPlan(claim_uid=uid, namespace="default", name=f"claim-{uid}",
                     allocation_digest="d", pod_uids=(pod_uid,), interfaces=(iface,),
                     devices=(PreparedDevice(("req",), "node-a", device),))
