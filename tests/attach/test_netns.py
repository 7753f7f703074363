"""Entering network namespaces from a dedicated thread, for real."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from cnidra.attach._netns import NetnsError, in_netns, netns_exists

pytestmark = pytest.mark.root


def own_netns_inode() -> int:
    return Path("/proc/thread-self/ns/net").stat().st_ino


async def test_function_runs_inside_and_caller_stays_outside(
    netns: Callable[[str], str],
) -> None:
    name = netns("cnns")
    path = f"/run/netns/{name}"
    outside = own_netns_inode()
    inside = await in_netns(path, own_netns_inode)
    assert inside == Path(path).stat().st_ino
    assert inside != outside
    assert own_netns_inode() == outside
    assert threading.current_thread() is threading.main_thread()


async def test_socket_created_inside_listens_on_that_namespace_loopback(
    netns: Callable[[str], str],
) -> None:
    name = netns("cnns")
    path = f"/run/netns/{name}"

    def listen() -> socket.socket:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return socket.create_server(("127.0.0.1", 0))

    server = await in_netns(path, listen)
    try:
        port = server.getsockname()[1]

        def connect() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return True

        assert await in_netns(path, connect)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    finally:
        server.close()


async def test_missing_namespace_is_a_clear_error() -> None:
    with pytest.raises(NetnsError, match="No such file"):
        await in_netns("/run/netns/does-not-exist-cnidra", own_netns_inode)
    with pytest.raises(NetnsError, match="not a network namespace"):
        await in_netns("/proc/self/ns/mnt", own_netns_inode)
    assert not netns_exists("")
    assert not netns_exists("/run/netns/does-not-exist-cnidra")


async def test_exceptions_from_the_function_reach_the_caller(
    netns: Callable[[str], str],
) -> None:
    path = f"/run/netns/{netns('cnns')}"

    def boom() -> int:
        raise ValueError("inside")

    with pytest.raises(ValueError, match="inside"):
        await in_netns(path, boom)
