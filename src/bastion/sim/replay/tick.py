"""Tick replay: a Binance capture (snapshot + U/u/pu-synced depth diffs + trades) through the venue.

Order-flow reconstruction, at capture receive time (engine time = capture time, ns):

* **Resting liquidity**: after every applied depth record of the perpetual, the LP accounts reconcile
  the engine book to the real book's top ``book.levels`` levels per side (``liquidity.py``); a check
  right after the reconcile (every ``run.book_check_interval_s``) compares the two and counts
  mismatches. While the real book is invalid (sequence gap) the LPs hold nothing.
* **Trades**: every real ``MARKET`` trade becomes an IOC limit order at the trade price, on the
  aggressor's side, of taker account ``takers[trade_id % n]``. It fills against the mirrored book at
  that price or better.
* **Fleeting liquidity** (``book.fleeting_liquidity``, default on): depth diffs come in batches
  (~50 ms apart on this capture), so a maker order placed and hit between two diffs never shows in the
  mirror, and a real trade can print inside the mirrored spread or for more than the mirrored level
  holds. Before such a trade, the level's LP adds exactly the missing quantity at the trade price, so the
  taker fills the real size at the real price and nothing is left behind (the IOC consumes every lot at
  that price or better). When the trade price would cross the mirror's opposite side (a stale mirror),
  nothing is injected and the unfilled rest is counted; nothing is injected while the real book is
  invalid either. Off, a trade fills only what the mirror holds (about 60 % of the volume on the full
  capture).
* **Mark**: every ``oracle.interval_s`` an index tick aggregates the sources' book mids
  (``capture.StreamReader.report``) and sets the mark. Nothing is mirrored, traded or opened by
  traders before the first mark.
* **Traders**: the seeded population trades against the mirrored book (``agents.py``).

In a batch market (``[matching] mode = "batch"``) the trades' IOCs wait in the batch book and clear at
each boundary at one price, against the mirror as it stands then (the LP orders are plain limit orders
in the batch book). Fleeting liquidity lives for one batch there: the level's LP sends an IOC on the
opposite side at the trade price for what the mirror's levels at or better than that price lack once
this batch's earlier taker orders on the same side are counted, so a later reconcile of the mirror does
not take it back before the boundary.

The run ends with the perpetual's stream (or after ``data.duration_s``).
"""

from __future__ import annotations

from pathlib import Path

from bastion.core.commands import PlaceOrder, TimeInForce
from bastion.core.events import Event, TradeExecuted
from bastion.feeds.binance import Grid, Side, Trade
from bastion.sim.replay.capture import CaptureFeed, StreamReader, capture_window_ns
from bastion.sim.replay.context import NS_PER_S, ReplayContext

__all__ = ["run_tick"]


class _TakerFlow:
    """Real trades as IOC orders; counts requested and filled lots."""

    def __init__(self, ctx: ReplayContext) -> None:
        self.ctx = ctx
        self.fleeting = ctx.scenario.book.fleeting_liquidity
        self.trades = 0
        self.skipped = 0
        self.requested_lots = 0
        self.filled_lots = 0
        self.injected_lots = 0
        self.injections_refused = 0
        self._batch = -1  # batch markets: the open batch's index and the taker lots sent into it per side
        self._pending = {1: 0, -1: 0}
        self._taker_set = set(ctx.taker_ids)
        if ctx.batch:  # fills come at the clearings, in later commands
            ctx.exchange.observe(self.on_filled)

    def on_trade(self, trade: Trade, mirrored: bool) -> None:
        """Send ``trade`` as an IOC; ``mirrored``: the real book is valid (fleeting top-ups allowed)."""
        ctx = self.ctx
        if trade.trade_kind != "MARKET" or not ctx.marked:
            self.skipped += 1
            return
        account_id = ctx.taker_ids[trade.trade_id % len(ctx.taker_ids)]
        side = 1 if trade.taker_side is Side.BUY else -1
        if ctx.batch:
            self._batch_pending(trade.recv_time_ns)
        if self.fleeting and mirrored:
            self._top_up(trade, side)
        command = PlaceOrder(account_id, ctx.spec.instrument_id, ctx.exchange.next_client_order_id(account_id), side,
                             trade.price_ticks, trade.qty_lots, time_in_force=TimeInForce.IOC)
        events = ctx.exchange.submit(trade.recv_time_ns, command)
        self.trades += 1
        self.requested_lots += trade.qty_lots
        if ctx.batch:
            self._pending[side] += trade.qty_lots
        else:
            self.filled_lots += sum(e.qty_lots for e in events if isinstance(e, TradeExecuted))

    def _batch_pending(self, time_ns: int) -> None:
        """Pass the boundaries before ``time_ns`` and start a fresh pending count in a new batch."""
        ctx = self.ctx
        ctx.exchange.pass_boundaries(time_ns)
        book = ctx.exchange.engine.integ[ctx.spec.instrument_id].batch_book
        assert book is not None
        index = book.batch_index(max(time_ns, ctx.exchange.now_ns))
        if index != self._batch:
            self._batch = index
            self._pending = {1: 0, -1: 0}

    def on_filled(self, events: list[Event]) -> None:
        """Batch markets: count the lots the takers' orders got at a clearing (each taker leg of a pair)."""
        takers = self._taker_set
        for event in events:
            if type(event) is TradeExecuted:
                assert isinstance(event, TradeExecuted)
                legs = (event.maker_account_id in takers) + (event.taker_account_id in takers)
                self.filled_lots += legs * event.qty_lots

    def _top_up(self, trade: Trade, side: int) -> None:
        """Inject the liquidity the mirror lacks for ``trade`` (module docstring, fleeting liquidity)."""
        ctx = self.ctx
        price = trade.price_ticks
        if ctx.batch:
            levels = sorted(ctx.liquidity.levels(-side).items())
            available = sum(q for p, q in levels if (p <= price if side > 0 else p >= price)) - self._pending[side]
        else:
            bids, asks = ctx.exchange.engine.books[ctx.spec.instrument_id].depth(ctx.scenario.book.levels + 1)
            levels = asks if side > 0 else bids
            available = sum(q for p, q in levels if (p <= price if side > 0 else p >= price))
        missing = trade.qty_lots - max(available, 0)
        if missing <= 0:
            return
        if ctx.batch:
            ok = ctx.liquidity.inject_ioc(trade.recv_time_ns, -side, price, missing)
        else:
            ok = ctx.liquidity.inject(trade.recv_time_ns, -side, price, missing)
        if ok:
            self.injected_lots += missing
        else:
            self.injections_refused += 1


def _mirror(ctx: ReplayContext, perp: StreamReader, time_ns: int, next_check_ns: int) -> int:
    """Reconcile the LP book to the real top N; check it when due. Returns the next check time."""
    levels = ctx.scenario.book.levels
    target = perp.book.depth(levels) if perp.book.is_valid else ([], [])
    ctx.liquidity.reconcile(time_ns, target[0], target[1])
    if time_ns >= next_check_ns and perp.book.is_valid:
        ctx.check_book(time_ns, target, perp.book.update_id)
        return time_ns + ctx.scenario.run.book_check_interval_s * NS_PER_S
    return next_check_ns


def run_tick(ctx: ReplayContext, data_dir: Path) -> None:
    """Drive ``ctx`` through the capture in ``data_dir`` (see module docstring)."""
    s = ctx.scenario
    perp_prefix = s.data.perp_stream
    start_ns, last_ns = capture_window_ns(data_dir, perp_prefix)
    end_ns = last_ns if s.data.duration_s == 0 else min(last_ns, start_ns + s.data.duration_s * NS_PER_S)
    prefixes = [perp_prefix] + [src.stream for src in s.oracle.sources]
    feed = CaptureFeed(data_dir, prefixes, Grid(ctx.spec.tick_size, ctx.spec.lot_size))
    ctx.setup(start_ns, end_ns)
    sources = [(src.id, src.quote, feed.readers[src.stream]) for src in s.oracle.sources]
    flow = _TakerFlow(ctx)
    total_s = max(1, (end_ns - start_ns) // NS_PER_S)
    next_tick_ns, next_check_ns = start_ns, start_ns
    book_records = 0
    for reader, record in feed:
        time_ns = record.recv_time_ns
        if time_ns > end_ns:
            break
        while next_tick_ns <= time_ns:  # bounded: one tick per interval of capture time
            ctx.run_traders(next_tick_ns)
            was_marked = ctx.marked
            ctx.index_tick(max(next_tick_ns, ctx.exchange.now_ns),
                           [r for r in (rd.report(sid, q) for sid, q, rd in sources) if r is not None])
            if ctx.marked and not was_marked:
                next_check_ns = _mirror(ctx, feed.perp, ctx.exchange.now_ns, next_check_ns)
            ctx.measure_mark_vs_book()
            ctx.report_progress(int((next_tick_ns - start_ns) // NS_PER_S), int(total_s))
            next_tick_ns += s.oracle.interval_s * NS_PER_S
        ctx.run_traders(time_ns)
        if reader.apply(record):  # a book record (snapshot, diff, gap, resync marker)
            if reader is feed.perp:
                book_records += 1
                if ctx.marked:
                    next_check_ns = _mirror(ctx, reader, time_ns, next_check_ns)
        elif reader is feed.perp and isinstance(record, Trade):
            flow.on_trade(record, reader.book.is_valid)
    ctx.run_traders(end_ns)
    ctx.index_tick(max(end_ns, ctx.exchange.now_ns),
                   [r for r in (rd.report(sid, q) for sid, q, rd in sources) if r is not None])
    ctx.report_progress(int(total_s), int(total_s))
    ctx.extra.update(_figures(feed, flow, book_records))


def _figures(feed: CaptureFeed, flow: _TakerFlow, book_records: int) -> dict[str, object]:
    return {
        "feed": {
            "records_rejected_off_grid": {p: r.rejected_off_grid for p, r in feed.readers.items()},
            "sync": {p: {"gaps": r.sequencer.stats.gaps, "resyncs": r.sequencer.stats.resyncs,
                         "deltas_applied": r.sequencer.stats.deltas_applied} for p, r in feed.readers.items()},
            "perp_book_records": book_records,
            "perp_book_valid_at_end": feed.perp.book.is_valid,
        },
        "taker_flow": {
            "real_trades_replayed": flow.trades,
            "real_trades_skipped": flow.skipped,
            "lots_requested": flow.requested_lots,
            "lots_filled": flow.filled_lots,
            "lots_injected_fleeting": flow.injected_lots,
            "injections_refused_crossing": flow.injections_refused,
            "fill_ratio_ppm": flow.filled_lots * 1_000_000 // flow.requested_lots if flow.requested_lots else 0,
        },
    }
