"""Guarded root tasks: every long-running piece of the daemon runs as one named task.

A root task that ends on its own (returns or raises) is a bug or a fatal condition, so the
group logs it and sets ``failed``; the daemon then shuts down in order instead of limping on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class RootTasks:
    """A set of named root tasks with a shared failure signal."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.failed = asyncio.Event()
        self.failure: tuple[str, BaseException | None] | None = None
        self._stopping = False

    def start(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        if name in self._tasks:
            coro.close()
            raise ValueError(f"root task {name!r} already running")
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._on_done)
        self._tasks[name] = task

    def _on_done(self, task: asyncio.Task[None]) -> None:
        if self._stopping or task.cancelled():
            return
        exc = task.exception()
        name = task.get_name()
        if exc is not None:
            log.error("root task %s failed: %s", name, exc, exc_info=exc)
        else:
            log.error("root task %s ended unexpectedly", name)
        if self.failure is None:
            self.failure = (name, exc)
        self.failed.set()

    def begin_shutdown(self) -> None:
        """From now on a task that ends is part of the shutdown, not a failure."""
        self._stopping = True

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def names(self) -> list[str]:
        return [n for n, t in self._tasks.items() if not t.done()]

    async def stop(self, name: str, timeout: float = 10.0) -> None:
        """Cancel one task and wait (bounded) for it to finish."""
        task = self._tasks.pop(name, None)
        if task is None or task.done():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), timeout)
        if not task.done():
            log.warning("root task %s did not stop within %.1fs", name, timeout)

    async def stop_all(self, order: list[str] | None = None, timeout: float = 10.0) -> None:
        """Stop the named tasks in ``order`` first, then everything else."""
        self.begin_shutdown()
        for name in [*(order or []), *list(self._tasks)]:
            await self.stop(name, timeout)
