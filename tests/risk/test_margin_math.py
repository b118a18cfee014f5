"""Maintenance margin, liquidation and bankruptcy prices: Binance worked examples and properties."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.core.risk import (
    PRICE_TICKS_UNBOUNDED,
    account_health,
    bankruptcy_price_ticks,
    close_bankruptcy_price_ticks,
    is_liquidatable,
    liquidation_price_ticks,
    maintenance_margin_atoms,
    position_maintenance_atoms,
    tier_for_notional,
)
from tests.risk._helpers import USDT, make_account, make_spec

SPEC = make_spec()
K = SPEC.atoms_per_tick_lot  # 100 atoms per tick-lot (0.1 USDT x 0.001 BTC)


def test_binance_maintenance_amount_recurrence() -> None:
    """Binance FAQ "How to Calculate Liquidation Price of USDⓈ-M Futures Contracts", Maintenance Amount:
    "the Maintenance Amount on Level 3 = 250,000 * (1% - 0.5%) + 50 USDT = 1,300 USDT"; level 2's amount
    is 50,000 * (0.5% - 0.4%) = 50 USDT. The config loader derives the same amounts (atom*ppm)."""
    amounts = [t.mm_deduction_atom_ppm // 10**6 for t in SPEC.margin_tiers[:3]]
    assert amounts == [0, 50 * USDT, 1_300 * USDT]


def test_binance_maintenance_margin_rate_and_amount_examples() -> None:
    """Same FAQ: "if the position size ... is 264,000 USDT, then the maintenance margin rate would be 1%";
    "if the position size ... is 500,000 USDT, then the maintenance amount would be 1,300 USDT", so
    Maintenance Margin = Notional * MMR - Maintenance Amount = 500,000 * 1% - 1,300 = 3,700 USDT."""
    assert tier_for_notional(SPEC, 264_000 * USDT).mmf_ppm == 10_000
    assert tier_for_notional(SPEC, 500_000 * USDT).mm_deduction_atom_ppm == 1_300 * USDT * 10**6
    assert maintenance_margin_atoms(SPEC, 500_000 * USDT) == 3_700 * USDT
    # Continuous across a bracket boundary (the point of the maintenance amount).
    # 250,000 * 0.5 % - 50 = 1,200 in level 2; one atom above, level 3 gives 250,000 * 1 % - 1,300 = 1,200.
    assert maintenance_margin_atoms(SPEC, 250_000 * USDT) == 1_200 * USDT
    assert maintenance_margin_atoms(SPEC, 250_000 * USDT + 1) - 1_200 * USDT <= 1


def binance_lp(wb: Fraction, tmm: Fraction, upnl: Fraction, cum: Fraction, side: int, qty: Fraction,
               ep: Fraction, mmr: Fraction) -> Fraction:
    """Binance one-way-mode liquidation price (FAQ above):
    LP = (WB - TMM1 + UPNL1 + cumB - Side1*Position1*EP1) / (Position1*MMR_B - Side1*Position1)."""
    return (wb - tmm + upnl + cum - side * qty * ep) / (qty * mmr - side * qty)


def test_binance_liquidation_price_isolated_long() -> None:
    """Isolated long 5 BTC at 60,000 with 30,000 USDT wallet balance (10x). Notional 300,000 -> level 3
    (MMR 1 %, cum 1,300). Binance formula: LP = (30,000 + 1,300 - 300,000) / (0.05 - 5) = 54,282.828...
    At LP the notional is 271,414 (still level 3, so no re-substitution). The position is liquidatable
    at every mark at or below 54,282.8 (ticks of 0.1), not at 54,282.9."""
    lp = binance_lp(Fraction(30_000), Fraction(0), Fraction(0), Fraction(1_300), 1, Fraction(5), Fraction(60_000),
                    Fraction(1, 100))
    assert lp == Fraction(268_700, Fraction(495, 100)) and 54_282 < lp < 54_283
    ticks = liquidation_price_ticks(SPEC, 5_000, 5_000 * 600_000 * K, 30_000 * USDT)
    assert ticks == 542_828 == int(lp * 10)


def test_binance_liquidation_price_isolated_short() -> None:
    """Isolated short 5 BTC at 60,000, wallet 30,000: LP = (30,000 + 1,300 + 300,000) / (0.05 + 5)
    = 65,603.96...; liquidatable at every mark >= 65,604.0."""
    lp = binance_lp(Fraction(30_000), Fraction(0), Fraction(0), Fraction(1_300), -1, Fraction(5), Fraction(60_000),
                    Fraction(1, 100))
    assert 65_603 < lp < 65_604
    ticks = liquidation_price_ticks(SPEC, -5_000, -5_000 * 600_000 * K, 30_000 * USDT)
    assert ticks == 656_040 == int(lp * 10) + 1


def test_binance_liquidation_price_resubstitutes_the_bracket() -> None:
    """Binance's note: "If your position (calculated at the liquidation price) and the current position
    ... are of different levels, then you must substitute ... the maintenance margin rate and the
    maintenance amount of the position level, to recalculate". Long 4 BTC at 65,000 (260,000 -> level
    3), wallet 20,000: level 3 gives LP 60,277.78 (notional 241,111: level 2), so level 2 (0.5 %, cum 50)
    applies: LP = (20,000 + 50 - 260,000) / (0.02 - 4) = 60,288.94..., notional 241,156 in level 2."""
    wrong = binance_lp(Fraction(20_000), Fraction(0), Fraction(0), Fraction(1_300), 1, Fraction(4), Fraction(65_000),
                       Fraction(1, 100))
    right = binance_lp(Fraction(20_000), Fraction(0), Fraction(0), Fraction(50), 1, Fraction(4), Fraction(65_000),
                       Fraction(5, 1000))
    assert 4 * wrong < 250_000 and 4 * right < 250_000
    assert liquidation_price_ticks(SPEC, 4_000, 4_000 * 650_000 * K, 20_000 * USDT) == int(right * 10) == 602_889


def test_binance_liquidation_price_cross_with_other_position() -> None:
    """Cross margin: WB 50,000; another contract with UPNL1 = -5,000 and TMM1 = 800; contract 1 long 5 BTC
    at 60,000. LP = (50,000 - 800 - 5,000 + 1,300 - 300,000) / (0.05 - 5) = 51,414.14...
    (notional 257,071: level 3)."""
    lp = binance_lp(Fraction(50_000), Fraction(800), Fraction(-5_000), Fraction(1_300), 1, Fraction(5),
                    Fraction(60_000), Fraction(1, 100))
    assert 5 * lp > 250_000
    ticks = liquidation_price_ticks(SPEC, 5_000, 5_000 * 600_000 * K, 45_000 * USDT, 800 * USDT)
    assert ticks == int(lp * 10) == 514_141


def test_bankruptcy_price_worked_example() -> None:
    """Long 5 BTC at 60,000 with 30,000 margin: equity 0 at 60,000 - 30,000/5 = 54,000 exactly."""
    assert bankruptcy_price_ticks(SPEC, 5_000, 5_000 * 600_000 * K, 30_000 * USDT) == 540_000
    assert bankruptcy_price_ticks(SPEC, -5_000, -5_000 * 600_000 * K, 30_000 * USDT) == 660_000


sizes = st.integers(min_value=1, max_value=2_000_000)
prices = st.integers(min_value=1_000, max_value=2_000_000)


@settings(max_examples=400, deadline=None)
@given(size=sizes, long=st.booleans(), entry=prices, lev_bp=st.integers(min_value=1, max_value=2_000_000),
       other_mm=st.integers(min_value=0, max_value=10**12))
def test_liquidation_price_is_the_exact_boundary_of_the_predicate(size: int, long: bool, entry: int, lev_bp: int,
                                                                   other_mm: int) -> None:
    """Brute-force check at L and L +- 1: liquidatable(M) == (M <= L) for longs, (M >= L) for shorts."""
    signed = size if long else -size
    cost = signed * entry * K
    collateral = size * entry * K * lev_bp // 10**6
    liq = liquidation_price_ticks(SPEC, signed, cost, collateral, other_mm)

    def liquidatable(mark: int) -> bool:
        equity = collateral + signed * mark * K - cost
        return is_liquidatable(equity, other_mm + position_maintenance_atoms(SPEC, signed, mark))

    if long:
        if liq == PRICE_TICKS_UNBOUNDED:
            return
        for mark in (liq - 1, liq, liq + 1, liq + 2, 2 * liq + 7):
            if mark >= 1:
                assert liquidatable(mark) == (mark <= liq), mark
    else:
        for mark in (liq - 2, liq - 1, liq, liq + 1, 2 * liq + 7):
            if mark >= 1:
                assert liquidatable(mark) == (mark >= liq), mark


@settings(max_examples=300, deadline=None)
@given(size=sizes, long=st.booleans(), entry=prices, collateral=st.integers(min_value=-10**12, max_value=10**13))
def test_bankruptcy_price_leaves_equity_non_negative_and_is_tight(size: int, long: bool, entry: int,
                                                                  collateral: int) -> None:
    signed = size if long else -size
    cost = signed * entry * K
    bp = bankruptcy_price_ticks(SPEC, signed, cost, collateral)
    assert collateral + signed * bp * K - cost >= 0
    worse = bp - 1 if long else bp + 1
    assert collateral + signed * worse * K - cost < 0


@settings(max_examples=300, deadline=None)
@given(size=sizes, long=st.booleans(), entry=prices, mark=prices, balance=st.integers(min_value=0, max_value=10**13))
def test_full_close_bankruptcy_price_matches_single_position_formula(size: int, long: bool, entry: int, mark: int,
                                                                    balance: int) -> None:
    """dYdX's partial formula for a full close of the only position equals the plain bankruptcy price."""
    signed = size if long else -size
    account = make_account(1, balance, {1: (signed, signed * entry * K)})
    health = account_health(account, {1: SPEC}, {1: mark})
    via_close = close_bankruptcy_price_ticks(SPEC, signed, size, mark, health.equity_atoms, health.maintenance_atoms)
    assert via_close == bankruptcy_price_ticks(SPEC, signed, signed * entry * K, balance)
