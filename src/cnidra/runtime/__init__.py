"""Wiring: settings, logging, guarded root tasks, ordered start and shutdown, health, readiness
and metrics server — the ``Driver`` is the one place that builds and connects every part.

Job: ``Driver(settings).run()`` starts logging, metrics and the health server, the kube client
(discovery), the CNI runtime, the claim state, the status writer, the attacher, the inventory
and publisher, the kubelet plugin and the NRI plugin, in that order; each long-running part is a
named root task (an unexpected end stops the daemon with exit code 1); SIGTERM/SIGINT stop it in
order (kubelet plugin, NRI hooks drained, NRI, status writer drained, inventory/publisher, kube
client, health server) with exit code 0.

Limits: one driver per process; metrics are bound through observer callbacks and thin wrappers
(``_observe``), never imported by lower layers; ResourceSlices stay on exit unless
``cleanup_on_exit`` (the kubelet wipes them 30 s after the plugin is gone).
"""

from cnidra.runtime._driver import EXIT_FAILED, EXIT_OK, READINESS, SHUTDOWN_ORDER, Driver
from cnidra.runtime._health import HealthServer
from cnidra.runtime._logging import (
    JSONFormatter,
    TextFormatter,
    current_fields,
    log_fields,
    setup_logging,
)
from cnidra.runtime._metrics import Metrics
from cnidra.runtime._observe import ObservedClaims, ObservedHandler
from cnidra.runtime._parts import Builder
from cnidra.runtime._settings import Settings, add_arguments, describe, from_sources
from cnidra.runtime._tasks import RootTasks
from cnidra.runtime._wiring import ProductionBuilder

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "READINESS",
    "SHUTDOWN_ORDER",
    "Builder",
    "Driver",
    "HealthServer",
    "JSONFormatter",
    "Metrics",
    "ObservedClaims",
    "ObservedHandler",
    "ProductionBuilder",
    "RootTasks",
    "Settings",
    "TextFormatter",
    "add_arguments",
    "current_fields",
    "describe",
    "from_sources",
    "log_fields",
    "setup_logging",
]
