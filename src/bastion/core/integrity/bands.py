"""Static price bands around a reference price, and protection prices for market and stop orders.

CME "price banding" (shared/reference/matching-engines.md §3.9): each instrument has a band of
``band_ppm`` around a reference price (the mark or the last trade); a limit order priced beyond the
band is rejected with ``price_ticks_outside_band``. Market orders become limit orders at a protection
price; stop orders, when triggered, do the same with the stop price as anchor.

Exact integer rounding (all values in ticks, ``PPM`` = 1,000,000):

* half-width ``w = floor(reference * band_ppm / PPM)`` — rounded **down**, so the band is never wider
  than ``band_ppm`` (CME DCB variants are also rounded down to the tick);
* ``low = max(reference - w, 1)``, ``high = min(reference + w, price_ticks_max)``;
* both edges are **inclusive**: a price equal to ``low`` or ``high`` is inside the band.

Which side is checked (:class:`BandMode`): CME rejects only prices beyond the band *on the aggressive
side* — bids above ``high``, offers below ``low`` — because a passive order far from the market cannot
trade outside the band (``AGGRESSIVE_SIDE``, the default). ``BOTH_SIDES`` rejects any price outside.

No fill outside the band (the property tested in tests/integrity/test_bands.py): if (1) every order is
admitted only with :func:`check_limit_price`, (2) every taker matches with the limit returned by
:func:`clamp_taker_limit` and (3) after the reference moves, resting orders that violate the new band on
their aggressive side are canceled (:func:`resting_violates`), then every trade price ``p`` (the
maker's price) satisfies ``low <= p <= high``. Proof: a buy taker trades at ask prices ``<=`` its
clamped limit ``<= high``, and resting asks are ``>= low``; a sell taker symmetrically.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from bastion.core.integrity.codes import IntegrityRejectCode
from bastion.core.units import PPM

__all__ = [
    "Band",
    "BandMode",
    "BandSpec",
    "ReferenceSource",
    "band_around",
    "band_width_ticks",
    "check_limit_price",
    "clamp_taker_limit",
    "fill_within_band",
    "protection_price",
    "resting_violates",
]


class ReferenceSource(IntEnum):
    """Which price the band is centered on."""

    MARK = 0  # the oracle-driven mark price (SetMarkPrice)
    LAST_TRADE = 1  # the last trade (or auction clearing) price; the mark until the first trade


class BandMode(IntEnum):
    """Which limit prices are checked against the band."""

    AGGRESSIVE_SIDE = 0  # CME: bids above high and offers below low are rejected
    BOTH_SIDES = 1  # every limit price must lie in [low, high]


@dataclass(frozen=True, slots=True)
class BandSpec:
    """Per-instrument band parameters.

    Attributes:
        band_ppm: half-width of the band, ppm of the reference price, 1..PPM.
        protection_ppm: market/stop protection, ppm of the anchor price, 1..PPM.
        mode: which side is checked.
        source: the reference price used.
    """

    band_ppm: int
    protection_ppm: int
    mode: BandMode = BandMode.AGGRESSIVE_SIDE
    source: ReferenceSource = ReferenceSource.MARK

    def __post_init__(self) -> None:
        assert 0 < self.band_ppm <= PPM, "band_ppm out of range"
        assert 0 < self.protection_ppm <= PPM, "protection_ppm out of range"


@dataclass(frozen=True, slots=True)
class Band:
    """The inclusive price interval ``[low_ticks, high_ticks]`` around ``reference_ticks``."""

    reference_ticks: int
    low_ticks: int
    high_ticks: int

    def __post_init__(self) -> None:
        assert 1 <= self.low_ticks <= self.reference_ticks <= self.high_ticks, "band does not contain its reference"


def band_width_ticks(reference_ticks: int, band_ppm: int) -> int:
    """Half-width ``floor(reference_ticks * band_ppm / PPM)`` in ticks (rounded down, may be 0).

    Example: reference 12,345 ticks, 10,000 ppm (1 %) -> 123.45 -> 123 ticks.
    """
    assert reference_ticks > 0 and 0 <= band_ppm <= PPM
    return reference_ticks * band_ppm // PPM


def band_around(reference_ticks: int, band_ppm: int, price_ticks_max: int) -> Band:
    """The band ``[max(ref - w, 1), min(ref + w, price_ticks_max)]`` with ``w`` from :func:`band_width_ticks`.

    Args:
        reference_ticks: the reference price, 1..price_ticks_max.
        band_ppm: half-width in ppm, 0..PPM.
        price_ticks_max: the instrument's largest price.
    """
    assert 0 < reference_ticks <= price_ticks_max
    width = band_width_ticks(reference_ticks, band_ppm)
    return Band(reference_ticks, max(reference_ticks - width, 1), min(reference_ticks + width, price_ticks_max))


def check_limit_price(band: Band, side: int, price_ticks: int,
                      mode: BandMode = BandMode.AGGRESSIVE_SIDE) -> IntegrityRejectCode | None:
    """None if a limit order at ``price_ticks`` on ``side`` (+1 buy, -1 sell) is within the band.

    Edges are inclusive: ``price_ticks == band.high_ticks`` is accepted for a buy, ``high + 1`` is not.
    """
    assert side in (1, -1)
    too_high = price_ticks > band.high_ticks
    too_low = price_ticks < band.low_ticks
    if mode == BandMode.BOTH_SIDES:
        outside = too_high or too_low
    else:
        outside = too_high if side > 0 else too_low
    return IntegrityRejectCode.price_ticks_outside_band if outside else None


def clamp_taker_limit(band: Band, side: int, limit_ticks: int) -> int:
    """The limit a taker matches with: a buy never trades above ``high``, a sell never below ``low``."""
    assert side in (1, -1)
    if side > 0:
        return min(limit_ticks, band.high_ticks)
    return max(limit_ticks, band.low_ticks)


def resting_violates(band: Band, side: int, price_ticks: int) -> bool:
    """True when a resting order must be canceled after the band moved (beyond it on its aggressive side)."""
    return check_limit_price(band, side, price_ticks, BandMode.AGGRESSIVE_SIDE) is not None


def fill_within_band(band: Band, price_ticks: int) -> bool:
    """True when a trade at ``price_ticks`` lies in the band (edges inclusive)."""
    return band.low_ticks <= price_ticks <= band.high_ticks


def protection_price(band: Band, side: int, anchor_ticks: int, protection_ppm: int) -> int:
    """The limit price a market order (or a triggered stop) gets.

    ``anchor +/- floor(anchor * protection_ppm / PPM)``, then clamped into the band, so a market order
    can never trade outside the band. The anchor is the best opposite price for market orders (the
    engine's current rule, kept bit-for-bit: ``floor(best*(PPM+ppm)/PPM)`` and
    ``ceil(best*(PPM-ppm)/PPM)`` are the same numbers), the reference price when that side is empty,
    and the stop price for stop orders (CME "protection points" around the trigger).

    Args:
        band: the current band.
        side: +1 buy, -1 sell.
        anchor_ticks: > 0.
        protection_ppm: 0..PPM.

    Returns:
        A price in ``[band.low_ticks, band.high_ticks]``.
    """
    assert side in (1, -1) and anchor_ticks > 0
    width = anchor_ticks * protection_ppm // PPM
    if side > 0:
        price = min(anchor_ticks + width, band.high_ticks)
    else:
        price = max(anchor_ticks - width, band.low_ticks)
    return max(min(price, band.high_ticks), band.low_ticks)
