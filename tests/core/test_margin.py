"""Initial-margin check and withdrawals, with numbers worked by hand on the default venue.

BTC-USD-PERP brackets (Binance USD-M BTCUSDT style, shared/reference/risk-engines.md §2.5):
<= 50,000 USDC at 0.8 % IM, <= 600,000 at 1.0 %, ... with deductions keeping the requirement continuous.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.core.commands import CreateAccount, Deposit, PlaceOrder, SetMarkPrice, Withdraw
from bastion.core.engine import Engine
from bastion.core.events import OrderAccepted, Withdrawn
from bastion.core.rejects import RejectCode
from tests.conftest import Driver

P = 600_000


def test_tier_requirement_is_continuous_at_every_boundary(config) -> None:
    spec = config.instruments[1]
    for lower, upper in zip(spec.margin_tiers, spec.margin_tiers[1:]):
        cap = lower.notional_max_atoms
        # Exactly at the cap the lower bracket applies; one atom above, the upper one: no jump.
        below = spec.initial_margin_atoms(cap)
        above = spec.initial_margin_atoms(cap + 1)
        assert 0 <= above - below <= 1 + upper.imf_ppm // 1_000_000
        assert spec.maintenance_margin_atoms(cap + 1) - spec.maintenance_margin_atoms(cap) <= 1


def test_initial_margin_worked_example(config) -> None:
    """60,000 USDC notional: bracket 2 (1 %), deduction 50,000 * (1 % - 0.8 %) = 100 USDC,
    IM = 600 - 100 = 500 USDC = 5e8 atoms."""
    spec = config.instruments[1]
    assert spec.initial_margin_atoms(spec.notional_atoms(P, 1000)) == 500_000_000


@pytest.mark.parametrize(("deposit", "accepted"), [(530_001_000, True), (530_000_999, False)])
def test_order_needs_initial_margin_plus_fee_reserve_to_the_atom(config, deposit: int, accepted: bool) -> None:
    """Buy 1 BTC at 60,000.0 with mark 60,000.0: IM 500 USDC + taker-fee reserve 30 USDC (500 ppm of
    60,000) + 1 atom per lot rounding slack (1,000 atoms) = 530,001,000 atoms."""
    engine = Engine(config, check_invariants=True)
    drive = Driver(engine)
    drive(CreateAccount(1, 1))
    drive(Deposit(1, deposit))
    before = engine.state_hash()
    ev = drive(PlaceOrder(1, 1, 1, 1, P, 1000))
    if accepted:
        assert isinstance(ev[0], OrderAccepted)
    else:
        assert ev[0].code == RejectCode.margin_initial_insufficient
        assert engine.state_hash() == before


def test_order_priced_through_the_mark_is_charged_its_locked_in_loss(config) -> None:
    """A buy at 61,000.0 with mark 60,000.0 locks in 1,000 USDC per BTC: needing 1,530.5 USDC, it is
    refused with 1,500 USDC although nothing rests to trade with; the same buy at the mark needs 530."""
    engine = Engine(config, check_invariants=True)
    drive = Driver(engine)
    drive(CreateAccount(1, 1))
    drive(Deposit(1, 1_500_000_000))
    assert drive(PlaceOrder(1, 1, 1, 1, 610_000, 1000))[0].code == RejectCode.margin_initial_insufficient
    assert isinstance(drive(PlaceOrder(1, 1, 2, 1, 600_000, 1000))[0], OrderAccepted)


def test_unrealized_gain_cannot_be_withdrawn(config) -> None:
    """The Mango pattern: mark up 10 % gives account 2 a 6,000 USDC paper gain; it may withdraw settled
    cash not needed as margin, never the paper gain."""
    engine = Engine(config, check_invariants=True)
    drive = Driver(engine)
    for a in (1, 2):
        drive(CreateAccount(a, a))
        drive(Deposit(a, 10_000_000_000))
    drive(PlaceOrder(1, 1, 1, -1, P, 1000))
    drive(PlaceOrder(2, 1, 1, 1, P, 1000))
    drive(SetMarkPrice(1, 660_000))
    balance = engine.accounts[2].balance_atoms
    assert drive(Withdraw(2, balance + 1))[0].code == RejectCode.balance_insufficient
    assert isinstance(drive(Withdraw(2, balance - 1_000_000_000))[0], Withdrawn)


def test_order_that_reduces_risk_is_allowed_when_under_margined(config) -> None:
    """After an adverse mark move account 2 is below initial margin; new risk is refused but an order
    that reduces its position (and so its requirement) is accepted (dYdX v4 rule)."""
    engine = Engine(config, check_invariants=True)
    drive = Driver(engine)
    drive(CreateAccount(1, 1))
    drive(Deposit(1, 10**12))
    drive(CreateAccount(2, 2))
    drive(Deposit(2, 1_000_000_000))
    drive(PlaceOrder(1, 1, 1, -1, P, 1000))
    drive(PlaceOrder(2, 1, 1, 1, P, 1000))
    # -500 USDC on 1 BTC: equity 1,000 - 30 fee - 500 = 470 USDC, below IM (495) but above maintenance
    # (247.5), so the account is under-margined without being liquidatable.
    drive(SetMarkPrice(1, 595_000))
    assert drive(PlaceOrder(2, 1, 2, 1, 590_000, 10))[0].code == RejectCode.margin_initial_insufficient
    # Closing, but priced 10 % through the mark (beyond the 5 % band): refused.
    assert drive(PlaceOrder(2, 1, 3, -1, 535_500, 500))[0].code == RejectCode.margin_initial_insufficient
    assert isinstance(drive(PlaceOrder(2, 1, 4, -1, 595_000, 500))[0], OrderAccepted)
    # More than the position would flip it: refused.
    assert drive(PlaceOrder(2, 1, 5, -1, 595_000, 501))[0].code == RejectCode.margin_initial_insufficient


def naive_free_collateral(engine: Engine, account_id: int, index_prices: dict[int, int] | None = None) -> int:
    """The requirement written out order by order, straight from the margin module's docstring; with
    ``index_prices``, each instrument's term is the smaller of its terms at the mark and at the index."""
    from bastion.core.units import PPM, ceil_div

    account = engine.accounts[account_id]
    free = account.balance_atoms
    for iid, pos in account.positions.items():
        spec = engine.specs[iid]
        k = spec.atoms_per_tick_lot
        buys = [o for o in pos.orders.values() if o.side > 0]
        sells = [o for o in pos.orders.values() if o.side < 0]
        worst = max(abs(pos.size_lots + sum(o.qty_lots for o in buys)),
                    abs(pos.size_lots - sum(o.qty_lots for o in sells)))
        terms = []
        prices = {engine.marks[iid]} | ({index_prices[iid]} if index_prices and iid in index_prices else set())
        for mark in prices:
            im = spec.initial_margin_atoms(worst * mark * k)
            through = sum(max(0, o.price_ticks - mark) * o.qty_lots for o in buys)
            through += sum(max(0, mark - o.price_ticks) * o.qty_lots for o in sells)
            fee_base = sum(max(o.price_ticks, mark) * o.qty_lots for o in buys) + sum(mark * o.qty_lots for o in sells)
            fee = ceil_div(fee_base * k * spec.taker_fee_ppm, PPM) + sum(o.qty_lots for o in pos.orders.values())
            terms.append(pos.size_lots * mark * k - pos.cost_atoms - im - through * k - fee)
        free += min(terms)
    return free


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, -1]), st.integers(-300, 300), st.integers(1, 400),
                          st.integers(-200, 200)), min_size=1, max_size=25))
def test_fast_free_collateral_equals_the_naive_sum(config, orders) -> None:
    """The O(1)-per-position computation (price bounds skip the per-order loop) equals the naive
    per-order sum, whatever the orders, fills and mark moves."""
    from bastion.core.margin import free_collateral_atoms

    engine = Engine(config, check_invariants=True)
    drive = Driver(engine)
    for a in (1, 2):
        drive(CreateAccount(a, a))
        drive(Deposit(a, 10**13))
    for i, (side, offset, qty, mark_move) in enumerate(orders, 1):
        drive(PlaceOrder(1 + i % 2, 1, i, side, P + offset, qty))
        drive(SetMarkPrice(1, P + mark_move))
        for a in (1, 2):
            assert free_collateral_atoms(engine.accounts[a], engine.specs, engine.marks) == naive_free_collateral(engine, a)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, -1]), st.integers(-300, 300), st.integers(1, 400),
                          st.integers(-200, 200), st.integers(-3_000, 3_000)), min_size=1, max_size=25))
def test_free_collateral_at_mark_and_index_equals_the_naive_minimum(config, orders) -> None:
    """With an index beside the mark, the fast computation equals the naive per-instrument minimum of the
    requirement at the mark and at the index (the manipulation-resistant initial-margin rule)."""
    from bastion.core.margin import free_collateral_atoms

    engine = Engine(config, check_invariants=True)
    drive = Driver(engine)
    for a in (1, 2):
        drive(CreateAccount(a, a))
        drive(Deposit(a, 10**13))
    for i, (side, offset, qty, mark_move, index_move) in enumerate(orders, 1):
        drive(PlaceOrder(1 + i % 2, 1, i, side, P + offset, qty))
        drive(SetMarkPrice(1, P + mark_move))
        index = {1: P + index_move}
        for a in (1, 2):
            fast = free_collateral_atoms(engine.accounts[a], engine.specs, engine.marks, index_prices=index)
            assert fast == naive_free_collateral(engine, a, index)
            assert fast <= free_collateral_atoms(engine.accounts[a], engine.specs, engine.marks)


def test_paper_gain_only_the_mark_shows_lends_nothing(config) -> None:
    """Mark 66,000.0 (+10 %) over an index of 60,000.0: account 2's 6,000 USDC paper gain (1 BTC long
    from 60,000.0, balance 9,970 USDC after the 30 USDC fee) counts at the mark only.

    * A resting buy of 14 BTC at 60,000.0: at the mark, free = 9,970 + 6,000 - IM(990,000 = 2 % - 6,100 =
      13,700) - fee reserve 462 = +1,808; at the index, 9,970 - IM(900,000) 11,900 - 420 = -2,350: refused.
    * Withdrawal: counting the gain, at the mark 9,970 + 6,000 - IM(66,000) 560 would let all 9,970 go.
      Cash leaves under both rules: the gain never counts (margin.withdrawable_atoms), and each
      instrument is taken at the worse of mark and index: at the mark 9,970 + min(0, 6,000) - 560 =
      9,410, at the index 9,970 - IM(60,000) 500 = 9,470; exactly 9,410 USDC may leave and one atom
      more may not."""
    from bastion.core.risk_messages import SetOraclePrice

    engine = Engine(config, check_invariants=True)
    drive = Driver(engine)
    for a in (1, 2):
        drive(CreateAccount(a, a))
        drive(Deposit(a, 10_000_000_000))
    drive(PlaceOrder(1, 1, 1, -1, P, 1000))
    drive(PlaceOrder(2, 1, 1, 1, P, 1000))
    t = drive.now_ns + 1_000
    drive(SetOraclePrice(1, P, t), at_ns=t)
    drive(SetMarkPrice(1, 660_000))  # an operator override stands in for a pushed mark
    assert engine.risk.index_prices[1] == P and engine.marks[1] == 660_000
    assert engine.accounts[2].balance_atoms == 9_970_000_000
    assert drive(PlaceOrder(2, 1, 2, 1, P, 14_000, post_only=True))[0].code == RejectCode.margin_initial_insufficient
    assert drive(Withdraw(2, 9_410_000_001))[0].code == RejectCode.withdrawal_exceeds_free_collateral
    assert isinstance(drive(Withdraw(2, 9_410_000_000))[0], Withdrawn)
