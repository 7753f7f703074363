"""containerd's side of NRI for the embedded node: listens on a unix socket and drives a plugin.

Per plugin connection: the mux (frames of at most 4096 bytes, as containerd's buffered writer
produces), the Runtime service served on conn 2 (RegisterPlugin), the Plugin service called on
conn 1: Configure (registration_timeout 5000, request_timeout 2000), Synchronize (split into
several calls with ``more`` when ``sync_batch`` is set; a reply that does not echo ``more``
drops the plugin), then pod events. In ``v0.12`` mode the dedicated RPCs are tried first and one
Unimplemented switches the connection to StateChange for every event; ``state-change`` mode is
an older runtime. A request that misses its deadline (2 s), a closed connection or a protocol
error disconnects the plugin and the pod goes on without it, like containerd; any other error
status on RunPodSandbox fails the pod (``PodHookError``). One plugin at a time: a new
connection replaces the previous one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from google.protobuf.message import Message as ProtoMessage

from cnidra.errors import CnidraError, ProtocolError
from cnidra.nri import NRI_VERSION, PLUGIN_SERVICE, RUNTIME_SERVICE, api, event_mask
from cnidra.sim.runtime._pods import SimPod
from cnidra.ttrpc import Call, Client, Code, Mux, MuxConn, Server, TTRPCError

log = logging.getLogger(__name__)

Mode = Literal["v0.12", "state-change"]
M = TypeVar("M", bound=ProtoMessage)
_VALID_EVENTS = (1 << (api.LAST - 1)) - 1  # v0.10+: events 1..14
_NAME_RE = re.compile(r"[A-Za-z0-9_.+-]+")
_METADATA = (("containerd-namespace-ttrpc", "k8s.io"),)
_DEDICATED: dict[api.Event.ValueType, tuple[str, type[ProtoMessage]]] = {
    api.RUN_POD_SANDBOX: ("RunPodSandbox", api.RunPodSandboxRequest),
    api.STOP_POD_SANDBOX: ("StopPodSandbox", api.StopPodSandboxRequest),
    api.REMOVE_POD_SANDBOX: ("RemovePodSandbox", api.RemovePodSandboxRequest),
}


class PodHookError(CnidraError):
    """The plugin answered a pod event with an error status (for RunPodSandbox: the pod fails)."""

    def __init__(self, method: str, code: int, message: str) -> None:
        self.method = method
        self.code = code
        self.message = message
        super().__init__(f"NRI plugin failed {method}: {message} (code {code})")


@dataclass
class _Plugin:
    mux: Mux
    conn: MuxConn  # conn 1, where the runtime is the client
    client: Client
    registered: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    name: str = ""
    index: str = ""
    mask: int = 0
    state_change_only: bool = False
    configured: bool = False


class NRIRuntime:
    """The runtime stand-in. ``start()`` listens; ``run/stop/remove_pod_sandbox`` send the pod
    events to the connected plugin (none connected: the pod goes on, as with containerd)."""

    def __init__(
        self, socket_path: str, *, runtime_name: str = "containerd",
        runtime_version: str = "v2.4.0-cnidra-sim", mode: Mode = "v0.12",
        request_timeout: float = 2.0, registration_timeout: float = 5.0,
        sync_batch: int | None = None, max_frame: int = 4096,
        configure_before_register_reply: bool = False,
    ) -> None:
        self.socket_path = socket_path
        self.runtime_name = runtime_name
        self.runtime_version = runtime_version
        self.mode: Mode = mode
        self.request_timeout = request_timeout
        self.registration_timeout = registration_timeout
        self.sync_batch = sync_batch
        self.max_frame = max_frame
        self.configure_first = configure_before_register_reply
        self.pods: dict[str, SimPod] = {}  # live sandboxes, reported in Synchronize
        self.sent: list[tuple[str, str]] = []  # (method, pod id or "") of every request sent
        self.registrations: list[str] = []  # "<idx>-<name>" of every accepted registration
        self.disconnects: list[str] = []  # why each plugin connection ended
        self._server: asyncio.Server | None = None
        self._plugin: _Plugin | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Condition()

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(_prepare_socket, Path(self.socket_path))
        self._server = await asyncio.start_unix_server(self._accept, path=self.socket_path)
        await asyncio.to_thread(Path(self.socket_path).chmod, 0o600)

    async def close(self) -> None:
        """Stop listening and drop the plugin (the runtime never calls Shutdown)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self.disconnect_plugin("runtime stopped")
        sessions = list(self._sessions)
        for task in sessions:
            task.cancel()
        if sessions:
            await asyncio.gather(*sessions, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await server.wait_closed()
        await asyncio.to_thread(Path(self.socket_path).unlink, missing_ok=True)

    async def restart(self) -> None:
        """A runtime restart: the plugin loses its connection and must re-register."""
        await self.close()
        await self.start()

    async def __aenter__(self) -> NRIRuntime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def plugin_ready(self) -> bool:
        """A plugin is registered, configured and synchronized."""
        return self._plugin is not None and self._plugin.ready.is_set()

    async def wait_for_plugin(self, timeout: float = 5.0, *, registrations: int = 1) -> None:
        """Until a plugin is ready and at least ``registrations`` were accepted so far."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(
                lambda: self.plugin_ready and len(self.registrations) >= registrations)

    async def disconnect_plugin(self, why: str = "disconnected by the runtime") -> None:
        plugin, self._plugin = self._plugin, None
        if plugin is not None:
            self.disconnects.append(why)
            log.info("sim runtime: plugin %s-%s disconnected: %s", plugin.index, plugin.name,
                     why)
            await plugin.mux.close()
            await plugin.client.close()
            await self._notify()

    async def call_plugin(self, method: str, request: ProtoMessage, response_type: type[M]
                          ) -> M:
        """Call any Plugin method (tests: Shutdown, which containerd never sends, or methods
        the plugin does not implement)."""
        plugin = self._plugin
        if plugin is None:
            raise RuntimeError("no plugin connected")
        return await self._call(plugin, method, request, response_type)

    async def send_raw(self, data: bytes) -> None:
        """Write raw bytes to the plugin on conn 1, in mux frames (tests: malformed input)."""
        plugin = self._plugin
        if plugin is None:
            raise RuntimeError("no plugin connected")
        await plugin.conn.write(data)

    # --- pod events -------------------------------------------------------------------------

    async def run_pod_sandbox(self, pod: SimPod) -> None:
        """Report a new sandbox (after the primary network is set up). Raises ``PodHookError``
        when the plugin fails it: the pod does not start and is forgotten."""
        self.pods[pod.id] = pod
        try:
            await self._event(api.RUN_POD_SANDBOX, pod.to_proto())
        except PodHookError:
            self.pods.pop(pod.id, None)
            raise

    async def stop_pod_sandbox(self, pod: SimPod) -> None:
        """Report a stop (before the primary network is torn down). containerd only logs an
        error here; the stand-in raises ``PodHookError`` and the caller decides."""
        await self._event(api.STOP_POD_SANDBOX, pod.to_proto(stopped=True))

    async def remove_pod_sandbox(self, pod: SimPod) -> None:
        """Report a removal (the netns is gone: no network entry)."""
        self.pods.pop(pod.id, None)
        await self._event(api.REMOVE_POD_SANDBOX, pod.to_proto(removed=True))

    async def _event(self, event: api.Event.ValueType, pod: api.PodSandbox) -> None:
        plugin = self._plugin
        if plugin is None or not plugin.ready.is_set():
            return
        if plugin.mask and not plugin.mask & event_mask(event):
            return
        method, request_type = _DEDICATED[event]
        if self.mode == "v0.12" and not plugin.state_change_only:
            try:
                await self._call(plugin, method, request_type(pod=pod), api.Empty,
                                 pod_id=pod.id, metadata=_METADATA)
            except TTRPCError as exc:
                if exc.code != Code.UNIMPLEMENTED:
                    self._failed(plugin, method, exc)
                    return
                log.warning("sim runtime: NRI plugin uses a deprecated interface: it does not "
                            "implement a dedicated %s RPC call", method)
                plugin.state_change_only = True
            else:
                return
        try:
            await self._call(plugin, "StateChange", api.StateChangeEvent(event=event, pod=pod),
                             api.Empty, pod_id=pod.id, metadata=_METADATA)
        except TTRPCError as exc:
            self._failed(plugin, method, exc)

    def _failed(self, plugin: _Plugin, method: str, exc: TTRPCError) -> None:
        """A deadline or a lost connection disconnects the plugin and the pod goes on; any
        other error status raises ``PodHookError``."""
        if exc.code not in {Code.DEADLINE_EXCEEDED, Code.UNAVAILABLE}:
            raise PodHookError(method, exc.code, exc.message) from exc
        if self._plugin is plugin:
            task = asyncio.create_task(self.disconnect_plugin(f"{method}: {exc.message}"))
            self._sessions.add(task)  # awaited by close() if still running
            task.add_done_callback(self._sessions.discard)

    async def _call(self, plugin: _Plugin, method: str, request: ProtoMessage,
                    response_type: type[M], *, pod_id: str = "",
                    metadata: tuple[tuple[str, str], ...] = ()) -> M:
        self.sent.append((method, pod_id))
        return await plugin.client.call(PLUGIN_SERVICE, method, request, response_type,
                                        timeout=self.request_timeout, metadata=metadata)

    # --- one plugin connection --------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            await self._serve_plugin(reader, writer)
        finally:
            self._sessions.discard(task)

    async def _serve_plugin(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        await self.disconnect_plugin("replaced by a new plugin connection")
        mux = Mux(reader, writer, max_frame=self.max_frame)
        conn = mux.open(1)
        plugin = _Plugin(mux, conn, Client(conn))
        self._plugin = plugin
        serving = asyncio.create_task(self._runtime_service(plugin).serve(mux.open(2)))
        mux.start()
        try:
            try:
                async with asyncio.timeout(self.registration_timeout):
                    await plugin.registered.wait()
            except TimeoutError:
                await self._drop(plugin, "not registered within the registration timeout")
                return
            await self._configure(plugin)
            await self._synchronize(plugin)
            plugin.ready.set()
            await self._notify()
            await mux.wait_closed()
            await self._drop(plugin, "connection closed" if mux.error is None else
                             f"protocol error: {mux.error}")
        except (TTRPCError, ProtocolError, _Dropped) as exc:
            await self._drop(plugin, str(exc))
        finally:
            await mux.close()
            await plugin.client.close()
            with contextlib.suppress(ProtocolError):
                await serving

    async def _drop(self, plugin: _Plugin, why: str) -> None:
        if self._plugin is plugin:
            await self.disconnect_plugin(why)

    def _runtime_service(self, plugin: _Plugin) -> Server:
        server = Server()

        async def register(req: api.RegisterPluginRequest, call: Call) -> api.Empty:
            if not (len(req.plugin_idx) == 2 and req.plugin_idx.isdigit()):
                raise TTRPCError(Code.UNKNOWN, f"invalid plugin index {req.plugin_idx!r}: "
                                 "must be two digits")
            if not _NAME_RE.fullmatch(req.plugin_name):
                raise TTRPCError(Code.UNKNOWN, f"invalid plugin name {req.plugin_name!r}")
            plugin.name, plugin.index = req.plugin_name, req.plugin_idx
            self.registrations.append(f"{req.plugin_idx}-{req.plugin_name}")
            log.info("sim runtime: plugin %s-%s registered (NRI %s)", req.plugin_idx,
                     req.plugin_name, req.NRI_version or "?")
            if self.configure_first:  # containerd may configure before it answers
                await self._configure(plugin)
            plugin.registered.set()
            return api.Empty()

        server.register(RUNTIME_SERVICE, "RegisterPlugin", api.RegisterPluginRequest, register)
        return server

    async def _configure(self, plugin: _Plugin) -> None:
        if plugin.configured:
            return
        plugin.configured = True
        req = api.ConfigureRequest(
            runtime_name=self.runtime_name, runtime_version=self.runtime_version,
            registration_timeout=int(self.registration_timeout * 1000),
            request_timeout=int(self.request_timeout * 1000), NRI_version=NRI_VERSION)
        resp = await self._call(plugin, "Configure", req, api.ConfigureResponse)
        if resp.events & ~_VALID_EVENTS:
            raise _Dropped(f"invalid plugin events 0x{resp.events:x}")
        plugin.mask = resp.events  # 0: every event

    async def _synchronize(self, plugin: _Plugin) -> None:
        pods = [p.to_proto() for p in self.pods.values()]
        size = self.sync_batch or max(1, len(pods))
        batches = [pods[i:i + size] for i in range(0, len(pods), size)] or [[]]
        for n, batch in enumerate(batches):
            more = n < len(batches) - 1
            resp = await self._call(plugin, "Synchronize",
                                    api.SynchronizeRequest(pods=batch, more=more),
                                    api.SynchronizeResponse)
            if resp.more != more:
                raise _Dropped(f"Synchronize reply has more={resp.more}, request had {more}")

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def _prepare_socket(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)


class _Dropped(Exception):  # noqa: N818 - internal signal: drop the plugin
    pass
