"""Helpers shared by tests (import as ``from support import ...``)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

IS_ROOT = os.geteuid() == 0
CNI_BIN_DIRS = [d for d in ("/usr/lib/cni", "/opt/cni/bin") if Path(d).is_dir()]
SHARED = Path(__file__).resolve().parents[2] / "shared"  # shared/ beside the clone (as in CI)


def unique(prefix: str, length: int = 6) -> str:
    """A short unique name (interface names are limited to 15 bytes)."""
    return f"{prefix}{uuid.uuid4().hex[:length]}"


def ip(*args: str, netns: str | None = None) -> str:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
