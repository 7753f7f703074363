"""The scheduler stand-in's ``ObjectStore`` over the API server stand-in's ``Store``.

The scheduler reads and writes whole objects (status included); the API server keeps
``status`` behind the status subresource. ``update`` therefore writes the main resource and,
when the status changed, the status subresource, each against the latest resourceVersion.
Reads use the API server's preferred resource.k8s.io version, so a v1beta1-only cluster is
scheduled through v1beta1 exactly as the real scheduler would read it.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from cnidra.errors import NotFoundError
from cnidra.sim.apiserver import TYPES, Store

_CORE = {t.plural for t in TYPES if not t.group}
_STATUS = {t.plural for t in TYPES if t.status}
MANAGER = "cnidra-sim"


class StoreObjects:
    """``cnidra.sim.scheduler.ObjectStore`` backed by ``Store`` (in process, no HTTP)."""

    def __init__(self, store: Store, manager: str = MANAGER) -> None:
        self.store = store
        self.manager = manager

    def _resource(self, resource: str) -> tuple[str, str]:
        if resource in _CORE:
            return resource, "v1"
        return f"{resource}.resource.k8s.io", self.store.served[0]

    def get(self, resource: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        qualified, version = self._resource(resource)
        try:
            return self.store.get(qualified, name, namespace or None, version=version)
        except NotFoundError:
            return None

    def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        qualified, version = self._resource(resource)
        listed = self.store.list(qualified, namespace or None, version=version)
        kind = str(listed["kind"]).removesuffix("List")
        return [{"apiVersion": listed["apiVersion"], "kind": kind, **item}
                for item in listed["items"]]

    def create(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        qualified, version = self._resource(resource)
        body = copy.deepcopy(obj)
        namespace = (body.get("metadata") or {}).get("namespace")
        created = self.store.create(qualified, body, namespace, version=version,
                                    field_manager=self.manager).obj
        status = obj.get("status")
        if status and resource in _STATUS:
            created["status"] = copy.deepcopy(status)
            created = self.store.update(qualified, created, namespace, subresource="status",
                                        version=version, field_manager=self.manager).obj
        return created

    def update(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        qualified, version = self._resource(resource)
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or None
        current = self.store.get(qualified, str(meta["name"]), namespace, version=version)
        body = copy.deepcopy(obj)
        body.setdefault("metadata", {})["resourceVersion"] = current["metadata"][
            "resourceVersion"]
        written = self.store.update(qualified, body, namespace, version=version,
                                    field_manager=self.manager).obj
        if resource in _STATUS and (obj.get("status") or {}) != (written.get("status") or {}):
            written["status"] = copy.deepcopy(obj.get("status") or {})
            written = self.store.update(qualified, written, namespace, subresource="status",
                                        version=version, field_manager=self.manager).obj
        return written

    def delete(self, resource: str, name: str, namespace: str = "") -> None:
        qualified, version = self._resource(resource)
        with contextlib.suppress(NotFoundError):
            self.store.delete(qualified, name, namespace or None, version=version)
