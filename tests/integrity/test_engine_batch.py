"""Frequent batch auctions through ``Engine.apply`` (issue 4 item 6; docs/integrity-integration.md §5.5, §6.3).

Default venue, BTC-USD-PERP: P = 60,000.0 = 600,000 ticks, k = 100 atoms per tick-lot, no band
configured, so the clearing collar is mark +/- 5 % (570,000 .. 630,000) and the tie-break reference is
the mark (P). Auction fee = the taker fee, 500 ppm, on both legs. Every clearing number below is worked
by hand from the rule in ``integrity/auction.py`` (volume, then |imbalance|, then distance to the
reference, then the lower price; time priority at the margin).
"""

from __future__ import annotations

from bastion.core.book.reference import ReferenceBook
from bastion.core.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    CreateAccount,
    Deposit,
    Heartbeat,
    PlaceOrder,
    SetKillSwitch,
    SetMarketState,
    SetMarkPrice,
    SetMatchingMode,
)
from bastion.core.engine import Engine
from bastion.core.events import (
    AuctionCleared,
    MatchingModeSet,
    OrderAccepted,
    OrderCanceled,
    OrderReduced,
    TradeExecuted,
)
from bastion.core.integrity.codes import MatchingMode
from bastion.core.integrity.states import MarketState as S
from bastion.core.rejects import CancelReason
from bastion.core.rejects import RejectCode as R
from bastion.core.risk_messages import PositionLiquidated
from tests.conftest import Driver
from tests.integrity._engine_helpers import GUARDIAN, P, assert_snapshot_roundtrip, make_config, make_engine, of, rejected

TAU = 1_000_000  # 1 ms of engine time
K = 100
FEE_PPM = 500


def _fee(price: int, qty: int) -> int:
    return -(-price * qty * K * FEE_PPM // 1_000_000)  # fee_atoms rounds up


def _to_batch(drive: Driver, tau: int = TAU) -> int:
    """CANCEL_ONLY -> BATCH(tau) -> ACTIVE; returns the grid origin (the switch time)."""
    drive(SetMarketState(GUARDIAN, 1, S.CANCEL_ONLY))
    t0 = drive.now_ns + 1_000
    assert drive(SetMatchingMode(GUARDIAN, 1, MatchingMode.BATCH, tau), at_ns=t0) == [
        MatchingModeSet(1, MatchingMode.BATCH, tau, 0)]
    drive(SetMarketState(GUARDIAN, 1, S.ACTIVE))
    return t0


def _trades(events: list) -> list[tuple[int, int, int, int, int]]:
    """(sell account, buy account, qty, price, taker_side) of each TradeExecuted."""
    return [(t.maker_account_id, t.taker_account_id, t.qty_lots, t.price_ticks, t.taker_side)
            for t in of(events, TradeExecuted)]


def test_three_batches_with_exact_clearing_numbers() -> None:
    """Batch 0: time priority at the margin; batch 1: a cancel between batches and a market order whose
    remainder is canceled; batch 2: a GTD order live at the boundary trades, one expired before it does
    not (it would have moved the price). Then the journal replays and the fast and reference engines
    agree event by event."""
    engine, drive = make_engine(accounts=6)
    t0 = _to_batch(drive)
    # ---- batch 0 = [t0, t0 + TAU)
    drive(PlaceOrder(1, 1, 1, 1, P + 2, 10))
    drive(PlaceOrder(2, 1, 1, 1, P, 5))
    drive(PlaceOrder(3, 1, 1, 1, P, 5))
    ev = drive(PlaceOrder(4, 1, 1, -1, P - 1, 12))
    assert of(ev, OrderAccepted) and not of(ev, TradeExecuted)  # crossing orders wait for the boundary
    assert not of(drive(Heartbeat(), at_ns=t0 + TAU - 1), AuctionCleared)
    assert_snapshot_roundtrip(engine)
    ev = drive(Heartbeat(), at_ns=t0 + TAU)
    # V: P-1 -> min(20, 12) = 12, P -> 12, P+2 -> 10. |I| = 8 at both P-1 and P; the reference (mark P)
    # picks P. Buys: level P+2 fills whole (10), the margin P gets 2 lots: account 2 (earlier), not 3.
    assert of(ev, AuctionCleared) == [AuctionCleared(1, 0, t0 + TAU, P, 12, 8)]
    assert _trades(ev) == [(4, 1, 10, P, 0), (4, 2, 2, P, 0)]
    t = of(ev, TradeExecuted)
    assert (t[0].maker_fee_atoms, t[0].taker_fee_atoms, t[1].taker_fee_atoms) == (
        _fee(P, 10), _fee(P, 10), _fee(P, 2))
    assert engine.accounts[1].balance_atoms == 10**12 - _fee(P, 10)
    assert engine.accounts[4].positions[1].size_lots == -12
    assert [(o.account_id, o.qty_lots) for o in engine.orders.values()] == [(2, 3), (3, 5)]
    # ---- batch 1 = [t0 + TAU, t0 + 2 TAU): cancel account 3, market sell 4
    assert of(drive(CancelOrder(3, 0, 1)), OrderCanceled)
    ev = drive(PlaceOrder(5, 1, 1, -1, 0, 4, order_type=1))
    assert of(ev, OrderAccepted)[0].price_ticks == 570_000  # margined at the collar's low edge
    ev = drive(Heartbeat(), at_ns=t0 + 2 * TAU)
    # Only account 2's 3 @ P bids: V = 3 at the collar low and at P, |I| = 1 at both; P is nearer the mark.
    assert of(ev, AuctionCleared) == [AuctionCleared(1, 1, t0 + 2 * TAU, P, 3, -1)]
    assert _trades(ev) == [(5, 2, 3, P, 0)]
    assert [(c.account_id, c.reason, c.qty_lots) for c in of(ev, OrderCanceled)] == [
        (5, CancelReason.auction_remainder, 1)]
    # ---- batch 2 = [t0 + 2 TAU, t0 + 3 TAU): GTD at the boundary b2 = t0 + 3 TAU
    b2 = t0 + 3 * TAU
    drive(PlaceOrder(1, 1, 2, 1, P + 1, 2, time_in_force=3, expire_at_ns=b2 - 100))  # expires before b2
    drive(PlaceOrder(3, 1, 2, 1, P, 2, time_in_force=3, expire_at_ns=b2 + 500))  # live at b2
    drive(PlaceOrder(6, 1, 1, -1, P, 2))
    ev = drive(Heartbeat(), at_ns=b2 + 1_000)  # first command after both the boundary and the later expiry
    # With the P+1 bid the price would be P+1 (|I| 0); without it: D(P) = 2, S(P) = 2 -> P.
    assert of(ev, AuctionCleared) == [AuctionCleared(1, 2, b2, P, 2, 0)]
    assert _trades(ev) == [(6, 3, 2, P, 0)]
    expired = of(ev, OrderCanceled)
    assert [(c.account_id, c.reason) for c in expired] == [(1, CancelReason.expired)]
    assert ev.index(of(ev, AuctionCleared)[0]) < ev.index(expired[0])  # the clearing came first
    assert len(engine.orders) == 0 and engine.open_interest_lots[1] == 17
    assert_snapshot_roundtrip(engine)
    # Replay of the journal: same hash; the reference engine (naive clearing) gives the same events.
    replay = Engine(engine.config, check_invariants=True)
    ref = Engine(engine.config, ReferenceBook, check_invariants=True)
    assert ref._clear_fn is not replay._clear_fn
    for item in drive.log:
        assert replay.apply(item) == ref.apply(item)
    assert replay.state_hash() == ref.state_hash() == engine.state_hash()


def test_amend_and_cancel_in_a_batch_keep_or_lose_priority() -> None:
    """A size-down amend keeps time priority at the margin; a price change loses it (re-entry)."""
    engine, drive = make_engine(accounts=4)
    t0 = _to_batch(drive)
    drive(PlaceOrder(1, 1, 1, 1, P, 5))
    drive(PlaceOrder(2, 1, 1, 1, P, 5))
    drive(PlaceOrder(3, 1, 1, 1, P, 5))
    o1, o2 = engine.accounts[1].live_by_client[1].order_id, engine.accounts[2].live_by_client[1].order_id
    assert of(drive(AmendOrder(1, o1, P, 4)), OrderAccepted) == []  # in place
    drive(AmendOrder(2, o2, P + 1, 5))
    drive(AmendOrder(2, o2, P, 5))  # back to P, now last in time
    drive(PlaceOrder(4, 1, 1, -1, P, 6))
    ev = drive(Heartbeat(), at_ns=t0 + TAU)
    # Buys at P: account 1 (4, kept priority), account 3 (5), account 2 (5, re-entered): 6 lots -> 4, 2, 0.
    assert _trades(ev) == [(4, 1, 4, P, 0), (4, 3, 2, P, 0)]
    assert of(ev, AuctionCleared) == [AuctionCleared(1, 0, t0 + TAU, P, 6, 8)]


def test_mode_switch_rules_and_order_moves() -> None:
    """Resting orders move into the batch book in FastBook priority and back; the switch needs a halted
    or cancel-only market; FOK and post-only are refused in a batch; no AUCTION / POST_ONLY state."""
    engine, drive = make_engine(accounts=5)
    drive(PlaceOrder(1, 1, 1, 1, P - 1, 5))
    drive(PlaceOrder(2, 1, 1, 1, P - 1, 5))
    drive(PlaceOrder(3, 1, 1, -1, P + 1, 5))
    assert rejected(drive(SetMatchingMode(GUARDIAN, 1, 1, TAU))) == R.matching_mode_change_invalid  # ACTIVE
    drive(SetMarketState(GUARDIAN, 1, S.HALTED))
    before = engine.state_hash()
    assert rejected(drive(SetMatchingMode(99, 1, 1, TAU))) == R.guardian_unauthorized
    assert rejected(drive(SetMatchingMode(GUARDIAN, 1, 1, 0))) == R.field_value_out_of_range
    assert rejected(drive(SetMatchingMode(GUARDIAN, 1, 1, TAU, 5))) == R.field_value_out_of_range
    assert rejected(drive(SetMatchingMode(GUARDIAN, 1, 2, TAU, TAU + 1))) == R.field_value_out_of_range
    assert rejected(drive(SetMatchingMode(GUARDIAN, 1, 3, TAU))) == R.field_value_out_of_range
    assert rejected(drive(SetMatchingMode(GUARDIAN, 1, 0))) == R.matching_mode_change_invalid  # no change
    assert rejected(drive(SetMatchingMode(GUARDIAN, 1, "1", TAU))) == R.field_type_invalid  # type: ignore[arg-type]
    assert engine.state_hash() == before
    t0 = drive.now_ns + 1_000
    drive(SetMatchingMode(GUARDIAN, 1, 1, TAU), at_ns=t0)
    assert len(engine.books[1]) == 0 and list(engine.integ[1].batch_book.orders) == [1, 2, 3]
    # HALTED reopens straight into the next clearing in batch mode.
    assert of(drive(SetMarketState(GUARDIAN, 1, S.ACTIVE)), OrderAccepted) == []
    assert engine.integ[1].status.state == S.ACTIVE
    assert rejected(drive(SetMarketState(GUARDIAN, 1, S.AUCTION))) == R.market_state_transition_invalid
    assert rejected(drive(SetMarketState(GUARDIAN, 1, S.POST_ONLY))) == R.market_state_transition_invalid
    assert rejected(drive(PlaceOrder(4, 1, 1, -1, P - 1, 5, time_in_force=2))) == R.market_auction_forbids_order_kind
    assert rejected(drive(PlaceOrder(4, 1, 1, -1, P + 3, 5, post_only=True))) == R.market_auction_forbids_order_kind
    drive(PlaceOrder(4, 1, 1, -1, P - 1, 7))
    ev = drive(Heartbeat(), at_ns=t0 + TAU)
    # D(P-1) = 10, S(P-1) = 7 -> 7 at P-1 (P+1: D 0). The moved bids keep their order: 5 then 2.
    assert of(ev, AuctionCleared) == [AuctionCleared(1, 0, t0 + TAU, P - 1, 7, 3)]
    assert _trades(ev) == [(4, 1, 5, P - 1, 0), (4, 2, 2, P - 1, 0)]
    # Back to continuous with a crossed batch book: a crossing order and an IOC are canceled, not traded.
    drive(PlaceOrder(5, 1, 1, -1, P - 2, 1))  # crosses account 2's remaining bid at P-1
    drive(PlaceOrder(5, 1, 2, 1, P - 5, 1, time_in_force=1))  # IOC
    drive(SetMarketState(GUARDIAN, 1, S.CANCEL_ONLY))
    ev = drive(SetMatchingMode(GUARDIAN, 1, 0), at_ns=t0 + 2 * TAU + 5)  # boundary passed while not ACTIVE
    assert not of(ev, TradeExecuted)
    assert ev[0] == MatchingModeSet(1, 0, 0, 0)
    assert [(c.account_id, c.reason, c.qty_lots) for c in of(ev, OrderCanceled)] == [
        (5, CancelReason.auction_remainder, 1), (5, CancelReason.auction_remainder, 1)]
    assert engine.books[1].best_bid() == P - 1 and engine.books[1].best_ask() == P + 1
    assert engine.integ[1].batch_book is None and not engine.unbooked
    drive(SetMarketState(GUARDIAN, 1, S.ACTIVE))
    assert engine._integrity_idle
    assert_snapshot_roundtrip(engine)


def test_halt_and_kill_switch_hold_the_batch_until_trading_resumes() -> None:
    """No clearing while HALTED or with the kill switch engaged; the pending orders clear at the first
    boundary after trading resumes (with that batch's index)."""
    engine, drive = make_engine(accounts=2)
    t0 = _to_batch(drive)
    drive(PlaceOrder(1, 1, 1, 1, P, 3))
    drive(PlaceOrder(2, 1, 1, -1, P, 3))
    drive(SetMarketState(GUARDIAN, 1, S.HALTED))
    assert not of(drive(Heartbeat(), at_ns=t0 + TAU), AuctionCleared)
    drive(SetMarketState(GUARDIAN, 1, S.ACTIVE))
    drive(SetKillSwitch(GUARDIAN, True))
    assert not of(drive(Heartbeat(), at_ns=t0 + 2 * TAU), AuctionCleared)
    drive(SetKillSwitch(GUARDIAN, False))
    ev = drive(Heartbeat(), at_ns=t0 + 3 * TAU + 7)
    assert of(ev, AuctionCleared) == [AuctionCleared(1, 2, t0 + 3 * TAU, P, 3, 0)]
    assert_snapshot_roundtrip(engine)


def test_reduce_only_orders_are_capped_inside_a_clearing() -> None:
    """Account 1 is long 4, with a reduce-only sell of 4 and then a plain sell of 3 in the same batch.
    Inside the clearing the reduce-only order may only close what the plain order does not: 4 - 3 = 1
    lot (filling both whole would leave the account short 3). After the clearing the account is flat and
    the reduce-only remainder is canceled by the resize."""
    engine, drive = make_engine(accounts=3)
    drive(PlaceOrder(2, 1, 1, -1, P, 4))
    drive(PlaceOrder(1, 1, 1, 1, P, 4))  # continuous: account 1 long 4
    t0 = _to_batch(drive)
    drive(PlaceOrder(1, 1, 2, -1, P, 4, reduce_only=True))
    drive(PlaceOrder(1, 1, 3, -1, P, 3))
    drive(PlaceOrder(3, 1, 1, 1, P, 10))
    ev = drive(Heartbeat(), at_ns=t0 + TAU)
    assert of(ev, AuctionCleared) == [AuctionCleared(1, 0, t0 + TAU, P, 4, 6)]
    assert _trades(ev) == [(1, 3, 1, P, 0), (1, 3, 3, P, 0)]
    assert 1 not in engine.accounts[1].positions
    assert [(c.account_id, c.reason, c.qty_lots) for c in of(ev, OrderCanceled)] == [
        (1, CancelReason.reduce_only_resized, 3)]


def test_liquidation_in_batch_mode_waits_for_the_clearing() -> None:
    """LONG holds 1 BTC at 60,000.0 on 1,000 USDC (as tests/risk/test_engine_risk.py). In batch mode the
    mark falls to 59,200.0: the risk engine's reduce-only IOC (limit 59,121.3) joins the batch book and
    nothing trades until the boundary; the account may not cancel it and no second IOC is sent. At the
    boundary it sells 1,000 lots against BIG's bid at 59,150.0: candidates 59,121.3 and 59,150.0 both
    clear 1,000 with |I| 4,000, the mark 59,200.0 is nearer the latter. The fill pays the liquidation fee
    (capped at its surplus over the 59,030.0 bankruptcy price: (591,500 - 590,300) * 1,000 * 100 atoms)
    to the insurance fund instead of the auction fee; BIG pays the auction fee."""
    engine = Engine(make_config(), check_invariants=True)
    drive = Driver(engine)
    LP, LONG, BIG = 1, 2, 4
    for a in (LP, LONG, BIG):
        drive(CreateAccount(a, a))
        drive(Deposit(a, 1_000_000_000 if a == LONG else 10**13))
    drive(PlaceOrder(LP, 1, 1, -1, P, 1000))
    drive(PlaceOrder(LONG, 1, 1, 1, P, 1000))
    t0 = _to_batch(drive)
    drive(PlaceOrder(BIG, 1, 1, 1, 591_500, 5000))
    ev = drive(SetMarkPrice(1, 592_000))
    ioc = of(ev, OrderAccepted)
    assert [(o.account_id, o.client_order_id, o.side, o.price_ticks, o.qty_lots, o.time_in_force) for o in ioc] == [
        (LONG, 0, -1, 591_213, 1000, 1)]
    assert not of(ev, TradeExecuted) and engine.risk.queue == [LONG]
    plan = engine.integ[1].liquidations[ioc[0].order_id]
    assert (plan.bankruptcy_price_ticks, plan.limit_price_ticks) == (590_300, 591_213)
    assert rejected(drive(CancelOrder(LONG, ioc[0].order_id))) == R.account_in_liquidation
    assert rejected(drive(AmendOrder(LONG, ioc[0].order_id, 600_000, 1000))) == R.account_in_liquidation
    assert of(drive(CancelAll(LONG, 0)), OrderCanceled) == []
    assert of(drive(SetMarkPrice(1, 591_900)), OrderAccepted) == []  # the pending step is not replaced
    assert_snapshot_roundtrip(engine)
    fund, pool = engine.insurance_fund_atoms, engine.fee_pool_atoms
    ev = drive(Heartbeat(), at_ns=t0 + TAU)
    assert of(ev, AuctionCleared) == [AuctionCleared(1, 0, t0 + TAU, 591_500, 1000, 4000)]
    trade = of(ev, TradeExecuted)
    assert _trades(ev) == [(LONG, BIG, 1000, 591_500, 0)]
    assert (trade[0].maker_fee_atoms, trade[0].taker_fee_atoms) == (0, _fee(591_500, 1000))
    liquidated = of(ev, PositionLiquidated)
    surplus = (591_500 - 590_300) * 1000 * K
    assert [(e.account_id, e.qty_lots, e.price_ticks, e.liquidation_fee_atoms) for e in liquidated] == [
        (LONG, 1000, 591_500, surplus)]
    assert engine.insurance_fund_atoms == fund + surplus
    assert engine.fee_pool_atoms == pool + _fee(591_500, 1000)
    assert LONG not in engine.risk.queue and 1 not in engine.accounts[LONG].positions
    assert engine.accounts[LONG].balance_atoms == 1_000_000_000 - _fee(P, 1000) - 850_000_000 - surplus
    assert engine.risk.throttle[LONG].used_atoms == 1000 * 591_500 * K
    assert_snapshot_roundtrip(engine)
