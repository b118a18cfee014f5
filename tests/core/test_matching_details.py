"""Matching details found by the audit, each on the fast book and on the reference book:

* FOK with STP decrement: its own resting orders are consumed by the decrement (no trade), so they count
  toward filling the FOK instead of blocking it;
* an amend of a reduce-only order whose clamp leaves the size unchanged changes nothing (no re-entry, no
  lost priority);
* the reduce-only clamp never leaves an order below ``min_order_lots`` (refused at entry, canceled on a
  resize);
* GTD orders that expired but were not swept yet (beyond ``expiries_per_command_max``) set neither the
  post-only check nor the market protection price.

Default venue BTC-USD-PERP (tick 0.1, lot 0.001, 5 % market protection) unless a test changes a limit.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

import pytest

from bastion.core.book.fast import FastBook
from bastion.core.book.reference import ReferenceBook
from bastion.core.commands import STP, AmendOrder, CreateAccount, Deposit, OrderType, PlaceOrder, TimeInForce
from bastion.core.engine import Engine
from bastion.core.events import CommandRejected, OrderAccepted, OrderAmended, OrderCanceled, OrderReduced, TradeExecuted
from bastion.core.instruments import VenueConfig, venue_config_from_dict
from bastion.core.rejects import CancelReason
from bastion.core.rejects import RejectCode as R
from tests.conftest import Driver

BUY, SELL = 1, -1
P = 600_000
BOOKS = pytest.mark.parametrize("book", [FastBook, ReferenceBook], ids=["fast", "reference"])


def _config(limits: dict[str, int] | None = None, min_order_lots: int | None = None) -> VenueConfig:
    raw: dict[str, Any] = tomllib.loads((resources.files("bastion") / "configs" / "default.toml").read_text())
    raw["limits"].update(limits or {})
    if min_order_lots is not None:
        raw["instrument"][0]["min_order_lots"] = min_order_lots
    return venue_config_from_dict(raw)


def _venue(book: Any, config: VenueConfig | None = None, accounts: int = 3) -> tuple[Engine, Driver]:
    engine = Engine(config or _config(), book, check_invariants=True)
    drive = Driver(engine)
    for a in range(1, accounts + 1):
        drive(CreateAccount(a, a))
        drive(Deposit(a, 10**12))
    return engine, drive


def _trades(events: list) -> list[TradeExecuted]:
    return [e for e in events if isinstance(e, TradeExecuted)]


# ---- FOK + STP decrement


@BOOKS
def test_fok_with_decrement_counts_its_own_orders_as_consumed(book: Any) -> None:
    """Own ask 2 @ P first in line, account 3's ask 5 @ P behind it. An FOK buy of 6 with DECREMENT:
    2 lots are decremented against the own ask (no trade), 4 trade with account 3: whole, so accepted.
    An FOK buy of 8 could use up only 2 + 5 = 7: refused."""
    engine, drive = _venue(book)
    drive(PlaceOrder(1, 1, 1, SELL, P, 2))
    drive(PlaceOrder(3, 1, 1, SELL, P, 5))
    before = engine.state_hash()
    ev = drive(PlaceOrder(1, 1, 2, BUY, P, 8, time_in_force=TimeInForce.FOK, stp=STP.DECREMENT))
    assert ev == [CommandRejected("place_order", 1, 2, R.fok_not_fillable)] and engine.state_hash() == before
    ev = drive(PlaceOrder(1, 1, 3, BUY, P, 6, time_in_force=TimeInForce.FOK, stp=STP.DECREMENT))
    assert isinstance(ev[0], OrderAccepted)
    assert [e for e in ev if isinstance(e, OrderReduced)] == [OrderReduced(1, 1, CancelReason.stp_decrement, 0)]
    assert [(t.maker_account_id, t.qty_lots) for t in _trades(ev)] == [(3, 4)]
    assert engine.books[1].depth(5) == ([], [(P, 1)])


@BOOKS
@pytest.mark.parametrize("mode", [STP.EXPIRE_TAKER, STP.EXPIRE_BOTH])
def test_fok_with_expire_taker_or_both_is_still_blocked_by_its_own_order(book: Any, mode: int) -> None:
    engine, drive = _venue(book)
    drive(PlaceOrder(1, 1, 1, SELL, P, 2))
    drive(PlaceOrder(3, 1, 1, SELL, P, 5))
    ev = drive(PlaceOrder(1, 1, 2, BUY, P, 3, time_in_force=TimeInForce.FOK, stp=mode))
    assert ev == [CommandRejected("place_order", 1, 2, R.fok_not_fillable)]


# ---- reduce-only amend that the clamp turns into no change


def _long(drive: Driver, account: int, lots: int, cid: int = 50) -> None:
    """``account`` buys ``lots`` at P from account 3's ask."""
    drive(PlaceOrder(3, 1, cid, SELL, P, lots))
    drive(PlaceOrder(account, 1, cid, BUY, P, lots))


@BOOKS
def test_reduce_only_amend_clamped_to_its_own_size_keeps_priority(book: Any) -> None:
    """Account 2 long 5 rests a reduce-only ask of 5 @ P+10 (order 3), then account 1 an ask @ P+10
    (order 4). Amending order 3 up to 8 lots clamps back to 5: nothing changes, it stays first in line."""
    engine, drive = _venue(book)
    _long(drive, 2, 5)
    drive(PlaceOrder(2, 1, 1, SELL, P + 10, 5, reduce_only=True))
    drive(PlaceOrder(1, 1, 1, SELL, P + 10, 5))
    before = engine.state_hash()
    ev = drive(AmendOrder(2, 3, P + 10, 8))
    assert ev == [CommandRejected("amend_order", 2, 0, R.amend_no_change)] and engine.state_hash() == before
    ev = drive(PlaceOrder(3, 1, 2, BUY, P + 10, 1))
    assert [t.maker_order_id for t in _trades(ev)] == [3]


# ---- reduce-only clamp and min_order_lots (min 5 lots on instrument 1)


@BOOKS
def test_reduce_only_entry_clamped_below_min_lots_is_refused(book: Any) -> None:
    """Long 8 then sell 5 -> long 3: a reduce-only ask of 5 would be clamped to 3 < min 5: refused."""
    engine, drive = _venue(book, _config(min_order_lots=5))
    _long(drive, 2, 8)
    drive(PlaceOrder(1, 1, 1, BUY, P - 10, 5))
    drive(PlaceOrder(2, 1, 1, SELL, P - 10, 5))
    assert engine.accounts[2].positions[1].size_lots == 3
    before = engine.state_hash()
    ev = drive(PlaceOrder(2, 1, 2, SELL, P + 100, 5, reduce_only=True))
    assert ev == [CommandRejected("place_order", 2, 2, R.reduce_only_room_below_min_lots)]
    assert engine.state_hash() == before


@BOOKS
def test_reduce_only_resize_below_min_lots_cancels(book: Any) -> None:
    """Long 8 with a reduce-only ask of 8 (order 3); selling 5 by a plain order leaves long 3: shrinking
    order 3 to 3 lots would put it below min 5, so it is canceled instead."""
    engine, drive = _venue(book, _config(min_order_lots=5))
    _long(drive, 2, 8)
    drive(PlaceOrder(2, 1, 1, SELL, P + 100, 8, reduce_only=True))
    drive(PlaceOrder(1, 1, 1, BUY, P - 10, 5))
    ev = drive(PlaceOrder(2, 1, 2, SELL, P - 10, 5))
    assert OrderCanceled(3, 2, CancelReason.reduce_only_resized, 8) in ev
    assert not [e for e in ev if isinstance(e, OrderReduced)]
    assert 3 not in engine.orders


@BOOKS
def test_reduce_only_amend_clamped_below_min_lots_is_refused(book: Any) -> None:
    """Long 10 with reduce-only asks A (5 @ P+100, order 3) and B (5 @ P+100, order 4). A buy of 8
    fills A and 3 of B: long 2, B keeps a 2-lot remainder. Moving B to P+90 with 5 lots would clamp to
    the 2 lots of room, below min 5: refused (B keeps its place)."""
    engine, drive = _venue(book, _config(min_order_lots=5))
    _long(drive, 2, 10)
    drive(PlaceOrder(2, 1, 1, SELL, P + 100, 5, reduce_only=True))
    drive(PlaceOrder(2, 1, 2, SELL, P + 100, 5, reduce_only=True))
    drive(PlaceOrder(1, 1, 1, BUY, P + 100, 8))
    assert engine.accounts[2].positions[1].size_lots == 2 and engine.orders[4].qty_lots == 2
    before = engine.state_hash()
    ev = drive(AmendOrder(2, 4, P + 90, 5))
    assert ev == [CommandRejected("amend_order", 2, 0, R.reduce_only_room_below_min_lots)]
    assert engine.state_hash() == before


# ---- expired, not yet swept GTD orders


def _expired_top(book: Any) -> tuple[Engine, Driver, int]:
    """expiries_per_command_max = 1: two GTD asks @ P expire at t0 + 5 µs; at t0 + 6 µs the sweep takes
    one, the other still rests, expired, at the top of the asks. Returns (engine, driver, t0)."""
    engine, drive = _venue(book, _config(limits={"expiries_per_command_max": 1}))
    t0 = drive.now_ns
    drive(PlaceOrder(1, 1, 1, SELL, P, 3, time_in_force=TimeInForce.GTD, expire_at_ns=t0 + 5_000))
    drive(PlaceOrder(3, 1, 1, SELL, P, 3, time_in_force=TimeInForce.GTD, expire_at_ns=t0 + 5_000))
    drive(PlaceOrder(3, 1, 2, SELL, 610_000, 3))
    return engine, drive, t0


@BOOKS
def test_expired_unswept_order_does_not_block_a_post_only(book: Any) -> None:
    """A post-only bid @ P+5 crosses only the expired ask @ P (which can never trade): accepted, and it
    rests below the live ask @ 61,000.0 without trading."""
    engine, drive, t0 = _expired_top(book)
    ev = drive(PlaceOrder(2, 1, 1, BUY, P + 5, 1, post_only=True), at_ns=t0 + 6_000)
    assert any(isinstance(e, OrderAccepted) for e in ev) and not _trades(ev)
    assert engine.books[1].best_bid() == P + 5 and engine.books[1].best_ask() == 610_000


@BOOKS
def test_expired_unswept_order_does_not_set_the_protection_price(book: Any) -> None:
    """A market buy: the best live ask is 61,000.0, so the protection limit is 61,000.0 * 1.05 = 64,050.0
    (640,500 ticks), not 63,000.0 from the expired ask @ 60,000.0."""
    engine, drive, t0 = _expired_top(book)
    ev = drive(PlaceOrder(2, 1, 1, BUY, 0, 2, order_type=OrderType.MARKET), at_ns=t0 + 6_000)
    (accepted,) = [e for e in ev if isinstance(e, OrderAccepted)]
    assert accepted.price_ticks == 640_500
    assert [(t.price_ticks, t.qty_lots) for t in _trades(ev)] == [(610_000, 2)]
