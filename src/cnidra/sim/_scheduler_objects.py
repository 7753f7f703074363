"""Reading DRA objects in the v1 and v1beta1 shapes for the scheduler stand-in.

Requests (``exactly:`` in v1, flat in v1beta1), published devices of the newest complete pool
generation, node matching of slices, and the admin-access admission rule with the API server's
exact 422.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cnidra.cel import DeviceView
from cnidra.errors import ConfigError, KubeAPIError

ADMIN_ACCESS_LABEL = "resource.kubernetes.io/admin-access"
_ADMIN_DETAIL = (
    "admin access to devices requires the `resource.kubernetes.io/admin-access: true` label "
    "on the containing namespace"
)


@dataclass(frozen=True)
class RequestSpec:
    """One device request of a claim, shape-independent."""

    name: str
    device_class: str
    selectors: tuple[Mapping[str, Any], ...]
    mode: str  # "ExactCount" or "All"
    count: int
    admin_access: bool
    capacity_requests: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PublishedDevice:
    """A device from the newest generation of its pool, with where it is available."""

    view: DeviceView
    driver: str
    pool: str
    node_name: str | None
    all_nodes: bool
    node_selector: Mapping[str, Any] | None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.driver, self.pool, self.view.name)


def claim_devices_spec(claim: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = claim.get("spec") or {}
    devices = spec.get("devices") if isinstance(spec, Mapping) else None
    return devices if isinstance(devices, Mapping) else {}


def requests_of(devices_spec: Mapping[str, Any], path: str = "spec.devices") -> list[RequestSpec]:
    """The requests of a claim's ``spec.devices`` (v1 ``exactly:`` or v1beta1 flat)."""
    out: list[RequestSpec] = []
    for index, raw in enumerate(devices_spec.get("requests") or ()):
        rpath = f"{path}.requests[{index}]"
        if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
            raise ConfigError("a request needs a name", rpath)
        if raw.get("firstAvailable"):
            raise ConfigError("firstAvailable is not supported by the scheduler stand-in", rpath)
        body = raw["exactly"] if isinstance(raw.get("exactly"), Mapping) else raw
        if not isinstance(body.get("deviceClassName"), str):
            raise ConfigError("deviceClassName is required", f"{rpath}.deviceClassName")
        mode = body.get("allocationMode") or "ExactCount"
        if mode not in ("ExactCount", "All"):
            raise ConfigError(f"unsupported allocationMode {mode!r}", f"{rpath}.allocationMode")
        count = body.get("count", 1) if mode == "ExactCount" else 0
        if mode == "ExactCount" and (not isinstance(count, int) or count < 1):
            raise ConfigError("count must be a positive integer", f"{rpath}.count")
        capacity = body.get("capacity") or {}
        requests = capacity.get("requests") if isinstance(capacity, Mapping) else None
        out.append(RequestSpec(
            name=raw["name"],
            device_class=body["deviceClassName"],
            selectors=tuple(body.get("selectors") or ()),
            mode=mode,
            count=count,
            admin_access=bool(body.get("adminAccess", False)),
            capacity_requests={str(k): str(v) for k, v in (requests or {}).items()},
        ))
    return out


def published_devices(
    slices: Sequence[Mapping[str, Any]],
) -> tuple[list[PublishedDevice], list[str]]:
    """Devices of each pool's highest generation; incomplete pools are skipped with a note."""
    newest: dict[tuple[str, str], tuple[int, int, list[Mapping[str, Any]]]] = {}
    for item in slices:
        spec = item.get("spec") or {}
        pool = spec.get("pool") or {}
        key = (str(spec.get("driver", "")), str(pool.get("name", "")))
        generation = int(pool.get("generation", 0))
        count = int(pool.get("resourceSliceCount", 1))
        current = newest.get(key)
        if current is None or generation > current[0]:
            newest[key] = (generation, count, [spec])
        elif generation == current[0]:
            current[2].append(spec)
    devices: list[PublishedDevice] = []
    notes: list[str] = []
    for (driver, pool), (generation, count, specs) in sorted(newest.items()):
        if len(specs) < count:
            notes.append(f"pool {driver}/{pool} generation {generation} is incomplete "
                         f"({len(specs)} of {count} slices); its devices are not used")
            continue
        for spec in specs:
            per_device = bool(spec.get("perDeviceNodeSelection"))
            for index, raw in enumerate(spec.get("devices") or ()):
                where = raw if per_device else spec
                body = raw.get("basic") if isinstance(raw.get("basic"), Mapping) else raw
                if per_device and isinstance(body, Mapping):
                    where = body
                devices.append(PublishedDevice(
                    view=DeviceView.from_slice_device(
                        raw, driver, pool, f"spec.devices[{index}]"
                    ),
                    driver=driver,
                    pool=pool,
                    node_name=where.get("nodeName"),
                    all_nodes=bool(where.get("allNodes")),
                    node_selector=where.get("nodeSelector"),
                ))
    devices.sort(key=lambda d: d.key)
    return devices, notes


def _term_matches(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    for expr in term.get("matchFields") or ():
        value = meta.get("name") if expr.get("key") == "metadata.name" else None
        if not _op_matches(expr, value is not None, value):
            return False
    for expr in term.get("matchExpressions") or ():
        key = expr.get("key")
        if not _op_matches(expr, key in labels, labels.get(key)):
            return False
    return True


def _op_matches(expr: Mapping[str, Any], present: bool, value: Any) -> bool:
    op, values = expr.get("operator"), list(expr.get("values") or ())
    checks = {
        "In": lambda: present and value in values,
        "NotIn": lambda: not present or value not in values,
        "Exists": lambda: present,
        "DoesNotExist": lambda: not present,
        "Gt": lambda: present and int(value) > int(values[0]),
        "Lt": lambda: present and int(value) < int(values[0]),
    }
    check = checks.get(str(op))
    return bool(check()) if check else False


def selector_matches(selector: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """A core/v1 NodeSelector: any term matches (terms AND their requirements)."""
    return any(_term_matches(t, node) for t in selector.get("nodeSelectorTerms") or ())


def device_on_node(device: PublishedDevice, node: Mapping[str, Any]) -> bool:
    name = (node.get("metadata") or {}).get("name")
    if device.node_name is not None:
        return bool(device.node_name == name)
    if device.all_nodes:
        return True
    if device.node_selector is not None:
        return selector_matches(device.node_selector, node)
    return False


def admin_access_status(
    kind: str, obj: Mapping[str, Any], namespace: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The 422 Status the API server returns for adminAccess in an unlabelled namespace."""
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    if labels.get(ADMIN_ACCESS_LABEL) == "true":
        return None
    spec = obj.get("spec") or {}
    devices = (spec.get("spec") or {}).get("devices") if kind == "ResourceClaimTemplate" else (
        spec.get("devices"))
    causes = []
    for index, raw in enumerate((devices or {}).get("requests") or ()):
        body = raw.get("exactly") if isinstance(raw.get("exactly"), Mapping) else raw
        if body.get("adminAccess"):
            causes.append({
                "reason": "FieldValueForbidden",
                "message": f"Forbidden: {_ADMIN_DETAIL}",
                "field": f"spec.devices.requests[{index}].adminAccess",
            })
    if not causes:
        return None
    name = (obj.get("metadata") or {}).get("name", "")
    details = [f"{c['field']}: {c['message']}" for c in causes]
    joined = details[0] if len(details) == 1 else "[" + ", ".join(details) + "]"
    return {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f'{kind}.resource.k8s.io "{name}" is invalid: {joined}',
        "reason": "Invalid",
        "details": {"name": name, "group": "resource.k8s.io", "kind": kind, "causes": causes},
        "code": 422,
    }


def check_admin_access(
    kind: str, obj: Mapping[str, Any], namespace: Mapping[str, Any] | None
) -> None:
    """Raise the API server's 422 (as KubeAPIError with the Status body) if adminAccess is not
    allowed in ``namespace``. The API server stand-in calls this on create of claims and
    templates."""
    status = admin_access_status(kind, obj, namespace)
    if status is not None:
        raise KubeAPIError(status["message"], 422, "Invalid", status)


__all__ = [
    "ADMIN_ACCESS_LABEL",
    "PublishedDevice",
    "RequestSpec",
    "admin_access_status",
    "check_admin_access",
    "claim_devices_spec",
    "device_on_node",
    "published_devices",
    "requests_of",
    "selector_matches",
]
