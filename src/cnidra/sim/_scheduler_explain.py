"""explain_claim: per node, per device, why a claim can or cannot be allocated there.

Pure: takes the objects, writes nothing. Reused by ``cnidra explain``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnidra.sim._scheduler_alloc import ClaimAttempt, SelectorCompiler, Usage, allocate_claim
from cnidra.sim._scheduler_objects import (
    PublishedDevice,
    claim_devices_spec,
    device_on_node,
    published_devices,
    requests_of,
)


@dataclass(frozen=True)
class Explanation:
    """For one claim: the attempt on every node, and notes about the inventory."""

    claim: str
    nodes: Mapping[str, ClaimAttempt]
    notes: tuple[str, ...] = ()

    @property
    def feasible_nodes(self) -> tuple[str, ...]:
        return tuple(name for name, attempt in self.nodes.items() if attempt.ok)

    def lines(self) -> list[str]:
        """Human-readable report, one line per node and per device."""
        out = [f"claim {self.claim}:"]
        out.extend(f"  note: {note}" for note in self.notes)
        for node, attempt in self.nodes.items():
            verdict = "can allocate" if attempt.ok else f"cannot allocate: {attempt.failure}"
            out.append(f"  node {node}: {verdict}")
            out.extend(
                f"    {n.driver}/{n.pool}/{n.device} for request {n.request}: {n.reason}"
                for n in attempt.notes
            )
            out.extend(f"    error: {err}" for err in attempt.runtime_errors)
        return out


def node_names(nodes: Sequence[Mapping[str, Any]] | None,
               devices: Sequence[PublishedDevice]) -> list[Mapping[str, Any]]:
    """The nodes to consider: the given ones, else every node a slice names."""
    if nodes is not None:
        return sorted(nodes, key=lambda n: str((n.get("metadata") or {}).get("name", "")))
    names = sorted({d.node_name for d in devices if d.node_name})
    return [{"metadata": {"name": name}} for name in names]


def usage_of(claims: Sequence[Mapping[str, Any]], devices: Sequence[PublishedDevice],
             skip: str = "") -> Usage:
    """Usage from the allocations of ``claims`` (``skip`` is a ``ns/name`` to leave out)."""
    usage = Usage()
    shareable = {d.key: d.view.allow_multiple_allocations for d in devices}
    for claim in claims:
        cmeta = claim.get("metadata") or {}
        key = f"{cmeta.get('namespace')}/{cmeta.get('name')}"
        allocation = (claim.get("status") or {}).get("allocation")
        if key == skip or not allocation:
            continue
        usage.add_claim(key, (allocation.get("devices") or {}).get("results") or (), shareable)
    return usage


def explain_claim(
    claim: Mapping[str, Any],
    slices: Sequence[Mapping[str, Any]],
    classes: Sequence[Mapping[str, Any]],
    *,
    nodes: Sequence[Mapping[str, Any]] | None = None,
    claims: Sequence[Mapping[str, Any]] = (),
    compile_: SelectorCompiler | None = None,
) -> Explanation:
    """Try ``claim`` on every node with the devices in use by ``claims`` (itself excluded).

    Invalid input (bad slice, bad selector) raises ConfigError naming the field.
    """
    cmeta = claim.get("metadata") or {}
    key = f"{cmeta.get('namespace', 'default')}/{cmeta.get('name', '')}"
    devices, notes = published_devices(slices)
    requests = requests_of(claim_devices_spec(claim))
    by_class = {str((c.get("metadata") or {}).get("name")): c for c in classes}
    usage = usage_of(claims, devices, skip=key)
    rng = random.Random(0)  # noqa: S311 - share IDs of a dry run, not secrets
    attempts: dict[str, ClaimAttempt] = {}
    for node in node_names(nodes, devices):
        name = str((node.get("metadata") or {}).get("name"))
        local = [d for d in devices if device_on_node(d, node)]
        extra = {"compile_": compile_} if compile_ is not None else {}
        attempt, _ = allocate_claim(key, requests, by_class, local, usage, rng=rng, **extra)
        attempts[name] = attempt
    return Explanation(key, attempts, tuple(notes))


__all__ = ["Explanation", "explain_claim", "node_names", "usage_of"]
