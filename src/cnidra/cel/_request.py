"""Evaluate a whole device request: the DeviceClass selectors first, then the request's own.

The first selector that does not match decides, as in the scheduler's allocator. Runtime errors
carry the scheduler's wording: ``class <name>: selector #<i>: CEL runtime error: <message>``
and ``claim <ns>/<name>: selector #<i>: CEL runtime error: <message>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cnidra.cel._device import DeviceView
from cnidra.cel._selector import Error, Match, Selector, compile_selector
from cnidra.errors import ConfigError


@dataclass(frozen=True)
class SelectorSet:
    """The compiled selectors of one DeviceClass or one request, with who owns them."""

    owner: Literal["class", "claim"]
    owner_name: str
    selectors: tuple[Selector, ...]


@dataclass(frozen=True)
class RequestVerdict:
    """Whether a device satisfies a request's selectors, and if not which selector said no."""

    matched: bool
    owner: str = ""  # "class" or "claim" of the rejecting selector
    index: int = -1
    expression: str = ""
    error: str = ""  # empty for a plain false

    @property
    def reason(self) -> str:
        """One line for a human: which selector rejected the device and why."""
        if self.matched:
            return "matches"
        where = f"{self.owner} selector #{self.index} ({self.expression})"
        if self.error:
            return f"{where}: CEL runtime error: {self.error}"
        return f"{where} is false"


def compile_selectors(
    selectors: Sequence[Mapping[str, Any]] | None, owner: Literal["class", "claim"],
    owner_name: str, path: str,
) -> SelectorSet:
    """Compile ``[{cel: {expression}}]``; ConfigError names ``path[i].cel.expression``."""
    compiled: list[Selector] = []
    for index, entry in enumerate(selectors or ()):
        cel = entry.get("cel") if isinstance(entry, Mapping) else None
        expression = cel.get("expression") if isinstance(cel, Mapping) else None
        if not isinstance(expression, str):
            raise ConfigError("a selector needs cel.expression", f"{path}[{index}].cel.expression")
        try:
            compiled.append(compile_selector(expression))
        except ConfigError as exc:
            raise ConfigError(exc.message, f"{path}[{index}].cel.expression") from exc
    return SelectorSet(owner, owner_name, tuple(compiled))


def evaluate_request(device: DeviceView, *selector_sets: SelectorSet) -> RequestVerdict:
    """Run the sets in order (class first, then request); the first non-match decides."""
    for selector_set in selector_sets:
        for index, selector in enumerate(selector_set.selectors):
            outcome = selector.evaluate(device)
            if isinstance(outcome, Match):
                continue
            return RequestVerdict(
                matched=False,
                owner=f"{selector_set.owner} {selector_set.owner_name}",
                index=index,
                expression=selector.expression,
                error=outcome.message if isinstance(outcome, Error) else "",
            )
    return RequestVerdict(matched=True)


def runtime_error_message(verdict: RequestVerdict) -> str:
    """The scheduler's own wording of a selector runtime error (empty if there was none)."""
    if not verdict.error:
        return ""
    return f"{verdict.owner}: selector #{verdict.index}: CEL runtime error: {verdict.error}"


__all__ = [
    "RequestVerdict",
    "SelectorSet",
    "compile_selectors",
    "evaluate_request",
    "runtime_error_message",
]
