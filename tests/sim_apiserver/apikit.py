"""A tiny HTTP client for the apiserver stand-in tests, and the 1.36 fixtures they compare with."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from cnidra.sim.apiserver import ApiServer
from support import SHARED

FIX = SHARED / "fixtures" / "apiserver-1.36"
DRIVER = "cni.dra.networking.x-k8s.io"
V1 = "/apis/resource.k8s.io/v1"
V1BETA1 = "/apis/resource.k8s.io/v1beta1"
SSA = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def fixture(name: str) -> Any:
    return json.loads((FIX / name).read_text())


def cases(name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = fixture(name)["cases"]
    return found


@dataclass
class Reply:
    status: int
    body: Any
    warnings: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        return str(self.body.get("message", "")) if isinstance(self.body, dict) else ""


class Client:
    """Raw requests against a running ApiServer (bearer token set)."""

    def __init__(self, server: ApiServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    async def request(self, method: str, path: str, body: Any = None, *,
                      content_type: str = "application/json", raw: bytes | None = None,
                      **query: Any) -> Reply:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Authorization": f"Bearer {self.server.token}", "Content-Type": content_type}
        async with self.session.request(method, self.server.url + path, data=data,
                                        headers=headers, params=query or None) as resp:
            text = await resp.read()
            parsed = json.loads(text) if text else None
            return Reply(resp.status, parsed, resp.headers.getall("Warning", []))

    async def get(self, path: str, **query: Any) -> Reply:
        return await self.request("GET", path, **query)

    async def post(self, path: str, body: Any, **query: Any) -> Reply:
        return await self.request("POST", path, body, **query)

    async def put(self, path: str, body: Any, **query: Any) -> Reply:
        return await self.request("PUT", path, body, **query)

    async def patch(self, path: str, body: Any, content_type: str, **query: Any) -> Reply:
        return await self.request("PATCH", path, body, content_type=content_type, **query)

    async def apply(self, path: str, body: Any, manager: str = DRIVER, *, force: bool = True,
                    **query: Any) -> Reply:
        extra = {"force": "true"} if force else {}
        return await self.patch(path, body, SSA, fieldManager=manager, **extra, **query)


@asynccontextmanager
async def running(**kwargs: Any) -> AsyncIterator[Client]:
    async with ApiServer(**kwargs) as server, aiohttp.ClientSession() as session:
        yield Client(server, session)


def stored(obj: dict[str, Any]) -> dict[str, Any]:
    """A captured object without the server-set metadata a stand-in cannot reproduce."""
    out = copy.deepcopy(obj)
    meta = out.get("metadata", {})
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        meta.pop(key, None)
    return out


def owned_devices(obj: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(manager, operation, owned status.devices keys) of the status-subresource managers."""
    out = []
    for mf in obj["metadata"].get("managedFields") or []:
        devices = ((mf.get("fieldsV1") or {}).get("f:status") or {}).get("f:devices")
        if mf.get("subresource") == "status" and devices:
            out.append((mf["manager"], mf["operation"], sorted(devices)))
    return out


def status_fields(obj: dict[str, Any], manager: str, operation: str) -> dict[str, Any]:
    for mf in obj["metadata"].get("managedFields") or []:
        if (mf["manager"], mf["operation"], mf.get("subresource")) == (manager, operation,
                                                                          "status"):
            fields: dict[str, Any] = mf["fieldsV1"]
            return fields
    raise AssertionError(f"no managedFields entry for {manager} {operation}")


def load_path(name: str) -> Path:
    return FIX / name
