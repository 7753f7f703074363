"""The allocator of the scheduler stand-in: one claim on one node, with per-device reasons.

Exclusive devices go to one claim at a time. Devices with ``allowMultipleAllocations`` are
shared while their consumable capacity lasts (KEP-5075: the request's amount or the policy's
default, rounded up to a valid value; no policy means the whole capacity). adminAccess
allocations neither check nor consume availability, but still get a shareID and
consumedCapacity on a shareable device, as the real scheduler writes them.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from cnidra.cel import (
    CapacityView,
    Quantity,
    SelectorSet,
    compile_selectors,
    evaluate_request,
    parse_quantity,
    runtime_error_message,
)
from cnidra.errors import ConfigError
from cnidra.sim._scheduler_objects import PublishedDevice, RequestSpec

DeviceKey = tuple[str, str, str]
SelectorCompiler = Callable[..., SelectorSet]


@dataclass
class Usage:
    """What is in use: exclusive holders and consumed capacity per shareable device."""

    holders: dict[DeviceKey, str] = field(default_factory=dict)
    consumed: dict[DeviceKey, dict[str, Fraction]] = field(default_factory=dict)

    def copy(self) -> Usage:
        return Usage(dict(self.holders), {k: dict(v) for k, v in self.consumed.items()})

    def add_claim(self, claim_key: str, results: Sequence[Mapping[str, Any]],
                  shareable: Mapping[DeviceKey, bool]) -> None:
        for result in results:
            if result.get("adminAccess"):
                continue
            key = (str(result.get("driver")), str(result.get("pool")), str(result.get("device")))
            if shareable.get(key, "shareID" in result):
                used = self.consumed.setdefault(key, {})
                for name, amount in (result.get("consumedCapacity") or {}).items():
                    used[name] = used.get(name, Fraction(0)) + parse_quantity(str(amount)).value
            else:
                self.holders[key] = claim_key


@dataclass(frozen=True)
class DeviceNote:
    """Why one device was or was not picked for one request on one node."""

    request: str
    driver: str
    pool: str
    device: str
    selected: bool
    reason: str


@dataclass(frozen=True)
class ClaimAttempt:
    """The outcome of allocating one claim on one node."""

    results: tuple[dict[str, Any], ...] | None
    notes: tuple[DeviceNote, ...]
    failure: str = ""
    runtime_errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.results is not None


def _qualified(domain: str, ident: str, driver: str) -> str:
    return ident if domain == driver else f"{domain}/{ident}"


def _round_up(requested: Quantity, cap: CapacityView) -> Quantity | str:
    if cap.valid_values:
        for valid in sorted(cap.valid_values, key=lambda q: q.value):
            if valid.value >= requested.value:
                return valid
        return f"{requested} exceeds every valid value"
    if cap.valid_range is not None:
        low, high, step = cap.valid_range
        value = max(requested.value, low.value)
        if step is not None and step.value > 0:
            value = low.value + math.ceil((value - low.value) / step.value) * step.value
        if high is not None and value > high.value:
            return f"{requested} is above the valid range maximum {high}"
        return Quantity(value, requested.format)
    return requested


def consumption(device: PublishedDevice, request: RequestSpec) -> dict[str, Quantity] | str:
    """Capacity one allocation of ``request`` takes from a shareable device, or why it can't."""
    out: dict[str, Quantity] = {}
    for domain, ids in device.view.capacity.items():
        for ident, cap in ids.items():
            name = _qualified(domain, ident, device.driver)
            raw = request.capacity_requests.get(name)
            requested = (parse_quantity(raw, f"capacity.requests[{name}]") if raw is not None
                         else cap.default if cap.default is not None else cap.value)
            rounded = _round_up(requested, cap)
            if isinstance(rounded, str):
                return f"capacity {name}: {rounded}"
            out[name] = rounded
    return out


def _availability(device: PublishedDevice, request: RequestSpec, usage: Usage,
                  amounts: Mapping[str, Quantity]) -> str:
    """Empty if ``device`` can take this allocation, else why not."""
    if request.admin_access:
        return ""
    if not device.view.allow_multiple_allocations:
        holder = usage.holders.get(device.key)
        return f"already allocated to claim {holder}" if holder else ""
    used = usage.consumed.get(device.key, {})
    for domain, ids in device.view.capacity.items():
        for ident, cap in ids.items():
            name = _qualified(domain, ident, device.driver)
            total = used.get(name, Fraction(0)) + amounts[name].value
            if total > cap.value.value:
                in_use = Quantity(used.get(name, Fraction(0)), cap.value.format)
                return (f"insufficient capacity {name}: {in_use} of {cap.value} in use, "
                        f"this request needs {amounts[name]}")
    return ""


def _pick(
    claim_key: str, request: RequestSpec, sets: tuple[SelectorSet, SelectorSet],
    devices: Sequence[PublishedDevice], work: Usage, *, rng: random.Random,
    notes: list[DeviceNote], errors: list[str],
) -> list[dict[str, Any]] | str:
    """Devices for one request (``work`` updated as they are taken), or why it fails."""
    picked: list[dict[str, Any]] = []
    wanted = request.count if request.mode == "ExactCount" else len(devices)
    for device in devices:
        verdict = evaluate_request(device.view, *sets)
        if not verdict.matched:
            if verdict.error:
                errors.append(runtime_error_message(verdict))
            notes.append(DeviceNote(request.name, *device.key, False, verdict.reason))
            continue
        amounts = consumption(device, request) if device.view.allow_multiple_allocations else {}
        why_not = amounts if isinstance(amounts, str) else _availability(
            device, request, work, amounts)
        if why_not or len(picked) >= wanted:
            notes.append(DeviceNote(request.name, *device.key, False,
                                    why_not or "not needed: the request has its devices"))
            if why_not and request.mode == "All":
                return (f"allocationMode All needs every matching device, "
                        f"{device.view.name}: {why_not}")
            continue
        assert not isinstance(amounts, str)
        result: dict[str, Any] = {"request": request.name, "driver": device.driver,
                                  "pool": device.pool, "device": device.view.name}
        if request.admin_access:
            result["adminAccess"] = True
        if device.view.allow_multiple_allocations:
            result["shareID"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            result["consumedCapacity"] = {k: str(v) for k, v in amounts.items()}
        picked.append(result)
        work.add_claim(claim_key, [result], {device.key: device.view.allow_multiple_allocations})
        notes.append(DeviceNote(request.name, *device.key, True, "selected"))
    if request.mode == "All" and not picked:
        return "no matching device"
    if request.mode == "ExactCount" and len(picked) < wanted:
        return f"{len(picked)} of {wanted} devices available"
    return picked


def allocate_claim(
    claim_key: str,
    requests: Sequence[RequestSpec],
    classes: Mapping[str, Mapping[str, Any]],
    devices: Sequence[PublishedDevice],
    usage: Usage,
    *,
    rng: random.Random,
    compile_: SelectorCompiler = compile_selectors,
) -> tuple[ClaimAttempt, Usage]:
    """Try every request of one claim against ``devices`` (already limited to one node).

    Returns the attempt and the usage after it (unchanged on failure).
    """
    work = usage.copy()
    results: list[dict[str, Any]] = []
    notes: list[DeviceNote] = []
    errors: list[str] = []
    for index, request in enumerate(requests):
        device_class = classes.get(request.device_class)
        if device_class is None:
            return ClaimAttempt(None, tuple(notes), f"request {request.name}: device class "
                                f"{request.device_class} does not exist"), usage
        try:
            sets = (
                compile_((device_class.get("spec") or {}).get("selectors"), "class",
                         request.device_class, "spec.selectors"),
                compile_(request.selectors, "claim", claim_key,
                         f"spec.devices.requests[{index}].selectors"),
            )
        except ConfigError as exc:
            return ClaimAttempt(None, tuple(notes), f"request {request.name}: {exc}"), usage
        picked = _pick(claim_key, request, sets, devices, work, rng=rng, notes=notes,
                       errors=errors)
        if isinstance(picked, str):
            return ClaimAttempt(None, tuple(notes), f"request {request.name}: {picked}",
                                tuple(errors)), usage
        results.extend(picked)
    return ClaimAttempt(tuple(results), tuple(notes), "", tuple(errors)), work


__all__ = [
    "ClaimAttempt", "DeviceNote", "SelectorCompiler", "Usage", "allocate_claim", "consumption",
]
