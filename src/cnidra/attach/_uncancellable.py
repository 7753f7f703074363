"""Clean-up that must finish even when its caller is cancelled (a hook past its deadline)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def uncancellable(work: Awaitable[T]) -> T:
    """Await ``work`` to completion, however often the caller is cancelled meanwhile; then
    re-raise the caller's cancellation (if any), else return the result.

    Only the caller is protected: if ``work`` itself is cancelled, that propagates at once.
    """
    task = asyncio.ensure_future(work)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
            continue
        break
    if cancelled:
        raise asyncio.CancelledError
    return result
