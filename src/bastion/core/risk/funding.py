"""Funding: impact prices, premium index, funding rate with the interest clamp, zero-sum payments.

Formulas (Binance USDⓈ-M "Introduction to Binance Futures Funding Rates"; identical on BitMEX and
Hyperliquid; reference/risk-engines.md §2.3-2.5):

* impact notional      ``IMN = 200 USDT / IMR at the maximum leverage`` (Binance: BNBUSDT at 20x,
                       IMR 5 % -> 4,000 USDT); impact bid/ask = average fill price of a market sell/buy of
                       IMN against the book (walked level by level, :func:`impact_price_ticks`).
* premium index        ``P = (max(0, impact_bid - index) - max(0, index - impact_ask)) / index``, one
                       sample per ``sample_interval_ns`` (a minute here, like dYdX; Binance samples every
                       5 s); a side with too little depth contributes 0 (dYdX: premium 0 on an empty side).
* average premium      arithmetic mean (BitMEX: mean of the minutely premium index over the interval;
                       dYdX) or Binance's time weighting ``sum(i * P_i) / sum(i)`` (weights 1..n, from
                       copies of the Binance FAQ — flagged in the reference as not re-verified).
* funding rate         ``F = P + clamp(I - P, -0.05 %, +0.05 %)``; ``I = 0.01 %`` per 8 h (Binance:
                       "interest rate fixed at 0.03 % daily, 0.01 % per funding interval"); then the
                       cap ``clamp(F, -cap, +cap)`` (Binance ``+-0.75 * MMR``; Hyperliquid 4 %/h).
* per settlement       ``F * settlement_interval / 8 h`` (Hyperliquid pays hourly at ``F/8``; Binance
                       and BitMEX pay the 8-h rate every 8 h).
* payment              ``position notional at the mark * rate`` (Binance "Funding Amount = Nominal
                       Value of Positions * Funding Rate", nominal value = mark price * size); longs pay
                       when the rate is positive.

Units: rates and premiums are in **ppb** (parts per billion, 1e-9). ppm is too coarse here: Binance
publishes funding rates to 1e-8 (``fundingRate "0.00010000"``) and real BTCUSDT rates such as
0.00044 % (= 4,400 ppb) are not whole ppm. Every division truncates toward zero (dYdX ``AvgInt32``), so
rounding never favours one side's sign. Payments round in the venue's favour — payers pay the ceiling,
receivers get the floor — and the (non-negative) difference goes to a named account, so the payments
plus the remainder sum to exactly zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from bastion.core.risk._types import PPB, PPM

__all__ = [
    "FUNDING_PERIOD_NS",
    "LEVELS_WALKED_MAX",
    "PREMIUM_SAMPLES_MAX",
    "FundingConfig",
    "FundingPayment",
    "FundingSettlement",
    "PremiumAccumulator",
    "PremiumWeighting",
    "average_premium_ppb",
    "funding_cap_ppb",
    "funding_index_delta",
    "funding_payments",
    "funding_rate_ppb",
    "impact_notional_atoms",
    "impact_price_ticks",
    "premium_index_ppb",
    "realize_funding_atoms",
    "settlement_rate_ppb",
]

FUNDING_PERIOD_NS = 8 * 3600 * 10**9
"""The period a funding rate is quoted for: 8 hours (Binance, BitMEX, Hyperliquid, dYdX)."""

PREMIUM_SAMPLES_MAX = 5_760
"""Most premium samples per interval (Binance: one per 5 s over 8 h)."""

LEVELS_WALKED_MAX = 1_000
"""Most book levels one impact-price walk reads."""

POSITIONS_PER_SETTLEMENT_MAX = 10_000_000
"""Most positions one funding settlement pays (the venue's accounts_max)."""


class PremiumWeighting(IntEnum):
    """How premium samples are averaged over a funding interval."""

    ARITHMETIC = 0
    """Plain mean (BitMEX, dYdX, Hyperliquid)."""
    LINEAR = 1
    """Weights 1..n, later samples count more (Binance, per copies of its FAQ)."""


@dataclass(frozen=True, slots=True)
class FundingConfig:
    """Funding parameters of one instrument.

    Attributes:
        interest_rate_ppb: I per 8 h (Binance 0.01 % = 100,000 ppb; 0 for some contracts).
        clamp_ppb: the dampener around I (0.05 % = 500,000 ppb).
        cap_ppb: |F| cap per 8 h (Binance 0.75 * MMR; e.g. 0.75 * 0.4 % = 3,000,000 ppb).
        settlement_interval_ns: how often payments are made (8 h Binance; 1 h Hyperliquid).
        sample_interval_ns: premium sampling period (60 s).
        weighting: premium averaging.
    """

    interest_rate_ppb: int = 100_000
    clamp_ppb: int = 500_000
    cap_ppb: int = 3_000_000
    settlement_interval_ns: int = 3600 * 10**9
    sample_interval_ns: int = 60 * 10**9
    weighting: PremiumWeighting = PremiumWeighting.ARITHMETIC

    def __post_init__(self) -> None:
        assert abs(self.interest_rate_ppb) <= PPB // 10 and 0 <= self.clamp_ppb <= PPB // 10
        assert 0 < self.cap_ppb <= PPB
        assert 0 < self.settlement_interval_ns <= FUNDING_PERIOD_NS
        assert FUNDING_PERIOD_NS % self.settlement_interval_ns == 0
        assert 0 < self.sample_interval_ns <= self.settlement_interval_ns
        assert self.settlement_interval_ns // self.sample_interval_ns <= PREMIUM_SAMPLES_MAX


def _trunc_div(numerator: int, denominator: int) -> int:
    """Integer division truncated toward zero (``denominator`` > 0)."""
    assert denominator > 0
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient


def impact_notional_atoms(margin_atoms: int, imf_ppm: int) -> int:
    """Impact margin notional: ``margin / IMR at max leverage`` (Binance; 200 USDT / 5 % = 4,000 USDT).

    Args:
        margin_atoms: the impact margin (Binance 200 USDT = 200 * 10**6 atoms at 6 decimals).
        imf_ppm: initial-margin fraction of the lowest bracket (1 / max leverage), > 0.

    Returns:
        The notional in atoms, rounded down.
    """
    assert margin_atoms > 0 and 0 < imf_ppm <= PPM
    return margin_atoms * PPM // imf_ppm


def impact_price_ticks(levels: Iterable[tuple[int, int]], impact_notional: int, k: int, side: int) -> int | None:
    """Average fill price of a market order for ``impact_notional`` atoms against ``levels``.

    Args:
        levels: book levels ``(price_ticks, qty_lots)`` from the best price outward (bids for
            ``side = -1``, the impact bid; asks for ``side = +1``, the impact ask); at most
            LEVELS_WALKED_MAX are read.
        impact_notional: atoms to fill (> 0); the last level is taken in whole lots, rounded up.
        k: atoms per tick-lot.
        side: +1 impact ask (buying), -1 impact bid (selling).

    Returns:
        ``sum(p*q) / sum(q)`` rounded away from the mid (bid down, ask up: the premium is never
        overstated), or None if the depth read does not cover the notional.
    """
    assert impact_notional > 0 and k > 0 and side in (1, -1)
    left = impact_notional
    value_ticks_lots = 0
    lots = 0
    for index, (price, qty) in enumerate(levels):
        if index >= LEVELS_WALKED_MAX:
            return None
        assert price > 0 and qty > 0
        level_notional = price * qty * k
        take = qty if level_notional <= left else -((-left) // (price * k))
        value_ticks_lots += price * take
        lots += take
        left -= price * take * k
        if left <= 0:
            return value_ticks_lots // lots if side < 0 else -((-value_ticks_lots) // lots)
    return None


def premium_index_ppb(impact_bid_ticks: int | None, impact_ask_ticks: int | None, index_ticks: int) -> int:
    """``(max(0, impact_bid - index) - max(0, index - impact_ask)) / index`` in ppb, truncated toward 0.

    A missing impact price (too little depth) contributes 0 for its side.
    """
    assert index_ticks > 0
    up = max(0, impact_bid_ticks - index_ticks) if impact_bid_ticks is not None else 0
    down = max(0, index_ticks - impact_ask_ticks) if impact_ask_ticks is not None else 0
    return _trunc_div((up - down) * PPB, index_ticks)


def average_premium_ppb(samples: Sequence[int], weighting: PremiumWeighting) -> int:
    """Average of premium samples (ppb), truncated toward zero; 0 for no samples."""
    assert len(samples) <= PREMIUM_SAMPLES_MAX
    if not samples:
        return 0
    if weighting == PremiumWeighting.ARITHMETIC:
        return _trunc_div(sum(samples), len(samples))
    n = len(samples)
    return _trunc_div(sum((i + 1) * p for i, p in enumerate(samples)), n * (n + 1) // 2)


def funding_rate_ppb(average_premium: int, config: FundingConfig) -> int:
    """8-hour funding rate ``clamp(P + clamp(I - P, -c, +c), -cap, +cap)`` in ppb (exact)."""
    interest = config.interest_rate_ppb
    damp = min(max(interest - average_premium, -config.clamp_ppb), config.clamp_ppb)
    rate = average_premium + damp
    return min(max(rate, -config.cap_ppb), config.cap_ppb)


def funding_cap_ppb(mmf_ppm: int, multiplier_ppm: int = 750_000) -> int:
    """Binance cap ``multiplier * MMR`` in ppb (multiplier 0.75, some contracts 1.0)."""
    assert 0 < mmf_ppm <= PPM and 0 < multiplier_ppm <= 10 * PPM
    return mmf_ppm * multiplier_ppm // 1_000


def settlement_rate_ppb(rate_8h_ppb: int, settlement_interval_ns: int) -> int:
    """Rate paid per settlement: ``F * interval / 8 h``, truncated toward zero (hourly: ``F / 8``)."""
    assert 0 < settlement_interval_ns <= FUNDING_PERIOD_NS
    return _trunc_div(rate_8h_ppb * settlement_interval_ns, FUNDING_PERIOD_NS)


class PremiumAccumulator:
    """Collects one premium sample per ``sample_interval_ns`` over a settlement interval.

    Time is an input: ``observe(now_ns, ...)`` stores a sample when ``now_ns`` reaches the next sample
    time (a late call stores one sample, not a catch-up burst); ``close()`` returns the average and
    starts a new interval. Bounded by PREMIUM_SAMPLES_MAX.
    """

    __slots__ = ("config", "next_sample_ns", "samples")

    def __init__(self, config: FundingConfig, start_ns: int) -> None:
        self.config = config
        self.next_sample_ns = start_ns
        self.samples: list[int] = []

    def observe(self, now_ns: int, impact_bid_ticks: int | None, impact_ask_ticks: int | None,
                index_ticks: int) -> bool:
        """Take a sample if one is due; returns whether one was taken."""
        if now_ns < self.next_sample_ns or len(self.samples) >= PREMIUM_SAMPLES_MAX:
            return False
        self.samples.append(premium_index_ppb(impact_bid_ticks, impact_ask_ticks, index_ticks))
        step = self.config.sample_interval_ns
        self.next_sample_ns = now_ns - (now_ns - self.next_sample_ns) % step + step
        return True

    def close(self) -> int:
        """The interval's average premium (ppb); clears the samples."""
        average = average_premium_ppb(self.samples, self.config.weighting)
        self.samples = []
        return average


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """Cash to ``account_id``: > 0 received, < 0 paid (atoms)."""

    account_id: int
    amount_atoms: int


@dataclass(frozen=True, slots=True)
class FundingSettlement:
    """One settlement on one instrument: payments plus the remainder to ``remainder_account_id``.

    ``sum(p.amount_atoms for p in payments) + remainder_atoms == 0`` exactly, ``remainder_atoms >= 0``.
    """

    instrument_id: int
    rate_ppb: int
    mark_ticks: int
    payments: tuple[FundingPayment, ...]
    remainder_account_id: int
    remainder_atoms: int


def funding_payments(instrument_id: int, positions: Iterable[tuple[int, int]], mark_ticks: int, k: int,
                     rate_ppb: int, remainder_account_id: int) -> FundingSettlement:
    """Payments of one settlement: ``size * mark * k * rate`` per position, zero-sum with the remainder.

    Args:
        instrument_id: the market.
        positions: ``(account_id, size_lots)``; sizes must sum to zero (long OI = short OI).
        mark_ticks: mark price (> 0).
        k: atoms per tick-lot.
        rate_ppb: the settlement's rate (settlement_rate_ppb); > 0 longs pay.
        remainder_account_id: receives the rounding remainder (e.g. the insurance fund's id).

    Returns:
        :class:`FundingSettlement`; payers pay ``ceil``, receivers get ``floor`` of the exact amount, so
        the remainder is >= 0 and below the number of positions.
    """
    assert mark_ticks > 0 and k > 0
    payments: list[FundingPayment] = []
    net_size = 0
    for count, (account_id, size) in enumerate(positions):
        assert count < POSITIONS_PER_SETTLEMENT_MAX
        net_size += size
        owed_scaled = -size * mark_ticks * k * rate_ppb  # what the account receives, times PPB
        if owed_scaled == 0:
            continue
        # floor: a receiver gets floor(x); a payer pays ceil(x), and -ceil(x) == floor(-x).
        payments.append(FundingPayment(account_id, owed_scaled // PPB))
    assert net_size == 0, "funding needs balanced open interest"
    remainder = -sum(p.amount_atoms for p in payments)
    assert 0 <= remainder <= len(payments)
    return FundingSettlement(instrument_id, rate_ppb, mark_ticks, tuple(payments), remainder_account_id, remainder)


def funding_index_delta(mark_ticks: int, k: int, rate_ppb: int) -> int:
    """Change of a cumulative funding index for one settlement, in atoms*ppb per lot (exact).

    The scalable alternative to paying every holder at once (dYdX v4 / Drift keep a per-market index
    and settle each position lazily): the index grows by ``mark * k * rate`` per settlement; a
    position of ``size`` owes ``size * (index_now - index_at_last_settle) / PPB`` atoms
    (:func:`realize_funding_atoms`). Longs owe when the rate is positive.
    """
    assert mark_ticks > 0 and k > 0
    return mark_ticks * k * rate_ppb


def realize_funding_atoms(size_lots: int, index_now: int, index_at_last_settle: int) -> int:
    """Cash to the account (> 0 received, < 0 paid) for funding accrued since its last settlement.

    Rounded in the venue's favour like :func:`funding_payments`: ``floor(-size * delta / PPB)`` (a payer
    pays the ceiling, a receiver gets the floor). The engine credits the rounding difference, which is
    >= 0 summed over both sides of the market, to the remainder account when it realizes.
    """
    return (-size_lots * (index_now - index_at_last_settle)) // PPB
