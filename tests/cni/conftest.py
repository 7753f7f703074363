"""Fixtures for the CNI tests: a runtime over a temp cache, veth parents, conflist builders."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnidra.cni import CNIRuntime
from support import unique


@pytest.fixture
def runtime(tmp_path: Path, cni_bin_dirs: list[str]) -> CNIRuntime:
    return CNIRuntime(cni_bin_dirs, cache_dir=str(tmp_path / "cache"), exec_timeout=10.0)


@pytest.fixture
def lease_dir(tmp_path: Path) -> Path:
    path = tmp_path / "leases"
    path.mkdir()
    return path


@pytest.fixture
def veth_parent(links: list[str]) -> Iterator[str]:
    """A host veth (with its peer) to hang macvlans on; deleted after the test."""
    name = unique("cnp", 8)
    links.append(name)
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", unique("cnq", 8)],
                   check=True)
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    yield name

