"""``KubeletStandIn``: registration watcher, DRA client and health consumer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

import grpc

from cnidra.errors import CnidraError
from cnidra.kubelet._proto import (
    dra_v1_pb2,
    dra_v1_pb2_grpc,
    dra_v1beta1_pb2,
    dra_v1beta1_pb2_grpc,
    health_v1alpha1_pb2,
    health_v1alpha1_pb2_grpc,
    pluginregistration_pb2,
    pluginregistration_pb2_grpc,
)
from cnidra.model.claims import PreparedDevice, PrepareOutcome
from cnidra.model.devices import Health

log = logging.getLogger("cnidra.sim.kubelet")

KNOWN_SERVICES = ("v1.DRAPlugin", "v1beta1.DRAPlugin")
_BACKOFF_CAP = 8.0


class ClaimLike(Protocol):
    """Anything with a claim's namespace, name and UID (``ClaimRef`` is one)."""

    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def uid(self) -> str: ...


class KubeletCallError(CnidraError):
    """A call the kubelet would report as failed (``code`` is the gRPC status name, or
    ``NOT_REGISTERED`` when no plugin of the driver is registered)."""

    def __init__(self, message: str, code: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass
class RegisteredPlugin:
    """One registered plugin: what GetInfo said and the service the stand-in chose."""

    driver: str
    socket: str
    endpoint: str
    service: str
    versions: tuple[str, ...]
    registered_at: float = field(default_factory=time.time)
    _channel: grpc.aio.Channel | None = field(default=None, repr=False)
    _health_task: asyncio.Task[None] | None = field(default=None, repr=False)


class KubeletStandIn:
    """The kubelet's side of the plugin protocols for one node. ``async with`` or start/stop."""

    def __init__(
        self, registry_dir: str, *, node_name: str, poll_interval: float = 0.05,
        get_info_timeout: float = 1.0, notify_timeout: float = 5.0, call_timeout: float = 45.0,
        dial_timeout: float = 10.0, health_retry: float = 5.0,
    ) -> None:
        self.registry_dir = registry_dir
        self.node_name = node_name
        self._poll = poll_interval
        self._get_info_timeout = get_info_timeout
        self._notify_timeout = notify_timeout
        self._call_timeout = call_timeout
        self._dial_timeout = dial_timeout
        self._health_retry = health_retry
        self.plugins: dict[str, RegisteredPlugin] = {}
        self.rejections: list[tuple[str, str]] = []  # (socket, reason), in order
        self._health: dict[str, dict[str, tuple[Health, str]]] = {}
        self._changed = asyncio.Condition()
        self._sockets: dict[str, tuple[int, int]] = {}
        self._registering: dict[str, asyncio.Task[None]] = {}
        self._watcher: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> KubeletStandIn:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="sim-kubelet-watch")

    async def stop(self) -> None:
        tasks = [t for t in (self._watcher, *self._registering.values()) if t is not None]
        self._watcher = None
        self._registering.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for driver in list(self.plugins):
            await self._deregister(driver)
        self._sockets.clear()

    # --- what tests and the demo use ---------------------------------------------------

    async def wait_registered(self, driver: str, timeout: float = 10.0) -> RegisteredPlugin:
        """The registered plugin of ``driver``; ``TimeoutError`` if it does not register."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: driver in self.plugins)
            return self.plugins[driver]

    async def wait_rejected(self, count: int = 1, timeout: float = 10.0) -> list[tuple[str, str]]:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.rejections) >= count)
            return list(self.rejections)

    async def wait_gone(self, driver: str, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: driver not in self.plugins)

    def health(self, driver: str | None = None) -> dict[str, tuple[Health, str]]:
        """The latest health per device name from the plugin's health stream."""
        return dict(self._health.get(self._driver(driver), {}))

    async def wait_health(
        self, predicate: object, *, driver: str | None = None, timeout: float = 10.0,
    ) -> dict[str, tuple[Health, str]]:
        """Wait until ``predicate(health dict)`` is true; returns that dict."""
        assert callable(predicate)
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: bool(predicate(self.health(driver))))
            return self.health(driver)

    async def prepare(
        self, pod_claims: Sequence[ClaimLike], *, driver: str | None = None,
    ) -> dict[str, PrepareOutcome]:
        """One NodePrepareResources for a pod's claims (in order); the answer by claim UID."""
        plugin = self._plugin(driver)
        channel = plugin._channel
        assert channel is not None
        try:
            if plugin.service == "v1.DRAPlugin":
                v1 = dra_v1_pb2_grpc.DRAPluginStub(channel)
                r1 = await v1.NodePrepareResources(dra_v1_pb2.NodePrepareResourcesRequest(
                    claims=[dra_v1_pb2.Claim(namespace=c.namespace, uid=c.uid, name=c.name)
                            for c in pod_claims]), timeout=self._call_timeout)
                return {uid: _outcome(a.error, a.devices, v1=True) for uid, a in r1.claims.items()}
            beta = dra_v1beta1_pb2_grpc.DRAPluginStub(channel)
            r2 = await beta.NodePrepareResources(dra_v1beta1_pb2.NodePrepareResourcesRequest(
                claims=[dra_v1beta1_pb2.Claim(namespace=c.namespace, uid=c.uid, name=c.name)
                        for c in pod_claims]), timeout=self._call_timeout)
            return {uid: _outcome(a.error, a.devices, v1=False) for uid, a in r2.claims.items()}
        except grpc.aio.AioRpcError as exc:
            raise _rpc_error("NodePrepareResources", exc) from exc

    async def unprepare(
        self, pod_claims: Sequence[ClaimLike], *, driver: str | None = None,
    ) -> dict[str, str]:
        """One NodeUnprepareResources for a pod's claims; ``uid -> error`` (empty = done)."""
        plugin = self._plugin(driver)
        channel = plugin._channel
        assert channel is not None
        try:
            if plugin.service == "v1.DRAPlugin":
                v1 = dra_v1_pb2_grpc.DRAPluginStub(channel)
                r1 = await v1.NodeUnprepareResources(dra_v1_pb2.NodeUnprepareResourcesRequest(
                    claims=[dra_v1_pb2.Claim(namespace=c.namespace, uid=c.uid, name=c.name)
                            for c in pod_claims]), timeout=self._call_timeout)
                return {uid: a.error for uid, a in r1.claims.items()}
            beta = dra_v1beta1_pb2_grpc.DRAPluginStub(channel)
            r2 = await beta.NodeUnprepareResources(dra_v1beta1_pb2.NodeUnprepareResourcesRequest(
                claims=[dra_v1beta1_pb2.Claim(namespace=c.namespace, uid=c.uid, name=c.name)
                        for c in pod_claims]), timeout=self._call_timeout)
            return {uid: a.error for uid, a in r2.claims.items()}
        except grpc.aio.AioRpcError as exc:
            raise _rpc_error("NodeUnprepareResources", exc) from exc

    # --- internals -----------------------------------------------------------------------

    def _driver(self, driver: str | None) -> str:
        if driver is not None:
            return driver
        if len(self.plugins) == 1:
            return next(iter(self.plugins))
        raise KubeletCallError(
            f"{len(self.plugins)} DRA drivers are registered; name one", "NOT_REGISTERED")

    def _plugin(self, driver: str | None) -> RegisteredPlugin:
        name = self._driver(driver)
        plugin = self.plugins.get(name)
        if plugin is None or plugin._channel is None:
            raise KubeletCallError(f"DRA driver {name} is not registered", "NOT_REGISTERED")
        return plugin

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _watch(self) -> None:
        while True:
            found = await asyncio.to_thread(_scan, self.registry_dir)
            for path, ident in found.items():
                if self._sockets.get(path) != ident:
                    if path in self._sockets:
                        log.info("socket %s was replaced", path)
                        await self._forget_socket(path)
                    self._sockets[path] = ident
                    self._registering[path] = asyncio.create_task(
                        self._register(path), name=f"sim-kubelet-register {path}")
            for path in [p for p in self._sockets if p not in found]:
                log.info("socket %s removed", path)
                await self._forget_socket(path)
            await asyncio.sleep(self._poll)

    async def _forget_socket(self, path: str) -> None:
        self._sockets.pop(path, None)
        task = self._registering.pop(path, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for driver, plugin in list(self.plugins.items()):
            if plugin.socket == path:
                await self._deregister(driver)

    async def _register(self, path: str) -> None:
        """GetInfo/Notify until registered, with the kubelet's backoff (0.5 s, 1 s, 2 s …)."""
        delay = 0.5
        while True:
            try:
                if await self._register_once(path):
                    return
            except (grpc.aio.AioRpcError, TimeoutError, OSError) as exc:
                log.warning("registration of %s failed: %s", path, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_CAP)

    async def _register_once(self, path: str) -> bool:
        async with grpc.aio.insecure_channel(f"unix://{path}") as reg_channel:
            reg = pluginregistration_pb2_grpc.RegistrationStub(reg_channel)
            info = await reg.GetInfo(pluginregistration_pb2.InfoRequest(),
                                     timeout=self._get_info_timeout)
            endpoint = info.endpoint or path
            reason = self._validate(info, endpoint)
            if reason:
                await self._reject(reg, path, reason)
                return False
            service = next(v for v in info.supported_versions if v in KNOWN_SERVICES)
            channel = grpc.aio.insecure_channel(f"unix://{endpoint}")
            try:
                await asyncio.wait_for(channel.channel_ready(), self._dial_timeout)
            except BaseException:
                await channel.close(None)
                raise
            plugin = RegisteredPlugin(info.name, path, endpoint, service,
                                      tuple(info.supported_versions), _channel=channel)
            if info.name in self.plugins:
                await self._deregister(info.name)
            self.plugins[info.name] = plugin
            plugin._health_task = asyncio.create_task(
                self._consume_health(plugin), name=f"sim-kubelet-health {info.name}")
            log.info("Registered DRA plugin %s chosenService=%s endpoint=%s", info.name,
                     service, endpoint)
            try:
                await reg.NotifyRegistrationStatus(
                    pluginregistration_pb2.RegistrationStatus(plugin_registered=True),
                    timeout=self._notify_timeout)
            except grpc.aio.AioRpcError as exc:
                log.warning("NotifyRegistrationStatus to %s failed: %s", path, exc.details())
            await self._notify()
            return True

    def _validate(self, info: pluginregistration_pb2.PluginInfo, endpoint: str) -> str:
        if info.type != "DRAPlugin":
            return (f"RegisterPlugin error -- no handler registered for plugin type: "
                    f"{info.type} at socket {endpoint}")
        if not any(v in KNOWN_SERVICES for v in info.supported_versions):
            theirs = " ".join(json.dumps(v) for v in info.supported_versions)
            ours = " ".join(json.dumps(v) for v in KNOWN_SERVICES)
            return (
                "RegisterPlugin error -- plugin validation failed with err: invalid supported "
                f"gRPC versions of DRA driver plugin {info.name} at endpoint {endpoint}: none "
                f"of services supported by the plugin ([{theirs}]) are supported by the "
                f"kubelet ([{ours}])"
            )
        return ""

    async def _reject(
        self, reg: pluginregistration_pb2_grpc.RegistrationAsyncStub, path: str, reason: str,
    ) -> None:
        log.warning("rejecting plugin at %s: %s", path, reason)
        self.rejections.append((path, reason))
        await self._notify()
        await reg.NotifyRegistrationStatus(
            pluginregistration_pb2.RegistrationStatus(plugin_registered=False, error=reason),
            timeout=self._notify_timeout)

    async def _deregister(self, driver: str) -> None:
        plugin = self.plugins.pop(driver, None)
        if plugin is None:
            return
        log.info("DeRegisterPlugin %s (%s)", driver, plugin.socket)
        if plugin._health_task is not None:
            plugin._health_task.cancel()
            await asyncio.gather(plugin._health_task, return_exceptions=True)
        if plugin._channel is not None:
            await plugin._channel.close(None)
            plugin._channel = None
        self._health.pop(driver, None)
        await self._notify()

    async def _consume_health(self, plugin: RegisteredPlugin) -> None:
        """The kubelet opens the stream on every plugin and retries every 5 s after errors."""
        assert plugin._channel is not None
        stub = health_v1alpha1_pb2_grpc.DRAResourceHealthStub(plugin._channel)
        while True:
            try:
                stream = stub.NodeWatchResources(health_v1alpha1_pb2.NodeWatchResourcesRequest())
                try:
                    async for message in stream:
                        self._health[plugin.driver] = {
                            d.device.device_name: (Health(d.health), d.message)
                            for d in message.devices
                        }
                        await self._notify()
                finally:
                    stream.cancel()
            except grpc.aio.AioRpcError as exc:
                log.debug("health stream of %s: %s %s", plugin.driver, exc.code().name,
                          exc.details())
            await asyncio.sleep(self._health_retry)


def _outcome(
    error: str, devices: Sequence[dra_v1_pb2.Device | dra_v1beta1_pb2.Device], *, v1: bool,
) -> PrepareOutcome:
    if error:
        return PrepareOutcome(error=error)
    return PrepareOutcome(tuple(
        PreparedDevice(
            tuple(d.request_names), d.pool_name, d.device_name, tuple(d.cdi_device_ids),
            d.share_id if v1 and isinstance(d, dra_v1_pb2.Device) and d.HasField("share_id")
            else None,
        ) for d in devices
    ))


def _rpc_error(call: str, exc: grpc.aio.AioRpcError) -> KubeletCallError:
    return KubeletCallError(
        f"{call}: rpc error: code = {_go_code(exc.code())} desc = {exc.details()}",
        exc.code().name,
    )


def _go_code(code: grpc.StatusCode) -> str:
    return "".join(part.capitalize() for part in code.name.split("_"))


def _scan(directory: str) -> dict[str, tuple[int, int]]:
    """Unix sockets under ``directory`` (subdirectories too), without dotfiles."""
    found: dict[str, tuple[int, int]] = {}
    with contextlib.suppress(FileNotFoundError):
        for root, dirs, files in os.walk(directory):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if name.startswith("."):
                    continue
                path = str(Path(root) / name)
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    continue
                if stat.S_ISSOCK(st.st_mode):
                    found[path] = (st.st_dev, st.st_ino)
    return found
