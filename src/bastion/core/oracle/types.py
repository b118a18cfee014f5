"""Value types, limits and reason codes of the oracle core.

Everything here is an integer or a string. Prices are fixed-point integers: a report carries a
mantissa and a base-10 exponent (``price = mantissa * 10**exponent`` in the report's quote
currency); the aggregator normalises every price to one exponent chosen by the caller
(``AggregateConfig.price_exponent``, e.g. ``-8`` for USD x 10^8). Times are integer nanoseconds
supplied by the caller (the core never reads a clock). Ratios are parts per million (ppm).

Reason codes are stable numbered enums in the oracle band (701..799): never renumber a member,
only append.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

# ---------------------------------------------------------------------------------------------
# Limits. Every loop in the oracle core is bounded by one of these.
# ---------------------------------------------------------------------------------------------

PPM: Final = 1_000_000
"""One whole in parts per million."""

SOURCES_MAX: Final = 64
"""Most sources one AggregateConfig may list (index sources plus all rate sources)."""

REPORTS_MAX: Final = 256
"""Most reports one aggregate() call examines; more is answered with a no-price outcome."""

QUOTES_MAX: Final = 8
"""Most non-index quote currencies (QuotePolicy entries) one AggregateConfig may list."""

WEIGHT_MAX: Final = 1_000_000
"""Largest weight of one source in the weighted median."""

EXPONENT_MIN: Final = -18
EXPONENT_MAX: Final = 18
"""Accepted range of base-10 exponents, for reports and for the configured target grids."""

PRICE_MANTISSA_MAX: Final = 2**63 - 1
"""Largest report mantissa (fits a signed 64-bit integer on the wire)."""

PRICE_UNITS_MAX: Final = 10**36
"""Largest normalised price, in units of 10**price_exponent (or 10**rate_exponent)."""

TIMESTAMP_NS_MAX: Final = 2**63 - 1
"""Largest timestamp in nanoseconds since the Unix epoch (signed 64-bit)."""

DEVIATION_PPM_MAX: Final = 1_000 * PPM
"""Largest configurable deviation threshold (100,000 %)."""

NAME_LENGTH_MAX: Final = 64
"""Longest source id, symbol or currency code, in characters."""


class RejectReason(enum.IntEnum):
    """Why one source report was not used. Stable numbers; names read as sentences."""

    report_superseded = 701
    """A newer report from the same source for the same symbol was used instead (ties at the
    same timestamp keep the lowest price, so the choice is deterministic)."""
    source_unknown = 702
    """The source id is not configured for this symbol."""
    symbol_unexpected = 703
    """The symbol is neither the indexed asset nor a configured quote currency."""
    quote_unexpected = 704
    """The report's quote currency differs from the one configured for the source."""
    exponent_out_of_range = 705
    """The report exponent lies outside EXPONENT_MIN..EXPONENT_MAX."""
    price_non_positive = 706
    """The mantissa is zero or negative."""
    price_out_of_range = 707
    """The mantissa exceeds PRICE_MANTISSA_MAX, or the normalised price is below one unit of
    the target grid or above PRICE_UNITS_MAX."""
    report_stale = 708
    """now_ns - timestamp_ns exceeds the source's staleness_max_ns."""
    report_from_future = 709
    """timestamp_ns - now_ns exceeds AggregateConfig.future_skew_max_ns."""
    quote_rate_unavailable = 710
    """No guarded conversion rate exists for the report's quote currency."""
    quote_depegged = 711
    """A measured rate of the quote currency (direct or implied) lies outside its peg band."""
    quote_rate_inconsistent = 712
    """The direct and the implied rate of the quote currency disagree beyond the cross band."""
    price_outlier = 713
    """The converted price deviates from the preliminary median beyond the outlier band."""


class NoPriceReason(enum.IntEnum):
    """Why aggregate() produced no index price. Stable numbers."""

    reports_max_exceeded = 751
    """More than REPORTS_MAX reports were passed in one call."""
    quorum_not_met = 752
    """Fewer than quorum_min sources survived every check."""
    dispersion_too_wide = 753
    """The accepted sources disagree beyond dispersion_max_ppm (Drift "TooUncertain")."""


class RateKind(enum.IntEnum):
    """Where a quote currency's conversion rate came from."""

    none = 0
    direct = 1
    """Weighted median of fresh rate reports (e.g. USDC/USD feeds)."""
    implied = 2
    """Cross rate: median of index-currency-quoted sources / median of the quote's sources."""


class RateStatus(enum.IntEnum):
    """Verdict on one quote currency's conversion rate."""

    ok = 0
    unavailable = 1
    depegged = 2
    inconsistent = 3


class OracleConfigError(ValueError):
    """A configuration value is out of range or inconsistent (raised at construction)."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise OracleConfigError(message)


def _check_name(name: str, what: str) -> None:
    _check(0 < len(name) <= NAME_LENGTH_MAX, f"{what} must have 1..{NAME_LENGTH_MAX} characters")
    _check(name.isascii() and name.isprintable(), f"{what} must be printable ASCII")


def _check_deviation(value_ppm: int, what: str) -> None:
    _check(0 <= value_ppm <= DEVIATION_PPM_MAX, f"{what} must be in 0..{DEVIATION_PPM_MAX} ppm")


# ---------------------------------------------------------------------------------------------
# Inputs.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourcePrice:
    """One price observation from one source: the core's only oracle input.

    The shell builds these only from reports whose Ed25519 signature it verified
    (``bastion.feeds.oracle_reports.verify_report``); the core cannot check provenance.

    Attributes:
        source_id: configured source name, e.g. ``"kraken"``.
        symbol: the priced asset, e.g. ``"BTC"``; for a conversion-rate report, the quote
            currency being priced, e.g. ``"USDC"`` (priced in the index currency).
        quote: the currency the price is expressed in, e.g. ``"USD"``, ``"USDT"``.
        price: mantissa, ``price * 10**exponent`` quote units per one symbol unit.
        exponent: base-10 exponent of ``price`` (EXPONENT_MIN..EXPONENT_MAX when valid).
        timestamp_ns: observation time at the source, ns since the Unix epoch.

    Values are not validated here: out-of-range fields are a business rejection made by
    aggregate() with a RejectReason, not an exception.
    """

    source_id: str
    symbol: str
    quote: str
    price: int
    exponent: int
    timestamp_ns: int


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One configured source.

    Attributes:
        source_id: name matched against SourcePrice.source_id.
        quote: currency this source quotes in (the index currency, or a QuotePolicy quote; for
            a rate source, the index currency).
        staleness_max_ns: oldest acceptable report age, ``now_ns - timestamp_ns`` (ns, >= 0).
            Per source, because venue liquidity differs (dYdX: 30 s; Drift margin: ~60 s).
        weight: integer weight in the weighted median, 1..WEIGHT_MAX (Hyperliquid uses
            3,2,2,1,1,1,1,1 across CEX venues).

    Raises:
        OracleConfigError: a field is out of range.
    """

    source_id: str
    quote: str
    staleness_max_ns: int
    weight: int = 1

    def __post_init__(self) -> None:
        _check_name(self.source_id, "source_id")
        _check_name(self.quote, "quote")
        _check(0 <= self.staleness_max_ns <= TIMESTAMP_NS_MAX, "staleness_max_ns out of range")
        _check(1 <= self.weight <= WEIGHT_MAX, f"weight must be in 1..{WEIGHT_MAX}")


@dataclass(frozen=True, slots=True)
class QuotePolicy:
    """How prices quoted in a stablecoin are converted into the index currency.

    The rate is "index-currency units per one quote unit" on the grid 10**rate_exponent; the
    peg is 1:1 (rate == 10**-rate_exponent). See ``bastion.core.oracle.aggregate`` for the
    rule and its reasoning.

    Attributes:
        quote: the stablecoin, e.g. ``"USDC"``.
        depeg_deviation_max_ppm: largest accepted |rate - peg| / peg for every measured rate
            (direct and implied). Beyond it, all sources quoted in this currency are rejected
            with ``quote_depegged``.
        rate_sources: sources of ``symbol=quote, quote=<index currency>`` reports.
        rate_sources_min: fresh rate reports needed for a direct rate (>= 1).
        implied_fallback: convert with the implied cross rate when no direct rate exists.
        implied_sources_min: fresh index-currency-quoted sources needed to compute an implied
            rate (>= 1); fewer means no implied rate (and no depeg check by implication).
        cross_deviation_max_ppm: largest accepted |direct - implied| / implied when both exist
            (0 disables the cross check).

    Raises:
        OracleConfigError: a field is out of range.
    """

    quote: str
    depeg_deviation_max_ppm: int
    rate_sources: tuple[SourceConfig, ...] = ()
    rate_sources_min: int = 1
    implied_fallback: bool = True
    implied_sources_min: int = 1
    cross_deviation_max_ppm: int = 0

    def __post_init__(self) -> None:
        _check_name(self.quote, "quote")
        _check_deviation(self.depeg_deviation_max_ppm, "depeg_deviation_max_ppm")
        _check_deviation(self.cross_deviation_max_ppm, "cross_deviation_max_ppm")
        _check(len(self.rate_sources) <= SOURCES_MAX, "too many rate sources")
        ids = [source.source_id for source in self.rate_sources]
        _check(len(set(ids)) == len(ids), "duplicate rate source id")
        _check(1 <= self.rate_sources_min <= SOURCES_MAX, "rate_sources_min out of range")
        _check(1 <= self.implied_sources_min <= SOURCES_MAX, "implied_sources_min out of range")

    def rate_source(self, source_id: str) -> SourceConfig | None:
        """The rate SourceConfig named ``source_id``, or None (linear scan, <= SOURCES_MAX)."""
        for source in self.rate_sources:
            if source.source_id == source_id:
                return source
        return None


@dataclass(frozen=True, slots=True)
class AggregateConfig:
    """Parameters of one index (one asset priced in one index currency).

    Attributes:
        symbol: the indexed asset, e.g. ``"BTC"``.
        quote: the index currency, e.g. ``"USD"``.
        price_exponent: grid of index prices, e.g. ``-8`` (result in units of 10**-8 USD).
        sources: the index sources, each quoting ``quote`` or a QuotePolicy currency.
        quorum_min: fewest accepted sources that still give a price (>= 1).
        outlier_deviation_max_ppm: reject a source whose converted price deviates from the
            preliminary (weighted) median by more than this.
        quotes: one QuotePolicy per non-index quote currency used by ``sources``.
        rate_exponent: grid of conversion rates, e.g. ``-8`` (1.0 == 10**8 units).
        future_skew_max_ns: accepted amount by which a report may be ahead of now_ns.
        dispersion_max_ppm: largest accepted max deviation of accepted sources from the result
            (0 disables; Drift's ``confidence_interval_max_size`` is 2 % = 20,000 ppm).

    Raises:
        OracleConfigError: a field is out of range or the sources and quotes disagree.
    """

    symbol: str
    quote: str
    price_exponent: int
    sources: tuple[SourceConfig, ...]
    quorum_min: int
    outlier_deviation_max_ppm: int
    quotes: tuple[QuotePolicy, ...] = ()
    rate_exponent: int = -8
    future_skew_max_ns: int = 0
    dispersion_max_ppm: int = 0
    _policies: dict[str, QuotePolicy] = field(init=False, repr=False, compare=False)
    _sources: dict[str, SourceConfig] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name(self.symbol, "symbol")
        _check_name(self.quote, "quote")
        _check(self.symbol != self.quote, "symbol and quote must differ")
        _check(EXPONENT_MIN <= self.price_exponent <= EXPONENT_MAX, "price_exponent range")
        _check(EXPONENT_MIN <= self.rate_exponent <= 0, "rate_exponent must be in -18..0")
        _check(0 < len(self.sources), "at least one source")
        _check(len(self.quotes) <= QUOTES_MAX, f"at most {QUOTES_MAX} quote policies")
        sources_count = len(self.sources) + sum(len(p.rate_sources) for p in self.quotes)
        _check(sources_count <= SOURCES_MAX, f"at most {SOURCES_MAX} sources in all")
        _check(1 <= self.quorum_min <= len(self.sources), "quorum_min in 1..len(sources)")
        _check_deviation(self.outlier_deviation_max_ppm, "outlier_deviation_max_ppm")
        _check_deviation(self.dispersion_max_ppm, "dispersion_max_ppm")
        _check(0 <= self.future_skew_max_ns <= TIMESTAMP_NS_MAX, "future_skew_max_ns range")
        policies = {policy.quote: policy for policy in self.quotes}
        _check(len(policies) == len(self.quotes), "duplicate quote policy")
        _check(self.quote not in policies, "no policy for the index currency itself")
        _check(self.symbol not in policies, "the indexed asset cannot be a quote currency")
        for policy in self.quotes:
            for rate_source in policy.rate_sources:
                _check(rate_source.quote == self.quote, "rate sources quote the index currency")
        sources = {source.source_id: source for source in self.sources}
        _check(len(sources) == len(self.sources), "duplicate source id")
        for source in self.sources:
            known = source.quote == self.quote or source.quote in policies
            _check(known, f"source {source.source_id} quotes {source.quote} without a policy")
        object.__setattr__(self, "_policies", policies)
        object.__setattr__(self, "_sources", sources)

    def policy(self, quote: str) -> QuotePolicy | None:
        """The QuotePolicy for ``quote``, or None."""
        return self._policies.get(quote)

    def source(self, source_id: str) -> SourceConfig | None:
        """The index SourceConfig named ``source_id``, or None."""
        return self._sources.get(source_id)


# ---------------------------------------------------------------------------------------------
# Outputs.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceVerdict:
    """What aggregate() did with one report.

    Attributes:
        report: the report as received.
        reason: None if accepted, else why it was rejected.
        price_units: the price normalised to the target grid (10**price_exponent for index
            reports, 10**rate_exponent for rate reports), floor-rounded; None if the report was
            rejected before normalisation.
        price_index_units: the price converted into the index currency (10**price_exponent),
            floor-rounded; None for rate reports and for reports rejected before conversion.
        deviation_ppm: |price_index_units - preliminary| / preliminary, rounded up; None if the
            report did not reach the outlier stage.
    """

    report: SourcePrice
    reason: RejectReason | None
    price_units: int | None = None
    price_index_units: int | None = None
    deviation_ppm: int | None = None


@dataclass(frozen=True, slots=True)
class QuoteRateVerdict:
    """The conversion rate decided for one quote currency (rates on the 10**rate_exponent grid).

    Attributes:
        quote: the quote currency.
        status: ok, unavailable, depegged or inconsistent.
        kind: which rate was used for conversion (none if status is not ok).
        rate: the rate used for conversion, or None.
        rate_direct: weighted median of fresh rate reports, or None.
        rate_implied: median(index-currency sources) / median(quote sources), floor, or None.
    """

    quote: str
    status: RateStatus
    kind: RateKind
    rate: int | None
    rate_direct: int | None
    rate_implied: int | None


@dataclass(frozen=True, slots=True)
class AggregateResult:
    """Outcome of aggregate(): an index price or a typed no-price reason, and the evidence.

    Exactly one of ``price`` and ``no_price_reason`` is set.

    Attributes:
        now_ns: the engine time the result was computed for.
        price: index price in units of 10**price_exponent of the index currency, or None.
        no_price_reason: why there is no price, or None.
        accepted: index reports that passed every check, sorted by source id (the sources used
            for ``price`` when there is one).
        rejected: every rejected report (index and rate), with reasons, in canonical order.
        rates_used: rate reports that were fresh and valid, in canonical order.
        quote_rates: one verdict per configured quote currency, sorted by quote.
        preliminary_price: weighted median before outlier rejection, or None.
        dispersion_max_ppm: max deviation of accepted sources from ``price``, rounded up (0 when
            there is no price). A confidence figure in the spirit of Pyth's confidence interval.
        dispersion_median_ppm: median of those deviations (even-count rule of median_floor),
            a median absolute deviation in ppm; 0 when there is no price.
    """

    now_ns: int
    price: int | None
    no_price_reason: NoPriceReason | None
    accepted: tuple[SourceVerdict, ...]
    rejected: tuple[SourceVerdict, ...]
    rates_used: tuple[SourceVerdict, ...]
    quote_rates: tuple[QuoteRateVerdict, ...]
    preliminary_price: int | None
    dispersion_max_ppm: int
    dispersion_median_ppm: int

    @property
    def ok(self) -> bool:
        """True if there is an index price."""
        return self.price is not None

    def quote_rate(self, quote: str) -> QuoteRateVerdict | None:
        """The rate verdict for ``quote``, or None if the quote is not configured."""
        for verdict in self.quote_rates:
            if verdict.quote == quote:
                return verdict
        return None
