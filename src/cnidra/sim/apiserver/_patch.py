"""Patch bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), apply bodies (YAML/JSON).

A strategic merge patch is applied as a merge patch: the lists the driver touches
(``status.devices``) have no patchMergeKey, so the API server replaces them whole too.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from cnidra.sim.apiserver._errors import bad_request, status_error, unsupported_media_type

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE, STRATEGIC, JSON_PATCH, APPLY)


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> Any:
    node = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def json_patch(doc: Any, ops: Any) -> Any:
    """Apply RFC 6902 ``add``/``remove``/``replace``/``test`` operations to a copy of ``doc``."""
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    out = copy.deepcopy(doc)
    for op in ops:
        try:
            parts = _pointer(str(op["path"]))
            parent = _parent(out, parts)
            last = parts[-1] if parts else ""
            kind = op["op"]
            if kind == "test":
                current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
                if current != op.get("value"):
                    raise status_error(422, "Invalid",
                                       f"the server rejected our request due to an error in our "
                                       f"request: testing value {op['path']} failed")
            elif kind in {"add", "replace"}:
                value = copy.deepcopy(op["value"])
                if isinstance(parent, list):
                    index = len(parent) if last == "-" else int(last)
                    if kind == "add":
                        parent.insert(index, value)
                    else:
                        parent[index] = value
                else:
                    parent[last] = value
            elif kind == "remove":
                del parent[int(last) if isinstance(parent, list) else last]
            else:
                raise bad_request(f"unsupported json patch operation {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise status_error(422, "Invalid", f"the server rejected our request due to an error "
                                               f"in our request: {exc}") from exc
    return out


def decode_patch(content_type: str, raw: bytes) -> Any:
    """Decode a PATCH body by Content-Type (415 for anything else)."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype not in PATCH_TYPES:
        raise unsupported_media_type()
    if ctype == APPLY:
        try:
            return yaml.safe_load(raw.decode() or "{}")
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise bad_request(f"error decoding YAML: error converting YAML to JSON: {exc}") from exc
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise bad_request(f"error decoding patch: {exc}") from exc
