"""docs/metrics.md lists exactly the metrics the driver exports, with their types and labels."""

from __future__ import annotations

import re
from pathlib import Path

from cnidra.runtime import READINESS, Metrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def documented() -> dict[str, tuple[str, set[str]]]:
    rows: dict[str, tuple[str, set[str]]] = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"^\| `(cnidra_[a-z_]+)` \| (\w+) \|([^|]*)\|", line)
        if m:
            rows[m[1]] = (m[2], set(re.findall(r"`(\w+)`", m[3])))
    return rows


def exported() -> dict[str, tuple[str, set[str]]]:
    out: dict[str, tuple[str, set[str]]] = {}
    metrics = Metrics()
    metrics.observe_kubelet_call("prepare", 0.1, 1, 0)
    metrics.observe_hook("RunPodSandbox", "ok", 0.1)
    metrics.observe_cni_exec("macvlan", "ADD", "ok", 0.1)
    metrics.observe_status_retry()
    for family in metrics.registry.collect():
        labels: set[str] = set()
        for sample in family.samples:
            labels |= set(sample.labels) - {"le"}
        name = family.name + ("_total" if family.type == "counter" else "")
        name = name + "_info" if family.type == "info" else name
        out[name] = (family.type, labels)
    return out


def test_metrics_doc_matches_the_registry() -> None:
    assert documented() == exported()


def test_readiness_checks_are_documented() -> None:
    text = DOC.read_text()
    for name in READINESS:
        assert f"`{name}`" in text
