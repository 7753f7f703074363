"""What the plugin needs from its neighbours (``cnidra.attach.Attacher`` satisfies it)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Protocol

from cnidra.attach import Sandbox


class PodHandler(Protocol):
    """Receives the pod sandbox events; errors are ``cnidra.errors`` classes."""

    async def run_pod_sandbox(self, sandbox: Sandbox) -> object: ...
    async def stop_pod_sandbox(self, sandbox: Sandbox) -> None: ...
    async def remove_pod_sandbox(self, sandbox: Sandbox) -> None: ...
    async def synchronize(self, live_sandboxes: Collection[Sandbox]) -> object:
        """Every live pod sandbox the runtime reported (all ``more`` batches together)."""


OnHook = Callable[[str, str, float], None]
"""``on_hook(event, outcome, seconds)``: event is ``RunPodSandbox``, ``StopPodSandbox``,
``RemovePodSandbox`` or ``Synchronize``; outcome ``ok``, ``error`` or ``timeout``."""
