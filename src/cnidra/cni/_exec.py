"""Finding and running plugin binaries: env, stdin, timeout (kill + reap), ETXTBSY retry, errors.

Runtime-side failures (plugin not found, cannot exec, garbage output) are ``CNIError`` with code
999 (libcni's ``ErrInternal``); a plugin's own error JSON keeps the plugin's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnidra.errors import CNIError, CNITimeoutError

INTERNAL = 999
ETXTBSY_RETRIES = 5
ETXTBSY_BACKOFF = 0.02  # seconds, doubled each retry
_QUOTE = 512


@dataclass(frozen=True)
class Plugin:
    """A resolved plugin binary; ``key`` identifies this exact file (path, inode, mtime, size)."""

    name: str
    path: str
    key: tuple[str, int, int, int, int]


def find_plugin(name: str, bin_dirs: Sequence[str]) -> Plugin:
    """First executable regular file called ``name`` in ``bin_dirs`` (a bare name only)."""
    if not name or "/" in name or name in {".", ".."} or "\x00" in name:
        raise CNIError(INTERNAL, f"invalid plugin name {name!r}: must be a bare name", plugin=name)
    for directory in bin_dirs:
        path = str(Path(directory) / name)
        try:
            st = Path(path).stat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return Plugin(name, path, (path, st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size))
    raise CNIError(
        INTERNAL, f"failed to find plugin {name!r} in path {list(bin_dirs)}",
        "no executable regular file of that name in any configured plugin directory",
        plugin=name,
    )


def build_env(
    verb: str, *, container_id: str = "", netns: str = "", ifname: str = "",
    args: Sequence[tuple[str, str]] = (), cni_path: Sequence[str] = (),
) -> dict[str, str]:
    """The inherited environment with the six CNI variables set (they override; libcni)."""
    env = dict(os.environ)
    env.update({
        "CNI_COMMAND": verb,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_ARGS": ";".join(f"{k}={v}" for k, v in args),
        "CNI_IFNAME": ifname,
        "CNI_PATH": os.pathsep.join(cni_path),
    })
    return env


def _quote(data: bytes) -> str:
    text = data.decode(errors="replace").strip()
    return text if len(text) <= _QUOTE else f"{text[:_QUOTE]}… ({len(text)} chars)"


def garbage(plugin: str, verb: str, msg: str, stdout: bytes, stderr: bytes) -> CNIError:
    return CNIError(
        INTERNAL, msg, f"stdout: {_quote(stdout)!r}; stderr: {_quote(stderr)!r}",
        plugin=plugin, verb=verb,
    )


def _error_from_output(plugin: str, verb: str, rc: int, stdout: bytes, stderr: bytes) -> CNIError:
    try:
        obj: Any = json.loads(stdout)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and isinstance(obj.get("code"), int) and "msg" in obj:
        details = obj.get("details", "")
        return CNIError(
            obj["code"], str(obj["msg"]), details if isinstance(details, str) else str(details),
            plugin=plugin, verb=verb,
        )
    return garbage(plugin, verb, f"plugin failed with exit status {rc}", stdout, stderr)


def decode_json(plugin: str, verb: str, stdout: bytes, stderr: bytes = b"") -> Any:
    try:
        return json.loads(stdout)
    except ValueError as exc:
        raise garbage(plugin, verb, "plugin output is not valid JSON", stdout, stderr) from exc


async def _spawn(plugin: Plugin, verb: str, env: Mapping[str, str]) -> asyncio.subprocess.Process:
    delay = ETXTBSY_BACKOFF
    for attempt in range(ETXTBSY_RETRIES + 1):
        try:
            return await asyncio.create_subprocess_exec(
                plugin.path, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=dict(env), start_new_session=True,
            )
        except OSError as exc:
            if exc.errno == errno.ETXTBSY and attempt < ETXTBSY_RETRIES:
                await asyncio.sleep(delay)
                delay *= 2
                continue
            raise CNIError(
                INTERNAL, f"cannot execute {plugin.path}: {exc.strerror or exc}",
                plugin=plugin.name, verb=verb,
            ) from exc
    raise CNIError(INTERNAL, f"cannot execute {plugin.path}", plugin=plugin.name, verb=verb)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the plugin's whole session (it may have forked) and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()


async def run_plugin(
    plugin: Plugin, verb: str, stdin: bytes, env: Mapping[str, str], timeout: float
) -> tuple[bytes, bytes]:
    """Run the plugin once; ``(stdout, stderr)`` on exit 0, else the plugin's ``CNIError``."""
    proc = await _spawn(plugin, verb, env)
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        await _kill(proc)
        raise CNITimeoutError(plugin.name, verb, timeout) from None
    except BaseException:
        await asyncio.shield(_kill(proc))
        raise
    if proc.returncode != 0:
        raise _error_from_output(plugin.name, verb, proc.returncode or 0, stdout, stderr)
    return stdout, stderr
