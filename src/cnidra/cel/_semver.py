"""Semantic versions (semver 2.0.0) for ``version`` attributes and the CEL ``semver()`` function.

Precedence follows semver.org section 11: numeric core, then a release ranks above its
pre-releases, pre-release identifiers compared one by one (numbers numerically and below
alphanumerics); build metadata is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cnidra.errors import ConfigError

_NUM = r"0|[1-9][0-9]*"
_IDENT = r"[0-9A-Za-z-]+"
_RE = re.compile(
    rf"^(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?(?:\+(?P<build>{_IDENT}(?:\.{_IDENT})*))?$"
)


@dataclass(frozen=True)
class Semver:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def compare(self, other: Semver) -> int:
        """-1, 0 or 1 by semver precedence."""
        mine = (self.major, self.minor, self.patch)
        theirs = (other.major, other.minor, other.patch)
        if mine != theirs:
            return -1 if mine < theirs else 1
        if self.prerelease == other.prerelease:
            return 0
        if not self.prerelease:
            return 1
        if not other.prerelease:
            return -1
        for left, right in zip(self.prerelease, other.prerelease, strict=False):
            if left == right:
                continue
            return -1 if _ident_key(left) < _ident_key(right) else 1
        return -1 if len(self.prerelease) < len(other.prerelease) else 1


def _ident_key(ident: str) -> tuple[int, int, str]:
    return (0, int(ident), "") if ident.isdigit() else (1, 0, ident)


def parse_semver(text: str, path: str = "") -> Semver:
    """Parse a semver 2.0.0 string; ConfigError names ``path``."""
    match = _RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(f"invalid semantic version {text!r}", path)
    pre = tuple(match["pre"].split(".")) if match["pre"] else ()
    for ident in pre:
        if ident.isdigit() and len(ident) > 1 and ident.startswith("0"):
            raise ConfigError(f"invalid semantic version {text!r}: numeric pre-release "
                              f"identifier {ident!r} has a leading zero", path)
    build = tuple(match["build"].split(".")) if match["build"] else ()
    return Semver(int(match["major"]), int(match["minor"]), int(match["patch"]), pre, build)


__all__ = ["Semver", "parse_semver"]
