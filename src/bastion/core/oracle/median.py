"""Integer medians and ppm deviation helpers.

Even-count rule (used everywhere in the oracle): the median of an even number of values is the
floor of the mean of the two middle values, ``(a + b) // 2`` (rounding toward minus infinity).
The result always lies between the two middle values, so it lies between the minimum and the
maximum of the inputs. The weighted median uses the same rule when the cumulative weight splits
exactly in half, so with all weights equal to 1 it equals the plain median.

Sources: Chainlink OCR takes ``observations[len/2]`` (upper median); Pyth aggregates a median of
publisher votes; Hyperliquid and dYdX use weighted / stake-weighted medians
(reference/risk-engines.md sections 2.3 and 2.9).
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.core.oracle.types import PPM, REPORTS_MAX, WEIGHT_MAX

VALUES_MAX = REPORTS_MAX
"""Most values one median call accepts."""


def median_floor(values: Sequence[int]) -> int:
    """Median of integers; an even count gives the floor of the mean of the two middle values.

    Args:
        values: 1..VALUES_MAX integers in any order, any unit.

    Returns:
        The median, in the unit of ``values``.

    Raises:
        AssertionError: ``values`` is empty or longer than VALUES_MAX (a caller bug).
    """
    assert 0 < len(values) <= VALUES_MAX
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2 == 1:
        result = ordered[middle]
    else:
        result = (ordered[middle - 1] + ordered[middle]) // 2
    assert ordered[0] <= result <= ordered[-1]
    return result


def weighted_median_floor(points: Sequence[tuple[int, int]]) -> int:
    """Weighted median of (value, weight) pairs with integer weights.

    Sort by value, accumulate weights, and take the first value whose cumulative weight ``c``
    satisfies ``2 * c >= W`` (W = total weight). If ``2 * c == W`` exactly, the result is the
    floor of the mean of that value and the next one (the even-count rule of median_floor).
    Ties in value are harmless: equal values are adjacent after sorting.

    Args:
        points: 1..VALUES_MAX pairs; weights in 1..WEIGHT_MAX.

    Returns:
        The weighted median, in the unit of the values.

    Raises:
        AssertionError: empty or too long input, or a weight out of range (a caller bug).
    """
    assert 0 < len(points) <= VALUES_MAX
    ordered = sorted(points)
    weight_total = 0
    for _, weight in ordered:
        assert 1 <= weight <= WEIGHT_MAX
        weight_total += weight
    cumulative = 0
    result = ordered[-1][0]
    for index, (value, weight) in enumerate(ordered):
        cumulative += weight
        if 2 * cumulative > weight_total:
            result = value
            break
        if 2 * cumulative == weight_total:
            assert index + 1 < len(ordered)
            result = (value + ordered[index + 1][0]) // 2
            break
    assert ordered[0][0] <= result <= ordered[-1][0]
    return result


def deviation_ppm_ceil(value: int, reference: int) -> int:
    """|value - reference| / reference in ppm, rounded up (never understates a deviation).

    Args:
        value: any integer in the unit of ``reference``.
        reference: a positive integer.

    Returns:
        A non-negative integer ppm figure.
    """
    assert reference > 0
    distance = abs(value - reference)
    result = -((-distance * PPM) // reference)
    assert result >= 0
    return result


def deviation_exceeds_ppm(value: int, reference: int, deviation_max_ppm: int) -> bool:
    """Whether |value - reference| / reference > deviation_max_ppm / 10**6, compared exactly.

    The comparison is done by cross-multiplication, ``|v - r| * 10**6 > max * r``, so there is
    no rounding at all: a deviation exactly at the limit is accepted.

    Args:
        value: any integer in the unit of ``reference``.
        reference: a positive integer.
        deviation_max_ppm: a non-negative threshold in ppm.
    """
    assert reference > 0
    assert deviation_max_ppm >= 0
    return abs(value - reference) * PPM > deviation_max_ppm * reference
