"""Market states, guardian commands and the kill switch through the engine (issue 4, steps 1 and 4)."""

from __future__ import annotations

from bastion.core.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    CreateAccount,
    Heartbeat,
    PlaceOrder,
    SetKillSwitch,
    SetMarketState,
    Transfer,
    Withdraw,
)
from bastion.core.engine import Engine
from bastion.core.events import (
    AuctionCleared,
    AuctionIndicative,
    KillSwitchSet,
    MarketStateChanged,
    OrderAccepted,
    OrderCanceled,
    TradeExecuted,
)
from bastion.core.integrity.states import MarketState as S
from bastion.core.rejects import CancelReason
from bastion.core.rejects import RejectCode as R
from tests.integrity._engine_helpers import GUARDIAN, P, assert_snapshot_roundtrip, make_config, make_engine, of, rejected


def test_default_config_state_hash_is_unchanged_by_the_integrity_layer(config) -> None:
    """No guardian ids, no integrity table: the config hash and state encoding are what they were."""
    assert make_config(guardians=False).canonical() == config.canonical()
    engine = Engine(config)
    assert len(engine.canonical_state()) == 10  # 9 base entries + the risk block; no integrity block


def test_guardian_halts_and_the_allowed_table_applies() -> None:
    engine, drive = make_engine()
    drive(PlaceOrder(1, 1, 1, 1, P - 10, 5))
    assert rejected(drive(SetMarketState(99, 1, S.HALTED))) == R.guardian_unauthorized
    ev = drive(SetMarketState(GUARDIAN, 1, S.HALTED))
    assert ev == [MarketStateChanged(1, S.ACTIVE, S.HALTED, 1)]
    before = engine.state_hash()
    assert rejected(drive(PlaceOrder(2, 1, 1, -1, P + 10, 5))) == R.market_halted
    assert rejected(drive(AmendOrder(1, 1, P - 11, 5))) == R.market_halted
    assert rejected(drive(SetMarketState(GUARDIAN, 1, S.ACTIVE))) == R.market_state_transition_invalid
    assert engine.state_hash() == before
    assert_snapshot_roundtrip(engine)
    # Instrument 2 is unaffected; cancels are allowed in HALTED.
    assert of(drive(PlaceOrder(2, 2, 1, -1, 300_000, 5)), OrderAccepted)
    assert of(drive(CancelOrder(1, 1)), OrderCanceled)


def test_post_only_and_cancel_only_states() -> None:
    engine, drive = make_engine()
    drive(PlaceOrder(2, 1, 1, -1, P + 10, 5))
    drive(SetMarketState(GUARDIAN, 1, S.POST_ONLY))
    assert rejected(drive(PlaceOrder(1, 1, 1, 1, P - 10, 5))) == R.market_post_only_requires_post_only_order
    assert of(drive(PlaceOrder(1, 1, 2, 1, P - 10, 5, post_only=True)), OrderAccepted)
    oid = engine.accounts[1].live_by_client[2].order_id
    assert rejected(drive(AmendOrder(1, oid, P + 10, 5))) == R.market_post_only_requires_post_only_order
    drive(SetMarketState(GUARDIAN, 1, S.CANCEL_ONLY))
    assert rejected(drive(PlaceOrder(1, 1, 3, 1, P - 10, 5, post_only=True))) == R.market_cancel_only
    drive(SetMarketState(GUARDIAN, 1, S.ACTIVE))
    assert of(drive(PlaceOrder(1, 1, 4, 1, P - 20, 5)), OrderAccepted)


def test_kill_switch_blocks_entry_and_cash_out_but_not_cancels() -> None:
    engine, drive = make_engine()
    drive(CreateAccount(9, 1))  # a subaccount of account 1's owner
    drive(PlaceOrder(1, 1, 1, 1, P - 10, 5))
    assert drive(SetKillSwitch(GUARDIAN, True)) == [KillSwitchSet(True)]
    before = engine.state_hash()
    for cmd in (PlaceOrder(1, 1, 2, 1, P - 10, 5), AmendOrder(1, 1, P - 12, 5), Withdraw(1, 5),
                Transfer(1, 9, 5)):
        assert rejected(drive(cmd)) == R.venue_kill_switch_engaged, cmd
    assert engine.state_hash() == before
    assert_snapshot_roundtrip(engine)
    assert of(drive(CancelAll(1, 0)), OrderCanceled)
    drive(SetKillSwitch(GUARDIAN, False))
    assert of(drive(PlaceOrder(1, 1, 3, 1, P - 10, 5)), OrderAccepted)
    assert engine._integrity_idle


def test_settling_cancels_everything_and_is_terminal() -> None:
    engine, drive = make_engine()
    drive(PlaceOrder(1, 1, 1, 1, P - 10, 5))
    drive(PlaceOrder(2, 1, 1, -1, P + 10, 5))
    ev = drive(SetMarketState(GUARDIAN, 1, S.SETTLING))
    assert [e.reason for e in of(ev, OrderCanceled)] == [CancelReason.market_settling] * 2
    assert rejected(drive(CancelAll(1, 1))) == R.market_settling
    assert rejected(drive(SetMarketState(GUARDIAN, 1, S.ACTIVE))) == R.market_state_transition_invalid
    assert_snapshot_roundtrip(engine)


def test_guardian_auction_uncrosses_with_exact_numbers() -> None:
    """Worked example A of auction.py through the engine: resting + auction orders, reference 100 ticks
    away becomes the mark; fills at the clearing price, no aggressor, auction fee on both legs."""
    engine, drive = make_engine(accounts=6)
    # Rested before the auction (uncrossed): bid 10 @ P-5; ask 12 @ P+5.
    drive(PlaceOrder(1, 1, 1, 1, P - 5, 10))
    drive(PlaceOrder(2, 1, 1, -1, P + 5, 12))
    ev = drive(SetMarketState(GUARDIAN, 1, S.AUCTION, 10_000))
    assert ev[0] == MarketStateChanged(1, S.ACTIVE, S.AUCTION, 1)
    # During the auction: crossing orders collect without trading.
    ev = drive(PlaceOrder(3, 1, 1, 1, P + 5, 8))  # buy 8 @ P+5
    assert not of(ev, TradeExecuted)
    assert of(ev, AuctionIndicative) == [AuctionIndicative(1, P + 5, 8, -4)]
    ev = drive(PlaceOrder(4, 1, 1, -1, P - 5, 6))  # sell 6 @ P-5
    # D(P-5)=18, S(P-5)=6 -> 6; D(P+5)=8, S(P+5)=18 -> 8: clears 8 at P+5, imbalance -10.
    assert of(ev, AuctionIndicative) == [AuctionIndicative(1, P + 5, 8, -10)]
    assert rejected(drive(PlaceOrder(5, 1, 1, 1, P, 1, time_in_force=1))) == R.market_auction_forbids_order_kind
    assert_snapshot_roundtrip(engine)
    # Before the deadline nothing happens; at it the uncross runs.
    t0 = engine.integ[1].status.plan[0].at_ns
    assert not of(drive(Heartbeat(), at_ns=t0 - 1), AuctionCleared)
    ev = drive(Heartbeat(), at_ns=t0)
    assert ev[0] == MarketStateChanged(1, S.AUCTION, S.ACTIVE, 5)
    cleared = of(ev, AuctionCleared)
    assert cleared == [AuctionCleared(1, 0, t0, P + 5, 8, -10)]
    trades = of(ev, TradeExecuted)
    # Sells in price-then-time priority: account 4 (6 @ P-5) fully, then account 2 (resting, 2 of 12).
    assert [(t.maker_account_id, t.taker_account_id, t.qty_lots, t.price_ticks, t.taker_side) for t in trades] == [
        (4, 3, 6, P + 5, 0), (2, 3, 2, P + 5, 0)]
    fee = engine.specs[1].fee_atoms((P + 5) * 6 * engine.specs[1].atoms_per_tick_lot, 500)
    assert trades[0].maker_fee_atoms == trades[0].taker_fee_atoms == fee
    # Account 1's bid rests again, account 2's ask has 10 left; the book is uncrossed.
    assert engine.books[1].best_bid() == P - 5 and engine.books[1].best_ask() == P + 5
    assert engine._integrity_idle
    assert_snapshot_roundtrip(engine)


def test_market_order_in_auction_and_remainder_canceled() -> None:
    engine, drive = make_engine()
    drive(SetMarketState(GUARDIAN, 1, S.AUCTION))
    drive(PlaceOrder(1, 1, 1, -1, P, 3))
    drive(PlaceOrder(2, 1, 1, 1, 0, 5, order_type=1))  # market buy 5
    ev = drive(SetMarketState(GUARDIAN, 1, S.ACTIVE))
    assert of(ev, AuctionCleared)[0].price_ticks == P and of(ev, AuctionCleared)[0].volume_lots == 3
    canceled = of(ev, OrderCanceled)
    assert [(c.account_id, c.reason, c.qty_lots) for c in canceled] == [(2, CancelReason.auction_remainder, 2)]
    assert len(engine.orders) == 0
