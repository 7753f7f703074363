"""CEL for DRA device selectors, evaluated the way kube-scheduler does it (on celpy).

Job: compile selector expressions once (a bad one is a ConfigError at compile time), build the
``device`` variable from a published slice device (v1 flat or v1beta1 ``basic:``), and evaluate
to ``Match`` / ``NoMatch`` / ``Error(message)`` without ever raising, so callers can say per
device which selector rejected it and why. Includes Kubernetes quantities (``quantity()``,
``compareTo``...) and semantic versions (``semver()``, ``version`` attributes).

Limits: expressions are parsed, not type-checked (celpy has no checker), so a type error shows
up at evaluation as an ``Error``, not at compile time; no CEL cost limits; no ``cel.bind`` and
no list-typed attributes (DRAListTypeAttributes, alpha); quantities and versions are compared
with ``compareTo``/``isGreaterThan``/``isLessThan``/``==`` (no ``<`` operators, as upstream).
Pure computation: no I/O. Imports nothing of ours but errors.
"""

from cnidra.cel._device import AttributeValue, CapacityView, DeviceView, split_qualified_name
from cnidra.cel._quantity import Quantity, format_quantity, parse_quantity
from cnidra.cel._request import (
    RequestVerdict,
    SelectorSet,
    compile_selectors,
    evaluate_request,
    runtime_error_message,
)
from cnidra.cel._selector import Error, Match, NoMatch, Outcome, Selector, compile_selector
from cnidra.cel._semver import Semver, parse_semver

__all__ = [
    "AttributeValue",
    "CapacityView",
    "DeviceView",
    "Error",
    "Match",
    "NoMatch",
    "Outcome",
    "Quantity",
    "RequestVerdict",
    "Selector",
    "SelectorSet",
    "Semver",
    "compile_selector",
    "compile_selectors",
    "evaluate_request",
    "format_quantity",
    "parse_quantity",
    "parse_semver",
    "runtime_error_message",
    "split_qualified_name",
]
