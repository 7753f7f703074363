"""``ProductionBuilder``: the real parts, constructed from the settings.

The device-name -> interface-name resolver handed to the claim state asks the inventory's
current snapshot (DRA device names of interfaces that are not DNS labels carry a hash), and
falls back to the identity before the first scan.
"""

from __future__ import annotations

from cnidra.attach import CNI, Attacher
from cnidra.claims import AdminPolicy, ClaimState
from cnidra.cni import CNIRuntime
from cnidra.errors import CnidraError
from cnidra.inventory import Inventory
from cnidra.kube import KubeClient, StatusWriter, connect
from cnidra.kubelet import ClaimPreparer, HealthSource, KubeletPlugin
from cnidra.nri import NRIPlugin
from cnidra.publishing import Publisher
from cnidra.runtime._metrics import Metrics
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
from cnidra.runtime._settings import Settings


class ProductionBuilder:
    """Builds the real parts (see ``Builder``); keeps the concrete kube client it made."""

    def __init__(self) -> None:
        self._client: KubeClient | None = None
        self._inventory: Inventory | None = None

    def _kube(self) -> KubeClient:
        if self._client is None:
            raise CnidraError("the kube client is not connected yet")
        return self._client

    async def kube(self, settings: Settings) -> KubePart:
        self._client = await connect(settings.kubeconfig or None)
        return self._client

    def cni(self, settings: Settings, on_exec: ExecObserver) -> CNI:
        return CNIRuntime(settings.cni_bin_dirs, settings.cache_dir, settings.cni_exec_timeout,
                          on_exec=on_exec)

    def _if_name(self, device: str) -> str | None:
        snapshot = self._inventory.current if self._inventory is not None else None
        if snapshot is not None:
            for dev in snapshot.devices:
                if dev.name == device:
                    return dev.if_name
        return device

    async def claims(self, settings: Settings, kube: KubePart) -> ClaimsPart:
        policy = AdminPolicy(
            allowed_plugin_types=frozenset(settings.allowed_plugins),
            require_master_is_allocated_device=settings.require_master_is_allocated,
        )
        return await ClaimState.open(settings.state_dir, self._kube(),
                                     driver=settings.driver_name, policy=policy,
                                     device_if_name=self._if_name)

    def status_writer(self, settings: Settings, kube: KubePart, metrics: Metrics) -> StatusPart:
        return StatusWriter(self._kube(), settings.driver_name,
                            on_retry=metrics.observe_status_retry)

    def attacher(self, settings: Settings, claims: ClaimsPart, cni: CNI, status: StatusPart
                 ) -> HandlerPart:
        return Attacher(driver=settings.driver_name, state=claims, cni=cni, status=status,
                        events=status)

    def inventory(self, settings: Settings) -> InventoryPart:
        self._inventory = Inventory(
            include_default_route_uplink=settings.include_default_route_uplink,
            poll_seconds=settings.inventory_poll_seconds,
        )
        return self._inventory

    def publisher(self, settings: Settings, kube: KubePart) -> PublisherPart:
        return Publisher(self._kube(), driver=settings.driver_name,
                         node_name=settings.node_name, device_filter=settings.device_filter)

    def kubelet(self, settings: Settings, claims: ClaimPreparer, health: HealthSource
                ) -> KubeletPart:
        return KubeletPlugin(
            driver=settings.driver_name, node_name=settings.node_name, claims=claims,
            health=health, registry_dir=settings.kubelet_registry_dir,
            plugin_dir=settings.plugin_dir, rolling_update_pod_uid=settings.rolling_update_pod_uid,
        )

    def nri(self, settings: Settings, handler: HandlerPart, metrics: Metrics) -> NRIPart:
        return NRIPlugin(handler, socket_path=settings.nri_socket, name=settings.nri_plugin_name,
                         index=settings.nri_plugin_index, on_hook=metrics.observe_hook)
