"""The list of command modules, in the order ``cnidra --help`` shows them."""

from __future__ import annotations

from types import ModuleType

from cnidra.cli import _cni, _demo, _driver, _explain, _inspect, _validate

ALL: tuple[ModuleType, ...] = (_demo, _driver, _cni, _validate, _explain, _inspect)
