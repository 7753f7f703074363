"""One HTTP round trip to the API server: timeouts, Warning headers, error mapping."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2
from lightkube.core.exceptions import ConfigError as LightkubeConfigError

from cnidra.errors import ConflictError, KubeAPIError, NotFoundError

log = logging.getLogger(__name__)


@dataclass
class Reply:
    """A decoded JSON body and the server's Warning headers."""

    body: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def map_error(status: int, text: str, what: str) -> KubeAPIError:
    """A ``cnidra.errors`` exception for an error response (Status body when there is one)."""
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("message") or text[:200] or f"HTTP {status}")
    reason = str(body.get("reason") or "")
    if status == 404:
        return NotFoundError(f"{what}: {message}", status, reason or "NotFound", body)
    if status == 409:
        return ConflictError(f"{what}: {message}", status, reason or "Conflict", body)
    return KubeAPIError(f"{what}: {message}", status, reason, body)


class Transport:
    """Sends requests with a per-call deadline and maps every failure into cnidra.errors."""

    def __init__(self, http: httpx2.AsyncClient, timeout: float) -> None:
        self.http = http
        self.timeout = timeout
        self.sent = 0  # requests sent (watch streams included)
        self._warned: set[str] = set()

    async def send(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None,
        body: Any = None, content_type: str = "application/json", timeout: float | None = None,
    ) -> Reply:
        what = f"{method} {path}"
        self.sent += 1
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Accept": "application/json"}
        if content is not None:
            headers["Content-Type"] = content_type
        try:
            async with asyncio.timeout(timeout or self.timeout):
                resp = await self.http.request(method, path, params=dict(params or {}),
                                               content=content, headers=headers)
        except TimeoutError as exc:
            raise KubeAPIError(f"{what}: timed out after {timeout or self.timeout:g}s") from exc
        except httpx2.HTTPError as exc:
            raise KubeAPIError(f"{what}: {type(exc).__name__}: {exc}") from exc
        except (LightkubeConfigError, OSError) as exc:  # credentials (exec plugin, token file)
            raise KubeAPIError(f"{what}: cannot authenticate: {exc}") from exc
        warnings = resp.headers.get_list("Warning")
        for text in warnings:
            if text not in self._warned and len(self._warned) < 256:  # each text once
                self._warned.add(text)
                log.warning("API server warning for %s: %s", what, text)
            else:
                log.debug("API server warning for %s: %s", what, text)
        if resp.status_code >= 400:
            raise map_error(resp.status_code, resp.text, what)
        try:
            decoded = resp.json() if resp.content else {}
        except ValueError as exc:
            raise KubeAPIError(f"{what}: response is not JSON", resp.status_code) from exc
        return Reply(decoded if isinstance(decoded, dict) else {}, warnings)

    async def stream(
        self, path: str, params: Mapping[str, str], *, connect_timeout: float | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events (decoded lines) until the server ends the stream."""
        what = f"WATCH {path}"
        self.sent += 1
        timeout = httpx2.Timeout(connect_timeout or self.timeout, read=None)
        try:
            async with self.http.stream("GET", path, params=dict(params),
                                        timeout=timeout) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise map_error(resp.status_code, resp.text, what)
                async for line in resp.aiter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx2.HTTPError as exc:
            raise KubeAPIError(f"{what}: {type(exc).__name__}: {exc}") from exc
        except (LightkubeConfigError, OSError) as exc:
            raise KubeAPIError(f"{what}: cannot authenticate: {exc}") from exc
        except ValueError as exc:
            raise KubeAPIError(f"{what}: bad watch event: {exc}") from exc
