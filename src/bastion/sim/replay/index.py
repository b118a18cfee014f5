"""The replay's index price: ``OracleState`` over the scenario's sources, and the mark derived from it.

Each index tick passes the latest report of every source to :class:`~bastion.core.oracle.OracleState`
(aggregate with staleness, stablecoin conversion with depeg guard, outlier rejection, quorum, median;
then the smoothed implied stablecoin rate is fed back and the guard judges the price). Those reports
are the ones the oracle shell accepted: each source signs its report with its own Ed25519 key and
:class:`~bastion.feeds.oracle_shell.OracleShell` verifies them against the scenario's public keys
first (``ReplayContext.index_tick``); a forged or altered report never gets here. The mark price
sent to the engine as ``SetMarkPrice`` is the guarded index converted onto the instrument's tick grid
with round-half-even. That rounding is deliberate and documented: the index is an oracle output, not a
venue quote (quotes that are off the grid are rejected by the feed, never rounded).

Deviation figures, all measured against ``reference_source``, the venue whose price the replayed
instrument follows (the mirrored perpetual in a tick replay, the path source in a bars replay), its raw
price taken at face value:

* ``max_index_deviation_ppm``: max |index - reference| / reference over the ticks where both exist —
  how far the mark strays from the traded market (in a tick replay this includes the USDT/USD basis,
  since the mirrored book is quoted in USDT and the index in USD);
* ``source_deviation_max_ppm``: the same for each source's raw price taken at face value (a
  stablecoin quote read as USD): what a naive index would have followed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from bastion.core.instruments import InstrumentSpec
from bastion.core.oracle import (
    AggregateConfig,
    GuardConfig,
    OracleState,
    OracleStateConfig,
    QuotePolicy,
    SourceConfig,
    SourcePrice,
    alpha_ppm_from_span,
    deviation_ppm_ceil,
    normalize_price,
)
from bastion.feeds.inverse import Rounding, div_round
from bastion.sim.replay.scenario import OracleParams

__all__ = ["IndexBuilder", "IndexTick", "SourcePoint"]

NS_PER_S = 1_000_000_000
EMA_SOURCE = "bastion.implied-ema"
INDEX_SYMBOL = "BTC"
INDEX_QUOTE = "USD"


@dataclass(frozen=True, slots=True)
class SourcePoint:
    """One source at one tick: its price on the index grid (face value, own quote) and verdict.

    Attributes:
        source_id: the source.
        price_units: raw price in units of 10**price_exponent of its own quote currency.
        reason: None if the aggregator used it, else the RejectReason name.
    """

    source_id: str
    price_units: int
    reason: str | None


@dataclass(frozen=True, slots=True)
class IndexTick:
    """Outcome of one index tick.

    Attributes:
        time_ns: tick time (engine time).
        price_units: guarded index price (10**price_exponent USD), or None.
        mark_ticks: that price on the instrument grid, or None.
        points: every source that reported, in source-id order.
        no_price_reason: why there is no price (NoPriceReason name), or None.
        liquidations_paused: the guard's verdict (stale / too volatile / no price).
    """

    time_ns: int
    price_units: int | None
    mark_ticks: int | None
    points: tuple[SourcePoint, ...]
    no_price_reason: str | None
    liquidations_paused: bool


def aggregate_config(params: OracleParams, interval_ns: int) -> OracleStateConfig:
    """Build the ``OracleStateConfig`` of a scenario's ``[oracle]`` table."""
    ema = SourceConfig(EMA_SOURCE, INDEX_QUOTE, 5 * interval_ns)
    quotes = tuple(QuotePolicy(q.quote, q.depeg_deviation_max_ppm, (ema,),
                               cross_deviation_max_ppm=q.cross_deviation_max_ppm) for q in params.quotes)
    aggregate = AggregateConfig(
        symbol=INDEX_SYMBOL,
        quote=INDEX_QUOTE,
        price_exponent=params.price_exponent,
        sources=tuple(SourceConfig(s.id, s.quote, s.staleness_s * NS_PER_S, s.weight) for s in params.sources),
        quorum_min=params.quorum_min,
        outlier_deviation_max_ppm=params.outlier_deviation_max_ppm,
        quotes=quotes,
        dispersion_max_ppm=params.dispersion_max_ppm,
    )
    g = params.guard
    guard = GuardConfig(history_max=g.history_max, twap_window_ns=g.twap_window_s * NS_PER_S,
                        far_deviation_max_ppm=g.far_deviation_max_ppm,
                        pause_deviation_max_ppm=g.pause_deviation_max_ppm,
                        staleness_max_ns=g.staleness_max_s * NS_PER_S)
    return OracleStateConfig(aggregate, guard, rate_ema_alpha_ppm=alpha_ppm_from_span(params.rate_ema_span),
                             rate_ema_source_id=EMA_SOURCE)


class IndexBuilder:
    """Streaming index + mark for one replay (see module docstring).

    Args:
        params: the scenario's ``[oracle]`` table.
        spec: the traded instrument (its tick grid receives the mark).
        interval_ns: index tick period.
    """

    def __init__(self, params: OracleParams, spec: InstrumentSpec, interval_ns: int) -> None:
        assert interval_ns > 0
        self.params = params
        self.exponent = params.price_exponent
        self.state = OracleState(aggregate_config(params, interval_ns))
        tick_num, tick_den = spec.tick_size.as_integer_ratio()
        self._tick_num, self._tick_den = tick_num, tick_den
        self.ticks = 0
        self.priced_ticks = 0
        self.paused_ticks = 0
        self.no_price: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()  # "<source>:<reason>" -> reports
        self.max_index_deviation_ppm = 0
        self.max_index_deviation_ns = 0
        self.source_deviation_max_ppm: dict[str, int] = {s.id: 0 for s in params.sources}

    def to_ticks(self, price_units: int) -> int:
        """``price_units * 10**exponent / tick_size`` rounded half-even (see module docstring)."""
        numerator = price_units * self._tick_den
        denominator = self._tick_num
        if self.exponent >= 0:
            numerator *= 10**self.exponent
        else:
            denominator *= 10**-self.exponent
        return div_round(numerator, denominator, Rounding.HALF_EVEN)

    def update(self, reports: list[SourcePrice], now_ns: int) -> IndexTick:
        """Run one tick on the latest report of each source (at most one per source)."""
        assert len(reports) <= len(self.params.sources)
        update = self.state.update(reports, now_ns)
        result = update.result
        self.ticks += 1
        reasons: dict[str, str | None] = {}
        for verdict in result.accepted:
            reasons[verdict.report.source_id] = None
        for verdict in result.rejected:
            if verdict.report.symbol == INDEX_SYMBOL and verdict.reason is not None:
                reasons[verdict.report.source_id] = verdict.reason.name
                self.rejected[f"{verdict.report.source_id}:{verdict.reason.name}"] += 1
        points = tuple(SourcePoint(r.source_id, normalize_price(r.price, r.exponent, self.exponent),
                                   reasons.get(r.source_id))
                       for r in sorted(reports, key=lambda r: r.source_id))
        price = update.price
        self.paused_ticks += int(update.liquidations_paused)
        if price is None:
            assert result.no_price_reason is not None
            self.no_price[result.no_price_reason.name] += 1
        else:
            self.priced_ticks += 1
        self._deviations(points, price, now_ns)
        return IndexTick(now_ns, price, None if price is None else self.to_ticks(price), points,
                         None if result.no_price_reason is None else result.no_price_reason.name,
                         update.liquidations_paused)

    def _deviations(self, points: tuple[SourcePoint, ...], price: int | None, now_ns: int) -> None:
        reference = next((p.price_units for p in points if p.source_id == self.params.reference_source), None)
        if reference is None or reference <= 0:
            return
        for point in points:
            deviation = deviation_ppm_ceil(point.price_units, reference)
            if deviation > self.source_deviation_max_ppm[point.source_id]:
                self.source_deviation_max_ppm[point.source_id] = deviation
        if price is not None:
            deviation = deviation_ppm_ceil(price, reference)
            if deviation > self.max_index_deviation_ppm:
                self.max_index_deviation_ppm = deviation
                self.max_index_deviation_ns = now_ns
