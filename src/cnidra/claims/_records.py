"""The checkpoint's content and its JSON form (format version 1). Pure.

::

    {"version": 1,
     "claims": {"<claim uid>": {
         "namespace": "...", "name": "...", "allocationDigest": "<sha256>",
         "podUIDs": ["..."],
         "devices": [{"requestNames": [...], "poolName", "deviceName", "cdiDeviceIDs": [...],
                      "shareID": "..."|null}],
         "interfaces": [{"request", "driver", "pool", "device", "deviceIfName", "shareID",
                         "adminAccess", "ifName", "networkName", "cniVersion",
                         "conflist": "<canonical JSON text>", "configSource", "ifNameSource"}],
         "attachments": [{"ifName", "podUID", "sandboxID", "netns", "networkName",
                          "cniResult": {...}, "since": <unix seconds>, "statusReported": bool}]}}}

Any change to this shape needs a new version number and a migration from the old one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cnidra.errors import CheckpointError
from cnidra.model.claims import PreparedDevice
from cnidra.model.plan import Attachment, ClaimPlan, ConfigSource, PlannedInterface

VERSION = 1


@dataclass(frozen=True, slots=True)
class PreparedClaim:
    """One checkpoint entry: the plan of a prepared claim and its live attachments."""

    plan: ClaimPlan
    attachments: tuple[Attachment, ...] = ()


def encode(claims: Mapping[str, PreparedClaim]) -> dict[str, Any]:
    """The JSON-ready document for ``claims`` (keyed by claim UID)."""
    return {"version": VERSION, "claims": {uid: _claim(c) for uid, c in sorted(claims.items())}}


def decode(doc: Any) -> dict[str, PreparedClaim]:
    """Parse a document; anything unexpected raises ``CheckpointError`` naming the path."""
    if not isinstance(doc, dict):
        raise CheckpointError("checkpoint: the document is not a JSON object")
    if doc.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint: unknown format version {doc.get('version')!r} (this driver reads "
            f"version {VERSION}); refusing to guess, the file is kept"
        )
    claims = _get(doc, "claims", dict, "")
    return {uid: _read_claim(uid, entry, f"claims.{uid}") for uid, entry in claims.items()}


def _claim(c: PreparedClaim) -> dict[str, Any]:
    p = c.plan
    return {
        "namespace": p.namespace, "name": p.name, "allocationDigest": p.allocation_digest,
        "podUIDs": list(p.pod_uids),
        "devices": [
            {"requestNames": list(d.request_names), "poolName": d.pool_name,
             "deviceName": d.device_name, "cdiDeviceIDs": list(d.cdi_device_ids),
             "shareID": d.share_id}
            for d in p.devices
        ],
        "interfaces": [
            {"request": i.request, "driver": i.driver, "pool": i.pool, "device": i.device,
             "deviceIfName": i.device_if_name, "shareID": i.share_id,
             "adminAccess": i.admin_access, "ifName": i.if_name, "networkName": i.network_name,
             "cniVersion": i.cni_version, "conflist": i.conflist.decode(),
             "configSource": i.config_source, "ifNameSource": i.if_name_source}
            for i in p.interfaces
        ],
        "attachments": [
            {"ifName": a.if_name, "podUID": a.pod_uid, "sandboxID": a.sandbox_id,
             "netns": a.netns, "networkName": a.network_name, "cniResult": dict(a.cni_result),
             "since": a.since, "statusReported": a.status_reported}
            for a in c.attachments
        ],
    }


def _read_claim(uid: str, raw: Any, path: str) -> PreparedClaim:
    entry = _check(raw, dict, path)
    ns = _get(entry, "namespace", str, path)
    name = _get(entry, "name", str, path)
    devices = tuple(
        PreparedDevice(
            tuple(_strs(d, "requestNames", dp)), _get(d, "poolName", str, dp),
            _get(d, "deviceName", str, dp), tuple(_strs(d, "cdiDeviceIDs", dp)),
            _opt_str(d, "shareID", dp),
        )
        for d, dp in _dicts(entry, "devices", path)
    )
    interfaces = tuple(
        PlannedInterface(
            claim_uid=uid, claim_namespace=ns, claim_name=name,
            request=_get(i, "request", str, ip), driver=_get(i, "driver", str, ip),
            pool=_get(i, "pool", str, ip), device=_get(i, "device", str, ip),
            device_if_name=_get(i, "deviceIfName", str, ip),
            share_id=_opt_str(i, "shareID", ip),
            admin_access=_get(i, "adminAccess", bool, ip),
            if_name=_get(i, "ifName", str, ip), network_name=_get(i, "networkName", str, ip),
            cni_version=_get(i, "cniVersion", str, ip),
            conflist=_get(i, "conflist", str, ip).encode(),
            config_source=_source(i, "configSource", ip),
            if_name_source=_source(i, "ifNameSource", ip),
        )
        for i, ip in _dicts(entry, "interfaces", path)
    )
    attachments = tuple(_attachment(uid, a, ap) for a, ap in _dicts(entry, "attachments", path))
    plan = ClaimPlan(
        uid, ns, name, _get(entry, "allocationDigest", str, path),
        tuple(_strs(entry, "podUIDs", path)), interfaces, devices,
    )
    return PreparedClaim(plan, attachments)


def _attachment(uid: str, a: dict[str, Any], path: str) -> Attachment:
    since = _get(a, "since", (int, float), path)
    return Attachment(
        claim_uid=uid, if_name=_get(a, "ifName", str, path),
        pod_uid=_get(a, "podUID", str, path), sandbox_id=_get(a, "sandboxID", str, path),
        netns=_get(a, "netns", str, path), network_name=_get(a, "networkName", str, path),
        cni_result=_get(a, "cniResult", dict, path), since=float(since),
        status_reported=_get(a, "statusReported", bool, path),
    )


def _check(value: Any, kind: type | tuple[type, ...], path: str) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise CheckpointError(f"checkpoint: {path or 'document'} has the wrong type")
    return value


def _get(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], path: str) -> Any:
    where = f"{path}.{key}" if path else key
    if key not in obj:
        raise CheckpointError(f"checkpoint: {where} is missing")
    return _check(obj[key], kind, where)


def _opt_str(obj: dict[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    return None if value is None else str(_get(obj, key, str, path))


def _strs(obj: dict[str, Any], key: str, path: str) -> list[str]:
    items = _get(obj, key, list, path)
    for n, item in enumerate(items):
        _check(item, str, f"{path}.{key}[{n}]")
    return list(items)


def _dicts(obj: dict[str, Any], key: str, path: str) -> list[tuple[dict[str, Any], str]]:
    """The objects of list ``key``, each with its own path."""
    items = _get(obj, key, list, path)
    return [(_check(item, dict, f"{path}.{key}[{n}]"), f"{path}.{key}[{n}]")
            for n, item in enumerate(items)]


def _source(obj: dict[str, Any], key: str, path: str) -> ConfigSource:
    value = _get(obj, key, str, path)
    if value == "FromClass":
        return "FromClass"
    if value == "FromClaim":
        return "FromClaim"
    raise CheckpointError(f"checkpoint: {path}.{key} is {value!r}, not FromClass or FromClaim")
