"""The operator's CEL device filter, compiled once at start and evaluated per published device.

The expression sees the same ``device`` a DeviceClass selector sees (``device.driver``,
``device.attributes[...]``, ``device.capacity[...]``, ``device.allowMultipleAllocations``) for
the device as it would be published. A device is published only when the filter returns true;
false or a runtime error leaves it out (with the reason).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cnidra.cel import DeviceView, Error, Match, Selector, compile_selector
from cnidra.errors import ConfigError

FILTER_PATH = "deviceFilter"


@dataclass(frozen=True)
class CompiledFilter:
    """A compiled device filter. ``check`` returns "" to publish or the reason to leave out."""

    expression: str
    selector: Selector

    def check(self, device: Mapping[str, Any], *, driver: str, pool: str) -> str:
        try:
            view = DeviceView.from_slice_device(device, driver, pool)
        except ConfigError as exc:
            return f"cannot be viewed by CEL: {exc}"
        outcome = self.selector.evaluate(view)
        if isinstance(outcome, Match):
            return ""
        if isinstance(outcome, Error):
            return f"the device filter failed on it: {outcome.message}"
        return "the device filter returned false"


def compile_filter(expression: str) -> CompiledFilter | None:
    """None for an empty expression (publish everything); ``ConfigError`` when it does not
    compile, naming the setting and the expression (the driver stops at start)."""
    if not expression or not expression.strip():
        return None
    try:
        selector = compile_selector(expression)
    except ConfigError as exc:
        raise ConfigError(f"the device filter is not valid CEL: {exc.message}",
                          FILTER_PATH) from exc
    return CompiledFilter(expression, selector)
