"""One Prepare/Unprepare at a time: an asyncio lock, plus ``flock`` on a file shared with the
other instance during a rolling update. The flock is taken in a worker thread (non-blocking
attempts with capped backoff, so a cancelled call stops waiting), never on the loop."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import threading
import time
from collections.abc import AsyncIterator

from cnidra.errors import CnidraError


class LockTimeoutError(CnidraError):
    """The serialization lock was not free within the call's time (the kubelet retries)."""

    retryable = True


class CallSerializer:
    """``async with serializer.hold(timeout):`` runs the body alone (in-process, and across
    processes when ``lock_path`` is given). ``enabled=False`` makes it a no-op."""

    def __init__(self, *, enabled: bool = True, lock_path: str | None = None) -> None:
        self._enabled = enabled
        self._lock = asyncio.Lock()
        self._lock_path = lock_path
        self._fd: int | None = None

    def open(self) -> None:
        """Open the lock file (blocking; call from a worker thread)."""
        if self._enabled and self._lock_path and self._fd is None:
            self._fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @contextlib.asynccontextmanager
    async def hold(self, timeout: float) -> AsyncIterator[None]:
        if not self._enabled:
            yield
            return
        deadline = time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout):
                await self._lock.acquire()
        except TimeoutError as exc:
            raise LockTimeoutError(
                f"another Prepare/Unprepare call held the lock for more than {timeout:g}s"
            ) from exc
        try:
            if self._fd is None:
                yield
                return
            await self._flock(self._fd, deadline)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()

    async def _flock(self, fd: int, deadline: float) -> None:
        stop = threading.Event()
        attempt = asyncio.ensure_future(asyncio.to_thread(_acquire, fd, deadline, stop))
        try:
            got = await asyncio.shield(attempt)
        except asyncio.CancelledError:
            stop.set()
            await asyncio.wait([attempt])
            if not attempt.cancelled() and attempt.exception() is None and attempt.result():
                fcntl.flock(fd, fcntl.LOCK_UN)
            raise
        if not got:
            raise LockTimeoutError(
                f"{self._lock_path}: held by another instance of the plugin for longer than "
                "the call's time"
            )


def _acquire(fd: int, deadline: float, stop: threading.Event) -> bool:
    delay = 0.002
    while not stop.is_set():
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            stop.wait(delay)
            delay = min(delay * 2, 0.05)
        else:
            return True
    return False
