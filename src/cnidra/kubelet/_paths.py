"""Where the plugin's sockets live: the kubelet's defaults, rolling-update names and the
fallback for paths longer than a unix socket address allows."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cnidra.errors import ConfigError

DEFAULT_REGISTRY_DIR = "/var/lib/kubelet/plugins_registry"
DEFAULT_PLUGINS_DIR = "/var/lib/kubelet/plugins"
# sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


@dataclass(frozen=True, slots=True)
class SocketPaths:
    """Absolute paths of the registration socket, the DRA socket and the serialization lock."""

    registration: str
    dra: str
    lock: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _fits(path: str) -> bool:
    return len(os.fsencode(path)) <= MAX_SOCKET_PATH


def socket_paths(
    driver: str, *, registry_dir: str = DEFAULT_REGISTRY_DIR, plugin_dir: str | None = None,
    rolling_update_pod_uid: str = "",
) -> SocketPaths:
    """The plugin's socket paths (``plugin_dir`` defaults to ``/var/lib/kubelet/plugins/<driver>``).

    Without rolling update: ``<registry>/<driver>-reg.sock`` and ``<plugin dir>/dra.sock``. With a
    pod UID: ``<driver>-<uid>-reg.sock`` and ``dra-<uid>.sock``, so old and new instances never
    share a socket. A name that would not fit in a unix socket address falls back to
    ``<driver>-<hash(uid)>-reg.sock``, then ``dra-<hash(driver, uid)>-reg.sock`` (and
    ``dra-<hash>.sock`` for the DRA socket); ``ConfigError`` if even that does not fit.
    """
    if not driver:
        raise ConfigError("must not be empty", "driver")
    if "/" in driver or driver.startswith("."):
        raise ConfigError(f"{driver!r} cannot be part of a socket file name", "driver")
    if "/" in rolling_update_pod_uid:
        raise ConfigError(f"{rolling_update_pod_uid!r} is not a pod UID", "rolling_update_pod_uid")
    registry = Path(registry_dir).absolute()
    plugins = Path(plugin_dir).absolute() if plugin_dir else Path(DEFAULT_PLUGINS_DIR) / driver
    uid = rolling_update_pod_uid
    if uid:
        short = _b64(hashlib.sha256(uid.encode()).digest()[:8])
        long = _b64(hashlib.sha256(f"{driver}\0{uid}".encode()).digest()[:16])
        reg_names = [
            f"{driver}-{uid}-reg.sock", f"{driver}-{short}-reg.sock", f"dra-{long}-reg.sock",
        ]
        dra_names = [f"dra-{uid}.sock", f"dra-{short}.sock", f"dra-{long}.sock"]
    else:
        reg_names = [f"{driver}-reg.sock"]
        dra_names = ["dra.sock"]
    registration = _first_fitting(registry, reg_names, "registry_dir")
    dra = _first_fitting(plugins, dra_names, "plugin_dir")
    return SocketPaths(registration, dra, str(plugins / "serialize.lock"))


def _first_fitting(directory: Path, names: list[str], field: str) -> str:
    for name in names:
        path = str(directory / name)
        if _fits(path):
            return path
    raise ConfigError(
        f"{str(directory)!r} is too long for a unix socket path ({MAX_SOCKET_PATH} bytes at most, "
        f"with {names[-1]!r} in it)", field,
    )
