"""``SharedCheckpoint``: the checkpoint as several instances over one directory share it (the
kubelet plugin's rolling update).

Changes of all instances run one at a time under ``flock`` of ``<directory>/checkpoint.lock``
(non-blocking attempts with capped backoff on the loop, cancellable, at most ``lock_timeout``),
taken inside the owner's asyncio lock. The file's stamp (inode, mtime, size: one ``stat``) as
this instance last read or wrote it tells whether another instance replaced it; then it is
reloaded and handed to the owner's ``adopt`` (``ClaimState``'s cache), which also receives every
stamp :meth:`SharedCheckpoint.save` writes and records it in :attr:`SharedCheckpoint.stamp`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator, Callable

from cnidra.claims._checkpoint import Checkpoint, Stamp
from cnidra.claims._records import PreparedClaim
from cnidra.errors import CheckpointError

log = logging.getLogger(__name__)

Adopt = Callable[[dict[str, PreparedClaim], Stamp], None]
"""Takes the claims now in the file and their stamp into the owner's memory."""


class SharedCheckpoint:
    """The cross-instance mechanics of one checkpoint: its flock, the stamp check and reload."""

    def __init__(
        self, checkpoint: Checkpoint, stamp: Stamp, *, lock: asyncio.Lock, adopt: Adopt,
        lock_timeout: float,
    ) -> None:
        self.checkpoint = checkpoint
        self.stamp: Stamp = stamp
        self._lock = lock
        self._adopt = adopt
        self._lock_timeout = lock_timeout
        self._lock_fd: int | None = None

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """The owner's lock, the directory's flock (other instances), then the file as it is
        now: every state change runs inside."""
        async with self._lock, self._flock():
            await self._refresh()
            yield

    async def refresh(self) -> bool:
        """Reload the file if another instance replaced it; True when it did. Cheap when nothing
        changed (one ``stat``, no lock)."""
        if self.checkpoint.stamp() == self.stamp:
            return False
        async with self._lock, self._flock():
            return await self._refresh()

    async def save(self, claims: dict[str, PreparedClaim]) -> None:
        """Write ``claims`` and adopt them. A cancelled caller (e.g. the kubelet's deadline) still
        waits for the write thread, so the lock is never released while a save is in flight and
        memory always matches the file."""
        save = asyncio.ensure_future(asyncio.to_thread(self.checkpoint.save, claims))
        try:
            stamp = await asyncio.shield(save)
        except asyncio.CancelledError:
            await asyncio.wait([save])
            if not save.cancelled() and save.exception() is None:
                self._adopt(claims, save.result())
            raise
        self._adopt(claims, stamp)

    @contextlib.asynccontextmanager
    async def _flock(self) -> AsyncIterator[None]:
        """``flock`` of ``checkpoint.lock``: non-blocking attempts with capped backoff on the
        loop (cancellable), at most ``lock_timeout``."""
        fd = self._lock_fd
        if fd is None:  # under self._lock: opened once
            fd = self._lock_fd = await asyncio.to_thread(self.checkpoint.open_lock)
            weakref.finalize(self, os.close, fd)
        deadline = time.monotonic() + self._lock_timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise CheckpointError(
                        f"checkpoint lock {self.checkpoint.lock_path}: held by another "
                        f"instance for more than {self._lock_timeout:g}s"
                    ) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
            except OSError as exc:
                raise CheckpointError(
                    f"checkpoint lock {self.checkpoint.lock_path}: {exc}") from exc
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    async def _refresh(self) -> bool:
        """Under the locks: adopt the file when its stamp is not the one we last read or wrote."""
        # One stat of a file in the local state directory (a dentry-cache lookup, as the
        # non-blocking flock before it): on the loop, as a worker-thread hop would cost more
        # than it; the read and parse of a changed file go to a thread.
        if self.checkpoint.stamp() == self.stamp:
            return False
        claims, stamp = await asyncio.to_thread(self.checkpoint.load_stamped)
        log.info("checkpoint %s changed on disk (another instance); reloaded %d claim(s)",
                 self.checkpoint.path, len(claims))
        self._adopt(claims, stamp)
        return True
