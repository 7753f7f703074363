"""Helpers for the kubelet plugin tests: an in-memory claim reader, a fake health source, a
plugin over the real ClaimState, and gRPC clients from our generated stubs."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from claims.claimkit import DRIVER

from cnidra.claims import ClaimState
from cnidra.errors import NotFoundError
from cnidra.kubelet import KubeletPlugin
from cnidra.kubelet._proto import (
    dra_v1_pb2,
    dra_v1_pb2_grpc,
    dra_v1beta1_pb2,
    dra_v1beta1_pb2_grpc,
    health_v1alpha1_pb2_grpc,
    pluginregistration_pb2_grpc,
)
from cnidra.model.claims import ClaimRef
from cnidra.model.devices import DeviceHealth

NODE = "node1"


class MemoryReader:
    """ResourceClaims and DeviceClasses held in memory (what the API server would answer)."""

    def __init__(self, *claims: dict[str, Any]) -> None:
        self.claims: dict[tuple[str, str], dict[str, Any]] = {}
        self.classes: dict[str, dict[str, Any]] = {}
        for claim in claims:
            self.add(claim)

    def add(self, claim: dict[str, Any]) -> ClaimRef:
        meta = claim["metadata"]
        self.claims[(meta["namespace"], meta["name"])] = claim
        return ClaimRef(meta["namespace"], meta["name"], meta["uid"])

    def delete(self, namespace: str, name: str) -> None:
        del self.claims[(namespace, name)]

    async def get_claim(self, namespace: str, name: str) -> Mapping[str, Any]:
        await asyncio.sleep(0)
        if (namespace, name) not in self.claims:
            raise NotFoundError(f"resourceclaims {name} not found", 404)
        return copy.deepcopy(self.claims[(namespace, name)])

    async def get_device_class(self, name: str) -> Mapping[str, Any]:
        if name not in self.classes:
            raise NotFoundError(f"deviceclasses {name} not found", 404)
        return self.classes[name]


class FakeHealth:
    """A versioned device health list that tests change by hand."""

    def __init__(self, devices: list[DeviceHealth]) -> None:
        self.version = 1
        self.devices = list(devices)
        self.waiters = 0
        self._changed = asyncio.Condition()

    def device_health(self) -> tuple[int, list[DeviceHealth]]:
        return self.version, list(self.devices)

    async def wait_health(
        self, version: int, timeout: float | None = None
    ) -> tuple[int, list[DeviceHealth]]:
        self.waiters += 1
        try:
            async with self._changed:
                try:
                    async with asyncio.timeout(timeout):
                        await self._changed.wait_for(lambda: self.version != version)
                except TimeoutError:
                    pass
                return self.version, list(self.devices)
        finally:
            self.waiters -= 1

    async def set(self, devices: list[DeviceHealth]) -> None:
        async with self._changed:
            self.devices = list(devices)
            self.version += 1
            self._changed.notify_all()


def ref(claim: dict[str, Any]) -> ClaimRef:
    m = claim["metadata"]
    return ClaimRef(m["namespace"], m["name"], m["uid"])


def v1_request(*refs: ClaimRef) -> dra_v1_pb2.NodePrepareResourcesRequest:
    return dra_v1_pb2.NodePrepareResourcesRequest(claims=[
        dra_v1_pb2.Claim(namespace=r.namespace, name=r.name, uid=r.uid) for r in refs
    ])


def v1_unprepare(*refs: ClaimRef) -> dra_v1_pb2.NodeUnprepareResourcesRequest:
    return dra_v1_pb2.NodeUnprepareResourcesRequest(claims=[
        dra_v1_pb2.Claim(namespace=r.namespace, name=r.name, uid=r.uid) for r in refs
    ])


def v1beta1_request(*refs: ClaimRef) -> dra_v1beta1_pb2.NodePrepareResourcesRequest:
    return dra_v1beta1_pb2.NodePrepareResourcesRequest(claims=[
        dra_v1beta1_pb2.Claim(namespace=r.namespace, name=r.name, uid=r.uid) for r in refs
    ])


@dataclass
class Clients:
    """Stubs over one channel per socket, as the kubelet would hold them."""

    registration: pluginregistration_pb2_grpc.RegistrationAsyncStub
    v1: dra_v1_pb2_grpc.DRAPluginAsyncStub
    v1beta1: dra_v1beta1_pb2_grpc.DRAPluginAsyncStub
    health: health_v1alpha1_pb2_grpc.DRAResourceHealthAsyncStub


@asynccontextmanager
async def clients(plugin: KubeletPlugin) -> AsyncIterator[Clients]:
    reg = grpc.aio.insecure_channel(f"unix://{plugin.paths.registration}")
    dra = grpc.aio.insecure_channel(f"unix://{plugin.paths.dra}")
    try:
        yield Clients(
            pluginregistration_pb2_grpc.RegistrationStub(reg),
            dra_v1_pb2_grpc.DRAPluginStub(dra),
            dra_v1beta1_pb2_grpc.DRAPluginStub(dra),
            health_v1alpha1_pb2_grpc.DRAResourceHealthStub(dra),
        )
    finally:
        await reg.close(None)
        await dra.close(None)


@asynccontextmanager
async def running_plugin(
    tmp: Path, reader: MemoryReader, *, health: FakeHealth | None = None,
    state_dir: Path | None = None, **kwargs: Any,
) -> AsyncIterator[tuple[KubeletPlugin, ClaimState, Clients]]:
    """A started plugin over a real ClaimState (checkpoint in ``state_dir``) and its clients."""
    state = await ClaimState.open(str(state_dir or tmp / "state"), reader, driver=DRIVER)
    kwargs.setdefault("registry_dir", str(tmp / "reg"))
    kwargs.setdefault("plugin_dir", str(tmp / "plug"))
    plugin = KubeletPlugin(driver=DRIVER, node_name=NODE, claims=state, health=health, **kwargs)
    await plugin.start()
    try:
        async with clients(plugin) as c:
            yield plugin, state, c
    finally:
        await plugin.stop(grace=1)
