"""The resourceclaim controller's part: claims from templates for pods, and cleanup after pods.

Names follow kube-controller-manager: ``<pod>-<pod claim>-`` cut proportionally to 57
characters, then 5 random characters (``demo-application-5f7f6b6894-4g24-macvlan-eth1-attachmen
bj9zx``); the claim carries the ``resource.kubernetes.io/pod-claim-name`` annotation and a
controller ownerReference to the pod, and the pod's ``status.resourceClaimStatuses`` maps the
pod claim name to it.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping
from typing import Any, Protocol

from cnidra.sim._scheduler_objects import check_admin_access

POD_CLAIM_NAME = "resource.kubernetes.io/pod-claim-name"
FINALIZER = "resource.kubernetes.io/delete-protection"
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
_MAX_BASE = 57


class ObjectStore(Protocol):
    """The object access the scheduler stand-in needs (API server stand-in or a dict store).

    ``resource`` is the plural lower-case name (``pods``, ``resourceclaims``, ``nodes``...);
    cluster-scoped objects use ``namespace=""``. ``create`` returns the stored object (with
    ``metadata.uid`` set); ``update`` stores the whole object, status included.
    """

    def get(self, resource: str, name: str, namespace: str = "") -> dict[str, Any] | None: ...

    def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]: ...

    def create(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]: ...

    def update(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]: ...

    def delete(self, resource: str, name: str, namespace: str = "") -> None: ...


def generate_name(pod_name: str, pod_claim_name: str) -> str:
    """The generateName prefix the controller uses (no trailing dash once it is cut)."""
    base = f"{pod_name}-{pod_claim_name}-"
    if len(base) <= _MAX_BASE:
        return base
    return (pod_name[: len(pod_name) * _MAX_BASE // len(base)] + "-"
            + pod_claim_name[: len(pod_claim_name) * _MAX_BASE // len(base)])


def claim_name(pod_name: str, pod_claim_name: str, rng: random.Random) -> str:
    suffix = "".join(rng.choice(_ALPHANUMS) for _ in range(5))
    return generate_name(pod_name, pod_claim_name) + suffix


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    value = obj.get("metadata")
    return value if isinstance(value, Mapping) else {}


def ensure_pod_claims(
    store: ObjectStore, pod: dict[str, Any], rng: random.Random
) -> dict[str, Any]:
    """Create the claims of ``pod``'s template entries that do not exist yet; return the pod.

    Raises the API server's errors (e.g. the adminAccess 422 as KubeAPIError) unchanged.
    """
    pmeta = meta(pod)
    namespace = str(pmeta.get("namespace", "default"))
    status = pod.setdefault("status", {})
    statuses: list[dict[str, Any]] = status.setdefault("resourceClaimStatuses", [])
    known = {s.get("name") for s in statuses}
    changed = False
    for entry in (pod.get("spec") or {}).get("resourceClaims") or ():
        template_name = entry.get("resourceClaimTemplateName")
        if not template_name or entry.get("name") in known:
            continue
        template = store.get("resourceclaimtemplates", template_name, namespace)
        if template is None:
            raise LookupError(f'resourceclaimtemplate "{namespace}/{template_name}" not found')
        tspec = template.get("spec") or {}
        tmeta = tspec.get("metadata") or {}
        name = claim_name(str(pmeta["name"]), str(entry["name"]), rng)
        claim: dict[str, Any] = {
            "apiVersion": template.get("apiVersion", "resource.k8s.io/v1"),
            "kind": "ResourceClaim",
            "metadata": {
                "name": name,
                "generateName": generate_name(str(pmeta["name"]), str(entry["name"])),
                "namespace": namespace,
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": {**(tmeta.get("annotations") or {}), POD_CLAIM_NAME: entry["name"]},
                "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Pod", "name": pmeta["name"],
                    "uid": pmeta.get("uid", ""), "controller": True,
                }],
            },
            "spec": copy.deepcopy(tspec.get("spec") or {}),
        }
        if not claim["metadata"]["labels"]:
            del claim["metadata"]["labels"]
        check_admin_access("ResourceClaim", claim, store.get("namespaces", namespace))
        created = store.create("resourceclaims", claim)
        statuses.append({"name": entry["name"], "resourceClaimName": meta(created)["name"]})
        changed = True
    return store.update("pods", pod) if changed else pod


def release_after_pods(store: ObjectStore) -> list[str]:
    """Drop reservations of pods that are gone; deallocate unreserved claims; delete claims
    owned by a gone pod. Returns ``ns/name`` of every claim touched."""
    live = {
        str(meta(p).get("uid")) for p in store.list("pods") if not meta(p).get("deletionTimestamp")
    }
    touched: list[str] = []
    for claim in store.list("resourceclaims"):
        cmeta = meta(claim)
        key = f"{cmeta.get('namespace')}/{cmeta.get('name')}"
        owners = [o for o in cmeta.get("ownerReferences") or ()
                  if o.get("kind") == "Pod" and o.get("controller")]
        if owners and all(str(o.get("uid")) not in live for o in owners):
            store.delete("resourceclaims", str(cmeta["name"]), str(cmeta.get("namespace", "")))
            touched.append(key)
            continue
        status = claim.get("status") or {}
        reserved = status.get("reservedFor") or []
        kept = [r for r in reserved if str(r.get("uid")) in live]
        if len(kept) == len(reserved) and (kept or not status.get("allocation")):
            continue
        new_status = dict(status)
        new_status.pop("reservedFor", None)
        if kept:
            new_status["reservedFor"] = kept
        else:
            new_status.pop("allocation", None)
            new_status.pop("devices", None)
            finalizers = [f for f in cmeta.get("finalizers") or () if f != FINALIZER]
            claim["metadata"] = {**cmeta, "finalizers": finalizers}
            if not finalizers:
                claim["metadata"].pop("finalizers")
        claim["status"] = new_status
        store.update("resourceclaims", claim)
        touched.append(key)
    return touched


__all__ = [
    "FINALIZER",
    "POD_CLAIM_NAME",
    "ObjectStore",
    "claim_name",
    "ensure_pod_claims",
    "generate_name",
    "meta",
    "release_after_pods",
]
