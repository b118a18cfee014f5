"""Decimal text -> integer grid units, exactly, at the feed edge.

Venues send prices and sizes as decimal strings. They are parsed with `decimal.Decimal`
(never `float`) and divided by the grid step of the instrument; the quotient must be a
whole number, otherwise `OffGridError` is raised. Nothing is rounded, ever: an off-grid
value means the grid (or the data) is wrong and a human must look.
"""

from __future__ import annotations

import decimal
import re
from decimal import Decimal

from bastion.feeds.errors import FeedFormatError, OffGridError

__all__ = ["UnitsParser", "decimal_from_text", "units_from_text"]

# Plain decimal as Binance sends it: optional sign, digits, optional fraction.
# `Decimal()` alone is too lenient for a wire format: it accepts "NaN", "Infinity",
# "1_000", surrounding whitespace and exponents.
_PLAIN_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
# Same plus an exponent, as pandas writes small floats into CSV ("5.4e-05").
_EXPONENT_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")

# Exact arithmetic: 60 significant digits is far above any price/size on any venue, and
# Inexact/InvalidOperation trap so a surprise can never turn into a silent rounding.
_CONTEXT = decimal.Context(
    prec=60,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow, decimal.Inexact],
)

text_length_max = 64
"""Longest decimal text accepted; longer input is malformed (bounds the parse work)."""


def decimal_from_text(text: str, field: str, *, allow_exponent: bool = False) -> Decimal:
    """Parse a decimal string strictly.

    Args:
        text: the value as it appeared in the input, e.g. ``"61800.20"``.
        field: field name, only used in error messages.
        allow_exponent: accept scientific notation (``"5.4e-05"``), for CSV input.

    Returns:
        The exact `Decimal` value.

    Raises:
        FeedFormatError: the text is not a plain (or, if allowed, exponent) decimal.
    """
    pattern = _EXPONENT_RE if allow_exponent else _PLAIN_RE
    if len(text) > text_length_max or pattern.fullmatch(text) is None:
        raise FeedFormatError(f"{field}={text!r} is not a decimal number")
    return Decimal(text)


def units_from_text(
    text: str,
    step: Decimal,
    field: str,
    *,
    allow_exponent: bool = False,
    allow_negative: bool = False,
) -> int:
    """Convert a decimal string into an integer count of ``step`` units, exactly.

    Args:
        text: the value as it appeared in the input.
        step: grid step (tick size or lot size), a positive `Decimal` such as ``Decimal("0.1")``.
        field: field name for error messages (``"price"``, ``"qty"``).
        allow_exponent: accept scientific notation.
        allow_negative: accept a leading minus sign (prices and sizes are never negative).

    Returns:
        ``value / step`` as an `int` (>= 0 unless ``allow_negative``).

    Raises:
        FeedFormatError: malformed text, or a negative value when not allowed.
        OffGridError: ``value`` is not an exact multiple of ``step``.
    """
    assert step > 0, f"grid step must be positive, got {step}"
    value = decimal_from_text(text, field, allow_exponent=allow_exponent)
    if value < 0 and not allow_negative:
        raise FeedFormatError(f"{field}={text!r} is negative")
    try:
        quotient, remainder = _CONTEXT.divmod(value, step)
    except decimal.DecimalException as exc:  # quotient beyond 60 digits: absurd input
        raise FeedFormatError(f"{field}={text!r} cannot be divided by step {step}") from exc
    if remainder != 0:
        raise OffGridError(field, text, str(step))
    units = int(quotient)
    assert Decimal(units) * step == value, "exact round trip"
    return units


class UnitsParser:
    """`units_from_text` for one fixed step, memoised: feeds repeat the same few
    thousand price/size strings millions of times.

    The memo is bounded by ``cache_entries_max`` and simply cleared when full, so memory
    stays constant and results never depend on history (a hit returns exactly what a
    miss would compute). Errors are never cached.

    Args:
        step: grid step, positive.
        field: field name for errors.
        positive: additionally reject zero (prices; trade sizes).
        cache_entries_max: memo bound.
    """

    __slots__ = ("_cache", "cache_entries_max", "field", "positive", "step")

    def __init__(self, step: Decimal, field: str, *, positive: bool, cache_entries_max: int = 1 << 14) -> None:
        assert step > 0 and cache_entries_max > 0
        self.step = step
        self.field = field
        self.positive = positive
        self.cache_entries_max = cache_entries_max
        self._cache: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        """Return ``text / step`` as an int; raises like `units_from_text`."""
        units = self._cache.get(text)
        if units is not None:
            return units
        units = units_from_text(text, self.step, self.field)
        if self.positive and units == 0:
            raise FeedFormatError(f"{self.field}={text!r} is not positive")
        if len(self._cache) >= self.cache_entries_max:
            self._cache.clear()
        self._cache[text] = units
        return units
