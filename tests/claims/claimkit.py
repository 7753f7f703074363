"""Claim builders and the real 1.36 fixture claims for the claims tests (imported by them)."""

from __future__ import annotations

import copy
import json
from typing import Any

from support import SHARED

DRIVER = "cni.dra.networking.x-k8s.io"
API = "cni.networking.x-k8s.io/v1alpha1"
FIXTURES = SHARED / "fixtures/apiserver-1.36/demo"
MACVLAN: dict[str, Any] = {
    "cniVersion": "1.0.0", "name": "macvlan-eth1",
    "plugins": [{"type": "macvlan", "master": "eth1", "mode": "bridge",
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.10.1.0/24"}]]}}],
}

Claim = dict[str, Any]


def cni(if_name: str | None = "net1", config: dict[str, Any] | None = None,
        **extra: Any) -> dict[str, Any]:
    """Opaque parameters of kind CNI (``config`` defaults to the demo's macvlan network)."""
    params: dict[str, Any] = {"apiVersion": API, "kind": "CNI", **extra}
    if if_name is not None:
        params["ifName"] = if_name
    params["config"] = copy.deepcopy(MACVLAN) if config is None else config
    return params


def entry(parameters: Any, requests: list[str] | None = None, source: str = "FromClaim",
          driver: str = DRIVER) -> dict[str, Any]:
    out: dict[str, Any] = {"source": source, "opaque": {"driver": driver, "parameters": parameters}}
    if requests is not None:
        out["requests"] = requests
    return out


def result(request: str = "net", device: str = "eth1", driver: str = DRIVER,
           **extra: Any) -> dict[str, Any]:
    return {"request": request, "driver": driver, "pool": "node1", "device": device, **extra}


def make_claim(
    results: list[dict[str, Any]] | None = None, configs: list[dict[str, Any]] | None = None,
    *, uid: str = "uid-1", name: str = "foo", namespace: str = "default",
    pods: tuple[str, ...] = ("pod-1",), requests: list[dict[str, Any]] | None = None,
    allocated: bool = True,
) -> Claim:
    """A v1 ResourceClaim; claim configs (source FromClaim) are mirrored into spec in order."""
    results = [result()] if results is None else results
    configs = [entry(cni(), ["net"])] if configs is None else configs
    spec_config = [
        {k: v for k, v in c.items() if k != "source"} for c in configs if c["source"] == "FromClaim"
    ]
    requests = requests or [
        {"name": r["request"].split("/")[0], "exactly": {"deviceClassName": "cni-class"}}
        for r in results
    ]
    status: dict[str, Any] = {
        "reservedFor": [{"resource": "pods", "name": f"p-{p}", "uid": p} for p in pods],
    }
    if allocated:
        status["allocation"] = {"devices": {"results": results, "config": configs}}
    return {
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
        "spec": {"devices": {"requests": requests, "config": spec_config}},
        "status": status,
    }


def fixture_claim(name: str) -> Claim:
    """``resourceclaim-<name>.json`` from the real 1.36 API server capture."""
    data: Claim = json.loads((FIXTURES / f"resourceclaim-{name}.json").read_text())
    return data


def device_class() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "deviceclass.v1.json").read_text())
    return data
