"""libcni's on-disk result cache, byte-compatible in both directions.

Path ``<cacheDir>/results/<netName>-<containerID>-<ifName>`` (dir 0700, file 0600); JSON
``{"kind":"cniCacheV1","containerId","config"(base64),"ifName","networkName","netns","cniArgs",
"capabilityArgs","result"}`` with libcni's ``omitempty`` (empty netns/args/result left out).
Writes are atomic (temp file, rename) and run in a worker thread; like libcni, nothing is
fsynced. After a power loss an entry may be missing or empty, which DEL handles exactly as libcni
does for a missing or unreadable file (no ``prevResult``). Durability of what cnidra attached is
the checkpoint's job (``cnidra.claims``, fsynced), which also keeps each attachment's CNI result;
fsyncing here too cost ~1.5 ms per ADD (≈15 % of a macvlan+host-local ADD). An unreadable or
foreign file reads as "no entry".
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CACHE_KIND = "cniCacheV1"


@dataclass(frozen=True)
class CachedAttachment:
    """One cache file: enough to DEL the attachment with nothing else at hand."""

    container_id: str
    ifname: str
    network_name: str
    config: bytes
    netns: str = ""
    cni_args: tuple[tuple[str, str], ...] = ()
    capability_args: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    path: str = ""


def results_dir(cache_dir: str) -> Path:
    return Path(cache_dir) / "results"


def cache_path(cache_dir: str, net_name: str, container_id: str, ifname: str) -> Path:
    return results_dir(cache_dir) / f"{net_name}-{container_id}-{ifname}"


def encode(entry: CachedAttachment) -> bytes:
    obj: dict[str, Any] = {
        "kind": CACHE_KIND,
        "containerId": entry.container_id,
        "config": base64.b64encode(entry.config).decode(),
        "ifName": entry.ifname,
        "networkName": entry.network_name,
    }
    if entry.netns:
        obj["netns"] = entry.netns
    if entry.cni_args:
        obj["cniArgs"] = [[k, v] for k, v in entry.cni_args]
    if entry.capability_args:
        obj["capabilityArgs"] = entry.capability_args
    if entry.result:
        obj["result"] = entry.result
    return json.dumps(obj, separators=(",", ":")).encode()


def _b64(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def decode(data: bytes, path: str = "") -> CachedAttachment | None:
    """Parse a cache file (ours or libcni's); ``None`` when it is not a valid v1 entry."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or obj.get("kind") != CACHE_KIND:
        return None
    config = _b64(obj.get("config"))
    strings = [obj.get(k, "") for k in ("containerId", "ifName", "networkName", "netns")]
    raw_args = obj.get("cniArgs") or []
    caps = obj.get("capabilityArgs") or {}
    result = obj.get("result") or None
    well_formed = (
        config is not None
        and all(isinstance(s, str) for s in strings) and all(strings[:3])
        and isinstance(raw_args, list)
        and all(isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
                for p in raw_args)
        and isinstance(caps, dict) and (result is None or isinstance(result, dict))
    )
    if not well_formed or config is None:
        return None
    return CachedAttachment(
        container_id=strings[0], ifname=strings[1], network_name=strings[2], netns=strings[3],
        config=config, cni_args=tuple((a, b) for a, b in raw_args), capability_args=caps,
        result=result, path=path,
    )


def write_sync(cache_dir: str, entry: CachedAttachment) -> Path:
    target = cache_path(cache_dir, entry.network_name, entry.container_id, entry.ifname)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(encode(entry))
        Path(tmp).replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
    return target


def read_sync(path: Path) -> CachedAttachment | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return decode(data, str(path))


def remove_sync(cache_dir: str, net_name: str, container_id: str, ifname: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        cache_path(cache_dir, net_name, container_id, ifname).unlink()


def list_sync(cache_dir: str, net_name: str | None = None) -> list[CachedAttachment]:
    try:
        paths = sorted(results_dir(cache_dir).iterdir())
    except OSError:
        return []
    out = []
    for path in paths:
        name = path.name
        if name.startswith(".") or (net_name is not None and not name.startswith(f"{net_name}-")):
            continue
        entry = read_sync(path)
        if entry is not None and (net_name is None or entry.network_name == net_name):
            out.append(entry)
    return out


async def write(cache_dir: str, entry: CachedAttachment) -> Path:
    return await asyncio.to_thread(write_sync, cache_dir, entry)


async def read(cache_dir: str, net_name: str, container_id: str, ifname: str) -> (
    CachedAttachment | None
):
    return await asyncio.to_thread(read_sync, cache_path(cache_dir, net_name, container_id, ifname))


async def remove(cache_dir: str, net_name: str, container_id: str, ifname: str) -> None:
    await asyncio.to_thread(remove_sync, cache_dir, net_name, container_id, ifname)


async def list_entries(cache_dir: str, net_name: str | None = None) -> list[CachedAttachment]:
    return await asyncio.to_thread(list_sync, cache_dir, net_name)


def entry_for(
    net_name: str, *, config: bytes, container_id: str, ifname: str, netns: str,
    args: Sequence[tuple[str, str]], capability_args: Mapping[str, Any],
    result: Mapping[str, Any] | None,
) -> CachedAttachment:
    return CachedAttachment(
        container_id=container_id, ifname=ifname, network_name=net_name, config=config,
        netns=netns, cni_args=tuple(args), capability_args=dict(capability_args),
        result=dict(result) if result else None,
    )
