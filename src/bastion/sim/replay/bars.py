"""Bars replay: 1-minute multi-source bars -> synthetic order flow around the real price path.

Per minute, at the bar's end (engine time = bar open + 60 s; bars are only known when they close):

1. **Index** (after steps 2-3 instead with ``book.index_after_book``): each source whose bar traded (volume > 0) reports its close, timestamped at the bar end
   (quiet venues age and their staleness limit decides); ``OracleState`` aggregates them — USDT and
   USDC quotes converted at the smoothed implied rate and dropped when depegged, as in
   ``tests/oracle/test_depeg_real_data.py`` — and the mark is set from the index.
2. **Takers**: the path source's bar volume (``x volume_scale_ppm``) is split into ``takers_per_bar``
   IOC orders. The first half go in the direction of the move with the new centre as limit (walking the
   ladder, which is how the price moves); the rest take the touch on a seeded random side.
3. **LPs**: the ladder re-centres on the path's close: ``book.levels`` levels per side, spaced
   ``level_step_ppm`` of the start price, sizes ``level_qty_lots``; spread one step. The centre is the
   close floored onto the tick grid — the close is a reference for where the synthetic LPs quote, not a
   quote copied into the book, and every LP price is on the grid by construction.
4. **Traders** act at their own times between minutes (``agents.py``).

In a batch market (``[matching] mode = "batch"``) the takers' IOCs of step 2 wait in the batch book;
the minute's batch clears at its boundary (``Exchange.settle``: one interval after the minute) against
the ladder the takers found, then the LPs re-centre (step 3) and, with ``book.index_after_book``, the
index arrives — at that boundary. Liquidation orders the index causes clear at the following
boundaries (the exchange passes each one with a heartbeat), before the next minute.

Stress (``stress.move_scale = m``): the path's close P becomes ``P' = p0 + m * (P - p0)`` (p0 its first
close), and every source price of the same minute is multiplied by the same factor ``P' / P`` (floored
onto the 0.01 grid). BTC's moves are scaled m-fold around the start while the ratios between venues —
the USDT premium, the USDC depeg — stay as they were: a stablecoin depeg is not a BTC move.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from bastion.core.commands import PlaceOrder, TimeInForce
from bastion.core.oracle import SourcePrice
from bastion.feeds.bars import MINUTE_NS, Bar, BarFile, bar_files, iter_bar_file, iter_bars
from bastion.feeds.inverse import Rounding, div_round
from bastion.core.units import PPM
from bastion.sim.replay.context import NS_PER_S, ReplayContext
from bastion.sim.replay.liquidity import Level
from bastion.sim.replay.scenario import OracleSource, ScenarioError, minute_ns

__all__ = ["run_bars"]

PRICE_EXPONENT = -2  # bastion.feeds.bars prices are in 1e-2 quote units
VOLUME_EXPONENT = -8


def _files(data_dir: Path, sources: tuple[OracleSource, ...]) -> dict[str, BarFile]:
    available = {(f.source, f.symbol): f for f in bar_files(data_dir)}
    chosen: dict[str, BarFile] = {}
    for src in sources:
        meta = available.get((src.bar_source, src.bar_symbol))
        if meta is None:
            raise ScenarioError(f"{data_dir}: no bar file for {src.bar_source} {src.bar_symbol}")
        if meta.quote_currency != src.quote:
            raise ScenarioError(f"source {src.id}: file quotes {meta.quote_currency}, scenario says {src.quote}")
        chosen[src.id] = meta
    return chosen


def _minutes(files: dict[str, BarFile], start_ns: int, end_ns: int) -> Iterator[tuple[int, dict[str, Bar]]]:
    """``(open_time_ns, {source id: bar})`` for every minute of the window (empty dict: no bars)."""
    by_key = {(m.source, m.symbol): sid for sid, m in files.items()}
    stream = iter_bars(list(files.values()), start_ns=start_ns, end_ns=end_ns)
    pending = next(stream, None)
    for open_ns in range(start_ns, end_ns, MINUTE_NS):  # bounded by the window
        group: dict[str, Bar] = {}
        while pending is not None and pending.open_time_ns == open_ns:
            if isinstance(pending, Bar):
                group[by_key[(pending.source, pending.symbol)]] = pending
            pending = next(stream, None)
        assert pending is None or pending.open_time_ns > open_ns
        yield open_ns, group


class _Path:
    """Price transform (stress scaling) and grid conversion of the path."""

    def __init__(self, ctx: ReplayContext, p0_e2: int) -> None:
        self.ctx = ctx
        self.p0_e2 = p0_e2
        self.scale = ctx.scenario.stress.move_scale
        tick_num, tick_den = ctx.spec.tick_size.as_integer_ratio()
        self._tick = (tick_num, tick_den)
        self.step_ticks = max(1, self.to_ticks(p0_e2) * ctx.scenario.book.level_step_ppm // PPM)
        self._factor = (1, 1)

    def set_minute(self, path_close_e2: int) -> None:
        """Set this minute's stress factor from the path close P: f = (p0 + m (P - p0)) / P."""
        scaled = self.p0_e2 + self.scale * (path_close_e2 - self.p0_e2)
        if scaled <= 0:
            raise ScenarioError(f"stress.move_scale={self.scale} drives the price to {scaled / 100} (not positive)")
        self._factor = (scaled, path_close_e2)

    def scaled(self, price_e2: int) -> int:
        """``price_e2 * f`` floored onto the 0.01 grid (exact for the path itself and for m = 1)."""
        num, den = self._factor
        return max(1, price_e2 * num // den)

    def to_ticks(self, price_e2: int) -> int:
        """``price_e2 * 0.01 / tick_size``, floored (see module docstring, step 3)."""
        num, den = self._tick
        return max(1, div_round(price_e2 * den, 100 * num, Rounding.FLOOR))

    def ladder(self, center_ticks: int) -> tuple[list[Level], list[Level]]:
        book = self.ctx.scenario.book
        step = self.step_ticks
        best_bid = (center_ticks - 1) // step * step
        qty = book.level_qty_lots
        bids = [(best_bid - i * step, qty[min(i, len(qty) - 1)]) for i in range(book.levels)]
        asks = [(best_bid + (i + 1) * step, qty[min(i, len(qty) - 1)]) for i in range(book.levels)]
        return [b for b in bids if b[0] > 0], asks


def _takers(ctx: ReplayContext, bar: Bar, center: int, previous: int | None, time_ns: int) -> None:
    book = ctx.scenario.book
    lot_e8 = ctx.spec.lot_size.scaleb(-VOLUME_EXPONENT)
    assert lot_e8 == lot_e8.to_integral_value(), "lot size finer than 1e-8"
    volume_lots = bar.volume_e8 * book.volume_scale_ppm // PPM // int(lot_e8)
    orders = book.takers_per_bar
    if volume_lots <= 0:
        return
    direction = 0 if previous is None else (center > previous) - (center < previous)
    for j in range(orders):  # bounded by takers_per_bar
        qty = volume_lots // orders + (volume_lots % orders if j == 0 else 0)
        if qty <= 0:
            continue
        directional = j < (orders + 1) // 2 and direction != 0
        side = direction if directional else (1 if ctx.rng.randrange(2) else -1)
        if directional:
            limit = center
        else:
            touch = ctx.touch(side, fallback=False)  # no liquidity: no order (as in a continuous market)
            if touch is None:
                continue
            limit = touch
        account_id = ctx.taker_ids[ctx.rng.randrange(len(ctx.taker_ids))]
        ctx.exchange.submit(time_ns, PlaceOrder(account_id, ctx.spec.instrument_id,
                                                ctx.exchange.next_client_order_id(account_id), side, limit, qty,
                                                time_in_force=TimeInForce.IOC))


def run_bars(ctx: ReplayContext, data_dir: Path) -> None:
    """Drive ``ctx`` through the bars in ``data_dir`` (see module docstring)."""
    s = ctx.scenario
    start_ns, end_ns = minute_ns(s.data.start), minute_ns(s.data.end)
    files = _files(data_dir, s.oracle.sources)
    quotes = {src.id: src.quote for src in s.oracle.sources}
    first = next((b for b in iter_bar_file(files[s.book.path_source], start_ns=start_ns, end_ns=end_ns)
                  if isinstance(b, Bar)), None)
    if first is None:
        raise ScenarioError(f"{s.name}: path source {s.book.path_source} has no bar in the window")
    path = _Path(ctx, first.close_e2)
    ctx.setup(start_ns, end_ns)
    latest: dict[str, SourcePrice] = {}
    minutes_total = (end_ns - start_ns) // MINUTE_NS
    center: int | None = None
    next_check_ns = start_ns
    counts = {"minutes": 0, "path_minutes": 0, "bars": 0}
    for open_ns, group in _minutes(files, start_ns, end_ns):
        now_ns = open_ns + MINUTE_NS
        counts["minutes"] += 1
        counts["bars"] += len(group)
        path_bar = group.get(s.book.path_source)
        if path_bar is not None:
            path.set_minute(path_bar.close_e2)
        for sid in sorted(group):
            source_bar = group[sid]
            if source_bar.volume_e8 > 0:
                latest[sid] = SourcePrice(sid, "BTC", quotes[sid], path.scaled(source_bar.close_e2), PRICE_EXPONENT,
                                          now_ns)
        ctx.run_traders(now_ns)
        book_first = s.book.index_after_book and ctx.marked and path_bar is not None
        if not book_first:
            ctx.index_tick(now_ns, [latest[sid] for sid in sorted(latest)])
        if ctx.marked and path_bar is not None:
            counts["path_minutes"] += 1
            new_center = path.to_ticks(path.scaled(path_bar.close_e2))
            _takers(ctx, path_bar, new_center, center, now_ns)
            if ctx.batch:  # the takers' batch clears against the ladder they found (module docstring)
                ctx.exchange.settle()
            center = new_center
            target = path.ladder(center)
            ctx.liquidity.reconcile(now_ns, target[0], target[1])
            if now_ns >= next_check_ns:  # the LPs' ladder as placed (before liquidations can take from it)
                ctx.check_book(now_ns, target)
                next_check_ns = now_ns + s.run.book_check_interval_s * NS_PER_S
            if book_first:  # the oracle of this minute arrives after the book moved (BookParams)
                ctx.index_tick(max(now_ns, ctx.exchange.now_ns), [latest[sid] for sid in sorted(latest)])
            ctx.measure_mark_vs_book()
        if counts["minutes"] % 60 == 0:
            ctx.report_progress(counts["minutes"], int(minutes_total))
    ctx.run_traders(end_ns)
    ctx.exchange.pass_boundaries(end_ns, inclusive=True)  # batch market: what is due by the end clears
    ctx.report_progress(int(minutes_total), int(minutes_total))
    ctx.extra["bars"] = {**counts, "p0_usd_cents": first.close_e2, "move_scale": path.scale,
                         "ladder_step_ticks": path.step_ticks}
