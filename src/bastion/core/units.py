"""Integer units and the decimal-string edge.

Inside the core every quantity is an integer:

* prices in **ticks** of the instrument's tick size (``price_ticks``),
* sizes in **lots** of the instrument's lot size (``qty_lots``),
* money in **atoms** of the settlement asset, e.g. 1e-6 USDC (``*_atoms``),
* rates and fractions in **ppm**, parts per million (``*_ppm``),
* time in integer nanoseconds (``timestamp_ns``).

Decimal strings are accepted only at the edge, through :func:`decimal_to_grid`, which rejects any value
that is not an exact multiple of the grid instead of rounding it. ``decimal.Decimal`` is exact decimal
arithmetic (no binary floating point), so it is safe at this boundary.
"""

from __future__ import annotations

from decimal import (
    Clamped,
    Context,
    Decimal,
    DecimalException,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
    Subnormal,
    Underflow,
    localcontext,
)

__all__ = [
    "DECIMAL_TEXT_LEN_MAX",
    "PPM",
    "GridError",
    "ceil_div",
    "decimal_to_grid",
    "exact_product",
    "grid_to_decimal",
    "parse_decimal",
]

DECIMAL_TEXT_LEN_MAX = 64
"""Longest decimal string accepted at the edge (characters): bounds the digits any conversion handles."""

# Arithmetic at the edge must be exact: Python's default context rounds to 28 significant digits
# silently (a 31-digit tick size would multiply to a "whole" number of atoms) and raises an untyped
# InvalidOperation when a quotient needs more digits. This context has room for every product of a few
# DECIMAL_TEXT_LEN_MAX-character values and traps any rounding, so inexact results become GridError.
_EXACT = Context(prec=8 * DECIMAL_TEXT_LEN_MAX, Emax=10**6, Emin=-(10**6),
                 traps=[Clamped, DivisionByZero, Inexact, InvalidOperation, Overflow, Rounded, Subnormal,
                        Underflow])

PPM = 1_000_000
"""One whole in parts per million."""


class GridError(ValueError):
    """A decimal string is malformed, not positive where required, or not on the tick/lot grid."""


def parse_decimal(text: str) -> Decimal:
    """Parse a decimal string exactly.

    Args:
        text: a plain decimal such as ``"65000.1"``; exponents, NaN and infinities are refused.

    Returns:
        The exact ``Decimal`` value.

    Raises:
        GridError: the text is not a finite plain decimal number.
    """
    if not isinstance(text, str):
        raise GridError(f"expected a decimal string, got {type(text).__name__}")
    stripped = text.strip()
    if len(stripped) > DECIMAL_TEXT_LEN_MAX:
        raise GridError(f"decimal string longer than {DECIMAL_TEXT_LEN_MAX} characters: {text[:20]!r}...")
    if not stripped or any(c not in "0123456789.-+" for c in stripped):
        raise GridError(f"not a plain decimal number: {text!r}")
    try:
        value = Decimal(stripped)
    except InvalidOperation as exc:
        raise GridError(f"not a decimal number: {text!r}") from exc
    if not value.is_finite():
        raise GridError(f"not a finite number: {text!r}")
    return value


def decimal_to_grid(text: str | Decimal, step: Decimal, *, allow_zero: bool = False) -> int:
    """Convert a decimal amount to an integer count of grid steps, refusing anything off the grid.

    Args:
        text: the amount, as a decimal string (or an exact ``Decimal``).
        step: the grid step, e.g. tick size ``Decimal("0.1")``; must be positive.
        allow_zero: accept ``0`` (default: only strictly positive amounts).

    Returns:
        ``amount / step`` as an ``int``.

    Raises:
        GridError: malformed, not finite, negative, zero (unless allowed), not an exact multiple of
            ``step``, or too many digits to divide exactly (never rounded, never an untyped error).
    """
    value = text if isinstance(text, Decimal) else parse_decimal(text)
    assert step > 0, "grid step must be positive"
    if not value.is_finite():
        raise GridError(f"not a finite number: {value}")
    if value < 0 or (value == 0 and not allow_zero):
        raise GridError(f"amount must be {'non-negative' if allow_zero else 'positive'}: {value}")
    try:
        with localcontext(_EXACT):
            steps, remainder = divmod(value, step)
    except DecimalException as exc:
        raise GridError(f"{value} cannot be divided exactly by the grid step {step}") from exc
    if remainder != 0:
        raise GridError(f"{value} is not a multiple of the grid step {step}")
    return int(steps)


def exact_product(*factors: Decimal) -> Decimal:
    """The exact product of ``factors`` (no rounding at any precision).

    Raises:
        GridError: the product cannot be represented exactly (far beyond any real grid).
    """
    try:
        with localcontext(_EXACT):
            product = Decimal(1)
            for factor in factors:
                product *= factor
    except DecimalException as exc:
        raise GridError(f"product of {[str(f) for f in factors]} is not exact") from exc
    return product


def grid_to_decimal(count: int, step: Decimal) -> Decimal:
    """Inverse of :func:`decimal_to_grid`: ``count * step`` as an exact ``Decimal``.

    Raises:
        GridError: the product cannot be represented exactly.
    """
    return exact_product(Decimal(count), step)


def ceil_div(numerator: int, denominator: int) -> int:
    """Integer division rounded toward +infinity (``denominator`` > 0)."""
    assert denominator > 0
    return -((-numerator) // denominator)
