"""CNI spec versions: parsing, ordering, and which older version a newer one may run at."""

from __future__ import annotations

import re
from collections.abc import Iterable

from cnidra.errors import ConfigError

SUPPORTED_VERSIONS: tuple[str, ...] = (
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
)
"""The spec versions this runtime speaks, oldest first (as libcni 1.2/1.3)."""

LATEST = SUPPORTED_VERSIONS[-1]

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")

# Verbs for which a plugin that lacks the config's version may run at an older one in the same
# major line: the 1.1.0 spec only *added* GC, STATUS and optional result fields to 1.0.0, so the
# ADD/DEL/CHECK wire format is identical. GC and STATUS do not exist in 1.0.0: never downgraded.
_WIRE_COMPATIBLE: dict[str, tuple[str, ...]] = {"1.1.0": ("1.0.0",)}
DOWNGRADABLE_VERBS = frozenset({"ADD", "DEL", "CHECK"})


def parse(version: str, path: str = "cniVersion") -> tuple[int, int, int]:
    """``"1.0.0"`` → ``(1, 0, 0)``; anything else is a :class:`ConfigError` at ``path``."""
    match = _SEMVER.match(version) if isinstance(version, str) else None
    if match is None:
        raise ConfigError(f"{version!r} is not a version (expected MAJOR.MINOR.PATCH)", path)
    return int(match[1]), int(match[2]), int(match[3])


def at_least(version: str, floor: str) -> bool:
    return parse(version) >= parse(floor)


def check_supported(version: str, path: str = "cniVersion") -> str:
    parse(version, path)
    if version not in SUPPORTED_VERSIONS:
        raise ConfigError(
            f"CNI version {version!r} is not supported "
            f"(supported: {', '.join(SUPPORTED_VERSIONS)})",
            path,
        )
    return version


def highest_supported(versions: Iterable[str], path: str = "cniVersions") -> str | None:
    """The highest of ``versions`` this runtime supports (libcni's ``cniVersions`` rule)."""
    best: str | None = None
    for i, version in enumerate(versions):
        if not isinstance(version, str):
            raise ConfigError("must be a string", f"{path}[{i}]")
        parse(version, f"{path}[{i}]")
        if version in SUPPORTED_VERSIONS and (best is None or parse(version) > parse(best)):
            best = version
    return best


def fallback_version(config_version: str, verb: str, plugin_supports: Iterable[str]) -> str | None:
    """The older version a plugin may run at for ``verb`` when it lacks ``config_version``.

    Only within the same major line and only where the wire format of ``verb`` is unchanged
    (1.1.0 → 1.0.0 for ADD/DEL/CHECK). ``None`` when no such version exists.
    """
    if verb not in DOWNGRADABLE_VERBS:
        return None
    offered = set(plugin_supports)
    for candidate in _WIRE_COMPATIBLE.get(config_version, ()):
        if candidate in offered:
            return candidate
    return None
