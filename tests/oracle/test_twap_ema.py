"""TWAP and EMA: hand-worked values and properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bastion.core.oracle import alpha_ppm_from_span, ema_next, twap


def test_twap_step_function_over_full_window() -> None:
    """100 holds 10 s, 200 holds 20 s, 400 holds the last 10 s of [0, 40):
    (100*10 + 200*20 + 400*10) / 40 = 9000 / 40 = 225."""
    samples = [(0, 100), (10, 200), (30, 400)]
    assert twap(samples, 0, 40) == 225


def test_twap_window_clips_samples_and_floors() -> None:
    """[5, 35): 100 for 5, 200 for 20, 400 for 5 -> 6500 / 30 = 216.67 -> 216 (floor)."""
    samples = [(0, 100), (10, 200), (30, 400)]
    assert twap(samples, 5, 35) == 216


def test_twap_sample_before_window_covers_its_start() -> None:
    assert twap([(-100, 50)], 0, 10) == 50
    # A later sample within the window takes over: 50 for 4, 80 for 6 -> 680 / 10 = 68.
    assert twap([(-100, 50), (4, 80)], 0, 10) == 68


def test_twap_uncovered_parts_do_not_count() -> None:
    # First sample at 6: only [6, 10) is covered -> 70.
    assert twap([(6, 70)], 0, 10) == 70
    assert twap([(10, 70)], 0, 10) is None
    assert twap([], 0, 10) is None


def test_ema_hand_worked() -> None:
    assert ema_next(100, 200, 250_000) == 125  # 100 + 100 * 0.25
    assert ema_next(100, 101, 500_000) == 100  # step 0.5 truncated toward zero
    assert ema_next(200, 100, 333_333) == 167  # 200 - trunc(33.3333)
    assert ema_next(100, 200, 1_000_000) == 200
    assert ema_next(100, 200, 0) == 100
    # Span 60 updates: alpha = 2 / 61 = 32,786.885 ppm -> 32,786.
    assert alpha_ppm_from_span(60) == 32_786
    assert alpha_ppm_from_span(1) == 1_000_000


def test_ema_sequence_converges_without_overshoot() -> None:
    """Three steps at alpha 0.5 from 0 toward 1000: 500, 750, 875."""
    value = 0
    trace = []
    for _ in range(3):
        value = ema_next(value, 1_000, 500_000)
        trace.append(value)
    assert trace == [500, 750, 875]


@given(st.integers(-(10**18), 10**18), st.integers(-(10**18), 10**18), st.integers(0, 10**6))
def test_ema_stays_between_previous_and_sample(ema: int, sample: int, alpha: int) -> None:
    result = ema_next(ema, sample, alpha)
    assert min(ema, sample) <= result <= max(ema, sample)


@given(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 10**12)), min_size=1, max_size=50),
    st.integers(0, 10**6),
    st.integers(1, 10**6),
)
def test_twap_within_sample_range(
    points: list[tuple[int, int]], start_ns: int, length_ns: int
) -> None:
    samples = sorted(points)
    result = twap(samples, start_ns, start_ns + length_ns)
    if result is not None:
        assert min(p for _, p in samples) <= result <= max(p for _, p in samples)


@given(st.integers(1, 10**12), st.integers(0, 10**9), st.integers(1, 10**9))
def test_twap_of_constant_is_constant(price: int, start_ns: int, length_ns: int) -> None:
    assert twap([(start_ns - 1, price)], start_ns, start_ns + length_ns) == price
