"""Hand-worked matching scenarios on the default venue (BTC-USD-PERP: tick 0.1, lot 0.001 BTC,
k = 100 atoms per tick-lot, maker -100 ppm rebate, taker 500 ppm fee).

Each test states its numbers; the engine runs with the full invariant check after every command.
"""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest

from bastion.core.commands import (
    STP,
    AmendOrder,
    CancelAll,
    CancelOrder,
    CreateAccount,
    Deposit,
    Heartbeat,
    OrderType,
    PlaceOrder,
    TimeInForce,
)
from bastion.core.engine import Engine
from bastion.core.events import (
    CommandRejected,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderReduced,
    TradeExecuted,
)
from bastion.core.instruments import venue_config_from_dict
from bastion.core.rejects import CancelReason, RejectCode
from tests.conftest import Driver

BUY, SELL = 1, -1
P = 600_000  # 60,000.0 in ticks


def funded(drive: Driver, *accounts: int, atoms: int = 10**12) -> None:
    for a in accounts:
        drive(CreateAccount(a, a))
        drive(Deposit(a, atoms))


def size(engine: Engine, account_id: int, instrument_id: int = 1) -> int:
    pos = engine.accounts[account_id].positions.get(instrument_id)
    return 0 if pos is None else pos.size_lots


def trades(events: list) -> list[TradeExecuted]:
    return [e for e in events if isinstance(e, TradeExecuted)]


def of(events: list, kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def limit(a: int, cid: int, side: int, price: int, qty: int, **kw) -> PlaceOrder:
    return PlaceOrder(a, 1, cid, side, price, qty, **kw)


def test_fill_amounts_fees_and_rebate(drive: Driver, engine: Engine) -> None:
    """1 BTC at 60,000.0: notional 6e10 atoms (60,000 USDC); taker pays 500 ppm = 3e7 atoms,
    maker earns 100 ppm = 6e6 atoms; the fee pool keeps 2.4e7."""
    funded(drive, 1, 2)
    drive(limit(1, 1, SELL, P, 1000))
    ev = drive(limit(2, 1, BUY, P, 1000))
    (t,) = trades(ev)
    assert (t.price_ticks, t.qty_lots, t.taker_fee_atoms, t.maker_fee_atoms) == (P, 1000, 30_000_000, -6_000_000)
    assert engine.fee_pool_atoms == 24_000_000
    assert engine.accounts[2].positions[1].size_lots == 1000
    assert engine.accounts[2].positions[1].cost_atoms == 60_000_000_000
    assert engine.accounts[1].positions[1].size_lots == -1000
    assert engine.open_interest_lots[1] == 1000


def test_price_then_time_priority(drive: Driver) -> None:
    funded(drive, 1, 2, 3, 4)
    drive(limit(1, 1, SELL, P + 10, 5))   # order 1: worse price
    drive(limit(2, 1, SELL, P, 5))        # order 2: best price, first in time
    drive(limit(3, 1, SELL, P, 5))        # order 3: best price, second in time
    ev = drive(limit(4, 1, BUY, P + 10, 12))
    assert [(t.maker_order_id, t.price_ticks, t.qty_lots) for t in trades(ev)] == [
        (2, P, 5), (3, P, 5), (1, P + 10, 2)
    ]


def test_gtc_remainder_rests_and_ioc_remainder_is_canceled(drive: Driver, engine: Engine) -> None:
    funded(drive, 1, 2)
    drive(limit(1, 1, SELL, P, 3))
    ev = drive(limit(2, 1, BUY, P, 5))
    assert trades(ev)[0].qty_lots == 3 and engine.books[1].best_bid() == P
    drive(limit(1, 2, SELL, P + 1, 3))
    ev = drive(limit(2, 2, BUY, P + 1, 10, time_in_force=TimeInForce.IOC))
    assert trades(ev)[0].qty_lots == 3
    (c,) = of(ev, OrderCanceled)
    assert (c.reason, c.qty_lots) == (CancelReason.ioc_remainder, 7)


def test_fok_is_all_or_nothing(drive: Driver, engine: Engine) -> None:
    funded(drive, 1, 2)
    drive(limit(1, 1, SELL, P, 3))
    drive(limit(1, 2, SELL, P + 5, 3))
    before = engine.state_hash()
    ev = drive(limit(2, 1, BUY, P + 5, 7, time_in_force=TimeInForce.FOK))
    assert ev == [CommandRejected("place_order", 2, 1, RejectCode.fok_not_fillable)]
    assert engine.state_hash() == before
    ev = drive(limit(2, 2, BUY, P + 5, 6, time_in_force=TimeInForce.FOK))
    assert sum(t.qty_lots for t in trades(ev)) == 6 and len(engine.books[1]) == 0


def test_gtd_expires_by_engine_time(drive: Driver, engine: Engine) -> None:
    funded(drive, 1, 2)
    t0 = drive.now_ns
    drive(limit(1, 1, SELL, P, 3, time_in_force=TimeInForce.GTD, expire_at_ns=t0 + 10_000))
    drive(Heartbeat(), at_ns=t0 + 9_999)
    assert len(engine.books[1]) == 1
    ev = drive(Heartbeat(), at_ns=t0 + 10_000)
    assert of(ev, OrderCanceled)[0].reason == CancelReason.expired and len(engine.books[1]) == 0


def test_expired_maker_never_trades(config) -> None:
    """With expiries_per_command_max = 1 two orders expire at once; the one the sweep did not reach is
    skipped (and removed) by matching instead of trading."""
    raw = tomllib.loads((resources.files("bastion") / "configs" / "default.toml").read_text())
    raw["limits"]["expiries_per_command_max"] = 1
    engine = Engine(venue_config_from_dict(raw), check_invariants=True)
    drive = Driver(engine)
    funded(drive, 1, 2, 3)
    t0 = drive.now_ns
    drive(limit(1, 1, SELL, P, 3, time_in_force=TimeInForce.GTD, expire_at_ns=t0 + 5_000))
    drive(limit(3, 1, SELL, P, 3, time_in_force=TimeInForce.GTD, expire_at_ns=t0 + 5_000))
    drive(limit(3, 2, SELL, P + 1, 3))
    ev = drive(limit(2, 1, BUY, P + 1, 3), at_ns=t0 + 6_000)
    cancels = of(ev, OrderCanceled)
    assert [c.reason for c in cancels] == [CancelReason.expired, CancelReason.expired]
    assert [(t.maker_order_id, t.price_ticks) for t in trades(ev)] == [(3, P + 1)]


def test_post_only_rejected_when_it_would_take(drive: Driver, engine: Engine) -> None:
    funded(drive, 1, 2)
    drive(limit(1, 1, SELL, P, 3))
    ev = drive(limit(2, 1, BUY, P, 1, post_only=True))
    assert ev[0].code == RejectCode.post_only_would_take
    ev = drive(limit(2, 2, BUY, P - 1, 1, post_only=True))
    assert isinstance(ev[0], OrderAccepted) and engine.books[1].best_bid() == P - 1


def test_market_order_is_bounded_by_protection_price(drive: Driver) -> None:
    """Protection 5 %: best ask 60,000.0 -> limit 63,000.0; the ask at 64,000.0 is never reached."""
    funded(drive, 1, 2)
    ev = drive(PlaceOrder(2, 1, 1, BUY, 0, 1, order_type=OrderType.MARKET))
    assert ev[0].code == RejectCode.market_no_liquidity
    drive(limit(1, 1, SELL, P, 2))
    drive(limit(1, 2, SELL, 640_000, 2))
    ev = drive(PlaceOrder(2, 1, 2, BUY, 0, 4, order_type=OrderType.MARKET))
    assert ev[0].price_ticks == 630_000
    assert [t.price_ticks for t in trades(ev)] == [P]
    assert of(ev, OrderCanceled)[0].qty_lots == 2


def test_reduce_only_is_resized_and_canceled(drive: Driver, engine: Engine) -> None:
    funded(drive, 1, 2, 3)
    ev = drive(limit(2, 1, SELL, P, 5, reduce_only=True))
    assert ev[0].code == RejectCode.reduce_only_would_increase
    drive(limit(1, 1, SELL, P, 5))
    drive(limit(2, 2, BUY, P, 5))                                   # account 2 long 5
    ev = drive(limit(2, 3, SELL, P + 100, 10, reduce_only=True))   # resized to 5
    assert ev[0].qty_lots == 5
    drive(limit(3, 1, BUY, P - 100, 5))
    ev = drive(limit(2, 4, SELL, P - 100, 5))                       # closes the position by a plain order
    assert size(engine, 2) == 0
    (c,) = [e for e in of(ev, OrderCanceled) if e.reason == CancelReason.reduce_only_resized]
    assert c.qty_lots == 5 and len(engine.books[1]) == 0


def test_reduce_only_maker_is_capped_by_live_position(drive: Driver, engine: Engine) -> None:
    """Account 2 (long 5) rests a plain sell of 5 then a reduce-only sell of 5 at the same price. A buy
    of 10 fills the plain sell, which closes the position; the reduce-only order must not open a short."""
    funded(drive, 1, 2, 3)
    drive(limit(1, 1, SELL, P, 5))
    drive(limit(2, 1, BUY, P, 5))
    drive(limit(2, 2, SELL, P + 10, 5))
    drive(limit(2, 3, SELL, P + 10, 5, reduce_only=True))
    ev = drive(limit(3, 1, BUY, P + 10, 10))
    assert sum(t.qty_lots for t in trades(ev)) == 5
    assert size(engine, 2) == 0
    assert any(c.reason == CancelReason.reduce_only_resized for c in of(ev, OrderCanceled))


@pytest.mark.parametrize(
    ("mode", "traded", "maker_left", "taker_rests"),
    [
        (STP.EXPIRE_MAKER, 2, 0, 2),   # own maker removed, trades 2 with account 3, rests 2
        (STP.EXPIRE_TAKER, 0, 5, 0),   # taker stops at its own order
        (STP.EXPIRE_BOTH, 0, 0, 0),    # both go
        (STP.DECREMENT, 0, 1, 0),      # both shrink by 4: maker 5 -> 1, taker 4 -> 0
    ],
)
def test_self_trade_prevention_modes(drive: Driver, engine: Engine, mode, traded, maker_left, taker_rests) -> None:
    funded(drive, 1, 3)
    drive(limit(1, 1, SELL, P, 5))          # own resting order, first in line
    drive(limit(3, 1, SELL, P, 2))          # somebody else's, behind it
    ev = drive(limit(1, 2, BUY, P, 4, stp=mode))
    assert sum(t.qty_lots for t in trades(ev)) == traded
    own = engine.orders.get(1)
    assert (own.qty_lots if own else 0) == maker_left
    assert all(t.maker_account_id != t.taker_account_id for t in trades(ev))
    if mode == STP.DECREMENT:
        assert of(ev, OrderReduced)[0].reason == CancelReason.stp_decrement
    bids, _ = engine.books[1].depth(5)
    assert bids == ([(P, taker_rests)] if taker_rests else [])


def test_amend_priority_rules(drive: Driver, engine: Engine) -> None:
    funded(drive, 1, 2, 3)
    drive(limit(1, 1, SELL, P, 5))   # order 1
    drive(limit(2, 1, SELL, P, 5))   # order 2
    ev = drive(AmendOrder(1, 1, P, 4))                     # size down: keeps priority
    assert ev == [OrderAmended(1, 1, P, 4, True)]
    ev = drive(limit(3, 1, BUY, P, 1))
    assert trades(ev)[0].maker_order_id == 1
    drive(AmendOrder(1, 1, P, 6))                          # size up: loses priority
    ev = drive(limit(3, 2, BUY, P, 1))
    assert trades(ev)[0].maker_order_id == 2
    ev = drive(AmendOrder(2, 2, P, 4))
    assert ev[0].code == RejectCode.amend_no_change
    drive(limit(3, 3, BUY, P - 5, 3))
    ev = drive(AmendOrder(3, 5, P, 3))                     # price change crosses: matches, never crossed
    assert sum(t.qty_lots for t in trades(ev)) == 3
    bid, ask = engine.books[1].best_bid(), engine.books[1].best_ask()
    assert bid is None or ask is None or bid < ask


def test_cancel_and_cancel_all(drive: Driver, engine: Engine) -> None:
    funded(drive, 1)
    for cid in range(1, 4):
        drive(limit(1, cid, SELL, P + cid, 1))
    drive(PlaceOrder(1, 2, 9, SELL, 300_000, 1))
    ev = drive(CancelOrder(1, client_order_id=2))
    assert of(ev, OrderCanceled)[0].order_id == 2
    ev = drive(CancelOrder(1, order_id=2))
    assert ev[0].code == RejectCode.order_unknown
    ev = drive(CancelAll(1, 1))
    assert len(of(ev, OrderCanceled)) == 2 and len(engine.books[1]) == 0 and len(engine.books[2]) == 1
    ev = drive(CancelAll(1, 0))
    assert len(of(ev, OrderCanceled)) == 1


def test_client_order_id_is_idempotent(drive: Driver, engine: Engine) -> None:
    funded(drive, 1, 2)
    drive(limit(1, 7, SELL, P, 1))
    before = engine.state_hash()
    ev = drive(limit(1, 7, SELL, P + 1, 1))                 # live duplicate
    assert ev[0].code == RejectCode.client_order_id_duplicate and engine.state_hash() == before
    drive(limit(2, 7, BUY, P, 1))                           # other account may use 7; fills order 1
    ev = drive(limit(1, 7, SELL, P, 1))                     # filled, still remembered
    assert ev[0].code == RejectCode.client_order_id_duplicate


def small_limits_engine(**limits: int) -> tuple[Engine, Driver]:
    raw = tomllib.loads((resources.files("bastion") / "configs" / "default.toml").read_text())
    raw["limits"].update(limits)
    engine = Engine(venue_config_from_dict(raw), check_invariants=True)
    return engine, Driver(engine)


def test_levels_walked_max() -> None:
    engine, drive = small_limits_engine(levels_walked_max=2)
    funded(drive, 1, 2)
    for i in range(3):
        drive(limit(1, i + 1, SELL, P + i, 1))
    ev = drive(limit(2, 1, BUY, P + 2, 3))
    assert len(trades(ev)) == 2
    assert of(ev, OrderCanceled)[0].reason == CancelReason.levels_walked_max
    assert engine.books[1].best_ask() == P + 2 and engine.books[1].best_bid() is None


def test_fills_per_command_max() -> None:
    engine, drive = small_limits_engine(fills_per_command_max=3)
    funded(drive, 1, 2)
    for i in range(5):
        drive(limit(1, i + 1, SELL, P, 1))
    ev = drive(limit(2, 1, BUY, P, 5))
    assert len(trades(ev)) == 3
    assert of(ev, OrderCanceled)[0].reason == CancelReason.fills_per_command_max


def test_orders_open_max() -> None:
    engine, drive = small_limits_engine(orders_open_max=2)
    funded(drive, 1)
    drive(limit(1, 1, SELL, P, 1))
    drive(limit(1, 2, SELL, P, 1))
    before = engine.state_hash()
    ev = drive(limit(1, 3, SELL, P, 1))
    assert ev[0].code == RejectCode.orders_open_max_reached and engine.state_hash() == before
