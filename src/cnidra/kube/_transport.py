"""HTTP transport from a kubeconfig or the in-cluster service account, via lightkube's config.

lightkube parses kubeconfig (contexts, CA data/files, client certs, tokens, exec plugins) and
builds an ``httpx2.AsyncClient`` with TLS and auth. In-cluster, we replace its token auth with
``TokenFileAuth``: projected service-account tokens rotate, so the file is re-read every
``refresh`` seconds and after a 401 (like client-go's cached token source).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from pathlib import Path

import httpx2
from lightkube.config.client_adapter import AsyncClient as AdapterClient
from lightkube.config.client_adapter import ConnectionParams
from lightkube.config.kubeconfig import KubeConfig

from cnidra.errors import ConfigError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class TokenFileAuth(httpx2.Auth):
    """Bearer token from a file, re-read after ``refresh`` seconds and on a 401."""

    def __init__(self, path: Path, refresh: float = 60.0) -> None:
        self._path = path
        self._refresh = refresh
        self._token = ""
        self._read_at = 0.0

    def _load(self) -> str:
        try:
            self._token = self._path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read service account token: {exc}", str(self._path)) from exc
        self._read_at = time.monotonic()
        return self._token

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        if not self._token or time.monotonic() - self._read_at > self._refresh:
            self._load()
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self._load()}"
            yield request


def build_http(
    kubeconfig: Path | None, *, context: str | None = None, timeout: float = 10.0,
    token_refresh: float = 60.0,
) -> tuple[httpx2.AsyncClient, str]:
    """An authenticated client and its default namespace (in-cluster when no kubeconfig)."""
    try:
        if kubeconfig is not None:
            config = KubeConfig.from_file(str(kubeconfig)).get(context_name=context)
        else:
            config = KubeConfig.from_service_account(str(SERVICE_ACCOUNT_DIR)).get()
        if config is None:
            raise ConfigError("the kubeconfig has no usable context", str(kubeconfig or ""))  # noqa: TRY301
        params = ConnectionParams(timeout=httpx2.Timeout(timeout), trust_env=False)
        client: httpx2.AsyncClient = AdapterClient(config, params)
    except ConfigError:
        raise
    except Exception as exc:  # lightkube raises its own ConfigError, KeyError, OSError...
        raise ConfigError(f"cannot load Kubernetes client configuration: {exc}",
                          str(kubeconfig or SERVICE_ACCOUNT_DIR)) from exc
    if kubeconfig is None:
        client.auth = TokenFileAuth(SERVICE_ACCOUNT_DIR / "token", token_refresh)
    return client, str(config.namespace or "default")
