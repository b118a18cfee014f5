"""Index price aggregation: staleness, quote conversion, outlier rejection, quorum, median.

Pure and deterministic: integers only, no clock (``now_ns`` is an argument), no I/O. The result
does not depend on the order of the input reports (they are put in a canonical order first).

Pipeline of ``aggregate(reports, now_ns, config)``:

1. Screen each report: known symbol and source, configured quote, exponent and price in range,
   normalised to the target grid (floor), not from the future beyond ``future_skew_max_ns``, not
   older than the source's ``staleness_max_ns``. Then keep only the newest report per
   (source, symbol); at equal timestamps the lowest price wins (deterministic).
2. Decide a conversion rate for each stablecoin quote currency (rule below) and convert the
   reports quoted in it into the index currency, ``units * rate // 10**-rate_exponent`` (floor).
3. Preliminary price = weighted median (even-count rule: floor of the mean of the two middle
   values, see ``median.py``) of the converted prices.
4. Reject every source whose converted price deviates from the preliminary price by more than
   ``outlier_deviation_max_ppm`` (exact integer comparison).
5. If fewer than ``quorum_min`` sources remain, there is no price (``quorum_not_met``).
   Otherwise the index price is the weighted median of the accepted prices, and the dispersion
   (max and median deviation of accepted sources from it, ppm, rounded up) is reported; above
   ``dispersion_max_ppm`` (if set) there is no price (``dispersion_too_wide``).

Guarantee (tested): with equal weights, ``quorum_min >= 3`` and at most one manipulated source,
any published price lies within the range of the honest sources: the accepted set then holds at
least two honest prices and at most one bad one, and a median of such a set cannot leave the
honest range. This is the multi-source median defence against Mango-style single-venue pumps
(reference/risk-engines.md section 3).

Quote-currency conversion rule
------------------------------
A price quoted in a stablecoin Q (USDT, USDC) is never read as an index-currency (USD) price at
face value. For every Q with sources, the aggregator measures two rates, in USD per Q:

* direct rate: weighted median of fresh ``Q/USD`` rate reports from configured rate sources
  (at least ``rate_sources_min``), e.g. USDC/USD spot feeds, or a smoothed rate that the
  streaming ``OracleState`` feeds back (see ``state.py``);
* implied rate: ``median(USD-quoted sources) / median(Q-quoted sources)`` for the same asset at
  the same time, when at least ``implied_sources_min`` USD-quoted sources are fresh.

The quote is usable only if every measured rate lies within ``depeg_deviation_max_ppm`` of the
1:1 peg, and, when both exist, the direct and implied rates agree within
``cross_deviation_max_ppm``. Q-quoted sources are then converted at the direct rate if there is
one, else at the implied rate (if ``implied_fallback``). Otherwise all Q-quoted sources are
rejected (``quote_depegged``, ``quote_rate_inconsistent`` or ``quote_rate_unavailable``).

Reasoning:

* A depegged stablecoin must not drag the index: when USDC fell to 0.875 USD on 2023-03-11,
  BTC/USDC traded ~14 % above BTC/USD. Any measure of the USDC rate (a USDC/USD feed, or the
  cross rate against USD venues) leaves the peg band, and every USDC-quoted source is dropped;
  the index falls back to the remaining sources, or reports no price if the quorum fails,
  which pauses liquidations instead of trading on a broken quote.
* Within the band the measured rate, not the peg, is used, so a persistent small premium
  (USDT at +0.3..1.7 % on Binance.US in March 2023) does not bias the index either.
* The implied rate is checked even when a direct rate exists: a stale or manipulated USDC/USD
  feed that still says 1.00 while USD venues imply 0.90 is caught by the depeg band on the
  implied rate and by the cross check.
* The implied rate alone is circular: it re-anchors Q-quoted sources on the USD median, so
  they confirm the level rather than set it. That is safe (they can no longer drag it) but adds
  little information; a direct rate, or the smoothed implied rate fed back by OracleState,
  keeps them independent minute to minute. With a single USD venue the implied rate also
  makes that venue a single point of failure; the depeg band bounds the damage (a venue pushed
  beyond the band makes every Q quote look depegged, they are dropped and the quorum fails).
* The rates themselves are medians of fresh, staleness-checked reports, so one bad rate feed
  cannot set the rate either (Drift treats stablecoin feeds with their own staleness limits;
  reference/risk-engines.md section 2.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bastion.core.oracle.median import (
    deviation_exceeds_ppm,
    deviation_ppm_ceil,
    median_floor,
    weighted_median_floor,
)
from bastion.core.oracle.types import (
    EXPONENT_MAX,
    EXPONENT_MIN,
    PRICE_MANTISSA_MAX,
    PRICE_UNITS_MAX,
    REPORTS_MAX,
    AggregateConfig,
    AggregateResult,
    NoPriceReason,
    QuotePolicy,
    QuoteRateVerdict,
    RateKind,
    RateStatus,
    RejectReason,
    SourceConfig,
    SourcePrice,
    SourceVerdict,
)


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A report that passed screening, with its normalised price and weight."""

    report: SourcePrice
    weight: int
    units: int


@dataclass(frozen=True, slots=True)
class _Converted:
    """An index candidate with its price converted into the index currency."""

    candidate: _Candidate
    index_units: int


_RATE_REJECT_REASON = {
    RateStatus.unavailable: RejectReason.quote_rate_unavailable,
    RateStatus.depegged: RejectReason.quote_depegged,
    RateStatus.inconsistent: RejectReason.quote_rate_inconsistent,
}


def aggregate(
    reports: Sequence[SourcePrice], now_ns: int, config: AggregateConfig
) -> AggregateResult:
    """Aggregate source reports into one index price, or a typed no-price outcome.

    Args:
        reports: up to REPORTS_MAX reports, in any order; index reports (symbol ==
            config.symbol) and conversion-rate reports (symbol == a QuotePolicy quote, quoted in
            config.quote) may be mixed.
        now_ns: current engine time, ns since the Unix epoch (>= 0).
        config: the index parameters.

    Returns:
        AggregateResult with the price in units of 10**config.price_exponent of config.quote,
        floor-rounded, or a NoPriceReason; plus every source's verdict and the quote rates.
        Business rejections are never raised.

    Raises:
        AssertionError: ``now_ns`` out of range (a caller bug).
    """
    assert 0 <= now_ns
    if len(reports) > REPORTS_MAX:
        return _no_price(now_ns, NoPriceReason.reports_max_exceeded, [], [], [], None)
    ordered = sorted(reports, key=_report_key)
    rejected: list[SourceVerdict] = []
    index_candidates, rate_candidates = _screen(ordered, now_ns, config, rejected)
    rates = _quote_rates(index_candidates, rate_candidates, config)
    converted = _convert(index_candidates, rates, config, rejected)
    rates_used = [SourceVerdict(c.report, None, c.units) for c in rate_candidates]
    if not converted:
        return _no_price(now_ns, NoPriceReason.quorum_not_met, [], rejected, rates_used, None,
                         rates)
    preliminary = weighted_median_floor([(c.index_units, c.candidate.weight) for c in converted])
    accepted: list[SourceVerdict] = []
    points: list[tuple[int, int]] = []
    for item in converted:
        deviation_ppm = deviation_ppm_ceil(item.index_units, preliminary)
        outlier = deviation_exceeds_ppm(
            item.index_units, preliminary, config.outlier_deviation_max_ppm
        )
        verdict = SourceVerdict(
            item.candidate.report,
            RejectReason.price_outlier if outlier else None,
            item.candidate.units,
            item.index_units,
            deviation_ppm,
        )
        if outlier:
            rejected.append(verdict)
        else:
            accepted.append(verdict)
            points.append((item.index_units, item.candidate.weight))
    assert len(accepted) + len(rejected) >= len(converted)
    if len(accepted) < config.quorum_min:
        return _no_price(now_ns, NoPriceReason.quorum_not_met, accepted, rejected, rates_used,
                         preliminary, rates)
    price = weighted_median_floor(points)
    return _finish(now_ns, config, price, preliminary, accepted, rejected, rates_used, rates)


def _finish(
    now_ns: int,
    config: AggregateConfig,
    price: int,
    preliminary: int,
    accepted: list[SourceVerdict],
    rejected: list[SourceVerdict],
    rates_used: list[SourceVerdict],
    rates: dict[str, QuoteRateVerdict],
) -> AggregateResult:
    """Compute the dispersion figures and build the priced (or too-uncertain) result."""
    assert price > 0
    deviations_ppm: list[int] = []
    for verdict in accepted:
        assert verdict.price_index_units is not None
        deviations_ppm.append(deviation_ppm_ceil(verdict.price_index_units, price))
    dispersion_max_ppm = max(deviations_ppm)
    dispersion_median_ppm = median_floor(deviations_ppm)
    assert dispersion_median_ppm <= dispersion_max_ppm
    if 0 < config.dispersion_max_ppm < dispersion_max_ppm:
        return _no_price(now_ns, NoPriceReason.dispersion_too_wide, accepted, rejected,
                         rates_used, preliminary, rates)
    return AggregateResult(
        now_ns=now_ns,
        price=price,
        no_price_reason=None,
        accepted=tuple(sorted(accepted, key=_verdict_key)),
        rejected=tuple(sorted(rejected, key=_verdict_key)),
        rates_used=tuple(sorted(rates_used, key=_verdict_key)),
        quote_rates=tuple(rates[quote] for quote in sorted(rates)),
        preliminary_price=preliminary,
        dispersion_max_ppm=dispersion_max_ppm,
        dispersion_median_ppm=dispersion_median_ppm,
    )


def _no_price(
    now_ns: int,
    reason: NoPriceReason,
    accepted: list[SourceVerdict],
    rejected: list[SourceVerdict],
    rates_used: list[SourceVerdict],
    preliminary: int | None,
    rates: dict[str, QuoteRateVerdict] | None = None,
) -> AggregateResult:
    """Build a no-price result that still carries every verdict as evidence."""
    rates = rates if rates is not None else {}
    return AggregateResult(
        now_ns=now_ns,
        price=None,
        no_price_reason=reason,
        accepted=tuple(sorted(accepted, key=_verdict_key)),
        rejected=tuple(sorted(rejected, key=_verdict_key)),
        rates_used=tuple(sorted(rates_used, key=_verdict_key)),
        quote_rates=tuple(rates[quote] for quote in sorted(rates)),
        preliminary_price=preliminary,
        dispersion_max_ppm=0,
        dispersion_median_ppm=0,
    )


def _report_key(report: SourcePrice) -> tuple[str, str, str, int, int, int]:
    """Canonical total order of reports (makes the result permutation-invariant)."""
    return (
        report.source_id,
        report.symbol,
        report.quote,
        report.timestamp_ns,
        report.exponent,
        report.price,
    )


def _verdict_key(verdict: SourceVerdict) -> tuple[tuple[str, str, str, int, int, int], int]:
    reason = 0 if verdict.reason is None else int(verdict.reason)
    return (_report_key(verdict.report), reason)


def normalize_price(mantissa: int, exponent: int, exponent_target: int) -> int:
    """Re-express ``mantissa * 10**exponent`` in units of ``10**exponent_target``, floor-rounded.

    Exact when ``exponent >= exponent_target``; otherwise digits finer than the target grid are
    dropped (rounding toward minus infinity, error below one target unit).

    Args:
        mantissa: any integer.
        exponent: EXPONENT_MIN..EXPONENT_MAX.
        exponent_target: EXPONENT_MIN..EXPONENT_MAX.
    """
    assert EXPONENT_MIN <= exponent <= EXPONENT_MAX
    assert EXPONENT_MIN <= exponent_target <= EXPONENT_MAX
    if exponent >= exponent_target:
        return mantissa * int(10 ** (exponent - exponent_target))
    return mantissa // int(10 ** (exponent_target - exponent))


def _screen_one(
    report: SourcePrice, now_ns: int, config: AggregateConfig
) -> tuple[SourceConfig, int, bool] | SourceVerdict:
    """Check one report; return (source, normalised units, is_rate_report) or a rejection."""
    source: SourceConfig | None
    policy: QuotePolicy | None = None
    if report.symbol == config.symbol:
        source = config.source(report.source_id)
    else:
        policy = config.policy(report.symbol)
        if policy is None:
            return SourceVerdict(report, RejectReason.symbol_unexpected)
        source = policy.rate_source(report.source_id)
    if source is None:
        return SourceVerdict(report, RejectReason.source_unknown)
    if report.quote != source.quote:
        return SourceVerdict(report, RejectReason.quote_unexpected)
    if not EXPONENT_MIN <= report.exponent <= EXPONENT_MAX:
        return SourceVerdict(report, RejectReason.exponent_out_of_range)
    if report.price <= 0:
        return SourceVerdict(report, RejectReason.price_non_positive)
    if report.price > PRICE_MANTISSA_MAX:
        return SourceVerdict(report, RejectReason.price_out_of_range)
    target = config.price_exponent if policy is None else config.rate_exponent
    units = normalize_price(report.price, report.exponent, target)
    if not 1 <= units <= PRICE_UNITS_MAX:
        return SourceVerdict(report, RejectReason.price_out_of_range)
    if report.timestamp_ns - now_ns > config.future_skew_max_ns:
        return SourceVerdict(report, RejectReason.report_from_future, units)
    if now_ns - report.timestamp_ns > source.staleness_max_ns:
        return SourceVerdict(report, RejectReason.report_stale, units)
    return (source, units, policy is not None)


def _screen(
    ordered: Sequence[SourcePrice],
    now_ns: int,
    config: AggregateConfig,
    rejected: list[SourceVerdict],
) -> tuple[list[_Candidate], list[_Candidate]]:
    """Screen every report, then keep the newest per (source, symbol).

    Returns (index candidates, rate candidates), each sorted canonically; appends rejections.
    """
    assert len(ordered) <= REPORTS_MAX
    newest: dict[tuple[str, str], tuple[_Candidate, bool]] = {}
    for report in ordered:
        outcome = _screen_one(report, now_ns, config)
        if isinstance(outcome, SourceVerdict):
            rejected.append(outcome)
            continue
        source, units, is_rate = outcome
        candidate = _Candidate(report, source.weight, units)
        key = (report.source_id, report.symbol)
        held = newest.get(key)
        if held is None:
            newest[key] = (candidate, is_rate)
            continue
        loser = candidate
        if _newer(candidate, held[0]):
            loser = held[0]
            newest[key] = (candidate, is_rate)
        rejected.append(SourceVerdict(loser.report, RejectReason.report_superseded, loser.units))
    index_candidates = [c for c, is_rate in newest.values() if not is_rate]
    rate_candidates = [c for c, is_rate in newest.values() if is_rate]
    index_candidates.sort(key=lambda c: _report_key(c.report))
    rate_candidates.sort(key=lambda c: _report_key(c.report))
    assert len(index_candidates) + len(rate_candidates) <= len(ordered)
    return index_candidates, rate_candidates


def _newer(candidate: _Candidate, held: _Candidate) -> bool:
    """Whether ``candidate`` replaces ``held``: later timestamp, then lower price."""
    if candidate.report.timestamp_ns != held.report.timestamp_ns:
        return candidate.report.timestamp_ns > held.report.timestamp_ns
    return candidate.units < held.units


def _quote_rates(
    index_candidates: list[_Candidate],
    rate_candidates: list[_Candidate],
    config: AggregateConfig,
) -> dict[str, QuoteRateVerdict]:
    """Decide the conversion rate of every configured quote currency."""
    native = [c for c in index_candidates if c.report.quote == config.quote]
    rates: dict[str, QuoteRateVerdict] = {}
    for policy in config.quotes:
        quoted = [c for c in index_candidates if c.report.quote == policy.quote]
        feeds = [c for c in rate_candidates if c.report.symbol == policy.quote]
        rates[policy.quote] = _rate_verdict(policy, native, quoted, feeds, config.rate_exponent)
    assert len(rates) == len(config.quotes)
    return rates


def _rate_verdict(
    policy: QuotePolicy,
    native: Sequence[_Candidate],
    quoted: Sequence[_Candidate],
    feeds: Sequence[_Candidate],
    rate_exponent: int,
) -> QuoteRateVerdict:
    """Apply the quote-conversion rule (module docstring) to one quote currency.

    Args:
        policy: the quote's policy.
        native: fresh index-currency-quoted index candidates (same price grid as ``quoted``).
        quoted: fresh index candidates quoted in ``policy.quote``.
        feeds: fresh rate candidates for ``policy.quote`` (grid 10**rate_exponent).
        rate_exponent: grid of rates; the peg is ``10**-rate_exponent``.

    Returns:
        The verdict; rates floor-rounded on the 10**rate_exponent grid.
    """
    assert rate_exponent <= 0
    peg = 10**-rate_exponent
    implied: int | None = None
    if native and quoted and len(native) >= policy.implied_sources_min:
        native_median = weighted_median_floor([(c.units, c.weight) for c in native])
        quoted_median = weighted_median_floor([(c.units, c.weight) for c in quoted])
        implied = native_median * peg // quoted_median
    direct: int | None = None
    if feeds and len(feeds) >= policy.rate_sources_min:
        direct = weighted_median_floor([(c.units, c.weight) for c in feeds])
    kind, rate = RateKind.none, None
    if direct is not None:
        kind, rate = RateKind.direct, direct
    elif implied is not None and policy.implied_fallback:
        kind, rate = RateKind.implied, implied
    status = RateStatus.ok
    if rate is None:
        status = RateStatus.unavailable
    elif any(
        deviation_exceeds_ppm(measured, peg, policy.depeg_deviation_max_ppm)
        for measured in (direct, implied)
        if measured is not None
    ):
        status = RateStatus.depegged
    elif (
        direct is not None
        and implied is not None
        and policy.cross_deviation_max_ppm > 0
        and deviation_exceeds_ppm(implied, direct, policy.cross_deviation_max_ppm)
    ):
        status = RateStatus.inconsistent
    if status is not RateStatus.ok:
        kind, rate = RateKind.none, None
    assert (rate is None) == (status is not RateStatus.ok)
    return QuoteRateVerdict(policy.quote, status, kind, rate, direct, implied)


def _convert(
    index_candidates: list[_Candidate],
    rates: dict[str, QuoteRateVerdict],
    config: AggregateConfig,
    rejected: list[SourceVerdict],
) -> list[_Converted]:
    """Convert every index candidate into the index currency, or reject it."""
    peg = 10**-config.rate_exponent
    converted: list[_Converted] = []
    for candidate in index_candidates:
        quote = candidate.report.quote
        if quote == config.quote:
            converted.append(_Converted(candidate, candidate.units))
            continue
        verdict = rates[quote]
        if verdict.rate is None:
            reason = _RATE_REJECT_REASON[verdict.status]
            rejected.append(SourceVerdict(candidate.report, reason, candidate.units))
            continue
        index_units = candidate.units * verdict.rate // peg
        if not 1 <= index_units <= PRICE_UNITS_MAX:
            rejected.append(SourceVerdict(candidate.report, RejectReason.price_out_of_range,
                                          candidate.units))
            continue
        converted.append(_Converted(candidate, index_units))
    assert len(converted) <= len(index_candidates)
    return converted
