"""One simulated node for a real ``cnidra driver`` process: reachability and process control.

The API server stand-in listens on the host's loopback, which a node's network namespace cannot
reach; and host-local IPAM writes its leases to ``/var/lib/cni/networks``, which must not be the
host's. This module solves both and runs the driver as a child process inside the node's
namespace, exactly as a DaemonSet pod would run it.

Stable API (the demo, ``cnidra.sim._cluster`` and the driver end-to-end tests use it)::

    listen_in_netns(netns_path, host="127.0.0.1", port=0) -> socket.socket      # blocking
    free_port_in_netns(netns_path, host="127.0.0.1") -> int                      # blocking
    await serve_api_in_netns(api: ApiServer, netns_path) -> str                  # the node's URL
    write_kubeconfig(api: ApiServer, url, path) -> Path
    await http_get_in_netns(netns_path, host, port, path="/", timeout=5.0) -> (status, body)

    paths = DriverPaths.under(root_dir)      # registry/plugin dirs, NRI socket, state, IPAM, log
    proc = DriverProcess(netns="<name>", node_name="node1", kubeconfig=path, paths=paths,
                         metrics_port=port, extra_args=("--log-format", "json"))
    await proc.start(); proc.pid; proc.returncode; proc.log_text()
    await proc.wait_for_log("substring", timeout=10.0)
    code = await proc.stop(timeout=10.0)     # SIGTERM, then SIGKILL after ``timeout``
    async with DriverProcess(...) as proc: ...                 # start / stop

Sockets created inside a namespace keep it: ``listen_in_netns`` creates the socket from a
dedicated thread that has entered the namespace (``cnidra.attach.run_in_netns_blocking``) and the
loop of the calling process then serves it. The driver is started as
``ip netns exec NS sh -c 'mkdir -p /var/lib/cni && mount --bind IPAM /var/lib/cni && exec
cnidra driver …'``: ``ip netns exec`` gives the child its own mount namespace with ``/`` made
rslave, so the bind mount is private to the driver (and vanishes with it) while network
namespaces mounted later under ``/run/netns`` by this process still propagate into it.

Limits: root only; the driver's output (stdout and stderr) goes to ``paths.log`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import yaml

from cnidra.attach import run_in_netns_blocking
from cnidra.errors import CnidraError
from cnidra.sim.apiserver import ApiServer

NETNS_DIR = Path("/run/netns")


class NodeProcessError(CnidraError):
    """The driver process could not be started or did not behave (the log tail is included)."""


def _netns_path(netns: str) -> str:
    return netns if "/" in netns else str(NETNS_DIR / netns)


def listen_in_netns(netns_path: str, host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A bound, listening, non-blocking TCP socket inside the namespace (blocks briefly)."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    return run_in_netns_blocking(_netns_path(netns_path), make)


def free_port_in_netns(netns_path: str, host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` inside the namespace right now."""
    sock = listen_in_netns(netns_path, host, 0)
    try:
        return int(sock.getsockname()[1])
    finally:
        sock.close()


async def serve_api_in_netns(api: ApiServer, netns_path: str) -> str:
    """Serve the (started) API server also on 127.0.0.1 inside the namespace; its URL."""
    sock = await asyncio.to_thread(listen_in_netns, netns_path)
    try:
        return await api.serve_socket(sock)
    except BaseException:
        sock.close()
        raise


def write_kubeconfig(api: ApiServer, url: str, path: Path) -> Path:
    """A kubeconfig for ``url`` with the stand-in's token, written to ``path``."""
    path.write_text(yaml.safe_dump(api.kubeconfig_dict(url)))
    return path


def _connect_in_netns(netns_path: str, host: str, port: int, timeout: float) -> socket.socket:
    def make() -> socket.socket:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setblocking(False)
        return sock

    return run_in_netns_blocking(_netns_path(netns_path), make)


async def http_get_in_netns(
    netns_path: str, host: str, port: int, path: str = "/", timeout: float = 5.0
) -> tuple[int, str]:
    """``GET path`` over HTTP/1.0 from inside the namespace: (status code, body)."""
    async with asyncio.timeout(timeout):
        sock = await asyncio.to_thread(_connect_in_netns, netns_path, host, port, timeout)
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode())
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise NodeProcessError(f"GET {path}: not an HTTP answer: {raw[:80]!r}")
    return int(status_line[1]), body.decode(errors="replace")


@dataclass(frozen=True)
class DriverPaths:
    """Every on-disk location of one driver instance, under one directory."""

    root: Path
    registry_dir: Path
    plugin_dir: Path
    nri_socket: Path
    state_dir: Path
    ipam_dir: Path
    log: Path

    @classmethod
    def under(cls, root: Path) -> DriverPaths:
        """Create the directories below ``root`` (sockets stay short: unix paths <= 107)."""
        paths = cls(root=root, registry_dir=root / "reg", plugin_dir=root / "plugin",
                    nri_socket=root / "nri.sock", state_dir=root / "state",
                    ipam_dir=root / "ipam", log=root / "driver.log")
        for d in (paths.registry_dir, paths.plugin_dir, paths.state_dir, paths.ipam_dir):
            d.mkdir(parents=True, exist_ok=True)
        return paths


def default_executable() -> str:
    """The ``cnidra`` script of the running interpreter's environment."""
    candidate = Path(sys.executable).parent / "cnidra"
    return str(candidate) if candidate.exists() else "cnidra"


class DriverProcess:
    """A ``cnidra driver`` child process inside a node's network namespace."""

    def __init__(
        self, *, netns: str, node_name: str, kubeconfig: Path, paths: DriverPaths,
        metrics_port: int, metrics_host: str = "127.0.0.1",
        extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None,
        executable: str | None = None,
    ) -> None:
        self.netns = netns
        self.node_name = node_name
        self.kubeconfig = kubeconfig
        self.paths = paths
        self.metrics_host = metrics_host
        self.metrics_port = metrics_port
        self.extra_args = tuple(extra_args)
        self.env = dict(env) if env is not None else None
        self.executable = executable or default_executable()
        self._proc: asyncio.subprocess.Process | None = None

    def command(self) -> list[str]:
        """The full command line (``ip netns exec … sh -c … exec cnidra driver …``)."""
        p = self.paths
        driver = [
            self.executable, "driver",
            "--kubeconfig", str(self.kubeconfig), "--node-name", self.node_name,
            "--kubelet-registry-dir", str(p.registry_dir),
            "--kubelet-plugin-dir", str(p.plugin_dir),
            "--nri-socket", str(p.nri_socket), "--state-dir", str(p.state_dir),
            "--metrics-address", f"{self.metrics_host}:{self.metrics_port}",
            *self.extra_args,
        ]
        script = 'mkdir -p /var/lib/cni && mount --bind "$0" /var/lib/cni && exec "$@"'
        return ["ip", "netns", "exec", self.netns, "sh", "-c", script, str(p.ipam_dir), *driver]

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    async def start(self) -> None:
        if self._proc is not None:
            raise NodeProcessError("driver process already started")
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        with self.paths.log.open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command(), stdin=asyncio.subprocess.DEVNULL, stdout=log,
                stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True,
            )

    def log_text(self) -> str:
        try:
            return self.paths.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    async def wait_for_log(self, needle: str, timeout: float = 10.0) -> None:
        """Wait until ``needle`` appears in the log; fails early if the process exits."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while needle not in await asyncio.to_thread(self.log_text):
            if self.returncode is not None:
                raise NodeProcessError(f"driver exited with {self.returncode} before logging "
                                       f"{needle!r}:\n{self.log_tail()}")
            if loop.time() > deadline:
                raise NodeProcessError(f"driver did not log {needle!r} within {timeout}s:\n"
                                       f"{self.log_tail()}")
            await asyncio.sleep(0.05)

    async def wait(self, timeout: float) -> int:
        if self._proc is None:
            raise NodeProcessError("driver process not started")
        async with asyncio.timeout(timeout):
            return await self._proc.wait()

    def signal(self, signum: int) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signum)

    async def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; SIGKILL (whole session) when it has not exited within ``timeout``.

        Returns the exit code (negative: killed by that signal).
        """
        proc = self._proc
        if proc is None:
            raise NodeProcessError("driver process not started")
        if proc.returncode is not None:
            return proc.returncode
        self.signal(signal.SIGTERM)
        try:
            return await self.wait(timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return await proc.wait()

    async def __aenter__(self) -> DriverProcess:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._proc is not None:
            await self.stop()
