"""``Driver``: the one place that wires the daemon, runs it and stops it in order.

Start order (each step only after the previous one succeeded):

1. logging (text or JSON lines, level) and the device filter compiled (a bad CEL filter is a
   ``ConfigError`` before anything connects);
2. ``Metrics`` + ``HealthServer`` (``/healthz``, ``/readyz``, ``/metrics``);
3. kube client (discovery picks resource.k8s.io v1 or v1beta1);
4. ``CNIRuntime`` (exec latency observed), ``ClaimState`` (checkpoint), ``StatusWriter`` (root
   task ``status-writer``), ``Attacher``;
5. ``Inventory`` (root task ``inventory``) + ``Publisher`` (root task ``publisher``);
6. ``KubeletPlugin`` (registration + DRA + health stream from the inventory);
7. ``NRIPlugin`` (root task ``nri``) with the attacher as its handler.

Readiness (``/readyz``): ``kubelet-registered`` and ``nri-connected`` and ``slices-published``.

Stop (SIGTERM/SIGINT, ``request_stop()``, or a root task that ended): the kubelet plugin
(sockets removed, so no new prepare arrives), in-flight NRI hooks drained, the NRI plugin, the
status writer drained, inventory and publisher; the slices are left in place (the kubelet wipes
them 30 s after the plugin is gone, and a restarted driver rewrites them without churn) unless
``cleanup_on_exit`` (uninstall) deletes them; then the kube client, then the health server.
Every step is bounded by ``shutdown_timeout``; a failing step is logged and the next one runs.

Exit codes: 0 after a requested stop, 1 when a root task ended on its own or the start failed;
a ``ConfigError`` at start propagates (the CLI prints it and exits 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import IO

from cnidra.attach import CNI
from cnidra.errors import ConfigError
from cnidra.publishing import compile_filter
from cnidra.runtime._health import HealthServer
from cnidra.runtime._logging import setup_logging
from cnidra.runtime._metrics import Metrics
from cnidra.runtime._observe import ObservedClaims, ObservedHandler
from cnidra.runtime._parts import (
    Builder,
    ClaimsPart,
    InventoryPart,
    KubeletPart,
    KubePart,
    NRIPart,
    PublisherPart,
    StatusPart,
)
from cnidra.runtime._settings import Settings, describe
from cnidra.runtime._tasks import RootTasks
from cnidra.runtime._wiring import ProductionBuilder

log = logging.getLogger("cnidra.driver")

EXIT_OK = 0
EXIT_FAILED = 1

READINESS = ("kubelet-registered", "nri-connected", "slices-published")
SHUTDOWN_ORDER = ("kubelet", "nri-drain", "nri", "status-writer", "publisher", "inventory",
                  "kube", "health")


class Driver:
    """Wires and runs one node's driver. ``await Driver(settings).run()`` is the daemon."""

    def __init__(
        self, settings: Settings, *, builder: Builder | None = None,
        metrics: Metrics | None = None, configure_logging: bool = True,
        log_stream: IO[str] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._builder = builder
        self._configure_logging = configure_logging
        self._log_stream = log_stream
        self.tasks = RootTasks()
        self.health: HealthServer | None = None
        self.kube: KubePart | None = None
        self.cni: CNI | None = None
        self.claims: ClaimsPart | None = None
        self.status: StatusPart | None = None
        self.handler: ObservedHandler | None = None
        self.inventory: InventoryPart | None = None
        self.publisher: PublisherPart | None = None
        self.kubelet: KubeletPart | None = None
        self.nri: NRIPart | None = None
        self.stopped_steps: list[str] = []
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._shut_down = False
        self._signals: list[int] = []

    # --- readiness --------------------------------------------------------------------------

    def readiness(self) -> dict[str, bool]:
        """Each readiness check by name (all must be True for ``/readyz``)."""
        return {
            "kubelet-registered": self.kubelet is not None and self.kubelet.registered,
            "nri-connected": self.nri is not None and self.nri.connected,
            "slices-published": self.publisher is not None and self.publisher.published,
        }

    def _attachment_count(self) -> float:
        return len(self.claims.all_attachments()) if self.claims is not None else 0

    def _published_count(self) -> float:
        return self.publisher.device_count if self.publisher is not None else 0

    def _check(self, name: str) -> bool:
        return self.readiness()[name]

    @property
    def ready(self) -> bool:
        return all(self.readiness().values())

    # --- lifecycle --------------------------------------------------------------------------

    def request_stop(self, reason: str = "requested") -> None:
        """Ask ``run()`` to shut down (signal handlers call this)."""
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()

    async def start(self) -> None:
        """Build and start every part in order. On any failure, what was started is stopped
        again (in order) and the error propagates."""
        s = self.settings
        if self._configure_logging:
            setup_logging(s.log_level, s.log_format, self._log_stream)
        try:
            await self._start(s)
        except BaseException:
            await self.shutdown()
            raise

    async def _start(self, s: Settings) -> None:
        s.validate()
        if s.device_filter:
            try:
                compile_filter(s.device_filter)
            except ConfigError as exc:
                raise ConfigError(exc.message, "device-filter") from exc
        log.info("starting cnidra driver %s on node %s", s.driver_name, s.node_name)
        log.debug("settings: %s", ", ".join(f"{k}={v}" for k, v in describe(s)))
        builder = self._builder or ProductionBuilder()
        host, port = s.metrics_host_port()
        self.health = HealthServer(host, port, self.metrics.registry)
        for name in READINESS:
            self.health.add_check(name, functools.partial(self._check, name))
        try:
            await self.health.start()
        except OSError as exc:
            await self.health.stop()
            self.health = None
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                              "metrics-address") from exc

        try:
            self.kube = await builder.kube(s)
        except ConfigError as exc:
            raise ConfigError(str(exc), "kubeconfig") from exc
        log.info("API server: resource.k8s.io/%s (server %s)", self.kube.api.version,
                 self.kube.api.git_version or "unknown")
        self.cni = builder.cni(s, self.metrics.observe_cni_exec)
        self.claims = await builder.claims(s, self.kube)
        self.metrics.bind_attachments(self._attachment_count)
        self.status = builder.status_writer(s, self.kube, self.metrics)
        self.tasks.start("status-writer", self.status.run())
        attacher = builder.attacher(s, self.claims, self.cni, self.status)
        self.handler = ObservedHandler(attacher)

        self.inventory = builder.inventory(s)
        self.publisher = builder.publisher(s, self.kube)
        self.metrics.bind_published_devices(self._published_count)
        self.tasks.start("inventory", self.inventory.run())
        self.tasks.start("publisher", self.publisher.run(self.inventory.subscribe()))

        self.kubelet = builder.kubelet(s, ObservedClaims(self.claims, self.metrics),
                                       self.inventory)
        await self.kubelet.start()
        self.nri = builder.nri(s, self.handler, self.metrics)
        self.tasks.start("nri", self.nri.run())
        log.info("driver started: root tasks %s", ", ".join(self.tasks.names))

    async def wait(self) -> int:
        """Until a stop is requested (0) or a root task ends on its own (1)."""
        stop = asyncio.create_task(self._stop.wait(), name="driver-stop")
        failed = asyncio.create_task(self.tasks.failed.wait(), name="driver-failed")
        try:
            await asyncio.wait({stop, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (stop, failed):
                t.cancel()
            await asyncio.gather(stop, failed, return_exceptions=True)
        if self.tasks.failure is not None:
            name, exc = self.tasks.failure
            log.error("stopping: root task %s %s", name,
                      f"failed: {exc}" if exc is not None else "ended unexpectedly")
            return EXIT_FAILED
        log.info("stopping: %s", self._stop_reason)
        return EXIT_OK

    async def shutdown(self) -> None:
        """Stop everything that was started, in ``SHUTDOWN_ORDER``. Idempotent."""
        if self._shut_down:
            return
        self._shut_down = True
        self.tasks.begin_shutdown()
        timeout = self.settings.shutdown_timeout
        steps: list[tuple[str, Callable[[], Awaitable[object]], object]] = [
            ("kubelet", self._stop_kubelet, self.kubelet),
            ("nri-drain", self._drain_hooks, self.handler),
            ("nri", self._stop_nri, self.nri),
            ("status-writer", self._stop_status, self.status),
            ("publisher", self._stop_publisher, self.publisher),
            ("inventory", self._stop_inventory, self.inventory),
            ("kube", self._close_kube, self.kube),
            ("health", self._stop_health, self.health),
        ]
        for name, step, part in steps:
            if part is None:
                continue
            try:
                async with asyncio.timeout(timeout * 2):
                    await step()
            except TimeoutError:
                log.error("shutdown step %s did not finish within %.1fs", name, timeout * 2)
            except Exception as exc:
                log.error("shutdown step %s failed: %s", name, exc, exc_info=exc)
            self.stopped_steps.append(name)
        await self.tasks.stop_all(timeout=timeout)
        if self.stopped_steps:
            log.info("driver stopped")

    async def _stop_kubelet(self) -> None:
        assert self.kubelet is not None
        await self.kubelet.stop(self.settings.shutdown_timeout)

    async def _drain_hooks(self) -> None:
        assert self.handler is not None
        await self.handler.drain(self.settings.shutdown_timeout)

    async def _stop_inventory(self) -> None:
        await self.tasks.stop("inventory", self.settings.shutdown_timeout)

    async def _close_kube(self) -> None:
        assert self.kube is not None
        await self.kube.close()

    async def _stop_health(self) -> None:
        assert self.health is not None
        await self.health.stop()

    async def _stop_nri(self) -> None:
        assert self.nri is not None
        await self.nri.stop()
        await self.tasks.stop("nri", self.settings.shutdown_timeout)

    async def _stop_status(self) -> None:
        assert self.status is not None
        if not await self.status.drain(self.settings.shutdown_timeout):
            log.warning("status writer not drained within %.1fs",
                        self.settings.shutdown_timeout)
        await self.tasks.stop("status-writer", self.settings.shutdown_timeout)

    async def _stop_publisher(self) -> None:
        assert self.publisher is not None
        await self.tasks.stop("publisher", self.settings.shutdown_timeout)
        if self.settings.cleanup_on_exit:
            await self.publisher.remove_all()
            log.info("removed this node's ResourceSlices (cleanup on exit)")

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self.request_stop, signal.Signals(signum).name)
                self._signals.append(signum)

    def _remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in self._signals:
            loop.remove_signal_handler(signum)
        self._signals.clear()

    async def _start_unless_stopped(self) -> bool:
        """``start()``, abandoned (what started is stopped again) when a stop is requested
        meanwhile, e.g. SIGTERM while the API server is still unreachable. False then."""
        starting = asyncio.create_task(self.start(), name="driver-start")
        stop = asyncio.create_task(self._stop.wait(), name="driver-stop")
        try:
            await asyncio.wait({starting, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            await asyncio.gather(stop, return_exceptions=True)
        if starting.done():
            starting.result()  # raises what start() raised
            return True
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        return False

    async def run(self, *, handle_signals: bool = True) -> int:
        """Start, serve until stopped, shut down in order; the process exit code."""
        if handle_signals:
            self._install_signals()
        try:
            try:
                if not await self._start_unless_stopped():
                    log.info("stopped during start-up: %s", self._stop_reason)
                    return EXIT_OK
            except ConfigError:
                raise
            except Exception as exc:
                log.error("cannot start: %s", exc, exc_info=exc)
                return EXIT_FAILED
            code = await self.wait()
            await self.shutdown()
            return code
        finally:
            if handle_signals:
                self._remove_signals()
