"""Mark price: a manipulation-resistant fair price from the index and the venue's own book.

Three configurable rules (reference/risk-engines.md §2.3, §2.5; docs/risk-integration.md
"Manipulation resistance"):

* **Binance** (USDⓈ-M FAQ "Mark Price"): ``mark = median(price1, price2, contract price)`` with
  ``price1 = index * (1 + last funding rate * time until funding / funding interval)`` and
  ``price2 = index + moving average of (mid - index)``, one sample a minute over 30 minutes
  (``basis_sample_interval_ns`` = 60 s, ``basis_samples_max`` = 30).
* **Hyperliquid** ("Robust price indices"): ``mark = median(oracle + EMA(mid - oracle),
  median(bid, ask, last), median of other venues' perp mids)``; with exactly two inputs a third
  is added: an EMA of ``median(bid, ask, last)`` (HL: 150 s and 30 s EMAs; here per-sample EMAs at the
  oracle cadence, ``alpha_ppm_from_span``).
* **Index** (dYdX v4): the oracle price itself; the book never enters margin.

What this module does differently from the venues' formulas, and why (each closes a path of the thin-
book attack in tests/risk/test_mango_manipulation.py):

1. **The book is read at impact depth, not at the top.** ``bid`` / ``ask`` passed to :meth:`observe`
   and to the mark functions are *impact* prices: the average fill price of ``impact_lots`` on that side
   (:func:`depth_price_ticks`), where ``impact_lots`` is the Binance impact margin notional (200 USDT /
   IMR at max leverage) valued at the *index* (:func:`impact_lots`), so a quote far from the index needs
   the same base quantity as one at the index. A one-lot quote cannot move a sample; a side without
   that depth gives no book price (``None``).
2. **One sample never carries the whole average.** Binance's ``price2`` divides the sum of the kept
   samples by the configured window (``basis_samples_max``), not by the number of samples taken:
   missing samples count as zero basis, which is the COIN-M FAQ's own formula
   (``sum of [(Bid1_i + Ask1_i)/2 - PI_i] / 30``) and dYdX's padding of funding samples with zeros.
   We chose dividing by the window over "require a minimum number of samples first" because it has no
   threshold to game and no jump when the threshold is reached: each sample moves ``price2`` by at most
   ``1/window`` of its basis. A sample with no book price (too little depth) is a zero-basis sample,
   so a book that empties decays the basis towards the index instead of freezing a stale one.
   The Hyperliquid EMAs start from zero basis (the oracle), not from their first sample.
3. **Samples are clamped to the band.** With ``index_band_ppm`` > 0 each basis sample (and each
   fallback-EMA sample) is clamped to ``index * (1 +- band)`` before it enters the average, so holding a
   fake book for one minute moves ``price2`` from an honest window by at most ``band / 30`` (any one
   sample by at most ``2 * band / 30``, as it may replace one at the other edge); pushing it to the band
   edge takes the full 30 minutes, with the fake book exposed to every arbitrageur all that time.
4. **The last trade counts only inside the impact prices.** The Binance "contract price" is
   ``median(impact bid, impact ask, last)`` — a last trade outside the impact spread (a tiny print
   nobody could repeat at size) is pulled to the nearer impact price, as Deribit pulls a last outside
   the best bid/ask to it — and it is left out when either impact price is missing.
5. **Band.** The mark is clamped to ``index * (1 +- index_band_ppm)`` (default 3 %: Deribit's futures
   mark "can never differ more than 3 % from the index"), bounds rounded inward.

Integers only. Mids and bases are kept in **half ticks** (``bid + ask`` and ``bid + ask - 2*index``) so
no half tick is lost before averaging; averages floor (``//``); the median of an even count is the floor
of the mean of the two middle values (oracle ``median_floor``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from bastion.core.oracle.median import median_floor
from bastion.core.oracle.twap import ema_next
from bastion.core.risk._types import PPB, PPM

__all__ = [
    "BASIS_SAMPLES_MAX",
    "DEPTH_LEVELS_MAX",
    "MarkConfig",
    "MarkMethod",
    "MarkPriceState",
    "band_bounds_ticks",
    "binance_price1_ticks",
    "clamp_to_band",
    "depth_price_ticks",
    "impact_lots",
    "median3",
]

BASIS_SAMPLES_MAX = 4_096
"""Most basis samples the moving average may span."""

DEPTH_LEVELS_MAX = 1_000
"""Most book levels one impact-depth walk reads."""


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
        basis_samples_max: Binance moving-average window (30 samples); ``price2`` divides by it.
        basis_sample_interval_ns: Binance basis sampling period in engine time (60 s: USDⓈ-M samples
            once a minute over 30 minutes); 0 = one sample per oracle update.
        basis_ema_alpha_ppm: Hyperliquid EMA of (mid - oracle) per oracle update (span 30 at 5 s ~ 150 s).
        fallback_ema_alpha_ppm: Hyperliquid EMA of median(bid, ask, last) per oracle update (span 6 ~ 30 s).
        index_band_ppm: clamp the mark, and every basis sample, to index +- band (0 = no clamp;
            default 3 %, Deribit's futures mark band).
    """

    method: MarkMethod = MarkMethod.BINANCE
    basis_samples_max: int = 30
    basis_sample_interval_ns: int = 60 * 10**9
    basis_ema_alpha_ppm: int = 64_516  # alpha_ppm_from_span(30)
    fallback_ema_alpha_ppm: int = 285_714  # alpha_ppm_from_span(6)
    index_band_ppm: int = 30_000

    def __post_init__(self) -> None:
        assert 1 <= self.basis_samples_max <= BASIS_SAMPLES_MAX
        assert 0 <= self.basis_sample_interval_ns <= 24 * 3600 * 10**9
        assert 0 < self.basis_ema_alpha_ppm <= PPM and 0 < self.fallback_ema_alpha_ppm <= PPM
        assert 0 <= self.index_band_ppm < PPM


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


def band_bounds_ticks(index_ticks: int, band_ppm: int) -> tuple[int, int]:
    """``(ceil(index * (1 - band)), floor(index * (1 + band)))``: the band rounded inward (band > 0)."""
    assert index_ticks > 0 and 0 < band_ppm < PPM
    return -((-index_ticks * (PPM - band_ppm)) // PPM), index_ticks * (PPM + band_ppm) // PPM


def clamp_to_band(price_ticks: int, index_ticks: int, band_ppm: int) -> int:
    """Clamp ``price`` to ``[index * (1 - band), index * (1 + band)]`` (bounds rounded inward); 0 = off."""
    if band_ppm == 0:
        return price_ticks
    low, high = band_bounds_ticks(index_ticks, band_ppm)
    return min(max(price_ticks, low), high)


def impact_lots(impact_notional_atoms: int, index_ticks: int, atoms_per_tick_lot: int) -> int:
    """Lots worth ``impact_notional_atoms`` at the index, rounded up (at least one lot).

    Valuing the impact notional at the index, not at each level's price, keeps a fake quote far from the
    index from being "deep" with a handful of lots (at 10x the index, 25,000 USDC is 5 lots of 0.001 BTC;
    at the index it is 417).
    """
    assert impact_notional_atoms > 0 and index_ticks > 0 and atoms_per_tick_lot > 0
    per_lot = index_ticks * atoms_per_tick_lot
    return max(1, -((-impact_notional_atoms) // per_lot))


def depth_price_ticks(levels: Iterable[tuple[int, int]], qty_lots: int, side: int) -> int | None:
    """Average fill price of ``qty_lots`` against ``levels`` (best first), or None if they are short.

    Args:
        levels: ``(price_ticks, qty_lots)`` from the best price outward: bids for ``side = -1`` (impact
            bid, a sell), asks for ``side = +1`` (impact ask, a buy); at most DEPTH_LEVELS_MAX read.
        qty_lots: quantity to fill, > 0.
        side: +1 or -1.

    Returns:
        ``sum(p*q) / qty`` rounded away from the mid (bid down, ask up), or None.
    """
    assert qty_lots > 0 and side in (1, -1)
    left = qty_lots
    value = 0
    for index, (price, qty) in enumerate(levels):
        if index >= DEPTH_LEVELS_MAX:
            return None
        assert price > 0 and qty > 0
        take = qty if qty < left else left
        value += price * take
        left -= take
        if left == 0:
            return value // qty_lots if side < 0 else -((-value) // qty_lots)
    return None


class MarkPriceState:
    """Rolling inputs of one instrument's mark price (basis samples and EMAs), updated by the caller.

    Deterministic and bounded: the Binance basis is sampled at most once per
    ``basis_sample_interval_ns`` of engine time and at most ``basis_samples_max`` samples are kept; the
    two Hyperliquid EMAs move on every :meth:`observe`.
    """

    __slots__ = ("config", "basis_half_ticks", "basis_sum", "next_basis_sample_ns", "ema_basis_half_ticks",
                 "ema_fallback_half_ticks")

    def __init__(self, config: MarkConfig) -> None:
        self.config = config
        self.basis_half_ticks: deque[int] = deque()
        self.basis_sum = 0
        self.next_basis_sample_ns = 0
        self.ema_basis_half_ticks: int | None = None
        self.ema_fallback_half_ticks: int | None = None

    def _clamp_half_ticks(self, twice_price: int, index_ticks: int) -> int:
        band = self.config.index_band_ppm
        if band == 0:
            return twice_price
        low, high = band_bounds_ticks(index_ticks, band)
        return min(max(twice_price, 2 * low), 2 * high)

    def observe(self, index_ticks: int, bid_ticks: int | None, ask_ticks: int | None, last_ticks: int | None,
                now_ns: int = 0) -> None:
        """Take one look at the book against the index (module docstring, points 1-3).

        Args:
            index_ticks: the oracle index, > 0.
            bid_ticks / ask_ticks: the impact bid / ask (None: too little depth on that side).
            last_ticks: the last trade price, or None.
            now_ns: engine time (the Binance sample is taken when it reaches ``next_basis_sample_ns``).
        """
        assert index_ticks > 0
        cfg = self.config
        twice_index = 2 * index_ticks
        basis = 0
        local: int | None = None
        if bid_ticks is not None and ask_ticks is not None:
            basis = self._clamp_half_ticks(bid_ticks + ask_ticks, index_ticks) - twice_index
            if last_ticks is not None:
                local = self._clamp_half_ticks(2 * median3(bid_ticks, ask_ticks, last_ticks), index_ticks)
        interval = cfg.basis_sample_interval_ns
        if interval == 0 or now_ns >= self.next_basis_sample_ns:
            self.basis_half_ticks.append(basis)
            self.basis_sum += basis
            if len(self.basis_half_ticks) > cfg.basis_samples_max:
                self.basis_sum -= self.basis_half_ticks.popleft()
            if interval:
                self.next_basis_sample_ns = now_ns - now_ns % interval + interval
        ema = self.ema_basis_half_ticks
        self.ema_basis_half_ticks = ema_next(0 if ema is None else ema, basis, cfg.basis_ema_alpha_ppm)
        fb = self.ema_fallback_half_ticks
        sample = twice_index if local is None else local
        self.ema_fallback_half_ticks = ema_next(twice_index if fb is None else fb, sample, cfg.fallback_ema_alpha_ppm)
        assert len(self.basis_half_ticks) <= cfg.basis_samples_max

    def binance_mark_ticks(self, index_ticks: int, last_funding_rate_ppb: int, time_until_funding_ns: int,
                           funding_interval_ns: int, last_ticks: int | None, bid_ticks: int | None,
                           ask_ticks: int | None) -> int:
        """Binance ``median(price1, price2, contract price)``, clamped to the band.

        ``price2 = index + sum(kept samples) / (2 * basis_samples_max)`` (floor); the contract price is
        ``median(impact bid, impact ask, last)`` and is left out (median of the two others) when the last
        trade or either impact price is missing.
        """
        price1 = binance_price1_ticks(index_ticks, last_funding_rate_ppb, time_until_funding_ns, funding_interval_ns)
        price2 = index_ticks + self.basis_sum // (2 * self.config.basis_samples_max)
        values = [price1, price2]
        if last_ticks is not None and bid_ticks is not None and ask_ticks is not None:
            values.append(median3(bid_ticks, ask_ticks, last_ticks))
        return clamp_to_band(median_floor(values), index_ticks, self.config.index_band_ppm)

    def hyperliquid_mark_ticks(self, oracle_ticks: int, bid_ticks: int | None, ask_ticks: int | None,
                               last_ticks: int | None, other_venue_mids_ticks: Sequence[int] = ()) -> int:
        """Hyperliquid median of up to three inputs (module docstring), ``bid`` / ``ask`` at impact depth."""
        inputs: list[int] = []
        if self.ema_basis_half_ticks is not None:
            inputs.append(oracle_ticks + self.ema_basis_half_ticks // 2)
        if bid_ticks is not None and ask_ticks is not None and last_ticks is not None:
            inputs.append(median3(bid_ticks, ask_ticks, last_ticks))
        if other_venue_mids_ticks:
            inputs.append(median_floor(list(other_venue_mids_ticks)))
        if len(inputs) == 2 and self.ema_fallback_half_ticks is not None:
            inputs.append(self.ema_fallback_half_ticks // 2)
        if not inputs:
            inputs.append(oracle_ticks)
        return clamp_to_band(median_floor(inputs), oracle_ticks, self.config.index_band_ppm)
