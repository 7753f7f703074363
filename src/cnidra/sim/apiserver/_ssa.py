"""Field ownership of ``status.devices``: server-side apply and Update bookkeeping.

``status.devices`` is a list-map keyed by (driver, device, pool, shareID). Each manager's
``managedFields`` entry (subresource ``status``) owns a set of field paths under
``f:status/f:devices/k:{...}``. Behaviour matches ``merge-patch-vs-ssa.steps.json``:

* apply: a manager's entries are merged in; entries it owned and no longer applies are removed
  unless another manager still owns them (``devices: []`` removes only its own entries);
  changing a field another manager owns is a 409 unless ``force``;
* update (merge/strategic/JSON patch, PUT): the list is taken as sent; the updater owns the
  leaves it changed (no ``.`` marker unless it added the entry); owners of removed entries
  lose them; managers left owning nothing disappear.

Other parts of ``managedFields`` (metadata, spec, allocation) are kept untouched.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from cnidra.errors import KubeAPIError
from cnidra.sim.apiserver._errors import status_error

Path = tuple[str, ...]
_KEY_FIELDS = ("device", "driver", "pool", "shareID")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_key(entry: dict[str, Any]) -> str:
    fields = {k: entry[k] for k in _KEY_FIELDS if entry.get(k) not in (None, "")}
    return "k:" + json.dumps(fields, sort_keys=True, separators=(",", ":"))


def _entry_leaves(entry: dict[str, Any]) -> set[Path]:
    leaves: set[Path] = {(".",)}
    for field, value in entry.items():
        if field == "conditions" and isinstance(value, list):
            for cond in value:
                if not isinstance(cond, dict):
                    continue
                ck = "k:" + json.dumps({"type": cond.get("type")}, separators=(",", ":"))
                leaves.add(("f:conditions", ck, "."))
                leaves.update(("f:conditions", ck, f"f:{k}") for k in cond)
        elif field == "networkData" and isinstance(value, dict):
            leaves.update(("f:networkData", f"f:{k}") for k in value)
            if not value:
                leaves.add(("f:networkData",))
        else:
            leaves.add((f"f:{field}",))
    return leaves


def _to_tree(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(part, {})
    return tree


def _from_tree(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for key, sub in tree.items():
        if isinstance(sub, dict) and sub:
            out |= _from_tree(sub, (*prefix, key))
        else:
            out.add((*prefix, key))
    return out


def _owned(mf: dict[str, Any]) -> dict[str, set[Path]]:
    devices = ((mf.get("fieldsV1") or {}).get("f:status") or {}).get("f:devices") or {}
    return {k: _from_tree(v) if v else set() for k, v in devices.items() if k.startswith("k:")}


def _set_owned(mf: dict[str, Any], owned: dict[str, set[Path]]) -> None:
    fields = mf.setdefault("fieldsV1", {})
    status = fields.setdefault("f:status", {})
    devices = {k: _to_tree(v) for k, v in owned.items() if v}
    if devices:
        status["f:devices"] = devices
    else:
        status.pop("f:devices", None)
    if not status:
        fields.pop("f:status", None)


def _value(entry: dict[str, Any], path: Path) -> Any:
    node: Any = entry
    for part in path:
        if part == ".":
            return None
        if part.startswith("k:") and isinstance(node, list):
            want = json.loads(part[2:])
            node = next((c for c in node if isinstance(c, dict)
                         and all(c.get(k) == v for k, v in want.items())), None)
        elif isinstance(node, dict):
            node = node.get(part[2:])
        else:
            return None
    return node


def _path_text(key: str, path: Path) -> str:
    fields = json.loads(key[2:])
    text = ".status.devices[" + ",".join(f'{k}="{v}"' for k, v in sorted(fields.items())) + "]"
    for part in path:
        if part.startswith("f:"):
            text += "." + part[2:]
        elif part.startswith("k:"):
            sub = json.loads(part[2:])
            text += "[" + ",".join(f'{k}="{v}"' for k, v in sorted(sub.items())) + "]"
    return text


def sort_managed_fields(entries: list[dict[str, Any]]) -> None:
    entries.sort(key=lambda e: (e.get("operation", ""), e.get("time", ""), e.get("manager", ""),
                                e.get("subresource", "")))


def _is(mf: dict[str, Any], manager: str, operation: str) -> bool:
    return (mf.get("manager") == manager and mf.get("operation") == operation
            and mf.get("subresource") == "status")


def _entry(manager: str, operation: str, api_version: str) -> dict[str, Any]:
    return {"manager": manager, "operation": operation, "apiVersion": api_version,
            "time": now(), "fieldsType": "FieldsV1", "fieldsV1": {}, "subresource": "status"}


def _finish(managed: list[dict[str, Any]], owners: list[dict[str, set[Path]]],
            live: set[str]) -> list[dict[str, Any]]:
    out = []
    for mf, owned in zip(managed, owners, strict=True):
        if mf.get("subresource") == "status":
            _set_owned(mf, {k: v for k, v in owned.items() if k in live})
            if not mf.get("fieldsV1"):
                continue
        out.append(mf)
    sort_managed_fields(out)
    return out


def apply_devices(
    obj: dict[str, Any], applied: list[dict[str, Any]], manager: str, *, force: bool,
    api_version: str, name: str,
) -> dict[str, Any]:
    """A copy of claim ``obj`` after ``manager`` applied ``status.devices = applied``."""
    out = copy.deepcopy(obj)
    meta = out.setdefault("metadata", {})
    managed: list[dict[str, Any]] = meta.get("managedFields") or []
    mine = next((mf for mf in managed if _is(mf, manager, "Apply")), None)
    if mine is None:
        mine = _entry(manager, "Apply", api_version)
        managed.append(mine)
    mine["time"], mine["apiVersion"] = now(), api_version
    owners = [_owned(mf) for mf in managed]
    my_index = managed.index(mine)
    status = out.setdefault("status", {})
    existing: list[dict[str, Any]] = [e for e in status.get("devices") or [] if isinstance(e, dict)]
    by_key = {entry_key(e): e for e in existing}
    applied_by_key: dict[str, dict[str, Any]] = {}
    for entry in applied:
        key = entry_key(entry)
        if key in applied_by_key:
            desc = ",".join(f'{k}="{v}"' for k, v in sorted(json.loads(key[2:]).items()))
            raise status_error(500, "",
                               f"failed to create typed patch object ({meta.get('namespace')}/"
                               f"{name}; {api_version}, Kind=ResourceClaim): .status.devices: "
                               f"duplicate entries for key [{desc}]")
        applied_by_key[key] = entry
    _check_conflicts(managed, owners, my_index, by_key, applied_by_key, force=force)
    others_own = {k for i, o in enumerate(owners) if i != my_index for k, v in o.items() if v}
    result: list[dict[str, Any]] = []
    for entry in existing:
        key = entry_key(entry)
        if key in applied_by_key:
            merged = {k: v for k, v in entry.items()
                      if not ((f"f:{k}",) in owners[my_index].get(key, set()) and k not in
                              applied_by_key[key])}
            merged.update(copy.deepcopy(applied_by_key.pop(key)))
            result.append(merged)
        elif key in owners[my_index] and key not in others_own:
            continue
        else:
            result.append(entry)
    result.extend(copy.deepcopy(e) for e in applied_by_key.values())
    owners[my_index] = {entry_key(e): _entry_leaves(e) for e in applied}
    status["devices"] = result
    if not result:
        status.pop("devices")
    meta["managedFields"] = _finish(managed, owners, {entry_key(e) for e in result})
    return out


def _check_conflicts(
    managed: list[dict[str, Any]], owners: list[dict[str, set[Path]]], my_index: int,
    by_key: dict[str, dict[str, Any]], applied_by_key: dict[str, dict[str, Any]], *, force: bool,
) -> None:
    """Raise 409 for changed fields another manager owns; with ``force`` take them over."""
    conflicts: dict[str, list[str]] = {}
    for key, entry in applied_by_key.items():
        old = by_key.get(key)
        leaves = _entry_leaves(entry)
        for i, owned in enumerate(owners):
            if i == my_index or key not in owned or old is None:
                continue
            for path in sorted(owned[key] & leaves):
                if path[-1] == "." or _value(old, path) == _value(entry, path):
                    continue
                if force:
                    owned[key].discard(path)
                else:
                    conflicts.setdefault(str(managed[i].get("manager")), []).append(
                        _path_text(key, path))
    if conflicts:
        _raise_conflicts(conflicts)


def _raise_conflicts(conflicts: dict[str, list[str]]) -> None:
    total = sum(len(v) for v in conflicts.values())
    lines: list[str] = []
    causes: list[dict[str, str]] = []
    for manager, paths in conflicts.items():
        lines.append(f'conflicts with "{manager}" with subresource "status":')
        lines.extend(f"- {p}" for p in paths)
        causes.extend({"reason": "FieldManagerConflict",
                       "message": f'conflict with "{manager}" with subresource "status"',
                       "field": p} for p in paths)
    noun = "conflict" if total == 1 else "conflicts"
    error: KubeAPIError = status_error(409, "Conflict",
                                       f"Apply failed with {total} {noun}: " + "\n".join(lines),
                                       {"causes": causes})
    raise error


def update_devices(
    old: dict[str, Any], new: dict[str, Any], manager: str, *, api_version: str,
) -> None:
    """Record ``manager``'s Update of ``new.status.devices`` (in place) relative to ``old``."""
    meta = new.setdefault("metadata", {})
    managed: list[dict[str, Any]] = copy.deepcopy(
        (old.get("metadata") or {}).get("managedFields") or [])
    before = {entry_key(e): e for e in (old.get("status") or {}).get("devices") or []
              if isinstance(e, dict)}
    after = {entry_key(e): e for e in (new.get("status") or {}).get("devices") or []
             if isinstance(e, dict)}
    changed: dict[str, set[Path]] = {}
    for key, entry in after.items():
        prev = before.get(key)
        leaves = _entry_leaves(entry)
        paths = leaves if prev is None else {
            p for p in leaves | _entry_leaves(prev) if _value(prev, p) != _value(entry, p)
            and p[-1] != "."
        }
        if paths:
            changed[key] = paths & leaves
    if before == after:
        meta["managedFields"] = managed
        return
    mine = next((mf for mf in managed if _is(mf, manager, "Update")), None)
    if mine is None:
        mine = _entry(manager, "Update", api_version)
        managed.append(mine)
    mine["time"], mine["apiVersion"] = now(), api_version
    owners = [_owned(mf) for mf in managed]
    my_index = managed.index(mine)
    for i, owned in enumerate(owners):
        for key, paths in changed.items():
            if i == my_index:  # changed leaves only ("." only for an entry it added)
                owned.setdefault(key, set()).update(paths)
            elif key in owned:
                owned[key] -= {p for p in paths if p[-1] != "."}
    meta["managedFields"] = _finish(managed, owners, set(after))
