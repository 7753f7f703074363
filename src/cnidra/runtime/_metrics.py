"""The daemon's Prometheus metrics, in one registry per driver instance.

Lower layers never import this module: they expose observer callbacks (e.g. the CNI runtime's
exec observer) and ``runtime`` binds them to these metrics when it wires the driver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from cnidra import __version__

# Buckets sized for the NRI budget (2 s) and kubelet calls (45 s deadline).
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 45.0)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        Info("cnidra_build", "cnidra build information", registry=r).info(
            {"version": __version__}
        )
        self.kubelet_calls = Counter(
            "cnidra_kubelet_claims_total",
            "Claims handled in kubelet calls, by call and outcome",
            ["call", "outcome"], registry=r,
        )
        self.kubelet_latency = Histogram(
            "cnidra_kubelet_call_duration_seconds",
            "Duration of NodePrepareResources/NodeUnprepareResources calls",
            ["call", "outcome"], buckets=_LATENCY, registry=r,
        )
        self.nri_hooks = Counter(
            "cnidra_nri_hooks_total", "NRI pod events handled, by event and outcome",
            ["event", "outcome"], registry=r,
        )
        self.nri_hook_latency = Histogram(
            "cnidra_nri_hook_duration_seconds", "Duration of NRI pod event hooks (budget: 2 s)",
            ["event", "outcome"], buckets=_LATENCY, registry=r,
        )
        self.cni_exec_latency = Histogram(
            "cnidra_cni_exec_duration_seconds", "Duration of CNI plugin execs",
            ["plugin", "verb", "outcome"], buckets=_LATENCY, registry=r,
        )
        self.published_devices = Gauge(
            "cnidra_published_devices", "Devices published in this node's ResourceSlices",
            registry=r,
        )
        self.status_write_retries = Counter(
            "cnidra_status_write_retries_total",
            "Retries of ResourceClaim status.devices writes", registry=r,
        )
        self.attachments = Gauge(
            "cnidra_attachments", "Interfaces currently attached by this node's driver",
            registry=r,
        )

    def observe_kubelet(self, call: str, outcome: str, seconds: float, claims: int) -> None:
        self.kubelet_calls.labels(call, outcome).inc(claims)
        self.kubelet_latency.labels(call, outcome).observe(seconds)

    def observe_kubelet_call(self, call: str, seconds: float, ok: int, failed: int) -> None:
        """One kubelet call answering ``ok`` claims and failing ``failed``; the call's latency
        is labelled ``error`` when any claim failed."""
        if ok:
            self.kubelet_calls.labels(call, "ok").inc(ok)
        if failed:
            self.kubelet_calls.labels(call, "error").inc(failed)
        self.kubelet_latency.labels(call, "error" if failed else "ok").observe(seconds)

    def observe_status_retry(self, *_: object) -> None:
        """Count one retried status write (accepts and ignores the writer's arguments)."""
        self.status_write_retries.inc()

    def bind_published_devices(self, read: Callable[[], float]) -> None:
        self.published_devices.set_function(read)

    def bind_attachments(self, read: Callable[[], float]) -> None:
        self.attachments.set_function(read)

    def observe_hook(self, event: str, outcome: str, seconds: float) -> None:
        self.nri_hooks.labels(event, outcome).inc()
        self.nri_hook_latency.labels(event, outcome).observe(seconds)

    def observe_cni_exec(self, plugin: str, verb: str, outcome: str, seconds: float) -> None:
        self.cni_exec_latency.labels(plugin, verb, outcome).observe(seconds)
