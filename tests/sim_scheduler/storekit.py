"""An in-memory object store for the scheduler stand-in's tests (what ``Scheduler`` needs of the
API server, with its adminAccess admission)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from cnidra.sim.scheduler import check_admin_access


class DictStore:
    """In-memory object store with the API server's adminAccess admission."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}

    def get(self, resource: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        found = self.objects.get((resource, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (r, ns, _), o in sorted(self.objects.items())
                if r == resource and namespace in (None, ns)]

    def create(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if resource in ("resourceclaims", "resourceclaimtemplates"):
            kind = "ResourceClaim" if resource == "resourceclaims" else "ResourceClaimTemplate"
            check_admin_access(kind, obj, self.get("namespaces", meta.get("namespace", "")))
        key = (resource, meta.get("namespace", ""), meta["name"])
        assert key not in self.objects, key
        meta.setdefault("uid", str(uuid.uuid4()))
        self.objects[key] = copy.deepcopy(obj)
        return copy.deepcopy(obj)

    def update(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        key = (resource, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        assert key in self.objects, key
        self.objects[key] = copy.deepcopy(obj)
        return copy.deepcopy(obj)

    def delete(self, resource: str, name: str, namespace: str = "") -> None:
        del self.objects[(resource, namespace, name)]
