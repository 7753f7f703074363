"""A ResourceClaim object (resource.k8s.io v1, v1beta2 or v1beta1, as decoded JSON) reduced to
what planning needs. The one place that knows the API shapes; everything after it is
version-free. Pure.

Shapes: in v1/v1beta2 a request keeps its class under ``exactly.deviceClassName``, in v1beta1
directly on the request; both may use ``firstAvailable[j]`` (subrequests, allocated as
``req/sub``). ``status.allocation`` and ``status.reservedFor`` are the same in every version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnidra.errors import ConfigError

FROM_CLASS = "FromClass"
FROM_CLAIM = "FromClaim"


@dataclass(frozen=True, slots=True)
class AllocatedDevice:
    """``status.allocation.devices.results[index]``."""

    index: int
    request: str
    driver: str
    pool: str
    device: str
    admin_access: bool
    share_id: str | None


@dataclass(frozen=True, slots=True)
class AllocatedConfig:
    """``status.allocation.devices.config[index]`` with an opaque part.

    ``path`` names the ``opaque.parameters`` a person can edit: ``spec.devices.config[i]...``
    for a claim config (the allocation copies them in order), else the status entry.
    """

    index: int
    source: str
    requests: tuple[str, ...]
    driver: str
    parameters: Any
    path: str

    def targets(self, request: str) -> bool:
        """Whether this config applies to the allocated request ``request`` (maybe ``req/sub``)."""
        if not self.requests:
            return True
        return request in self.requests or request.split("/", 1)[0] in self.requests


@dataclass(frozen=True, slots=True)
class ClaimView:
    uid: str
    namespace: str
    name: str
    allocated: bool
    allocation_digest: str
    results: tuple[AllocatedDevice, ...]
    configs: tuple[AllocatedConfig, ...]
    request_classes: Mapping[str, str]
    pod_uids: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def view_claim(claim: Mapping[str, Any]) -> ClaimView:
    """Reduce a claim object; malformed structure raises ``ConfigError`` with its path."""
    meta = _obj(claim.get("metadata"), "metadata")
    spec_devices = _obj(_obj(claim.get("spec", {}), "spec").get("devices", {}), "spec.devices")
    status = _obj(claim.get("status", {}), "status")
    allocation = status.get("allocation")
    allocated = allocation is not None
    alloc = _obj(allocation or {}, "status.allocation")
    devices = _obj(alloc.get("devices", {}), "status.allocation.devices")
    return ClaimView(
        uid=_str(meta.get("uid", ""), "metadata.uid"),
        namespace=_str(meta.get("namespace", ""), "metadata.namespace"),
        name=_str(meta.get("name", ""), "metadata.name"),
        allocated=allocated,
        allocation_digest=hashlib.sha256(canonical_json(allocation)).hexdigest(),
        results=_results(devices.get("results", [])),
        configs=_configs(devices.get("config", []), spec_devices.get("config", [])),
        request_classes=_request_classes(spec_devices.get("requests", [])),
        pod_uids=_pods(status.get("reservedFor", [])),
    )


def _results(raw: Any) -> tuple[AllocatedDevice, ...]:
    out = []
    for i, item in enumerate(_list(raw, "status.allocation.devices.results")):
        path = f"status.allocation.devices.results[{i}]"
        result = _obj(item, path)
        share = result.get("shareID")
        out.append(AllocatedDevice(
            index=i,
            request=_str(result.get("request"), f"{path}.request"),
            driver=_str(result.get("driver"), f"{path}.driver"),
            pool=_str(result.get("pool"), f"{path}.pool"),
            device=_str(result.get("device"), f"{path}.device"),
            admin_access=result.get("adminAccess") is True,
            share_id=None if share is None else _str(share, f"{path}.shareID"),
        ))
    return tuple(out)


def _configs(raw: Any, spec_raw: Any) -> tuple[AllocatedConfig, ...]:
    spec_configs = spec_raw if isinstance(spec_raw, list) else []
    out = []
    claim_ordinal = 0
    for i, item in enumerate(_list(raw, "status.allocation.devices.config")):
        path = f"status.allocation.devices.config[{i}]"
        entry = _obj(item, path)
        source = _str(entry.get("source"), f"{path}.source")
        requests = tuple(
            _str(r, f"{path}.requests[{j}]")
            for j, r in enumerate(_list(entry.get("requests", []), f"{path}.requests"))
        )
        edit_path = path
        if source == FROM_CLAIM:
            spec_entry = (
                spec_configs[claim_ordinal] if claim_ordinal < len(spec_configs) else None
            )
            if isinstance(spec_entry, Mapping) and spec_entry.get("opaque") == entry.get("opaque"):
                edit_path = f"spec.devices.config[{claim_ordinal}]"
            claim_ordinal += 1
        opaque = entry.get("opaque")
        if opaque is None:
            continue
        opaque = _obj(opaque, f"{path}.opaque")
        out.append(AllocatedConfig(
            index=i, source=source, requests=requests,
            driver=_str(opaque.get("driver"), f"{path}.opaque.driver"),
            parameters=opaque.get("parameters"), path=f"{edit_path}.opaque.parameters",
        ))
    return tuple(out)


def _request_classes(raw: Any) -> dict[str, str]:
    classes: dict[str, str] = {}
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        exactly = item.get("exactly")
        holder = exactly if isinstance(exactly, Mapping) else item
        if isinstance(holder.get("deviceClassName"), str):
            classes[item["name"]] = holder["deviceClassName"]
        for sub in item.get("firstAvailable") or []:
            if isinstance(sub, Mapping) and isinstance(sub.get("deviceClassName"), str):
                classes[f"{item['name']}/{sub.get('name')}"] = sub["deviceClassName"]
    return classes


def _pods(raw: Any) -> tuple[str, ...]:
    uids: list[str] = []
    for i, item in enumerate(_list(raw, "status.reservedFor")):
        ref = _obj(item, f"status.reservedFor[{i}]")
        if ref.get("resource") == "pods" and ref.get("apiGroup", "") in ("", None):
            uid = _str(ref.get("uid"), f"status.reservedFor[{i}].uid")
            if uid not in uids:
                uids.append(uid)
    return tuple(uids)


def _obj(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError("must be an object", path)
    return value


def _list(value: Any, path: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise ConfigError("must be a list", path)
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError("must be a string", path)
    return value
