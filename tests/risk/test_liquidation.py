"""Partial liquidation: fillable price, just-enough sizing (restores margin), floors/caps, fees."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bastion.core.accounts import settle_fill
from bastion.core.risk import (
    PPM,
    LiquidationConfig,
    ThrottleWindow,
    account_health,
    close_bankruptcy_price_ticks,
    fillable_price_ticks,
    liquidation_allowance_atoms,
    liquidation_close_lots,
    liquidation_fee_atoms,
    partial_close_lots,
    plan_liquidation,
    throttle_record,
)
from bastion.core.risk.margin_math import _tier_bounds, position_maintenance_atoms
from tests.risk._helpers import USDT, make_account, make_spec

BTC = make_spec()
ETH = make_spec(tick="0.01", instrument_id=2, symbol="ETH-USDT")
SPECS = {1: BTC, 2: ETH}
CONFIG = LiquidationConfig()


def test_fillable_price_moves_from_mark_to_bankruptcy_as_equity_falls() -> None:
    """dYdX GetFillablePrice re-anchored: ABR = clamp(BA(1 - TNC/TMMR), 0, 1), f = min(1, ABR*SMMR).
    Long, mark 60,000.0, bankruptcy 54,000.0, MM 3,000: TNC = MM -> limit = mark; TNC = 2/3 MM -> ABR 1/3,
    f = 0.5 -> 57,000.0; TNC <= MM/3 -> f = 1 -> bankruptcy price."""
    mark, bp, mm = 600_000, 540_000, 3_000 * USDT
    assert fillable_price_ticks(5, mark, bp, mm, mm, CONFIG) == mark
    assert fillable_price_ticks(5, mark, bp, 2 * mm // 3, mm, CONFIG) == 570_000
    assert fillable_price_ticks(5, mark, bp, mm // 3, mm, CONFIG) == bp
    assert fillable_price_ticks(5, mark, bp, -mm, mm, CONFIG) == bp
    # Short mirror: bankruptcy above the mark.
    assert fillable_price_ticks(-5, mark, 660_000, 2 * mm // 3, mm, CONFIG) == 630_000


@settings(max_examples=300, deadline=None)
@given(mark=st.integers(min_value=1, max_value=10**7), bp=st.integers(min_value=-10**6, max_value=2 * 10**7),
       equity=st.integers(min_value=-10**10, max_value=10**10), mm=st.integers(min_value=1, max_value=10**10),
       long=st.booleans())
def test_fillable_price_between_mark_and_bankruptcy(mark: int, bp: int, equity: int, mm: int, long: bool) -> None:
    limit = fillable_price_ticks(1 if long else -1, mark, bp, equity, mm, CONFIG)
    assert limit >= 1
    assert min(mark, max(bp, 1)) <= limit <= max(mark, bp) or limit == 1


def _worst_case_after(account, iid: int, qty: int, limit: int, marks: dict[int, int]):
    """Close ``qty`` at the limit paying the liquidation fee and the taker fee (each rounded up)."""
    spec = SPECS[iid]
    k = spec.atoms_per_tick_lot
    pos = account.positions[iid]
    side = -1 if pos.size_lots > 0 else 1
    settle_fill(account, pos, side * qty, limit, k)
    notional = qty * limit * k
    account.balance_atoms -= -((-notional * CONFIG.fee_ppm) // PPM) + spec.fee_atoms(notional, spec.taker_fee_ppm)
    return account_health(account, SPECS, marks)


positions = st.tuples(st.integers(min_value=1, max_value=3_000_000), st.booleans(),
                      st.integers(min_value=100_000, max_value=2_000_000))


def _liquidatable_account(held: dict[int, tuple[int, int]], marks: dict[int, int], ratio_ppm: int):
    """An account holding ``held`` whose equity at ``marks`` is ``ratio`` of its maintenance margin."""
    probe = make_account(7, 0, held)
    health = account_health(probe, SPECS, marks)
    return make_account(7, health.maintenance_atoms * ratio_ppm // PPM - health.equity_atoms, held)


@settings(max_examples=600, deadline=None)
@given(main=positions, other=st.one_of(st.none(), positions), ratio_ppm=st.integers(min_value=1, max_value=999_999),
       move_ppm=st.integers(min_value=-200_000, max_value=200_000))
def test_partial_close_restores_margin_plus_buffer(main, other, ratio_ppm: int, move_ppm: int) -> None:
    """Whatever the book does inside the limit, the computed close leaves E' >= MM' * (1 + buffer),
    unless it is the whole position (no partial close can restore the account)."""
    size, long, entry = main
    signed = size if long else -size
    held = {1: (signed, signed * entry * BTC.atoms_per_tick_lot)}
    marks = {1: entry * (PPM + move_ppm) // PPM, 2: 300_000}
    if other is not None:
        o_size, o_long, o_entry = other
        o_signed = o_size if o_long else -o_size
        held[2] = (o_signed, o_signed * o_entry * ETH.atoms_per_tick_lot)
        marks[2] = o_entry
    account = _liquidatable_account(held, marks, ratio_ppm)
    health = account_health(account, SPECS, marks)
    assume(health.liquidatable and health.equity_atoms > 0)
    mark = marks[1]
    bp = close_bankruptcy_price_ticks(BTC, signed, size, mark, health.equity_atoms, health.maintenance_atoms)
    limit = fillable_price_ticks(signed, mark, bp, health.equity_atoms, health.maintenance_atoms, CONFIG)
    qty = partial_close_lots(BTC, signed, mark, limit, health.equity_atoms, health.maintenance_atoms, CONFIG)
    assert 1 <= qty <= size
    if qty < size:
        after = _worst_case_after(account, 1, qty, limit, marks)
        assert after.equity_atoms * PPM >= after.maintenance_atoms * (PPM + CONFIG.buffer_ppm)


@settings(max_examples=200, deadline=None)
@given(size=st.integers(min_value=1, max_value=400), entry=st.integers(min_value=100_000, max_value=900_000),
       ratio_ppm=st.integers(min_value=1, max_value=999_999), long=st.booleans())
def test_closed_form_matches_brute_force_of_the_same_inequality(size: int, entry: int, ratio_ppm: int,
                                                                long: bool) -> None:
    """The bracket walk returns the largest remaining size satisfying the documented inequality."""
    signed = size if long else -size
    k = BTC.atoms_per_tick_lot
    mark = entry
    account = _liquidatable_account({1: (signed, signed * entry * k)}, {1: mark, 2: 300_000}, ratio_ppm)
    health = account_health(account, SPECS, {1: mark})
    assume(health.liquidatable and health.equity_atoms > 0)
    e, mm = health.equity_atoms, health.maintenance_atoms
    limit = fillable_price_ticks(signed, mark, close_bankruptcy_price_ticks(BTC, signed, size, mark, e, mm), e, mm,
                                 CONFIG)
    got = partial_close_lots(BTC, signed, mark, limit, e, mm, CONFIG)
    other = mm - position_maintenance_atoms(BTC, size, mark)
    slip = (mark - limit) if long else (limit - mark)
    cost = slip * k * PPM + limit * k * (CONFIG.fee_ppm + BTC.taker_fee_ppm) + 2 * PPM
    scale = PPM + CONFIG.buffer_ppm

    def holds(x: int) -> bool:
        n = x * mark * k
        index = next(i for i in range(len(BTC.margin_tiers)) if (_tier_bounds(BTC.margin_tiers, i)[1] or n) >= n)
        tier = BTC.margin_tiers[index]
        lhs = PPM * PPM * e - PPM * cost * (size - x)
        return lhs >= scale * (PPM * other + n * tier.mmf_ppm - tier.mm_deduction_atom_ppm + PPM - 1)

    feasible = [x for x in range(size + 1) if holds(x)]
    expected = size - max(feasible) if feasible else size
    assert got == max(expected, 1)


def test_floor_dust_and_interval_cap() -> None:
    """$1,000 floor, no remainder under $1,000, $100,000 per interval (dYdX genesis values)."""
    k, mark = BTC.atoms_per_tick_lot, 600_000  # one lot = 60 USDT
    assert liquidation_close_lots(1, 1_000, mark, k, 10**18, CONFIG) == 17  # ceil(1,000 / 60)
    assert liquidation_close_lots(1, 30, mark, k, 10**18, CONFIG) == 30  # 13 lots left = 780 USDT: dust
    assert liquidation_close_lots(5_000, 10_000, mark, k, 100_000 * USDT, CONFIG) == 1_666
    assert liquidation_close_lots(5_000, 10_000, mark, k, 59 * USDT, CONFIG) == 0


def test_throttle_window_rolls_over() -> None:
    window = throttle_record(None, 10, 60_000 * USDT, CONFIG)
    assert liquidation_allowance_atoms(window, 11, CONFIG) == 40_000 * USDT
    window = throttle_record(window, 12, 40_000 * USDT, CONFIG)
    assert window == ThrottleWindow(10, 100_000 * USDT)
    assert liquidation_allowance_atoms(window, 13, CONFIG) == 0
    assert liquidation_allowance_atoms(window, 10 + CONFIG.interval_ns, CONFIG) == 100_000 * USDT


def test_plan_liquidation_worked_example() -> None:
    """Long 20 BTC at 60,000 with 40,000 margin, mark 58,500 (Binance-like brackets, level 4: MMR 2.5 %,
    maintenance amount 1,000,000 * 1.5 % + 1,300 = 16,300): equity 40,000 - 30,000 = 10,000 < MM =
    1,170,000 * 2.5 % - 16,300 = 12,950. ABR = 2,950 / 12,950, f = 1.5 * ABR = 0.3417; full-close
    bankruptcy price 58,500 - 10,000/20 = 58,000, so the sizing limit is 58,500 - 0.3417 * 500 = 58,329.2.
    Per lot (0.001 BTC) a sell at the limit costs 0.1708 slippage + 0.55 % fees of 58.3292 = 0.4916 USDT
    (+2 atoms); the close that leaves E' = 1.02 * MM' is 5.786 BTC (14.214 BTC left: 831,519 notional,
    level 3, MM' = 7,015.19; E' = 10,000 - 5,786 * 0.4916 = 7,155.5 = 1.02 * 7,015.19). The close's own
    bankruptcy price (dYdX: DMMR = 5,934.81 carries 10,000 * 5,934.81 / 12,950 = 4,582.87 of equity) is
    (338,481 - 4,582.87) / 5.786 = 57,708.0; the limit stays at the less adverse 58,329.2."""
    k = BTC.atoms_per_tick_lot
    account = make_account(3, 40_000 * USDT, {1: (20_000, 20_000 * 600_000 * k)})
    marks = {1: 585_000, 2: 300_000}
    health = account_health(account, SPECS, marks)
    assert (health.equity_atoms, health.maintenance_atoms) == (10_000 * USDT, 12_950 * USDT)
    order = plan_liquidation(account, SPECS, marks, CONFIG, 10**18)
    assert order is not None and order.side == -1 and not order.bankrupt
    assert (order.qty_lots, order.limit_price_ticks, order.bankruptcy_price_ticks) == (5_786, 583_292, 577_080)
    fee, payout = liquidation_fee_atoms(order, order.qty_lots, order.limit_price_ticks, k, CONFIG.fee_ppm)
    assert payout == 0 and fee == -((-5_786 * 583_292 * k * CONFIG.fee_ppm) // PPM)
    after = _worst_case_after(account, 1, order.qty_lots, order.limit_price_ticks, marks)
    assert after.equity_atoms * PPM >= after.maintenance_atoms * (PPM + CONFIG.buffer_ppm)
    # The default $100,000 interval cap spreads it: 100,000 / 58.5 per lot = 1,709 lots now.
    fresh = make_account(3, 40_000 * USDT, {1: (20_000, 20_000 * 600_000 * k)})
    capped = plan_liquidation(fresh, SPECS, marks, CONFIG, CONFIG.max_notional_per_interval_atoms)
    assert capped is not None and capped.qty_lots == 1_709


def test_fees_above_freed_margin_close_the_whole_position() -> None:
    """Long 5 BTC at 60,000 with 3,000 margin, mark 59,700: equity 1,500 < MM 1,685. Each lot sold frees
    1 % of 59.7 = 0.597 USDT of margin but costs ~0.82 USDT (slippage to the limit plus 0.55 % fees), so
    no partial close restores the account: the whole position goes (Binance: small accounts are
    "already bankrupt when first entering liquidation" once fees exceed maintenance)."""
    k = BTC.atoms_per_tick_lot
    account = make_account(3, 3_000 * USDT, {1: (5_000, 5_000 * 600_000 * k)})
    order = plan_liquidation(account, SPECS, {1: 597_000, 2: 300_000}, CONFIG, 10**18)
    assert order is not None and order.qty_lots == 5_000 and not order.bankrupt


def test_liquidation_fee_never_exceeds_surplus_and_fund_pays_shortfall() -> None:
    """dYdX GetLiquidationInsuranceFundDelta: fee = min(fee_ppm * notional, proceeds - bankruptcy value);
    below the bankruptcy value the fund pays the difference."""
    account = make_account(3, 3_000 * USDT, {1: (5_000, 5_000 * 600_000 * BTC.atoms_per_tick_lot)})
    order = plan_liquidation(account, SPECS, {1: 597_000, 2: 300_000}, CONFIG, 10**18)
    assert order is not None
    k, bp = BTC.atoms_per_tick_lot, order.bankruptcy_price_ticks
    assert liquidation_fee_atoms(order, 10, bp, k, CONFIG.fee_ppm) == (0, 0)
    assert liquidation_fee_atoms(order, 10, bp + 1, k, CONFIG.fee_ppm) == (10 * k, 0)  # capped by surplus
    assert liquidation_fee_atoms(order, 10, bp - 3, k, CONFIG.fee_ppm) == (0, 30 * k)
    big = liquidation_fee_atoms(order, 10, bp + 10_000, k, CONFIG.fee_ppm)
    assert big == (-((-10 * (bp + 10_000) * k * CONFIG.fee_ppm) // PPM), 0)


def test_healthy_and_bankrupt_accounts() -> None:
    k = BTC.atoms_per_tick_lot
    healthy = make_account(1, 30_000 * USDT, {1: (5_000, 5_000 * 600_000 * k)})
    assert plan_liquidation(healthy, SPECS, {1: 600_000, 2: 300_000}, CONFIG, 10**18) is None
    broke = make_account(2, 3_000 * USDT, {1: (5_000, 5_000 * 600_000 * k)})
    order = plan_liquidation(broke, SPECS, {1: 590_000, 2: 300_000}, CONFIG, 0)  # bankrupt: not throttled
    assert order is not None and order.bankrupt and order.qty_lots == 5_000
    assert order.limit_price_ticks == order.bankruptcy_price_ticks == 594_000
