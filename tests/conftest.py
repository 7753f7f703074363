"""Shared test fixtures.

* ``root``-marked tests need root and network namespaces; they run for real in CI (root).
* ``netns`` creates uniquely named network namespaces and always deletes them.
* Every async test fails if it leaves an asyncio task behind.

Plain helpers (``unique``, ``ip``, ``SHARED``) live in ``support.py``.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from support import CNI_BIN_DIRS, IS_ROOT, ip, unique

__all__ = ["ip", "unique"]  # also importable from here (older tests)

requires_root = pytest.mark.skipif(not IS_ROOT, reason="needs root and network namespaces")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("root") is not None:
            item.add_marker(requires_root)
        if isinstance(item, pytest.Function) and asyncio.iscoroutinefunction(item.obj):
            item.add_marker(pytest.mark.usefixtures("_no_leaked_tasks"))


@pytest.fixture
def netns() -> Iterator[Callable[[str], str]]:
    """Factory: ``netns("cn")`` creates a fresh namespace and returns its name."""
    created: list[str] = []

    def make(prefix: str = "cnt") -> str:
        name = unique(f"{prefix}-", 8)
        subprocess.run(["ip", "netns", "add", name], check=True)
        created.append(name)
        return name

    yield make
    for name in reversed(created):
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


@pytest.fixture
def links() -> Iterator[list[str]]:
    """Host links appended here are deleted after the test, whatever happens."""
    names: list[str] = []
    yield names
    for name in names:
        subprocess.run(["ip", "link", "del", name], check=False, capture_output=True)


@pytest.fixture
def cni_bin_dirs() -> list[str]:
    if not CNI_BIN_DIRS or not shutil.which("macvlan", path=":".join(CNI_BIN_DIRS)):
        pytest.fail("CNI plugins missing: install containernetworking-plugins (.ci/run does)")
    return CNI_BIN_DIRS


@pytest.fixture
async def _no_leaked_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [
        t for t in asyncio.all_tasks() - before
        if not t.done() and t is not asyncio.current_task()
    ]
    for task in leaked:
        task.cancel()
    assert not leaked, f"test leaked asyncio tasks: {leaked}"
