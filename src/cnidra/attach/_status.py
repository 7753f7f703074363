"""Pure builders for ``ResourceClaim.status.devices`` entries (KEP-4817).

One entry per allocated device of ours: ``driver``, ``pool``, ``device``, ``shareID`` (when the
allocation has one), a ``Ready`` condition, ``data`` = the CNI result (at most 10 KiB of JSON) and
``networkData`` (interface name, IPs in canonical CIDR form with host bits kept, MAC). The API
server rejects anything else (see the 1.36 fixtures), so the limits are enforced here.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

READY = "Ready"
REASON_READY = "NetworkInterfaceReady"
REASON_FAILED = "NetworkInterfaceFailed"
MAX_DATA_BYTES = 10 * 1024
MAX_IPS = 16
MAX_IFNAME = 256
MAX_HWADDR = 128
MAX_MESSAGE = 32 * 1024


def _timestamp(now: datetime) -> str:
    return now.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(
    status: bool, reason: str, message: str, now: datetime, generation: int | None
) -> dict[str, Any]:
    cond: dict[str, Any] = {
        "type": READY,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "lastTransitionTime": _timestamp(now),
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def _base(driver: str, pool: str, device: str, share_id: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"driver": driver, "pool": pool, "device": device}
    if share_id:
        entry["shareID"] = share_id
    return entry


def canonical_ips(result: Mapping[str, Any], if_name: str) -> list[str]:
    """The result's addresses on ``if_name`` (or not tied to an interface), canonical CIDR."""
    interfaces: Sequence[Mapping[str, Any]] = result.get("interfaces") or []
    ours = {
        i for i, itf in enumerate(interfaces)
        if itf.get("name") == if_name and itf.get("sandbox")
    }
    out: list[str] = []
    for entry in result.get("ips") or []:
        index = entry.get("interface")
        if index is not None and interfaces and index not in ours:
            continue
        try:
            text = str(ipaddress.ip_interface(str(entry.get("address", ""))))
        except ValueError:
            continue
        if text not in out:
            out.append(text)
    return out[:MAX_IPS]


def hardware_address(result: Mapping[str, Any], if_name: str) -> str:
    for itf in result.get("interfaces") or []:
        if itf.get("name") == if_name and itf.get("sandbox") and itf.get("mac"):
            return str(itf["mac"]).lower()[:MAX_HWADDR]
    return ""


def bounded_data(result: Mapping[str, Any], if_name: str) -> dict[str, Any]:
    """The CNI result, reduced only if its JSON exceeds the API's 10 KiB limit."""
    data = dict(result)
    if len(json.dumps(data, separators=(",", ":"))) <= MAX_DATA_BYTES:
        return data
    # Keep what identifies the attachment; drop host-side interfaces, routes and DNS.
    reduced: dict[str, Any] = {
        "cniVersion": result.get("cniVersion", ""),
        "interfaces": [i for i in result.get("interfaces") or [] if i.get("name") == if_name],
        "ips": [{"address": a} for a in canonical_ips(result, if_name)],
        "truncated": True,
    }
    if len(json.dumps(reduced, separators=(",", ":"))) <= MAX_DATA_BYTES:
        return reduced
    return {"cniVersion": result.get("cniVersion", ""), "truncated": True}


def ready_entry(
    *, driver: str, pool: str, device: str, share_id: str | None, if_name: str,
    result: Mapping[str, Any], now: datetime | None = None, generation: int | None = None,
) -> dict[str, Any]:
    """The entry written after a successful CNI ADD."""
    entry = _base(driver, pool, device, share_id)
    entry["conditions"] = [_condition(
        True, REASON_READY, f"CNI ADD succeeded for {if_name}",
        now or datetime.now(UTC), generation,
    )]
    entry["data"] = bounded_data(result, if_name)
    network: dict[str, Any] = {"interfaceName": if_name[:MAX_IFNAME]}
    ips = canonical_ips(result, if_name)
    if ips:
        network["ips"] = ips
    mac = hardware_address(result, if_name)
    if mac:
        network["hardwareAddress"] = mac
    entry["networkData"] = network
    return entry


def failed_entry(
    *, driver: str, pool: str, device: str, share_id: str | None, if_name: str, error: str,
    now: datetime | None = None, generation: int | None = None,
) -> dict[str, Any]:
    """The entry written when attaching failed: Ready=False with the error as message."""
    entry = _base(driver, pool, device, share_id)
    entry["conditions"] = [_condition(
        False, REASON_FAILED, f"{if_name}: {error}", now or datetime.now(UTC), generation,
    )]
    return entry
