"""Short socket directories (unix socket paths are limited to 108 bytes)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cnnri-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
