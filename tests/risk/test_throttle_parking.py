"""Throttled liquidations are parked until their window ends, and never forgotten.

Default venue (BTC-USD-PERP: tick 0.1, lot 0.001 BTC, k = 100 atoms per tick-lot, maintenance 0.5 %
minus a 50 USDC deduction between 50,000 and 600,000 notional) with the per-interval liquidation cap
lowered to 20,000 USDC (dYdX v4 caps a subaccount at $100,000 per block; the lower figure makes the cap
bind on a 5 BTC position). TRADER buys 5 BTC at 60,000.0 from the LP with 4,000 USDC (3,850 after the
150 USDC taker fee); at a mark of 59,500.0 its equity is 3,850 - 2,500 = 1,350 USDC against a
maintenance margin of 297,500 * 0.5 % - 50 = 1,437.5 USDC. The LP bids 59,490.0 for 50 BTC, so each
liquidation IOC fills, but the cap stops the first step at 336 lots (20,000 / 59.5 USDC a lot); the
account stays below maintenance with less than one lot's worth of allowance left: throttled.
"""

from __future__ import annotations

from collections import Counter

import pytest

from bastion.core.book.fast import FastBook
from bastion.core.book.reference import ReferenceBook
from bastion.core.commands import (
    CreateAccount,
    Deposit,
    DepositInsuranceFund,
    Heartbeat,
    PlaceOrder,
    Sequenced,
    SetMarkPrice,
)
from bastion.core.engine import Engine
from bastion.core.events import CommandRejected, OrderAccepted
from bastion.core.rejects import RejectCode
from bastion.core.risk import LiquidationConfig, account_health, liquidation_allowance_atoms, plan_liquidation
from bastion.core.risk_engine import RiskConfig
from bastion.core.risk_messages import PositionLiquidated, PositionTakenOver
from tests.conftest import Driver
from tests.risk._helpers import assert_restore_and_replay_match

LP, TRADER = 1, 2
USDC = 10**6
CAP = LiquidationConfig(max_notional_per_interval_atoms=20_000 * USDC)
RISK = RiskConfig(liquidation=CAP)
SECOND = 10**9


def _venue(config, traders: tuple[int, ...] = (TRADER,), risk: RiskConfig = RISK) -> tuple[Engine, Driver]:
    engine = Engine(config, check_invariants=True, risk=risk)
    drive = Driver(engine)
    drive(CreateAccount(LP, LP))
    drive(Deposit(LP, 10**13))
    drive(DepositInsuranceFund(10**12))
    for n, aid in enumerate(traders):
        drive(CreateAccount(aid, aid))
        drive(Deposit(aid, 4_000 * USDC + n * 40 * USDC))
        drive(PlaceOrder(LP, 1, 100 + aid, -1, 600_000, 5_000))
        drive(PlaceOrder(aid, 1, 1, 1, 600_000, 5_000))
    drive(PlaceOrder(LP, 1, 1, 1, 594_900, 50_000))
    return engine, drive


def _iocs(events: list, account_id: int) -> int:
    return sum(1 for e in events if isinstance(e, OrderAccepted) and e.client_order_id == 0
               and e.account_id == account_id)


def _park_trader(config) -> tuple[Engine, Driver, int]:
    engine, drive = _venue(config)
    events = drive(SetMarkPrice(1, 595_000))
    assert _iocs(events, TRADER) == 1
    sold = sum(e.qty_lots for e in events if isinstance(e, PositionLiquidated))
    assert sold == 20_000 * USDC // (595_000 * 100)  # the cap: 336 lots
    started = drive.now_ns
    assert TRADER in engine.risk.queue  # still below maintenance
    events = drive(Heartbeat())  # the next command finds the allowance spent: parked
    assert _iocs(events, TRADER) == 0
    assert engine.risk.parked == {TRADER: started + SECOND} and not engine.risk.queue
    assert engine.risk.next_wake_ns == started + SECOND
    account = engine.accounts[TRADER]
    assert account_health(account, engine.specs, engine.marks).liquidatable
    allowance = liquidation_allowance_atoms(engine.risk.throttle[TRADER], drive.now_ns, CAP)
    assert 0 <= allowance < 595_000 * 100  # less than one lot
    assert plan_liquidation(account, engine.specs, engine.marks, CAP, allowance) is None
    return engine, drive, started + SECOND


def test_a_throttled_account_is_parked_and_wakes_when_its_window_ends(config) -> None:
    """While parked the queue is empty (no per-command re-check); the first command at the window's end
    sends the next capped step."""
    engine, drive, wake_ns = _park_trader(config)
    for _ in range(5):
        assert _iocs(drive(Heartbeat()), TRADER) == 0
        assert not engine.risk.queue and TRADER in engine.risk.parked
    assert _iocs(drive(Heartbeat(), at_ns=wake_ns - 1), TRADER) == 0
    events = drive(Heartbeat(), at_ns=wake_ns)
    assert _iocs(events, TRADER) == 1
    assert sum(e.qty_lots for e in events if isinstance(e, PositionLiquidated)) == 336
    assert TRADER not in engine.risk.parked


def test_a_parked_account_may_only_reduce_risk(config) -> None:
    engine, drive, _ = _park_trader(config)
    events = drive(PlaceOrder(TRADER, 1, 7, 1, 590_000, 10))
    assert [e.code for e in events if isinstance(e, CommandRejected)] == [RejectCode.account_in_liquidation]


def test_a_price_move_to_bankruptcy_wakes_a_parked_account(config) -> None:
    """Bankrupt accounts are never throttled: a crash below the bankruptcy price (no bids left that
    far down) wakes it in the same command and the waterfall (the fund) takes the position."""
    engine, drive, _ = _park_trader(config)
    drive(PlaceOrder(LP, 1, 2, -1, 594_900, 50_000))  # self-trade prevention expires the LP's bid
    assert engine.books[1].best_bid() is None
    events = drive(SetMarkPrice(1, 560_000))
    assert _iocs(events, TRADER) == 1  # the whole position, unthrottled; nothing bids for it
    taken = [e for e in events if isinstance(e, PositionTakenOver)]
    assert [(e.account_id, e.taker_account_id, e.qty_lots) for e in taken] == [(TRADER, 0, 5_000 - 336)]
    assert TRADER not in engine.risk.parked
    assert not any(p.size_lots for p in engine.accounts[TRADER].positions.values())


def test_a_small_move_leaves_it_parked_and_a_change_of_the_account_rechecks_it(config) -> None:
    engine, drive, wake_ns = _park_trader(config)
    assert _iocs(drive(SetMarkPrice(1, 594_000)), TRADER) == 0  # deeper, but neither bankrupt nor a lot affordable
    assert engine.risk.parked == {TRADER: wake_ns}
    drive(Deposit(TRADER, 10 * USDC))  # touched: unparked, re-checked, still throttled: parked again
    assert engine.risk.parked == {TRADER: wake_ns} and not engine.risk.queue
    drive(Deposit(TRADER, 5_000 * USDC))  # now healthy: neither parked nor queued
    assert not engine.risk.parked and not engine.risk.queue
    assert not account_health(engine.accounts[TRADER], engine.specs, engine.marks).liquidatable
    drive(Heartbeat(), at_ns=wake_ns + 1)
    assert not engine.risk.queue


def test_a_lot_becoming_affordable_wakes_it() -> None:
    """The wake entries also fire when the mark falls so far that the left-over allowance buys a lot
    (index level: no venue would reach that without bankruptcy, so the entry is checked directly)."""
    from bastion.core.risk import LiquidationIndex
    from tests.risk._helpers import make_account, make_spec

    spec = make_spec()
    index = LiquidationIndex({1: spec})
    # A short of 1 BTC entered at 60,000 with 50,000 USDC: bankrupt only above 110,000.0.
    account = make_account(5, 50_000 * USDC, {1: (-1_000, -1_000 * 600_000 * 100)})
    assert index.park(account, {1: 600_000}, 40 * USDC)  # 40 USDC buys a lot at or below 4,000.0
    assert index.is_parked(5) and index.fired(1, 600_000) == []
    assert index.fired(1, 400_001) == [] and index.fired(1, 400_000) == [5]
    assert index.fired(1, 1_100_000) == [5] and index.fired(1, 1_099_999) == []
    index.liquidatable(1, 400_000, {5: account}, {1: 400_000})
    assert index.woken == [5]
    assert not index.park(account, {1: 300_000}, 40 * USDC)  # affordable already: not parked


@pytest.mark.parametrize("book", [FastBook, ReferenceBook], ids=["fast", "reference"])
def test_snapshot_mid_backlog_continues_identically(config, book) -> None:
    """Six traders parked with windows ending at different times; snapshot, restore (fast and reference
    book), then the same commands (heartbeats across the window ends, a mark move, a deposit) give the
    same events and state hash, command by command, as the engine that kept running."""
    traders = tuple(range(2, 8))
    engine, drive = _venue(config, traders)
    for mark in (595_000, 594_800, 594_600):  # traders 2-4, then 5-6, then 7 go below maintenance
        drive(SetMarkPrice(1, mark), at_ns=drive.now_ns + 200_000_000)
        drive(Heartbeat())
    assert len(engine.risk.parked) == 6, engine.risk.parked
    assert len(set(engine.risk.parked.values())) >= 2
    restored = Engine.restore(config, engine.snapshot(), book, check_invariants=True, risk=RISK)
    assert restored.state_hash() == engine.state_hash()
    assert restored.risk.parked == engine.risk.parked
    assert restored.risk.next_wake_ns == engine.risk.next_wake_ns
    now = drive.now_ns
    script = [(Heartbeat(), now + 300_000_000), (SetMarkPrice(1, 594_500), now + 500_000_000),
              (Deposit(3, USDC), now + 600_000_000), (Heartbeat(), now + 700_000_000),
              (Heartbeat(), now + 900_000_000), (SetMarkPrice(1, 594_000), now + 1_100_000_000),
              (Heartbeat(), now + 1_500_000_000), (Heartbeat(), now + 2_300_000_000)]
    woke = 0
    for seq, (cmd, at_ns) in enumerate(script, engine.seq + 1):
        item = Sequenced(seq, at_ns, cmd)
        before = len(engine.risk.parked)
        expected = engine.apply(item)
        assert restored.apply(item) == expected
        assert restored.state_hash() == engine.state_hash()
        woke += max(0, before - len(engine.risk.parked))
    assert woke >= 3  # the windows ended inside the script


# ---------------------------------------------------------------------------------------------------------
# Property: a tight throttle (2,000 USDC per 20 µs window) over trades, oracle moves, deposits and waits
# ---------------------------------------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bastion.core.risk.mark import MarkConfig, MarkMethod  # noqa: E402
from bastion.core.risk_messages import SetOraclePrice  # noqa: E402
from tests.risk.test_engine_risk import _check_command  # noqa: E402

TIGHT = RiskConfig(mark=MarkConfig(method=MarkMethod.INDEX),
                   liquidation=LiquidationConfig(max_notional_per_interval_atoms=500 * USDC, interval_ns=20_000,
                                                 min_notional_atoms=100 * USDC,
                                                 liquidations_per_command_max=2))
_STEPS = st.one_of(
    st.tuples(st.just("trade"), st.integers(1, 4), st.integers(1, 3), st.sampled_from([1, -1]),
              st.integers(-2000, 2000), st.integers(1, 3000)),
    st.tuples(st.just("quote"), st.sampled_from([1, -1]), st.integers(0, 6_000), st.integers(1, 4000)),
    st.tuples(st.just("oracle"), st.integers(-30_000, 30_000)),
    st.tuples(st.just("deposit"), st.integers(1, 3), st.integers(1, 500)),
    st.tuples(st.just("wait"), st.integers(1, 40)),
)


def _tight_run(config, steps, split: int, book=ReferenceBook) -> tuple[int, int]:
    """Drive the steps with the per-command checks of the risk property test; at step ``split`` restore a
    copy from a snapshot (``book``) and feed it the same commands, comparing events and hashes. Returns
    (accounts parked, parked accounts woken) over the run."""
    engine = Engine(config, check_invariants=True, risk=TIGHT)
    drive = Driver(engine)
    deposits = 0
    for a in (1, 2, 3, 4):
        drive(CreateAccount(a, a))
        drive(Deposit(a, 2_000 * USDC if a < 4 else 10**12))
        deposits += 2_000 * USDC if a < 4 else 10**12
    drive(DepositInsuranceFund(10**10))
    deposits += 10**10
    drive(PlaceOrder(4, 1, 1, 1, 599_000, 20_000))
    drive(PlaceOrder(4, 1, 2, -1, 601_000, 20_000))
    index = 600_000
    drive(SetOraclePrice(1, index, drive.now_ns + 1_000))
    copy: Engine | None = None
    parks = wakes = 0

    def send(cmd, at_ns: int | None = None) -> list:
        nonlocal parks, wakes
        before = set(engine.risk.parked)
        events = drive(cmd, at_ns=at_ns)
        if copy is not None:
            assert copy.apply(drive.log[-1]) == events
            assert copy.state_hash() == engine.state_hash()
        parks += len(set(engine.risk.parked) - before)
        wakes += len(before - set(engine.risk.parked))
        return events

    for i, step in enumerate(steps, 1):
        if i == split:
            copy = Engine.restore(config, engine.snapshot(), book, check_invariants=True, risk=TIGHT)
        fund_before = engine.insurance_fund_atoms
        if step[0] == "trade":
            _, maker, taker, side, offset, qty = step
            price = max(1, engine.marks[1] + offset)
            _check_command(engine, send(PlaceOrder(maker, 1, 2 * i + 10, side, price, qty)), deposits, fund_before)
            fund_before = engine.insurance_fund_atoms
            events = send(PlaceOrder(taker, 1, 2 * i + 11, -side, price, qty))
        elif step[0] == "quote":
            _, side, away, qty = step
            events = send(PlaceOrder(4, 1, 2 * i + 10, side, max(1, engine.marks[1] - side * away), qty))
        elif step[0] == "oracle":
            index = max(10_000, index + step[1])
            events = send(SetOraclePrice(1, index, drive.now_ns + 1_000))
        elif step[0] == "deposit":
            events = send(Deposit(step[1], step[2] * USDC))
            deposits += step[2] * USDC
        else:
            events = send(Heartbeat(), at_ns=drive.now_ns + step[1] * 1_000)
        _check_command(engine, events, deposits, fund_before)
    assert_restore_and_replay_match(config, engine, drive.log, TIGHT)
    return parks, wakes


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_STEPS, min_size=5, max_size=60), split=st.integers(1, 60),
       book=st.sampled_from([FastBook, ReferenceBook]))
def test_property_no_account_forgotten_under_a_tight_throttle(config, steps, split: int, book) -> None:
    """After every command (the engine's invariant check plus the risk property test's per-command
    checks): every account below maintenance is queued, held by a pause, or parked with its window still
    open and no step possible (``plan_liquidation`` is None with its allowance); conservation to the
    atom. A snapshot taken at a random step, restored on the fast or the reference book, continues with
    the same events and hashes; at the end a restore and a replay of the journal reach the same hash."""
    _tight_run(config, steps, split, book)


def test_a_slow_crash_parks_and_wakes_many_times(config) -> None:
    """Coverage: eight 5-BTC traders (4,000-4,280 USDC) and a seeded slow fall of the mark (0-0.07 % every
    50-400 ms, with deposits now and then) under a 2,000 USDC per second cap: accounts are parked and
    woken (by their window's end, a deposit or the mark) many times; after every command the risk
    property test's checks hold (every account below maintenance queued or parked with no step possible,
    conservation to the atom), and the journal replays to the same hash."""
    import random

    rng = random.Random(11)
    traders = tuple(range(2, 10))
    risk = RiskConfig(liquidation=LiquidationConfig(max_notional_per_interval_atoms=2_000 * USDC))
    engine, drive = _venue(config, traders, risk)
    deposits = 10**13 + 10**12 + sum(4_000 * USDC + n * 40 * USDC for n in range(len(traders)))
    mark = 600_000
    parks = 0
    wakes: Counter[str] = Counter()
    for _ in range(300):
        before = dict(engine.risk.parked)
        fund_before = engine.insurance_fund_atoms
        at_ns = drive.now_ns + rng.randint(50, 400) * 1_000_000
        kind = "heartbeat"
        if rng.random() < 0.15:
            parked = sorted(before)
            who = rng.choice(parked) if parked and rng.random() < 0.7 else rng.choice(traders)
            kind, amount = "deposit", rng.randint(1, 300) * USDC
            wakes["deposit to a parked account"] += who in before
            events = drive(Deposit(who, amount), at_ns=at_ns)
            deposits += amount
        elif rng.random() < 0.5:
            kind = "mark"
            mark -= rng.randint(0, 400)
            events = drive(SetMarkPrice(1, mark), at_ns=at_ns)
        else:
            events = drive(Heartbeat(), at_ns=at_ns)
        _check_command(engine, events, deposits, fund_before)
        parks += len(set(engine.risk.parked) - set(before))
        for aid, wake_ns in before.items():
            if engine.risk.parked.get(aid) != wake_ns:  # woken (and maybe parked again)
                wakes["window" if at_ns >= wake_ns else kind] += 1
    assert parks >= 50 and wakes["window"] >= 50 and wakes["mark"] >= 3, (parks, wakes)
    assert wakes["deposit to a parked account"] >= 2, wakes
    assert_restore_and_replay_match(config, engine, drive.log, risk, restore=False)
