"""PriceGuard guard rails and the OracleState pipeline."""

from __future__ import annotations

import pytest

from bastion.core.oracle import (
    AggregateConfig,
    GuardConfig,
    OracleConfigError,
    OracleState,
    OracleStateConfig,
    OracleUpdate,
    OracleValidity,
    PriceGuard,
    QuotePolicy,
    RejectReason,
    SourceConfig,
    SourcePrice,
)

S = 10**9


def guard_config(**overrides: int) -> GuardConfig:
    values = {
        "history_max": 16,
        "twap_window_ns": 300 * S,  # Drift 5-min oracle TWAP
        "far_deviation_max_ppm": 100_000,  # 10 %
        "pause_deviation_max_ppm": 500_000,  # Drift: liquidation blocked at >= 50 % from TWAP
        "staleness_max_ns": 60 * S,
    }
    values.update(overrides)
    return GuardConfig(**values)


def test_divergence_flags_and_liquidation_pause() -> None:
    """Drift-style oracle validity (risk-engines.md section 2.2).

    t=0 100000: no history -> insufficient_history (liquidations not paused).
    t=60 100000: TWAP 100000 -> valid.
    t=120 115000: 15 % above TWAP 100000 -> far_from_twap (flag only).
    t=180 200000: TWAP over [0,180) = (100000*120 + 115000*60) / 180 = 105000; deviation
    95000 / 105000 = 90.5 % > 50 % -> too_volatile, liquidations paused.
    """
    guard = PriceGuard(guard_config())
    first = guard.update(0, 100_000)
    assert (first.validity, first.liquidations_paused, first.twap) == (
        OracleValidity.insufficient_history, False, None)
    assert guard.update(60 * S, 100_000).validity is OracleValidity.valid
    far = guard.update(120 * S, 115_000)
    assert (far.validity, far.deviation_ppm, far.liquidations_paused) == (
        OracleValidity.far_from_twap, 150_000, False)
    spike = guard.update(180 * S, 200_000)
    assert spike.twap == 105_000
    assert spike.deviation_ppm == 904_762  # 95000 / 105000 = 904,761.9 ppm, rounded up
    assert spike.validity is OracleValidity.too_volatile
    assert spike.liquidations_paused
    assert guard.status(200 * S).liquidations_paused


def test_stale_price_pauses_liquidations() -> None:
    guard = PriceGuard(guard_config())
    assert guard.status(0).validity is OracleValidity.no_price
    assert guard.status(0).liquidations_paused
    guard.update(0, 100_000)
    guard.update(30 * S, 100_000)
    assert guard.status(90 * S).validity is OracleValidity.valid  # exactly 60 s old
    stale = guard.status(91 * S)
    assert (stale.validity, stale.liquidations_paused, stale.price) == (
        OracleValidity.stale, True, 100_000)


def test_change_per_update_clamp() -> None:
    """5 % clamp: 100000 -> 120000 is output as 105000, then 110250 (5 % of 105000 = 5250)."""
    guard = PriceGuard(guard_config(change_per_update_max_ppm=50_000))
    guard.update(0, 100_000)
    first = guard.update(S, 120_000)
    assert (first.price, first.price_raw, first.clamped) == (105_000, 120_000, True)
    second = guard.update(2 * S, 120_000)
    assert (second.price, second.clamped) == (110_250, True)
    assert guard.update(3 * S, 111_000).clamped is False


def test_twap_sample_sanitisation_limits_spike_drag() -> None:
    """Sample clamp 10 % of TWAP (Drift sanitises TWAP samples): a 10x spike is stored as
    110000, so the next TWAP over [0, 20) is (100000*10 + 110000*10) / 20 = 105000."""
    guard = PriceGuard(guard_config(twap_sample_clamp_ppm=100_000))
    guard.update(0, 100_000)
    spike = guard.update(10 * S, 1_000_000)
    assert spike.price == 1_000_000  # output is not clamped (no per-update clamp configured)
    assert guard.last() == (10 * S, 110_000)
    assert guard.twap(20 * S) == 105_000


def test_ring_buffer_is_bounded() -> None:
    guard = PriceGuard(guard_config(history_max=4))
    for i in range(10):
        guard.update(i * S, 100_000 + i)
    assert guard.samples() == tuple((i * S, 100_000 + i) for i in range(6, 10))
    with pytest.raises(OracleConfigError):
        guard_config(history_max=0)
    with pytest.raises(AssertionError):
        guard.update(0, 100_000)  # time went backwards


def _state_config() -> OracleStateConfig:
    ema = SourceConfig("bastion.implied-ema", "USD", 300 * S)
    aggregate_config = AggregateConfig(
        symbol="BTC",
        quote="USD",
        price_exponent=-2,
        sources=(SourceConfig("usd", "USD", 60 * S), SourceConfig("usdc", "USDC", 60 * S)),
        quorum_min=2,
        outlier_deviation_max_ppm=20_000,
        quotes=(QuotePolicy("USDC", 20_000, (ema,), cross_deviation_max_ppm=5_000),),
    )
    return OracleStateConfig(aggregate_config, guard_config(), rate_ema_alpha_ppm=500_000)


def test_oracle_state_smooths_implied_rate_and_drops_depeg() -> None:
    """Tick 1: no EMA yet -> implied fallback (USDC at 1.0). Tick 2: the EMA (1.0) is the direct
    rate; implied 2000000/2000400 = 0.9998 agrees within 0.5 %, so USDC 20004.00 is converted at
    the smoothed 1.0 (independent of the USD venue) and the index is (2000000 + 2000400) / 2.
    Tick 3: USDC quotes 14 % high -> implied
    0.877 is depegged -> USDC dropped -> quorum 2 fails -> no price; the last price is still
    fresh so liquidations are not paused until it goes stale."""
    state = OracleState(_state_config())

    def tick(t: int, usd: int, usdc: int) -> OracleUpdate:
        reports = [
            SourcePrice("usd", "BTC", "USD", usd, -2, t),
            SourcePrice("usdc", "BTC", "USDC", usdc, -2, t),
        ]
        return state.update(reports, t)

    first = tick(0, 2_000_000, 2_000_000)
    assert first.price == 2_000_000
    assert state.rate_ema("USDC") == (100_000_000, 0)
    second = tick(60 * S, 2_000_000, 2_000_400)
    assert second.price == 2_000_200
    rate = second.result.quote_rate("USDC")
    assert rate is not None
    assert (rate.rate_direct, rate.rate_implied) == (100_000_000, 99_980_003)
    # EMA: 100000000 - trunc(19997 * 0.5) = 99990002.
    assert state.rate_ema("USDC") == (99_990_002, 60 * S)
    third = tick(120 * S, 2_000_000, 2_280_000)
    assert third.price is None
    assert [v.reason for v in third.result.rejected] == [RejectReason.quote_depegged]
    assert not third.liquidations_paused
    assert state.guard.status(181 * S).liquidations_paused
