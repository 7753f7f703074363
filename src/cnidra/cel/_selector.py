"""Compile a DRA CEL selector once; evaluate it per device to Match, NoMatch or Error(message).

Compile errors are ConfigError (bad input, found at start). Evaluation never raises: a missing
key, a type mismatch or a non-bool result is an ``Error`` outcome with the scheduler's wording
(``no such key: name``; ``CEL result of type string could not be converted to bool``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import celpy
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

from cnidra.cel._device import DeviceView
from cnidra.cel._library import FUNCTIONS, cel_type_name, device_activation
from cnidra.errors import ConfigError


@dataclass(frozen=True)
class Match:
    """The selector returned true."""

    matched: bool = True


@dataclass(frozen=True)
class NoMatch:
    """The selector returned false."""

    matched: bool = False


@dataclass(frozen=True)
class Error:
    """The selector failed at runtime; the device does not match. ``message`` says why."""

    message: str
    matched: bool = False


Outcome = Match | NoMatch | Error

# One environment for all selectors (celpy raises the interpreter's recursion limit to 2500
# when it is built, for its recursive parser).
_ENV = celpy.Environment()

_MEMBER = re.compile(r"no such member in mapping: '(?P<key>.*)'")
_OVERLOAD = re.compile(
    r"found no matching overload for Token\('RULE', '(?P<op>\w+)'\) applied to '\((?P<types>.*)\)'"
)
_OPERATORS = {
    "relation_eq": "_==_", "relation_ne": "_!=_", "relation_lt": "_<_", "relation_le": "_<=_",
    "relation_gt": "_>_", "relation_ge": "_>=_", "relation_in": "@in", "addition_add": "_+_",
    "addition_sub": "_-_", "multiplication_mul": "_*_", "multiplication_div": "_/_",
}
_CEL_NAMES = {
    "BoolType": "bool", "IntType": "int", "UintType": "uint", "DoubleType": "double",
    "StringType": "string", "BytesType": "bytes", "ListType": "list", "MapType": "map",
}


def _eval_error_message(exc: CELEvalError) -> str:
    """celpy's error tuple → the message cel-go would give."""
    args = exc.args
    text = str(args[0]) if args else "evaluation error"
    member = _MEMBER.match(text)
    if member:
        return f"no such key: {member['key']}"
    if text == "no such key" and len(args) > 2 and args[2]:
        return f"no such key: {args[2][0]}"
    overload = _OVERLOAD.match(text)
    if overload:
        kinds = ", ".join(
            _CEL_NAMES.get(name, name) for name in re.findall(r"celtypes\.(\w+)", overload["types"])
        )
        op = _OPERATORS.get(overload["op"], overload["op"])
        return f"found no matching overload for '{op}' applied to '({kinds})'"
    return text


class Selector:
    """One compiled CEL expression; immutable and reusable across devices."""

    def __init__(self, expression: str, program: Any) -> None:
        self.expression = expression
        self._program = program

    def __repr__(self) -> str:
        return f"Selector({self.expression!r})"

    def evaluate(self, device: DeviceView) -> Outcome:
        """Match / NoMatch / Error for ``device``. Never raises for a bad device or expression."""
        try:
            result = self._program.evaluate(device_activation(device))
        except CELEvalError as exc:
            return Error(_eval_error_message(exc))
        except (TypeError, ValueError, KeyError, AttributeError, ArithmeticError) as exc:
            # celpy lets some Python errors through (e.g. comparisons of foreign types).
            return Error(f"{type(exc).__name__}: {exc}")
        if isinstance(result, CELEvalError):
            return Error(_eval_error_message(result))
        if not isinstance(result, celtypes.BoolType):
            return Error(
                f"CEL result of type {cel_type_name(result)} could not be converted to bool"
            )
        return Match() if bool(result) else NoMatch()


def compile_selector(expression: str) -> Selector:
    """Parse ``expression``; ConfigError names the expression and the parse error."""
    if not isinstance(expression, str) or not expression.strip():
        raise ConfigError(f"CEL expression {expression!r} is empty", "cel.expression")
    try:
        ast = _ENV.compile(expression)
        program = _ENV.program(ast, functions=dict(FUNCTIONS))
    except CELParseError as exc:
        where = f"line {exc.line}, column {exc.column}" if exc.line else "unknown position"
        raise ConfigError(
            f"CEL expression {expression!r} does not compile: syntax error at {where}",
            "cel.expression",
        ) from exc
    except Exception as exc:  # lark raises assorted errors for odd input
        raise ConfigError(
            f"CEL expression {expression!r} does not compile: {exc}", "cel.expression"
        ) from exc
    return Selector(expression, program)


__all__ = ["Error", "Match", "NoMatch", "Outcome", "Selector", "compile_selector"]
