"""The one place where claims reaches into the CNI runtime: conflist validation.

``cnidra.cni.parse_conflist(data)`` validates a network configuration list (``name``,
``cniVersion``, ``plugins[i].type``, ...) and raises ``ConfigError`` with a path relative to the
conflist (``plugins[0].type``). We only rely on the attributes named in :class:`ConflistView`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from cnidra.cni import parse_conflist as _parse_conflist


class PluginView(Protocol):
    """What we read of one plugin entry."""

    @property
    def type(self) -> str:
        """The plugin binary name."""

    @property
    def raw(self) -> dict[str, Any]:
        """The plugin's JSON object as given."""


class ConflistView(Protocol):
    """What we read of a validated conflist."""

    @property
    def name(self) -> str:
        """The network name."""

    @property
    def cni_version(self) -> str:
        """The conflist's ``cniVersion``."""

    @property
    def plugins(self) -> Sequence[PluginView]:
        """The plugin chain, in order."""


def parse_conflist(data: Mapping[str, Any]) -> ConflistView:
    """Validate ``data`` as a conflist; raises ``ConfigError`` with a conflist-relative path."""
    parsed: ConflistView = _parse_conflist(data)
    return parsed
