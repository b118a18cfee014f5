"""Trigger orders (stop / take-profit on mark, index and last): thresholds, entry, carry-over, state.

Venue definitions reproduced here:

* Binance USD-M Futures API, "New Order (TRADE)" (POST /fapi/v1/order): STOP / STOP_MARKET trigger
  for a BUY when the latest price >= stopPrice and for a SELL when <= stopPrice; TAKE_PROFIT /
  TAKE_PROFIT_MARKET for a BUY when <= stopPrice and for a SELL when >= stopPrice. The same rule is
  dYdX v4 ``Order.CanTrigger`` (protocol/x/clob/types/order.go).
* Binance error -2021 "Order would immediately trigger": an order already reached is refused (312).
* Binance FAQ "What is a conditional order?" (binance.com/en/support/faq/998e63d2587d4e2fb894b1615de3b288):
  "No margin check when placing conditional orders"; the stop-limit example below.
* Binance FAQ "How to Place Stop Loss Order and Take Profit Order" (binance.com/en/support/faq/360040016512):
  a buy with its trigger below the last price is a take-profit, a sell with its trigger below the mark
  is a stop.
"""

from __future__ import annotations

import dataclasses

import msgspec
import pytest

from bastion.core.book.reference import ReferenceBook
from bastion.core.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    CreateAccount,
    Deposit,
    Heartbeat,
    OrderType,
    PlaceOrder,
    Sequenced,
    SetMarketState,
    SetMatchingMode,
    SetMarkPrice,
    SetOraclePrice,
    TriggerSource,
    decode_sequenced,
    encode_sequenced,
)
from bastion.core.engine import Engine
from bastion.core.events import (
    AuctionCleared,
    AutoDeleveraged,
    CommandRejected,
    MarketStateChanged,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderTriggered,
    PositionLiquidated,
    TradeExecuted,
    TriggerOrderAccepted,
    TriggerOrderAmended,
    TriggerOrderReduced,
    TriggerOrderRejected,
)
from bastion.core.instruments import VenueConfig
from bastion.core.integrity.codes import MatchingMode
from bastion.core.integrity.states import MarketState
from bastion.core.rejects import CancelReason, RejectCode
from bastion.core.triggers import ReferenceTriggerBook, TriggerBook
from tests.conftest import Driver, default_config
from tests.integrity._engine_helpers import GUARDIAN, make_config

P = 600_000  # BTC-USD-PERP at 60,000.0 (tick 0.1, lot 0.001: 100 atoms per tick-lot)
BID, ASK = 590_000, 610_000  # the liquidity account's resting quotes
SM, SL, TM, TL = OrderType.STOP_MARKET, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_MARKET, OrderType.TAKE_PROFIT_LIMIT
MARK, INDEX, LAST = TriggerSource.MARK, TriggerSource.INDEX, TriggerSource.LAST
OWNER, LIQUIDITY, PRINT_SELLER, PRINT_BUYER = 2, 5, 3, 4


def of(events: list, kind: type) -> list:
    return [e for e in events if type(e) is kind]


def with_limits(config: VenueConfig, **limits: int) -> VenueConfig:
    return dataclasses.replace(config, limits=dataclasses.replace(config.limits, **limits))


class Venue:
    """An engine with funded accounts 1-6, a price driver per source and client ids handed out."""

    def __init__(self, config: VenueConfig | None = None, book_factory=None, deposit_atoms: int = 10**12) -> None:
        self.config = config or default_config()
        self.engine = (Engine(self.config, check_invariants=True) if book_factory is None
                       else Engine(self.config, book_factory, check_invariants=True))
        self.drive = Driver(self.engine)
        self.client = 0
        for a in range(1, 7):
            self.drive(CreateAccount(a, a))
            self.drive(Deposit(a, deposit_atoms))

    def cid(self) -> int:
        self.client += 1
        return self.client

    def quotes(self, bid: int = BID, ask: int = ASK, lots: int = 10_000) -> None:
        self.drive(PlaceOrder(LIQUIDITY, 1, self.cid(), 1, bid, lots))
        self.drive(PlaceOrder(LIQUIDITY, 1, self.cid(), -1, ask, lots))

    def trigger(self, side: int, order_type: int, trigger: int, *, source: int = MARK, price: int = 0, qty: int = 1,
                account: int = OWNER, **kw) -> list:
        return self.drive(PlaceOrder(account, 1, self.cid(), side, price, qty, order_type=order_type,
                                     trigger_price_ticks=trigger, trigger_source=source, **kw))

    def set_source(self, source: int, price: int) -> list:
        """Move a trigger source to ``price``: the mark, the oracle index, or a one-lot print (last)."""
        if source == MARK:
            return self.drive(SetMarkPrice(1, price))
        if source == INDEX:
            return self.drive(SetOraclePrice(1, price, self.drive.now_ns + 1_000))
        self.drive(PlaceOrder(PRINT_SELLER, 1, self.cid(), -1, price, 1))
        return self.drive(PlaceOrder(PRINT_BUYER, 1, self.cid(), 1, price, 1))


def accepted_id(events: list) -> int:
    (ev,) = of(events, TriggerOrderAccepted)
    return ev.order_id


# ---------------------------------------------------------------------------------------------- commands


def test_journals_written_before_the_trigger_fields_decode_with_their_defaults() -> None:
    """PlaceOrder / AmendOrder are array-like structs: bytes without the three (one) trailing fields, as
    the journal stored them before trigger orders existed, decode to the defaults and replay the same."""
    old_place = msgspec.msgpack.encode([2, 1_001_000, ["place_order", 1, 1, 7, 1, P, 3, 0, 0, False, False, 0, 0]])
    old_amend = msgspec.msgpack.encode([3, 1_002_000, ["amend_order", 1, 1, P - 10, 2]])
    place = decode_sequenced(old_place).command
    amend = decode_sequenced(old_amend).command
    assert isinstance(place, PlaceOrder) and isinstance(amend, AmendOrder)
    assert (place.trigger_price_ticks, place.trigger_source, place.close_position) == (0, 0, False)
    assert amend.trigger_price_ticks == 0
    assert encode_sequenced(decode_sequenced(old_place)) != old_place  # new encoders write the new fields
    config = default_config()
    runs = []
    for journal in ([old_place, old_amend],
                    [encode_sequenced(decode_sequenced(old_place)), encode_sequenced(decode_sequenced(old_amend))]):
        engine = Engine(config, check_invariants=True)
        engine.apply(Sequenced(1, 1_000_000, CreateAccount(1, 1)))
        engine.apply(Sequenced(2, 1_000_500, Deposit(1, 10**10)))
        events = []
        for i, data in enumerate(journal):
            item = decode_sequenced(data)
            events += engine.apply(Sequenced(3 + i, item.timestamp_ns, item.command))
        assert [type(e) for e in events] == [OrderAccepted, OrderAmended]
        runs.append((events, engine.state_hash()))
    assert runs[0] == runs[1]


# ---------------------------------------------------------------------------------------------- thresholds

# (order_type, side) -> direction of the move that fires it: +1 rising (>=), -1 falling (<=).
CASES = [(SM, 1, 1), (SM, -1, -1), (SL, 1, 1), (SL, -1, -1), (TM, 1, -1), (TM, -1, 1), (TL, 1, -1), (TL, -1, 1)]


@pytest.mark.parametrize("source", [MARK, INDEX, LAST])
@pytest.mark.parametrize("order_type,side,move", CASES)
def test_each_type_fires_exactly_at_its_trigger_and_not_one_tick_before(order_type, side, move, source) -> None:
    """Binance "New Order": STOP* buy >= / sell <=, TAKE_PROFIT* buy <= / sell >= the trigger price.

    The source starts at 600,000 ticks; the trigger is 1,000 ticks away in the firing direction. One
    tick short of it nothing fires; at it the order fires with ``source_price_ticks`` = the trigger and
    enters as a market order at the protection price (best +/- 5 %) or as a limit at its price.
    """
    v = Venue()
    v.quotes()
    v.set_source(source, P)
    trigger = P + move * 1_000
    limit = trigger if order_type in (SL, TL) else 0
    oid = accepted_id(v.trigger(side, order_type, trigger, source=source, price=limit, qty=3))
    short = v.set_source(source, trigger - move)
    assert not of(short, OrderTriggered) and oid in v.engine.triggers.orders
    hit = v.set_source(source, trigger)
    (fired,) = of(hit, OrderTriggered)
    assert (fired.order_id, fired.trigger_price_ticks, fired.source_price_ticks, fired.trigger_source) == (
        oid, trigger, trigger, source)
    entered = [e for e in of(hit, OrderAccepted) if e.order_id == oid]
    assert len(entered) == 1 and entered[0].qty_lots == 3
    if order_type in (SM, TM):  # ask 610,000 * 1.05 = 640,500; bid 590,000 * 0.95 = 560,500
        assert entered[0].price_ticks == (640_500 if side > 0 else 560_500) and entered[0].time_in_force == 1
        fills = [t for t in of(hit, TradeExecuted) if t.taker_order_id == oid]
        assert [(t.price_ticks, t.qty_lots) for t in fills] == [(ASK if side > 0 else BID, 3)]
    else:
        assert entered[0].price_ticks == trigger and entered[0].time_in_force == 0
        assert v.engine.orders[oid].price_ticks == trigger  # rests at its limit (does not cross 590k/610k)
    assert oid not in v.engine.triggers.orders


@pytest.mark.parametrize("order_type,side,move", CASES)
def test_a_trigger_already_reached_is_refused(order_type, side, move) -> None:
    """Binance -2021 "Order would immediately trigger": at the current price exactly, it is refused."""
    v = Venue()
    v.set_source(MARK, P)
    before = v.engine.state_hash()
    ev = v.trigger(side, order_type, P, price=P if order_type in (SL, TL) else 0)
    assert [e.code for e in of(ev, CommandRejected)] == [RejectCode.trigger_would_fire_immediately]
    assert v.engine.state_hash() == before
    assert of(v.trigger(side, order_type, P + move, price=P if order_type in (SL, TL) else 0), TriggerOrderAccepted)


def test_binance_faq_direction_examples() -> None:
    """Binance FAQ 360040016512: a Buy whose trigger ($8,700) is below the last price is a take-profit;
    a Sell whose trigger ($8,828) is below the mark price is a stop. The opposite types at those
    triggers would fire at once and are refused (312). Last 8,750.0, mark 8,850.0 (tick 0.1)."""
    v = Venue()
    v.set_source(MARK, 88_500)
    v.quotes(bid=80_000, ask=95_000)
    v.set_source(LAST, 87_500)
    assert of(v.trigger(1, TM, 87_000, source=LAST), TriggerOrderAccepted)
    assert of(v.trigger(1, SM, 87_000, source=LAST), CommandRejected)[0].code == RejectCode.trigger_would_fire_immediately
    assert of(v.trigger(-1, SM, 88_280, source=MARK), TriggerOrderAccepted)
    assert of(v.trigger(-1, TM, 88_280, source=MARK), CommandRejected)[0].code == RejectCode.trigger_would_fire_immediately


def test_binance_conditional_order_faq_stop_limit_example() -> None:
    """Binance FAQ "What is a conditional order?": "a stop limit buy order of 500 USDT with the stop price
    of Mark Price >= 1,000 and a limit price of 1,005 USDT".

    ETH-USD-PERP (instrument 2, tick 0.01, lot 0.001, 10 atoms per tick-lot): 500 USDT at 1,000 is
    0.5 ETH = 500 lots; trigger 100,000 ticks, limit 100,500. Asks: 200 lots at 1,002 and 1,000 at
    1,006. At mark 999.99 nothing; at 1,000.00 it fires, buys 200 at 1,002 (taker fee 500 ppm of
    200,400,000 atoms = 100,200 atoms) and rests 300 lots at 1,005 (not through the 1,006 ask).
    """
    v = Venue()
    v.drive(SetMarkPrice(2, 99_000))
    v.drive(PlaceOrder(LIQUIDITY, 2, v.cid(), -1, 100_200, 200))
    v.drive(PlaceOrder(LIQUIDITY, 2, v.cid(), -1, 100_600, 1_000))
    ev = v.drive(PlaceOrder(OWNER, 2, v.cid(), 1, 100_500, 500, order_type=SL, trigger_price_ticks=100_000))
    oid = accepted_id(ev)
    assert not of(v.drive(SetMarkPrice(2, 99_999)), OrderTriggered)
    hit = v.drive(SetMarkPrice(2, 100_000))
    assert [e.order_id for e in of(hit, OrderTriggered)] == [oid]
    (acc,) = of(hit, OrderAccepted)
    assert (acc.price_ticks, acc.qty_lots, acc.time_in_force) == (100_500, 500, 0)
    (fill,) = of(hit, TradeExecuted)
    assert (fill.price_ticks, fill.qty_lots, fill.taker_order_id, fill.taker_fee_atoms) == (100_200, 200, oid, 100_200)
    assert v.engine.orders[oid].qty_lots == 300 and v.engine.books[2].best_bid() == 100_500


# ---------------------------------------------------------------------------------------------- entry


def test_stop_market_protection_price_is_clamped_into_the_band() -> None:
    """With a 2 % band around the mark (588,000..612,000), a fired buy stop-market gets
    min(610,000 * 1.05, 612,000) = 612,000 and never trades above the band: the 620,000 ask stays."""
    config = make_config({"band_ppm": 20_000})
    v = Venue(config)
    v.drive(PlaceOrder(LIQUIDITY, 1, v.cid(), -1, ASK, 2))
    v.drive(PlaceOrder(6, 1, v.cid(), -1, 611_000, 2))
    oid = accepted_id(v.trigger(1, SM, 601_000, qty=10))
    ev = v.set_source(MARK, 601_000)  # band now 601,000 +/- 12,020: 588,980..613,020
    (acc,) = of(ev, OrderAccepted)
    assert acc.price_ticks == min(ASK * 105 // 100, 613_020) == 613_020
    assert [(t.price_ticks, t.qty_lots) for t in of(ev, TradeExecuted)] == [(ASK, 2), (611_000, 2)]
    (rest,) = [e for e in of(ev, OrderCanceled) if e.order_id == oid]
    assert rest.qty_lots == 6 and rest.reason == CancelReason.ioc_remainder


def test_margin_is_checked_when_it_fires_not_when_placed() -> None:
    """Binance FAQ: "No margin check when placing conditional orders". A stop worth 100x the account's
    collateral is accepted; when it fires the initial-margin check refuses it (300) and it is gone."""
    v = Venue(deposit_atoms=10**8)  # 100 USDC each
    v.drive(Deposit(LIQUIDITY, 10**13))
    v.quotes(lots=20_000)
    oid = accepted_id(v.trigger(1, SM, 601_000, qty=10_000))  # 10 BTC, notional 600,000 USDC
    ev = v.set_source(MARK, 601_000)
    assert [e.order_id for e in of(ev, OrderTriggered)] == [oid]
    assert [(e.order_id, e.code) for e in of(ev, TriggerOrderRejected)] == [(oid, RejectCode.margin_initial_insufficient)]
    assert not of(ev, OrderAccepted) and oid not in v.engine.orders and oid not in v.engine.triggers.orders


def test_market_kinds_without_liquidity_are_rejected_at_trigger() -> None:
    v = Venue()
    oid = accepted_id(v.trigger(-1, SM, 599_000))
    ev = v.set_source(MARK, 598_000)
    assert [(e.order_id, e.code) for e in of(ev, TriggerOrderRejected)] == [(oid, RejectCode.market_no_liquidity)]


# ---------------------------------------------------------------------------------------------- reduce-only


def long_position(v: Venue, lots: int) -> None:
    """Account 2 buys ``lots`` at 600,000 from account 6."""
    pos = v.engine.accounts[OWNER].positions.get(1)
    before = 0 if pos is None else pos.size_lots
    v.drive(PlaceOrder(6, 1, v.cid(), -1, P, lots))
    v.drive(PlaceOrder(OWNER, 1, v.cid(), 1, P, lots))
    assert v.engine.accounts[OWNER].positions[1].size_lots == before + lots


def test_reduce_only_and_close_position_triggers_follow_the_position() -> None:
    """Long 10: reduce-only sell stop 10 and sell take-profit 8 each shrink to the position (not shared:
    they are not live); a close-position stop keeps qty 0. Flat: all three go (9, 9, 20)."""
    v = Venue()
    long_position(v, 10)
    stop = accepted_id(v.trigger(-1, SM, 590_000, qty=10, reduce_only=True))
    tp = accepted_id(v.trigger(-1, TL, 610_000, price=610_000, qty=8, reduce_only=True))
    close = accepted_id(v.trigger(-1, SM, 589_000, qty=0, close_position=True))
    v.drive(PlaceOrder(6, 1, v.cid(), 1, P, 4))
    ev = v.drive(PlaceOrder(OWNER, 1, v.cid(), -1, P, 4))  # position 6
    assert sorted((e.order_id, e.qty_lots, e.reason) for e in of(ev, TriggerOrderReduced)) == [
        (stop, 6, CancelReason.reduce_only_resized), (tp, 6, CancelReason.reduce_only_resized)]
    assert v.engine.triggers.orders[close].qty_lots == 0
    v.drive(PlaceOrder(6, 1, v.cid(), 1, P, 6))
    ev = v.drive(PlaceOrder(OWNER, 1, v.cid(), -1, P, 6))  # flat
    assert sorted((e.order_id, e.reason) for e in of(ev, OrderCanceled)) == [
        (stop, CancelReason.reduce_only_resized), (tp, CancelReason.reduce_only_resized),
        (close, CancelReason.position_closed)]
    assert not v.engine.triggers.orders


def test_reduce_only_needs_a_position_to_close() -> None:
    v = Venue()
    ev = v.trigger(-1, SM, 590_000, reduce_only=True)
    assert of(ev, CommandRejected)[0].code == RejectCode.reduce_only_would_increase
    long_position(v, 5)
    assert of(v.trigger(1, SM, 610_000, reduce_only=True), CommandRejected)[0].code == RejectCode.reduce_only_would_increase
    (acc,) = of(v.trigger(-1, SM, 590_000, qty=50, reduce_only=True), TriggerOrderAccepted)
    assert acc.qty_lots == 5  # capped to the position


def test_close_position_closes_the_whole_position_when_it_fires() -> None:
    """Binance ``closePosition``: sized when it fires to the position then (12 lots, after placing at 5)."""
    v = Venue()
    v.quotes()
    long_position(v, 5)
    oid = accepted_id(v.trigger(-1, SM, 595_000, qty=0, close_position=True))
    long_position(v, 7)
    ev = v.set_source(MARK, 595_000)
    (acc,) = [e for e in of(ev, OrderAccepted) if e.order_id == oid]
    assert (acc.qty_lots, acc.price_ticks) == (12, 560_500)
    assert [(t.price_ticks, t.qty_lots) for t in of(ev, TradeExecuted)] == [(BID, 12)]
    assert 1 not in v.engine.accounts[OWNER].positions or v.engine.accounts[OWNER].positions[1].size_lots == 0


# ---------------------------------------------------------------------------------------------- cancel, amend


def test_cancel_by_order_id_and_client_id_and_cancel_all_take_untriggered_orders() -> None:
    v = Venue()
    a = accepted_id(v.trigger(-1, SM, 590_000))
    b_ev = v.trigger(1, SL, 610_000, price=611_000)
    b, b_client = accepted_id(b_ev), of(b_ev, TriggerOrderAccepted)[0].client_order_id
    c = accepted_id(v.trigger(1, TM, 590_000))
    assert [(e.order_id, e.reason) for e in of(v.drive(CancelOrder(OWNER, a)), OrderCanceled)] == [(a, CancelReason.user)]
    assert [e.order_id for e in of(v.drive(CancelOrder(OWNER, 0, b_client)), OrderCanceled)] == [b]
    assert of(v.drive(CancelOrder(OWNER + 1, c)), CommandRejected)[0].code == RejectCode.order_unknown
    assert [(e.order_id, e.reason) for e in of(v.drive(CancelAll(OWNER, 1)), OrderCanceled)] == [(c, CancelReason.cancel_all)]
    assert not v.engine.triggers.orders


def test_amend_moves_the_trigger_and_is_checked_like_a_placement() -> None:
    v = Venue()
    v.quotes()
    oid = accepted_id(v.trigger(-1, SL, 595_000, price=594_000, qty=4))
    assert of(v.drive(AmendOrder(OWNER, oid, 594_000, 4)), CommandRejected)[0].code == RejectCode.amend_no_change
    assert of(v.drive(AmendOrder(OWNER, oid, 594_000, 4, P)), CommandRejected)[0].code == (
        RejectCode.trigger_would_fire_immediately)
    (am,) = of(v.drive(AmendOrder(OWNER, oid, 592_000, 6, 593_000)), TriggerOrderAmended)
    assert (am.trigger_price_ticks, am.price_ticks, am.qty_lots) == (593_000, 592_000, 6)
    assert not of(v.set_source(MARK, 594_000), OrderTriggered)  # the old trigger no longer fires it
    ev = v.set_source(MARK, 593_000)
    assert [e.order_id for e in of(ev, OrderTriggered)] == [oid]
    assert [(e.price_ticks, e.qty_lots) for e in of(ev, OrderAccepted)] == [(592_000, 6)]
    live = accepted_id(v.trigger(-1, SM, 580_000))
    assert live
    resting = of(v.drive(PlaceOrder(OWNER, 1, v.cid(), 1, 591_000, 1)), OrderAccepted)[0].order_id
    assert of(v.drive(AmendOrder(OWNER, resting, 591_000, 2, 600_000)), CommandRejected)[0].code == (
        RejectCode.trigger_fields_on_plain_order)


def test_untriggered_gtd_orders_expire() -> None:
    v = Venue()
    expire = v.drive.now_ns + 5_000
    oid = accepted_id(v.trigger(-1, SL, 590_000, price=590_000, time_in_force=3, expire_at_ns=expire))
    v.drive(Heartbeat(), at_ns=expire - 1)
    assert oid in v.engine.triggers.orders
    ev = v.drive(Heartbeat(), at_ns=expire)
    assert [(e.order_id, e.reason) for e in of(ev, OrderCanceled)] == [(oid, CancelReason.expired)]


# ---------------------------------------------------------------------------------------------- validation


BAD_FIELDS = [
    (dict(order_type=SM, trigger_price_ticks=0), RejectCode.trigger_price_ticks_out_of_range),
    (dict(order_type=SM, trigger_price_ticks=100_000_001), RejectCode.trigger_price_ticks_out_of_range),
    (dict(order_type=SM, trigger_price_ticks=590_000, trigger_source=3), RejectCode.trigger_source_invalid),
    (dict(order_type=0, trigger_price_ticks=590_000), RejectCode.trigger_fields_on_plain_order),
    (dict(order_type=1, trigger_source=1), RejectCode.trigger_fields_on_plain_order),
    (dict(order_type=0, close_position=True), RejectCode.close_position_invalid),
    (dict(order_type=SL, trigger_price_ticks=590_000, close_position=True), RejectCode.close_position_invalid),
    (dict(order_type=SM, trigger_price_ticks=590_000, close_position=True), RejectCode.close_position_invalid),  # qty 1
    (dict(order_type=SM, trigger_price_ticks=590_000, trigger_source=INDEX), RejectCode.trigger_source_price_unavailable),
    (dict(order_type=SM, trigger_price_ticks=590_000, trigger_source=LAST), RejectCode.trigger_source_price_unavailable),
    (dict(order_type=6, trigger_price_ticks=590_000), RejectCode.order_type_invalid),
    (dict(order_type=SM, trigger_price_ticks="590000"), RejectCode.field_type_invalid),
    (dict(order_type=SM, trigger_price_ticks=590_000.0), RejectCode.field_type_invalid),
    (dict(order_type=SM, trigger_price_ticks=590_000, trigger_source=None), RejectCode.field_type_invalid),
    (dict(order_type=SM, trigger_price_ticks=True), RejectCode.field_type_invalid),
    (dict(order_type=SM, trigger_price_ticks=590_000, close_position=1), RejectCode.field_type_invalid),
    (dict(order_type=SM, trigger_price_ticks=590_000, time_in_force=3, expire_at_ns=10**12),
     RejectCode.market_order_flags_invalid),
]


@pytest.mark.parametrize("fields,code", BAD_FIELDS)
def test_bad_trigger_fields_get_their_code_and_change_nothing(fields, code) -> None:
    v = Venue()
    before = v.engine.state_hash()
    ev = v.drive(PlaceOrder(OWNER, 1, v.cid(), -1, 589_000 if fields["order_type"] in (0, SL) else 0, 1, **fields))
    assert [e.code for e in ev] == [code]
    assert v.engine.state_hash() == before


AMEND_CASES = [
    (dict(price_ticks=589_000, qty_lots=1, trigger_price_ticks="x"), RejectCode.field_type_invalid),
    (dict(price_ticks=589_000, qty_lots=1.0), RejectCode.field_type_invalid),
    (dict(price_ticks=589_000, qty_lots=0), RejectCode.qty_lots_below_min),
    (dict(price_ticks=0, qty_lots=1), RejectCode.price_ticks_not_positive),
    (dict(price_ticks=589_000, qty_lots=1, trigger_price_ticks=2**70), RejectCode.trigger_price_ticks_out_of_range),
    (dict(price_ticks=589_000, qty_lots=1, trigger_price_ticks=-1), RejectCode.trigger_price_ticks_out_of_range),
    (dict(price_ticks=589_000, qty_lots=1, trigger_price_ticks=600_000), RejectCode.trigger_would_fire_immediately),
    (dict(price_ticks=589_000, qty_lots=1), RejectCode.amend_no_change),
]


@pytest.mark.parametrize("fields,code", AMEND_CASES)
def test_bad_amends_of_untriggered_orders_get_their_code_and_change_nothing(fields, code) -> None:
    v = Venue()
    oid = accepted_id(v.trigger(-1, SL, 590_000, price=589_000))
    before = v.engine.state_hash()
    ev = v.drive(AmendOrder(OWNER, oid, **fields))
    assert [e.code for e in ev] == [code]
    assert v.engine.state_hash() == before


def test_a_close_position_order_amends_only_its_trigger() -> None:
    v = Venue()
    long_position(v, 3)
    oid = accepted_id(v.trigger(-1, SM, 590_000, qty=0, close_position=True))
    before = v.engine.state_hash()
    assert [e.code for e in v.drive(AmendOrder(OWNER, oid, 0, 1))] == [RejectCode.close_position_invalid]
    assert v.engine.state_hash() == before
    (am,) = of(v.drive(AmendOrder(OWNER, oid, 12_345, 0, 591_000)), TriggerOrderAmended)
    assert (am.trigger_price_ticks, am.price_ticks, am.qty_lots) == (591_000, 0, 0)


def test_untriggered_orders_count_toward_orders_open_max_and_hold_their_client_id() -> None:
    v = Venue(with_limits(default_config(), orders_open_max=3))
    first = v.drive(PlaceOrder(OWNER, 1, 900, -1, 0, 1, order_type=SM, trigger_price_ticks=590_000))
    assert of(first, TriggerOrderAccepted)
    v.trigger(-1, SM, 589_000)
    v.drive(PlaceOrder(OWNER, 1, v.cid(), 1, 500_000, 1))
    assert of(v.drive(PlaceOrder(OWNER, 1, v.cid(), 1, 500_000, 1)), CommandRejected)[0].code == (
        RejectCode.orders_open_max_reached)
    assert of(v.trigger(-1, SM, 588_000), CommandRejected)[0].code == RejectCode.orders_open_max_reached
    v.drive(CancelAll(OWNER, 0))
    dup = v.drive(PlaceOrder(OWNER, 1, 900, 1, 500_000, 1))  # remembered since placement
    assert of(dup, CommandRejected)[0].code == RejectCode.client_order_id_duplicate


def test_trigger_orders_follow_the_market_state_and_need_continuous_matching() -> None:
    """Placement is refused in a halted market (500) and on a batch market (316: its orders would never
    meet a continuous book); the batch market is reached by the guardian's SetMatchingMode."""
    v = Venue(make_config())
    v.drive(SetMarketState(GUARDIAN, 1, MarketState.HALTED))
    assert of(v.trigger(-1, SM, 590_000), CommandRejected)[0].code == RejectCode.market_halted
    assert not of(v.drive(SetMatchingMode(GUARDIAN, 1, MatchingMode.BATCH, 1_000_000)), CommandRejected)
    assert not of(v.drive(SetMarketState(GUARDIAN, 1, MarketState.ACTIVE)), CommandRejected)
    assert v.engine.integ[1].mode == MatchingMode.BATCH
    before = v.engine.state_hash()
    assert of(v.trigger(-1, SM, 590_000), CommandRejected)[0].code == RejectCode.trigger_requires_continuous_matching
    assert v.engine.state_hash() == before


# ---------------------------------------------------------------------------------------------- firing order


def test_carry_over_beyond_the_per_command_cap_in_trigger_order_and_snapshot_mid_way() -> None:
    """Eight sell stops reached by one mark move, cap 3 per command: they fire 3, 3, 2 over three
    commands, highest trigger first, equal triggers by order id. A sell stop inside the armed range
    [599,000, 599,000] is refused meanwhile (312); one below it waits. Restoring a snapshot taken after
    the first batch (on the fast or the reference engine) continues with identical events and hashes."""
    config = with_limits(default_config(), triggers_per_command_max=3)
    v = Venue(config)
    v.quotes()
    triggers = [599_990, 599_995, 599_980, 599_995, 599_970, 599_960, 599_950, 599_940]
    ids = [accepted_id(v.trigger(-1, SM, t)) for t in triggers]
    expected = sorted(zip(triggers, ids), key=lambda p: (-p[0], p[1]))
    first = v.set_source(MARK, 599_000)
    snapshot = v.engine.snapshot()
    later = [Heartbeat(), PlaceOrder(OWNER, 1, 5_000, -1, 0, 1, order_type=SM, trigger_price_ticks=599_500),
             PlaceOrder(OWNER, 1, 5_001, -1, 0, 1, order_type=SM, trigger_price_ticks=598_000), Heartbeat()]
    runs = []
    for engine in (v.engine, Engine.restore(config, snapshot, check_invariants=True),
                   Engine.restore(config, snapshot, ReferenceBook, check_invariants=True)):
        drive = Driver(engine, start_ns=v.drive.now_ns)
        runs.append(([drive(c) for c in later], engine.state_hash()))
    assert runs[0] == runs[1] == runs[2]
    batches = [first] + runs[0][0]
    fired = [[e.order_id for e in of(ev, OrderTriggered)] for ev in batches]
    assert fired[:3] == [[i for _, i in expected[:3]], [i for _, i in expected[3:6]], [i for _, i in expected[6:]]]
    assert of(batches[2], CommandRejected)[0].code == RejectCode.trigger_would_fire_immediately
    assert of(batches[3], TriggerOrderAccepted) and not fired[3] and not fired[4]
    assert not v.engine.triggers.armed


def test_a_fired_order_s_fills_reach_last_price_triggers_in_the_same_command() -> None:
    """A mark stop sells into the bids 599,000 / 598,000; its 598,000 print reaches a LAST-source sell
    stop at 598,500, which fires in the same command after it."""
    v = Venue()
    v.drive(PlaceOrder(LIQUIDITY, 1, v.cid(), 1, 599_000, 1))
    v.drive(PlaceOrder(LIQUIDITY, 1, v.cid(), 1, 598_000, 5))
    v.drive(PlaceOrder(LIQUIDITY, 1, v.cid(), -1, 601_000, 5))
    v.set_source(LAST, P)
    stop = accepted_id(v.trigger(-1, SM, 599_500, qty=2))
    chained = accepted_id(v.trigger(-1, SM, 598_500, source=LAST, qty=1, account=6))
    ev = v.set_source(MARK, 599_500)
    assert [e.order_id for e in of(ev, OrderTriggered)] == [stop, chained]
    assert [(t.taker_order_id, t.price_ticks) for t in of(ev, TradeExecuted)] == [
        (stop, 599_000), (stop, 598_000), (chained, 598_000)]


def test_triggers_wait_during_a_halt_and_fire_on_reopening() -> None:
    """A stop reached while the market is halted (and then in its reopening auction) waits, armed, even
    if the price comes back; it fires in the command that reopens continuous trading."""
    v = Venue(make_config())
    v.quotes()
    oid = accepted_id(v.trigger(-1, SM, 595_000))
    v.drive(SetMarketState(GUARDIAN, 1, MarketState.HALTED))
    ev = v.set_source(MARK, 594_000)
    assert not of(ev, OrderTriggered) and v.engine.triggers.armed
    v.set_source(MARK, 596_000)  # back above: it was reached anyway and stays due
    v.drive(SetMarketState(GUARDIAN, 1, MarketState.AUCTION, 50_000))
    assert not of(v.drive(Heartbeat()), OrderTriggered)
    ev = v.drive(Heartbeat(), at_ns=v.drive.now_ns + 50_000)  # the uncross: ACTIVE again
    assert of(ev, MarketStateChanged)[-1].to_state == MarketState.ACTIVE
    (fired,) = of(ev, OrderTriggered)
    assert (fired.order_id, fired.source_price_ticks) == (oid, 594_000)
    assert not v.engine.triggers.armed


def thin_long(v: Venue, bid_ticks: int) -> None:
    """Account 7 (1,000 USDC) buys 1 BTC at 60,000 from account 6; the liquidity account bids 5 BTC at
    ``bid_ticks`` (the only liquidity below the mark for a stop or a liquidation)."""
    v.drive(CreateAccount(7, 7))
    v.drive(Deposit(7, 10**9))
    v.drive(PlaceOrder(LIQUIDITY, 1, v.cid(), 1, bid_ticks, 5_000))
    v.drive(PlaceOrder(6, 1, v.cid(), -1, P, 1_000))
    v.drive(PlaceOrder(7, 1, v.cid(), 1, P, 1_000))
    assert v.engine.accounts[7].positions[1].size_lots == 1_000


def test_liquidation_cancels_the_account_s_triggers() -> None:
    """Account 7 (1,000 USDC) buys 1 BTC at 60,000 and leaves a take-profit buy far away; at mark
    59,000 it is below maintenance: the liquidation cancels its trigger (reason 17) before closing."""
    v = Venue()
    thin_long(v, bid_ticks=590_500)
    oid = accepted_id(v.trigger(1, TM, 500_000, account=7))
    ev = v.set_source(MARK, 590_000)
    assert of(ev, PositionLiquidated)
    assert [(e.order_id, e.reason) for e in of(ev, OrderCanceled) if e.order_id == oid] == [(oid, CancelReason.liquidation)]
    assert not v.engine.triggers.orders


def test_adl_and_auction_fills_resize_untriggered_reduce_only_orders_too() -> None:
    """Position changes outside continuous matching: account 6's short is auto-deleveraged against the
    bankrupt account 7 (no bid within the fillable price), and account 2's long is closed in a call
    auction's uncross; their reduce-only triggers go with their positions (the engines' invariant check
    would fail if they did not)."""
    v = Venue(make_config())
    thin_long(v, bid_ticks=589_000)
    short_stop = accepted_id(v.trigger(1, SM, 620_000, qty=1_000, reduce_only=True, account=6))
    ev = v.set_source(MARK, 590_000)
    assert [(e.account_id, e.counterparty_account_id, e.qty_lots) for e in of(ev, AutoDeleveraged)] == [(7, 6, 1_000)]
    assert [(e.order_id, e.reason) for e in of(ev, OrderCanceled) if e.order_id == short_stop] == [
        (short_stop, CancelReason.reduce_only_resized)]
    long_position(v, 10)
    long_stop = accepted_id(v.trigger(-1, SM, 580_000, qty=10, reduce_only=True))
    v.drive(SetMarketState(GUARDIAN, 1, MarketState.AUCTION, 50_000))
    v.drive(PlaceOrder(OWNER, 1, v.cid(), -1, P, 10))
    v.drive(PlaceOrder(6, 1, v.cid(), 1, P, 10))
    ev = v.drive(Heartbeat(), at_ns=v.drive.now_ns + 50_000)
    assert of(ev, AuctionCleared) and 1 not in v.engine.accounts[OWNER].positions
    assert [(e.order_id, e.reason) for e in of(ev, OrderCanceled) if e.order_id == long_stop] == [
        (long_stop, CancelReason.reduce_only_resized)]


@pytest.mark.parametrize("with_stop", [True, False])
def test_a_stop_loss_fires_before_the_liquidation_sweep_of_the_same_mark_move(with_stop: bool) -> None:
    """Account 7 (1,000 USDC) is long 1 BTC from 60,000 (taker fee 30 USDC). The mark jumps to 59,200:
    equity 170 < maintenance 236.8 (0.4 % of 59,200). Its reduce-only sell stop at 59,500 fires first, in
    the same command, and sells into the 59,350 bid (loss 650 + fee 29.675 USDC): flat with
    290.325 USDC and no liquidation. Without the stop the same move liquidates it."""
    v = Venue()
    thin_long(v, bid_ticks=593_500)
    if with_stop:
        oid = accepted_id(v.trigger(-1, SM, 595_000, qty=1_000, reduce_only=True, account=7))
    ev = v.set_source(MARK, 592_000)
    if with_stop:
        assert [e.order_id for e in of(ev, OrderTriggered)] == [oid]
        assert [(t.taker_order_id, t.price_ticks, t.qty_lots, t.taker_fee_atoms) for t in of(ev, TradeExecuted)] == [
            (oid, 593_500, 1_000, 29_675_000)]
        assert not of(ev, PositionLiquidated) and v.engine.accounts[7].balance_atoms == 290_325_000
    else:
        assert of(ev, PositionLiquidated)


# ---------------------------------------------------------------------------------------------- state


def test_trigger_state_is_hashed_only_while_it_exists_and_limits_hash_only_when_set() -> None:
    v = Venue()
    assert not any(isinstance(x, list) and x and x[0] == "triggers" for x in v.engine.canonical_state())
    before = v.engine.state_hash()
    oid = accepted_id(v.trigger(-1, SM, 590_000))
    assert v.engine.canonical_state()[-1][0] == "triggers" and v.engine.state_hash() != before
    restored = Engine.restore(v.config, v.engine.snapshot(), check_invariants=True)
    assert restored.state_hash() == v.engine.state_hash() and oid in restored.triggers.orders
    v.drive(CancelOrder(OWNER, oid))
    assert v.engine.canonical_state()[-1][0] != "triggers"
    config = default_config()
    assert config.canonical() == with_limits(config, triggers_per_command_max=64).canonical()
    assert ["limit", "triggers_per_command_max", 5] in with_limits(config, triggers_per_command_max=5).canonical()


def test_the_engine_picks_the_trigger_book_that_matches_its_order_book() -> None:
    config = default_config()
    assert type(Engine(config).triggers) is TriggerBook
    assert type(Engine(config, ReferenceBook).triggers) is ReferenceTriggerBook
    assert type(Engine(config, trigger_factory=ReferenceTriggerBook).triggers) is ReferenceTriggerBook
