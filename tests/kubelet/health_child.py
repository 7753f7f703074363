"""The real Inventory feeding the real KubeletPlugin's health stream, inside a network namespace.

Started as ``ip netns exec NS python health_child.py REGISTRY_DIR PLUGIN_DIR`` (so netlink and
/sys are the namespace's, as for the driver in a node namespace). Serves until SIGTERM; prints
``ready`` once the DRA socket is up. Short inventory periods keep the test quick.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from cnidra.claims import Fetched
from cnidra.inventory import Inventory
from cnidra.kubelet import KubeletPlugin
from cnidra.model.claims import ClaimRef, PrepareOutcome

NODE = "health-node"


class NoClaims:
    async def fetch(self, claims: Sequence[ClaimRef]) -> Fetched:
        return Fetched(tuple(claims), 0.0)

    async def apply_prepare(self, fetched: Fetched) -> dict[str, PrepareOutcome]:
        return {}

    async def unprepare(self, claims: Sequence[ClaimRef]) -> dict[str, str]:
        return {}


async def main(registry_dir: str, plugin_dir: str) -> None:
    inventory = Inventory(coalesce_seconds=0.1, min_interval=0.1, poll_seconds=1.0,
                          gone_retention=1.5)
    await inventory.scan_once()
    plugin = KubeletPlugin(driver="cni.dra.networking.x-k8s.io", node_name=NODE,
                           claims=NoClaims(), health=inventory, registry_dir=registry_dir,
                           plugin_dir=plugin_dir, health_check_timeout=6.0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    runner = asyncio.create_task(inventory.run())
    await plugin.start()
    print("ready", flush=True)
    await stop.wait()
    await plugin.stop(grace=1.0)
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
