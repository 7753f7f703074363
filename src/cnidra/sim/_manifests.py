"""Loading the manifests a demo runs, and expanding workloads into pods.

The embedded default is the upstream talk's demo, shipped unchanged in ``manifests/`` (a test
keeps it byte-identical to the shared acceptance fixtures). A Deployment becomes ``replicas``
Pods named like the real controllers name them (``<deployment>-<template hash>-<5 chars>``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cnidra.errors import ConfigError

MANIFESTS = Path(__file__).parent / "manifests"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the apiserver's name-suffix alphabet
WORKLOAD_KINDS = {"Deployment", "Pod"}


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def template_hash(template: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return "".join(_ALPHABET[int(c, 16) % len(_ALPHABET)] for c in digest[:10])


@dataclass
class ManifestSet:
    """Objects by role: cluster objects to create first, then workloads."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    workloads: list[dict[str, Any]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in [*self.objects, *self.workloads] if o.get("kind") == kind]


def _files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        elif path.is_file():
            out.append(path)
        else:
            raise ConfigError(f"{path}: no such file or directory", "manifests")
    return out


def load(paths: Sequence[Path]) -> ManifestSet:
    """Read every YAML document of the given files/directories (dirs: *.yaml, sorted)."""
    result = ManifestSet()
    for path in _files(paths):
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}", "manifests") from exc
        for index, doc in enumerate(docs):
            if doc is None:
                continue
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                raise ConfigError(f"{path} document {index}: apiVersion and kind are required",
                                  "manifests")
            target = result.workloads if doc["kind"] in WORKLOAD_KINDS else result.objects
            target.append(doc)
        result.sources.append(str(path))
    return result


def default_manifests(variant: str = "v1") -> list[Path]:
    """The talk's demo. ``v1beta1`` pairs the v1beta1 DRA objects with the same Deployment."""
    if variant == "v1":
        return [MANIFESTS / "v1" / "deviceclass.yaml", MANIFESTS / "v1" / "demo.yaml"]
    if variant == "v1beta1":
        return [MANIFESTS / "v1beta1" / "demo.yaml"]
    if variant == "shared-capacity":
        return [MANIFESTS / "v1" / "deviceclass.yaml", MANIFESTS / "v1" / "shared-capacity.yaml"]
    raise ConfigError(f"unknown demo variant {variant!r} (v1, v1beta1, shared-capacity)",
                      "variant")


def deployment_pods(
    deployment: dict[str, Any], replicas: int | None = None
) -> list[dict[str, Any]]:
    """The Pods a Deployment's ReplicaSet would create (``replicas`` overrides the spec)."""
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    template = spec.get("template") or {}
    count = spec.get("replicas", 1) if replicas is None else replicas
    pod_hash = template_hash(template)
    namespace = meta.get("namespace", "default")
    pods = []
    for _ in range(int(count)):
        tmeta = dict(template.get("metadata") or {})
        labels = {**(tmeta.get("labels") or {}), "pod-template-hash": pod_hash}
        pods.append({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{meta.get('name', 'deploy')}-{pod_hash}-{random_suffix()}",
                "namespace": namespace,
                "labels": labels,
            },
            "spec": json.loads(json.dumps(template.get("spec") or {})),
        })
    return pods
