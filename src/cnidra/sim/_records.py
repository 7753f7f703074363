"""The embedded cluster's plain records: nodes, running pods, failures, sandbox retries and
their one-line reasons, leftovers, the outcome of a scale, and :class:`ClusterError`.

Data only (no I/O): :mod:`cnidra.sim._cluster` fills them, the demo and the tests read them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnidra.errors import CnidraError
from cnidra.model.claims import ClaimRef
from cnidra.sim._fabric import NodeSpec
from cnidra.sim._node import DriverPaths, DriverProcess
from cnidra.sim.kubelet import KubeletStandIn
from cnidra.sim.runtime import NRIRuntime, SimPod
from cnidra.sim.scheduler import SyncReport

DRIVER = "cni.dra.networking.x-k8s.io"


class ClusterError(CnidraError):
    """The embedded cluster could not be built, or a component misbehaved (names which)."""


@dataclass
class SimNode:
    """One node of the embedded cluster and the pieces running for it."""

    spec: NodeSpec
    netns: str
    paths: DriverPaths
    kubeconfig: Path
    url: str = ""
    driver: DriverProcess | None = None
    kubelet: KubeletStandIn | None = None
    runtime: NRIRuntime | None = None
    metrics_port: int = 0
    pod_count: int = 0

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class RunningPod:
    """A pod whose sandbox runs: where, which netns, and the claims prepared for it."""

    namespace: str
    name: str
    uid: str
    node: str
    sandbox: SimPod
    netns: str  # the namespace name (``ip -n``)
    claims: tuple[ClaimRef, ...]


@dataclass
class PodFailure:
    pod: str
    node: str
    reason: str


@dataclass(frozen=True)
class SandboxRetry:
    """One failed sandbox attempt that was torn down and retried: ``reason`` names the step
    and the error without the pod (so equal reasons of different pods can be counted)."""

    pod: str
    node: str
    attempt: int
    reason: str


_HOOK_PREFIX = re.compile(r"^(?:NRI plugin failed \w+: )?cnidra: (?P<event>\w+) for pod \S+ "
                          r"\(sandbox [0-9a-f]+\)(?P<colon>:?) ?")
_CODE_SUFFIX = re.compile(r" \(code \d+\)$")


def retry_reason(exc: BaseException) -> str:
    """``RunPodSandbox did not finish within 1.75s`` out of the hook's error for one pod."""
    text = _CODE_SUFFIX.sub("", str(exc))
    match = _HOOK_PREFIX.match(text)
    if match is None:
        return f"RunPodSandbox: {text}"
    rest = text[match.end():]
    return f"{match['event']}{': ' if match['colon'] else ' '}{rest}"


BeforeSandbox = Callable[["SimNode", SimPod, int], Awaitable[None]]


@dataclass
class Leftovers:
    """What is still there after the pods are gone (all empty: a clean node)."""

    pod_namespaces: list[str] = field(default_factory=list)
    links: dict[str, list[str]] = field(default_factory=dict)  # node -> unexpected links
    ipam_leases: dict[str, list[str]] = field(default_factory=dict)  # node -> lease files
    checkpoint: dict[str, list[str]] = field(default_factory=dict)  # node -> claim UIDs
    pods: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.pod_namespaces or any(self.links.values())
                    or any(self.ipam_leases.values()) or any(self.checkpoint.values())
                    or self.pods or self.claims)

    def counts(self) -> dict[str, int]:
        return {"interfaces": sum(len(v) for v in self.links.values()),
                "pod namespaces": len(self.pod_namespaces),
                "IPAM leases": sum(len(v) for v in self.ipam_leases.values()),
                "checkpoint entries": sum(len(v) for v in self.checkpoint.values()),
                "pods": len(self.pods), "claims": len(self.claims)}


@dataclass
class ScaleResult:
    started: list[RunningPod] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    failed: list[PodFailure] = field(default_factory=list)
    report: SyncReport = field(default_factory=SyncReport)
    retried: list[SandboxRetry] = field(default_factory=list)


def key_of(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def meta_of(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}
