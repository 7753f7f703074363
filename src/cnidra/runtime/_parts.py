"""What the driver needs from each part it wires, as small Protocols (the real classes from
kube, claims, attach, inventory, publishing, kubelet and nri satisfy them; tests pass fakes that
record what happened), and the ``Builder`` that constructs the parts in start order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection
from typing import Protocol

from cnidra.attach import CNI, EventSink, PreparedState, Sandbox, StatusSink
from cnidra.kube import ApiInfo
from cnidra.kubelet import ClaimPreparer, HealthSource
from cnidra.model.devices import Snapshot
from cnidra.model.plan import Attachment
from cnidra.runtime._metrics import Metrics
from cnidra.runtime._settings import Settings

ExecObserver = Callable[[str, str, str, float], None]
"""``(plugin, verb, outcome, seconds)`` after each CNI plugin exec (``CNIRuntime(on_exec=)``)."""


class KubePart(Protocol):
    """The API client: claim reads for prepare; slices and status go through it."""

    @property
    def api(self) -> ApiInfo:
        """What discovery found (resource.k8s.io ``v1`` or ``v1beta1``, server version)."""

    async def close(self) -> None: ...


class ClaimsPart(ClaimPreparer, PreparedState, Protocol):
    """``cnidra.claims.ClaimState``: prepare/unprepare and the queries attach makes."""


class StatusPart(StatusSink, EventSink, Protocol):
    """``cnidra.kube.StatusWriter``."""

    async def run(self) -> None: ...
    async def drain(self, timeout: float) -> bool: ...


class HandlerPart(Protocol):
    """``cnidra.attach.Attacher``: what the NRI plugin calls."""

    async def run_pod_sandbox(self, sandbox: Sandbox) -> list[Attachment]: ...
    async def stop_pod_sandbox(self, sandbox: Sandbox) -> None: ...
    async def remove_pod_sandbox(self, sandbox: Sandbox) -> None: ...
    async def synchronize(self, live_sandboxes: Collection[Sandbox]) -> int: ...


class InventoryPart(HealthSource, Protocol):
    """``cnidra.inventory.Inventory``."""

    async def run(self) -> None: ...
    def subscribe(self) -> AsyncIterator[Snapshot]: ...


class PublisherPart(Protocol):
    """``cnidra.publishing.Publisher``."""

    async def run(self, snapshots: AsyncIterator[Snapshot]) -> None: ...

    @property
    def published(self) -> bool: ...

    @property
    def device_count(self) -> int: ...

    async def remove_all(self) -> int: ...


class KubeletPart(Protocol):
    """``cnidra.kubelet.KubeletPlugin``."""

    async def start(self) -> None: ...
    async def stop(self, grace: float = 5.0) -> None: ...

    @property
    def registered(self) -> bool: ...


class NRIPart(Protocol):
    """``cnidra.nri.NRIPlugin``."""

    async def run(self) -> None: ...
    async def stop(self) -> None: ...

    @property
    def connected(self) -> bool: ...


class Builder(Protocol):
    """Constructs each part from the settings, in the driver's start order.

    A ``ConfigError`` from any step stops the start (exit code 2); any other error is a failed
    start (exit code 1). Whatever was built before the failing step is shut down in order.
    """

    async def kube(self, settings: Settings) -> KubePart: ...
    def cni(self, settings: Settings, on_exec: ExecObserver) -> CNI: ...
    async def claims(self, settings: Settings, kube: KubePart) -> ClaimsPart: ...
    def status_writer(self, settings: Settings, kube: KubePart, metrics: Metrics
                      ) -> StatusPart: ...
    def attacher(self, settings: Settings, claims: ClaimsPart, cni: CNI, status: StatusPart
                 ) -> HandlerPart: ...
    def inventory(self, settings: Settings) -> InventoryPart: ...
    def publisher(self, settings: Settings, kube: KubePart) -> PublisherPart: ...
    def kubelet(self, settings: Settings, claims: ClaimPreparer, health: HealthSource
                ) -> KubeletPart: ...
    def nri(self, settings: Settings, handler: HandlerPart, metrics: Metrics) -> NRIPart:
        """Hook metrics come from the plugin's ``on_hook`` (it knows a hook's deadline)."""
