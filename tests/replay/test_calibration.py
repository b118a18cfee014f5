"""Trader size/leverage distributions: the fallback tables are exactly the fit of the shared data."""

from __future__ import annotations

import random

from bastion.sim.replay.calibration import (
    HYPERLIQUID_2023,
    PROBABILITIES_PPM,
    QuantileTable,
    fit_hyperliquid_2023,
    load_calibration,
)
from tests.replay._helpers import shared_data_or_skip


def test_fallback_equals_the_fit_of_the_shared_data() -> None:
    shared = shared_data_or_skip("hyperliquid-historical-2023")
    fitted = fit_hyperliquid_2023(shared / "hyperliquid-historical-2023")
    assert fitted.notional_usd_cents == HYPERLIQUID_2023.notional_usd_cents
    assert fitted.leverage_milli == HYPERLIQUID_2023.leverage_milli
    assert load_calibration("hyperliquid-2023", shared).source.startswith("fitted:")


def test_fallback_is_used_without_shared_data() -> None:
    assert load_calibration("hyperliquid-2023", None) is HYPERLIQUID_2023


def test_sampling_is_seeded_interpolated_and_clamped() -> None:
    table = QuantileTable(PROBABILITIES_PPM, tuple(range(100, 100 + 10 * len(PROBABILITIES_PPM), 10)))
    draws = [table.sample(random.Random(3)) for _ in range(3)]
    assert draws[0] == draws[1] == draws[2]
    values = [table.sample(random.Random(seed)) for seed in range(2_000)]
    assert min(values) >= table.values[0] and max(values) <= table.values[-1]
    median = sorted(values)[len(values) // 2]
    assert abs(median - table.values[PROBABILITIES_PPM.index(500_000)]) <= 10


def test_realistic_shapes() -> None:
    """Sanity of the fitted shapes: notional median ~196 USD, leverage median ~1.3x, tail <= ~43x."""
    notional, leverage = HYPERLIQUID_2023.notional_usd_cents, HYPERLIQUID_2023.leverage_milli
    median = PROBABILITIES_PPM.index(500_000)
    assert 10_000 <= notional.values[median] <= 50_000
    assert 1_000 <= leverage.values[median] <= 2_000
    assert leverage.values[-1] <= 50_000
