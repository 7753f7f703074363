"""The stand-in's object store: one global resourceVersion, validation, SSA, watch history.

Objects are kept in the v1 storage form and converted on the way in and out. All methods are
synchronous and run on the event loop's thread; watchers get events through ``subscribe()``.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from cnidra.errors import KubeAPIError
from cnidra.sim.apiserver import _errors as err
from cnidra.sim.apiserver._convert import clone, from_storage, to_storage
from cnidra.sim.apiserver._patch import APPLY, JSON_PATCH, json_patch, merge_patch
from cnidra.sim.apiserver._quantity import canonical_quantity
from cnidra.sim.apiserver._resources import (
    RESOURCE_GROUP,
    TYPES,
    ResourceType,
    field_matcher,
    label_matcher,
    lookup,
)
from cnidra.sim.apiserver._ssa import apply_devices, now, sort_managed_fields, update_devices
from cnidra.sim.apiserver._validate_slice import validate_slice, validate_slice_update
from cnidra.sim.apiserver._validate_status import validate_status_devices

_ALNUM = "bcdfghjklmnpqrstvwxz2456789"
_Objects = list[dict[str, Any]]
_Strings = list[str]
_Events = list["WatchEvent"]


@dataclass(frozen=True)
class WatchEvent:
    """A change: ``type`` ADDED/MODIFIED/DELETED, the resource and the stored (v1) object."""

    type: str
    rtype: ResourceType
    obj: dict[str, Any]
    rv: int


@dataclass
class Written:
    """The result of a write: the object (in the request's version) and Warning texts."""

    obj: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


class Subscription:
    """An async iterator of WatchEvents from the moment it was created; ``close()`` when done."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.queue: asyncio.Queue[WatchEvent] = asyncio.Queue()

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[WatchEvent]:
        while True:
            yield await self.queue.get()

    def close(self) -> None:
        self._store.subscribers.discard(self)


def _normalise(obj: dict[str, Any]) -> None:
    kind = obj.get("kind")
    if kind == "ResourceSlice":
        for dev in (obj.get("spec") or {}).get("devices") or []:
            for cap in (dev.get("capacity") or {}).values() if isinstance(dev, dict) else ():
                if isinstance(cap, dict):
                    _norm_capacity(cap)
    elif kind == "ResourceClaim":
        results = (((obj.get("status") or {}).get("allocation") or {}).get("devices") or {})
        for res in results.get("results") or []:
            used = res.get("consumedCapacity") if isinstance(res, dict) else None
            if isinstance(used, dict):
                res["consumedCapacity"] = {k: canonical_quantity(str(v)) for k, v in used.items()}


def _norm_capacity(cap: dict[str, Any]) -> None:
    if "value" in cap:
        cap["value"] = canonical_quantity(str(cap["value"]))
    policy = cap.get("requestPolicy")
    if isinstance(policy, dict):
        if "default" in policy:
            policy["default"] = canonical_quantity(str(policy["default"]))
        if isinstance(policy.get("validValues"), list):
            policy["validValues"] = [canonical_quantity(str(v)) for v in policy["validValues"]]
        rng = policy.get("validRange")
        if isinstance(rng, dict):
            for key in ("min", "max", "step"):
                if key in rng:
                    rng[key] = canonical_quantity(str(rng[key]))


def _fieldset(value: Any) -> Any:
    if isinstance(value, dict):
        return {f"f:{k}": _fieldset(v) for k, v in value.items()}
    return {}


class Store:
    """All objects of the stand-in. ``served`` lists the resource.k8s.io versions served."""

    def __init__(self, served: tuple[str, ...] = ("v1", "v1beta1", "v1beta2"),
                 history: int = 4096) -> None:
        self.served = served
        self.rv = 1
        self.objects: dict[ResourceType, dict[tuple[str, str], dict[str, Any]]] = {}
        self.history: deque[WatchEvent] = deque(maxlen=history)
        self.subscribers: set[Subscription] = set()

    # -- helpers ---------------------------------------------------------------------------
    def resolve(self, resource: str, version: str) -> ResourceType:
        rtype = lookup(resource)
        if version not in rtype.versions or (rtype.group == RESOURCE_GROUP
                                             and version not in self.served):
            raise err.not_found(rtype.plural, rtype.group, "")
        return rtype

    def _bucket(self, rtype: ResourceType) -> dict[tuple[str, str], dict[str, Any]]:
        return self.objects.setdefault(rtype, {})

    def _stored(self, rtype: ResourceType, name: str, namespace: str | None) -> dict[str, Any]:
        obj = self._bucket(rtype).get((namespace or "", name))
        if obj is None:
            raise err.not_found(rtype.plural, rtype.group, name)
        return obj

    def _out(self, rtype: ResourceType, obj: dict[str, Any], version: str) -> dict[str, Any]:
        return from_storage(obj, rtype.api_version(version)) if rtype.group else clone(obj)

    def _commit(self, rtype: ResourceType, obj: dict[str, Any], kind: str) -> None:
        self.rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self.rv)
        key = (meta.get("namespace", ""), meta["name"])
        if kind == "DELETED":
            self._bucket(rtype).pop(key, None)
        else:
            self._bucket(rtype)[key] = obj
        event = WatchEvent(kind, rtype, clone(obj), self.rv)
        self.history.append(event)
        for sub in list(self.subscribers):
            sub.queue.put_nowait(event)

    def _decode(self, rtype: ResourceType, body: dict[str, Any], version: str,
                strict: bool) -> tuple[dict[str, Any], list[str]]:
        warnings: list[str] = []
        body = {**body, "kind": rtype.kind, "apiVersion": rtype.api_version(version)}
        obj, unknown = to_storage(body, rtype.api_version(version)) if rtype.group else (
            clone(body), [])
        if unknown and strict:
            listed = ", ".join(f'unknown field "{u}"' for u in unknown)
            raise err.bad_request(f'{rtype.kind} in version "{version}" cannot be handled as a '
                                  f"{rtype.kind}: strict decoding error: {listed}")
        warnings += [f'unknown field "{u}"' for u in unknown]
        _normalise(obj)
        return obj, warnings

    def _validate(self, rtype: ResourceType, obj: dict[str, Any],
                  old: dict[str, Any] | None) -> None:
        errors = []
        if rtype.kind == "ResourceSlice":
            errors = validate_slice(obj.get("spec"))
            if old is not None:
                errors = validate_slice_update(old, obj) + errors
        if errors:
            raise err.unprocessable(rtype.kind, rtype.group, obj["metadata"]["name"], errors)

    # -- reads -----------------------------------------------------------------------------
    def get(self, resource: str, name: str, namespace: str | None = None, *,
            version: str = "v1") -> dict[str, Any]:
        rtype = self.resolve(resource, version)
        return self._out(rtype, self._stored(rtype, name, namespace), version)

    def list(self, resource: str, namespace: str | None = None, *, version: str = "v1",
             label_selector: str = "", field_selector: str = "") -> dict[str, Any]:
        rtype = self.resolve(resource, version)
        items = [self._out(rtype, o, version)
                 for o in self.select(rtype, namespace, label_selector, field_selector, version)]
        for item in items:
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {"kind": f"{rtype.kind}List", "apiVersion": rtype.api_version(version),
                "metadata": {"resourceVersion": str(self.rv)}, "items": items}

    def select(self, rtype: ResourceType, namespace: str | None, label_selector: str,
               field_selector: str, version: str = "v1") -> _Objects:
        by_field = field_matcher(rtype, field_selector, version)
        by_label = label_matcher(label_selector)
        return [o for (ns, _), o in sorted(self._bucket(rtype).items())
                if (not namespace or ns == namespace) and by_field(o) and by_label(o)]

    # -- writes ----------------------------------------------------------------------------
    def create(self, resource: str, body: dict[str, Any], namespace: str | None = None, *,
               version: str = "v1", field_manager: str = "", dry_run: bool = False,
               strict: bool = False) -> Written:
        rtype = self.resolve(resource, version)
        obj, warnings = self._decode(rtype, body, version, strict)
        meta = obj.setdefault("metadata", {})
        if rtype.namespaced:
            if namespace and meta.get("namespace") not in (None, namespace):
                raise err.bad_request("the namespace of the provided object does not match the "
                                      "namespace sent on the request")
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise err.unprocessable(rtype.kind, rtype.group, "", [err.required(
                    "metadata.name", "name or generateName is required")])
            meta["name"] = meta["generateName"] + "".join(secrets.choice(_ALNUM) for _ in range(5))
        if (meta.get("namespace", ""), meta["name"]) in self._bucket(rtype):
            raise err.already_exists(rtype.plural, rtype.group, meta["name"])
        if rtype.kind == "ResourceClaim":  # status is a struct: always there, empty at first
            obj["status"] = {}
        self._validate(rtype, obj, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now())
        meta.pop("resourceVersion", None)
        if rtype.generation:
            meta["generation"] = 1
        if field_manager:
            fields = {k: _fieldset(v) for k, v in obj.items() if k in {"spec", "data"}}
            meta["managedFields"] = [{
                "manager": field_manager, "operation": "Update",
                "apiVersion": rtype.api_version(version), "time": now(),
                "fieldsType": "FieldsV1", "fieldsV1": {f"f:{k}": v for k, v in fields.items()}}]
        if not dry_run:
            self._commit(rtype, obj, "ADDED")
        return Written(self._out(rtype, obj, version), warnings)

    def load(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Insert a captured object as is (uid, managedFields, status kept); new resourceVersion."""
        api_version = str(obj.get("apiVersion", "v1"))
        group, _, version = api_version.rpartition("/")
        rtype = next(t for t in TYPES if t.group == group and t.kind == obj.get("kind"))
        stored, _ = to_storage(obj, api_version) if group else (clone(obj), [])
        _normalise(stored)
        self._commit(rtype, stored, "ADDED")
        return self._out(rtype, stored, version)

    def update(self, resource: str, body: dict[str, Any], namespace: str | None = None, *,
               subresource: str = "", version: str = "v1", field_manager: str = "",
               dry_run: bool = False, strict: bool = False,
               data_sizes: dict[int, int] | None = None) -> Written:
        rtype = self.resolve(resource, version)
        name = str((body.get("metadata") or {}).get("name") or "")
        old = self._stored(rtype, name, namespace)
        obj, warnings = self._decode(rtype, body, version, strict)
        sent_rv = (obj.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
            raise err.stale(rtype.plural, rtype.group, name)
        new = clone(old)
        if subresource == "status":
            new["status"] = obj.get("status") or {}
        else:
            keep = {k: old["metadata"][k] for k in ("uid", "creationTimestamp", "generation",
                                                    "managedFields", "namespace")
                    if k in old["metadata"]}
            new = {**obj, "metadata": {**(obj.get("metadata") or {}), **keep}}
            if rtype.status and "status" in old:
                new["status"] = old["status"]
            elif rtype.status:
                new.pop("status", None)
        return self._write(rtype, old, new, version=version, manager=field_manager or "unknown",
                           dry_run=dry_run, warnings=warnings, data_sizes=data_sizes)

    def _write(self, rtype: ResourceType, old: dict[str, Any], new: dict[str, Any], *,
               version: str, manager: str, dry_run: bool, warnings: _Strings,
               data_sizes: dict[int, int] | None = None, applied: bool = False) -> Written:
        name = old["metadata"]["name"]
        self._validate(rtype, new, old)
        if rtype.kind == "ResourceClaim":
            status = new.setdefault("status", {})
            deallocated = bool((old.get("status") or {}).get("allocation")) and not status.get(
                "allocation")
            if not deallocated:
                errors = validate_status_devices(status, data_sizes=data_sizes)
                if errors:
                    raise err.unprocessable(rtype.kind, rtype.group, name, errors)
            if not applied:
                update_devices(old, new, manager, api_version=rtype.api_version(version))
            if deallocated:  # the API server drops the entries; stale ownership remains
                status.pop("devices", None)
        if rtype.generation and new.get("spec") != old.get("spec"):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        sort_managed_fields(new["metadata"].get("managedFields") or [])
        if _same(old, new):
            return Written(self._out(rtype, old, version), warnings)
        if not dry_run:
            self._commit(rtype, new, "MODIFIED")
        return Written(self._out(rtype, new, version), warnings)

    def patch(self, resource: str, name: str, body: Any, patch_type: str,
              namespace: str | None = None, *, subresource: str = "", version: str = "v1",
              field_manager: str = "", force: bool = False, dry_run: bool = False) -> Written:
        rtype = self.resolve(resource, version)
        if patch_type == APPLY:
            return self._apply(rtype, name, body, namespace, subresource=subresource,
                               version=version, manager=field_manager, force=force,
                               dry_run=dry_run)
        old = self._stored(rtype, name, namespace)
        current = self._out(rtype, old, version)
        patched = json_patch(current, body) if patch_type == JSON_PATCH else merge_patch(
            current, body)
        patched.setdefault("metadata", {})["name"] = name
        if not (isinstance(body, dict) and "resourceVersion" in (body.get("metadata") or {})):
            patched["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        return self.update(resource, patched, namespace, subresource=subresource,
                           version=version, field_manager=field_manager, dry_run=dry_run)

    def _apply(self, rtype: ResourceType, name: str, body: Any, namespace: str | None, *,
               subresource: str, version: str, manager: str, force: bool,
               dry_run: bool) -> Written:
        if not manager:
            raise err.unprocessable("PatchOptions", "meta.k8s.io", "", [
                err.required("fieldManager", "is required for apply patch")])
        body = body if isinstance(body, dict) else {}
        sent = (str(body.get("apiVersion") or ""), str(body.get("kind") or ""))
        if sent != (rtype.api_version(version), rtype.kind):
            group, _, ver = sent[0].rpartition("/")
            raise err.bad_request(f"invalid object type: {group}/{ver}, Kind={sent[1]}"
                                  if sent[0] else f"invalid object type: /, Kind={sent[1]}")
        old = self._stored(rtype, name, namespace)
        sent_uid = (body.get("metadata") or {}).get("uid")
        if sent_uid and sent_uid != old["metadata"].get("uid"):
            raise err.unprocessable(rtype.kind, rtype.group, name, [
                err.invalid("metadata.uid", sent_uid, "field is immutable")])
        if subresource != "status" or rtype.kind != "ResourceClaim":
            return Written(self._out(rtype, old, version))
        devices = (body.get("status") or {}).get("devices") or []
        new = apply_devices(old, devices, manager, force=force,
                            api_version=rtype.api_version(version), name=name)
        return self._write(rtype, old, new, version=version, manager=manager, dry_run=dry_run,
                           warnings=[], applied=True)

    def delete(self, resource: str, name: str, namespace: str | None = None, *,
               version: str = "v1") -> dict[str, Any]:
        rtype = self.resolve(resource, version)
        old = clone(self._stored(rtype, name, namespace))
        self._commit(rtype, old, "DELETED")
        return self._out(rtype, old, version)

    def delete_collection(self, resource: str, namespace: str | None = None, *,
                          version: str = "v1", label_selector: str = "",
                          field_selector: str = "") -> dict[str, Any]:
        rtype = self.resolve(resource, version)
        gone = self.select(rtype, namespace, label_selector, field_selector, version)
        for obj in gone:
            self._commit(rtype, clone(obj), "DELETED")
        listed = self.list(resource, namespace, version=version)
        listed["items"] = [self._out(rtype, o, version) for o in gone]
        return listed

    # -- watch -----------------------------------------------------------------------------
    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        self.subscribers.add(sub)
        return sub

    def since(self, rtype: ResourceType, rv: int) -> _Events:
        """Events of ``rtype`` after ``rv``; 410 Expired when history no longer reaches back."""
        if self.history and rv < self.history[0].rv - 1:
            raise err.gone(f"too old resource version: {rv} ({self.history[0].rv - 1})")
        return [e for e in self.history if e.rv > rv and e.rtype == rtype]


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    def strip(o: dict[str, Any]) -> dict[str, Any]:
        o = clone(o)
        for mf in o.get("metadata", {}).get("managedFields") or []:
            mf.pop("time", None)
        o.get("metadata", {}).pop("resourceVersion", None)
        return o

    return strip(old) == strip(new)


__all__ = ["KubeAPIError", "Store", "Subscription", "WatchEvent", "Written"]
