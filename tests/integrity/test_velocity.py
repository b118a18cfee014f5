"""Velocity logic: engagement exactly at the tick and time thresholds, the pause ending exactly at its
length, the bounded window vs a naive scan, and taker clamping."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.core.integrity.states import MarketState, MarketStatus, advance, velocity_pause
from bastion.core.integrity.velocity import VelocityGuard, VelocitySpec

SPEC = VelocitySpec(threshold_ticks=10, lookback_ns=1_000, pause_ns=5_000)


def guard_with(*samples: tuple[int, int], spec: VelocitySpec = SPEC) -> VelocityGuard:
    guard = VelocityGuard(spec)
    for t, p in samples:
        assert not guard.record(t, p)
    return guard


def test_engages_exactly_at_the_tick_threshold() -> None:
    guard = guard_with((0, 100))
    assert not guard.would_engage(500, 109)  # threshold - 1
    assert guard.would_engage(500, 110)  # threshold
    assert guard.would_engage(500, 111)  # threshold + 1
    assert not guard.would_engage(500, 91) and guard.would_engage(500, 90) and guard.would_engage(500, 89)
    assert guard.move_ticks(500, 109) == 9 and guard.move_ticks(500, 110) == 10


def test_lookback_is_inclusive_at_its_old_end() -> None:
    guard = guard_with((0, 100))
    assert guard.would_engage(999, 110)  # age lookback - 1
    assert guard.would_engage(1_000, 110)  # age == lookback: still in the window
    assert not guard.would_engage(1_001, 110)  # age lookback + 1: gone


def test_record_reports_engagement_and_the_pause_disengages_exactly() -> None:
    guard = guard_with((0, 100), (10, 105))
    assert guard.record(20, 110)
    status = velocity_pause(MarketStatus(), now_ns=20, pause_ns=SPEC.pause_ns)
    assert status is not None
    assert advance(status, 20 + SPEC.pause_ns - 1)[0].state == MarketState.AUCTION
    assert advance(status, 20 + SPEC.pause_ns)[0].state == MarketState.ACTIVE
    assert advance(status, 20 + SPEC.pause_ns + 1)[0].state == MarketState.ACTIVE
    guard.reset()
    assert guard.window(30) is None and not guard.would_engage(30, 1_000)


def test_taker_limit_is_the_last_price_that_does_not_engage() -> None:
    guard = guard_with((0, 100), (1, 104))
    assert guard.taker_limit_ticks(2, 1, first_fill_ticks=101) == 109  # min 100 + 9
    assert not guard.would_engage(2, 109) and guard.would_engage(2, 110)
    assert guard.taker_limit_ticks(2, -1, first_fill_ticks=103) == 95  # max 104 - 9
    assert guard.taker_limit_ticks(2, 1, first_fill_ticks=97) == 106  # first fill below the window min
    assert VelocityGuard(SPEC).taker_limit_ticks(0, 1, first_fill_ticks=50) == 59  # empty window


def naive_move(samples: list[tuple[int, int]], now: int, price: int, lookback: int) -> int:
    window = [p for t, p in samples if now - t <= lookback]
    if not window:
        return 0
    return max(price - min(window), max(window) - price, 0)


streams = st.lists(st.tuples(st.integers(0, 400), st.integers(-15, 15)), min_size=1, max_size=120)


def _walk(steps: list[tuple[int, int]]) -> list[tuple[int, int]]:
    t, p, out = 0, 1_000, []
    for dt, dp in steps:
        t, p = t + dt, max(1, p + dp)
        out.append((t, p))
    return out


@settings(max_examples=300, deadline=None)
@given(streams)
def test_bounded_window_equals_naive_scan(steps: list[tuple[int, int]]) -> None:
    spec = VelocitySpec(threshold_ticks=25, lookback_ns=700, pause_ns=1, samples_max=256)
    guard = VelocityGuard(spec)
    seen: list[tuple[int, int]] = []
    for t, p in _walk(steps):
        move = naive_move(seen, t, p, spec.lookback_ns)
        assert guard.move_ticks(t, p) == move
        assert guard.record(t, p) == (move >= spec.threshold_ticks)
        seen.append((t, p))
    assert guard.merges == 0
    clone = VelocityGuard.from_canonical(spec, guard.canonical())
    assert clone.canonical() == guard.canonical()


@settings(max_examples=300, deadline=None)
@given(streams)
def test_overflowing_window_engages_early_never_late(steps: list[tuple[int, int]]) -> None:
    spec = VelocitySpec(threshold_ticks=25, lookback_ns=700, pause_ns=1, samples_max=2)
    guard = VelocityGuard(spec)
    seen: list[tuple[int, int]] = []
    for t, p in _walk(steps):
        assert guard.move_ticks(t, p) >= naive_move(seen, t, p, spec.lookback_ns)
        guard.record(t, p)
        seen.append((t, p))
        assert len(guard._maxq) <= 2 and len(guard._minq) <= 2


@settings(max_examples=300, deadline=None)
@given(streams, st.lists(st.integers(0, 40), min_size=1, max_size=20), st.sampled_from([1, -1]))
def test_clamped_taker_never_engages(steps: list[tuple[int, int]], gaps: list[int], side: int) -> None:
    """A taker walking the book from its first fill up to the clamp never engages, even counting its own fills."""
    spec = VelocitySpec(threshold_ticks=25, lookback_ns=700, pause_ns=1)
    guard = VelocityGuard(spec)
    history = _walk(steps)
    for t, p in history:
        guard.record(t, p)
    now = history[-1][0]
    first = history[-1][1] + side * gaps[0]
    if guard.would_engage(now, first) or first < 1:
        return
    limit = guard.taker_limit_ticks(now, side, first)
    price = first
    for gap in gaps[1:]:
        if (price - limit) * side > 0:
            break
        assert not guard.record(now, price)
        price += side * gap
