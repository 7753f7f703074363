"""The NRI plugin: one session per runtime connection, reconnected with capped backoff.

A session: connect to the socket, split it with the mux, serve the Plugin service on conn 1
from the start (the runtime may send Configure before it answers RegisterPlugin), register on
conn 2, then answer Configure (pod events only, mask 0x7), Synchronize (echo ``more`` while it
is set; at the end hand every live sandbox, as a ``Sandbox``, to the handler) and the pod
events, which arrive as the dedicated v0.12 RPCs or as StateChange. The runtime never calls
Shutdown; EOF, a protocol error or Shutdown end the session, and the plugin reconnects. A
registration the runtime refuses (bad name or index) closes the connection and ends ``run``
with ``NRIError``.

Hooks are thin: logging, ``on_hook`` and a guard that answers with an error before the
runtime's request deadline (2 s), rather than be disconnected. A RunPodSandbox that misses it is
cancelled (the attacher rolls back); a stop/remove/synchronize goes on in the background
(Synchronize may catch up pods that started while we were down) and ``stop()`` drains it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cnidra.attach import Sandbox
from cnidra.errors import CnidraError, NRIError, ProtocolError
from cnidra.nri._pods import (
    DEFAULT_SOCKET,
    NRI_VERSION,
    PLUGIN_SERVICE,
    POD_EVENTS_MASK,
    RUNTIME_SERVICE,
    check_plugin_id,
    live_sandbox,
    sandbox_from_pod,
)
from cnidra.nri._ports import OnHook, PodHandler
from cnidra.nri._proto import api_pb2 as api
from cnidra.ttrpc import Call, Client, Code, Mux, Server, TTRPCError

log = logging.getLogger(__name__)

_SHUTDOWN_GRACE = 0.2  # lets the Shutdown reply leave before we close
_MIN_BUDGET = 0.05


@dataclass
class _Session:
    request_timeout: float = 2.0
    sync_pods: dict[str, Sandbox] = field(default_factory=dict)
    shutdown: asyncio.Event = field(default_factory=asyncio.Event)


class NRIPlugin:
    """An external NRI plugin that hands pod sandbox events to ``handler``.

    ``run()`` is a root task: it connects, serves and reconnects until ``stop()``. ``connected``
    is True while registered with a runtime (readiness). Waits are bounded: connecting by
    ``connect_timeout``, registering by ``registration_timeout``, each hook by the request's
    deadline less ``hook_margin``; reconnects back off from ``reconnect_min`` to
    ``reconnect_max`` seconds.
    """

    def __init__(
        self, handler: PodHandler, *, socket_path: str = DEFAULT_SOCKET, name: str = "cnidra",
        index: str = "50", reconnect_min: float = 0.2, reconnect_max: float = 10.0,
        connect_timeout: float = 5.0, registration_timeout: float = 5.0,
        hook_margin: float = 0.25, on_hook: OnHook | None = None,
    ) -> None:
        check_plugin_id(name, index)
        if not 0 < reconnect_min <= reconnect_max:
            raise ValueError("need 0 < reconnect_min <= reconnect_max")
        self._handler = handler
        self.socket_path = socket_path
        self.name = name
        self.index = index
        self._reconnect = (reconnect_min, reconnect_max)
        self._connect_timeout = connect_timeout
        self._registration_timeout = registration_timeout
        self._hook_margin = hook_margin
        self._on_hook = on_hook
        self._connected = False
        self._running = False
        self._stopping = asyncio.Event()
        self._mux: Mux | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.registrations = 0  # successful registrations so far (one per session)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def plugin_id(self) -> str:
        return f"{self.index}-{self.name}"

    async def run(self) -> None:
        """Serve runtime connections until ``stop()``; raises ``NRIError`` if the runtime
        refuses our registration."""
        if self._running:
            raise RuntimeError("NRIPlugin.run() is already running")
        self._running = True
        try:
            await self._run()
        finally:
            self._running = False

    async def _run(self) -> None:
        low, high = self._reconnect
        loop = asyncio.get_running_loop()
        delay = low
        while not self._stopping.is_set():
            registered = False
            started = loop.time()
            try:
                registered = await self._session()
            except (OSError, TimeoutError, ProtocolError, TTRPCError) as exc:
                log.warning("NRI: connection to %s failed: %s", self.socket_path, exc)
            if self._stopping.is_set():
                break
            if registered and loop.time() - started > high:
                delay = low  # a healthy session: start over; a flapping one keeps backing off
            pause = delay * random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, high)
            log.info("NRI: reconnecting in %.2fs", pause)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._stopping.wait()
        await self._drain_background()

    async def stop(self) -> None:
        """End ``run()``: close the connection and finish background hook work."""
        self._stopping.set()
        if self._mux is not None:
            await self._mux.close()
        await self._drain_background()

    # --- one connection ---------------------------------------------------------------------

    async def _session(self) -> bool:
        async with asyncio.timeout(self._connect_timeout):
            reader, writer = await asyncio.open_unix_connection(self.socket_path)
        mux = self._mux = Mux(reader, writer)
        session = _Session()
        serving = asyncio.create_task(self._server(session).serve(mux.open(1)),
                                      name="nri-plugin-service")
        client = Client(mux.open(2))
        mux.start()
        try:
            await self._register(client)
            self._connected = True
            self.registrations += 1
            log.info("NRI: registered as %s with the runtime at %s", self.plugin_id,
                     self.socket_path)
            await self._until_done(mux, serving, session)
            return True
        finally:
            self._connected = False
            await mux.close()
            await client.close()
            with contextlib.suppress(ProtocolError, asyncio.CancelledError):
                await serving
            self._mux = None

    async def _register(self, client: Client) -> None:
        req = api.RegisterPluginRequest(plugin_name=self.name, plugin_idx=self.index,
                                        NRI_version=NRI_VERSION)
        try:
            await client.call(RUNTIME_SERVICE, "RegisterPlugin", req, api.Empty,
                              timeout=self._registration_timeout)
        except TTRPCError as exc:
            if exc.code in {Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED}:
                raise
            raise NRIError(f"the runtime refused to register plugin {self.plugin_id}: "
                           f"{exc.message} (code {exc.code})") from exc

    async def _until_done(self, mux: Mux, serving: asyncio.Task[None],
                          session: _Session) -> None:
        waiters = [asyncio.create_task(mux.wait_closed()),
                   asyncio.create_task(session.shutdown.wait()),
                   asyncio.create_task(self._stopping.wait())]
        try:
            await asyncio.wait([serving, *waiters], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        if session.shutdown.is_set():
            log.info("NRI: the runtime asked us to shut down")
            await asyncio.wait([serving], timeout=_SHUTDOWN_GRACE)
        elif mux.error is not None:
            log.warning("NRI: %s", mux.error)
        else:
            log.info("NRI: the runtime closed the connection")

    def _server(self, session: _Session) -> Server:
        server = Server()

        async def configure(req: api.ConfigureRequest, call: Call) -> api.ConfigureResponse:
            if req.request_timeout > 0:
                session.request_timeout = req.request_timeout / 1000
            log.info("NRI: configured by %s %s (NRI %s), request timeout %dms",
                     req.runtime_name, req.runtime_version, req.NRI_version or "< v0.12",
                     req.request_timeout)
            return api.ConfigureResponse(events=POD_EVENTS_MASK)

        async def synchronize(req: api.SynchronizeRequest, call: Call
                              ) -> api.SynchronizeResponse:
            for pod in req.pods:
                sandbox = live_sandbox(pod)
                if sandbox is None:
                    log.warning("NRI: Synchronize: a pod sandbox without an id is ignored")
                    continue
                session.sync_pods[sandbox.id] = sandbox
            if req.more:
                return api.SynchronizeResponse(more=True)
            live = list(session.sync_pods.values())
            session.sync_pods = {}
            await self._guarded_sync(live, call, session)
            return api.SynchronizeResponse(more=False)

        async def shutdown(req: api.Empty, call: Call) -> api.Empty:
            session.shutdown.set()
            return api.Empty()

        async def state_change(req: api.StateChangeEvent, call: Call) -> api.Empty:
            if req.event in _EVENT_NAMES:
                await self._pod_hook(_EVENT_NAMES[req.event], req.pod if req.HasField("pod")
                                     else None, call, session)
            return api.Empty()

        def dedicated(event: str) -> Callable[[Any, Call], Awaitable[api.Empty]]:
            async def hook(req: Any, call: Call) -> api.Empty:
                await self._pod_hook(event, req.pod if req.HasField("pod") else None, call,
                                     session)
                return api.Empty()
            return hook

        server.register(PLUGIN_SERVICE, "Configure", api.ConfigureRequest, configure)
        server.register(PLUGIN_SERVICE, "Synchronize", api.SynchronizeRequest, synchronize)
        server.register(PLUGIN_SERVICE, "Shutdown", api.Empty, shutdown)
        server.register(PLUGIN_SERVICE, "StateChange", api.StateChangeEvent, state_change)
        server.register(PLUGIN_SERVICE, "RunPodSandbox", api.RunPodSandboxRequest,
                        dedicated("RunPodSandbox"))
        server.register(PLUGIN_SERVICE, "StopPodSandbox", api.StopPodSandboxRequest,
                        dedicated("StopPodSandbox"))
        server.register(PLUGIN_SERVICE, "RemovePodSandbox", api.RemovePodSandboxRequest,
                        dedicated("RemovePodSandbox"))
        return server

    # --- hooks ------------------------------------------------------------------------------

    def _budget(self, call: Call, session: _Session) -> float:
        left = call.time_left()
        budget = session.request_timeout if left is None else min(left, session.request_timeout)
        return max(_MIN_BUDGET, budget - self._hook_margin)

    async def _pod_hook(self, event: str, pod: api.PodSandbox | None, call: Call,
                        session: _Session) -> None:
        if pod is None:
            raise TTRPCError(Code.INVALID_ARGUMENT, f"{event}: the request carries no pod")
        try:
            sandbox = sandbox_from_pod(pod)
        except CnidraError as exc:
            raise TTRPCError(Code.INVALID_ARGUMENT, f"{event}: {exc}") from exc
        if event == "RunPodSandbox":
            work: Awaitable[object] = self._handler.run_pod_sandbox(sandbox)
        elif event == "StopPodSandbox":
            work = self._handler.stop_pod_sandbox(sandbox)
        else:
            work = self._handler.remove_pod_sandbox(sandbox)
        what = f"pod {sandbox.pod_namespace}/{sandbox.pod_name} (sandbox {sandbox.id[:13]})"
        await self._guarded(event, what, work, self._budget(call, session),
                            cancel_on_timeout=event == "RunPodSandbox")

    async def _guarded_sync(self, live: list[Sandbox], call: Call, session: _Session
                            ) -> None:
        what = f"{len(live)} live sandbox(es)"
        try:
            await self._guarded("Synchronize", what, self._handler.synchronize(live),
                                self._budget(call, session), cancel_on_timeout=False)
        except TTRPCError as exc:  # our own reconcile: never fail the runtime's Synchronize
            log.warning("NRI: Synchronize reconcile: %s", exc.message)

    async def _guarded(self, event: str, what: str, work: Awaitable[object], budget: float,
                       *, cancel_on_timeout: bool) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        outcome = "error"
        task = asyncio.ensure_future(work)
        try:
            async with asyncio.timeout(budget):
                await asyncio.shield(task)
            outcome = "ok"
            log.info("NRI: %s %s: done in %.3fs", event, what, loop.time() - start)
        except TimeoutError:
            outcome = "timeout"
            self._keep(task)
            if cancel_on_timeout:
                task.cancel()
            log.log(logging.ERROR if cancel_on_timeout else logging.WARNING,
                    "NRI: %s %s: not finished within %.2fs (%s)", event, what, budget,
                    "cancelled" if cancel_on_timeout else "goes on in the background")
            raise TTRPCError(Code.UNKNOWN, f"cnidra: {event} for {what} did not finish within "
                             f"{budget:.2f}s") from None
        except asyncio.CancelledError:
            task.cancel()
            self._keep(task)
            raise
        except CnidraError as exc:
            log.error("NRI: %s %s failed: %s", event, what, exc)
            raise TTRPCError(Code.UNKNOWN, f"cnidra: {event} for {what}: {exc}") from exc
        except Exception as exc:
            log.exception("NRI: %s %s failed unexpectedly", event, what)
            raise TTRPCError(Code.UNKNOWN, f"cnidra: {event} for {what}: "
                             f"{type(exc).__name__}: {exc}") from exc
        finally:
            self._report(event, outcome, loop.time() - start)

    def _report(self, event: str, outcome: str, seconds: float) -> None:
        if self._on_hook is None:
            return
        try:
            self._on_hook(event, outcome, seconds)
        except Exception:
            log.exception("NRI: on_hook callback failed")

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("NRI: background hook work failed: %s", exc)

    async def _drain_background(self, timeout: float = 10.0) -> None:
        if not self._background:
            return
        pending = list(self._background)
        _, late = await asyncio.wait(pending, timeout=timeout)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1.0)


_EVENT_NAMES = {
    api.RUN_POD_SANDBOX: "RunPodSandbox",
    api.STOP_POD_SANDBOX: "StopPodSandbox",
    api.REMOVE_POD_SANDBOX: "RemovePodSandbox",
}
