"""The risk engine through Engine.apply: liquidation, insurance fund, ADL, funding, oracle-driven mark.

Default venue: BTC-USD-PERP, tick 0.1 (P = 60,000.0 = 600,000 ticks), lot 0.001 BTC, k = 100 atoms per
tick-lot, taker fee 500 ppm; maintenance 0.4 % up to 50k notional, then 0.5 % minus a 50 USDC deduction.
The engine runs with the full invariant check after every command, which includes conservation (with the
venue's bad-debt account), "no account below maintenance margin without a pending liquidation", "no flat
account with a negative balance", "insurance fund >= 0" and the holders index.

The crash used throughout: LONG buys 1 BTC at 60,000.0 from the LP with 1,000 USDC (970 after the 30 USDC
taker fee); the mark falls to 58,000.0 with no bids. LONG's equity is 970 - 2,000 = -1,030 USDC: its
bankruptcy price is 59,030.0.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.core.commands import CreateAccount, Deposit, DepositInsuranceFund, Heartbeat, PlaceOrder, SetMarkPrice, Withdraw
from bastion.core.engine import Engine
from bastion.core.events import Deposited, InsuranceFundDeposited, OrderAccepted, OrderCanceled, TradeExecuted
from bastion.core.oracle import AggregateConfig, SourceConfig, SourcePrice, aggregate
from bastion.core.rejects import RejectCode
from bastion.core.risk import account_health, liquidation_allowance_atoms, plan_liquidation
from bastion.core.risk.mark import MarkConfig, MarkMethod
from bastion.core.risk_engine import RiskConfig
from bastion.core.risk_messages import (
    AutoDeleveraged,
    BadDebtRecorded,
    FundingPaid,
    FundingRateSet,
    InsuranceFundUnwound,
    InsuranceFundUsed,
    PositionLiquidated,
    PositionTakenOver,
    SetOraclePrice,
    SocializedLoss,
)
from tests.conftest import Driver
from bastion.audit.ledger import Ledger
from tests.risk._helpers import assert_restore_and_replay_match

P = 600_000
LONG, LP, TAKER, BIG = 2, 1, 3, 4


def venue(config, trader_atoms: int = 1_000_000_000, fund_atoms: int = 0) -> tuple[Engine, Driver]:
    engine = Engine(config, check_invariants=True)
    drive = Driver(engine)
    for a in (LP, LONG, TAKER, BIG):
        drive(CreateAccount(a, a))
        drive(Deposit(a, trader_atoms if a == LONG else 10**13))
    if fund_atoms:
        drive(DepositInsuranceFund(fund_atoms))
    drive(PlaceOrder(LP, 1, 1, -1, P, 1000))
    drive(PlaceOrder(LONG, 1, 1, 1, P, 1000))  # LONG: 1 BTC at 60,000.0 with 1,000 USDC
    return engine, drive


def kinds(events: list) -> Counter[str]:
    return Counter(type(e).__name__ for e in events)


def size(engine: Engine, account_id: int) -> int:
    pos = engine.accounts[account_id].positions.get(1)
    return 0 if pos is None else pos.size_lots


def test_partial_liquidation_into_the_book_pays_the_insurance_fund(config) -> None:
    """Mark 59,200.0: equity 1,000 - 30 fee - 800 = 170 USDC < maintenance 246 USDC. Bids rest at
    59,150.0; the engine sells part of the position with a reduce-only IOC, charges the liquidation fee
    to the insurance fund, and leaves the account above maintenance (or keeps it queued)."""
    engine, drive = venue(config)
    drive(PlaceOrder(BIG, 1, 1, 1, 591_500, 5000))
    fund_before = engine.insurance_fund_atoms
    events = drive(SetMarkPrice(1, 592_000))
    liquidated = [e for e in events if isinstance(e, PositionLiquidated)]
    assert liquidated and all(e.account_id == LONG and e.side == -1 for e in liquidated)
    fees = sum(e.liquidation_fee_atoms for e in liquidated)
    assert fees > 0 and engine.insurance_fund_atoms == fund_before + fees
    assert 0 <= size(engine, LONG) < 1000
    sold = sum(e.qty_lots for e in liquidated)
    assert size(engine, LONG) == 1000 - sold
    assert all(e.price_ticks >= e.bankruptcy_price_ticks for e in liquidated)
    assert LONG in engine.risk.queue or not engine.risk.check()


FUND = 0
DEFICIT = 1_030_000_000  # LONG's equity at 58,000.0 is -1,030 USDC (module docstring)


def test_a_full_insurance_fund_takes_the_position_and_no_one_is_deleveraged(config) -> None:
    """Fund 100,000 USDC, no bids. The liquidation IOC finds nothing; the fund takes LONG's 1 BTC at the
    mark and pays its 1,030 USDC deficit (= holds it at the bankruptcy price 59,030.0): its equity
    98,970 >= 10 % of 58,000. No ADL: the LP keeps its short."""
    engine, drive = venue(config, fund_atoms=100_000 * 10**6)
    events = drive(SetMarkPrice(1, 580_000))
    assert [type(e).__name__ for e in events] == ["MarkPriceSet", "OrderAccepted", "OrderCanceled",
                                                   "PositionTakenOver", "InsuranceFundUsed"]
    assert events[3] == PositionTakenOver(1, LONG, FUND, 1000, 580_000, DEFICIT, 3, False)
    assert events[4] == InsuranceFundUsed(LONG, DEFICIT, 100_000 * 10**6 - DEFICIT)
    fund = engine.accounts[FUND]
    assert (fund.positions[1].size_lots, fund.positions[1].cost_atoms, fund.balance_atoms) == (1000, 1000 * 580_000 * 100, 0)
    assert size(engine, LP) == -1000 and size(engine, LONG) == 0 and engine.accounts[LONG].balance_atoms == 0
    assert engine.risk.holders[1] == {LP, FUND} and engine.risk.fund_open


def test_the_fund_unwinds_its_inventory_into_the_book_over_later_commands(config) -> None:
    """After the takeover above, BIG bids 400 lots at 57,900.0. Nothing happens for the first second
    (fund_unwind_interval_ns); then one reduce-only IOC per second sells 25 % of the inventory at a limit
    1 % under the mark (574,200): 250 lots at 57,900.0 realize -25 USDC, then 188 offered, 150 filled
    (-15 USDC), 38 canceled. With no more bids nothing is sent. A bid at the mark takes the rest, one
    step a second, until the fund's account is flat and pruned. Snapshot/restore mid-way is exact."""
    engine, drive = venue(config, fund_atoms=100_000 * 10**6)
    drive(SetMarkPrice(1, 580_000))
    taken_at = drive.now_ns
    drive(PlaceOrder(BIG, 1, 2, 1, 579_000, 400))
    assert not kinds(drive(Heartbeat(), at_ns=taken_at + 10**9 - 1))["InsuranceFundUnwound"]
    events = drive(Heartbeat(), at_ns=taken_at + 10**9)
    assert events[0] == OrderAccepted(events[0].order_id, FUND, 1, 0, -1, 574_200, 250, 1)
    assert isinstance(events[1], TradeExecuted) and events[1].taker_account_id == FUND and events[1].taker_fee_atoms == 0
    assert events[2] == InsuranceFundUnwound(1, 250, 579_000, -25_000_000, 100_000 * 10**6 - DEFICIT - 25_000_000, 750)
    events = drive(Heartbeat(), at_ns=drive.now_ns + 10**9)
    assert [e.qty_lots for e in events if isinstance(e, (OrderAccepted, InsuranceFundUnwound, OrderCanceled))] == [188, 150, 38]
    assert not drive(Heartbeat(), at_ns=drive.now_ns + 10**9)  # no bids within the limit: no order at all
    restored = Engine.restore(config, engine.snapshot(), check_invariants=True)
    assert restored.state_hash() == engine.state_hash() and restored.risk.fund_open
    drive(PlaceOrder(BIG, 1, 3, 1, 580_000, 1000))
    steps = 0
    while FUND in engine.accounts and steps < 100:
        drive(Heartbeat(), at_ns=drive.now_ns + 10**9)
        steps += 1
    assert FUND not in engine.accounts and not engine.risk.fund_open and not engine.risk.fund_unwind_ns
    assert engine.insurance_fund_atoms == 100_000 * 10**6 - DEFICIT - 40_000_000
    assert size(engine, BIG) == 1000 and 10 < steps < 100
    replayed = Engine(config)
    for item in drive.log:
        replayed.apply(item)
    assert replayed.state_hash() == engine.state_hash()


def test_no_client_command_can_reach_the_fund_account(config) -> None:
    """Account 0 holds the fund's inventory: orders, deposits, withdrawals, transfers and cancels that
    name it are refused as an unknown account and change nothing."""
    from bastion.core.commands import CancelAll, Transfer
    from bastion.core.events import CommandRejected

    engine, drive = venue(config, fund_atoms=100_000 * 10**6)
    drive(SetMarkPrice(1, 580_000))
    assert FUND in engine.accounts
    for cmd in (PlaceOrder(FUND, 1, 1, -1, 580_000, 10), PlaceOrder(FUND, 1, 2, -1, 580_000, 10, reduce_only=True),
                Deposit(FUND, 10**6), Withdraw(FUND, 1), Transfer(FUND, LP, 1), Transfer(LP, FUND, 1),
                CancelAll(FUND, 0)):
        before = engine.state_hash()
        events = drive(cmd)
        assert len(events) == 1 and isinstance(events[0], CommandRejected), cmd
        assert events[0].code == RejectCode.account_unknown and engine.state_hash() == before


def test_the_fund_account_takes_no_client_account_slot(config) -> None:
    """``accounts_max`` counts client accounts: with a limit of 5, the four venue accounts plus the fund's
    position account (0, holding LONG's takeover) still leave room for a fifth client, and the sixth is
    refused (205); restored from a snapshot, the same holds."""
    import dataclasses

    from bastion.core.commands import CreateAccount
    from bastion.core.events import AccountCreated, CommandRejected

    small = dataclasses.replace(config, limits=dataclasses.replace(config.limits, accounts_max=5))
    engine, drive = venue(small, fund_atoms=100_000 * 10**6)
    drive(SetMarkPrice(1, 580_000))
    assert FUND in engine.accounts and len(engine.accounts) == 5
    restored = Engine.restore(small, engine.snapshot(), check_invariants=True)
    for eng in (engine, restored):
        item_drive = drive if eng is engine else Driver(eng, drive.now_ns)
        assert [type(e) for e in item_drive(CreateAccount(5, 5))] == [AccountCreated]
        events = item_drive(CreateAccount(6, 6))
        assert len(events) == 1 and isinstance(events[0], CommandRejected)
        assert events[0].code == RejectCode.accounts_max_reached


def test_fund_capacity_then_fund_cash_then_adl_at_the_bankruptcy_price(config) -> None:
    """Fund 2,000 USDC. Taking q lots costs 1.03 USDC each and it must keep 10 % of 58 USDC per lot:
    q = 292 (2,000 - 300.76 = 1,699.24 >= 1,693.60; 293 fails). Its free cash 5.64 USDC is paid in
    cash; the other 708 lots go to the LP by ADL, which pays the remaining 723.60 USDC: it closes at
    the bankruptcy price of what is left."""
    engine, drive = venue(config, fund_atoms=2_000 * 10**6)
    events = drive(SetMarkPrice(1, 580_000))
    assert [e for e in events if isinstance(e, PositionTakenOver)] == [
        PositionTakenOver(1, LONG, FUND, 292, 580_000, 300_760_000, 3, False)]
    assert [e.amount_atoms for e in events if isinstance(e, InsuranceFundUsed)] == [300_760_000, 5_640_000]
    adl = [e for e in events if isinstance(e, AutoDeleveraged)]
    assert [(e.counterparty_account_id, e.qty_lots, e.via, e.charge_atoms) for e in adl] == [(LP, 708, 2, 723_600_000)]
    assert engine.insurance_fund_atoms == 2_000 * 10**6 - 300_760_000 - 5_640_000
    assert engine.accounts[LONG].balance_atoms == 0 and engine.risk.bad_debt_atoms == 0


def test_a_depleted_fund_means_adl_at_the_bankruptcy_price(config) -> None:
    """Fund 0: the LP is deleveraged at the mark and pays the whole deficit share 1,030 USDC. Net it
    realizes 60,000 - 59,030 = 970 USDC: exactly a close at LONG's bankruptcy price 59,030.0."""
    engine, drive = venue(config)
    lp_before = engine.accounts[LP].balance_atoms
    events = drive(SetMarkPrice(1, 580_000))
    adl = [e for e in events if isinstance(e, AutoDeleveraged)]
    assert adl == [AutoDeleveraged(1, LONG, LP, 1000, 580_000, 2, DEFICIT, 2_000_000_000)]
    assert engine.accounts[LP].balance_atoms - lp_before == (600_000 - 590_300) * 1000 * 100
    assert not [e for e in events if isinstance(e, (PositionTakenOver, SocializedLoss, BadDebtRecorded))]
    assert engine.accounts[LONG].balance_atoms == 0 and engine.risk.bad_debt_atoms == 0
    assert all(a.balance_atoms >= 0 for a in engine.accounts.values())


def test_funding_is_paid_hourly_and_sums_to_zero(config) -> None:
    """With the book's impact bid/ask above the index the premium is positive: longs pay shorts.
    Payments plus the rounding remainder (to the insurance fund) sum to exactly zero."""
    engine, drive = venue(config)
    drive(PlaceOrder(BIG, 1, 1, 1, P + 500, 10_000))
    drive(PlaceOrder(TAKER, 1, 1, -1, P + 600, 10_000))
    start = drive.now_ns
    drive(SetOraclePrice(1, P, start))
    fund_before = engine.insurance_fund_atoms
    hour = 3600 * 10**9
    paid = []
    for minute in range(1, 62):
        events = drive(Heartbeat(), at_ns=start + minute * 60 * 10**9)
        paid += [e for e in events if isinstance(e, (FundingRateSet, FundingPaid))]
    rates = [e for e in paid if isinstance(e, FundingRateSet)]
    payments = [e for e in paid if isinstance(e, FundingPaid)]
    assert len(rates) == 1 and rates[0].premium_ppb > 0 and rates[0].rate_ppb > 0
    assert sum(p.amount_atoms for p in payments) + rates[0].remainder_atoms == 0
    assert engine.insurance_fund_atoms == fund_before + rates[0].remainder_atoms
    by_account = {p.account_id: p.amount_atoms for p in payments}
    assert by_account[LONG] < 0 < by_account[LP]
    assert drive.now_ns - start >= hour


def test_oracle_price_drives_the_mark_and_rejects_bad_input(config) -> None:
    engine, drive = venue(config)
    now = drive.now_ns
    ev = drive(SetOraclePrice(1, 0, now))
    assert ev[0].code == RejectCode.price_ticks_not_positive
    ev = drive(SetOraclePrice(1, P, now + 10**12))
    assert ev[0].code == RejectCode.field_value_out_of_range
    ev = drive(SetOraclePrice(1, "600000", now))
    assert ev[0].code == RejectCode.field_type_invalid
    drive(SetOraclePrice(1, P + 300, drive.now_ns))
    assert engine.risk.index_prices[1] == P + 300
    assert abs(engine.marks[1] - (P + 300)) <= 300


def test_manipulated_source_cannot_be_withdrawn_against(config) -> None:
    """The Mango pattern. The attacker holds 1 BTC long and pushes one of three oracle sources 10x for a
    few minutes. The aggregator rejects the outlier, the index (and mark) stay put, no liquidation of
    the honest short happens, and the attacker can withdraw nothing beyond its settled cash. Attacker
    PnL = final equity - deposits <= 0 (it paid the taker fee)."""
    engine, drive = venue(config)
    agg = AggregateConfig(
        symbol="BTC", quote="USD", price_exponent=-1,
        sources=tuple(SourceConfig(s, "USD", 120 * 10**9) for s in ("a", "b", "c")),
        quorum_min=2, outlier_deviation_max_ppm=50_000,
    )
    deposits = 1_000_000_000
    for minute in range(1, 6):
        now = drive.now_ns + 60 * 10**9
        reports = [SourcePrice("a", "BTC", "USD", P, -1, now), SourcePrice("b", "BTC", "USD", P + 10, -1, now),
                   SourcePrice("c", "BTC", "USD", P * 10, -1, now)]  # the manipulated, thin source
        result = aggregate(reports, now, agg)
        assert result.price is not None and abs(result.price - P) <= 10
        events = drive(SetOraclePrice(1, result.price, now), at_ns=now)
        assert not any(isinstance(e, PositionLiquidated) for e in events)
        assert drive(Withdraw(LONG, engine.accounts[LONG].balance_atoms + 1))[0].code == RejectCode.balance_insufficient
    account = engine.accounts[LONG]
    pos = account.positions[1]
    equity = account.balance_atoms + pos.size_lots * engine.marks[1] * 100 - pos.cost_atoms
    attacker_pnl = equity - deposits
    print(f"attacker PnL: {attacker_pnl} atoms")
    assert attacker_pnl <= 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(1, 4), st.sampled_from([1, -1]), st.integers(-3000, 3000), st.integers(1, 1500),
                          st.integers(-40_000, 40_000)), min_size=1, max_size=30))
def test_property_no_account_left_below_maintenance_and_conservation(config, steps) -> None:
    """Random trades and large mark moves (up to +-6.7 %): after every command the engine's invariant
    check asserts conservation to the atom, OI balance, a non-negative insurance fund, and that every
    account below maintenance is being liquidated (a liquidation event was emitted and it is queued)."""
    engine = Engine(config, check_invariants=True)
    drive = Driver(engine)
    for a in (1, 2, 3, 4):
        drive(CreateAccount(a, a))
        drive(Deposit(a, 2_000_000_000 if a < 4 else 10**12))
    drive(DepositInsuranceFund(10**9))
    mark = P
    liquidation_events: set[int] = set()
    for i, (a, side, offset, qty, move) in enumerate(steps, 1):
        events = drive(PlaceOrder(a, 1, i, side, mark + offset, qty))
        mark = max(10_000, mark + move)
        for event in events + drive(SetMarkPrice(1, mark)):
            if isinstance(event, OrderAccepted) and event.client_order_id == 0:  # the engine's liquidation IOC
                liquidation_events.add(event.account_id)
            elif isinstance(event, (PositionLiquidated, InsuranceFundUsed)):
                liquidation_events.add(event.account_id)
        # Whoever is still queued for liquidation has had a liquidation attempt, as an event.
        assert set(engine.risk.queue) <= liquidation_events
    assert engine.insurance_fund_atoms >= 0


# ---------------------------------------------------------------------------------------------------------
# Property: trades, oracle moves and hour-long time jumps (funding settles)
# ---------------------------------------------------------------------------------------------------------

HOUR_NS = 3600 * 10**9
_NAMING = (PositionLiquidated, PositionTakenOver, AutoDeleveraged, InsuranceFundUsed)
_WATERFALL = (PositionTakenOver, AutoDeleveraged, InsuranceFundUsed, SocializedLoss, BadDebtRecorded)
_FUND_MOVERS = (PositionLiquidated, InsuranceFundUsed, PositionTakenOver, AutoDeleveraged, InsuranceFundUnwound,
                BadDebtRecorded, SocializedLoss)


def _ledger(engine: Engine) -> int:
    cash = sum(a.balance_atoms - sum(p.cost_atoms for p in a.positions.values()) for a in engine.accounts.values())
    return cash + engine.fee_pool_atoms + engine.insurance_fund_atoms - engine.risk.bad_debt_atoms


def _check_command(engine: Engine, events: list, deposits: int, fund_before: int) -> None:
    """The properties after one command (the engine's own invariant check ran too)."""
    assert _ledger(engine) == deposits  # conservation to the atom, recomputed here
    for iid in engine.specs:
        sizes = [a.positions[iid].size_lots for a in engine.accounts.values() if iid in a.positions]
        assert sum(s for s in sizes if s > 0) == -sum(s for s in sizes if s < 0) == engine.open_interest_lots[iid]
    named = {e.account_id for e in events if isinstance(e, _NAMING)}
    named |= {e.account_id for e in events if isinstance(e, OrderAccepted) and e.client_order_id == 0}
    iocs = sum(1 for e in events if isinstance(e, OrderAccepted) and e.client_order_id == 0 and e.account_id != FUND)
    cfg = engine.risk.config.liquidation
    for aid, account in engine.accounts.items():
        if aid == FUND:
            continue
        flat = not any(p.size_lots for p in account.positions.values())
        assert not (flat and account.balance_atoms < 0), "a loss left unabsorbed"
        if not account_health(account, engine.specs, engine.marks).liquidatable:
            continue
        assert aid in engine.risk.queue or aid in engine.risk.parked
        if aid in engine.risk.parked:
            assert engine.risk.parked[aid] > engine.now_ns  # parked until its throttle window ends
        elif aid in named or iocs >= cfg.liquidations_per_command_max:
            continue
        # documented carry-over: the per-interval throttle leaves no allowance for a step this command
        allowance = liquidation_allowance_atoms(engine.risk.throttle.get(aid), engine.now_ns, cfg)
        assert plan_liquidation(account, engine.specs, engine.marks, cfg, allowance) is None, aid
    for rate in (e for e in events if isinstance(e, FundingRateSet)):
        paid = [e for e in events if isinstance(e, FundingPaid) and e.instrument_id == rate.instrument_id]
        assert sum(p.amount_atoms for p in paid) + rate.remainder_atoms == 0
        assert 0 <= rate.remainder_atoms <= len(paid)
    if any(isinstance(e, FundingRateSet) for e in events) and not any(isinstance(e, _FUND_MOVERS) for e in events):
        to_fund = sum(e.remainder_atoms for e in events if isinstance(e, FundingRateSet))
        to_fund += sum(e.amount_atoms for e in events if isinstance(e, FundingPaid) and e.account_id == FUND)
        assert engine.insurance_fund_atoms - fund_before == to_fund  # the remainder went to the named account
    touched = {e.account_id for e in events if isinstance(e, _WATERFALL)}
    touched |= {e.counterparty_account_id for e in events if isinstance(e, AutoDeleveraged)}
    touched |= {e.taker_account_id for e in events if isinstance(e, PositionTakenOver)}
    for aid in touched - {FUND}:
        assert engine.accounts[aid].balance_atoms >= 0, "negative balance after the waterfall"
    assert engine.insurance_fund_atoms >= 0 and engine.risk.bad_debt_atoms >= 0


_TRADE = st.tuples(st.just("trade"), st.integers(1, 4), st.integers(1, 3), st.sampled_from([1, -1]),
                  st.integers(-2000, 2000), st.integers(1, 1500))
_MOVE = st.tuples(st.just("oracle"), st.integers(-40_000, 40_000))
_STEP = st.one_of(
    _TRADE, _MOVE, _TRADE, _MOVE,
    st.tuples(st.just("order"), st.integers(1, 4), st.sampled_from([1, -1]), st.integers(-3000, 3000),
              st.integers(1, 1500)),
    st.tuples(st.just("trade"), st.integers(1, 4), st.integers(1, 3), st.sampled_from([1, -1]),
              st.integers(-2000, 2000), st.integers(1, 1500)),
    st.tuples(st.just("quote"), st.sampled_from([1, -1]), st.integers(500, 30_000), st.integers(1, 2000)),
    st.tuples(st.just("oracle"), st.integers(-40_000, 40_000)),
    st.tuples(st.just("hours"), st.integers(1, 3)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fund=st.sampled_from([0, 10**9, 10**11]), steps=st.lists(_STEP, min_size=5, max_size=60))
def test_property_trades_oracle_moves_and_funding_hours(config, fund: int, steps) -> None:
    """Random orders, crossing trades between traders (1-3, 2,000 USDC each) and the LP (4), LP quotes
    away from the mark (liquidity for liquidation and unwind IOCs), SetOraclePrice moves (mark = index)
    of up to +-6.7 % and time jumps of 1-3 h (each settles funding). After every command: conservation to the atom (with the bad-debt account), long OI
    = short OI, every account below maintenance queued and liquidated in that command (or carried over
    by the throttle / the per-command budget), funding payments + remainder = 0 with the remainder to the
    fund, no flat account below zero, no account the waterfall touched below zero. At the end a snapshot
    restores and the journal replays to the same state hash."""
    risk = RiskConfig(mark=MarkConfig(method=MarkMethod.INDEX))
    engine = Engine(config, check_invariants=True, risk=risk)
    drive = Driver(engine)
    deposits = 0
    for a in (1, 2, 3, 4):
        drive(CreateAccount(a, a))
        drive(Deposit(a, 2_000_000_000 if a < 4 else 10**12))
        deposits += 2_000_000_000 if a < 4 else 10**12
    if fund:
        drive(DepositInsuranceFund(fund))
        deposits += fund
    index = P
    drive(SetOraclePrice(1, index, drive.now_ns + 1_000))
    settlements = 0
    for i, step in enumerate(steps, 1):
        fund_before = engine.insurance_fund_atoms
        if step[0] == "order":
            _, a, side, offset, qty = step
            events = drive(PlaceOrder(a, 1, 2 * i, side, max(1, engine.marks[1] + offset), qty))
        elif step[0] == "trade":  # the maker rests, the taker crosses at the same price
            _, maker, taker, side, offset, qty = step
            price = max(1, engine.marks[1] + offset)
            _check_command(engine, drive(PlaceOrder(maker, 1, 2 * i, side, price, qty)), deposits, fund_before)
            fund_before = engine.insurance_fund_atoms
            events = drive(PlaceOrder(taker, 1, 2 * i + 1, -side, price, qty))
        elif step[0] == "quote":
            _, side, away, qty = step
            events = drive(PlaceOrder(4, 1, 2 * i, side, max(1, engine.marks[1] - side * away), qty))
        elif step[0] == "oracle":
            index = max(10_000, index + step[1])
            events = drive(SetOraclePrice(1, index, drive.now_ns + 1_000))
        else:
            events = drive(Heartbeat(), at_ns=drive.now_ns + step[1] * HOUR_NS)
            assert sum(1 for e in events if isinstance(e, FundingRateSet)) == 1  # the hour settled
        settlements += sum(1 for e in events if isinstance(e, FundingRateSet))
        assert not any(isinstance(e, (Deposited, InsuranceFundDeposited)) for e in events)
        _check_command(engine, events, deposits, fund_before)
    # one settlement per command at most; a late command catches up one interval each
    assert sum(1 for s in steps if s[0] == "hours") <= settlements <= sum(s[1] for s in steps if s[0] == "hours")
    assert_restore_and_replay_match(config, engine, drive.log, risk)
    # The double-entry ledger rebuilt from the events alone (fund takeovers and ADL included) equals
    # every balance of the engine.
    replayed, ledger = Engine(config, risk=risk), Ledger(config)
    for item in drive.log:
        ledger.fold(item.seq, replayed.apply(item))
    assert ledger.mismatches(engine) == [] and ledger.anomalies == []
