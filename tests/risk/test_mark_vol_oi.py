"""Mark price (Binance / Hyperliquid), volatility-scaled margin (with real 1-minute BTC bars), OI caps."""

from __future__ import annotations

import csv
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.core.risk import (
    PPM,
    MarkConfig,
    MarkMethod,
    MarkPriceState,
    OpenInterestCap,
    RiskRejectCode,
    VolMarginConfig,
    binance_price1_ticks,
    check_open_interest,
    clamp_to_band,
    depth_price_ticks,
    ewma_variance_next,
    impact_lots,
    log_return_ppm,
    maintenance_margin_atoms,
    median3,
    oi_change_lots,
    oi_scaled_imf_ppm,
    opening_lots,
    scaled_spec,
    scaled_tiers,
    vol_multiplier_ppm,
    volatility_ppm,
)
from tests.conftest import SHARED_DATA
from tests.risk._helpers import USDT, make_spec

HOUR_NS = 3600 * 10**9

# ------------------------------------------------------------------------------------------------ mark


@given(st.integers(), st.integers(), st.integers())
def test_median3_is_the_middle_value(a: int, b: int, c: int) -> None:
    assert median3(a, b, c) == sorted([a, b, c])[1]


def test_binance_price1_worked_example() -> None:
    """Binance Price1 = index * (1 + last funding rate * time until funding / 8 h): index 60,000.0,
    last rate 0.01 %, 4 h to go: 60,000 * (1 + 0.0001 * 0.5) = 60,003.0."""
    assert binance_price1_ticks(600_000, 100_000, 4 * HOUR_NS, 8 * HOUR_NS) == 600_030
    assert binance_price1_ticks(600_000, -100_000, 4 * HOUR_NS, 8 * HOUR_NS) == 599_970


def test_binance_mark_is_median_of_price1_price2_last() -> None:
    """Price2 = index + MA(mid - index): three one-minute samples with mids 60,010.0, 60,020.0, 60,030.05
    (half tick) against index 60,000.0 average 20.0166 -> 60,020.0 (floor). Mark = median(60,003.0,
    60,020.0, contract price) with the contract price = median(impact bid, impact ask, last): a last
    outside the impact spread is pulled to its nearer side (Deribit: "if the last traded price is not
    within the current best bid-ask, then the bid or ask price ... nearer to the last"), and without
    impact prices it is left out."""
    minute = 60 * 10**9
    state = MarkPriceState(MarkConfig(method=MarkMethod.BINANCE, basis_samples_max=3))
    state.observe(600_000, 600_050, 600_150, None, 0)  # mid 600,100
    state.observe(600_000, 600_150, 600_250, None, minute)  # mid 600,200
    state.observe(600_000, 600_250, 600_351, None, 2 * minute)  # mid 600,300.5
    state.observe(600_000, 599_000, 599_000, None, 2 * minute + 10**9)  # same minute: not a sample
    assert list(state.basis_half_ticks) == [200, 400, 601]
    args = (600_000, 100_000, 4 * HOUR_NS, 8 * HOUR_NS)
    assert state.binance_mark_ticks(*args, last_ticks=610_000, bid_ticks=600_050, ask_ticks=600_351) == 600_200
    assert state.binance_mark_ticks(*args, last_ticks=600_100, bid_ticks=600_050, ask_ticks=600_351) == 600_100
    # last 59,000.0 is pulled to the impact bid 60,005.0 (it was the mark's lowest input, 60,003.0, before)
    assert state.binance_mark_ticks(*args, last_ticks=590_000, bid_ticks=600_050, ask_ticks=600_351) == 600_050
    # no impact depth: the last trade does not count, median of price1 and price2 (floor of the mean)
    assert state.binance_mark_ticks(*args, last_ticks=610_000, bid_ticks=None, ask_ticks=600_351) == 600_115
    state.observe(600_000, 599_000, 599_000, None, 3 * minute)  # window of 3: the first sample leaves
    assert list(state.basis_half_ticks) == [400, 601, -2_000]


def test_binance_basis_average_divides_by_the_window() -> None:
    """One sample never carries the whole average: price2 = index + sum / (2 * window), missing samples
    count as zero basis (Binance COIN-M FAQ: "sum of [(Bid1_i + Ask1_i)/2 - PI_i] / 30"). A mid of
    60,030.0 against 60,000.0 moves price2 by 30.0 / 30 = 1.0 after one sample, and by the full 30.0 only
    after 30. A sample is clamped to the band first: a book at 10x (mid 600,000.0) counts as 61,800.0
    with the 3 % band, so one minute of it moves price2 by 1,800.0 / 30 = 60.0 (0.1 %)."""
    minute = 60 * 10**9
    state = MarkPriceState(MarkConfig())
    args = (600_000, 0, 4 * HOUR_NS, 8 * HOUR_NS)
    state.observe(600_000, 600_200, 600_400, None, 0)
    assert state.binance_mark_ticks(*args, last_ticks=None, bid_ticks=None, ask_ticks=None) == 600_005  # (600,000 + 600,010) / 2
    for i in range(1, 30):
        state.observe(600_000, 600_200, 600_400, None, i * minute)
    assert state.binance_mark_ticks(*args, last_ticks=600_300, bid_ticks=600_200, ask_ticks=600_400) == 600_300
    fake = MarkPriceState(MarkConfig())
    fake.observe(600_000, 5_999_990, 6_000_000, 6_000_000, 0)
    assert fake.basis_sum == 2 * 618_000 - 2 * 600_000
    assert fake.binance_mark_ticks(*args, last_ticks=6_000_000, bid_ticks=5_999_990, ask_ticks=6_000_000) == 600_600


def test_impact_depth_price_needs_the_impact_lots() -> None:
    """The mark reads the book at the Binance impact notional (200 USDC / 0.8 % = 25,000 USDC) valued at
    the index: 417 lots of 0.001 BTC at 60,000.0 (k = 100 atoms per tick-lot). One lot at 10x is not
    depth; 417 lots are, wherever they sit."""
    lots = impact_lots(25_000 * 10**6, 600_000, 100)
    assert lots == 417
    assert depth_price_ticks([(6_000_000, 1)], lots, 1) is None
    assert depth_price_ticks([(600_100, 17), (600_200, 400), (600_300, 5)], lots, 1) == -(-(600_100 * 17 + 600_200 * 400) // 417)
    assert depth_price_ticks([(600_000, 400), (599_000, 100)], lots, -1) == (600_000 * 400 + 599_000 * 17) // 417


def test_hyperliquid_mark_inputs_and_fallback() -> None:
    """Median of (oracle + EMA(mid - oracle), median(bid, ask, last), median of other venues' mids); with
    exactly two inputs the EMA of median(bid, ask, last) joins. Both EMAs start from zero basis (the
    oracle), so the first sample moves them by alpha only: basis EMA 0 + 400 * 0.0645 = 25 half ticks
    (input 60,001.2); fallback EMA 120,000.0 + 40.0 * 0.2857 = 120,011.4 half ticks -> 60,005.7."""
    state = MarkPriceState(MarkConfig(method=MarkMethod.HYPERLIQUID))
    state.observe(600_000, 600_100, 600_300, 600_200)  # basis (mid - oracle) = 400 half ticks; local 600,200
    assert state.ema_basis_half_ticks == 25 and state.ema_fallback_half_ticks == 1_200_114
    assert state.hyperliquid_mark_ticks(600_000, 600_100, 600_300, 600_250, [600_500, 600_600, 600_700]) == 600_250
    # two inputs (no other venues): the fallback EMA (600,005.7) is the third and the median
    assert state.hyperliquid_mark_ticks(600_000, 600_100, 600_300, 600_290) == 600_057
    assert MarkPriceState(MarkConfig()).hyperliquid_mark_ticks(600_000, None, None, None) == 600_000


def test_band_clamps_the_mark_to_the_index() -> None:
    assert clamp_to_band(700_000, 600_000, 50_000) == 630_000
    assert clamp_to_band(500_000, 600_000, 50_000) == 570_000
    assert clamp_to_band(500_000, 600_000, 0) == 500_000


# ------------------------------------------------------------------------------------------- vol margin


def test_log_return_fixed_point() -> None:
    """ln 2 = 0.693147180..., ln 1.01 = 0.009950330..., ln 0.99 = -0.010050335... (ppm, truncated)."""
    assert log_return_ppm(100, 200) == 693_147
    assert log_return_ppm(10_000, 10_100) == 9_950
    assert log_return_ppm(10_000, 9_900) == -10_050
    assert log_return_ppm(7, 7) == 0


@settings(max_examples=300, deadline=None)
@given(a=st.integers(min_value=1, max_value=10**12), b=st.integers(min_value=1, max_value=10**12))
def test_log_return_is_antisymmetric_and_additive(a: int, b: int) -> None:
    assert log_return_ppm(a, b) == -log_return_ppm(b, a)
    c = a + b
    assert abs(log_return_ppm(a, b) + log_return_ppm(b, c) - log_return_ppm(a, c)) <= 2


def test_ewma_variance_and_multiplier() -> None:
    """RiskMetrics lambda 0.94: from 0, a 1 % return gives var = 0.06 * 10,000^2 = 6,000,000 ppm^2, sigma =
    ceil(2,449.49) = 2,450 ppm; with baseline 1,000 ppm the multiplier is 2.45 (bounded to [1, 3])."""
    var = ewma_variance_next(0, 10_000, 940_000)
    assert var == 6_000_000 and volatility_ppm(var) == 2_450
    config = VolMarginConfig()
    assert vol_multiplier_ppm(var, config) == 2_450_000
    assert vol_multiplier_ppm(0, config) == 1_000_000
    assert vol_multiplier_ppm(10**12, config) == 3_000_000


@settings(max_examples=200, deadline=None)
@given(multiplier=st.integers(min_value=1, max_value=5 * PPM), notional=st.integers(min_value=0, max_value=10**13))
def test_scaled_tiers_stay_continuous_and_scale_the_requirement(multiplier: int, notional: int) -> None:
    spec = make_spec()
    scaled = scaled_spec(spec, multiplier)
    tiers = scaled.margin_tiers
    assert all(a.mmf_ppm <= b.mmf_ppm and a.imf_ppm <= b.imf_ppm for a, b in zip(tiers, tiers[1:]))
    for lower in tiers[:-1]:
        cap = lower.notional_max_atoms
        assert 0 <= maintenance_margin_atoms(scaled, cap + 1) - maintenance_margin_atoms(scaled, cap) <= 1
    if multiplier >= PPM:
        assert maintenance_margin_atoms(scaled, notional) >= maintenance_margin_atoms(spec, notional)
    assert scaled_tiers(spec.margin_tiers, PPM) == spec.margin_tiers


BARS = SHARED_DATA / "btc-1m-binanceus-kraken-2023-03-usdc-depeg" / "binance_BTCUSD_1m_20230301_20230321.csv"


@pytest.mark.shared_data
def test_real_minute_bars_raise_the_multiplier_in_the_march_2023_turmoil() -> None:
    """Binance.US BTCUSD 1-minute closes, 2023-03-01..21 (SVB / USDC depeg, then the 13-14 March rally):
    with lambda 0.994 per minute and a 800 ppm/min baseline, the EWMA volatility peaks on 13-14 March and
    pins the multiplier at its 3.0 cap, while a calm day (4 March) never leaves the 1.0 floor."""
    if not BARS.exists():
        pytest.skip(f"{BARS} absent")
    config = VolMarginConfig(lambda_ppm=994_000, baseline_vol_ppm=800)
    with BARS.open() as handle:
        rows = list(csv.DictReader(handle))
    prev, var = None, 0
    peak_by_day: dict[str, int] = {}
    for row in rows:
        price = int(Decimal(row["close"]) * 100)
        if prev is not None:
            var = ewma_variance_next(var, log_return_ppm(prev, price), config.lambda_ppm)
            day = row["open_time"][:10]
            peak_by_day[day] = max(peak_by_day.get(day, 0), vol_multiplier_ppm(var, config))
        prev = price
    top_day = max(peak_by_day, key=lambda d: (peak_by_day[d], d))
    assert top_day in ("2023-03-13", "2023-03-14")
    assert peak_by_day[top_day] == config.multiplier_max_ppm
    assert peak_by_day["2023-03-04"] == config.multiplier_min_ppm


# ---------------------------------------------------------------------------------------------- OI caps


@settings(max_examples=300, deadline=None)
@given(buyer=st.integers(min_value=-100, max_value=100), seller=st.integers(min_value=-100, max_value=100),
       qty=st.integers(min_value=1, max_value=100))
def test_oi_change_is_bounded_by_the_openers(buyer: int, seller: int, qty: int) -> None:
    """A fill raises OI by at most what the taker (either side) opens."""
    change = oi_change_lots(buyer, seller, qty)
    assert -qty <= change <= qty
    assert change <= opening_lots(buyer, 1, qty)
    assert change <= opening_lots(seller, -1, qty)


def test_open_interest_cap_check() -> None:
    cap = OpenInterestCap(1, 1_000)
    assert check_open_interest(990, cap, 0, 1, 10, False) is None
    assert check_open_interest(990, cap, 0, 1, 11, False) == RiskRejectCode.open_interest_cap_exceeded
    assert check_open_interest(990, cap, -50, 1, 60, False) is None  # 50 of 60 close
    assert check_open_interest(990, cap, 0, 1, 500, True) is None  # reduce-only always passes
    assert check_open_interest(10**9, OpenInterestCap(1, 0), 0, 1, 500, False) is None  # no cap


def test_dydx_open_interest_scaled_imf() -> None:
    """dYdX Small-Cap tier: IMF 10 %, OI caps 20M / 50M: at 35M, scaling 0.5 -> IMF 10 % + 0.5 * 90 % = 55 %."""
    lower, upper = 20_000_000 * USDT, 50_000_000 * USDT
    assert oi_scaled_imf_ppm(100_000, 10_000_000 * USDT, lower, upper) == 100_000
    assert oi_scaled_imf_ppm(100_000, 35_000_000 * USDT, lower, upper) == 550_000
    assert oi_scaled_imf_ppm(100_000, 90_000_000 * USDT, lower, upper) == PPM
    assert oi_scaled_imf_ppm(100_000, 90_000_000 * USDT, 0, 0) == 100_000


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10**7), st.integers(0, 10**7), st.integers(1, 10**7) | st.none()),
                min_size=1, max_size=40),
       st.sampled_from([MarkMethod.BINANCE, MarkMethod.HYPERLIQUID]))
def test_no_book_moves_the_mark_outside_the_band_or_price2_faster_than_band_per_window(
        books: list[tuple[int, int, int | None]], method: MarkMethod) -> None:
    """Whatever the impact bid/ask and last trade (any price, at any size the depth walk allowed), the mark
    stays within index +- 3 % and one Binance basis sample moves price2 by at most 2 * band / 30 (a
    sample clamped to +band replacing one at -band as the 30-sample window rolls)."""
    index = 600_000
    low, high = 582_000, 618_000
    state = MarkPriceState(MarkConfig(method=method))
    minute = 60 * 10**9
    args = (index, 0, 4 * HOUR_NS, 8 * HOUR_NS)
    for i, (bid, spread, last) in enumerate(books):
        before = index + state.basis_sum // 60
        state.observe(index, bid, bid + spread, last, i * minute)
        price2 = index + state.basis_sum // 60
        assert abs(price2 - before) <= 2 * (high - index) // 30 + 1
        if method == MarkMethod.BINANCE:
            mark = state.binance_mark_ticks(*args, last_ticks=last, bid_ticks=bid, ask_ticks=bid + spread)
        else:
            mark = state.hyperliquid_mark_ticks(index, bid, bid + spread, last)
        assert low <= mark <= high
