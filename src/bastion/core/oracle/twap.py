"""Time-weighted average price and integer exponential moving average.

TWAP: a price sample holds from its own time until the next sample's time (previous-tick
hold, as in Uniswap v3's cumulative-price oracle and Drift's oracle TWAPs); the average over a
window is ``sum(price_i * duration_i) // sum(duration_i)`` (floor). No sample is interpolated.

EMA: ``ema' = ema + trunc((sample - ema) * alpha_ppm / 10**6)``, one step per update; the step is
truncated toward zero, so the EMA never overshoots the sample and stays between the previous EMA
and the sample. Smoothing is given per update as ``alpha_ppm`` (the classic span N corresponds to
``alpha = 2 / (N + 1)``, see ``alpha_ppm_from_span``). Because the step is per update and not
per unit of time, callers should update at a regular cadence (e.g. once per engine tick); for
irregular samples use the TWAP.

Sources: reference/risk-engines.md section 2.9 (Uniswap v3 TWAP; Pyth EMA), 2.2 (Drift 5-min and
1-h oracle TWAPs), 2.3 (Hyperliquid 150 s EMA).
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.core.oracle.types import PPM

TWAP_SAMPLES_MAX = 65_536
"""Most samples one twap() call accepts (Uniswap v3 keeps up to 65,535 observations)."""


def twap(samples: Sequence[tuple[int, int]], start_ns: int, end_ns: int) -> int | None:
    """Time-weighted average of a step function of prices over ``[start_ns, end_ns)``.

    Each sample ``(time_ns, price)`` holds from ``time_ns`` until the next sample's time (or
    ``end_ns`` for the last one). Time before the first sample is not covered and does not
    count: the average is over the covered part of the window only. Samples at or after
    ``end_ns`` are ignored; a sample before ``start_ns`` covers the window from ``start_ns`` on
    until the next sample.

    Args:
        samples: up to TWAP_SAMPLES_MAX pairs ``(time_ns, price)``, sorted by non-decreasing
            time (at equal times the later sample wins; the earlier one covers zero time).
            Prices are integers in any unit.
        start_ns: window start, inclusive (ns).
        end_ns: window end, exclusive (ns), >= start_ns.

    Returns:
        The floor of the time-weighted mean, in the unit of the prices, or None if no sample
        covers any part of the window.

    Raises:
        AssertionError: unsorted samples, too many samples, or end_ns < start_ns (a caller bug).
    """
    assert start_ns <= end_ns
    assert len(samples) <= TWAP_SAMPLES_MAX
    weighted_sum = 0
    duration_total_ns = 0
    for index, (time_ns, price) in enumerate(samples):
        next_ns = samples[index + 1][0] if index + 1 < len(samples) else end_ns
        assert time_ns <= next_ns or index + 1 == len(samples)
        begin_ns = max(time_ns, start_ns)
        finish_ns = min(next_ns, end_ns)
        if finish_ns > begin_ns:
            weighted_sum += price * (finish_ns - begin_ns)
            duration_total_ns += finish_ns - begin_ns
    assert duration_total_ns <= end_ns - start_ns
    if duration_total_ns == 0:
        return None
    return weighted_sum // duration_total_ns


def ema_next(ema: int, sample: int, alpha_ppm: int) -> int:
    """One EMA step: ``ema + trunc((sample - ema) * alpha_ppm / 10**6)``.

    Args:
        ema: the current average (any integer unit).
        sample: the new sample, same unit.
        alpha_ppm: smoothing factor per update, 0..10**6 (10**6 = follow the sample exactly).

    Returns:
        The new average; always between ``ema`` and ``sample`` inclusive (truncation toward
        zero of the step, never overshooting). Steps smaller than one unit are lost, so use a
        fine price grid (e.g. 10**-8).
    """
    assert 0 <= alpha_ppm <= PPM
    delta = sample - ema
    step = abs(delta) * alpha_ppm // PPM
    result = ema + step if delta >= 0 else ema - step
    assert min(ema, sample) <= result <= max(ema, sample)
    return result


def alpha_ppm_from_span(span: int) -> int:
    """Per-update smoothing ``2 / (span + 1)`` in ppm, floor-rounded (span >= 1 updates).

    A span of N updates gives the conventional N-period EMA (span 1 gives 10**6, no smoothing).
    """
    assert span >= 1
    result = 2 * PPM // (span + 1)
    assert 0 < result <= PPM
    return result
