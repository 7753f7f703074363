"""The HTTP face of the stand-in: Kubernetes REST paths, bearer-token check, watch streams."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cnidra.errors import KubeAPIError
from cnidra.sim.apiserver import _discovery as disc
from cnidra.sim.apiserver import _errors as err
from cnidra.sim.apiserver._convert import from_storage
from cnidra.sim.apiserver._patch import decode_patch
from cnidra.sim.apiserver._resources import (
    RESOURCE_GROUP,
    TYPES,
    ResourceType,
    field_matcher,
    label_matcher,
)
from cnidra.sim.apiserver._store import Store, Subscription, WatchEvent, Written


@dataclass(frozen=True)
class Target:
    group: str
    version: str
    plural: str
    namespace: str | None
    name: str
    sub: str

    @property
    def resource(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def parse_path(path: str) -> Target | None:
    segs = [s for s in path.split("/") if s]
    if len(segs) >= 3 and segs[0] == "api":
        group, version, rest = "", segs[1], segs[2:]
    elif len(segs) >= 4 and segs[0] == "apis":
        group, version, rest = segs[1], segs[2], segs[3:]
    else:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] != "status":
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return None
    rest += [""] * (3 - len(rest))
    return Target(group, version, rest[0], namespace, rest[1], rest[2])


_DECODER = json.JSONDecoder()


def _skip_ws(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def _value_end(text: str, index: int, path: tuple[Any, ...],
               found: dict[tuple[Any, ...], int]) -> int:
    """End of the JSON value at ``index``; records raw byte sizes of status.devices[i].data."""
    start = index = _skip_ws(text, index)
    if text[index] in "{[":
        closing = "}" if text[index] == "{" else "]"
        index = _skip_ws(text, index + 1)
        position = 0
        while text[index] != closing:
            key: Any = position
            if closing == "}":
                key, index = _DECODER.raw_decode(text, index)
                index = _skip_ws(text, index) + 1  # the colon
            index = _skip_ws(text, _value_end(text, index, (*path, key), found))
            position += 1
            if text[index] == ",":
                index = _skip_ws(text, index + 1)
        end = index + 1
    else:
        end = _DECODER.raw_decode(text, index)[1]
    if len(path) == 4 and path[:2] == ("status", "devices") and path[3] == "data":
        found[path] = len(text[start:end].encode())
    return end


def raw_data_sizes(raw: bytes) -> dict[int, int] | None:
    """Bytes of each ``status.devices[i].data`` as sent (a PUT is checked on those)."""
    found: dict[tuple[Any, ...], int] = {}
    try:
        _value_end(raw.decode(), 0, (), found)
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    return {int(k[2]): v for k, v in found.items()}


def _bookmark(rtype: ResourceType, version: str, rv: int) -> dict[str, Any]:
    """A BOOKMARK object: the Kind's zero value with only the resourceVersion set (a
    ResourceSlice's zero value serialises its required spec fields, as the capture shows)."""
    mark: dict[str, Any] = {"kind": rtype.kind, "apiVersion": rtype.api_version(version),
                            "metadata": {"resourceVersion": str(rv)}}
    if rtype.kind == "ResourceSlice":
        mark["spec"] = {"driver": "", "pool": {"name": "", "generation": 0,
                                               "resourceSliceCount": 0}}
    return mark


def _json(body: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    resp = web.Response(body=json.dumps(body).encode(), status=status,
                        content_type="application/json")
    for text in warnings or []:
        resp.headers.add("Warning", _warn_text(text))
    return resp


def _warn_text(text: str) -> str:
    return "299 - " + json.dumps(text)


class Handler:
    """aiohttp request handler bound to a Store."""

    def __init__(self, store: Store, token: str, git_version: str,
                 bookmark_interval: float) -> None:
        self.store = store
        self.token = token
        self.git_version = git_version
        self.bookmark_interval = bookmark_interval

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        try:
            if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
                raise err.unauthorized()
            resp = await self._route(request)
        except KubeAPIError as exc:
            return _json(exc.body, exc.status or 500, self._deprecation(request.path))
        return self._with_deprecation(request, resp)

    def _deprecation(self, path: str) -> list[str]:
        """The deprecation Warning of a non-v1 resource.k8s.io request (errors carry it too)."""
        target = parse_path(path.rstrip("/"))
        if target is None or target.group != RESOURCE_GROUP or target.version == "v1":
            return []
        kind = next((t.kind for t in TYPES if (t.group, t.plural) == (target.group,
                                                                      target.plural)), None)
        if kind is None:
            return []
        return [f"{RESOURCE_GROUP}/{target.version} {kind} is deprecated in v1.35+, "
                "unavailable in v1.38+"]

    def _with_deprecation(self, request: web.Request,
                          resp: web.StreamResponse) -> web.StreamResponse:
        warnings = self._deprecation(request.path)
        if warnings and not resp.prepared:
            rest = resp.headers.getall("Warning", [])
            resp.headers.popall("Warning", None)
            for text in [*(_warn_text(w) for w in warnings), *rest]:
                resp.headers.add("Warning", text)
        return resp

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/")
        served = self.store.served
        static: dict[str, Any] = {
            "/version": disc.version_info(self.git_version), "/api": disc.core_versions(),
            "/apis": disc.group_list(served), f"/apis/{RESOURCE_GROUP}": disc.group(served),
            "/api/v1": disc.resource_list("", "v1"),
            **{f"/apis/{RESOURCE_GROUP}/{v}": disc.resource_list(RESOURCE_GROUP, v)
               for v in served},
        }
        if path in static and request.method == "GET":
            return _json(static[path])
        target = parse_path(path)
        if target is None or not target.plural:
            raise err.status_error(404, "NotFound", "the server could not find the requested "
                                   "resource", {})
        if request.method == "GET":
            return await self._read(request, target)
        if request.method == "DELETE":
            return self._delete(request, target)
        return await self._write(request, target)

    async def _read(self, request: web.Request, target: Target) -> web.StreamResponse:
        query = request.query
        if target.name:
            return _json(self.store.get(target.resource, target.name, target.namespace,
                                        version=target.version))
        if query.get("watch") in {"1", "true"}:
            return await self._watch(request, target)
        return _json(self.store.list(
            target.resource, target.namespace, version=target.version,
            label_selector=query.get("labelSelector", ""),
            field_selector=query.get("fieldSelector", "")))

    def _delete(self, request: web.Request, target: Target) -> web.Response:
        query = request.query
        if target.name:
            return _json(self.store.delete(target.resource, target.name, target.namespace,
                                           version=target.version))
        return _json(self.store.delete_collection(
            target.resource, target.namespace, version=target.version,
            label_selector=query.get("labelSelector", ""),
            field_selector=query.get("fieldSelector", "")))

    async def _write(self, request: web.Request, target: Target) -> web.Response:
        query = request.query
        raw = await request.read()
        common: dict[str, Any] = {"version": target.version,
                                  "field_manager": query.get("fieldManager", ""),
                                  "dry_run": query.get("dryRun") == "All"}
        strict = query.get("fieldValidation") == "Strict"
        written: Written
        if request.method == "PATCH" and target.name:
            body = decode_patch(request.headers.get("Content-Type", ""), raw)
            written = self.store.patch(target.resource, target.name, body,
                                       request.headers.get("Content-Type", "").split(";")[0],
                                       target.namespace, subresource=target.sub,
                                       force=query.get("force") == "true", **common)
            return _json(written.obj, 200, written.warnings)
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            raise err.bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc
        if not isinstance(body, dict):
            raise err.bad_request("the body must be a JSON object")
        if request.method == "POST" and not target.name:
            written = self.store.create(target.resource, body, target.namespace, strict=strict,
                                        **common)
            return _json(written.obj, 201, written.warnings)
        if request.method == "PUT" and target.name:
            body.setdefault("metadata", {})["name"] = target.name
            sizes = raw_data_sizes(raw) if target.plural == "resourceclaims" else None
            written = self.store.update(target.resource, body, target.namespace,
                                        subresource=target.sub, strict=strict,
                                        data_sizes=sizes, **common)
            return _json(written.obj, 200, written.warnings)
        raise err.method_not_allowed()

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        query = request.query
        rtype = self.store.resolve(target.resource, target.version)
        by_field = field_matcher(rtype, query.get("fieldSelector", ""), target.version)
        by_label = label_matcher(query.get("labelSelector", ""))
        bookmarks = query.get("allowWatchBookmarks") in {"1", "true"}
        timeout = float(query.get("timeoutSeconds") or 1800)
        sub = self.store.subscribe()
        try:
            since = query.get("resourceVersion", "")
            if since in {"", "0"}:
                initial = [WatchEvent("ADDED", rtype, o, self.store.rv)
                           for o in self.store.select(rtype, target.namespace, "", "")]
                last = self.store.rv
            elif not since.isdigit():
                raise err.bad_request(f"invalid resourceVersion {since!r}")
            else:
                initial = self.store.since(rtype, int(since))
                last = max([int(since)] + [e.rv for e in initial])
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)

            def visible(e: WatchEvent) -> bool:
                ns_ok = not target.namespace or e.obj["metadata"].get("namespace") == \
                    target.namespace
                return e.rtype == rtype and ns_ok and by_field(e.obj) and by_label(e.obj)

            try:
                await self._stream(resp, initial=initial, sub=sub, visible=visible,
                                   rtype=rtype, target=target, last=last, timeout=timeout,
                                   bookmarks=bookmarks)
            except ConnectionError:  # the client went away
                return resp
            with contextlib.suppress(ConnectionError):
                await resp.write_eof()
            return resp
        finally:
            sub.close()

    async def _stream(self, resp: web.StreamResponse, *, initial: list[WatchEvent],
                      sub: Subscription, visible: Callable[[WatchEvent], bool],
                      rtype: ResourceType, target: Target, last: int, timeout: float,
                      bookmarks: bool) -> None:
        for event in initial:
            if visible(event):
                await self._send(resp, event.type, self._render(rtype, event.obj, target))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            wait = min(left, self.bookmark_interval) if bookmarks else left
            try:
                event = await asyncio.wait_for(sub.queue.get(), wait)
            except TimeoutError:
                if bookmarks and loop.time() < deadline:
                    await self._send(resp, "BOOKMARK",
                                     _bookmark(rtype, target.version, self.store.rv))
                continue
            if event.rv > last and visible(event):
                await self._send(resp, event.type, self._render(rtype, event.obj, target))

    @staticmethod
    def _render(rtype: ResourceType, obj: dict[str, Any], target: Target) -> dict[str, Any]:
        return from_storage(obj, rtype.api_version(target.version)) if rtype.group else obj

    @staticmethod
    async def _send(resp: web.StreamResponse, kind: str, obj: dict[str, Any]) -> None:
        await resp.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
