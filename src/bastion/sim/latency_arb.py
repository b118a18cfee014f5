"""Latency-arbitrage experiment: fast snipers vs a slow market maker, continuous matching vs frequent
batch auctions (shell code: seeded randomness, floats for reporting, file output).

Budish–Cramton–Shim (QJE 2015; shared/reference/matching-engines.md §3.8): in a continuous limit order
book every public jump in the fundamental value ``V`` starts a race between the market maker, who
wants to cancel its now-stale quote, and snipers, who want to trade against it. The faster side always
wins, so a speed edge ``delta`` is worth the whole stale-quote rent. With batch interval ``tau`` both
messages usually land in the *same* batch, the cancel is applied first and nothing is sniped; the
sniper wins only when a batch boundary falls between the two arrivals, which happens with probability
``delta / tau`` — so the edge is worth about ``delta / tau`` of its continuous value.

Model (one instrument, the default venue's BTC perpetual, ticks and lots):

* ``V`` starts at the instrument's reference price and jumps at Poisson times by a uniform
  ``+/-1..jump_ticks_max`` ticks; the same path (same seed) is used in every mode.
* The market maker quotes ``V -/+ half_spread_ticks`` for ``quote_lots`` each side; ``maker_latency_ns``
  after every jump its cancel-all and the two new quotes arrive.
* A sniper sees the jump and the quote in force; if the quote is now stale (ask < new ``V`` or bid >
  new ``V``), an IOC for ``snipe_lots`` at the stale price arrives ``sniper_latency_ns`` after the jump.
* Noise traders arrive at Poisson times with IOC orders at ``V +/- half_spread_ticks`` (they pay the
  spread): the maker's income.

Both modes drive the real :class:`~bastion.core.engine.Engine` through ``Engine.apply`` only, with the
same arrivals. Continuous mode matches price-time in the FastBook. Batch mode first switches the
instrument to frequent batch auctions (``SetMarketState`` CANCEL_ONLY, ``SetMatchingMode`` BATCH with
interval ``tau``, ``SetMarketState`` ACTIVE, grid origin a multiple of ``tau``); then, as a sequencer
shell would, it sends a ``Heartbeat`` at the first boundary after any order entry, so every batch clears
at its boundary with the engine's uniform-price rule (``AuctionCleared`` + ``TradeExecuted``). The venue
is the default one with a 2 % price band referenced to the last trade (the batch clearings' tie-break
reference and collar; it never binds here) and guardian id 1. Measures: sniper PnL per second (marked to
``V`` at the fill: the boundary in batch mode), the maker's effective spread ``2 * sum(edge*qty)/sum(qty)``
where the maker's edge on a fill is ``(price - V) * (-maker_side)``, and fill counts. Fees are left out
of both measures (they are the same rate on both sides in a batch and would only shift the levels).
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bastion.core.commands import (
    CancelAll,
    CreateAccount,
    Deposit,
    Heartbeat,
    PlaceOrder,
    Sequenced,
    SetMarketState,
    SetMatchingMode,
)
from bastion.core.engine import Engine
from bastion.core.events import AuctionCleared, CommandRejected, TradeExecuted
from bastion.core.instruments import VenueConfig
from bastion.core.integrity.codes import MatchingMode
from bastion.core.integrity.states import MarketState

__all__ = ["LatencyArbParams", "experiment_config", "generate_flow", "run_batch", "run_continuous",
           "run_latency_arbitrage"]

MAKER, SNIPER, NOISE = 1, 2, 3
GUARDIAN = 1
BAND_PPM = 20_000
_IOC = 1
_START_NS = 1_000_000_000


@dataclass(frozen=True)
class LatencyArbParams:
    """Experiment parameters (engine ns, ticks, lots)."""

    duration_ns: int = 120_000_000_000
    instrument_id: int = 1
    jump_rate_per_s: float = 5.0
    jump_ticks_max: int = 40
    half_spread_ticks: int = 10
    quote_lots: int = 1_000
    snipe_lots: int = 10
    noise_rate_per_s: float = 20.0
    noise_lots_max: int = 5
    sniper_latency_ns: int = 50_000
    maker_latency_ns: int = 150_000
    batch_intervals_ns: tuple[int, ...] = (50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000, 5_000_000,
                                           10_000_000, 30_000_000, 100_000_000)

    @property
    def delta_ns(self) -> int:
        return self.maker_latency_ns - self.sniper_latency_ns


@dataclass(frozen=True)
class Flow:
    """The shared exogenous path: jumps ``(time_ns, new_value_ticks)`` and noise ``(time_ns, side, lots)``."""

    start_value_ticks: int
    jumps: tuple[tuple[int, int], ...]
    noise: tuple[tuple[int, int, int], ...]


def generate_flow(params: LatencyArbParams, seed: int, start_value_ticks: int) -> Flow:
    """Draw the jump and noise arrivals (seeded; the only randomness of the experiment)."""
    rng = random.Random(seed)
    jumps: list[tuple[int, int]] = []
    t, value = _START_NS, start_value_ticks
    end = _START_NS + params.duration_ns
    while True:
        t += max(1, int(rng.expovariate(params.jump_rate_per_s) * 1e9))
        if t >= end:
            break
        value += rng.choice((1, -1)) * rng.randint(1, params.jump_ticks_max)
        jumps.append((t, value))
    noise: list[tuple[int, int, int]] = []
    t = _START_NS
    while True:
        t += max(1, int(rng.expovariate(params.noise_rate_per_s) * 1e9))
        if t >= end:
            break
        noise.append((t, rng.choice((1, -1)), rng.randint(1, params.noise_lots_max)))
    return Flow(start_value_ticks, tuple(jumps), tuple(noise))


class _Path:
    """``V(t)`` and the maker's quote mid in force at ``t`` (from the jump list), by bisection."""

    def __init__(self, flow: Flow, maker_latency_ns: int) -> None:
        self.times = [t for t, _ in flow.jumps]
        self.values = [flow.start_value_ticks] + [v for _, v in flow.jumps]
        self.quote_times = [t + maker_latency_ns for t in self.times]

    def value_at(self, t: int) -> int:
        return self.values[bisect.bisect_right(self.times, t)]

    def quote_mid_at(self, t: int) -> int:
        return self.values[bisect.bisect_right(self.quote_times, t)]


def _arrivals(params: LatencyArbParams, flow: Flow) -> list[tuple[int, int, int, tuple[int, ...]]]:
    """Time-ordered arrivals ``(time_ns, kind, index, payload)``; identical for every mode."""
    path = _Path(flow, params.maker_latency_ns)
    s = params.half_spread_ticks
    out: list[tuple[int, int, int, tuple[int, ...]]] = []
    for j, (t, value) in enumerate(flow.jumps):
        out.append((t + params.maker_latency_ns, MAKER, j, (value,)))
        mid = path.quote_mid_at(t)  # the quote the sniper sees at the jump
        if value > mid + s:
            out.append((t + params.sniper_latency_ns, SNIPER, j, (1, mid + s)))
        elif value < mid - s:
            out.append((t + params.sniper_latency_ns, SNIPER, j, (-1, mid - s)))
    for k, (t, side, lots) in enumerate(flow.noise):
        out.append((t, NOISE, k, (side, path.value_at(t) + side * s, lots)))
    out.sort(key=lambda a: (a[0], a[1], a[2]))
    return out


@dataclass
class _Tally:
    sniper_pnl_ticks_lots: int = 0
    sniper_fills: int = 0
    sniper_lots: int = 0
    maker_edge_ticks_lots: int = 0
    maker_lots: int = 0
    snipes_sent: int = 0
    clearings: int = 0  # batch mode: AuctionCleared events (uniform-price clearings that traded)

    def maker_fill(self, maker_side: int, price: int, value: int, lots: int) -> None:
        self.maker_edge_ticks_lots += (price - value) * (-maker_side) * lots
        self.maker_lots += lots

    def sniper_fill(self, side: int, price: int, value: int, lots: int) -> None:
        self.sniper_pnl_ticks_lots += (value - price) * side * lots
        self.sniper_fills += 1
        self.sniper_lots += lots

    def summary(self, params: LatencyArbParams, atoms_per_tick_lot: int) -> dict[str, Any]:
        seconds = params.duration_ns / 1e9
        return {
            "sniper_pnl_ticks_lots": self.sniper_pnl_ticks_lots,
            "sniper_pnl_ticks_lots_per_s": self.sniper_pnl_ticks_lots / seconds,
            "sniper_pnl_atoms_per_s": self.sniper_pnl_ticks_lots * atoms_per_tick_lot / seconds,
            "sniper_fills": self.sniper_fills,
            "sniper_lots": self.sniper_lots,
            "snipes_sent": self.snipes_sent,
            # In batch mode a snipe can also meet a noise order of the same batch at a near-fair price.
            "snipe_fill_rate": self.sniper_fills / self.snipes_sent if self.snipes_sent else None,
            "maker_lots": self.maker_lots,
            "maker_effective_spread_ticks": (2 * self.maker_edge_ticks_lots / self.maker_lots) if self.maker_lots else None,
            "clearings": self.clearings,
        }


def experiment_config(config: VenueConfig, instrument_id: int) -> VenueConfig:
    """``config`` with a guardian (id 1 unless it has some) and a 2 % band on the last trade for the
    experiment's instrument: the batch tie-break reference is then the last clearing price."""
    spec = config.instruments[instrument_id]
    integrity = dataclasses.replace(spec.integrity, band_ppm=BAND_PPM, band_reference=1)
    instruments = dict(config.instruments)
    instruments[instrument_id] = dataclasses.replace(spec, integrity=integrity)
    return dataclasses.replace(config, instruments=instruments, guardian_ids=config.guardian_ids or (GUARDIAN,))


class _Driver:
    """Stamps commands for one engine (seq + 1, engine time never decreasing); refuses nothing silently."""

    def __init__(self, engine: Engine, start_ns: int) -> None:
        self.engine = engine
        self.seq = 0
        self.now_ns = start_ns
        self.client_id = 0

    def send(self, cmd: Any, at_ns: int) -> list[Any]:
        self.seq, self.now_ns = self.seq + 1, max(self.now_ns, at_ns)
        events = self.engine.apply(Sequenced(self.seq, self.now_ns, cmd))
        assert not any(type(e) is CommandRejected for e in events), (cmd, events)
        return events

    def place(self, account: int, iid: int, side: int, price: int, lots: int, tif: int, at_ns: int) -> list[Any]:
        self.client_id += 1
        return self.send(PlaceOrder(account, iid, self.client_id, side, price, lots, time_in_force=tif), at_ns)

    def setup(self) -> None:
        for account in (MAKER, SNIPER, NOISE):
            self.send(CreateAccount(account, account), self.now_ns)
            self.send(Deposit(account, 10**15), self.now_ns)


def run_continuous(params: LatencyArbParams, flow: Flow, config: VenueConfig) -> _Tally:
    """Continuous price-time matching on the real engine (public API: ``Engine.apply`` only)."""
    drive = _Driver(Engine(config), _START_NS - 1_000)
    path = _Path(flow, params.maker_latency_ns)
    iid, s, q = params.instrument_id, params.half_spread_ticks, params.quote_lots
    tally = _Tally()
    drive.setup()
    drive.place(MAKER, iid, 1, flow.start_value_ticks - s, q, 0, drive.now_ns)
    drive.place(MAKER, iid, -1, flow.start_value_ticks + s, q, 0, drive.now_ns)
    for t, kind, _, payload in _arrivals(params, flow):
        if kind == MAKER:
            events = drive.send(CancelAll(MAKER, iid), t)
            events += drive.place(MAKER, iid, 1, payload[0] - s, q, 0, t)
            events += drive.place(MAKER, iid, -1, payload[0] + s, q, 0, t)
        elif kind == SNIPER:
            tally.snipes_sent += 1
            events = drive.place(SNIPER, iid, payload[0], payload[1], params.snipe_lots, _IOC, t)
        else:
            events = drive.place(NOISE, iid, payload[0], payload[1], payload[2], _IOC, t)
        value = path.value_at(drive.now_ns)
        for ev in events:
            if type(ev) is TradeExecuted:
                assert ev.maker_account_id == MAKER, "only the maker rests"
                tally.maker_fill(-ev.taker_side, ev.price_ticks, value, ev.qty_lots)
                if ev.taker_account_id == SNIPER:
                    tally.sniper_fill(ev.taker_side, ev.price_ticks, value, ev.qty_lots)
    return tally


def _tally_clearing(events: list[Any], path: _Path, tally: _Tally) -> int:
    """Book the batch fills among ``events`` (TradeExecuted: maker = the sell, taker = the buy) at the value
    in force at their boundary; returns the number of clearings seen."""
    value = 0
    clearings = 0
    for ev in events:
        if type(ev) is AuctionCleared:
            value = path.value_at(ev.at_ns)
            clearings += 1
            tally.clearings += 1
        elif type(ev) is TradeExecuted:
            assert ev.taker_side == 0 and clearings, "batch fills come only from a clearing"
            for account, side in ((ev.maker_account_id, -1), (ev.taker_account_id, 1)):
                if account == MAKER:
                    tally.maker_fill(side, ev.price_ticks, value, ev.qty_lots)
                elif account == SNIPER:
                    tally.sniper_fill(side, ev.price_ticks, value, ev.qty_lots)
    return clearings


def run_batch(params: LatencyArbParams, flow: Flow, config: VenueConfig, interval_ns: int) -> _Tally:
    """Frequent batch auctions on the real engine (``SetMatchingMode`` BATCH, interval ``interval_ns``)
    over the same arrivals; a Heartbeat at the first boundary after any order entry clears each batch."""
    tau = interval_ns
    origin = (_START_NS - 1_000) // tau * tau
    engine = Engine(config)
    drive = _Driver(engine, origin)
    path = _Path(flow, params.maker_latency_ns)
    iid, s, q = params.instrument_id, params.half_spread_ticks, params.quote_lots
    tally = _Tally()
    drive.setup()
    drive.send(SetMarketState(GUARDIAN, iid, MarketState.CANCEL_ONLY), origin)
    drive.send(SetMatchingMode(GUARDIAN, iid, MatchingMode.BATCH, tau), origin)
    drive.send(SetMarketState(GUARDIAN, iid, MarketState.ACTIVE), origin)
    drive.place(MAKER, iid, 1, flow.start_value_ticks - s, q, 0, origin)
    drive.place(MAKER, iid, -1, flow.start_value_ticks + s, q, 0, origin)
    pending_boundary = origin + tau  # the boundary of the batch holding the newest order entry

    for t, kind, _, payload in _arrivals(params, flow):
        if pending_boundary and t >= pending_boundary:
            _tally_clearing(drive.send(Heartbeat(), pending_boundary), path, tally)
            pending_boundary = 0
        if kind == MAKER:
            events = drive.send(CancelAll(MAKER, iid), t)
            events += drive.place(MAKER, iid, 1, payload[0] - s, q, 0, t)
            events += drive.place(MAKER, iid, -1, payload[0] + s, q, 0, t)
        elif kind == SNIPER:
            tally.snipes_sent += 1
            events = drive.place(SNIPER, iid, payload[0], payload[1], params.snipe_lots, _IOC, t)
        else:
            events = drive.place(NOISE, iid, payload[0], payload[1], payload[2], _IOC, t)
        assert _tally_clearing(events, path, tally) == 0, "the boundary heartbeat cleared the batch"
        pending_boundary = origin + ((drive.now_ns - origin) // tau + 1) * tau
    if pending_boundary:
        _tally_clearing(drive.send(Heartbeat(), pending_boundary), path, tally)
    assert len(engine.books[iid]) == 0, "a batch market rests nothing in the FastBook"
    return tally


def _plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    taus_ms = [row["interval_ns"] / 1e6 for row in summary["batch"]]
    cont = summary["continuous"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    rates = [row["sniper_pnl_ticks_lots_per_s"] for row in summary["batch"]]
    left.plot(taus_ms, rates, "o-", label="batch auctions (engine, SetMatchingMode)")
    left.plot(taus_ms, [r["bcs_predicted_ticks_lots_per_s"] for r in summary["batch"]], "k--",
              label="BCS: continuous x min(1, delta/tau)")
    left.set_xscale("log")
    left.set_yscale("symlog", linthresh=1.0)  # batch PnL can be slightly negative (adverse marks)
    left.axhline(cont["sniper_pnl_ticks_lots_per_s"], color="tab:red", label="continuous (engine)")
    left.set_ylim(top=3 * max(cont["sniper_pnl_ticks_lots_per_s"], 1.0))
    left.set_xlabel("batch interval tau (ms)")
    left.set_ylabel("sniper PnL (tick-lots / s)")
    left.set_title(f"Sniper profit rate, delta = {summary['params']['delta_ns'] / 1e3:.0f} us")
    left.legend(fontsize=8, loc="lower left")
    spreads = [row["maker_effective_spread_ticks"] or 0.0 for row in summary["batch"]]
    right.semilogx(taus_ms, spreads, "o-", label="batch auction")
    right.axhline(cont["maker_effective_spread_ticks"] or 0.0, color="tab:red", label="continuous")
    right.axhline(2 * summary["params"]["half_spread_ticks"], color="gray", ls=":", label="quoted spread")
    right.set_xlabel("batch interval tau (ms)")
    right.set_ylabel("maker effective spread (ticks)")
    right.set_title("Market-maker effective spread")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _html(summary: dict[str, Any], png: Path, path: Path) -> None:
    """A standalone page: the figure (inlined) and the table of measured vs predicted figures."""
    import base64
    import html

    cont = summary["continuous"]
    params = summary["params"]

    def num(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    rows = [f"<tr><td>continuous</td><td>-</td><td>{num(cont['sniper_pnl_ticks_lots_per_s'])}</td><td>-</td>"
            f"<td>{cont['sniper_fills']}</td><td>{num(cont['maker_effective_spread_ticks'], 2)}</td></tr>"]
    for row in summary["batch"]:
        rows.append(f"<tr><td>batch, tau = {row['interval_ns'] / 1e6:g} ms</td><td>{num(row['delta_over_tau'], 3)}</td>"
                    f"<td>{num(row['sniper_pnl_ticks_lots_per_s'])}</td>"
                    f"<td>{num(row['bcs_predicted_ticks_lots_per_s'])}</td><td>{row['sniper_fills']}</td>"
                    f"<td>{num(row['maker_effective_spread_ticks'], 2)}</td></tr>")
    image = base64.b64encode(png.read_bytes()).decode()
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Latency arbitrage: continuous vs batch auctions</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child{{text-align:left}}</style></head>
<body><h1>Latency arbitrage: continuous matching vs frequent batch auctions</h1>
<p>Seed {summary['seed']}, {params['duration_ns'] / 1e9:g} s of engine time, {summary['jumps']} jumps of the
fundamental value, {summary['noise_orders']} noise orders. Sniper latency {params['sniper_latency_ns'] / 1e3:g} us,
maker latency {params['maker_latency_ns'] / 1e3:g} us: speed edge delta = {params['delta_ns'] / 1e3:g} us.
Quoted spread {2 * params['half_spread_ticks']} ticks. Both modes run on the real engine
(<code>bastion.sim.latency_arb</code>). BCS prediction: continuous rate x min(1, delta / tau).</p>
<img alt="sniper PnL rate and maker effective spread vs tau" style="max-width:100%"
src="data:image/png;base64,{image}">
<table><tr><th>mode</th><th>delta / tau</th><th>sniper PnL (tick-lots / s)</th><th>BCS prediction</th>
<th>sniper fills</th><th>maker effective spread (ticks)</th></tr>
{''.join(rows)}</table>
<p>{html.escape('Sniper PnL is marked to the fundamental value at the fill (the boundary in batch mode).')}</p>
</body></html>
"""
    path.write_text(page, encoding="utf-8")


def run_latency_arbitrage(out_dir: Path | str, seed: int, params: LatencyArbParams | None = None,
                          config: VenueConfig | None = None) -> dict[str, Any]:
    """Run continuous and batch modes on one seeded path; write ``summary.json``, ``latency_arb.png`` and
    ``latency_arb.html``.

    Args:
        out_dir: output directory (created).
        seed: the seed of the jump/noise path (printed in the summary, reproduces the run).
        params: experiment parameters (defaults: 120 s, delta = 100 us, tau from 0.05 to 100 ms).
        config: venue configuration (default: the bundled one); :func:`experiment_config` adds a guardian
            and the last-trade band.

    Returns:
        The summary dict (also written as JSON).
    """
    from bastion.bench import default_config

    params = params or LatencyArbParams()
    config = experiment_config(config or default_config(), params.instrument_id)
    spec = config.instruments[params.instrument_id]
    flow = generate_flow(params, seed, spec.reference_price_ticks)
    k = spec.atoms_per_tick_lot
    continuous = run_continuous(params, flow, config).summary(params, k)
    batch: list[dict[str, Any]] = []
    for tau in params.batch_intervals_ns:
        row: dict[str, Any] = {"interval_ns": tau, "delta_over_tau": params.delta_ns / tau}
        row.update(run_batch(params, flow, config, tau).summary(params, k))
        row["bcs_predicted_ticks_lots_per_s"] = continuous["sniper_pnl_ticks_lots_per_s"] * min(1.0, params.delta_ns / tau)
        cont_rate = continuous["sniper_pnl_ticks_lots_per_s"]
        row["ratio_to_continuous"] = row["sniper_pnl_ticks_lots_per_s"] / cont_rate if cont_rate else None
        batch.append(row)
    summary: dict[str, Any] = {
        "seed": seed,
        "params": {**asdict(params), "delta_ns": params.delta_ns},
        "atoms_per_tick_lot": k,
        "jumps": len(flow.jumps),
        "noise_orders": len(flow.noise),
        "continuous": continuous,
        "batch": batch,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _plot(summary, out / "latency_arb.png")
    _html(summary, out / "latency_arb.png", out / "latency_arb.html")
    return summary


if __name__ == "__main__":  # pragma: no cover - manual entry point: python -m bastion.sim.latency_arb OUT SEED
    import sys

    result = run_latency_arbitrage(sys.argv[1] if len(sys.argv) > 1 else "out/latency_arb",
                                   int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    print(json.dumps({"continuous": result["continuous"], "batch": result["batch"]}, indent=2))
