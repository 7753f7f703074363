"""A recording pod handler and helpers to read the captured NRI vectors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from cnidra.attach import Sandbox
from cnidra.errors import CNIError
from support import SHARED

VECTORS = SHARED / "protocol/vectors/containerd-2.4-nri-0.12.2"


def index() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / "index.json").read_text())
    return data


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


@dataclass
class Recorder:
    """A PodHandler that records what it gets; can fail or stall on purpose."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    fail_run: CNIError | None = None
    delay: float = 0.0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    synced: list[list[Sandbox]] = field(default_factory=list)  # every Synchronize, in full

    def _note(self, what: str, arg: Any) -> None:
        self.calls.append((what, arg))
        self.changed.set()

    async def run_pod_sandbox(self, sandbox: Sandbox) -> list[str]:
        await asyncio.sleep(self.delay)
        self._note("run", sandbox)
        if self.fail_run is not None:
            raise self.fail_run
        return []

    async def stop_pod_sandbox(self, sandbox: Sandbox) -> None:
        self._note("stop", sandbox)

    async def remove_pod_sandbox(self, sandbox: Sandbox) -> None:
        self._note("remove", sandbox)

    async def synchronize(self, live_sandboxes: Collection[Sandbox]) -> int:
        self.synced.append(sorted(live_sandboxes, key=lambda s: s.id))
        self._note("sync", frozenset(s.id for s in live_sandboxes))
        return 0

    def of(self, what: str) -> list[Any]:
        return [arg for kind, arg in self.calls if kind == what]

    async def wait(self, what: str, count: int = 1, timeout: float = 5.0) -> list[Any]:
        async with asyncio.timeout(timeout):
            while len(self.of(what)) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.of(what)
