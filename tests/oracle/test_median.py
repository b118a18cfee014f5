"""Medians and ppm helpers: hand-worked values and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.core.oracle import (
    deviation_exceeds_ppm,
    deviation_ppm_ceil,
    median_floor,
    weighted_median_floor,
)

prices = st.integers(min_value=1, max_value=10**15)


def test_median_odd_count_is_middle_value() -> None:
    assert median_floor([5, 1, 3]) == 3
    assert median_floor([7]) == 7


def test_median_even_count_is_floor_of_mean_of_middle_two() -> None:
    # Middle two of [1, 2, 4, 9] are 2 and 4: mean 3.
    assert median_floor([9, 1, 4, 2]) == 3
    # Middle two are 2 and 3: mean 2.5, floored to 2 (rounding toward minus infinity).
    assert median_floor([3, 2]) == 2
    assert median_floor([-3, -2]) == -3


def test_weighted_median_hyperliquid_weights_tie_takes_floor_mean() -> None:
    """Hyperliquid oracle weights 3,2,2,1,1,1,1,1 (risk-engines.md section 2.3).

    Sorted: 97(1) 98(1) 99(1) 100(3) -> cumulative 6 = exactly half of 12, so the result is
    floor((100 + 101) / 2) = 100.
    """
    points = [(100, 3), (102, 2), (101, 2), (99, 1), (98, 1), (103, 1), (97, 1), (104, 1)]
    assert weighted_median_floor(points) == 100


def test_weighted_median_heavy_source_dominates() -> None:
    assert weighted_median_floor([(10, 1), (20, 5), (30, 1)]) == 20
    # Weight 3 of 5 at the lowest value: cumulative 3 > 2.5 at the first point.
    assert weighted_median_floor([(30, 1), (10, 3), (20, 1)]) == 10


def test_deviation_helpers_exact_and_rounded_up() -> None:
    # 1250 / 3000250 = 416.63 ppm -> 417 (rounded up).
    assert deviation_ppm_ceil(2_999_000, 3_000_250) == 417
    assert deviation_ppm_ceil(100, 100) == 0
    # Exactly at the limit is accepted: 2 % of 100 is 2.
    assert not deviation_exceeds_ppm(102, 100, 20_000)
    assert deviation_exceeds_ppm(103, 100, 20_000)
    assert deviation_exceeds_ppm(97, 100, 20_000)


def test_median_rejects_empty_input() -> None:
    with pytest.raises(AssertionError):
        median_floor([])


@given(st.lists(prices, min_size=1, max_size=40))
def test_weighted_median_with_unit_weights_equals_median(values: list[int]) -> None:
    assert weighted_median_floor([(v, 1) for v in values]) == median_floor(values)


@given(st.lists(st.tuples(prices, st.integers(1, 1000)), min_size=1, max_size=40))
def test_weighted_median_within_range(points: list[tuple[int, int]]) -> None:
    result = weighted_median_floor(points)
    assert min(v for v, _ in points) <= result <= max(v for v, _ in points)


@given(st.lists(prices, min_size=1, max_size=40).flatmap(lambda v: st.tuples(
    st.just(v), st.permutations(v))))
def test_median_permutation_invariant(pair: tuple[list[int], list[int]]) -> None:
    values, shuffled = pair
    assert median_floor(shuffled) == median_floor(values)


@given(st.lists(prices, min_size=2, max_size=30), st.integers(-(10**18), 10**18))
def test_one_manipulated_value_among_three_or_more_stays_in_honest_range(
    honest: list[int], bad: int
) -> None:
    """With >= 2 honest values and one arbitrary value, the median is inside the honest range."""
    result = median_floor(honest + [bad])
    assert min(honest) <= result <= max(honest)
