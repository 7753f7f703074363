"""``cnidra explain``: why a claim can or cannot be allocated, node by node, device by device.

Evaluates a ResourceClaim's (or a ResourceClaimTemplate's) requests against ResourceSlices with
the DeviceClass selectors through the scheduler stand-in's CEL evaluation
(:func:`cnidra.sim.scheduler.explain_claim`): for every node, each device either was selected
or the line names the selector (class or claim, its index and expression) that rejected it, or
the capacity/sharing rule that did.

Inputs are files (``--manifests``: claims, templates, DeviceClasses, Nodes, already allocated
claims whose devices count as in use; ``--slices``: a List or multi-document file of
ResourceSlices). ``--cluster`` adds the API server's slices, claims and the claim's
DeviceClasses (:func:`read_cluster`, through :func:`cnidra.kube.connect`).

Limits: those of the stand-in (no ``firstAvailable``, constraints, taints or partitionable
devices); node selection by taints or affinity is not considered. Exit 0 when some node can
allocate the claim, 1 when none can, 2 on bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cnidra.cli._validate_docs import Document, load_documents
from cnidra.errors import CnidraError, ConfigError, NotFoundError
from cnidra.kube import connect
from cnidra.sim.scheduler import Explanation, explain_claim

EXIT_FEASIBLE = 0
EXIT_INFEASIBLE = 1
EXIT_BAD_INPUT = 2
CLAIM_KINDS = ("ResourceClaim", "ResourceClaimTemplate")


@dataclass
class Objects:
    """What an explanation needs, by kind."""

    claims: list[Mapping[str, Any]] = field(default_factory=list)  # claims and templates
    slices: list[Mapping[str, Any]] = field(default_factory=list)
    classes: list[Mapping[str, Any]] = field(default_factory=list)
    nodes: list[Mapping[str, Any]] = field(default_factory=list)

    def add(self, docs: Sequence[Document]) -> None:
        for doc in docs:
            target = {"ResourceSlice": self.slices, "DeviceClass": self.classes,
                      "Node": self.nodes}.get(doc.kind)
            if doc.kind in CLAIM_KINDS:
                target = self.claims
            if target is not None:
                target.append(doc.obj)


def _key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def find_claim(objects: Objects, wanted: str) -> Mapping[str, Any]:
    """The claim (or template) named ``[namespace/]name``; a claim wins over a template."""
    key = wanted if "/" in wanted else f"default/{wanted}"
    matches = [c for c in objects.claims if _key(c) == key]
    matches.sort(key=lambda c: c.get("kind") != "ResourceClaim")
    if not matches:
        known = ", ".join(sorted(f"{c.get('kind')} {_key(c)}" for c in objects.claims)) or "none"
        raise ConfigError(f"no ResourceClaim or ResourceClaimTemplate {key} (found: {known})",
                          "CLAIM")
    return matches[0]


def as_claim(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A template as the claim the controller would create from it; a claim unchanged."""
    if obj.get("kind") != "ResourceClaimTemplate":
        return dict(obj)
    meta = obj.get("metadata") or {}
    spec = (obj.get("spec") or {}).get("spec") or {}
    return {"apiVersion": obj.get("apiVersion"), "kind": "ResourceClaim",
            "metadata": {"name": meta.get("name", ""), "namespace": meta.get("namespace")
                         or "default"}, "spec": spec}


def explain(objects: Objects, wanted: str) -> tuple[Mapping[str, Any], Explanation]:
    """Explain the claim ``wanted`` against ``objects``."""
    source = find_claim(objects, wanted)
    if not objects.slices:
        raise ConfigError("no ResourceSlices given: pass --slices FILE (or --cluster)", "slices")
    allocated = [c for c in objects.claims if c.get("kind") == "ResourceClaim"]
    return source, explain_claim(as_claim(source), objects.slices, objects.classes,
                                 nodes=objects.nodes or None, claims=allocated)


def render(source: Mapping[str, Any], explanation: Explanation) -> list[str]:
    kind = str(source.get("kind"))
    lines = [f"{kind} {explanation.claim}:"]
    lines.extend(f"  note: {note}" for note in explanation.notes)
    if not explanation.nodes:
        lines.append("  no node publishes devices in the given ResourceSlices")
    for node, attempt in explanation.nodes.items():
        if attempt.ok:
            got = ", ".join(f"request {r.get('request')} -> {r.get('driver')}/{r.get('pool')}/"
                            f"{r.get('device')}" for r in attempt.results or ())
            lines.append(f"  node {node}: can allocate: {got or 'no devices requested'}")
        else:
            lines.append(f"  node {node}: cannot allocate: {attempt.failure}")
        lines.extend(f"    {n.driver}/{n.pool}/{n.device} for request {n.request}: {n.reason}"
                     for n in attempt.notes)
        lines.extend(f"    error: {err}" for err in attempt.runtime_errors)
    verdict = (f"would be allocated on {', '.join(explanation.feasible_nodes)}"
               if explanation.feasible_nodes else "cannot be allocated on any node")
    lines.append(f"  result: {verdict}")
    return lines


def to_json(source: Mapping[str, Any], explanation: Explanation) -> dict[str, Any]:
    return {
        "kind": source.get("kind"), "claim": explanation.claim, "notes": list(explanation.notes),
        "feasibleNodes": list(explanation.feasible_nodes),
        "nodes": {node: {
            "ok": attempt.ok, "failure": attempt.failure, "results": list(attempt.results or ()),
            "devices": [{"request": n.request, "driver": n.driver, "pool": n.pool,
                         "device": n.device, "selected": n.selected, "reason": n.reason}
                        for n in attempt.notes],
            "errors": list(attempt.runtime_errors)} for node, attempt in explanation.nodes.items()},
    }


def _class_names(obj: Mapping[str, Any]) -> set[str]:
    """The DeviceClasses a claim's requests name (v1 ``exactly``/``firstAvailable``, v1beta1)."""
    spec = (as_claim(obj).get("spec") or {}).get("devices") or {}
    names: set[str] = set()
    for request in spec.get("requests") or ():
        if not isinstance(request, Mapping):
            continue
        bodies = [request.get("exactly") or request, *(request.get("firstAvailable") or ())]
        names.update(b["deviceClassName"] for b in bodies
                     if isinstance(b, Mapping) and isinstance(b.get("deviceClassName"), str))
    return names


async def read_cluster(kubeconfig: str, objects: Objects, wanted: str,
                       *, timeout: float = 10.0) -> None:
    """Add the cluster's ResourceSlices, ResourceClaims (their allocations count as in use)
    and the DeviceClasses the claim names to ``objects``.

    Objects given in files win over the cluster's (same kind and name). Templates are not
    listed from the cluster: pass a template with ``--manifests``. Needs list on
    resourceslices and resourceclaims and get on deviceclasses.
    """
    kube = await connect(kubeconfig or None, timeout=timeout)
    try:
        slices, _ = await kube.list_slices()
        objects.slices.extend(slices)
        claims, _ = await kube.list_claims()
        local = {_key(c) for c in objects.claims if c.get("kind") == "ResourceClaim"}
        objects.claims.extend({"apiVersion": kube.api.group_version, "kind": "ResourceClaim",
                               **c} for c in claims if _key(c) not in local)
        have = {str((c.get("metadata") or {}).get("name")) for c in objects.classes}
        for name in sorted(_class_names(find_claim(objects, wanted)) - have):
            try:
                objects.classes.append(await kube.get_device_class(name))
            except NotFoundError:
                continue  # explain reports the missing class for the request
    finally:
        await kube.close()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "explain", help="explain, per node and device, whether a claim can be allocated",
        description="Evaluate a ResourceClaim's or ResourceClaimTemplate's requests against "
                    "ResourceSlices with the DeviceClass selectors, like kube-scheduler. Exit "
                    f"{EXIT_FEASIBLE} when some node can allocate it, {EXIT_INFEASIBLE} when "
                    f"none can, {EXIT_BAD_INPUT} on bad input.",
    )
    parser.add_argument("claim", metavar="CLAIM",
                        help="[NAMESPACE/]NAME of a ResourceClaim or ResourceClaimTemplate")
    parser.add_argument("--slices", action="append", default=[], metavar="FILE",
                        help="ResourceSlices (a List or multi-document YAML/JSON), repeatable")
    parser.add_argument("--manifests", nargs="+", action="extend", default=[], metavar="FILE",
                        help="claims, templates, DeviceClasses, Nodes (YAML/JSON)")
    parser.add_argument("--cluster", action="store_true",
                        help="also read slices, claims and DeviceClasses from the API server "
                             "(a template must come from --manifests)")
    parser.add_argument("--kubeconfig", default="", metavar="FILE",
                        help="with --cluster: kubeconfig (default: in-cluster)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    objects = Objects()
    try:
        for path in [*args.manifests, *args.slices]:
            objects.add(load_documents(path))
        if args.cluster:
            asyncio.run(read_cluster(args.kubeconfig, objects, args.claim))
        source, explanation = explain(objects, args.claim)
    except CnidraError as exc:
        sys.stderr.write(f"cnidra explain: {exc}\n")
        return EXIT_BAD_INPUT
    if args.json:
        sys.stdout.write(json.dumps(to_json(source, explanation), indent=2) + "\n")
    else:
        sys.stdout.write("\n".join(render(source, explanation)) + "\n")
    return EXIT_FEASIBLE if explanation.feasible_nodes else EXIT_INFEASIBLE
