"""The API server's ResourceSlice validation (the parts a driver can get wrong).

Messages are copied from a real kube-apiserver v1.36.2 (fixtures ``slice-errors.json``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from cnidra.sim.apiserver._errors import (
    FieldError,
    duplicate,
    forbidden,
    invalid,
    required,
    too_long,
    too_many,
)
from cnidra.sim.apiserver._quantity import parse_quantity

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_C_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
C_IDENT_MSG = (
    "a valid C identifier must start with alphabetic character or '_', followed by a string of "
    "alphanumeric characters or '_' (e.g. 'my_name',  or 'MY_NAME',  or 'MyName', regex used "
    "for validation is '[A-Za-z_][A-Za-z0-9_]*')"
)
_NODE_FIELDS = ("nodeName", "nodeSelector", "allNodes", "perDeviceNodeSelection")
_VALUE_KEYS = ("int", "bool", "string", "version", "ints", "bools", "strings", "versions")
_GO_VALUE_NAMES = (
    "IntValue", "BoolValue", "StringValue", "VersionValue",
    "IntValues", "BoolValues", "StringValues", "VersionValues",
)


def _device_name(name: Any, path: str) -> list[FieldError]:
    if not isinstance(name, str) or not name:
        return [required(path)]
    if len(name) > 63:
        return [invalid(path, name, "must be no more than 63 characters")]
    if "." in name:
        return [invalid(path, name, "must not contain dots")]
    if not _LABEL.match(name):
        return [invalid(path, name, LABEL_MSG)]
    return []


def _qualified_name(name: str, path: str) -> list[FieldError]:
    domain, _, ident = name.rpartition("/")
    errors: list[FieldError] = []
    if domain and (len(domain) > 63 or not _SUBDOMAIN.match(domain)):
        errors.append(invalid(path, domain, SUBDOMAIN_MSG))
    if len(ident) > 32:
        errors.append(too_long(path, 32))
    elif not _C_IDENT.match(ident):
        errors.append(invalid(path, ident, C_IDENT_MSG))
    return errors


def _attribute(name: str, attr: Any, path: str) -> list[FieldError]:
    here = f"{path}[{name}]"
    if not isinstance(attr, dict):
        return [invalid(here, "", "exactly one value must be specified")]
    present = [k for k in _VALUE_KEYS if attr.get(k) is not None]
    if len(present) != 1:
        if not present:
            return [invalid(here, "", "exactly one value must be specified")]
        shown = ",".join(
            f'"{go}":{_go_json(attr.get(k))}' for k, go in zip(_VALUE_KEYS, _GO_VALUE_NAMES,
                                                              strict=True)
        )
        return [invalid(here, "{" + shown + "}", "exactly one value must be specified", raw=True)]
    key = present[0]
    value = attr[key]
    if key in {"string", "version"} and isinstance(value, str):
        if len(value.encode()) > 64:
            return [too_long(f"{here}.{key}", 64)]
        if key == "version" and not _SEMVER.match(value):
            return [invalid(f"{here}.version", value,
                            "must be a string compatible with semver.org spec 2.0.0")]
    return []


def _go_json(value: Any) -> str:
    return "null" if value is None else json.dumps(value, separators=(",", ":"))


def _capacity(name: str, cap: Any, path: str, multi: bool) -> list[FieldError]:
    here = f"{path}[{name}]"
    if not isinstance(cap, dict):
        return [required(f"{here}.value")]
    policy = cap.get("requestPolicy")
    if policy is None:
        return []
    if not multi:
        return [forbidden(f"{here}.requestPolicy", "allowMultipleAllocations must be true")]
    rng = policy.get("validRange") if isinstance(policy, dict) else None
    if isinstance(rng, dict):
        if policy.get("default") is None:
            return [required(f"{here}.requestPolicy.default",
                             "required when validRange is defined")]
        default = parse_quantity(str(policy["default"]))
        high = parse_quantity(str(rng.get("max"))) if rng.get("max") is not None else None
        if default and high and default[0] > high[0]:
            return [invalid(f"{here}.requestPolicy.validRange.max", str(policy["default"]),
                            f"default is more than max: {rng['max']}")]
    return []


def _device(dev: Any, path: str) -> list[FieldError]:
    if not isinstance(dev, dict):
        return [required(path)]
    errors = _device_name(dev.get("name"), f"{path}.name")
    attrs = dev.get("attributes") or {}
    caps = dev.get("capacity") or {}
    for name in sorted(attrs):
        errors += _qualified_name(name, f"{path}.attributes")
        errors += _attribute(name, attrs[name], f"{path}.attributes")
    for name in sorted(caps):
        errors += _qualified_name(name, f"{path}.capacity")
        errors += _capacity(name, caps[name], f"{path}.capacity",
                            bool(dev.get("allowMultipleAllocations")))
    total = len(attrs) + len(caps)
    if total > 32:
        errors.append(invalid(path, total,
                              "the total number of attributes and capacities must not exceed 32"))
    return errors


def validate_slice(spec: Any) -> list[FieldError]:
    """Field errors for a ResourceSlice ``spec`` (create and update)."""
    if not isinstance(spec, dict):
        return [required("spec")]
    errors: list[FieldError] = []
    driver = spec.get("driver")
    if not driver:
        errors.append(required("spec.driver"))
    elif len(driver) > 63 or not _SUBDOMAIN.match(driver):
        errors.append(invalid("spec.driver", driver, SUBDOMAIN_MSG))
    pool = spec.get("pool") or {}
    if not pool.get("name"):
        errors.append(required("spec.pool.name"))
    count = pool.get("resourceSliceCount", 0)
    if not isinstance(count, int) or count <= 0:
        errors.append(invalid("spec.pool.resourceSliceCount", count, "must be greater than zero"))
    set_fields = [f for f in _NODE_FIELDS if spec.get(f) not in (None, False, "")]
    if not set_fields:
        errors.append(required("spec", "exactly one of `nodeName`, `nodeSelector`, `allNodes`, "
                                       "`perDeviceNodeSelection` is required"))
    elif len(set_fields) > 1:
        shown = "{" + ", ".join(f"`{f}`" for f in set_fields) + "}"
        errors.append(invalid("spec", shown, "exactly one of `nodeName`, `nodeSelector`, "
                              "`allNodes`, `perDeviceNodeSelection` is required, but multiple "
                              "fields are set"))
    devices = spec.get("devices") or []
    advanced = any(isinstance(d, dict) and (d.get("taints") or d.get("consumesCounters"))
                   for d in devices)
    limit = 64 if advanced else 128
    if len(devices) > limit:
        return [*errors, too_many("spec.devices", len(devices), limit)]
    seen: set[str] = set()
    for i, dev in enumerate(devices):
        errors += _device(dev, f"spec.devices[{i}]")
        name = dev.get("name") if isinstance(dev, dict) else None
        if isinstance(name, str):
            if name in seen:
                errors.append(duplicate(f"spec.devices[{i}]", name))
            seen.add(name)
    return errors


def validate_slice_update(old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    """Immutable fields: driver, nodeName, pool.name."""
    errors: list[FieldError] = []
    before_spec, after_spec = old.get("spec") or {}, new.get("spec") or {}
    for path in ("spec.nodeName", "spec.driver", "spec.pool.name"):
        before, after = before_spec, after_spec
        for part in path.split(".")[1:]:
            before = before.get(part) if isinstance(before, dict) else None
            after = after.get(part) if isinstance(after, dict) else None
        if before != after:
            errors.append(invalid(path, after, "field is immutable"))
    return errors
