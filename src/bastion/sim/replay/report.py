"""``report.html``: one self-contained page (inline CSS, plots as base64 PNG, no external resources).

Panels: index vs each source (rejected reports marked), mark / last / touch and every auction clearing
price (``AuctionCleared``: batch clearings, call-auction uncrosses), resting depth (the engine book, or
in a batch market the LP orders in its batch book), open interest, fills and volume, equity shortfall
and accounts under maintenance, the insurance fund, the risk-engine events on separate axes
(liquidation fills, ADL closes, funding payments: their counts differ by orders of magnitude), the
funding rate of every settlement (``FundingRateSet``), the market-state timeline (price band, velocity
pause, LULD halts and auctions: every ``MarketStateChanged`` at its exact time; periods in batch matching
shaded, from ``MatchingModeSet``), and the figures table. Plotting is shell code: floats and matplotlib
live here only.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend first)
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from bastion.core.integrity.codes import MatchingMode, TransitionReason  # noqa: E402
from bastion.core.integrity.states import MarketState  # noqa: E402
from bastion.sim.replay.scenario import Scenario  # noqa: E402
from bastion.sim.replay.series import Series, Timeline  # noqa: E402

if TYPE_CHECKING:
    from bastion.sim.replay.runner import ReplayResult

__all__ = ["write_report"]

buckets_max = 240
"""Most bars in the fills/volume histogram."""

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2430}
header{background:#1d2430;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:2px 0;color:#c9d1dc;font-size:14px}main{padding:18px 28px;max-width:1200px}
section{background:#fff;border:1px solid #dde2e8;border-radius:6px;margin:0 0 16px;padding:14px 18px}
h2{font-size:16px;margin:0 0 8px}img{width:100%;height:auto;display:block}
.empty{color:#6b7685;font-style:italic;padding:10px 0}
table{border-collapse:collapse;font-size:13px;width:100%}td,th{border-bottom:1px solid #e6e9ee;padding:4px 8px;
text-align:left;vertical-align:top}td.v{font-family:ui-monospace,Menlo,monospace;text-align:right;white-space:nowrap}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:12px}
.ok{color:#157f3b;font-weight:600}.bad{color:#b42318;font-weight:600}
pre{font-size:12px;overflow:auto;max-height:420px;background:#f6f7f9;padding:8px}
"""


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _time_axis(series: Series) -> tuple[list[float], str]:
    span = series.t_s[-1] if series.t_s else 0.0
    if span > 2 * 86_400:
        return [t / 86_400 for t in series.t_s], "days since start"
    if span > 2 * 3_600:
        return [t / 3_600 for t in series.t_s], "hours since start"
    return list(series.t_s), "seconds since start"


def _figure(title: str, ylabel: str) -> tuple[Figure, Any]:
    fig, ax = plt.subplots(figsize=(11, 3.6))
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


_REASON_STYLE = {  # reject reason -> (marker, colour, size)
    "quote_depegged": ("x", "#d50000", 18),
    "quote_rate_inconsistent": ("x", "#ff6d00", 18),
    "quote_rate_unavailable": ("x", "#6d4c41", 18),
    "price_outlier": ("^", "#6200ea", 16),
    "report_stale": (".", "#757575", 6),
}


def _index_plot(series: Series) -> str:
    x, xlabel = _time_axis(series)
    fig, ax = _figure("Index vs sources (raw price in each source's own quote); markers: rejected reports", "price")
    rejected: dict[str, tuple[list[float], list[float]]] = {}
    for source_id, values in sorted(series.sources.items()):
        ax.plot(x, values, lw=0.8, alpha=0.8, label=source_id)
        for xi, value, reason in zip(x, values, series.rejected[source_id]):
            if reason and not math.isnan(value):
                xs, ys = rejected.setdefault(reason, ([], []))
                xs.append(xi)
                ys.append(value)
    for reason, (xs, ys) in sorted(rejected.items()):
        marker, colour, size = _REASON_STYLE.get(reason, ("o", "black", 10))
        ax.scatter(xs, ys, marker=marker, s=size, color=colour, label=f"{reason} ({len(xs):,})", zorder=3,
                   linewidths=0.8)
    ax.plot(x, series.index_usd, lw=1.1, color="black", ls="--", label="index (USD)", zorder=4)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8, ncol=3, loc="best")
    return _png(fig)


def _price_plot(series: Series, timeline: Timeline, tick_usd: float) -> str:
    x, xlabel = _time_axis(series)
    clearings = timeline.clearings
    title = "Mark and last price, best bid / ask" + (", auction clearing prices (AuctionCleared)" if clearings else "")
    fig, ax = _figure(title, "USD")
    ax.plot(x, series.bid_usd, lw=0.6, color="#2e7d32", alpha=0.6, label="best bid")
    ax.plot(x, series.ask_usd, lw=0.6, color="#c62828", alpha=0.6, label="best ask")
    ax.plot(x, series.last_usd, lw=0.9, color="#1565c0", label="last trade")
    if clearings:
        div, _ = _seconds_axis(series)
        ax.scatter([t / div for t, _, _ in clearings], [price * tick_usd for _, price, _ in clearings], s=3,
                   color="#ef6c00", alpha=0.7, linewidths=0, zorder=3,
                   label=f"clearing price ({timeline.clearings_total:,} clearings)")
    ax.plot(x, series.mark_usd, lw=1.3, color="black", label="mark")
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8, ncol=5)
    return _png(fig)


def _depth_plot(series: Series, lot_btc: float, batch: bool) -> str:
    x, xlabel = _time_axis(series)
    where = " (a batch market: the LP orders in its batch book)" if batch else ""
    fig, ax = _figure(f"Resting depth, top {series.levels} levels per side{where}", "BTC")
    ax.plot(x, [v * lot_btc for v in series.depth_bid_lots], lw=0.9, color="#2e7d32", label="bids")
    ax.plot(x, [v * lot_btc for v in series.depth_ask_lots], lw=0.9, color="#c62828", label="asks")
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8)
    return _png(fig)


def _oi_plot(series: Series, lot_btc: float) -> str:
    x, xlabel = _time_axis(series)
    fig, ax = _figure("Open interest and traders holding a position", "open interest, BTC")
    ax.plot(x, [v * lot_btc for v in series.open_interest_lots], lw=1.1, color="#6a1b9a", label="open interest")
    twin = ax.twinx()
    twin.plot(x, series.traders_open, lw=0.8, color="#ef6c00", label="traders with a position")
    twin.set_ylabel("traders")
    ax.set_xlabel(xlabel)
    _legend(ax, twin)
    return _png(fig)


def _legend(ax: Any, twin: Any) -> None:
    handles, labels = ax.get_legend_handles_labels()
    more_handles, more_labels = twin.get_legend_handles_labels()
    ax.legend(handles + more_handles, labels + more_labels, fontsize=8, loc="upper left")


def _buckets(x: list[float], values: list[int]) -> tuple[list[float], list[float], float]:
    if not x:
        return [], [], 1.0
    count = max(1, min(buckets_max, len(x)))
    lo, hi = x[0], x[-1] if x[-1] > x[0] else x[0] + 1.0
    width = (hi - lo) / count
    sums = [0.0] * count
    for xi, v in zip(x, values):
        sums[min(count - 1, int((xi - lo) / width))] += v
    return [lo + (i + 0.5) * width for i in range(count)], sums, width


def _fills_plot(series: Series, lot_btc: float) -> str:
    x, xlabel = _time_axis(series)
    centers, volume, width = _buckets(x, series.volume_lots)
    _, fills, _ = _buckets(x, series.fills)
    fig, ax = _figure("Fills and traded volume", "volume, BTC")
    ax.bar(centers, [v * lot_btc for v in volume], width=width * 0.9, color="#90caf9", label="volume (BTC)")
    twin = ax.twinx()
    twin.plot(centers, fills, lw=1.0, color="#0d47a1", label="fills")
    twin.set_ylabel("fills")
    ax.set_xlabel(xlabel)
    _legend(ax, twin)
    return _png(fig)


def _risk_plot(series: Series) -> str:
    x, xlabel = _time_axis(series)
    fig, ax = _figure("Equity shortfall (sum of negative equity at the mark) and accounts at risk", "shortfall, USD")
    ax.plot(x, series.shortfall_usd, lw=1.2, color="#b71c1c", label="equity shortfall (USD)")
    twin = ax.twinx()
    twin.plot(x, series.under_maintenance, lw=0.9, color="#ef6c00", label="under maintenance margin")
    twin.plot(x, series.bankrupt, lw=0.9, color="#4e342e", ls="--", label="equity < 0")
    twin.set_ylabel("accounts")
    if not any(series.under_maintenance) and not any(series.bankrupt):
        ax.text(0.5, 0.6, "0 at every sample: no account was below maintenance or bankrupt at any index tick\n"
                "(measured by the replay's own monitor, independently of the risk engine)",
                transform=ax.transAxes, ha="center", fontsize=9, color="#555555")
    ax.set_xlabel(xlabel)
    _legend(ax, twin)
    return _png(fig)


def _insurance_plot(series: Series) -> str:
    x, xlabel = _time_axis(series)
    fig, ax = _figure("Insurance fund balance", "USD")
    values = series.insurance_fund_usd
    ax.plot(x, values, lw=1.2, color="#00695c", drawstyle="steps-post")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    finite = [v for v in values if not math.isnan(v)]
    if finite:
        low, high = min(finite), max(finite)
        pad = max((high - low) * 0.1, 1.0)
        ax.set_ylim(low - pad, high + pad)  # not from 0: a drawdown of a few hundred USD must show
        ax.text(0.005, 0.04, f"min {low:,.2f} · max {high:,.2f} · end {finite[-1]:,.2f} USD", transform=ax.transAxes,
                fontsize=8, color="#00695c")
    ax.set_xlabel(xlabel)
    return _png(fig)


_RISK_FAMILIES = (  # (family in Series.risk_events, panel title, colour)
    ("liquidations", "liquidation fills (PositionLiquidated)", "#c62828"),
    ("adl", "ADL closes (AutoDeleveraged)", "#6a1b9a"),
    ("funding", "funding events (FundingRateSet + FundingPaid)", "#1565c0"),
)


def _risk_events_plot(series: Series) -> str:
    """One panel per family, cumulative count on its own axis (a shared axis flattens the rare ones)."""
    x, xlabel = _time_axis(series)
    fig, axes = plt.subplots(len(_RISK_FAMILIES), 1, figsize=(11, 6.6), sharex=True)
    fig.suptitle("Risk-engine events, cumulative (each on its own scale)", fontsize=11, x=0.01, ha="left")
    for ax, (family, title, colour) in zip(axes, _RISK_FAMILIES):
        column = series.risk_events.get(family, [])
        values = column if len(column) == len(x) else [0] * len(x)
        ax.plot(x, values, lw=1.2, color=colour, drawstyle="steps-post")
        ax.set_ylabel("count")
        ax.grid(alpha=0.3)
        ax.text(0.005, 0.92, f"{title}: {values[-1] if values else 0:,}", transform=ax.transAxes, fontsize=9,
                va="top", color=colour)
    axes[-1].set_xlabel(xlabel)
    fig.tight_layout()
    return _png(fig)


def _seconds_axis(series: Series) -> tuple[float, str]:
    """Divisor and label that put seconds since start on the same axis as :func:`_time_axis`."""
    span = series.t_s[-1] if series.t_s else 0.0
    if span > 2 * 86_400:
        return 86_400.0, "days since start"
    if span > 2 * 3_600:
        return 3_600.0, "hours since start"
    return 1.0, "seconds since start"


def _funding_plot(series: Series, timeline: Timeline) -> str:
    """The 8 h funding rate (and premium) of every settlement, in percent."""
    div, xlabel = _seconds_axis(series)
    fig, ax = _figure("Funding rate at each settlement (FundingRateSet), % per 8 h", "% per 8 h")
    t = [row[0] / div for row in timeline.funding]
    ax.step(t, [row[1] / 1e7 for row in timeline.funding], where="post", lw=1.1, color="#1565c0",
            label="funding rate (8 h)")
    ax.plot(t, [row[2] / 1e7 for row in timeline.funding], lw=0.7, color="#90caf9", alpha=0.9,
            label="premium index")
    ax.axhline(0, color="black", lw=0.6)
    if series.t_s:
        ax.set_xlim(0, series.t_s[-1] / div)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


_STATE_ORDER = [MarketState.ACTIVE, MarketState.POST_ONLY, MarketState.CANCEL_ONLY, MarketState.AUCTION,
                MarketState.HALTED, MarketState.SETTLING]
_REASON_COLOURS = {TransitionReason.velocity: "#ef6c00", TransitionReason.luld_limit_state: "#c62828",
                   TransitionReason.guardian: "#6a1b9a", TransitionReason.scheduled: "#546e7a",
                   TransitionReason.auction_uncrossed: "#2e7d32"}


def _state_label(value: int) -> str:
    try:
        return MarketState(value).name
    except ValueError:
        return str(value)


def _reason_label(value: int) -> str:
    try:
        return TransitionReason(value).name.replace("_", " ")
    except ValueError:
        return str(value)


def _breaker_plot(series: Series, timeline: Timeline) -> str:
    """Market state over time (steps), every transition marked by its reason, and the time not ACTIVE."""
    div, xlabel = _seconds_axis(series)
    end = series.t_s[-1] / div if series.t_s else 1.0
    fig, (ax, bar) = plt.subplots(2, 1, figsize=(11, 4.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.set_title("Market state (band, velocity pause, LULD): every MarketStateChanged at its time; matching "
                 "mode shaded", fontsize=11, loc="left")
    _mode_spans(ax, timeline, div, end)
    level = {int(state): i for i, state in enumerate(_STATE_ORDER)}
    xs, ys = [0.0], [level[int(MarketState.ACTIVE)]]
    for t, _, to_state, _ in timeline.states:
        xs.append(t / div)
        ys.append(level.get(to_state, len(level)))
    xs.append(end)
    ys.append(ys[-1])
    ax.step(xs, ys, where="post", lw=1.2, color="#37474f")
    seen: set[int] = set()
    for t, _, to_state, reason in timeline.states:
        colour = _REASON_COLOURS.get(reason, "black")  # type: ignore[call-overload]  # IntEnum keys hash as ints
        ax.scatter([t / div], [level.get(to_state, len(level))], s=26, color=colour, zorder=3,
                   label=None if reason in seen else _reason_label(reason))
        seen.add(reason)
    ax.set_yticks(range(len(_STATE_ORDER)), [s.name for s in _STATE_ORDER], fontsize=8)
    ax.set_ylim(-0.5, len(_STATE_ORDER) - 0.5)
    ax.grid(alpha=0.3)
    if seen or timeline.modes:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0),
                  title="transition reason" if not timeline.modes else "reason / matching mode", title_fontsize=8)
    else:
        ax.text(0.5, 0.6, "no market-state change: no breaker engaged (or none configured)",
                transform=ax.transAxes, ha="center", fontsize=10, color="#6b7685")
    # Time outside ACTIVE per bucket (seconds), so short pauses stay visible at a three-week scale.
    buckets = max(1, min(buckets_max, len(series.t_s)))
    width = end / buckets if end > 0 else 1.0
    outside = [0.0] * buckets
    state, since = int(MarketState.ACTIVE), 0.0
    for t, _, to_state, _ in [*timeline.states, (end * div, 0, int(MarketState.ACTIVE), 0)]:
        if state != int(MarketState.ACTIVE):
            _spread(outside, since / div, t / div, width)
        state, since = to_state, t
    bar.bar([(i + 0.5) * width for i in range(buckets)], [v * div for v in outside], width=width * 0.95,
            color="#ef6c00")
    bar.set_ylabel("s not ACTIVE", fontsize=8)
    bar.grid(alpha=0.3)
    bar.set_xlabel(xlabel)
    bar.set_xlim(0, end)
    fig.tight_layout()
    return _png(fig)


_MODE_COLOURS = {int(MatchingMode.BATCH): "#fff3e0", int(MatchingMode.SEALED_BATCH): "#e8eaf6"}


def _mode_label(mode: int, interval_ns: int) -> str:
    try:
        name = MatchingMode(mode).name
    except ValueError:
        name = str(mode)
    return f"{name} τ = {interval_ns / 1e9:,g} s" if interval_ns else name


def _mode_spans(ax: Any, timeline: Timeline, div: float, end: float) -> None:
    """Shade the periods of non-continuous matching (``MatchingModeSet``), each labelled with its mode."""
    spans: list[tuple[float, float, int, int]] = []
    for i, (t, mode, interval) in enumerate(timeline.modes):
        stop = timeline.modes[i + 1][0] / div if i + 1 < len(timeline.modes) else end
        if mode != int(MatchingMode.CONTINUOUS):
            spans.append((t / div, stop, mode, interval))
    labelled: set[tuple[int, int]] = set()
    for start, stop, mode, interval in spans:
        key = (mode, interval)
        ax.axvspan(start, max(stop, start + end * 1e-3), color=_MODE_COLOURS.get(mode, "#eeeeee"), zorder=0,
                   label=None if key in labelled else f"matching: {_mode_label(mode, interval)}")
        labelled.add(key)
    if spans:
        start, stop, mode, interval = spans[0]
        ax.text(start + (min(stop, end) - start) * 0.01, len(_STATE_ORDER) - 0.8,
                f"{_mode_label(mode, interval)} (uniform-price clearings)", fontsize=8, color="#bf360c")


def _spread(buckets: list[float], start: float, stop: float, width: float) -> None:
    """Add the length of [start, stop) to the buckets of ``width`` it overlaps."""
    i = max(0, int(start // width))
    while i < len(buckets) and i * width < stop:  # bounded by the bucket count
        lo, hi = max(start, i * width), min(stop, (i + 1) * width)
        if hi > lo:
            buckets[i] += hi - lo
        i += 1


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _img(src: str, alt: str) -> str:
    return f'<img src="{src}" alt="{html.escape(alt)}">'


def _empty(what: str) -> str:
    return f'<p class="empty">{html.escape(what)}</p>'


def _setting(name: str, value: Any) -> str:
    """``velocity_pause_ns = 30 s`` style: durations in seconds, integers with separators."""
    if name.endswith("_ns") and isinstance(value, int):
        return f"{name[:-3]} = {value / 1e9:,g} s"
    return f"{name} = {value:,}" if isinstance(value, int) else f"{name} = {value}"


def _breakers_text(summary: dict[str, Any]) -> str:
    breakers = summary.get("breakers", {})
    integrity = breakers.get("integrity") or {}
    configured = ", ".join(_setting(k, v) for k, v in integrity.items())
    transitions = ", ".join(f"{k.replace(':', ' (')}) × {n:,}" for k, n in breakers.get("transitions", {}).items())
    parts = [f"configured: {configured}" if configured else "no breaker configured (the scenario's [breakers] "
             "table is empty)"]
    if transitions:
        parts.append(f"transitions: {transitions}")
    seconds = breakers.get("seconds_by_state", {})
    if seconds:
        parts.append("time by state: " + ", ".join(f"{k} {v:,.0f} s" for k, v in seconds.items()))
    parts.append(_matching_text(summary))
    return "".join(f"<p>{html.escape(p)}</p>" for p in parts)


def _matching_text(summary: dict[str, Any]) -> str:
    """One line on the matching mode: continuous, or the batch interval and what the clearings did."""
    matching = summary.get("matching") or {}
    switches = matching.get("mode_switches") or []
    if not switches:
        return "matching mode: CONTINUOUS (price-time priority) throughout"
    modes = ", ".join(f"{_mode_label(int(MatchingMode[sw['mode']]), sw['interval_ns'])} from {sw['t_s']:,.0f} s"
                      for sw in switches)
    tick = _tick_usd(summary)
    return (f"matching mode: {modes}; {matching.get('clearings', 0):,} clearings "
            f"({matching.get('clearing_volume_lots', 0) / 1000:,.3f} BTC), clearing prices "
            f"{matching.get('clearing_price_min_ticks', 0) * tick:,.1f} .. "
            f"{matching.get('clearing_price_max_ticks', 0) * tick:,.1f} USD; "
            f"{matching.get('fills_without_aggressor', 0):,} fills at a clearing price (no aggressor); "
            f"{matching.get('boundary_heartbeats', 0):,} boundary heartbeats")


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}"
    return html.escape(str(value))


def _usd(atoms: int, decimals: int = 6) -> str:
    return f"{atoms / 10**decimals:,.2f} USD"


def _figures_rows(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    risk, index, book, timing = summary["risk"], summary["index"], summary["book"], summary["timing"]
    rows: list[tuple[str, str, str]] = [
        ("commands", _fmt(summary["commands"]), "journaled commands"),
        ("events", _fmt(summary["events"]), "engine events"),
        ("fills", _fmt(summary["fills"]), "TradeExecuted events"),
        ("volume", f"{summary['volume_lots'] / 1000:,.3f} BTC", f"{_usd(summary['notional_atoms'])} notional"),
        ("duration", f"{summary['duration_s']:,.1f} s", "engine (capture) time covered"),
        ("max index deviation", f"{summary['max_index_deviation_ppm']:,} ppm", f"vs {index['reference_source']}"),
        ("mark vs book mid, max", f"{index['mark_vs_book_mid_max_ppm']:,} ppm", "engine book mid at index ticks"),
        ("index ticks priced", f"{index['priced_ticks']:,} / {index['ticks']:,}", "no-price ticks keep the mark"),
        ("liquidations", _fmt(summary["liquidations"]), "liquidation fills (PositionLiquidated)"),
        ("accounts liquidated", _fmt(summary["accounts_liquidated"]), "distinct accounts"),
        ("bad debt", _usd(summary["bad_debt_atoms"]), "realized (risk engine)"),
        ("insurance fund drawdown", _usd(summary["insurance_fund_drawdown_atoms"]), "peak minus current, max"),
        ("ADL", _fmt(summary["adl_count"]), "auto-deleveraging events"),
        ("funding", f"{risk['funding_events']:,} events", "FundingRateSet + FundingPaid"),
        ("market-state changes", _fmt(summary.get("breakers", {}).get("market_state_changes", 0)),
         "band / velocity / LULD / guardian (MarketStateChanged)"),
        ("matching mode", html.escape(_matching_mode(summary)), "from the scenario's [matching] table"),
        ("auction clearings", _fmt(summary.get("matching", {}).get("clearings", 0)),
         f"AuctionCleared; {summary.get('matching', {}).get('fills_without_aggressor', 0):,} fills at a clearing price"),
        ("oracle reports refused", _fmt(summary.get("oracle_reports", {}).get("reports_rejected", 0)),
         f"of {summary.get('oracle_reports', {}).get('reports_received', 0):,} signed reports checked by the shell"),
        ("accounts under maintenance, max", _fmt(risk["accounts_under_maintenance_max"]), "equity < MM at the mark"),
        ("accounts with equity < 0, max", _fmt(risk["accounts_bankrupt_max"]), "would be bad debt"),
        ("equity shortfall, max", _usd(risk["equity_shortfall_max_atoms"]), "sum of negative equity"),
        ("equity shortfall, end", _usd(risk["equity_shortfall_end_atoms"]), ""),
        ("open interest, end", f"{summary['open_interest_end_lots'] / 1000:,.3f} BTC", ""),
        ("book checks (mismatches)", f"{book['checks']:,} ({book['mismatches']:,})", "engine top N vs target"),
        ("state hash", summary["state_hash"][:16] + "…", "SHA-256 of the engine state"),
        ("journal replay", "matches" if summary["journal_replay_state_hash"] in (None, summary["state_hash"])
         else "DIVERGED", "fresh engine from seq 1"),
        ("events / s (wall)", _fmt(timing["events_per_s"]), f"run {timing['wall_s']:.2f} s (timing, not a figure)"),
    ]
    return rows


def _tick_usd(summary: dict[str, Any]) -> float:
    """The instrument's tick in USD (prices in ticks -> the report's USD axes)."""
    return float((summary.get("matching") or {}).get("tick_size", "0.1"))


def _matching_mode(summary: dict[str, Any]) -> str:
    matching = summary.get("matching") or {}
    if matching.get("mode") == "batch":
        return f"batch, τ = {matching.get('interval_ns', 0) / 1e9:,g} s"
    return "continuous"


def _table(rows: list[tuple[str, str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(a)}</th><td class=v>{b}</td><td>{html.escape(c)}</td></tr>"
                   for a, b, c in rows)
    return f"<table>{body}</table>"


def write_report(result: ReplayResult, scenario: Scenario, path: Path) -> None:
    """Render the replay's report page to ``path`` (self-contained HTML)."""
    summary, series = result.summary, result.series
    timeline = result.timeline if result.timeline is not None else Timeline(summary["start_ns"], 0)
    lot_btc = 0.001
    tick_usd = _tick_usd(summary)
    started = datetime.fromtimestamp(summary["start_ns"] / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    verified = summary["journal_replay_state_hash"] in (None, summary["state_hash"])
    funding = (_img(_funding_plot(series, timeline), "funding rate") if timeline.funding
               else _empty("no funding settlement in this window (hourly settlements; the run is shorter)"))
    parts = [
        _section("Index vs each source", _img(_index_plot(series), "index and sources")),
        _section("Mark and last price" + (", batch clearing prices" if timeline.clearings else ""),
                 _img(_price_plot(series, timeline, tick_usd), "mark and last price")),
        _section("Book depth over time", _img(_depth_plot(series, lot_btc, (summary.get("matching") or {}).get("mode") == "batch"),
                                                   "book depth")),
        _section("Open interest", _img(_oi_plot(series, lot_btc), "open interest")),
        _section("Fills and volume", _img(_fills_plot(series, lot_btc), "fills and volume")),
        _section("Equity shortfall and accounts under maintenance", _img(_risk_plot(series), "risk")),
        _section("Insurance fund", _img(_insurance_plot(series), "insurance fund")),
        _section("Liquidations, ADL and funding over time", _img(_risk_events_plot(series), "risk events")),
        _section("Funding rate", funding),
        _section("Circuit breakers and market state", _breakers_text(summary)
                 + _img(_breaker_plot(series, timeline), "market state timeline")),
        _section("Figures", _table(_figures_rows(summary))),
        _section("summary.json", "<details><summary>all figures</summary><pre>"
                 + html.escape(json.dumps(summary, indent=2)) + "</pre></details>"),
    ]
    status = '<span class="ok">journal replay verified</span>' if verified else '<span class="bad">DIVERGED</span>'
    page = (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>bastion replay — {html.escape(scenario.name)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>bastion replay — {html.escape(scenario.name)}</h1>"
        f"<p>{html.escape(scenario.scenario.description)}</p>"
        f"<p>{html.escape(summary['kind'])} replay · data {html.escape(summary['data']['path'])} · start {started}"
        f" · seed {summary['seed']} · state {summary['state_hash'][:16]}… · {status}</p></header>"
        f"<main>{''.join(parts)}</main></body></html>"
    )
    path.write_text(page, encoding="utf-8")
