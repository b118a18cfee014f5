"""Volatility-scaled margin: an integer EWMA of index log-returns drives a bounded margin multiplier.

* log-return in ppm: ``r = ln(P1 / P0)`` computed with the atanh series
  ``ln(P1/P0) = 2 * (z + z^3/3 + z^5/5 + ...)``, ``z = (P1 - P0) / (P1 + P0)``, in 10**18 fixed point
  after range reduction by powers of two (|z| < 1/3), truncated toward zero to ppm.
* EWMA variance (RiskMetrics, J.P. Morgan 1996: ``var' = lambda * var + (1 - lambda) * r^2``,
  lambda 0.94 for daily data) in ppm^2, rounded **up** each step (the venue's favour: never understates).
* volatility ``sigma = isqrt(var)`` in ppm per sample period, rounded up.
* multiplier ``m = clamp(sigma / sigma_baseline, m_min, m_max)`` in ppm; margin fractions scale by m
  (rounded up, capped at 100 %) and the bracket deductions are recomputed so the requirement stays
  continuous (same construction as ``instruments._margin_tiers``).

The multiplier is meant to be updated at a fixed cadence of engine time (e.g. once per index sample of
one minute), journaled as part of the risk state, and applied to new requirements; bounds keep it from
whipsawing margins (``m_min`` >= 1.0 never lowers the configured margins below their floor).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from math import isqrt

from bastion.core.instruments import InstrumentSpec, MarginTier
from bastion.core.risk._types import PPM

__all__ = [
    "LOG_SCALE",
    "VolMarginConfig",
    "ewma_variance_next",
    "log_return_ppm",
    "scaled_spec",
    "scaled_tiers",
    "vol_multiplier_ppm",
    "volatility_ppm",
]

LOG_SCALE = 10**18
"""Fixed-point scale of the log series."""

LOG_TERMS_MAX = 64
"""Most series terms (the loop stops earlier once a term underflows the scale)."""

LN2_SCALED = 693_147_180_559_945_309
"""ln 2 * 10**18, truncated (ln 2 = 0.693147180559945309417...)."""


@dataclass(frozen=True, slots=True)
class VolMarginConfig:
    """Parameters of the volatility multiplier.

    Attributes:
        lambda_ppm: EWMA decay per sample (RiskMetrics 0.94 daily; ~0.999 for minute samples).
        baseline_vol_ppm: per-sample volatility at which the multiplier is 1.0.
        multiplier_min_ppm / multiplier_max_ppm: bounds of the multiplier (1.0 .. 3.0 by default).
    """

    lambda_ppm: int = 940_000
    baseline_vol_ppm: int = 1_000
    multiplier_min_ppm: int = 1_000_000
    multiplier_max_ppm: int = 3_000_000

    def __post_init__(self) -> None:
        assert 0 < self.lambda_ppm < PPM and self.baseline_vol_ppm > 0
        assert 0 < self.multiplier_min_ppm <= self.multiplier_max_ppm <= 100 * PPM


def _ln_ratio_scaled(num: int, den: int) -> int:
    """``ln(num / den) * LOG_SCALE`` for ``num >= den > 0``, truncated (fixed-point atanh series)."""
    shift = max(0, num.bit_length() - den.bit_length())
    den_shifted = den << shift  # num / den_shifted lies in (1/2, 2): |z| < 1/3, fast convergence
    diff = num - den_shifted
    z = abs(diff) * LOG_SCALE // (num + den_shifted)
    z2 = z * z // LOG_SCALE
    term = z
    series = 0
    for j in range(LOG_TERMS_MAX):
        if term == 0:
            break
        series += term // (2 * j + 1)
        term = term * z2 // LOG_SCALE
    return shift * LN2_SCALED + (2 * series if diff >= 0 else -2 * series)


def log_return_ppm(previous_ticks: int, current_ticks: int) -> int:
    """``ln(current / previous)`` in ppm, truncated toward zero (both prices > 0).

    The ratio is first brought into (1/2, 2) by a power of two (``ln r = n ln 2 + ln(r / 2**n)``), so
    the atanh series converges to the 10**-18 scale within LOG_TERMS_MAX terms for any ratio.
    """
    assert previous_ticks > 0 and current_ticks > 0
    if current_ticks >= previous_ticks:
        return _ln_ratio_scaled(current_ticks, previous_ticks) * PPM // LOG_SCALE
    return -(_ln_ratio_scaled(previous_ticks, current_ticks) * PPM // LOG_SCALE)


def ewma_variance_next(variance_ppm2: int, return_ppm: int, lambda_ppm: int) -> int:
    """``ceil((lambda * var + (1 - lambda) * r^2) / 10**6)`` in ppm^2 (never understates)."""
    assert variance_ppm2 >= 0 and 0 < lambda_ppm < PPM
    numerator = lambda_ppm * variance_ppm2 + (PPM - lambda_ppm) * return_ppm * return_ppm
    return -((-numerator) // PPM)


def volatility_ppm(variance_ppm2: int) -> int:
    """``ceil(sqrt(var))`` in ppm."""
    assert variance_ppm2 >= 0
    root = isqrt(variance_ppm2)
    return root if root * root == variance_ppm2 else root + 1


def vol_multiplier_ppm(variance_ppm2: int, config: VolMarginConfig) -> int:
    """``clamp(ceil(sigma / baseline), min, max)`` in ppm."""
    raw = -((-volatility_ppm(variance_ppm2) * PPM) // config.baseline_vol_ppm)
    return min(max(raw, config.multiplier_min_ppm), config.multiplier_max_ppm)


def scaled_tiers(tiers: tuple[MarginTier, ...], multiplier_ppm: int) -> tuple[MarginTier, ...]:
    """Brackets with every fraction multiplied by ``multiplier`` (rounded up, capped at 100 %).

    Deductions are recomputed from the caps so the requirement stays continuous; rates stay
    non-decreasing and ``mmf <= imf`` (both scaled the same way, then capped).
    """
    assert multiplier_ppm > 0
    out: list[MarginTier] = []
    prev_cap = prev_imf = prev_mmf = im_ded = mm_ded = 0
    for tier in tiers:
        imf = min(PPM, -((-tier.imf_ppm * multiplier_ppm) // PPM))
        mmf = min(PPM, -((-tier.mmf_ppm * multiplier_ppm) // PPM))
        im_ded += prev_cap * (imf - prev_imf)
        mm_ded += prev_cap * (mmf - prev_mmf)
        out.append(MarginTier(tier.notional_max_atoms, imf, mmf, im_ded, mm_ded))
        prev_cap, prev_imf, prev_mmf = tier.notional_max_atoms, imf, mmf
    assert all(t.mmf_ppm <= t.imf_ppm for t in out)
    return tuple(out)


def scaled_spec(spec: InstrumentSpec, multiplier_ppm: int) -> InstrumentSpec:
    """``spec`` with margin brackets scaled by ``multiplier_ppm`` (everything else unchanged)."""
    return dataclasses.replace(spec, margin_tiers=scaled_tiers(spec.margin_tiers, multiplier_ppm))
