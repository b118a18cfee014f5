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

from decimal import Decimal, InvalidOperation

__all__ = [
    "PPM",
    "GridError",
    "ceil_div",
    "decimal_to_grid",
    "grid_to_decimal",
    "parse_decimal",
]

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
        GridError: malformed, negative, zero (unless allowed) or not an exact multiple of ``step``.
    """
    value = text if isinstance(text, Decimal) else parse_decimal(text)
    assert step > 0, "grid step must be positive"
    if value < 0 or (value == 0 and not allow_zero):
        raise GridError(f"amount must be {'non-negative' if allow_zero else 'positive'}: {value}")
    steps, remainder = divmod(value, step)
    if remainder != 0:
        raise GridError(f"{value} is not a multiple of the grid step {step}")
    return int(steps)


def grid_to_decimal(count: int, step: Decimal) -> Decimal:
    """Inverse of :func:`decimal_to_grid`: ``count * step`` as an exact ``Decimal``."""
    return Decimal(count) * step


def ceil_div(numerator: int, denominator: int) -> int:
    """Integer division rounded toward +infinity (``denominator`` > 0)."""
    assert denominator > 0
    return -((-numerator) // denominator)
