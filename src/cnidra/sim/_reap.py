"""Reaping what killed earlier runs of the embedded cluster left behind.

Every run's work directory is ``<tmp>/cnidra-sim-<pid>x<hex>`` (the run id embeds the process
id): a directory whose process is gone is stale; the driver processes still naming it on their
command line are killed and the directory removed; then the fabric removes stale namespaces.
Limits: Linux ``/proc`` only; runs of a live process are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import tempfile
from pathlib import Path

from cnidra.sim._fabric import reap_stale as reap_stale_namespaces

WORK_PREFIX = "cnidra-sim-"
_WORK_RE = re.compile(rf"^{WORK_PREFIX}(?P<pid>\d+)x[0-9a-f]{{3}}$")


def _pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _stale_work_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [p for p in sorted(root.iterdir()) if (m := _WORK_RE.match(p.name)) is not None
            and p.is_dir() and not _pid_alive(int(m["pid"]))]


def processes_under(directory: Path) -> list[int]:
    """PIDs whose command line names ``directory`` (drivers of a killed run)."""
    needle = str(directory).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(proc.name))
    return found


def _reap_work_dirs(root: Path) -> list[str]:
    removed = []
    for directory in _stale_work_dirs(root):
        for pid in processes_under(directory):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(str(directory))
    return removed


async def reap_stale(work_root: Path | None = None) -> list[str]:
    """Remove what killed earlier runs left: driver processes, work dirs, namespaces."""
    root = work_root or Path(tempfile.gettempdir())
    removed = await asyncio.to_thread(_reap_work_dirs, root)
    removed += await reap_stale_namespaces()
    return removed
