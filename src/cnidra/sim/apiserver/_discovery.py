"""Discovery documents: /version, /api, /apis, /apis/<group>, /apis/<group>/<version>."""

from __future__ import annotations

from typing import Any

from cnidra.sim.apiserver._resources import RESOURCE_GROUP, TYPES

_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def version_info(git_version: str) -> dict[str, Any]:
    major, minor = git_version.lstrip("v").split(".")[:2]
    return {"major": major, "minor": minor, "gitVersion": git_version,
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25", "compiler": "gc",
            "platform": "linux/amd64"}


def core_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}


def _group(served: tuple[str, ...]) -> dict[str, Any]:
    versions = [{"groupVersion": f"{RESOURCE_GROUP}/{v}", "version": v} for v in served]
    return {"name": RESOURCE_GROUP, "versions": versions, "preferredVersion": versions[0]}


def group_list(served: tuple[str, ...]) -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(served)]}


def group(served: tuple[str, ...]) -> dict[str, Any]:
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(served)}


def resource_list(group_name: str, version: str) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for rtype in TYPES:
        if rtype.group != group_name or version not in rtype.versions:
            continue
        resources.append({"name": rtype.plural, "singularName": rtype.kind.lower(),
                          "namespaced": rtype.namespaced, "kind": rtype.kind, "verbs": _VERBS})
        if rtype.status:
            resources.append({"name": f"{rtype.plural}/status", "singularName": "",
                              "namespaced": rtype.namespaced, "kind": rtype.kind,
                              "verbs": ["get", "patch", "update"]})
    gv = f"{group_name}/{version}" if group_name else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": resources}
