"""Time series a replay records at every index tick, for the report's plots (floats only here).

Nothing in this module feeds back into the engine or the figures of ``summary.json``: floats are
used for plotting only, converted from the integer state at record time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bastion.core.events import AuctionCleared, Event, MarketStateChanged, MatchingModeSet
from bastion.core.instruments import InstrumentSpec
from bastion.core.integrity.codes import MatchingMode, TransitionReason
from bastion.core.integrity.states import MarketState
from bastion.core.risk_messages import FundingRateSet
from bastion.sim.replay.exchange import Exchange
from bastion.sim.replay.index import IndexTick
from bastion.sim.replay.risk import RiskSample

__all__ = ["Series", "Timeline"]

NAN = float("nan")
rows_max = 2_000_000
"""Bound on recorded rows (a three-week minute path has 30,240)."""


@dataclass
class Series:
    """Column store of per-tick observations.

    Attributes:
        t_s: seconds since the replay start.
        index_usd / mark_usd / last_usd / bid_usd / ask_usd: prices (NaN when unknown).
        sources: source id -> raw price in its own quote (NaN when it did not report).
        rejected: source id -> reject reason per row ("" when accepted or absent).
        depth_bid_lots / depth_ask_lots: resting size in the engine book's top N levels.
        open_interest_lots, fills, volume_lots (since the previous row), under_maintenance, bankrupt,
        shortfall_usd, insurance_fund_usd, traders_open: the rest of the panel data.
    """

    start_ns: int
    price_exponent: int
    levels: int
    t_s: list[float] = field(default_factory=list)
    index_usd: list[float] = field(default_factory=list)
    mark_usd: list[float] = field(default_factory=list)
    last_usd: list[float] = field(default_factory=list)
    bid_usd: list[float] = field(default_factory=list)
    ask_usd: list[float] = field(default_factory=list)
    sources: dict[str, list[float]] = field(default_factory=dict)
    rejected: dict[str, list[str]] = field(default_factory=dict)
    depth_bid_lots: list[int] = field(default_factory=list)
    depth_ask_lots: list[int] = field(default_factory=list)
    open_interest_lots: list[int] = field(default_factory=list)
    fills: list[int] = field(default_factory=list)
    volume_lots: list[int] = field(default_factory=list)
    under_maintenance: list[int] = field(default_factory=list)
    bankrupt: list[int] = field(default_factory=list)
    shortfall_usd: list[float] = field(default_factory=list)
    insurance_fund_usd: list[float] = field(default_factory=list)
    traders_open: list[int] = field(default_factory=list)
    risk_events: dict[str, list[int]] = field(default_factory=dict)
    """Cumulative risk-engine event counts per row, by family (liquidations, adl, funding, breakers)."""
    _fills_seen: int = 0
    _volume_seen: int = 0

    def record(self, exchange: Exchange, spec: InstrumentSpec, tick: IndexTick | None, risk: RiskSample,
               traders_open: int, atom_decimals: int, marked: bool,
               risk_counts: dict[str, int] | None = None,
               depth: tuple[list[tuple[int, int]], list[tuple[int, int]]] | None = None) -> None:
        """Append one row at the tick's time (or the engine's time when ``tick`` is None). ``depth``: the
        resting liquidity to sample (default the engine's FastBook; a batch market's is its batch book)."""
        assert len(self.t_s) < rows_max
        engine = exchange.engine
        iid = spec.instrument_id
        tick_usd = float(spec.tick_size)
        now_ns = tick.time_ns if tick is not None else engine.now_ns
        self.t_s.append((now_ns - self.start_ns) / 1e9)
        unit = 10.0**self.price_exponent
        self.index_usd.append(tick.price_units * unit if tick is not None and tick.price_units else NAN)
        seen = set()
        for point in tick.points if tick is not None else ():
            seen.add(point.source_id)
            self._column(point.source_id).append(point.price_units * unit)
            self.rejected[point.source_id].append(point.reason or "")
        for source_id in self.sources:
            if source_id not in seen:
                self.sources[source_id].append(NAN)
                self.rejected[source_id].append("")
        self.mark_usd.append(engine.marks[iid] * tick_usd if marked else NAN)
        last = exchange.last_price_ticks
        self.last_usd.append(last * tick_usd if last is not None else NAN)
        bids, asks = engine.books[iid].depth(self.levels) if depth is None else depth
        self.bid_usd.append(bids[0][0] * tick_usd if bids else NAN)
        self.ask_usd.append(asks[0][0] * tick_usd if asks else NAN)
        self.depth_bid_lots.append(sum(q for _, q in bids))
        self.depth_ask_lots.append(sum(q for _, q in asks))
        self.open_interest_lots.append(engine.open_interest_lots[iid])
        self.fills.append(exchange.fills - self._fills_seen)
        self.volume_lots.append(exchange.volume_lots - self._volume_seen)
        self._fills_seen, self._volume_seen = exchange.fills, exchange.volume_lots
        self.under_maintenance.append(risk.under_maintenance)
        self.bankrupt.append(risk.bankrupt)
        self.shortfall_usd.append(risk.shortfall_atoms / 10**atom_decimals)
        self.insurance_fund_usd.append(risk.insurance_fund_atoms / 10**atom_decimals)
        self.traders_open.append(traders_open)
        for family, count in (risk_counts or {}).items():
            column = self.risk_events.setdefault(family, [0] * (len(self.t_s) - 1))
            column.append(count)

    def _column(self, source_id: str) -> list[float]:
        column = self.sources.get(source_id)
        if column is None:
            column = self.sources[source_id] = [NAN] * (len(self.t_s) - 1)
            self.rejected[source_id] = [""] * (len(self.t_s) - 1)
        return column


timeline_max = 1_000_000
"""Bound on the events one :class:`Timeline` keeps (state changes and funding rates)."""


@dataclass
class Timeline:
    """Exact-time events for the report: market-state changes, matching modes, auction clearings and
    funding rates, from the event stream.

    The per-tick :class:`Series` samples state once per index tick, which misses a 30 s velocity pause
    between two minute bars; this records each ``MarketStateChanged``, ``MatchingModeSet`` and
    ``FundingRateSet`` of the replayed instrument at the engine time of the command that caused it, and
    each ``AuctionCleared`` (call-auction uncross or batch clearing) at its boundary time.

    Attributes:
        states: (seconds since start, from state, to state, reason) per change; state/reason are the
            ``MarketState`` / ``TransitionReason`` values.
        modes: (seconds since start, ``MatchingMode`` value, interval ns) per mode switch.
        clearings: (seconds since start, clearing price ticks, volume lots) per auction clearing, the first
            ``timeline_max`` of them (``clearings_total`` counts all).
        funding: (seconds since start, rate per 8 h in ppb, premium in ppb) per settlement.
    """

    start_ns: int
    instrument_id: int
    states: list[tuple[float, int, int, int]] = field(default_factory=list)
    modes: list[tuple[float, int, int]] = field(default_factory=list)
    clearings: list[tuple[float, int, int]] = field(default_factory=list)
    clearings_total: int = 0
    clearing_volume_lots: int = 0
    funding: list[tuple[float, int, int]] = field(default_factory=list)

    def observe(self, events: list[Event], now_ns: int) -> None:
        """Record the instrument's state changes, mode switches, clearings and funding rates among
        ``events`` (at ``now_ns``; a clearing at its own ``at_ns``)."""
        t = (now_ns - self.start_ns) / 1e9
        for event in events:
            kind = type(event)
            if kind is MarketStateChanged:
                assert isinstance(event, MarketStateChanged)
                if event.instrument_id == self.instrument_id and len(self.states) < timeline_max:
                    self.states.append((t, event.from_state, event.to_state, event.reason))
            elif kind is FundingRateSet:
                assert isinstance(event, FundingRateSet)
                if event.instrument_id == self.instrument_id and len(self.funding) < timeline_max:
                    self.funding.append((t, event.rate_8h_ppb, event.premium_ppb))
            elif kind is AuctionCleared:
                assert isinstance(event, AuctionCleared)
                if event.instrument_id == self.instrument_id:
                    self.clearings_total += 1
                    self.clearing_volume_lots += event.volume_lots
                    if len(self.clearings) < timeline_max:
                        self.clearings.append(((event.at_ns - self.start_ns) / 1e9, event.price_ticks,
                                               event.volume_lots))
            elif kind is MatchingModeSet:
                assert isinstance(event, MatchingModeSet)
                if event.instrument_id == self.instrument_id and len(self.modes) < timeline_max:
                    self.modes.append((t, event.mode, event.interval_ns))

    def figures(self, end_ns: int) -> dict[str, object]:
        """Counts by transition and the time spent in each state (s), for ``summary.json``."""
        transitions: dict[str, int] = {}
        seconds: dict[str, float] = {}
        state, since = int(MarketState.ACTIVE), 0.0
        for t, from_state, to_state, reason in self.states:
            key = f"{_name(MarketState, from_state)}->{_name(MarketState, to_state)}:{_name(TransitionReason, reason)}"
            transitions[key] = transitions.get(key, 0) + 1
            seconds[_name(MarketState, state)] = seconds.get(_name(MarketState, state), 0.0) + t - since
            state, since = to_state, t
        end = (end_ns - self.start_ns) / 1e9
        seconds[_name(MarketState, state)] = seconds.get(_name(MarketState, state), 0.0) + max(0.0, end - since)
        return {
            "market_state_changes": len(self.states),
            "transitions": dict(sorted(transitions.items())),
            "seconds_by_state": {k: round(v, 3) for k, v in sorted(seconds.items())},
            "funding_settlements": len(self.funding),
        }

    def matching_figures(self, end_ns: int) -> dict[str, object]:
        """Mode switches, time in each matching mode (s) and auction clearings, for ``summary.json``."""
        seconds: dict[str, float] = {}
        mode, since = int(MatchingMode.CONTINUOUS), 0.0
        for t, to_mode, _ in self.modes:
            seconds[_name(MatchingMode, mode)] = seconds.get(_name(MatchingMode, mode), 0.0) + t - since
            mode, since = to_mode, t
        end = (end_ns - self.start_ns) / 1e9
        seconds[_name(MatchingMode, mode)] = seconds.get(_name(MatchingMode, mode), 0.0) + max(0.0, end - since)
        prices = [price for _, price, _ in self.clearings]
        return {
            "mode_switches": [{"t_s": t, "mode": _name(MatchingMode, m), "interval_ns": i} for t, m, i in self.modes],
            "seconds_by_mode": {k: round(v, 3) for k, v in sorted(seconds.items()) if v > 0},
            "clearings": self.clearings_total,
            "clearing_volume_lots": self.clearing_volume_lots,
            "clearing_price_min_ticks": min(prices, default=0),
            "clearing_price_max_ticks": max(prices, default=0),
        }


def _name(enum: type, value: int) -> str:
    try:
        return str(enum(value).name)
    except ValueError:
        return str(value)
