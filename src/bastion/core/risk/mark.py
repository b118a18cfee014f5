"""Mark price: a manipulation-resistant fair price from the index and the venue's own book.

Two configurable methods (reference/risk-engines.md §2.3, §2.5):

* **Binance** (FAQ "Mark Price"): ``mark = median(price1, price2, last)`` with
  ``price1 = index * (1 + last funding rate * time until funding / funding interval)`` and
  ``price2 = index + moving average of (mid - index)`` over the last ``basis_samples_max`` samples
  (Binance: 30 samples, one per 5 s, i.e. 2.5 min).
* **Hyperliquid** ("Robust price indices"): ``mark = median(oracle + EMA(mid - oracle),
  median(best bid, best ask, last), median of other venues' perp mids)``; with exactly two inputs a third
  is added: an EMA of ``median(bid, ask, last)`` (HL: 150 s and 30 s EMAs; here per-sample EMAs at the
  caller's sampling cadence, ``alpha_ppm_from_span``).

Integers only. Mids and bases are kept in **half ticks** (``bid + ask`` and ``bid + ask - 2*index``) so
no half tick is lost before averaging; averages floor (``//``); the median of an even count is the floor
of the mean of the two middle values (oracle ``median_floor``). An optional band clamps the mark to
``index * (1 +- band)`` (a Drift-style guard rail against a runaway own-book price).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from bastion.core.oracle.median import median_floor
from bastion.core.oracle.twap import ema_next
from bastion.core.risk._types import PPB, PPM

__all__ = [
    "BASIS_SAMPLES_MAX",
    "MarkConfig",
    "MarkMethod",
    "MarkPriceState",
    "binance_price1_ticks",
    "clamp_to_band",
    "median3",
]

BASIS_SAMPLES_MAX = 4_096
"""Most basis samples the moving average may span."""


class MarkMethod(IntEnum):
    """Which mark-price rule an instrument uses."""

    BINANCE = 1
    HYPERLIQUID = 2
    INDEX = 3
    """The index itself (dYdX v4 marks to the oracle price)."""


@dataclass(frozen=True, slots=True)
class MarkConfig:
    """Mark-price parameters.

    Attributes:
        method: the rule.
        basis_samples_max: Binance moving-average length (30).
        basis_ema_alpha_ppm: Hyperliquid EMA of (mid - oracle) per sample (e.g. span 30 at 5 s ~ 150 s).
        fallback_ema_alpha_ppm: Hyperliquid EMA of median(bid, ask, last) per sample (span 6 ~ 30 s).
        index_band_ppm: clamp the mark to index +- band (0 = no clamp).
    """

    method: MarkMethod = MarkMethod.BINANCE
    basis_samples_max: int = 30
    basis_ema_alpha_ppm: int = 64_516  # alpha_ppm_from_span(30)
    fallback_ema_alpha_ppm: int = 285_714  # alpha_ppm_from_span(6)
    index_band_ppm: int = 0

    def __post_init__(self) -> None:
        assert 1 <= self.basis_samples_max <= BASIS_SAMPLES_MAX
        assert 0 < self.basis_ema_alpha_ppm <= PPM and 0 < self.fallback_ema_alpha_ppm <= PPM
        assert 0 <= self.index_band_ppm <= PPM


def median3(a: int, b: int, c: int) -> int:
    """The middle one of three integers."""
    return max(min(a, b), min(max(a, b), c))


def binance_price1_ticks(index_ticks: int, last_funding_rate_ppb: int, time_until_funding_ns: int,
                         funding_interval_ns: int) -> int:
    """``index * (1 + rate * time_until / interval)``, the adjustment truncated toward zero."""
    assert index_ticks > 0 and 0 <= time_until_funding_ns <= funding_interval_ns and funding_interval_ns > 0
    scaled = index_ticks * last_funding_rate_ppb * time_until_funding_ns
    denominator = PPB * funding_interval_ns
    adjustment = scaled // denominator if scaled >= 0 else -((-scaled) // denominator)
    return index_ticks + adjustment


def clamp_to_band(price_ticks: int, index_ticks: int, band_ppm: int) -> int:
    """Clamp ``price`` to ``[index * (1 - band), index * (1 + band)]`` (bounds rounded inward); 0 = off."""
    if band_ppm == 0:
        return price_ticks
    low = -((-index_ticks * (PPM - band_ppm)) // PPM)
    high = index_ticks * (PPM + band_ppm) // PPM
    return min(max(price_ticks, low), high)


class MarkPriceState:
    """Rolling inputs of one instrument's mark price (basis samples and EMAs), updated by the caller.

    Deterministic and bounded: the caller samples at its own cadence (e.g. every 5 s of engine time),
    the state keeps at most ``basis_samples_max`` basis samples and two EMAs.
    """

    __slots__ = ("config", "basis_half_ticks", "basis_sum", "ema_basis_half_ticks", "ema_fallback_half_ticks")

    def __init__(self, config: MarkConfig) -> None:
        self.config = config
        self.basis_half_ticks: deque[int] = deque()
        self.basis_sum = 0
        self.ema_basis_half_ticks: int | None = None
        self.ema_fallback_half_ticks: int | None = None

    def observe(self, index_ticks: int, best_bid_ticks: int | None, best_ask_ticks: int | None,
                last_ticks: int | None) -> None:
        """Take one sample of the book against the index (skipped on a one-sided book)."""
        assert index_ticks > 0
        if best_bid_ticks is None or best_ask_ticks is None:
            return
        basis = best_bid_ticks + best_ask_ticks - 2 * index_ticks
        self.basis_half_ticks.append(basis)
        self.basis_sum += basis
        if len(self.basis_half_ticks) > self.config.basis_samples_max:
            self.basis_sum -= self.basis_half_ticks.popleft()
        ema = self.ema_basis_half_ticks
        self.ema_basis_half_ticks = basis if ema is None else ema_next(ema, basis, self.config.basis_ema_alpha_ppm)
        if last_ticks is not None:
            local = 2 * median3(best_bid_ticks, best_ask_ticks, last_ticks)
            fb = self.ema_fallback_half_ticks
            alpha = self.config.fallback_ema_alpha_ppm
            self.ema_fallback_half_ticks = local if fb is None else ema_next(fb, local, alpha)
        assert len(self.basis_half_ticks) <= self.config.basis_samples_max

    def binance_mark_ticks(self, index_ticks: int, last_funding_rate_ppb: int, time_until_funding_ns: int,
                           funding_interval_ns: int, last_ticks: int | None) -> int:
        """Binance ``median(price1, price2, last)``; without samples price2 = index; without last, the
        median of the two others."""
        price1 = binance_price1_ticks(index_ticks, last_funding_rate_ppb, time_until_funding_ns, funding_interval_ns)
        n = len(self.basis_half_ticks)
        price2 = index_ticks + (self.basis_sum // (2 * n) if n else 0)
        values = [price1, price2] if last_ticks is None else [price1, price2, last_ticks]
        return clamp_to_band(median_floor(values), index_ticks, self.config.index_band_ppm)

    def hyperliquid_mark_ticks(self, oracle_ticks: int, best_bid_ticks: int | None, best_ask_ticks: int | None,
                               last_ticks: int | None, other_venue_mids_ticks: Sequence[int] = ()) -> int:
        """Hyperliquid median of up to three inputs (module docstring)."""
        inputs: list[int] = []
        if self.ema_basis_half_ticks is not None:
            inputs.append(oracle_ticks + self.ema_basis_half_ticks // 2)
        if best_bid_ticks is not None and best_ask_ticks is not None and last_ticks is not None:
            inputs.append(median3(best_bid_ticks, best_ask_ticks, last_ticks))
        if other_venue_mids_ticks:
            inputs.append(median_floor(list(other_venue_mids_ticks)))
        if len(inputs) == 2 and self.ema_fallback_half_ticks is not None:
            inputs.append(self.ema_fallback_half_ticks // 2)
        if not inputs:
            inputs.append(oracle_ticks)
        return clamp_to_band(median_floor(inputs), oracle_ticks, self.config.index_band_ppm)
