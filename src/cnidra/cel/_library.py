"""The Kubernetes CEL extensions DRA selectors use, for celpy: quantities and semantic versions.

Functions (as in k8s.io/apiserver/pkg/cel/library): ``quantity(s)``, ``isQuantity(s)``,
``semver(s)``, ``isSemver(s)``; members ``compareTo``, ``isGreaterThan``, ``isLessThan``
(quantities and versions), ``add``, ``sub``, ``asInteger``, ``asApproximateFloat``,
``isInteger``, ``sign`` (quantities), ``major``, ``minor``, ``patch`` (versions). ``==`` works on
both. Errors come back as celpy error values carrying the upstream message, never as exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

from celpy import celtypes
from celpy.evaluation import CELEvalError

from cnidra.cel._device import DeviceView
from cnidra.cel._quantity import Quantity, parse_quantity
from cnidra.cel._semver import Semver, parse_semver
from cnidra.errors import ConfigError


class CelQuantity:
    """A quantity value inside CEL."""

    __slots__ = ("q",)

    def __init__(self, q: Quantity) -> None:
        self.q = q

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CelQuantity) and self.q.compare(other.q) == 0

    def __hash__(self) -> int:
        return hash(self.q)

    def __repr__(self) -> str:
        return f"quantity({str(self.q)!r})"


class CelSemver:
    """A semantic version value inside CEL."""

    __slots__ = ("v",)

    def __init__(self, v: Semver) -> None:
        self.v = v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CelSemver) and self.v.compare(other.v) == 0

    def __hash__(self) -> int:
        return hash((self.v.major, self.v.minor, self.v.patch, self.v.prerelease))

    def __repr__(self) -> str:
        return f"semver({str(self.v)!r})"


def cel_type_name(value: Any) -> str:
    """The CEL type name of a value, for messages (``string``, ``int``, ``map``...)."""
    names: list[tuple[type, str]] = [
        (celtypes.BoolType, "bool"), (celtypes.IntType, "int"), (celtypes.UintType, "uint"),
        (celtypes.DoubleType, "double"), (celtypes.StringType, "string"),
        (celtypes.BytesType, "bytes"), (celtypes.ListType, "list"), (celtypes.MapType, "map"),
        (CelQuantity, "kubernetes.Quantity"), (CelSemver, "kubernetes.Semver"),
    ]
    for cls, name in names:
        if isinstance(value, cls):
            return name
    return "null_type" if value is None else type(value).__name__


def _err(message: str) -> CELEvalError:
    return CELEvalError(message, ValueError, ())


def _no_overload(name: str, *args: Any) -> CELEvalError:
    kinds = ", ".join(cel_type_name(a) for a in args)
    return _err(f"no such overload: {name}({kinds})")


def _quantity(text: Any) -> Any:
    if not isinstance(text, celtypes.StringType):
        return _no_overload("quantity", text)
    try:
        return CelQuantity(parse_quantity(str(text)))
    except ConfigError as exc:
        return _err(exc.message)


def _is_quantity(text: Any) -> Any:
    if not isinstance(text, celtypes.StringType):
        return _no_overload("isQuantity", text)
    try:
        parse_quantity(str(text))
    except ConfigError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _semver(text: Any) -> Any:
    if not isinstance(text, celtypes.StringType):
        return _no_overload("semver", text)
    try:
        return CelSemver(parse_semver(str(text)))
    except ConfigError as exc:
        return _err(exc.message)


def _is_semver(text: Any) -> Any:
    if not isinstance(text, celtypes.StringType):
        return _no_overload("isSemver", text)
    try:
        parse_semver(str(text))
    except ConfigError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _compare(name: str, left: Any, right: Any) -> int | CELEvalError:
    if isinstance(left, CelQuantity) and isinstance(right, CelQuantity):
        return left.q.compare(right.q)
    if isinstance(left, CelSemver) and isinstance(right, CelSemver):
        return left.v.compare(right.v)
    return _no_overload(name, left, right)


def _compare_to(left: Any, right: Any) -> Any:
    result = _compare("compareTo", left, right)
    return result if isinstance(result, CELEvalError) else celtypes.IntType(result)


def _is_greater(left: Any, right: Any) -> Any:
    result = _compare("isGreaterThan", left, right)
    return result if isinstance(result, CELEvalError) else celtypes.BoolType(result > 0)


def _is_less(left: Any, right: Any) -> Any:
    result = _compare("isLessThan", left, right)
    return result if isinstance(result, CELEvalError) else celtypes.BoolType(result < 0)


def _arith(name: str, sign: int) -> Callable[[Any, Any], Any]:
    def apply(left: Any, right: Any) -> Any:
        if not isinstance(left, CelQuantity):
            return _no_overload(name, left, right)
        if isinstance(right, CelQuantity):
            delta = right.q.value
        elif isinstance(right, celtypes.IntType) and not isinstance(right, celtypes.BoolType):
            delta = Fraction(int(right))
        else:
            return _no_overload(name, left, right)
        return CelQuantity(Quantity(left.q.value + sign * delta, left.q.format))

    return apply


def _as_integer(value: Any) -> Any:
    if not isinstance(value, CelQuantity):
        return _no_overload("asInteger", value)
    if value.q.value.denominator != 1 or abs(value.q.value) >= 2**63:
        return _err("cannot convert value to integer")
    return celtypes.IntType(int(value.q.value))


def _quantity_member(name: str, fn: Callable[[Quantity], Any]) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        return fn(value.q) if isinstance(value, CelQuantity) else _no_overload(name, value)

    return apply


def _semver_member(name: str, fn: Callable[[Semver], int]) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        if not isinstance(value, CelSemver):
            return _no_overload(name, value)
        return celtypes.IntType(fn(value.v))

    return apply


FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    "quantity": _quantity,
    "isQuantity": _is_quantity,
    "semver": _semver,
    "isSemver": _is_semver,
    "compareTo": _compare_to,
    "isGreaterThan": _is_greater,
    "isLessThan": _is_less,
    "add": _arith("add", 1),
    "sub": _arith("sub", -1),
    "asInteger": _as_integer,
    "asApproximateFloat": _quantity_member(
        "asApproximateFloat", lambda q: celtypes.DoubleType(float(q.value))
    ),
    "isInteger": _quantity_member(
        "isInteger", lambda q: celtypes.BoolType(q.value.denominator == 1)
    ),
    "sign": _quantity_member("sign", lambda q: celtypes.IntType((q.value > 0) - (q.value < 0))),
    "major": _semver_member("major", lambda v: v.major),
    "minor": _semver_member("minor", lambda v: v.minor),
    "patch": _semver_member("patch", lambda v: v.patch),
}


class DefaultMap(celtypes.MapType):
    """``device.attributes`` / ``device.capacity``: an unknown domain reads as an empty map."""

    def __missing__(self, key: Any) -> celtypes.MapType:
        return celtypes.MapType()


def _cel_attribute(value: Any) -> Any:
    if isinstance(value, Semver):
        return CelSemver(value)
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    return celtypes.StringType(value)


def device_activation(device: DeviceView) -> dict[str, Any]:
    """The ``device`` variable for a selector, built like the scheduler builds it."""
    attributes = DefaultMap({
        celtypes.StringType(domain): celtypes.MapType({
            celtypes.StringType(ident): _cel_attribute(value) for ident, value in ids.items()
        })
        for domain, ids in device.attributes.items()
    })
    capacity = DefaultMap({
        celtypes.StringType(domain): celtypes.MapType({
            celtypes.StringType(ident): CelQuantity(cap.value) for ident, cap in ids.items()
        })
        for domain, ids in device.capacity.items()
    })
    return {
        "device": celtypes.MapType({
            celtypes.StringType("driver"): celtypes.StringType(device.driver),
            celtypes.StringType("allowMultipleAllocations"): celtypes.BoolType(
                device.allow_multiple_allocations
            ),
            celtypes.StringType("attributes"): attributes,
            celtypes.StringType("capacity"): capacity,
        })
    }


__all__ = ["FUNCTIONS", "CelQuantity", "CelSemver", "cel_type_name", "device_activation"]
