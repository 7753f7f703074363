"""The demo's kubectl-like report: what it shows and how it prints it.

:class:`PodView` and :class:`DemoResult` hold what one run found; the functions render them and
the objects from a store as ``kubectl`` would (plain tables, the YAML of a claim's
``status.devices``, the sandbox retries, what was left after the scale-down, the summary line).
They are pure: the tests call them on stored objects. :class:`Printer` writes the transcript.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import yaml

from cnidra.sim._cluster import DRIVER, Leftovers, SandboxRetry


@dataclass
class PodView:
    """One pod as the report shows it."""

    name: str
    node: str
    phase: str
    interface: str = ""
    address: str = ""
    mac: str = ""
    health: str = ""
    reason: str = ""
    kind: str = ""  # link kind of the interface (macvlan...)
    up: bool = False


@dataclass
class DemoResult:
    """Figures and verdicts of one run (``ok``: every check passed)."""

    pods: list[PodView] = field(default_factory=list)
    by_node: dict[str, int] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)  # pod -> scheduler's reason
    claims_ready: int = 0
    claims_total: int = 0
    ping: tuple[bool, str] | None = None
    leftovers: Leftovers | None = None
    timings: dict[str, float] = field(default_factory=dict)
    residue: list[str] = field(default_factory=list)  # still there after the cluster stopped
    problems: list[str] = field(default_factory=list)
    retried: list[SandboxRetry] = field(default_factory=list)  # sandbox attempts retried

    @property
    def addresses(self) -> list[str]:
        return [p.address for p in self.pods if p.address]

    @property
    def ok(self) -> bool:
        return not self.problems


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """kubectl's plain table: upper-case headers, columns padded to the widest cell + 3."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = ["   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in [list(headers), *rows]]
    return "\n".join(lines)


def _attr(device: Mapping[str, Any], name: str) -> str:
    attrs = device.get("attributes") or device.get("basic", {}).get("attributes") or {}
    value = attrs.get(name) or attrs.get(f"{DRIVER}/{name}") or {}
    found = next((v for k, v in value.items() if k in ("string", "int", "bool", "version")), "")
    return str(found)


def slices_table(slices: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for s in sorted(slices, key=lambda s: (str(s["spec"].get("nodeName")), s["metadata"]["name"])):
        spec = s["spec"]
        devices = ", ".join(
            f"{d['name']} (name={_attr(d, 'name') or '-'})" for d in spec.get("devices") or [])
        rows.append([s["metadata"]["name"], str(spec.get("nodeName", "")), spec["driver"],
                     spec["pool"]["name"], devices or "<none>"])
    return table(["NAME", "NODE", "DRIVER", "POOL", "DEVICES (name attribute)"], rows)


def claim_state(claim: Mapping[str, Any]) -> str:
    """kubectl's STATE column of a ResourceClaim."""
    status = claim.get("status") or {}
    if (claim.get("metadata") or {}).get("deletionTimestamp"):
        return "deleted"
    parts = ["allocated"] if status.get("allocation") else ["pending"]
    if status.get("reservedFor"):
        parts.append("reserved")
    return ",".join(parts)


def ready_status(entry: Mapping[str, Any]) -> str:
    cond = next((c for c in entry.get("conditions") or [] if c.get("type") == "Ready"), None)
    return str(cond.get("status")) if cond else "-"


def claims_table(claims: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for c in sorted(claims, key=lambda c: c["metadata"]["name"]):
        results = (((c.get("status") or {}).get("allocation") or {}).get("devices") or {}).get(
            "results") or []
        devices = {(d.get("pool"), d.get("device"), d.get("shareID")): d
                   for d in (c.get("status") or {}).get("devices") or []}
        allocated = ", ".join(f"{r['pool']}/{r['device']}" for r in results) or "-"
        ready = ",".join(ready_status(devices.get((r["pool"], r["device"], r.get("shareID")), {}))
                         for r in results) or "-"
        rows.append([c["metadata"]["name"], claim_state(c), allocated, ready])
    return table(["NAME", "STATE", "DEVICE", "READY"], rows)


def pods_table(pods: Sequence[PodView], *, health: bool = False) -> str:
    iface = next((p.interface for p in pods if p.interface), "net1")
    headers = ["NAME", "STATUS", "NODE", f"{iface.upper()} ADDRESS", f"{iface.upper()} MAC"]
    if health:
        headers.append("DEVICE HEALTH")
    rows = []
    for p in sorted(pods, key=lambda p: p.name):
        row = [p.name, p.phase, p.node or "<none>", p.address or "-", p.mac or "-"]
        if health:
            row.append(p.health or "-")
        rows.append(row)
    return table(headers, rows)


def status_devices_yaml(claim: Mapping[str, Any]) -> str:
    devices = (claim.get("status") or {}).get("devices") or []
    return yaml.safe_dump(devices, sort_keys=False, default_flow_style=False).rstrip()


def leftovers_line(left: Leftovers) -> str:
    counts = ", ".join(f"{n} {what}" for what, n in left.counts().items())
    if left.clean:
        return f"nothing left: {counts}"
    details = [*left.pod_namespaces, *(f"{node}: {link}" for node, links in left.links.items()
                                       for link in links),
               *(f"{node}: lease {lease}" for node, leases in left.ipam_leases.items()
                 for lease in leases),
               *(f"{node}: checkpoint {uid}" for node, uids in left.checkpoint.items()
                 for uid in uids), *left.pods, *left.claims]
    return f"LEFT BEHIND: {counts} ({'; '.join(details[:8])})"


def retries_lines(retried: Sequence[SandboxRetry]) -> list[str]:
    """``2 sandboxes retried after: RunPodSandbox did not finish within 1.75s``, one line per
    reason (most frequent first), and which pods needed how many attempts."""
    counts = Counter(r.reason for r in retried)
    lines = []
    for reason, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"{count} sandbox{'es' if count != 1 else ''} retried after: {reason}")
    if retried:
        pods = Counter(r.pod for r in retried)
        lines.append("  (kubelet retries with a new sandbox; " + ", ".join(
            f"{pod}: {n} failed attempt{'s' if n != 1 else ''}"
            for pod, n in sorted(pods.items())) + ")")
    return lines


def summary_line(result: DemoResult) -> str:
    running = [p for p in result.pods if p.phase == "Running"]
    parts = []
    total = len(result.pods) + len(result.pending)
    for node, count in sorted(result.by_node.items()):
        parts.append(f"{count}/{total} pods on {node}")
    nets = sorted({str(ipaddress.ip_interface(a).network) for a in result.addresses})
    if running:
        distinct = len(set(result.addresses))
        kinds = sorted({p.kind for p in running if p.kind})
        up = sum(p.up for p in running)
        parts.append(f"{distinct} distinct {running[0].interface or 'net1'} addresses in "
                     f"{', '.join(nets) or '-'} ({'/'.join(kinds) or 'no link'}, "
                     f"{up}/{len(running)} UP)")
        parts.append(f"{result.claims_ready}/{result.claims_total} claims Ready")
    if result.pending:
        parts.append(f"{len(result.pending)} pods unschedulable")
    if result.retried:
        parts.append(f"{len(result.retried)} sandboxes retried")
    if result.ping is not None:
        parts.append("ping ok" if result.ping[0] else "ping FAILED")
    if result.leftovers is not None:
        parts.append("nothing left" if result.leftovers.clean else "LEFTOVERS")
    return "; ".join(parts)


class Printer:
    """Section headers like a shell transcript; flushes so the user sees progress."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.closed = False

    def line(self, text: str = "") -> None:
        """Write a line; once the reader is gone (``| head``) stay quiet and let the run
        finish and clean up."""
        if self.closed:
            return
        try:
            self.out.write(text + "\n")
            self.out.flush()
        except BrokenPipeError:
            self.closed = True

    def section(self, command: str, note: str = "") -> None:
        self.line()
        self.line(f"$ {command}" + (f"    # {note}" if note else ""))
