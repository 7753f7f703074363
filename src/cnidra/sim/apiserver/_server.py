"""``ApiServer``: the stand-in's lifecycle, loopback listener and generated kubeconfig."""

from __future__ import annotations

import secrets
import shutil
import socket
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from aiohttp import web

from cnidra.errors import CnidraError
from cnidra.sim.apiserver._http import Handler
from cnidra.sim.apiserver._store import Store


class ApiServer:
    """A small stateful kube-apiserver stand-in on 127.0.0.1 (plain HTTP, bearer token).

    ``served`` lists the resource.k8s.io versions to serve, preferred first: ``("v1beta1",)``
    behaves like a 1.32/1.33 server. ``store`` is the in-process API over the same objects.
    """

    def __init__(self, *, served: tuple[str, ...] = ("v1", "v1beta1", "v1beta2"),
                 git_version: str = "v1.36.2", token: str | None = None,
                 bookmark_interval: float = 1.0, workdir: Path | None = None) -> None:
        self.store = Store(served)
        self.token = token if token is not None else secrets.token_hex(16)
        self.git_version = git_version
        self._bookmark_interval = bookmark_interval
        self._workdir = workdir
        self._own_dir: Path | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.kubeconfig = Path()

    async def start(self) -> None:
        if self._runner is not None:
            raise CnidraError("ApiServer already started")
        app = web.Application(client_max_size=8 * 1024 * 1024)
        handler = Handler(self.store, self.token, self.git_version, self._bookmark_interval)

        async def route(request: web.Request) -> web.StreamResponse:
            return await handler(request)

        app.router.add_route("*", "/{tail:.*}", route)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                               shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        port = sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        if self._workdir is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix="cnidra-apiserver-"))
        directory = self._workdir or self._own_dir
        assert directory is not None
        self.kubeconfig = directory / "kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(self.kubeconfig_dict()))

    async def serve_socket(self, sock: socket.socket) -> str:
        """Also serve on an already bound, listening TCP socket (e.g. one created inside a
        node's network namespace, which the socket keeps); returns its ``http://`` URL."""
        if self._runner is None:
            raise CnidraError("ApiServer not started")
        site = web.SockSite(self._runner, sock)
        await site.start()
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def kubeconfig_dict(self, url: str | None = None) -> dict[str, Any]:
        """The kubeconfig for ``url`` (default: the loopback listener)."""
        return {
            "apiVersion": "v1", "kind": "Config", "current-context": "cnidra-sim",
            "clusters": [{"name": "cnidra-sim", "cluster": {"server": url or self.url}}],
            "users": [{"name": "cnidra-sim", "user": {"token": self.token}}],
            "contexts": [{"name": "cnidra-sim", "context": {
                "cluster": "cnidra-sim", "user": "cnidra-sim", "namespace": "default"}}],
        }

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()
