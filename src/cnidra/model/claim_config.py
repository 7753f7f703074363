"""The opaque parameters our driver accepts in DeviceClass and ResourceClaim configs.

Two kinds share ``apiVersion: cni.networking.x-k8s.io/v1alpha1``:

``kind: CNI``
    ``ifName`` (the interface name inside the pod) and ``config`` (a CNI conflist object). Both
    are optional here because a DeviceClass may give one and the claim the other; the plan
    requires both after merging (see :mod:`cnidra.claims`). The conflist's inner structure is
    checked by the CNI runtime, not here.
``kind: CNIPolicy``
    Narrows the node's admin policy for the requests it targets: ``allowedPluginTypes``
    (intersected with the node's list) and ``requireMasterIsAllocatedDevice`` (can only turn the
    check on). Honoured only from DeviceClass configs.

Parsing is strict: unknown keys, wrong types and a wrong apiVersion/kind are errors. Every error
is a :class:`~cnidra.errors.ConfigError` whose path starts at ``parameters``. Pure, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from cnidra.errors import ConfigError

API_VERSION = "cni.networking.x-k8s.io/v1alpha1"
KIND_CNI = "CNI"
KIND_POLICY = "CNIPolicy"
IFNAMSIZ = 16  # the kernel's buffer size, NUL included: names are at most 15 bytes

_FORBIDDEN_IFNAME_CHARS = {"/": "'/'", ":": "':'", "\0": "NUL"}


def if_name_problem(name: str) -> str:
    """Why ``name`` is not a valid Linux interface name, or ``""`` when it is."""
    size = len(name.encode("utf-8", errors="surrogatepass"))
    if size == 0:
        return "must not be empty"
    if size >= IFNAMSIZ:
        return f"is {size} bytes long; Linux allows at most {IFNAMSIZ - 1}"
    if name in {".", ".."}:
        return "is reserved by the kernel"
    for char, label in _FORBIDDEN_IFNAME_CHARS.items():
        if char in name:
            return f"must not contain {label}"
    if any(c.isspace() for c in name):
        return "must not contain whitespace"
    return ""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=False)


class CNIConfig(_Strict):
    """``kind: CNI``: one pod interface and the CNI network that creates it."""

    api_version: Literal["cni.networking.x-k8s.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["CNI"]
    if_name: str | None = Field(default=None, alias="ifName")
    config: dict[str, Any] | None = None

    @field_validator("if_name")
    @classmethod
    def _valid_if_name(cls, value: str | None) -> str | None:
        if value is not None and (problem := if_name_problem(value)):
            raise PydanticCustomError(
                "if_name", "{name} is not a valid interface name ({problem})",
                {"name": _quote(value), "problem": problem},
            )
        return value


class CNIPolicyConfig(_Strict):
    """``kind: CNIPolicy``: a DeviceClass narrowing the node's admin policy."""

    api_version: Literal["cni.networking.x-k8s.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["CNIPolicy"]
    allowed_plugin_types: list[str] | None = Field(default=None, alias="allowedPluginTypes")
    require_master_is_allocated_device: bool | None = Field(
        default=None, alias="requireMasterIsAllocatedDevice"
    )

    @field_validator("allowed_plugin_types")
    @classmethod
    def _non_empty_names(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not name for name in value):
            raise PydanticCustomError("plugin_type", "plugin types must be non-empty strings")
        return value


OpaqueConfig = CNIConfig | CNIPolicyConfig
_KINDS: dict[str, type[CNIConfig] | type[CNIPolicyConfig]] = {
    KIND_CNI: CNIConfig, KIND_POLICY: CNIPolicyConfig,
}


def parse_opaque(parameters: object, path: str = "parameters") -> OpaqueConfig:
    """Validate one opaque ``parameters`` object of our driver (already decoded JSON).

    Raises :class:`ConfigError` naming the field path under ``path``.
    """
    if not isinstance(parameters, Mapping):
        raise ConfigError(f"must be an object, not {_json_type(parameters)}", path)
    api_version = parameters.get("apiVersion")
    if api_version != API_VERSION:
        got = "is missing" if api_version is None else f"{_quote(api_version)} is not supported"
        raise ConfigError(f"{got}: use {_quote(API_VERSION)}", f"{path}.apiVersion")
    kind = parameters.get("kind")
    model = _KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        got = "is missing" if kind is None else f"{_quote(kind)} is not supported"
        accepted = " or ".join(_quote(k) for k in _KINDS)
        raise ConfigError(f"{got}: use {accepted}", f"{path}.kind")
    try:
        return model.model_validate(dict(parameters))
    except ValidationError as exc:
        raise _convert(exc, path, model) from exc


def _convert(
    exc: ValidationError, path: str, model: type[CNIConfig] | type[CNIPolicyConfig]
) -> ConfigError:
    first = exc.errors(include_url=False)[0]
    where = path + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
    )
    kind = first["type"]
    if kind == "extra_forbidden":
        allowed = ", ".join(f.alias or name for name, f in model.model_fields.items())
        message = f"unknown field (allowed: {allowed})"
    elif kind == "missing":
        message = "is required"
    elif kind in {"if_name", "plugin_type"}:
        message = first["msg"]
    else:
        message = f"{first['msg']} (got {_json_type(first.get('input'))})"
    return ConfigError(message, where)


def _json_type(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             type(None): "null", list: "an array", tuple: "an array"}
    if isinstance(value, Mapping):
        return "an object"
    return names.get(type(value), type(value).__name__)


def _quote(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) > 64:
        text = text[:61] + "..."
    return json.dumps(text, ensure_ascii=False)


__all__ = [
    "API_VERSION",
    "KIND_CNI",
    "KIND_POLICY",
    "CNIConfig",
    "CNIPolicyConfig",
    "OpaqueConfig",
    "if_name_problem",
    "parse_opaque",
]
