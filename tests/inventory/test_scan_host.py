"""A real scan of the test process's own namespace (read-only; netlink dumps need no root)."""

from __future__ import annotations

import socket
from pathlib import Path

from cnidra.inventory import Inventory


async def test_scan_of_this_namespace_matches_the_kernel() -> None:
    inv = Inventory(include_default_route_uplink=True, clock=lambda: 42.0)
    snap = await inv.scan_once()
    assert inv.current is snap and snap.taken_at == 42.0
    names = [d.if_name for d in snap.devices]
    assert names == sorted(names)
    assert "lo" in snap.excluded and "lo" not in names
    kernel = {name for _, name in socket.if_nameindex()}
    assert set(names) | set(snap.excluded) == kernel
    for dev in snap.devices:
        assert dev.index == socket.if_nametoindex(dev.if_name)
        mtu = int(Path(f"/sys/class/net/{dev.if_name}/mtu").read_text())
        assert dev.mtu == mtu
        assert dev.mac == Path(f"/sys/class/net/{dev.if_name}/address").read_text().strip()
    version, health = inv.device_health()
    assert version == 1 and [h.device for h in health] == [d.name for d in snap.devices]

    without = await Inventory().scan_once()
    assert set(without.excluded) >= {"lo"}
    assert {d.if_name for d in without.devices} <= set(names)
