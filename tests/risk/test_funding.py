"""Funding: Binance/BitMEX worked examples, zero-sum payments, and 3 years of real Binance BTCUSDT rates."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.core.risk import (
    PPB,
    FundingConfig,
    PremiumAccumulator,
    PremiumWeighting,
    average_premium_ppb,
    funding_cap_ppb,
    funding_index_delta,
    funding_payments,
    funding_rate_ppb,
    impact_notional_atoms,
    impact_price_ticks,
    premium_index_ppb,
    realize_funding_atoms,
    settlement_rate_ppb,
)
from tests.conftest import SHARED_DATA

USDT = 10**6
PCT = PPB // 100  # 1 % in ppb
BINANCE = FundingConfig(cap_ppb=funding_cap_ppb(4_000))  # BTCUSDT level 1: MMR 0.4 % -> cap 0.3 %


def test_binance_interest_rate_and_dead_band() -> None:
    """Binance "Introduction to Binance Futures Funding Rates": the interest rate is "0.03% daily (0.01%
    per funding interval)"; "if (I - P) is within +/-0.05% then F = P + (I - P) = I"."""
    interest = 3 * PCT // 100 // 3  # 0.03 % a day over three 8-hour intervals
    assert interest == BINANCE.interest_rate_ppb == 100_000
    for premium in (300_000, -400_000, 0, 600_000):  # 0.03 %, -0.04 %, 0, 0.06 %
        assert abs(interest - premium) <= BINANCE.clamp_ppb
        assert funding_rate_ppb(premium, BINANCE) == interest


def test_bitmex_ondousdt_clamped_funding_example() -> None:
    """BitMEX support "Why is the Funding Rate for a contract higher or lower than I expect" (ONDOUSDT,
    payment 2025-01-14 04:00): P = -0.00184 (the .ONDOUSDTPI8H index), I = 0.01 %:
    F = -0.00184 + clamp(0.00185, -0.0005, 0.0005) = -0.00184 + 0.0005 = -0.00134. Same formula as
    Binance (F = P + clamp(I - P, -0.05 %, 0.05 %))."""
    config = FundingConfig(cap_ppb=PPB // 10)
    assert funding_rate_ppb(-1_840_000, config) == -1_340_000
    # And the mirror: a premium far above I is lowered by exactly the clamp.
    assert funding_rate_ppb(1_840_000, config) == 1_840_000 - 500_000


def test_binance_cap_is_three_quarters_of_maintenance_rate() -> None:
    """Binance: CappedF = clamp(F, -0.75 * MMR, 0.75 * MMR); BTCUSDT level 1 MMR 0.4 % -> +-0.3 %."""
    assert BINANCE.cap_ppb == 3_000_000
    assert funding_rate_ppb(50_000_000, BINANCE) == 3_000_000
    assert funding_rate_ppb(-50_000_000, BINANCE) == -3_000_000


def test_binance_impact_margin_notional_example() -> None:
    """Binance: "if the maximum leverage of BNBUSDT perpetual contract is 20x, and its corresponding
    Initial Margin Rate is 5%, then the Impact Margin Notional (IMN) is 4,000 USDT (200 USDT / 5%)"."""
    assert impact_notional_atoms(200 * USDT, 50_000) == 4_000 * USDT


def test_impact_prices_and_premium_index() -> None:
    """Impact bid/ask = average fill price of IMN (4,000 USDT) against the book (k = 100 atoms, BTC 0.001
    lots, tick 0.1). Bids 60,030.0 x 0.05 BTC (3,001.5 USDT) then 60,020.0: the rest 998.5 USDT takes
    ceil(998.5 / 60.02) = 17 lots; average (600300*50 + 600200*17) / 67 = 600,274.6 -> 600,274 (down).
    Asks 60,040.0 deep: 600,400. Index 60,000.0: P = (max(0, 60,027.4 - 60,000) - 0) / 60,000
    = 0.0457 % -> 456,666 ppb (truncated)."""
    bids = [(600_300, 50), (600_200, 1_000)]
    asks = [(600_400, 1_000)]
    imn = 4_000 * USDT
    bid = impact_price_ticks(bids, imn, 100, -1)
    ask = impact_price_ticks(asks, imn, 100, 1)
    assert (bid, ask) == (600_274, 600_400)
    assert premium_index_ppb(bid, ask, 600_000) == 456_666
    assert premium_index_ppb(599_000, 599_900, 600_000) == -166_666  # discount: index above impact ask
    assert premium_index_ppb(None, 599_900, 600_000) == -166_666  # no bid depth: that side counts 0
    assert impact_price_ticks([(600_300, 5)], imn, 100, -1) is None  # too little depth


def test_premium_averaging_and_hourly_settlement() -> None:
    """Arithmetic (BitMEX/dYdX) vs Binance 1..n weights; Hyperliquid pays hourly at F / 8."""
    assert average_premium_ppb([100, 200, 600], PremiumWeighting.ARITHMETIC) == 300
    assert average_premium_ppb([100, 200, 600], PremiumWeighting.LINEAR) == (100 + 400 + 1_800) // 6
    assert average_premium_ppb([-100, -200, -601], PremiumWeighting.ARITHMETIC) == -300  # toward zero
    assert settlement_rate_ppb(100_000, 3600 * 10**9) == 12_500
    assert settlement_rate_ppb(-100_001, 3600 * 10**9) == -12_500


def test_accumulator_samples_once_per_minute() -> None:
    acc = PremiumAccumulator(FundingConfig(), start_ns=0)
    minute = 60 * 10**9
    taken = [acc.observe(t, 600_300, 600_400, 600_000) for t in (0, 1, minute - 1, minute, minute + 5, 3 * minute + 7)]
    assert taken == [True, False, False, True, False, True]
    assert acc.close() == 500_000 and acc.samples == []


def test_binance_funding_payment_example() -> None:
    """Binance: "Funding Amount = Nominal Value of Positions x Funding Rate", nominal value = mark price x
    size. Long 2 BTC at mark 40,000 with F = 0.01 %: 80,000 x 0.0001 = 8 USDT paid to the short."""
    settlement = funding_payments(1, [(1, 2_000), (2, -2_000)], 400_000, 100, 100_000, 0)
    assert [(p.account_id, p.amount_atoms) for p in settlement.payments] == [(1, -8 * USDT), (2, 8 * USDT)]
    assert settlement.remainder_atoms == 0


@settings(max_examples=400, deadline=None)
@given(sizes=st.lists(st.integers(min_value=-10**7, max_value=10**7), min_size=1, max_size=40),
       mark=st.integers(min_value=1, max_value=10**9), k=st.integers(min_value=1, max_value=1_000),
       rate=st.integers(min_value=-PPB // 10, max_value=PPB // 10))
def test_funding_payments_sum_to_zero_with_the_remainder(sizes: list[int], mark: int, k: int, rate: int) -> None:
    positions = [(i + 1, s) for i, s in enumerate(sizes)]
    positions.append((len(sizes) + 1, -sum(sizes)))  # balanced open interest
    settlement = funding_payments(1, positions, mark, k, rate, remainder_account_id=0)
    assert sum(p.amount_atoms for p in settlement.payments) + settlement.remainder_atoms == 0
    assert 0 <= settlement.remainder_atoms < max(1, len(settlement.payments))
    for (account_id, size), payment in zip([p for p in positions if p[1] * rate], settlement.payments):
        exact = -size * mark * k * rate  # received, times PPB
        assert payment.account_id == account_id
        assert payment.amount_atoms * PPB <= exact < (payment.amount_atoms + 1) * PPB  # venue's favour


@settings(max_examples=300, deadline=None)
@given(premium=st.integers(min_value=-PPB // 20, max_value=PPB // 20))
def test_rate_is_within_clamp_of_premium_and_cap(premium: int) -> None:
    rate = funding_rate_ppb(premium, BINANCE)
    assert abs(rate) <= BINANCE.cap_ppb
    if abs(premium) < BINANCE.cap_ppb - BINANCE.clamp_ppb - abs(BINANCE.interest_rate_ppb):
        assert abs(rate - premium) <= BINANCE.clamp_ppb


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(min_value=-10**6, max_value=10**6), min_size=1, max_size=20),
       rates=st.lists(st.integers(min_value=-PPB // 100, max_value=PPB // 100), min_size=1, max_size=10),
       mark=st.integers(min_value=1, max_value=10**8))
def test_lazy_funding_index_matches_eager_settlement(sizes: list[int], rates: list[int], mark: int) -> None:
    """Realizing the cumulative index once equals the exact sum of the eager payments within rounding,
    and never pays out more than the market owes (sum <= 0, the rest goes to the remainder account)."""
    sizes = sizes + [-sum(sizes)]
    index = 0
    for rate in rates:
        index += funding_index_delta(mark, 100, rate)
    realized = [realize_funding_atoms(s, index, 0) for s in sizes]
    assert sum(realized) <= 0
    assert -sum(realized) < max(1, len(sizes))
    for size, cash in zip(sizes, realized):
        assert cash * PPB <= -size * index < (cash + 1) * PPB


FUNDING_FILE = SHARED_DATA / "binance-btcusdt-funding-2022-2025" / "funding_rate_btc.json"


def _real_rates_ppb(path: Path) -> list[int]:
    """Binance fundingRate values (file: percent, float text) on Binance's 1e-8 grid, as ppb."""
    rows = json.loads(path.read_text(), parse_float=Decimal)
    return [int((value * 10**6).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)) * 10 for _, value in rows]


@pytest.mark.shared_data
def test_real_binance_btcusdt_rates_follow_the_formula() -> None:
    """3,316 real 8-hour BTCUSDT rates (2022-11 .. 2025-11, Binance fapi/v1/fundingRate; see the data
    README): every rate is within the +-0.3 % cap; about a third sit exactly on I = 0.01 % (the clamp's
    dead band — a continuous premium would almost never land there); and every rate is reproduced
    exactly by our formula from the premium it implies (P = F - 0.05 % above I, F + 0.05 % below),
    exercising both clamp branches at real magnitudes."""
    if not FUNDING_FILE.exists():
        pytest.skip(f"{FUNDING_FILE} absent")
    rates = _real_rates_ppb(FUNDING_FILE)
    assert len(rates) == 3_316
    interest, clamp = BINANCE.interest_rate_ppb, BINANCE.clamp_ppb
    assert all(abs(r) <= BINANCE.cap_ppb for r in rates)
    at_interest = sum(r == interest for r in rates)
    assert 0.25 < at_interest / len(rates) < 0.5
    above = below = 0
    for rate in rates:
        if rate == interest:
            implied = interest
        elif rate > interest:
            implied, above = rate + clamp, above + 1
        else:
            implied, below = rate - clamp, below + 1
        assert funding_rate_ppb(implied, BINANCE) == rate
    assert above > 100 and below > 100
    assert min(rates) == -1_191_720 and max(rates) == 881_480  # FTX week: -0.119172 %


@pytest.mark.shared_data
def test_real_rates_settled_hourly_conserve_to_the_atom() -> None:
    """Pay every real rate hourly (F / 8, Hyperliquid-style) on a fixed balanced book at a real-ish mark:
    payments plus remainder are exactly zero every hour; the remainder never exceeds one atom per payer."""
    if not FUNDING_FILE.exists():
        pytest.skip(f"{FUNDING_FILE} absent")
    positions = [(1, 1_234), (2, -5_000), (3, 3_000), (4, 17), (5, 749)]
    remainder_total = 0
    for rate in _real_rates_ppb(FUNDING_FILE)[:600]:
        hourly = settlement_rate_ppb(rate, 3600 * 10**9)
        for hour in range(8):
            settlement = funding_payments(1, positions, 600_000 + 10 * hour, 100, hourly, 0)
            assert sum(p.amount_atoms for p in settlement.payments) + settlement.remainder_atoms == 0
            remainder_total += settlement.remainder_atoms
    assert remainder_total <= 600 * 8 * len(positions)


def test_engine_samples_the_premium_at_the_first_tier_impact_notional() -> None:
    """Binance: "Impact Margin Notional = 200 USDT / Initial Margin Rate at maximum leverage". The default
    BTC market's maximum leverage is its *first* tier (IMR 0.8 %, 125x), so IMN = 25,000 USDC; the last
    tier (IMR 100 %) would give 200 USDC, a depth one quote of 4 lots (240 USDC) fills. Book, index
    60,000.0: bids 60,050.0 x 4 lots then 59,900.0 x 1,000; asks 60,060.0 x 1,000. At 25,000 USDC the
    impact bid walks into 59,900.0 (below the index) and the premium is 0; at 200 USDC it would be
    60,050.0, a premium of 50.0 / 60,000 = 0.0833 % (833,333 ppb)."""
    from bastion.core.commands import CreateAccount, Deposit, Heartbeat, PlaceOrder
    from bastion.core.engine import Engine
    from bastion.core.risk_messages import SetOraclePrice
    from tests.conftest import Driver, default_config

    engine = Engine(default_config(), check_invariants=True)
    drive = Driver(engine)
    drive(CreateAccount(1, 1))
    drive(Deposit(1, 10**13))
    drive(PlaceOrder(1, 1, 1, 1, 600_500, 4))
    drive(PlaceOrder(1, 1, 2, 1, 599_000, 1_000))
    drive(PlaceOrder(1, 1, 3, -1, 600_600, 1_000))
    t = drive.now_ns + 1_000
    drive(SetOraclePrice(1, 600_000, t), at_ns=t)
    drive(Heartbeat())
    assert engine.risk.impact_notional_atoms(1) == 200 * USDT * 1_000_000 // 8_000 == 25_000 * USDT
    bids, asks = engine.books[1].depth(64)
    wide = (impact_price_ticks(bids, 25_000 * USDT, 100, -1), impact_price_ticks(asks, 25_000 * USDT, 100, 1))
    narrow = (impact_price_ticks(bids, 200 * USDT, 100, -1), impact_price_ticks(asks, 200 * USDT, 100, 1))
    assert wide[0] is not None and wide[0] < 600_000 and narrow[0] == 600_500
    assert premium_index_ppb(*narrow, 600_000) == 833_333
    assert engine.risk.premium[1].samples == [premium_index_ppb(*wide, 600_000)] == [0]
