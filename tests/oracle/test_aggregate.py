"""aggregate(): hand-worked cases (prices in cents) and Hypothesis properties."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.core.oracle import (
    REPORTS_MAX,
    AggregateConfig,
    NoPriceReason,
    OracleConfigError,
    QuotePolicy,
    RateKind,
    RateStatus,
    RejectReason,
    SourceConfig,
    SourcePrice,
    SourceVerdict,
    aggregate,
)

from ._helpers import NOW_NS, SECOND_NS, report, usd_config

FIVE = ("a", "b", "c", "d", "e")


def reasons(verdicts: tuple[SourceVerdict, ...]) -> dict[str, RejectReason | None]:
    return {v.report.source_id: v.reason for v in verdicts}


# ---------------------------------------------------------------------------------------------
# Hand-worked cases.
# ---------------------------------------------------------------------------------------------


def test_outlier_rejected_and_even_median_of_the_rest() -> None:
    """Five USD venues, one 10 % high.

    Preliminary median of {29990.00, 30000.00, 30005.00, 30010.00, 33000.00} = 30005.00.
    33000.00 deviates (3300000 - 3000500) / 3000500 = 99,816.7 ppm > 20,000 -> outlier (99,817
    rounded up). Remaining four: floor((3000000 + 3000500) / 2) = 3000250. Deviations from
    3000250: 1250, 250, 250, 750 cents = 417, 84, 84, 250 ppm (rounded up): max 417, median
    floor((84 + 250) / 2) = 167.
    """
    config = usd_config(FIVE)
    reports = [
        report("a", 3_000_000),
        report("b", 3_001_000),
        report("c", 2_999_000),
        report("d", 3_000_500),
        report("e", 3_300_000),
    ]
    result = aggregate(reports, NOW_NS, config)
    assert result.preliminary_price == 3_000_500
    assert result.price == 3_000_250
    assert [v.report.source_id for v in result.accepted] == ["a", "b", "c", "d"]
    assert len(result.rejected) == 1
    assert result.rejected[0].reason is RejectReason.price_outlier
    assert result.rejected[0].deviation_ppm == 99_817
    assert result.dispersion_max_ppm == 417
    assert result.dispersion_median_ppm == 167
    assert result.no_price_reason is None and result.ok


def test_staleness_limit_is_inclusive_and_per_source() -> None:
    """Limit 60 s: a report exactly 60 s old is fresh, 61 s old is stale; 'slow' allows 300 s."""
    slow = SourceConfig("slow", "USD", 300 * SECOND_NS)
    config = usd_config(("a", "b"), extra_sources=(slow,))
    reports = [
        report("a", 2_000_000, age_ns=60 * SECOND_NS),
        report("b", 2_000_100, age_ns=61 * SECOND_NS),
        report("slow", 2_000_200, age_ns=240 * SECOND_NS),
    ]
    result = aggregate(reports, NOW_NS, config)
    assert reasons(result.rejected) == {"b": RejectReason.report_stale}
    assert result.price == (2_000_000 + 2_000_200) // 2


def test_quorum_failure_is_a_typed_no_price_outcome() -> None:
    config = usd_config(("a", "b", "c"), quorum_min=3)
    reports = [
        report("a", 2_000_000),
        report("b", 2_000_100),
        report("c", 2_000_200, age_ns=3_600 * SECOND_NS),  # stale
    ]
    result = aggregate(reports, NOW_NS, config)
    assert result.price is None
    assert result.no_price_reason is NoPriceReason.quorum_not_met
    assert len(result.accepted) == 2
    assert reasons(result.rejected) == {"c": RejectReason.report_stale}
    empty = aggregate([], NOW_NS, config)
    assert empty.no_price_reason is NoPriceReason.quorum_not_met


def test_screening_reasons() -> None:
    config = usd_config(("a", "b", "c", "d", "e", "f", "g"))
    reports = [
        report("a", 2_000_000),
        report("zz", 2_000_000),  # not configured
        report("b", 2_000_000, symbol="ETH"),  # not this index, not a quote currency
        report("c", 2_000_000, quote="EUR"),  # configured as USD
        report("d", 0),
        report("e", 5, exponent=40),
        report("f", 2_000_000, age_ns=-SECOND_NS),  # one second in the future, skew 0
        report("g", 1, exponent=-3),  # 0.001 USD is below one cent on the -2 grid
    ]
    result = aggregate(reports, NOW_NS, config)
    assert result.price == 2_000_000
    assert reasons(result.rejected) == {
        "zz": RejectReason.source_unknown,
        "b": RejectReason.symbol_unexpected,
        "c": RejectReason.quote_unexpected,
        "d": RejectReason.price_non_positive,
        "e": RejectReason.exponent_out_of_range,
        "f": RejectReason.report_from_future,
        "g": RejectReason.price_out_of_range,
    }


def test_newest_report_per_source_wins_and_exponents_are_normalised() -> None:
    """Same source twice: the newer report (2000.1234 USD, exponent -4) wins and is floored
    to 200012 cents; the older one is superseded."""
    config = usd_config(("a",))
    reports = [report("a", 20_001_234, exponent=-4), report("a", 1_999_900, age_ns=SECOND_NS)]
    result = aggregate(reports, NOW_NS, config)
    assert result.price == 200_012
    assert reasons(result.rejected) == {"a": RejectReason.report_superseded}
    assert result.rejected[0].report.price == 1_999_900


def test_weighted_sources() -> None:
    """Weights 3,1,1: the heavy venue holds 3 of 5, so the weighted median is its price."""
    config = usd_config(("a", "b", "c"), weights=(3, 1, 1))
    reports = [report("a", 2_000_000), report("b", 2_010_000), report("c", 2_020_000)]
    assert aggregate(reports, NOW_NS, config).price == 2_000_000


def test_dispersion_limit_gives_no_price() -> None:
    config = usd_config(("a", "b"), dispersion_max_ppm=1_000)
    reports = [report("a", 2_000_000), report("b", 2_010_000)]  # +-0.25 % around 2005000
    result = aggregate(reports, NOW_NS, config)
    assert result.dispersion_max_ppm == 0  # no price -> no dispersion reported
    assert result.no_price_reason is NoPriceReason.dispersion_too_wide
    loose = usd_config(("a", "b"), dispersion_max_ppm=2_500)
    assert aggregate(reports, NOW_NS, loose).price == 2_005_000


def test_too_many_reports() -> None:
    config = usd_config(("a",))
    reports = [report("a", 2_000_000)] * (REPORTS_MAX + 1)
    result = aggregate(reports, NOW_NS, config)
    assert result.no_price_reason is NoPriceReason.reports_max_exceeded


def test_config_validation() -> None:
    with pytest.raises(OracleConfigError):
        usd_config(("a",), quorum_min=2)
    with pytest.raises(OracleConfigError):
        usd_config(("a", "a"))
    with pytest.raises(OracleConfigError):  # USDT source without a USDT policy
        usd_config(("a",), extra_sources=(SourceConfig("t", "USDT", SECOND_NS),))
    with pytest.raises(OracleConfigError):
        SourceConfig("a", "USD", SECOND_NS, weight=0)


# ---------------------------------------------------------------------------------------------
# Quote-currency conversion.
# ---------------------------------------------------------------------------------------------

MINUTE = 60 * SECOND_NS


def stable_config(
    quote: str,
    *,
    usd: tuple[str, ...] = ("usd1",),
    stable: tuple[str, ...] = ("st1",),
    rate_ids: tuple[str, ...] = (),
    quorum_min: int = 1,
    cross_deviation_max_ppm: int = 0,
    implied_fallback: bool = True,
) -> AggregateConfig:
    policy = QuotePolicy(
        quote,
        depeg_deviation_max_ppm=20_000,
        rate_sources=tuple(SourceConfig(r, "USD", MINUTE) for r in rate_ids),
        cross_deviation_max_ppm=cross_deviation_max_ppm,
        implied_fallback=implied_fallback,
    )
    extra = tuple(SourceConfig(s, quote, MINUTE) for s in stable)
    return usd_config(usd, extra_sources=extra, quotes=(policy,), quorum_min=quorum_min)


def test_direct_rate_converts_stablecoin_quote() -> None:
    """USDT/USD feeds 0.9990, 0.9995, 1.0100 -> median 0.9995 (99,950,000 on the 1e-8 grid).

    BTC/USDT 30015.00 converts to floor(3001500 * 0.9995) = 2999999 cents. Implied rate
    3000000 * 1e8 // 3001500 = 99,950,024, within 0.1 % of the direct rate. Index of
    {3000000, 2999999} = floor(5999999 / 2) = 2999999.
    """
    config = stable_config("USDT", rate_ids=("r1", "r2", "r3"), cross_deviation_max_ppm=1_000)
    reports = [
        report("usd1", 3_000_000),
        report("st1", 3_001_500, quote="USDT"),
        report("r1", 9_990, symbol="USDT", exponent=-4),
        report("r2", 9_995, symbol="USDT", exponent=-4),
        report("r3", 10_100, symbol="USDT", exponent=-4),
    ]
    result = aggregate(reports, NOW_NS, config)
    rate = result.quote_rate("USDT")
    assert rate is not None
    assert (rate.status, rate.kind) == (RateStatus.ok, RateKind.direct)
    assert (rate.rate_direct, rate.rate_implied) == (99_950_000, 99_950_024)
    converted = {v.report.source_id: v.price_index_units for v in result.accepted}
    assert converted == {"usd1": 3_000_000, "st1": 2_999_999}
    assert result.price == 2_999_999
    assert len(result.rates_used) == 3


def test_depegged_stablecoin_is_dropped_by_implied_rate() -> None:
    """USDC at 0.875: USD venues 20000.00 / 20010.00 (median 20005.00), USDC venues
    22860.00 / 22870.00 (median 22865.00). Implied 2000500 * 1e8 // 2286500 = 87,491,799:
    12.5 % off the peg > 2 % band -> both USDC sources rejected; index = USD median 2000500."""
    config = stable_config("USDC", usd=("usd1", "usd2"), stable=("c1", "c2"), quorum_min=2)
    reports = [
        report("usd1", 2_000_000),
        report("usd2", 2_001_000),
        report("c1", 2_286_000, quote="USDC"),
        report("c2", 2_287_000, quote="USDC"),
    ]
    result = aggregate(reports, NOW_NS, config)
    rate = result.quote_rate("USDC")
    assert rate is not None and rate.status is RateStatus.depegged
    assert rate.rate_implied == 87_491_799
    assert reasons(result.rejected) == {
        "c1": RejectReason.quote_depegged,
        "c2": RejectReason.quote_depegged,
    }
    assert result.price == 2_000_500


def test_depeg_caught_even_when_a_stale_minded_feed_says_one_dollar() -> None:
    """A USDC/USD feed still reporting 1.0000 does not rescue USDC quotes: the implied rate
    (0.875) is checked against the peg band too."""
    config = stable_config("USDC", stable=("c1",), rate_ids=("feed",))
    reports = [
        report("usd1", 2_000_000),
        report("c1", 2_286_000, quote="USDC"),
        report("feed", 10_000, symbol="USDC", exponent=-4),
    ]
    result = aggregate(reports, NOW_NS, config)
    assert reasons(result.rejected) == {"c1": RejectReason.quote_depegged}
    assert result.price == 2_000_000


def test_direct_and_implied_rates_must_agree() -> None:
    """Feed says 1.0000, USD venues imply 2000000 / 2010000 = 0.99502487: inside the 2 % peg
    band but 0.4975 % from the feed, beyond the 0.25 % cross band -> inconsistent."""
    config = stable_config("USDT", rate_ids=("feed",), cross_deviation_max_ppm=2_500)
    reports = [
        report("usd1", 2_000_000),
        report("st1", 2_010_000, quote="USDT"),
        report("feed", 10_000, symbol="USDT", exponent=-4),
    ]
    result = aggregate(reports, NOW_NS, config)
    rate = result.quote_rate("USDT")
    assert rate is not None
    assert (rate.status, rate.rate_implied) == (RateStatus.inconsistent, 99_502_487)
    assert reasons(result.rejected) == {"st1": RejectReason.quote_rate_inconsistent}


def test_implied_fallback_converts_at_cross_rate() -> None:
    """No feed: implied rate 2000000 * 1e8 // 2010000 = 99,502,487 (within the 2 % band);
    2010000 * 0.99502487 floors to 1999999 cents."""
    config = stable_config("USDT")
    reports = [report("usd1", 2_000_000), report("st1", 2_010_000, quote="USDT")]
    result = aggregate(reports, NOW_NS, config)
    rate = result.quote_rate("USDT")
    assert rate is not None and rate.kind is RateKind.implied
    converted = {v.report.source_id: v.price_index_units for v in result.accepted}
    assert converted == {"usd1": 2_000_000, "st1": 1_999_999}


def test_stablecoin_quote_without_any_rate_is_not_trusted() -> None:
    config = stable_config("USDT", usd=("usd1",), stable=("st1", "st2"))
    reports = [report("st1", 2_000_000, quote="USDT"), report("st2", 2_000_100, quote="USDT")]
    result = aggregate(reports, NOW_NS, config)
    assert result.no_price_reason is NoPriceReason.quorum_not_met
    assert set(reasons(result.rejected).values()) == {RejectReason.quote_rate_unavailable}
    no_fallback = stable_config("USDT", implied_fallback=False)
    both = [report("usd1", 2_000_000), report("st1", 2_000_000, quote="USDT")]
    result = aggregate(both, NOW_NS, no_fallback)
    assert reasons(result.rejected) == {"st1": RejectReason.quote_rate_unavailable}


# ---------------------------------------------------------------------------------------------
# Properties.
# ---------------------------------------------------------------------------------------------

BASE = 3_000_000  # 30,000.00 USD in cents
prices_wide = st.integers(min_value=1, max_value=10**12)
prices_honest = st.integers(min_value=BASE * 99 // 100, max_value=BASE * 101 // 100)


def named(prices: list[int]) -> tuple[AggregateConfig, list[SourcePrice]]:
    ids = tuple(f"s{i:02d}" for i in range(len(prices)))
    config = usd_config(ids, outlier_deviation_max_ppm=50_000)
    return config, [report(i, p) for i, p in zip(ids, prices, strict=True)]


@given(st.lists(prices_wide, min_size=1, max_size=20))
def test_index_between_min_and_max_of_accepted(prices: list[int]) -> None:
    config, reports = named(prices)
    result = aggregate(reports, NOW_NS, config)
    if len(prices) % 2 == 1:  # odd count: the preliminary median is a source, never an outlier
        assert result.price is not None
    if result.price is not None:
        accepted = [v.price_index_units for v in result.accepted]
        assert min(accepted) <= result.price <= max(accepted)  # type: ignore[type-var]


@given(st.lists(prices_wide, min_size=1, max_size=20), st.integers(0, 2**32))
def test_result_is_permutation_invariant(prices: list[int], seed: int) -> None:
    config, reports = named(prices)
    shuffled = list(reports)
    random.Random(seed).shuffle(shuffled)
    assert aggregate(shuffled, NOW_NS, config) == aggregate(reports, NOW_NS, config)


@given(st.lists(prices_honest, min_size=2, max_size=15), st.integers(0, 14))
def test_source_pushed_tenfold_is_rejected_and_index_stays_honest(
    honest: list[int], position: int
) -> None:
    """Honest venues within +-1 %, outlier band 5 %: one venue at 10x is an outlier."""
    position = position % (len(honest) + 1)
    pumped = honest[0] * 10
    prices = honest[:position] + [pumped] + honest[position:]
    config, reports = named(prices)
    result = aggregate(reports, NOW_NS, config)
    assert [v.reason for v in result.rejected] == [RejectReason.price_outlier]
    assert result.rejected[0].report.price == pumped
    assert result.price is not None
    assert min(honest) <= result.price <= max(honest)


@settings(max_examples=300)
@given(st.lists(prices_wide, min_size=2, max_size=12), prices_wide, st.integers(0, 12))
def test_with_quorum_three_one_manipulated_source_cannot_leave_honest_range(
    honest: list[int], bad: int, position: int
) -> None:
    """Any honest spread, any bad price: a published price lies in the honest range."""
    position = position % (len(honest) + 1)
    prices = honest[:position] + [bad] + honest[position:]
    ids = tuple(f"s{i:02d}" for i in range(len(prices)))
    config = usd_config(ids, quorum_min=3, outlier_deviation_max_ppm=20_000)
    reports = [report(i, p) for i, p in zip(ids, prices, strict=True)]
    result = aggregate(reports, NOW_NS, config)
    if result.price is not None:
        assert min(honest) <= result.price <= max(honest)


@given(
    st.lists(prices_honest, min_size=1, max_size=5),
    st.lists(st.integers(800_000, 970_000), min_size=1, max_size=5),
)
def test_depegged_stablecoin_cannot_drag_index(usd: list[int], rates_ppm: list[int]) -> None:
    """USDC worth 0.80..0.97 USD: BTC/USDC quotes are BTC/USD / rate. None may be used."""
    usd_ids = tuple(f"u{i}" for i in range(len(usd)))
    usdc_ids = tuple(f"c{i}" for i in range(len(rates_ppm)))
    config = stable_config("USDC", usd=usd_ids, stable=usdc_ids)
    reports = [report(i, p) for i, p in zip(usd_ids, usd, strict=True)]
    reports += [
        report(i, usd[0] * 1_000_000 // r, quote="USDC")
        for i, r in zip(usdc_ids, rates_ppm, strict=True)
    ]
    result = aggregate(reports, NOW_NS, config)
    assert all(v.report.quote == "USD" for v in result.accepted)
    assert result.price is not None
    assert min(usd) <= result.price <= max(usd)
