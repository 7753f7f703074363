"""v1 <-> v1beta1 shape differences the driver must bridge on a 1.32/1.33 server.

Only two: a v1beta1 slice device nests its fields under ``basic:``; a v1beta1 claim request has
``exactly``'s fields directly on it. Status (``status.devices``) is identical.
"""

from __future__ import annotations

from typing import Any


def clone(value: Any) -> Any:
    """A deep copy of a JSON tree (dicts, lists, scalars), much faster than a generic one."""
    kind = type(value)
    if kind is dict:
        return {k: clone(v) for k, v in value.items()}
    if kind is list:
        return [clone(v) for v in value]
    return value


_EXACTLY = ("deviceClassName", "selectors", "allocationMode", "count", "adminAccess",
            "tolerations", "capacity")


def slice_to_version(obj: dict[str, Any], api_version: str) -> dict[str, Any]:
    """A v1-shaped ResourceSlice written for ``api_version``."""
    out: dict[str, Any] = clone(obj)
    out["apiVersion"], out["kind"] = api_version, "ResourceSlice"
    if api_version.endswith("/v1beta1"):
        for dev in (out.get("spec") or {}).get("devices") or []:
            rest = {k: dev.pop(k) for k in [k for k in dev if k != "name"]}
            if rest:
                dev["basic"] = rest
    return out


def slice_from_version(obj: dict[str, Any]) -> dict[str, Any]:
    """A ResourceSlice read in any version, in the v1 shape."""
    out: dict[str, Any] = clone(obj)
    for dev in (out.get("spec") or {}).get("devices") or []:
        dev.update(dev.pop("basic", None) or {})
    return out


def claim_from_version(obj: dict[str, Any]) -> dict[str, Any]:
    """A ResourceClaim read in any version, in the v1 shape (``exactly:``)."""
    out: dict[str, Any] = clone(obj)
    if str(out.get("apiVersion", "")).endswith("/v1beta1"):
        for req in ((out.get("spec") or {}).get("devices") or {}).get("requests") or []:
            if "firstAvailable" not in req and "exactly" not in req:
                req["exactly"] = {k: req.pop(k) for k in _EXACTLY if k in req}
    return out
