"""The package's public surface, as others wire against it."""

from __future__ import annotations

import inspect
from pathlib import Path

import cnidra.inventory as inventory
from cnidra.errors import CnidraError


def test_exports() -> None:
    assert inventory.__all__ == [
        "Inventory", "InventoryError", "SysfsFacts", "assess", "read_sysfs", "scan_blocking"]
    assert issubclass(inventory.InventoryError, CnidraError)
    assert inventory.InventoryError("x").retryable


def test_inventory_signature() -> None:
    params = inspect.signature(inventory.Inventory).parameters
    assert {name: p.default for name, p in params.items() if name != "clock"} == {
        "include_default_route_uplink": False, "poll_seconds": 60.0, "coalesce_seconds": 0.5,
        "min_interval": 1.0, "sysfs": Path("/sys"), "gone_retention": 300.0}
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())
    inv = inventory.Inventory()
    assert inv.current is None and inv.scan_count == 0
    assert inv.device_health() == (0, [])
    for name in ("scan_once", "run", "wait_health"):
        assert inspect.iscoroutinefunction(getattr(inv, name))
    assert not inspect.iscoroutinefunction(inv.subscribe)
