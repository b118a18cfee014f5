"""Shared builders for the oracle tests (prices in cents, exponent -2, times in ns)."""

from __future__ import annotations

from bastion.core.oracle import AggregateConfig, QuotePolicy, SourceConfig, SourcePrice

SECOND_NS = 10**9
MINUTE_NS = 60 * SECOND_NS
NOW_NS = 1_678_521_000 * SECOND_NS  # 2023-03-11 07:50:00 UTC


def report(
    source_id: str,
    price: int,
    *,
    quote: str = "USD",
    symbol: str = "BTC",
    exponent: int = -2,
    age_ns: int = 0,
) -> SourcePrice:
    """A report observed ``age_ns`` before NOW_NS."""
    return SourcePrice(source_id, symbol, quote, price, exponent, NOW_NS - age_ns)


def usd_config(
    source_ids: tuple[str, ...],
    *,
    quorum_min: int = 1,
    outlier_deviation_max_ppm: int = 20_000,
    staleness_max_ns: int = 60 * SECOND_NS,
    weights: tuple[int, ...] | None = None,
    extra_sources: tuple[SourceConfig, ...] = (),
    quotes: tuple[QuotePolicy, ...] = (),
    dispersion_max_ppm: int = 0,
) -> AggregateConfig:
    """BTC/USD index in cents over USD-quoted sources (plus any extra sources)."""
    weights = weights if weights is not None else (1,) * len(source_ids)
    sources = tuple(
        SourceConfig(source_id, "USD", staleness_max_ns, weight)
        for source_id, weight in zip(source_ids, weights, strict=True)
    )
    return AggregateConfig(
        symbol="BTC",
        quote="USD",
        price_exponent=-2,
        sources=sources + extra_sources,
        quorum_min=quorum_min,
        outlier_deviation_max_ppm=outlier_deviation_max_ppm,
        quotes=quotes,
        dispersion_max_ppm=dispersion_max_ppm,
    )
