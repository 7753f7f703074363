"""Network namespace helpers that never disturb the event loop's thread.

``in_netns`` runs a function in a fresh, dedicated thread that first joins the target network
namespace (``setns(2)``) and then exits. A namespace change is per thread, so nothing else in the
process ever runs in the foreign namespace, and no pooled thread is left there. Sockets created
inside keep the namespace they were created in, which is how the embedded node gives each node
namespace its own loopback listener.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cnidra.errors import CnidraError

T = TypeVar("T")
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class NetnsError(CnidraError):
    """The network namespace cannot be entered (gone, or not a namespace)."""


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def run_in_netns_blocking(path: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a new thread inside the namespace at ``path``; blocks the caller."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            box["error"] = NetnsError(f"network namespace {path}: {exc.strerror}")
            return
        try:
            _setns(fd)
            box["value"] = fn()
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                box["error"] = NetnsError(f"{path} is not a network namespace")
            else:
                box["error"] = exc
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc
        finally:
            os.close(fd)

    thread = threading.Thread(target=target, name=f"netns:{Path(path).name}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


async def in_netns(path: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` inside the namespace at ``path`` without blocking the event loop."""
    return await asyncio.to_thread(run_in_netns_blocking, path, fn)


def netns_exists(path: str) -> bool:
    """True when ``path`` exists (a removed sandbox's path disappears with its namespace)."""
    return bool(path) and Path(path).exists()
