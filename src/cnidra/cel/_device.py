"""DeviceView: one slice device as CEL selectors see it (v1 flat or v1beta1 ``basic:``).

Attribute and capacity names are split into (domain, id) the way the scheduler does it: an
unprefixed name belongs to the driver's domain, ``resource.kubernetes.io/pcieRoot`` to
``resource.kubernetes.io``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cnidra.cel._quantity import Quantity, parse_quantity
from cnidra.cel._semver import Semver, parse_semver
from cnidra.errors import ConfigError

AttributeValue = bool | int | str | Semver
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def split_qualified_name(name: str, driver: str) -> tuple[str, str]:
    """``(domain, id)`` of a QualifiedName; no prefix means the driver's own domain."""
    domain, sep, ident = name.partition("/")
    return (domain, ident) if sep else (driver, name)


@dataclass(frozen=True)
class CapacityView:
    """A device capacity: its value and (for shareable devices) its request policy."""

    value: Quantity
    default: Quantity | None = None
    valid_values: tuple[Quantity, ...] = ()
    valid_range: tuple[Quantity, Quantity | None, Quantity | None] | None = None  # min, max, step


@dataclass(frozen=True)
class DeviceView:
    """What a CEL selector can see of a device, plus the identity the allocator needs."""

    driver: str
    name: str
    attributes: Mapping[str, Mapping[str, AttributeValue]] = field(default_factory=dict)
    capacity: Mapping[str, Mapping[str, CapacityView]] = field(default_factory=dict)
    allow_multiple_allocations: bool = False
    pool: str = ""

    @classmethod
    def from_slice_device(
        cls, device: Mapping[str, Any], driver: str, pool: str = "", path: str = "device"
    ) -> DeviceView:
        """Build from ``spec.devices[i]`` of a ResourceSlice in the v1 or v1beta1 shape."""
        if not isinstance(device, Mapping) or not isinstance(device.get("name"), str):
            raise ConfigError("a device needs a string name", path)
        body: Mapping[str, Any] = device
        if isinstance(device.get("basic"), Mapping):
            body, path = device["basic"], f"{path}.basic"
        attributes: dict[str, dict[str, AttributeValue]] = {}
        for qname, raw in (body.get("attributes") or _EMPTY).items():
            domain, ident = split_qualified_name(qname, driver)
            value = _attribute_value(raw, f"{path}.attributes[{qname}]")
            attributes.setdefault(domain, {})[ident] = value
        capacity: dict[str, dict[str, CapacityView]] = {}
        for qname, raw in (body.get("capacity") or _EMPTY).items():
            domain, ident = split_qualified_name(qname, driver)
            capacity.setdefault(domain, {})[ident] = _capacity(raw, f"{path}.capacity[{qname}]")
        return cls(
            driver=driver,
            name=device["name"],
            attributes=MappingProxyType({k: MappingProxyType(v) for k, v in attributes.items()}),
            capacity=MappingProxyType({k: MappingProxyType(v) for k, v in capacity.items()}),
            allow_multiple_allocations=bool(body.get("allowMultipleAllocations", False)),
            pool=pool,
        )


def _attribute_value(raw: Any, path: str) -> AttributeValue:
    if not isinstance(raw, Mapping):
        raise ConfigError("an attribute must be an object", path)
    kinds = [k for k in ("int", "bool", "string", "version") if raw.get(k) is not None]
    if len(kinds) != 1:
        raise ConfigError("an attribute must set exactly one of int, bool, string, version", path)
    kind, value = kinds[0], raw[kinds[0]]
    if kind == "version":
        return parse_semver(value, f"{path}.version")
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "string" and isinstance(value, str):
        return value
    raise ConfigError(f"must be a {kind}", f"{path}.{kind}")


def _capacity(raw: Any, path: str) -> CapacityView:
    if not isinstance(raw, Mapping) or "value" not in raw:
        raise ConfigError("a capacity needs a value", path)
    value = parse_quantity(str(raw["value"]), f"{path}.value")
    policy = raw.get("requestPolicy")
    if not isinstance(policy, Mapping):
        return CapacityView(value)
    ppath = f"{path}.requestPolicy"
    default = (
        parse_quantity(str(policy["default"]), f"{ppath}.default")
        if policy.get("default") is not None else None
    )
    valid_values = tuple(
        parse_quantity(str(v), f"{ppath}.validValues[{i}]")
        for i, v in enumerate(policy.get("validValues") or ())
    )
    valid_range = None
    rng = policy.get("validRange")
    if isinstance(rng, Mapping):
        parts = [
            parse_quantity(str(rng[k]), f"{ppath}.validRange.{k}") if rng.get(k) is not None
            else None
            for k in ("min", "max", "step")
        ]
        if parts[0] is None:
            raise ConfigError("validRange needs min", f"{ppath}.validRange.min")
        valid_range = (parts[0], parts[1], parts[2])
    return CapacityView(value, default, valid_values, valid_range)


__all__ = ["AttributeValue", "CapacityView", "DeviceView", "split_qualified_name"]
