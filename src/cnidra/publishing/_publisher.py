"""``Publisher``: keeps this node's pool on the API server equal to the latest snapshot.

``publish`` lists our slices (``spec.nodeName`` + ``spec.driver``), compares them semantically
with the pool the snapshot yields (quantities by value, device order ignored) and writes only
when they differ: the pool generation is bumped, existing slices are updated in place (PUT with
their resourceVersion), missing ones created, extra ones and slices of other pools of ours on
this node deleted. A 409 (someone changed a slice meanwhile) re-reads and retries, with capped
backoff.

Re-publishing when slices disappear (the kubelet deletes a driver's slices when it starts, an
operator may delete them): ``run`` watches our slices; a change it did not make itself
(a DELETED of a slice it did not delete, or a write whose resourceVersion is not one it got
back) wakes a re-check, and a periodic resync (``resync_interval``) re-checks anyway in case a
watch event was lost. A re-check that finds everything in place costs one list and no write.
The watch event of our own create or update often arrives before the write's response (which
carries the resourceVersion we recognise it by): events that come while our writes are in
flight are held until those writes answer, and only the ones that match none of them count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any

from cnidra.errors import CnidraError, KubeAPIError
from cnidra.kube import Backoff, KubeClient, Reflector, WatchEvent
from cnidra.model.devices import Snapshot
from cnidra.publishing._build import Pool, build_pool, pool_matches, slice_object
from cnidra.publishing._filter import CompiledFilter, compile_filter

log = logging.getLogger(__name__)
_BACKOFF = Backoff(base=0.2, cap=10.0, attempts=6)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _generation(obj: Mapping[str, Any]) -> int:
    try:
        return int(((obj.get("spec") or {}).get("pool") or {}).get("generation") or 0)
    except (TypeError, ValueError):
        return 0


class Publisher:
    """Publishes snapshots as this node's ResourceSlices.

    ``device_filter`` is compiled here (``ConfigError`` for a bad expression, so the driver
    stops at start). ``consumable_capacity`` defaults to what the server supports.
    """

    def __init__(
        self, client: KubeClient, *, driver: str, node_name: str, device_filter: str = "",
        consumable_capacity: bool | None = None, max_attachments: int = 1000,
        backoff: Backoff = _BACKOFF, resync_interval: float = 300.0,
        owner_reference: bool = True, write_concurrency: int = 4,
    ) -> None:
        self._client = client
        self._driver = driver
        self._node = node_name
        self._filter: CompiledFilter | None = compile_filter(device_filter)
        self._consumable = consumable_capacity
        self._max_attachments = max_attachments
        self._backoff = backoff
        self._resync = resync_interval
        self._want_owner = owner_reference
        self._concurrency = max(1, write_concurrency)
        self._owner: list[dict[str, Any]] | None = None
        self._lock = asyncio.Lock()
        self._latest: Snapshot | None = None
        self._dirty = asyncio.Event()
        self._own_rvs: deque[str] = deque(maxlen=256)
        self._own_deletes: deque[str] = deque(maxlen=256)
        self._writing = 0  # creates/updates in flight
        self._held: list[WatchEvent] = []  # events that came meanwhile, not yet recognised
        self._logged_excluded: dict[str, str] = {}
        self._published = False
        self._device_count = 0
        self.generation = 0
        self.writes = 0

    # --- state ----------------------------------------------------------------------------

    @property
    def published(self) -> bool:
        """True once the latest snapshot is on the server (readiness)."""
        return self._published

    @property
    def device_count(self) -> int:
        return self._device_count

    @property
    def consumable_capacity(self) -> bool:
        return self._client.api.consumable_capacity if self._consumable is None else (
            self._consumable)

    # --- one publication ------------------------------------------------------------------

    def _pool(self, snapshot: Snapshot) -> Pool:
        pool = build_pool(snapshot, driver=self._driver, node_name=self._node,
                          consumable_capacity=self.consumable_capacity,
                          device_filter=self._filter, max_attachments=self._max_attachments)
        for name, reason in pool.excluded.items():
            if self._logged_excluded.get(name) != reason:
                log.info("device %s not published: %s", name, reason)
        self._logged_excluded = dict(pool.excluded)
        return pool

    async def publish(self, snapshot: Snapshot) -> bool:
        """Make the server's slices match ``snapshot``; True if anything was written.
        ``KubeAPIError`` when it still fails after the retries."""
        self._latest = snapshot
        pool = self._pool(snapshot)
        async with self._lock:
            attempt = 0
            while True:
                try:
                    wrote = await self._publish_once(pool)
                except CnidraError as exc:
                    attempt += 1
                    if not exc.retryable or attempt >= self._backoff.attempts:
                        self._published = False
                        raise
                    delay = self._backoff.delay(attempt - 1)
                    log.info("publishing slices: %s; re-reading and retrying in %.2fs",
                             exc, delay)
                    await asyncio.sleep(delay)
                    continue
                self._published = True
                self._device_count = pool.device_count
                return wrote

    async def _owner_refs(self) -> list[dict[str, Any]]:
        if self._owner is None:
            self._owner = []
            if self._want_owner:
                try:
                    node = await self._client.get_node(self._node)
                    self._owner = [{"apiVersion": "v1", "kind": "Node", "name": self._node,
                                    "uid": str(_meta(node).get("uid")), "controller": True}]
                except KubeAPIError as exc:
                    log.warning("node %s not readable (%s): slices get no owner reference, "
                                "so they are not garbage-collected with the node",
                                self._node, exc)
        return self._owner

    async def _publish_once(self, pool: Pool) -> bool:
        existing, _ = await self._client.list_slices(node_name=self._node, driver=self._driver)
        ours = sorted((s for s in existing
                       if ((s.get("spec") or {}).get("pool") or {}).get("name") == self._node),
                      key=lambda s: str(_meta(s).get("name")))
        strays = [s for s in existing if s not in ours]
        if pool_matches(ours, pool, driver=self._driver, node_name=self._node):
            self.generation = max(self.generation, _generation(ours[0]))
            for obj in strays:
                await self._delete(str(_meta(obj).get("name")))
            return bool(strays)
        generation = max([self.generation, *(_generation(s) for s in existing)]) + 1
        owners = await self._owner_refs()
        count = len(pool.chunks)
        gate = asyncio.Semaphore(self._concurrency)

        async def write(i: int, chunk: tuple[dict[str, Any], ...]) -> None:
            obj = slice_object(chunk, driver=self._driver, node_name=self._node,
                               generation=generation, count=count,
                               api_version=self._client.api.version)
            if owners:
                obj["metadata"]["ownerReferences"] = owners
            async with gate:
                self._writing += 1
                try:
                    if i < len(ours):
                        meta = _meta(ours[i])
                        obj["metadata"].pop("generateName", None)
                        obj["metadata"].update(name=meta.get("name"),
                                               resourceVersion=meta.get("resourceVersion"))
                        written = await self._client.update_slice(
                            obj, field_manager=self._driver)
                    else:
                        written = await self._client.create_slice(
                            obj, field_manager=self._driver)
                    self.writes += 1
                    self._own_rvs.append(str(_meta(written).get("resourceVersion")))
                finally:
                    self._writing -= 1
                    self._settle_held()

        outcomes = await asyncio.gather(*(write(i, c) for i, c in enumerate(pool.chunks)),
                                        return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        for obj in ours[count:] + strays:
            await self._delete(str(_meta(obj).get("name")))
        self.generation = generation
        log.info("published %d device(s) in %d slice(s), pool %s generation %d",
                 pool.device_count, count, self._node, generation)
        return True

    async def _delete(self, name: str) -> None:
        self._own_deletes.append(name)
        await self._client.delete_slice(name)
        self.writes += 1

    async def remove_all(self) -> int:
        """Delete every slice of this driver on this node (clean uninstall); returns how many."""
        async with self._lock:
            existing, _ = await self._client.list_slices(node_name=self._node,
                                                         driver=self._driver)
            for obj in existing:
                await self._delete(str(_meta(obj).get("name")))
            self._published = False
            self._device_count = 0
            return len(existing)

    # --- root task ------------------------------------------------------------------------

    def _on_replace(self, _items: list[dict[str, Any]]) -> None:
        self._dirty.set()

    def _on_event(self, event: WatchEvent) -> None:
        meta = _meta(event.object)
        if event.type == "DELETED":
            if meta.get("name") in self._own_deletes:
                return
        elif self._ours(event):
            return
        elif self._writing:  # may be the echo of a write whose response is still on its way
            self._held.append(event)
            return
        self._foreign(event)

    def _ours(self, event: WatchEvent) -> bool:
        return str(_meta(event.object).get("resourceVersion")) in self._own_rvs

    def _settle_held(self) -> None:
        """After a write answered: drop held events it explains; once no write is in flight,
        the rest were someone else's."""
        self._held = [e for e in self._held if not self._ours(e)]
        if not self._writing:
            held, self._held = self._held, []
            for event in held:
                self._foreign(event)

    def _foreign(self, event: WatchEvent) -> None:
        log.info("slice %s %s by someone else; re-checking the pool",
                 _meta(event.object).get("name"), event.type.lower())
        self._dirty.set()

    async def run(self, snapshots: AsyncIterator[Snapshot]) -> None:
        """Root task: publish every snapshot (the latest wins when they come faster than the
        API server takes them), re-publish when our slices are changed or deleted."""
        reflector = Reflector(
            lambda: self._client.list_slices(node_name=self._node, driver=self._driver),
            lambda rv: self._client.watch_slices(rv, node_name=self._node,
                                                 driver=self._driver),
            on_replace=self._on_replace, on_event=self._on_event, what="slice watch",
        )
        async with asyncio.TaskGroup() as group:
            group.create_task(self._consume(snapshots), name="publisher-snapshots")
            group.create_task(reflector.run(), name="publisher-slice-watch")
            group.create_task(self._loop(), name="publisher-loop")

    async def _consume(self, snapshots: AsyncIterator[Snapshot]) -> None:
        async for snapshot in snapshots:
            self._latest = snapshot
            self._dirty.set()

    async def _loop(self) -> None:
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._resync):
                    await self._dirty.wait()
            self._dirty.clear()
            snapshot = self._latest
            if snapshot is None:
                continue
            try:
                await self.publish(snapshot)
                failures = 0
            except CnidraError as exc:
                delay = self._backoff.delay(failures)
                failures += 1
                log.error("publishing slices failed: %s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                self._dirty.set()
