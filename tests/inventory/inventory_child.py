"""Runs an ``Inventory`` inside a network namespace for the root tests.

Started as ``ip netns exec NS python inventory_child.py once|watch [options]`` so that both
netlink and ``/sys`` (remounted by ``ip netns exec``) belong to that namespace, exactly as the
driver runs in a node namespace. Prints one JSON object per line:

* ``once``: ``{"kind": "snapshot", ...}`` and exits;
* ``watch``: the run loop; a ``snapshot`` line per published snapshot and a ``health`` line per
  health version, each stamped with ``time.monotonic()`` (one clock for the whole machine, so the
  parent can measure from the moment it changed a link), and a ``scan`` line whenever the scan
  count moved (polled every 10 ms). SIGTERM cancels everything and prints
  ``{"kind": "closed"}`` before exiting 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import signal
import sys
import time
from typing import Any

from cnidra.inventory import Inventory
from cnidra.model.devices import Snapshot


def emit(kind: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"kind": kind, "mono": time.monotonic(), **fields}) + "\n")
    sys.stdout.flush()


def snapshot_fields(inv: Inventory, snap: Snapshot) -> dict[str, Any]:
    return {
        "scans": inv.scan_count,
        "devices": [dataclasses.asdict(d) for d in snap.devices],
        "excluded": list(snap.excluded),
    }


async def watch(inv: Inventory) -> None:
    async def snapshots() -> None:
        async for snap in inv.subscribe():
            emit("snapshot", **snapshot_fields(inv, snap))

    async def health() -> None:
        version = 0
        while True:
            version, items = await inv.wait_health(version, timeout=30)
            emit("health", version=version, items=[
                {"device": h.device, "health": h.health.name, "message": h.message,
                 "since": h.since} for h in items])

    async def scans() -> None:  # every scan, also those that changed nothing
        seen = 0
        while True:
            await asyncio.sleep(0.01)
            if inv.scan_count != seen:
                seen = inv.scan_count
                emit("scan", scans=seen)

    async with asyncio.TaskGroup() as group:
        group.create_task(inv.run())
        group.create_task(scans())
        group.create_task(snapshots())
        group.create_task(health())


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["once", "watch"])
    parser.add_argument("--include-uplink", action="store_true")
    parser.add_argument("--coalesce", type=float, default=0.5)
    parser.add_argument("--min-interval", type=float, default=1.0)
    args = parser.parse_args()
    inv = Inventory(include_default_route_uplink=args.include_uplink,
                    coalesce_seconds=args.coalesce, min_interval=args.min_interval)
    if args.mode == "once":
        emit("snapshot", **snapshot_fields(inv, await inv.scan_once()))
        return 0
    task = asyncio.create_task(watch(inv))
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    emit("closed")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
