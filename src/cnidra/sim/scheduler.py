"""Stand-in for kube-scheduler's DRA plugin and the resourceclaim controller (no HTTP).

``Scheduler(store).sync()`` does one pass over an injected ObjectStore: create claims from
templates for pods, release claims of deleted pods, then place every pending pod on the first
node (by name) where all its claims can be allocated, writing ``status.allocation`` (results,
configs FromClass then FromClaim, nodeSelector, allocationTimestamp), ``status.reservedFor``,
the delete-protection finalizer, and binding the pod (``spec.nodeName``). Unschedulable pods get
a ``PodScheduled=False`` condition with the scheduler's message and per-node, per-device
explanations from the CEL engine.

Limits: no preemption, scoring or spreading; no node resources, taints or affinity; no
``firstAvailable`` (prioritized lists), constraints, partitionable devices or device taints;
a CEL runtime error makes the device not match and is reported (the real allocator aborts
the whole pod with that error instead). One pass per ``sync()``: callers re-run it.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cnidra.cel import SelectorSet, compile_selectors
from cnidra.errors import ConfigError, KubeAPIError
from cnidra.sim._scheduler_alloc import ClaimAttempt, DeviceNote, allocate_claim
from cnidra.sim._scheduler_controller import (
    FINALIZER,
    POD_CLAIM_NAME,
    ObjectStore,
    claim_name,
    ensure_pod_claims,
    generate_name,
    meta,
    release_after_pods,
)
from cnidra.sim._scheduler_explain import Explanation, explain_claim, node_names, usage_of
from cnidra.sim._scheduler_objects import (
    ADMIN_ACCESS_LABEL,
    PublishedDevice,
    admin_access_status,
    check_admin_access,
    claim_devices_spec,
    device_on_node,
    published_devices,
    requests_of,
    selector_matches,
)

_PREEMPTION = "Preemption is not helpful for scheduling"


@dataclass(frozen=True)
class PodOutcome:
    """What happened to one pod in a pass."""

    pod: str
    node: str | None
    message: str = ""
    per_node: Mapping[str, tuple[ClaimAttempt, ...]] = field(default_factory=dict)
    runtime_errors: tuple[str, ...] = ()


@dataclass
class SyncReport:
    scheduled: dict[str, str] = field(default_factory=dict)  # pod -> node
    unschedulable: dict[str, PodOutcome] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # pod -> controller error (e.g. 422)
    released: list[str] = field(default_factory=list)  # claims deallocated or deleted


def unschedulable_message(total: int, reason: str, count: int | None = None) -> str:
    """kube-scheduler's FailedScheduling text for ``count`` nodes failing with ``reason``."""
    count = total if count is None else count
    return (f"0/{total} nodes are available: {count} {reason}. still not schedulable, "
            f"preemption: 0/{total} nodes are available: {total} {_PREEMPTION}.")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key(obj: Mapping[str, Any]) -> str:
    m = meta(obj)
    return f"{m.get('namespace', '')}/{m.get('name', '')}"


class Scheduler:
    """One scheduler + claim controller over ``store``; deterministic given ``rng``."""

    def __init__(self, store: ObjectStore, *, rng: random.Random | None = None,
                 clock: Callable[[], dt.datetime] = _utc_now,
                 scheduler_name: str = "default-scheduler") -> None:
        self._store = store
        self._rng = rng or random.Random()  # noqa: S311 - simulated names and share IDs
        self._clock = clock
        self._scheduler_name = scheduler_name
        self._compiled: dict[tuple[str, str, tuple[str, ...]], SelectorSet] = {}

    def _compile(self, selectors: Sequence[Mapping[str, Any]] | None,
                 owner: Literal["class", "claim"], owner_name: str, path: str) -> SelectorSet:
        exprs = tuple(str((s.get("cel") or {}).get("expression")) for s in selectors or ())
        cache_key = (owner, owner_name, exprs)
        if cache_key not in self._compiled:
            self._compiled[cache_key] = compile_selectors(selectors, owner, owner_name, path)
        return self._compiled[cache_key]

    def sync(self) -> SyncReport:
        """Controller pass, release pass, then one scheduling attempt per pending pod."""
        report = SyncReport()
        for pod in sorted(self._store.list("pods"), key=_key):
            if meta(pod).get("deletionTimestamp"):
                continue
            try:
                ensure_pod_claims(self._store, pod, self._rng)
            except KubeAPIError as exc:
                report.errors[_key(pod)] = str(exc.body.get("message") or exc)
            except LookupError as exc:
                report.errors[_key(pod)] = str(exc)
        report.released = release_after_pods(self._store)
        for pod in sorted(self._store.list("pods"), key=_key):
            spec = pod.get("spec") or {}
            if spec.get("nodeName") or meta(pod).get("deletionTimestamp"):
                continue
            if spec.get("schedulerName", self._scheduler_name) != self._scheduler_name:
                continue
            if _key(pod) in report.errors:
                continue
            outcome = self.schedule_pod(pod)
            if outcome.node:
                report.scheduled[outcome.pod] = outcome.node
            else:
                report.unschedulable[outcome.pod] = outcome
        return report

    def _pod_claims(self, pod: Mapping[str, Any]) -> list[dict[str, Any]] | str:
        namespace = str(meta(pod).get("namespace", "default"))
        statuses = {s.get("name"): s.get("resourceClaimName")
                    for s in (pod.get("status") or {}).get("resourceClaimStatuses") or ()}
        claims: list[dict[str, Any]] = []
        for entry in (pod.get("spec") or {}).get("resourceClaims") or ():
            name = entry.get("resourceClaimName") or statuses.get(entry.get("name"))
            claim = self._store.get("resourceclaims", name, namespace) if name else None
            if claim is None:
                return (f'pod "{namespace}/{meta(pod).get("name")}": waiting for resource claim '
                        f'for pod claim "{entry.get("name")}" to be created')
            claims.append(claim)
        return claims

    def schedule_pod(self, pod: dict[str, Any]) -> PodOutcome:
        """Place ``pod`` on the first node where all its claims fit, or say why nowhere."""
        key = _key(pod)
        nodes = [n for n in self._store.list("nodes")
                 if not (n.get("spec") or {}).get("unschedulable")]
        claims_or_reason = self._pod_claims(pod)
        if isinstance(claims_or_reason, str):
            return self._unschedulable(pod, PodOutcome(
                key, None, f"0/{len(nodes)} nodes are available: {claims_or_reason}."))
        claims = claims_or_reason
        devices, _notes = published_devices(self._store.list("resourceslices"))
        classes = {str(meta(c).get("name")): c for c in self._store.list("deviceclasses")}
        all_claims = self._store.list("resourceclaims")
        usage = usage_of(all_claims, devices)
        per_node: dict[str, tuple[ClaimAttempt, ...]] = {}
        errors: list[str] = []
        for node in node_names(nodes, devices):
            node_name = str(meta(node).get("name"))
            local = [d for d in devices if device_on_node(d, node)]
            work, attempts, fits = usage, [], True
            for claim in claims:
                allocation = (claim.get("status") or {}).get("allocation")
                if allocation:
                    selector = allocation.get("nodeSelector")
                    if selector and not selector_matches(selector, node):
                        attempts.append(ClaimAttempt(None, (), f"claim {_key(claim)} is "
                                                     "allocated on another node"))
                        fits = False
                        break
                    continue
                try:
                    requests = requests_of(claim_devices_spec(claim))
                    attempt, work = allocate_claim(
                        _key(claim), requests, classes, local, work, rng=self._rng,
                        compile_=self._compile)
                except ConfigError as exc:
                    attempt = ClaimAttempt(None, (), f"claim {_key(claim)}: {exc}")
                attempts.append(attempt)
                errors.extend(e for e in attempt.runtime_errors if e not in errors)
                if not attempt.ok:
                    fits = False
                    break
            per_node[node_name] = tuple(attempts)
            if fits:
                self._commit(pod, node_name, claims, attempts, local)
                return PodOutcome(key, node_name, per_node=per_node)
        message = unschedulable_message(len(nodes), "cannot allocate all claims")
        return self._unschedulable(pod, PodOutcome(key, None, message, per_node, tuple(errors)))

    def _unschedulable(self, pod: dict[str, Any], outcome: PodOutcome) -> PodOutcome:
        condition = {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                     "lastTransitionTime": self._timestamp(), "reason": "Unschedulable",
                     "message": outcome.message}
        status = pod.setdefault("status", {})
        status["phase"] = "Pending"
        status["conditions"] = [c for c in status.get("conditions") or ()
                                if c.get("type") != "PodScheduled"] + [condition]
        self._store.update("pods", pod)
        return outcome

    def _timestamp(self) -> str:
        return self._clock().astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _commit(self, pod: dict[str, Any], node: str, claims: list[dict[str, Any]],
                attempts: list[ClaimAttempt], local: list[PublishedDevice]) -> None:
        pmeta = meta(pod)
        reservation = {"resource": "pods", "name": pmeta.get("name"), "uid": pmeta.get("uid")}
        by_key = {d.key: d for d in local}
        pending = iter(attempts)
        for claim in claims:
            status = claim.setdefault("status", {})
            if not status.get("allocation"):
                attempt = next(pending)
                status["allocation"] = self._allocation(claim, attempt, node, by_key)
                finalizers = claim.setdefault("metadata", {}).setdefault("finalizers", [])
                if FINALIZER not in finalizers:
                    finalizers.append(FINALIZER)
            reserved = status.setdefault("reservedFor", [])
            if all(r.get("uid") != reservation["uid"] for r in reserved):
                reserved.append(dict(reservation))
            self._store.update("resourceclaims", claim)
        pod.setdefault("spec", {})["nodeName"] = node
        status = pod.setdefault("status", {})
        status["phase"] = "Pending"
        status["conditions"] = [c for c in status.get("conditions") or ()
                                if c.get("type") != "PodScheduled"] + [{
            "type": "PodScheduled", "status": "True", "lastProbeTime": None,
            "lastTransitionTime": self._timestamp()}]
        self._store.update("pods", pod)

    def _allocation(self, claim: Mapping[str, Any], attempt: ClaimAttempt, node: str,
                    by_key: Mapping[tuple[str, str, str], PublishedDevice]) -> dict[str, Any]:
        results = [dict(r) for r in attempt.results or ()]
        classes = {str(meta(c).get("name")): c for c in self._store.list("deviceclasses")}
        devices_spec = claim_devices_spec(claim)
        config: list[dict[str, Any]] = []
        for request in requests_of(devices_spec):
            for entry in (classes[request.device_class].get("spec") or {}).get("config") or ():
                config.append({"source": "FromClass", "requests": [request.name],
                               **{k: v for k, v in entry.items() if k != "requests"}})
        for entry in devices_spec.get("config") or ():
            config.append({"source": "FromClaim", **entry})
        allocation: dict[str, Any] = {"devices": {"results": results}}
        if config:
            allocation["devices"]["config"] = config
        used = [by_key[(r["driver"], r["pool"], r["device"])] for r in results]
        if any(d.node_name for d in used):
            allocation["nodeSelector"] = {"nodeSelectorTerms": [{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": [node]}]}]}
        else:
            selector = next((d.node_selector for d in used if d.node_selector), None)
            if selector is not None:
                allocation["nodeSelector"] = selector
        allocation["allocationTimestamp"] = self._timestamp()
        return allocation


__all__ = [
    "ADMIN_ACCESS_LABEL",
    "FINALIZER",
    "POD_CLAIM_NAME",
    "ClaimAttempt",
    "DeviceNote",
    "Explanation",
    "ObjectStore",
    "PodOutcome",
    "Scheduler",
    "SyncReport",
    "admin_access_status",
    "check_admin_access",
    "claim_name",
    "explain_claim",
    "generate_name",
    "unschedulable_message",
]
