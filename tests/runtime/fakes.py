"""Fake parts for the driver tests: each records what happened to it in one shared journal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cnidra.attach import CNI, Sandbox
from cnidra.claims import Fetched
from cnidra.cni import CachedAttachment, NetworkConfigList, Result, RuntimeConf
from cnidra.errors import CnidraError
from cnidra.kube import ApiInfo
from cnidra.kubelet import ClaimPreparer, HealthSource
from cnidra.model.claims import ClaimRef, PrepareOutcome
from cnidra.model.devices import DeviceHealth, Snapshot
from cnidra.model.plan import Attachment, ClaimPlan
from cnidra.nri import OnHook
from cnidra.runtime import Metrics, Settings
from cnidra.runtime._parts import (
    ClaimsPart,
    ExecObserver,
    HandlerPart,
    InventoryPart,
    KubeletPart,
    KubePart,
    NRIPart,
    PublisherPart,
    StatusPart,
)


@dataclass
class Journal:
    events: list[str] = field(default_factory=list)

    def __call__(self, event: str) -> None:
        self.events.append(event)


async def _forever(journal: Journal, name: str) -> None:
    journal(f"{name}.run")
    try:
        await asyncio.Event().wait()
    finally:
        journal(f"{name}.cancelled")


class FakeKube:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.api = ApiInfo("v1", (1, 36), "v1.36.2", True)

    async def close(self) -> None:
        self.journal("kube.close")


class FakeCNI:
    async def add(self, net: NetworkConfigList, rt: RuntimeConf) -> Result:
        raise CnidraError("not used")

    async def delete(self, net: NetworkConfigList, rt: RuntimeConf) -> None:
        return None

    async def delete_from_cache(self, container_id: str, ifname: str, net_name: str,
                                netns: str | None = None) -> bool:
        return False

    async def cached_attachments(self, net_name: str | None = None) -> list[CachedAttachment]:
        return []

    async def get_cached(self, net_name: str, container_id: str, ifname: str
                         ) -> CachedAttachment | None:
        return None


class FakeClaims:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.attachments: list[Attachment] = []

    async def prepare(self, claims: Sequence[ClaimRef]) -> dict[str, PrepareOutcome]:
        return {c.uid: PrepareOutcome() for c in claims}

    async def fetch(self, claims: Sequence[ClaimRef]) -> Fetched:
        return Fetched(tuple(claims), time.monotonic())

    async def refresh(self) -> bool:
        return False

    async def apply_prepare(self, fetched: Fetched) -> dict[str, PrepareOutcome]:
        return await self.prepare(fetched.refs)  # subclasses override prepare

    async def unprepare(self, claims: Sequence[ClaimRef]) -> dict[str, str]:
        return {c.uid: "" for c in claims}

    def get(self, claim_uid: str) -> ClaimPlan | None:
        return None

    def plans_for_pod(self, pod_uid: str) -> list[ClaimPlan]:
        return []

    def attachments_for_sandbox(self, sandbox_id: str) -> list[Attachment]:
        return []

    def all_attachments(self) -> list[Attachment]:
        return list(self.attachments)

    async def record_attachments(self, attachments: Iterable[Attachment]) -> None:
        return None

    async def remove_attachments(self, keys: Iterable[tuple[str, str, str]]
                                 ) -> list[Attachment]:
        return []


class FakeStatus:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def submit(self, namespace: str, name: str, uid: str,
               devices: Sequence[Mapping[str, Any]]) -> None:
        return None

    def claim_event(self, namespace: str, name: str, uid: str, *, reason: str, message: str,
                    warning: bool) -> None:
        return None

    async def run(self) -> None:
        await _forever(self.journal, "status")

    async def drain(self, timeout: float) -> bool:
        self.journal("status.drain")
        return True


class FakeHandler:
    """Holds RunPodSandbox until ``release`` is set (to test the hook drain)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.release = asyncio.Event()
        self.release.set()

    async def run_pod_sandbox(self, sandbox: Sandbox) -> list[Attachment]:
        self.journal("hook.run.begin")
        await self.release.wait()
        self.journal("hook.run.end")
        return []

    async def stop_pod_sandbox(self, sandbox: Sandbox) -> None:
        return None

    async def remove_pod_sandbox(self, sandbox: Sandbox) -> None:
        return None

    async def synchronize(self, live_sandboxes: Collection[Sandbox]) -> int:
        return 0


class FakeInventory:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def run(self) -> None:
        await _forever(self.journal, "inventory")

    async def _snapshots(self) -> AsyncIterator[Snapshot]:
        await asyncio.Event().wait()
        yield Snapshot(devices=())  # pragma: no cover - never reached

    def subscribe(self) -> AsyncIterator[Snapshot]:
        return self._snapshots()

    def device_health(self) -> tuple[int, list[DeviceHealth]]:
        return 0, []

    async def wait_health(self, version: int, timeout: float | None = None
                          ) -> tuple[int, list[DeviceHealth]]:
        return 0, []


class FakePublisher:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.published = False
        self.device_count = 0

    async def run(self, snapshots: AsyncIterator[Snapshot]) -> None:
        await _forever(self.journal, "publisher")

    async def remove_all(self) -> int:
        self.journal("publisher.remove_all")
        return 1


class FakeKubelet:
    def __init__(self, journal: Journal, claims: ClaimPreparer) -> None:
        self.journal = journal
        self.claims = claims
        self.registered = False

    async def start(self) -> None:
        self.journal("kubelet.start")

    async def stop(self, grace: float = 5.0) -> None:
        self.journal("kubelet.stop")


class FakeNRI:
    def __init__(self, journal: Journal, handler: HandlerPart, on_hook: OnHook,
                 *, quits: bool = False) -> None:
        self.journal = journal
        self.handler = handler
        self.on_hook = on_hook
        self.connected = False
        self.quits = quits

    async def run(self) -> None:
        if self.quits:
            self.journal("nri.run")
            raise CnidraError("NRI socket vanished")
        await _forever(self.journal, "nri")

    async def stop(self) -> None:
        self.journal("nri.stop")


class FakeBuilder:
    """Records the build order; ``fail_at`` makes that step raise ``error``."""

    def __init__(self, journal: Journal, *, fail_at: str = "",
                 error: BaseException | None = None, nri_quits: bool = False,
                 kube_hangs: bool = False) -> None:
        self.journal = journal
        self.kube_hangs = kube_hangs
        self.fail_at = fail_at
        self.error = error or CnidraError(f"{fail_at} broke")
        self.nri_quits = nri_quits
        self.claims_part: FakeClaims | None = None
        self.handler_part: FakeHandler | None = None
        self.kubelet_part: FakeKubelet | None = None
        self.nri_part: FakeNRI | None = None
        self.publisher_part: FakePublisher | None = None
        self.on_exec: ExecObserver | None = None

    def _step(self, name: str) -> None:
        self.journal(f"build.{name}")
        if name == self.fail_at:
            raise self.error

    async def kube(self, settings: Settings) -> KubePart:
        self._step("kube")
        if self.kube_hangs:
            await asyncio.Event().wait()
        return FakeKube(self.journal)

    def cni(self, settings: Settings, on_exec: ExecObserver) -> CNI:
        self._step("cni")
        self.on_exec = on_exec
        return FakeCNI()

    async def claims(self, settings: Settings, kube: KubePart) -> ClaimsPart:
        self._step("claims")
        self.claims_part = FakeClaims(self.journal)
        return self.claims_part

    def status_writer(self, settings: Settings, kube: KubePart, metrics: Metrics
                      ) -> StatusPart:
        self._step("status")
        return FakeStatus(self.journal)

    def attacher(self, settings: Settings, claims: ClaimsPart, cni: CNI, status: StatusPart
                 ) -> HandlerPart:
        self._step("attacher")
        self.handler_part = FakeHandler(self.journal)
        return self.handler_part

    def inventory(self, settings: Settings) -> InventoryPart:
        self._step("inventory")
        return FakeInventory(self.journal)

    def publisher(self, settings: Settings, kube: KubePart) -> PublisherPart:
        self._step("publisher")
        self.publisher_part = FakePublisher(self.journal)
        return self.publisher_part

    def kubelet(self, settings: Settings, claims: ClaimPreparer, health: HealthSource
                ) -> KubeletPart:
        self._step("kubelet")
        self.kubelet_part = FakeKubelet(self.journal, claims)
        return self.kubelet_part

    def nri(self, settings: Settings, handler: HandlerPart, metrics: Metrics) -> NRIPart:
        self._step("nri")
        self.nri_part = FakeNRI(self.journal, handler, metrics.observe_hook,
                                quits=self.nri_quits)
        return self.nri_part
