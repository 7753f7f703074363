"""Kubernetes resource quantities (``1k``, ``500m``, ``1Gi``, ``1e3``): parse, compare, format.

Values are exact fractions. Formatting follows the API server's canonical form for the value's
format (``1000`` parsed as decimal comes back as ``1k``; ``1536Mi`` stays binary), which is what
``status.allocation.devices.results[].consumedCapacity`` carries.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from cnidra.errors import ConfigError

Format = Literal["DecimalSI", "BinarySI", "DecimalExponent"]

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_BY_EXP = {exp: suffix for suffix, exp in _DECIMAL.items()}
_RE = re.compile(
    r"^(?P<sign>[+-]?)(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<bin>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<exp>[eE][+-]?[0-9]+)|(?P<dec>[numkMGTPE]?))$"
)


@dataclass(frozen=True, order=False)
class Quantity:
    """An exact quantity and the format it was written in (kept for canonical output)."""

    value: Fraction
    format: Format = "DecimalSI"

    def __str__(self) -> str:
        return format_quantity(self.value, self.format)

    def compare(self, other: Quantity) -> int:
        """-1, 0 or 1, like ``Quantity.Cmp``."""
        return (self.value > other.value) - (self.value < other.value)

    def __add__(self, other: Quantity) -> Quantity:
        return Quantity(self.value + other.value, self.format)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self.value - other.value, self.format)

    def __lt__(self, other: Quantity) -> bool:
        return self.value < other.value

    def __le__(self, other: Quantity) -> bool:
        return self.value <= other.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantity) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


def parse_quantity(text: str, path: str = "") -> Quantity:
    """Parse ``text`` (``"1k"``, ``"1Gi"``, ``"0.5"``, ``"1e3"``); ConfigError names ``path``."""
    match = _RE.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(
            f"quantities must match the regular expression "
            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$', got {text!r}",
            path,
        )
    number = Fraction(match["num"] if not match["num"].startswith(".") else "0" + match["num"])
    if match["sign"] == "-":
        number = -number
    fmt: Format
    if match["bin"]:
        fmt, number = "BinarySI", number * 1024 ** _BINARY[match["bin"]]
    elif match["exp"]:
        fmt, number = "DecimalExponent", number * Fraction(10) ** int(match["exp"][1:])
    else:
        fmt, number = "DecimalSI", number * Fraction(10) ** _DECIMAL[match["dec"] or ""]
    return Quantity(number, fmt)


def format_quantity(value: Fraction, fmt: Format = "DecimalSI") -> str:
    """Canonical text of ``value`` in ``fmt`` (``1000`` → ``1k``; ``1024`` BinarySI → ``1Ki``)."""
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    if fmt == "BinarySI" and magnitude.denominator == 1 and magnitude >= 1024:
        mantissa, power = magnitude.numerator, 0
        while mantissa % 1024 == 0 and power < 6:
            mantissa, power = mantissa // 1024, power + 1
        if power:
            suffix = next(s for s, p in _BINARY.items() if p == power)
            return f"{sign}{mantissa}{suffix}"
        return f"{sign}{mantissa}"
    # Decimal: whole nanos (rounded up, as the API server does), then the largest exponent
    # (a multiple of 3) that keeps the mantissa whole.
    exp = -9
    scaled = Fraction(math.ceil(magnitude * 10**9))
    while exp < 18 and scaled % 1000 == 0:
        scaled, exp = scaled / 1000, exp + 3
    mantissa = int(scaled)
    if fmt == "DecimalExponent":
        return f"{sign}{mantissa}" + (f"e{exp}" if exp else "")
    return f"{sign}{mantissa}{_DECIMAL_BY_EXP[exp]}"


__all__ = ["Format", "Quantity", "format_quantity", "parse_quantity"]
