"""Price bands, velocity logic and LULD through the engine: each engages/disengages exactly at its
thresholds, no trade happens outside the band, and a rejected command changes nothing."""

from __future__ import annotations

import pytest

from bastion.core.commands import AmendOrder, Heartbeat, PlaceOrder, SetMarkPrice
from bastion.core.events import MarketStateChanged, OrderAccepted, OrderCanceled, TradeExecuted
from bastion.core.integrity.states import MarketState as S
from bastion.core.rejects import CancelReason
from bastion.core.rejects import RejectCode as R
from tests.integrity._engine_helpers import P, assert_snapshot_roundtrip, make_engine, of, rejected

BAND = {"band_ppm": 10_000}  # 1 % of 600,000 ticks = 6,000 ticks: band [594,000, 606,000]
HIGH, LOW = P + 6_000, P - 6_000


def test_band_edges_are_inclusive_and_rejections_change_nothing() -> None:
    engine, drive = make_engine(BAND)
    assert of(drive(PlaceOrder(1, 1, 1, 1, HIGH - 7_000, 1)), OrderAccepted)  # passive, far: fine
    before = engine.state_hash()
    assert rejected(drive(PlaceOrder(1, 1, 2, 1, HIGH + 1, 1))) == R.price_ticks_outside_band
    assert rejected(drive(PlaceOrder(1, 1, 2, -1, LOW - 1, 1))) == R.price_ticks_outside_band
    assert rejected(drive(AmendOrder(1, 1, HIGH + 1, 1))) == R.price_ticks_outside_band
    assert engine.state_hash() == before
    assert of(drive(PlaceOrder(2, 1, 1, 1, HIGH, 1)), OrderAccepted)
    assert of(drive(PlaceOrder(3, 1, 1, -1, LOW, 1)), TradeExecuted)  # sells at LOW, trades at HIGH (maker)
    assert_snapshot_roundtrip(engine)


def test_both_sides_mode_rejects_passive_prices_outside() -> None:
    engine, drive = make_engine({**BAND, "band_mode": "both_sides"})
    assert rejected(drive(PlaceOrder(1, 1, 1, 1, LOW - 1, 1))) == R.price_ticks_outside_band
    assert of(drive(PlaceOrder(1, 1, 1, 1, LOW, 1)), OrderAccepted)


def test_market_order_protection_is_clamped_into_the_band() -> None:
    engine, drive = make_engine(BAND)
    drive(PlaceOrder(2, 1, 1, -1, P + 5_000, 1))
    drive(PlaceOrder(2, 1, 2, -1, HIGH, 1))
    ev = drive(PlaceOrder(1, 1, 1, 1, 0, 5, order_type=1))
    # best 605,000 + 5 % would be 635,250; the band caps the protection price at 606,000.
    assert of(ev, OrderAccepted)[0].price_ticks == HIGH
    assert [t.price_ticks for t in of(ev, TradeExecuted)] == [P + 5_000, HIGH]


def test_mark_move_sweeps_resting_orders_beyond_the_band() -> None:
    engine, drive = make_engine(BAND)
    drive(PlaceOrder(2, 1, 1, -1, P + 100, 1))
    drive(PlaceOrder(2, 1, 2, -1, P + 9_000, 1))  # passive ask above the band: allowed
    drive(PlaceOrder(1, 1, 1, 1, P - 100, 1))
    ev = drive(SetMarkPrice(1, P + 20_000))  # band [613,800, 626,200]: both asks now below low
    swept = of(ev, OrderCanceled)
    assert [(c.account_id, c.reason) for c in swept] == [(2, CancelReason.outside_band)] * 2
    assert engine.integ[1].band.low_ticks == 613_800 and not engine.integ[1].sweep_pending
    assert_snapshot_roundtrip(engine)


def test_band_sweep_is_bounded_and_blocks_entry_while_pending() -> None:
    engine, drive = make_engine({**BAND, "band_sweep_orders_max": 2})
    for i in range(5):
        drive(PlaceOrder(2, 1, i + 1, -1, P + 100 + i, 1))
    ev = drive(SetMarkPrice(1, P + 20_000))
    assert len(of(ev, OrderCanceled)) == 2 and engine.integ[1].sweep_pending
    # The next command sweeps two more before it runs: still pending, so entry is refused.
    ev = drive(PlaceOrder(1, 1, 1, 1, P + 19_000, 1))
    assert [type(e).__name__ for e in ev] == ["OrderCanceled", "OrderCanceled", "CommandRejected"]
    assert ev[-1].code == R.band_sweep_in_progress
    ev = drive(PlaceOrder(1, 1, 2, 1, P + 19_000, 1))
    assert len(of(ev, OrderCanceled)) == 1 and of(ev, OrderAccepted)
    assert_snapshot_roundtrip(engine)


VEL = {"velocity_threshold_ticks": 100, "velocity_lookback_ns": 1_000_000, "velocity_pause_ns": 5_000_000}


@pytest.mark.parametrize(("move", "engages"), [(99, False), (100, True), (101, True)])
def test_velocity_engages_exactly_at_the_threshold(move: int, engages: bool) -> None:
    engine, drive = make_engine(VEL)
    drive(PlaceOrder(2, 1, 1, -1, P, 1))
    drive(PlaceOrder(1, 1, 1, 1, P, 1))  # first trade at P starts the window
    drive(PlaceOrder(2, 1, 2, -1, P + move, 3))
    ev = drive(PlaceOrder(3, 1, 1, 1, P + move, 3))
    if not engages:
        assert [t.price_ticks for t in of(ev, TradeExecuted)] == [P + move]
        assert engine.integ[1].status.state == S.ACTIVE
        return
    assert not of(ev, TradeExecuted)
    assert of(ev, MarketStateChanged) == [MarketStateChanged(1, S.ACTIVE, S.AUCTION, 2)]
    assert engine.integ[1].auction_book is not None and len(engine.integ[1].auction_book.orders) == 1
    assert_snapshot_roundtrip(engine)
    engaged_at = drive.now_ns
    assert not of(drive(Heartbeat(), at_ns=engaged_at + 5_000_000 - 1), MarketStateChanged)
    ev = drive(Heartbeat(), at_ns=engaged_at + 5_000_000)
    assert of(ev, MarketStateChanged) == [MarketStateChanged(1, S.AUCTION, S.ACTIVE, 5)]
    assert [t.qty_lots for t in of(ev, TradeExecuted)] == [3] and of(ev, TradeExecuted)[0].price_ticks == P + move


def test_velocity_clamp_stops_a_sweep_and_cancels_an_ioc_remainder() -> None:
    engine, drive = make_engine(VEL)
    drive(PlaceOrder(2, 1, 1, -1, P, 1))
    drive(PlaceOrder(1, 1, 1, 1, P, 1))
    drive(PlaceOrder(2, 1, 2, -1, P + 50, 1))
    drive(PlaceOrder(2, 1, 3, -1, P + 150, 1))
    ev = drive(PlaceOrder(3, 1, 1, 1, P + 200, 5, time_in_force=1))
    assert [t.price_ticks for t in of(ev, TradeExecuted)] == [P + 50]
    assert of(ev, MarketStateChanged)[0].to_state == S.AUCTION
    assert [(c.reason, c.qty_lots) for c in of(ev, OrderCanceled)] == [(CancelReason.velocity_pause, 4)]
    # FOK that would engage is refused and changes nothing.
    engine2, drive2 = make_engine(VEL)
    drive2(PlaceOrder(2, 1, 1, -1, P, 1))
    drive2(PlaceOrder(1, 1, 1, 1, P, 1))
    drive2(PlaceOrder(2, 1, 2, -1, P + 150, 1))
    before = engine2.state_hash()
    assert rejected(drive2(PlaceOrder(3, 1, 1, 1, P + 150, 1, time_in_force=2))) == R.fok_not_fillable
    assert engine2.state_hash() == before


LULD = {**BAND, "luld_halt_ns": 1_000_000, "luld_limit_state_ns": 500_000, "luld_auction_ns": 2_000_000}


@pytest.mark.parametrize(("wait", "halts"), [(499_999, False), (500_000, True)])
def test_luld_halts_exactly_after_the_limit_state_time(wait: int, halts: bool) -> None:
    engine, drive = make_engine(LULD)
    ev = drive(PlaceOrder(1, 1, 1, 1, HIGH, 1))  # best bid at the upper band: Limit State
    entered = drive.now_ns
    assert engine.integ[1].luld.side == 1 and not of(ev, MarketStateChanged)
    ev = drive(Heartbeat(), at_ns=entered + wait)
    if not halts:
        assert engine.integ[1].status.state == S.ACTIVE
        return
    assert of(ev, MarketStateChanged) == [MarketStateChanged(1, S.ACTIVE, S.HALTED, 3)]
    assert rejected(drive(PlaceOrder(2, 1, 1, -1, HIGH, 1))) == R.market_halted
    assert_snapshot_roundtrip(engine)
    halted_at = entered + wait
    ev = drive(Heartbeat(), at_ns=halted_at + 1_000_000)
    assert of(ev, MarketStateChanged) == [MarketStateChanged(1, S.HALTED, S.AUCTION, 4)]
    drive(PlaceOrder(2, 1, 1, -1, HIGH, 1))
    ev = drive(Heartbeat(), at_ns=halted_at + 3_000_000)
    assert of(ev, MarketStateChanged) == [MarketStateChanged(1, S.AUCTION, S.ACTIVE, 5)]
    assert [t.price_ticks for t in of(ev, TradeExecuted)] == [HIGH]


def test_leaving_the_limit_state_resets_the_timer() -> None:
    engine, drive = make_engine(LULD)
    drive(PlaceOrder(1, 1, 1, 1, HIGH, 1))
    t0 = drive.now_ns
    drive(PlaceOrder(2, 1, 1, -1, HIGH, 1), at_ns=t0 + 100)  # trades the bid away: Limit State exited
    assert engine.integ[1].luld.side == 0
    assert engine.integ[1].status.state == S.ACTIVE
    drive(Heartbeat(), at_ns=t0 + 600_000)
    assert engine.integ[1].status.state == S.ACTIVE
