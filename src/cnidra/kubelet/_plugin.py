"""``KubeletPlugin``: the two gRPC servers (registration, DRA + health) on unix sockets, their
socket files and the plugin's lifecycle (new -> running -> stopped)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import stat
from pathlib import Path
from types import TracebackType

import grpc

from cnidra.errors import CnidraError, ConfigError
from cnidra.kubelet import _services
from cnidra.kubelet._paths import DEFAULT_REGISTRY_DIR, SocketPaths, socket_paths
from cnidra.kubelet._proto import (
    dra_v1_pb2_grpc,
    dra_v1beta1_pb2_grpc,
    health_v1alpha1_pb2_grpc,
    pluginregistration_pb2_grpc,
)
from cnidra.kubelet._serialize import CallSerializer
from cnidra.kubelet._services import ClaimPreparer, HealthSource, OnCall

log = logging.getLogger("cnidra.kubelet")

DRA_V1 = "v1.DRAPlugin"
DRA_V1BETA1 = "v1beta1.DRAPlugin"
HEALTH_V1ALPHA1 = "v1alpha1.DRAResourceHealth"


class KubeletPlugin:
    """The kubelet plugin of one driver on one node.

    ``start()`` removes stale sockets, serves DRA v1 + v1beta1 (+ health when ``health`` is given)
    on the DRA socket, then the registration socket, which makes the kubelet register us.
    ``stop()`` removes the registration socket first (the kubelet deregisters), ends the health
    streams, stops both servers within ``grace`` and removes the DRA socket. Each socket is only
    removed while it is still the file we created.
    """

    def __init__(
        self, *, driver: str, node_name: str, claims: ClaimPreparer,
        health: HealthSource | None = None, registry_dir: str = DEFAULT_REGISTRY_DIR,
        plugin_dir: str | None = None, rolling_update_pod_uid: str = "", serialize: bool = True,
        on_call: OnCall | None = None, health_check_timeout: float = 30.0,
        call_timeout: float = 45.0,
    ) -> None:
        if not node_name:
            raise ConfigError("must not be empty", "node_name")
        if health_check_timeout < 1:
            raise ConfigError(f"{health_check_timeout:g}s is too short (>= 1s)",
                              "health_check_timeout")
        self.driver = driver
        self.node_name = node_name
        self.paths: SocketPaths = socket_paths(
            driver, registry_dir=registry_dir, plugin_dir=plugin_dir,
            rolling_update_pod_uid=rolling_update_pod_uid,
        )
        versions = [DRA_V1, DRA_V1BETA1] + ([HEALTH_V1ALPHA1] if health is not None else [])
        self.supported_versions: tuple[str, ...] = tuple(versions)
        self._claims = claims
        self._health = health
        self._serializer = CallSerializer(
            enabled=serialize, lock_path=self.paths.lock if rolling_update_pod_uid else None,
        )
        self._on_call = on_call
        self._health_timeout = health_check_timeout
        self._call_timeout = call_timeout
        self._registration = _services.Registration(
            driver=driver, endpoint=self.paths.dra, versions=versions,
        )
        self._stopping = asyncio.Event()
        self._health_servicer: _services.Health | None = None
        self._dra_server: grpc.aio.Server | None = None
        self._reg_server: grpc.aio.Server | None = None
        self._owned: dict[str, tuple[int, int]] = {}
        self.state = "new"

    # --- what the driver and the tests look at -------------------------------------------

    @property
    def registered(self) -> bool:
        """True after the kubelet's latest NotifyRegistrationStatus said registered."""
        return self._registration.registered

    @property
    def registration_error(self) -> str:
        """The kubelet's reason when its latest NotifyRegistrationStatus rejected us."""
        return self._registration.error

    async def wait_registered(self, timeout: float) -> bool:
        """Wait for the first NotifyRegistrationStatus; ``registered`` then (False on timeout)."""
        try:
            async with asyncio.timeout(timeout):
                await self._registration.notified.wait()
        except TimeoutError:
            return False
        return self.registered

    @property
    def health_streams(self) -> int:
        """Open NodeWatchResources streams."""
        return self._health_servicer.streams if self._health_servicer else 0

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> KubeletPlugin:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on both sockets. ``ConfigError`` when a path is unusable."""
        if self.state != "new":
            raise CnidraError(f"kubelet plugin is {self.state}; create a new one to start again")
        self.state = "starting"
        try:
            await asyncio.to_thread(self._prepare_files)
            self._dra_server = grpc.aio.server()
            core = _services.Core(self._claims, self._serializer,
                                  call_timeout=self._call_timeout, on_call=self._on_call)
            dra_v1_pb2_grpc.add_DRAPluginServicer_to_server(_services.DRAv1(core),
                                                            self._dra_server)
            dra_v1beta1_pb2_grpc.add_DRAPluginServicer_to_server(_services.DRAv1beta1(core),
                                                                 self._dra_server)
            if self._health is not None:
                self._health_servicer = _services.Health(
                    self._health, pool=self.node_name,
                    timeout_seconds=round(self._health_timeout),
                    resend=max(0.5, self._health_timeout / 3), stopping=self._stopping,
                )
                health_v1alpha1_pb2_grpc.add_DRAResourceHealthServicer_to_server(
                    self._health_servicer, self._dra_server)
            await self._listen(self._dra_server, self.paths.dra, "plugin_dir")
            self._reg_server = grpc.aio.server()
            pluginregistration_pb2_grpc.add_RegistrationServicer_to_server(
                self._registration, self._reg_server)
            await self._listen(self._reg_server, self.paths.registration, "registry_dir")
        except BaseException:
            await self._shutdown(0)
            raise
        self.state = "running"
        log.info("kubelet plugin %s serving %s on %s, registration socket %s", self.driver,
                 ", ".join(self.supported_versions), self.paths.dra, self.paths.registration)

    async def stop(self, grace: float = 5.0) -> None:
        """Deregister and stop; in-flight calls get ``grace`` seconds. Idempotent."""
        if self.state in ("new", "stopped"):
            self.state = "stopped"
            return
        await self._shutdown(grace)
        log.info("kubelet plugin %s stopped", self.driver)

    async def _shutdown(self, grace: float) -> None:
        self.state = "stopping"
        self._stopping.set()
        if self._reg_server is not None:
            await asyncio.to_thread(self._remove_own, self.paths.registration)
            await self._reg_server.stop(0)
        if self._dra_server is not None:
            await self._dra_server.stop(grace)
            await asyncio.to_thread(self._remove_own, self.paths.dra)
        await asyncio.to_thread(self._serializer.close)
        self._reg_server = self._dra_server = None
        self.state = "stopped"

    async def _listen(self, server: grpc.aio.Server, path: str, field: str) -> None:
        """Listen on a hidden name beside ``path``, then rename it into place: the switch is
        atomic (no window without a socket, a stale one is simply replaced), the kubelet's
        watcher ignores dotfiles, and grpc's own unlink at shutdown hits the hidden name, so a
        socket another instance has meanwhile put at ``path`` is never removed by us."""
        target = Path(path)
        # Never longer than any name socket_paths picks, so it fits wherever the target does.
        hidden = target.with_name(f".{secrets.token_hex(3)}")
        try:
            server.add_insecure_port(f"unix://{hidden}")
            await server.start()
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {hidden}: {exc}", field) from exc
        try:
            await asyncio.to_thread(hidden.replace, target)
            st = await asyncio.to_thread(os.stat, path)
        except OSError as exc:
            raise ConfigError(f"cannot create {path}: {exc}", field) from exc
        self._owned[path] = (st.st_dev, st.st_ino)

    def _prepare_files(self) -> None:
        """Create the directories, drop stale sockets, open the lock file (worker thread)."""
        for path, field in ((self.paths.dra, "plugin_dir"),
                            (self.paths.registration, "registry_dir")):
            try:
                Path(path).parent.mkdir(mode=0o750, parents=True, exist_ok=True)
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ConfigError(f"cannot use {path}: {exc}", field) from exc
            if not stat.S_ISSOCK(st.st_mode):
                raise ConfigError(f"{path} exists and is not a socket; not removing it", field)
            log.info("removing stale socket %s", path)
            Path(path).unlink()
        try:
            self._serializer.open()
        except OSError as exc:
            raise ConfigError(f"cannot open {self.paths.lock}: {exc}", "plugin_dir") from exc

    def _remove_own(self, path: str) -> None:
        owned = self._owned.pop(path, None)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if owned != (st.st_dev, st.st_ino):
            log.info("%s was replaced by another instance; leaving it", path)
            return
        try:
            Path(path).unlink()
        except OSError as exc:
            log.warning("cannot remove %s: %s", path, exc)
