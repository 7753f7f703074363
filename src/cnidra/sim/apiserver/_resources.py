"""The resource types the stand-in serves, and label/field selectors over them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cnidra.sim.apiserver._errors import bad_request

RESOURCE_GROUP = "resource.k8s.io"


@dataclass(frozen=True)
class ResourceType:
    """One served resource: ``group``/``plural``, its Kind, scope and selectable fields."""

    group: str
    plural: str
    kind: str
    namespaced: bool
    versions: tuple[str, ...]
    status: bool = False
    generation: bool = False
    fields: tuple[str, ...] = ()

    @property
    def storage_version(self) -> str:
        return f"{self.group}/v1" if self.group else "v1"

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version


_DRA = ("v1", "v1beta1", "v1beta2")
TYPES: tuple[ResourceType, ...] = (
    ResourceType(RESOURCE_GROUP, "resourceslices", "ResourceSlice", False, _DRA,
                 generation=True, fields=("spec.nodeName", "spec.driver")),
    ResourceType(RESOURCE_GROUP, "deviceclasses", "DeviceClass", False, _DRA, generation=True),
    ResourceType(RESOURCE_GROUP, "resourceclaims", "ResourceClaim", True, _DRA, status=True),
    ResourceType(RESOURCE_GROUP, "resourceclaimtemplates", "ResourceClaimTemplate", True, _DRA),
    ResourceType("", "nodes", "Node", False, ("v1",), status=True),
    ResourceType("", "pods", "Pod", True, ("v1",), status=True,
                 fields=("spec.nodeName", "status.phase")),
    ResourceType("", "namespaces", "Namespace", False, ("v1",), status=True,
                 fields=("status.phase",)),
    ResourceType("", "events", "Event", True, ("v1",),
                 fields=("involvedObject.kind", "involvedObject.name", "involvedObject.uid",
                         "involvedObject.namespace", "reason", "type")),
)
BY_PLURAL: dict[tuple[str, str], ResourceType] = {(t.group, t.plural): t for t in TYPES}


def lookup(resource: str) -> ResourceType:
    """``"resourceslices.resource.k8s.io"`` or ``"pods"`` → its ResourceType."""
    plural, _, group = resource.partition(".")
    try:
        return BY_PLURAL[(group, plural)]
    except KeyError as exc:
        raise bad_request(f"the server could not find the requested resource ({resource})") from exc


def _get(obj: dict[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


Matcher = Callable[[dict[str, Any]], bool]


def field_matcher(rtype: ResourceType, selector: str, version: str) -> Matcher:
    """Parse a fieldSelector (``a=b,c!=d``); unsupported labels are a 400 like the real server."""
    terms: list[tuple[str, bool, str]] = []
    for raw in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in raw:
            key, value = raw.split("!=", 1)
            terms.append((key.strip(), False, value.strip()))
            continue
        key, sep, value = raw.partition("==") if "==" in raw else raw.partition("=")
        if not sep:
            raise bad_request(f'invalid selector: \'{selector}\'; can\'t understand \'{raw}\'')
        terms.append((key.strip(), True, value.strip()))
    allowed = {"metadata.name", *(("metadata.namespace",) if rtype.namespaced else ()),
               *rtype.fields}
    for key, _, _ in terms:
        if key not in allowed:
            gv = rtype.api_version(version)
            raise bad_request(f"field label not supported for {gv}, Kind={rtype.kind}: {key}")
    return lambda obj: all((_get(obj, k) == v) is eq for k, eq, v in terms)


_SET = re.compile(r"^\s*([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    terms.append(current)
    return [t.strip() for t in terms if t.strip()]


def _term(term: str) -> Matcher:
    match = _SET.match(term)
    if match:
        key, negate = match.group(1), match.group(2) == "notin"
        values = {v.strip() for v in match.group(3).split(",") if v.strip()}
        return lambda o: (_labels(o).get(key) in values) is not negate
    if "!=" in term:
        key, value = (s.strip() for s in term.split("!=", 1))
        return lambda o: _labels(o).get(key) != value
    if "=" in term:
        key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
        return lambda o: _labels(o).get(key) == value
    name = term.lstrip("!").strip()
    if not re.match(r"^[A-Za-z0-9._/-]+$", name):
        raise bad_request(f"unable to parse requirement: {term!r}")
    absent = term.startswith("!")
    return lambda o: (name in _labels(o)) is not absent


def label_matcher(selector: str) -> Matcher:
    """Parse a labelSelector (=, ==, !=, in, notin, exists, !exists)."""
    checks = [_term(t) for t in _split_terms(selector)]
    return lambda obj: all(check(obj) for check in checks)


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels if isinstance(labels, dict) else {}
