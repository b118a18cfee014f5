"""LULD: Limit State entry/exit and the halt exactly at the limit-state duration; reference updates."""

from __future__ import annotations

from bastion.core.integrity.bands import band_around
from bastion.core.integrity.luld import LimitSide, LuldSpec, LuldState, limit_side, luld_reference, luld_step
from bastion.core.integrity.states import MarketState, MarketStatus, advance, luld_halt

SPEC = LuldSpec(limit_state_ns=15_000, halt_ns=300_000, auction_ns=10_000)
BAND = band_around(10_000, 50_000, price_ticks_max=1_000_000)  # [9500, 10500]


def test_limit_side_at_the_edges() -> None:
    assert limit_side(10_499, 10_600, BAND) == LimitSide.NONE
    assert limit_side(10_500, 10_600, BAND) == LimitSide.UPPER  # bid == high
    assert limit_side(9_400, 9_500, BAND) == LimitSide.LOWER  # ask == low
    assert limit_side(9_400, 9_501, BAND) == LimitSide.NONE
    assert limit_side(None, None, BAND) == LimitSide.NONE


def test_halts_exactly_at_the_limit_state_duration() -> None:
    start = luld_step(LuldState(), 1_000, LimitSide.UPPER, SPEC)
    assert start.entered and not start.halt and start.state == LuldState(LimitSide.UPPER, 1_000)
    before = luld_step(start.state, 1_000 + 15_000 - 1, LimitSide.UPPER, SPEC)  # threshold - 1
    assert not before.halt and before.state == start.state
    at = luld_step(start.state, 1_000 + 15_000, LimitSide.UPPER, SPEC)  # threshold
    assert at.halt and at.state == LuldState()
    after = luld_step(start.state, 1_000 + 15_001, LimitSide.UPPER, SPEC)  # threshold + 1
    assert after.halt


def test_leaving_or_switching_sides_resets_the_timer() -> None:
    s = luld_step(LuldState(), 0, LimitSide.UPPER, SPEC).state
    out = luld_step(s, 14_000, LimitSide.NONE, SPEC)
    assert out.exited and out.state == LuldState()
    again = luld_step(out.state, 14_500, LimitSide.UPPER, SPEC)
    assert again.entered and not luld_step(again.state, 15_000, LimitSide.UPPER, SPEC).halt
    assert luld_step(again.state, 14_500 + 15_000, LimitSide.UPPER, SPEC).halt
    flipped = luld_step(s, 14_999, LimitSide.LOWER, SPEC)
    assert flipped.entered and flipped.state == LuldState(LimitSide.LOWER, 14_999)
    assert not luld_step(flipped.state, 15_000, LimitSide.LOWER, SPEC).halt


def test_halt_then_auction_then_active_on_schedule() -> None:
    halted = luld_halt(MarketStatus(), 16_000, SPEC.halt_ns, SPEC.auction_ns)
    assert halted is not None
    assert advance(halted, 16_000 + 300_000 - 1)[0].state == MarketState.HALTED
    assert advance(halted, 16_000 + 300_000)[0].state == MarketState.AUCTION
    assert advance(halted, 16_000 + 310_000 - 1)[0].state == MarketState.AUCTION
    assert advance(halted, 16_000 + 310_000)[0].state == MarketState.ACTIVE


def test_reference_moves_only_by_the_update_threshold() -> None:
    assert luld_reference(10_000, 10_099, 10_000) == 10_000  # 0.99 %
    assert luld_reference(10_000, 10_100, 10_000) == 10_100  # exactly 1 %
    assert luld_reference(10_000, 9_900, 10_000) == 9_900
    assert luld_reference(10_000, 9_901, 10_000) == 10_000


def test_zero_limit_state_halts_on_entry() -> None:
    step = luld_step(LuldState(), 5, LimitSide.LOWER, LuldSpec(limit_state_ns=0))
    assert step.entered and step.halt
