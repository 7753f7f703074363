"""List+watch loops: a small ``Reflector`` and the ``ClaimCache`` prepare reads from.

A reflector lists (with a timeout), hands the items over, then watches from the list's
resourceVersion. A watch that ends normally (server timeout) is resumed from the last seen
resourceVersion (bookmarks advance it); a 410 Gone/Expired relists; any other failure waits
with capped, jittered backoff and relists. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from cnidra.errors import CnidraError, KubeAPIError
from cnidra.kube._client import KubeClient, WatchEvent
from cnidra.kube._retry import Backoff

log = logging.getLogger(__name__)
_BACKOFF = Backoff(base=0.2, cap=10.0)

Lister = Callable[[], Awaitable[tuple[list[dict[str, Any]], str]]]
Watcher = Callable[[str], AsyncIterator[WatchEvent]]


class Reflector:
    """Keeps a consumer in sync with a collection: ``on_replace(items)`` after every list,
    ``on_event(event)`` for every ADDED/MODIFIED/DELETED. ``run()`` is a root task."""

    def __init__(
        self, lister: Lister, watcher: Watcher, *,
        on_replace: Callable[[list[dict[str, Any]]], None],
        on_event: Callable[[WatchEvent], None], what: str,
        backoff: Backoff = _BACKOFF, list_timeout: float = 30.0,
        watch_timeout: float = 330.0,
    ) -> None:
        self._list = lister
        self._watch = watcher
        self._on_replace = on_replace
        self._on_event = on_event
        self._what = what
        self._backoff = backoff
        self._list_timeout = list_timeout
        self._watch_timeout = watch_timeout
        self.synced = asyncio.Event()
        self.relists = 0
        self.events = 0
        self.resource_version = ""

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                async with asyncio.timeout(self._list_timeout):
                    items, rv = await self._list()
                self._on_replace(items)
                self.resource_version = rv
                self.relists += 1
                self.synced.set()
                await self._follow()
                failures = 0
            except (CnidraError, TimeoutError) as exc:
                if isinstance(exc, KubeAPIError) and exc.status == 410:
                    log.info("%s: watch expired (%s); relisting", self._what, exc)
                    continue
                delay = self._backoff.delay(failures)
                failures += 1
                log.warning("%s: list/watch failed (%s); retrying in %.1fs", self._what, exc,
                            delay)
                await asyncio.sleep(delay)

    async def _follow(self) -> None:
        """Watch from ``resource_version``, resuming after each normal end, until it fails.
        A 410, or a failure after events arrived, returns (relist at once); a watch that fails
        before delivering anything raises (the caller backs off)."""
        start = self.events
        while True:
            try:
                await self._watch_once()
            except TimeoutError:
                continue  # our guard: the server kept the stream open too long; resume
            except KubeAPIError as exc:
                if exc.status == 410 or self.events > start:
                    log.info("%s: watch ended (%s); relisting", self._what, exc)
                    return
                raise

    async def _watch_once(self) -> None:
        async with asyncio.timeout(self._watch_timeout):
            async for event in self._watch(self.resource_version):
                self.events += 1
                rv = str((event.object.get("metadata") or {}).get("resourceVersion") or "")
                if rv:
                    self.resource_version = rv
                if event.type in {"ADDED", "MODIFIED", "DELETED"}:
                    self._on_event(event)


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _rv(obj: Mapping[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class ClaimCache:
    """ResourceClaims kept in memory by a list+watch; a ``claims.ClaimReader``.

    ``get_claim`` answers from memory when the cache is synced, holds the claim, the UID
    matches (when given) and the claim is allocated; otherwise it GETs the claim (a claim the
    kubelet asks about was just allocated, and the watch may lag behind the scheduler). Objects
    are v1-shaped (see ``KubeClient.get_claim``). ``hits``/``misses`` count answers.

    Limit: an allocated claim that was deallocated and re-allocated under the same UID is
    served as the watch last saw it, so for a moment after such a change a hit may be stale;
    prepare re-reads (``uid=`` or a restart of the call) are cheap misses.
    """

    def __init__(self, client: KubeClient, *, namespace: str | None = None,
                 backoff: Backoff = _BACKOFF, watch_timeout: int = 300,
                 list_timeout: float = 30.0) -> None:
        self._client = client
        self._claims: dict[tuple[str, str], dict[str, Any]] = {}
        self.hits = 0
        self.misses = 0
        self._reflector = Reflector(
            lambda: client.list_claims(namespace),
            lambda rv: client.watch_claims(rv, namespace=namespace,
                                           timeout_seconds=watch_timeout),
            on_replace=self._replace, on_event=self._event, what="claim cache",
            backoff=backoff, list_timeout=list_timeout, watch_timeout=watch_timeout + 30,
        )

    @property
    def synced(self) -> bool:
        return self._reflector.synced.is_set()

    async def wait_synced(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._reflector.synced.wait()
        return self.synced

    async def run(self) -> None:
        """Root task: keep the cache in sync until cancelled."""
        await self._reflector.run()

    def __len__(self) -> int:
        return len(self._claims)

    def _replace(self, items: list[dict[str, Any]]) -> None:
        self._claims = {_key(o): o for o in items}

    def _event(self, event: WatchEvent) -> None:
        key = _key(event.object)
        if event.type == "DELETED":
            self._claims.pop(key, None)
            return
        old = self._claims.get(key)
        if old is None or _rv(event.object) >= _rv(old):
            self._claims[key] = event.object

    def peek(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._claims.get((namespace, name))

    async def get_claim(self, namespace: str, name: str, uid: str | None = None
                        ) -> dict[str, Any]:
        cached = self._claims.get((namespace, name)) if self.synced else None
        if cached is not None:
            meta_uid = (cached.get("metadata") or {}).get("uid")
            allocated = bool((cached.get("status") or {}).get("allocation"))
            if allocated and (uid is None or uid == meta_uid):
                self.hits += 1
                return cached
        self.misses += 1
        fresh = await self._client.get_claim(namespace, name)
        old = self._claims.get((namespace, name))
        if old is None or _rv(fresh) >= _rv(old):
            self._claims[(namespace, name)] = fresh
        return fresh

    async def get_device_class(self, name: str) -> dict[str, Any]:
        return await self._client.get_device_class(name)
