"""What attach needs from its neighbours, as small Protocols (satisfied by ``cnidra.claims``,
``cnidra.cni`` and ``cnidra.kube``; tests pass simple fakes)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cnidra.cni import CachedAttachment, NetworkConfigList, Result, RuntimeConf
from cnidra.model.plan import Attachment, ClaimPlan


@dataclass(frozen=True, slots=True)
class Sandbox:
    """A pod sandbox as the runtime reports it. ``netns`` is None for host-network pods and in
    RemovePodSandbox (the namespace is gone by then)."""

    id: str
    pod_uid: str
    pod_name: str
    pod_namespace: str
    netns: str | None


class PreparedState(Protocol):
    async def refresh(self) -> bool:
        """Adopt prepared state another driver instance wrote (rolling update); cheap."""
    def get(self, claim_uid: str) -> ClaimPlan | None: ...
    def plans_for_pod(self, pod_uid: str) -> list[ClaimPlan]: ...
    def attachments_for_sandbox(self, sandbox_id: str) -> list[Attachment]: ...
    def all_attachments(self) -> list[Attachment]: ...
    async def record_attachments(self, attachments: Iterable[Attachment]) -> None: ...
    async def remove_attachments(
        self, keys: Iterable[tuple[str, str, str]]
    ) -> list[Attachment]: ...


class CNI(Protocol):
    async def add(self, net: NetworkConfigList, rt: RuntimeConf) -> Result: ...
    async def delete(self, net: NetworkConfigList, rt: RuntimeConf) -> None: ...
    async def delete_from_cache(
        self, container_id: str, ifname: str, net_name: str, netns: str | None = None
    ) -> bool: ...
    async def cached_attachments(self, net_name: str | None = None) -> list[CachedAttachment]: ...
    async def get_cached(
        self, net_name: str, container_id: str, ifname: str
    ) -> CachedAttachment | None: ...


class StatusSink(Protocol):
    """Accepts the desired ``status.devices`` of one claim; writes happen off the hook path."""

    def submit(
        self, namespace: str, name: str, uid: str, devices: Sequence[Mapping[str, Any]]
    ) -> None: ...


class EventSink(Protocol):
    """Records a Kubernetes Event on a claim, best effort, off the hook path."""

    def claim_event(
        self, namespace: str, name: str, uid: str, *, reason: str, message: str, warning: bool
    ) -> None: ...
