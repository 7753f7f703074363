"""The API server's validation of ``ResourceClaim.status.devices`` (KEP-4817).

Messages are copied from a real kube-apiserver v1.36.2 (fixtures ``status-errors.json``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from cnidra.sim.apiserver._errors import (
    FieldError,
    duplicate,
    invalid,
    not_supported,
    required,
    too_long,
    too_many,
)

_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_UUID_ANY = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
REASON_MSG = (
    "a condition reason must start with alphabetic character, optionally followed by a string of "
    "alphanumeric characters or '_,:', and must end with an alphanumeric character or '_' (e.g. "
    "'my_name',  or 'MY_NAME',  or 'MyName',  or 'ReasonA,ReasonB',  or 'ReasonA:ReasonB', regex "
    "used for validation is '[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?')"
)
UUID_CASE_MSG = (
    "uid must be in RFC 4122 normalized form, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` with "
    "lowercase hexadecimal characters"
)
CIDR_MSG = "must be a valid address in CIDR form, (e.g. 10.9.8.7/24 or 2001:db8::1/64)"
DATA_LIMIT = 10240


def device_key(entry: dict[str, Any]) -> tuple[str, str, str, str]:
    """(driver, pool, device, shareID) — the list-map key of status.devices."""
    return (str(entry.get("driver") or ""), str(entry.get("pool") or ""),
            str(entry.get("device") or ""), str(entry.get("shareID") or ""))


def go_device_id(key: tuple[str, str, str, str]) -> str:
    driver, pool, device, share = key
    return json.dumps({"Driver": driver, "Pool": pool, "Device": device, "ShareID": share},
                      separators=(",", ":"))


def _share_id(value: Any, path: str) -> list[FieldError]:
    if value is None:
        return []
    text = str(value)
    if _UUID.match(text):
        return []
    detail = (UUID_CASE_MSG if _UUID_ANY.match(text)
              else f"error validating uid: invalid UUID length: {len(text)}" if len(text) != 36
              else "error validating uid: invalid UUID format")
    return [invalid(path, text, detail)]


def _sloppy_cidr(text: str) -> str | None:
    """The canonical form of ``addr/prefix`` as Go's ParseCIDRSloppy reads it, or None."""
    addr, sep, prefix = text.partition("/")
    if not sep or not prefix.isdigit():
        return None
    bits = int(prefix)
    if ":" not in addr:
        parts = addr.split(".")
        ok = len(parts) == 4 and all(p.isdigit() and int(p) <= 255 for p in parts) and bits <= 32
        return ".".join(str(int(p)) for p in parts) + f"/{bits}" if ok else None
    try:
        ip6 = ipaddress.IPv6Address(addr)
    except ValueError:
        return None
    if bits > 128:
        return None
    if ip6.ipv4_mapped is not None and bits >= 96:
        return f"{ip6.ipv4_mapped}/{bits - 96}"
    return f"{ip6}/{bits}"


def _network_data(nd: Any, path: str) -> list[FieldError]:
    if not isinstance(nd, dict):
        return []
    errors: list[FieldError] = []
    if len(str(nd.get("interfaceName") or "").encode()) > 256:
        errors.append(too_long(f"{path}.interfaceName", 256))
    ips = nd.get("ips") or []
    if len(ips) > 16:
        errors.append(too_many(f"{path}.ips", len(ips), 16))
    else:
        seen: set[str] = set()
        for i, ip in enumerate(ips):
            canonical = _sloppy_cidr(str(ip))
            if canonical is None:
                errors.append(invalid(f"{path}.ips[{i}]", str(ip), CIDR_MSG))
            elif canonical != ip:
                errors.append(invalid(f"{path}.ips[{i}]", str(ip),
                                      f'must be in canonical form ("{canonical}")'))
            elif ip in seen:
                errors.append(duplicate(f"{path}.ips[{i}]", ip))
            seen.add(str(ip))
    if len(str(nd.get("hardwareAddress") or "").encode()) > 128:
        errors.append(too_long(f"{path}.hardwareAddress", 128))
    return errors


def _conditions(conds: Any, path: str) -> list[FieldError]:
    if not isinstance(conds, list):
        return []
    if len(conds) > 8:
        return [too_many(path, len(conds), 8)]
    errors: list[FieldError] = []
    for i, raw in enumerate(conds):
        here = f"{path}[{i}]"
        cond = raw if isinstance(raw, dict) else {}
        if not cond.get("type"):
            errors.append(required(f"{here}.type"))
        status = cond.get("status")
        if status not in {"True", "False", "Unknown"}:
            errors.append(not_supported(f"{here}.status", status or "",
                                        ["False", "True", "Unknown"]))
        if not cond.get("lastTransitionTime"):
            errors.append(required(f"{here}.lastTransitionTime"))
        reason = cond.get("reason")
        if not reason:
            errors.append(required(f"{here}.reason"))
        elif not _REASON.match(str(reason)):
            errors.append(invalid(f"{here}.reason", str(reason), REASON_MSG))
    return errors


def _data(data: Any, path: str, data_sizes: dict[int, int] | None, index: int) -> list[FieldError]:
    if data is None:
        return []
    if not isinstance(data, dict):
        return [invalid(path, "<value omitted>", "must be a valid JSON object")]
    size = (data_sizes or {}).get(index)
    if size is None:
        size = len(json.dumps(data, separators=(",", ":"), sort_keys=True).encode())
    if size > DATA_LIMIT:
        return [too_long(path, DATA_LIMIT)]
    return []


def validate_status_devices(
    status: dict[str, Any], *, merge_duplicates: bool = True,
    data_sizes: dict[int, int] | None = None,
) -> list[FieldError]:
    """Field errors for ``status.devices`` against ``status.allocation``.

    ``data_sizes`` overrides the byte count of ``data`` per entry (a PUT counts raw bytes).
    """
    devices = status.get("devices") or []
    allocation = status.get("allocation") or {}
    results = ((allocation.get("devices") or {}).get("results")) or []
    allocated = {device_key(r) for r in results if isinstance(r, dict)}
    errors: list[FieldError] = []
    seen: set[tuple[str, str, str, str]] = set()
    for i, raw in enumerate(devices):
        here = f"status.devices[{i}]"
        entry = raw if isinstance(raw, dict) else {}
        key = device_key(entry)
        if merge_duplicates and key in seen:
            errors.append(duplicate(here, go_device_id(key), raw=True))
            continue
        seen.add(key)
        errors += _share_id(entry.get("shareID"), f"{here}.shareID")
        if key not in allocated:
            errors.append(invalid(here, go_device_id(key),
                                  "must be an allocated device in the claim", raw=True))
        errors += _conditions(entry.get("conditions"), f"{here}.conditions")
        errors += _data(entry.get("data"), f"{here}.data", data_sizes, i)
        errors += _network_data(entry.get("networkData"), f"{here}.networkData")
    return errors
