"""Capped exponential backoff with full jitter, and a retry helper for retryable errors."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from cnidra.errors import CnidraError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Delay for attempt ``n`` (0-based): uniform in [0, min(cap, base * 2**n)]."""

    base: float = 0.2
    cap: float = 10.0
    attempts: int = 6

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * (2 ** min(attempt, 30))))  # noqa: S311


async def retry(
    call: Callable[[], Awaitable[T]], backoff: Backoff = Backoff(), *,
    on_retry: Callable[[CnidraError], None] | None = None, what: str = "request",
) -> T:
    """Run ``call`` until it succeeds, retrying ``CnidraError``s marked ``retryable``."""
    attempt = 0
    while True:
        try:
            return await call()
        except CnidraError as exc:
            attempt += 1
            if not exc.retryable or attempt >= backoff.attempts:
                raise
            if on_retry is not None:
                on_retry(exc)
            delay = backoff.delay(attempt - 1)
            log.debug("%s failed (%s); retry %d in %.2fs", what, exc, attempt, delay)
            await asyncio.sleep(delay)
