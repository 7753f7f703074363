"""Canonical Kubernetes quantities (``"1000"`` is stored as ``"1k"``), for the stand-in."""

from __future__ import annotations

import functools
import re
from fractions import Fraction

_RE = re.compile(r"^([+-]?[0-9.]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")
_BIN = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DEC = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DEC_SUFFIX = {v: k for k, v in _DEC.items()}


def parse_quantity(text: str) -> tuple[Fraction, bool] | None:
    """The exact value and whether it used a binary suffix; None when not a quantity."""
    match = _RE.match(text.strip())
    if not match or match.group(1) in {"", ".", "+", "-"}:
        return None
    try:
        number = Fraction(match.group(1))
    except ValueError:
        return None
    suffix = match.group(2) or ""
    if suffix in _BIN:
        return number * (1024 ** _BIN[suffix]), True
    if suffix[:1] in {"e", "E"} and len(suffix) > 1:
        return number * Fraction(10) ** int(suffix[1:]), False
    return number * Fraction(10) ** _DEC[suffix], False


@functools.lru_cache(maxsize=4096)  # slices repeat the same few quantities per device
def canonical_quantity(text: str) -> str:
    """Canonical form of a quantity; text that does not parse is returned unchanged."""
    parsed = parse_quantity(text)
    if parsed is None:
        return text
    value, binary = parsed
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value == 0:
        return "0"
    if binary and value.denominator == 1:
        for power in range(6, 0, -1):
            unit = 1024**power
            if value.numerator % unit == 0:
                return f"{sign}{value.numerator // unit}{list(_BIN)[power - 1]}"
    for exp in range(18, -10, -3):
        scaled = value / Fraction(10) ** exp
        if scaled.denominator == 1:
            return f"{sign}{scaled.numerator}{_DEC_SUFFIX[exp]}"
    nano = -(-value * 10**9 // 1)
    return f"{sign}{nano}n"
