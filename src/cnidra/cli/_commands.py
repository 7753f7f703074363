"""The list of command modules, in the order ``cnidra --help`` shows them."""

from __future__ import annotations

from types import ModuleType

from cnidra.cli import _cni

ALL: tuple[ModuleType, ...] = (_cni,)
