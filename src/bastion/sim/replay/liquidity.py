"""Liquidity-provider accounts that hold a target book: one order per price level.

:class:`LiquidityBook` keeps the engine's resting liquidity of one instrument equal to a target
``(bids, asks)`` list of ``(price_ticks, qty_lots)`` levels, best first — the real book's top N in a
tick replay, a synthetic ladder around the bar path in a bars replay. Each level is one post-only GTC
order of one LP account (new levels go to ``lp_accounts[price_ticks % len(lp_accounts)]``); fills by
takers shrink or remove them and the next :meth:`LiquidityBook.reconcile` restores the target.

Reconciliation, in an order that can never cross the book:

1. every resting level that is not in the target either moves (``AmendOrder`` to a new target price on
   the same side, one command instead of a cancel and a place) when the new price does not cross the
   engine's current opposite best, or is canceled;
2. levels present in both get their size amended (down keeps priority, up re-enters);
3. the remaining new levels are placed.

After step 1 every resting level is a target level, and a target (a real, uncrossed book, or the
ladder) is uncrossed, so neither step 2 nor 3 can cross; post-only on every LP order turns a bug into
a counted rejection instead of an LP-to-LP trade.

**Batch markets** (``batch=True``): a batch auction has no maker, so the engine refuses post-only there
(503); the LP orders are plain GTC limit orders that wait in the batch book and trade at the clearing
price of each boundary. The FastBook is empty in batch mode, so every "would it cross" test above is
made against this book's own orders (:meth:`LiquidityBook.best`) instead; the view itself is kept from
the events as in continuous mode (a batch fill lists the sell order as maker and the buy as taker).
A reconcile is all one command time, so no boundary falls inside it (``exchange.py``).
"""

from __future__ import annotations

from collections import Counter

from bastion.core.commands import AmendOrder, CancelOrder, PlaceOrder, TimeInForce
from bastion.core.events import (
    CommandRejected,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderReduced,
    TradeExecuted,
)
from bastion.sim.replay.exchange import Exchange

__all__ = ["LiquidityBook", "Level"]

Level = tuple[int, int]
"""``(price_ticks, qty_lots)``."""


class _LpOrder:
    __slots__ = ("account_id", "order_id", "side", "price_ticks", "qty_lots")

    def __init__(self, account_id: int, order_id: int, side: int, price_ticks: int, qty_lots: int) -> None:
        self.account_id = account_id
        self.order_id = order_id
        self.side = side
        self.price_ticks = price_ticks
        self.qty_lots = qty_lots


class LiquidityBook:
    """The LP side of one instrument (see module docstring).

    Args:
        exchange: the replay's exchange (its events keep this book's view of the LP orders current).
        instrument_id: the instrument.
        lp_accounts: LP account ids (created and funded by the caller), at least one.
        levels_max: most levels per side a target may have.
    """

    def __init__(self, exchange: Exchange, instrument_id: int, lp_accounts: list[int], levels_max: int,
                 batch: bool = False) -> None:
        assert lp_accounts and levels_max >= 1
        self.batch = batch
        self.exchange = exchange
        self.instrument_id = instrument_id
        self.lp_accounts = lp_accounts
        self.levels_max = levels_max
        self._sides: dict[int, dict[int, _LpOrder]] = {1: {}, -1: {}}
        self._by_id: dict[int, _LpOrder] = {}
        self.commands: Counter[str] = Counter()
        self.rejected = 0
        self.reconciles = 0
        exchange.observe(self._on_events)

    # ------------------------------------------------------------------ event tracking

    def _on_events(self, events: list[Event]) -> None:
        by_id = self._by_id
        for event in events:
            kind = type(event)
            if kind is TradeExecuted:
                assert isinstance(event, TradeExecuted)
                # Continuous fills: LP orders are post-only makers. Call-auction fills (taker_side 0, after a
                # velocity pause or a LULD halt) list the buy order as "taker": an LP bid can be either.
                for order_id in (event.maker_order_id, event.taker_order_id):
                    order = by_id.get(order_id)
                    if order is not None:
                        order.qty_lots -= event.qty_lots
                        if order.qty_lots == 0:
                            self._forget(order)
            elif kind is OrderCanceled:
                assert isinstance(event, OrderCanceled)
                order = by_id.get(event.order_id)
                if order is not None:
                    self._forget(order)
            elif kind is OrderReduced:
                assert isinstance(event, OrderReduced)
                order = by_id.get(event.order_id)
                if order is not None:
                    order.qty_lots = event.qty_lots
                    if order.qty_lots == 0:
                        self._forget(order)
            elif kind is OrderAmended:
                assert isinstance(event, OrderAmended)
                order = by_id.get(event.order_id)
                if order is not None:
                    self._rekey(order, event.price_ticks, event.qty_lots)

    def _forget(self, order: _LpOrder) -> None:
        del self._by_id[order.order_id]
        del self._sides[order.side][order.price_ticks]

    def _rekey(self, order: _LpOrder, price_ticks: int, qty_lots: int) -> None:
        side = self._sides[order.side]
        if price_ticks != order.price_ticks:
            del side[order.price_ticks]
            assert price_ticks not in side, "two LP orders on one level"
            side[price_ticks] = order
            order.price_ticks = price_ticks
        order.qty_lots = qty_lots

    # ------------------------------------------------------------------ reconciliation

    def levels(self, side: int) -> dict[int, int]:
        """This book's view of its resting levels on ``side``: price_ticks -> qty_lots."""
        return {price: order.qty_lots for price, order in self._sides[side].items()}

    def best(self, side: int) -> int | None:
        """Best price of this book's own orders on ``side`` (highest bid / lowest ask), None when empty."""
        prices = self._sides[side]
        if not prices:
            return None
        return max(prices) if side > 0 else min(prices)

    def _opposite_best(self, side: int) -> int | None:
        """The best price an order on ``side`` would cross: the engine book's in continuous mode, this
        book's own in a batch market (module docstring)."""
        if self.batch:
            return self.best(-side)
        book = self.exchange.engine.books[self.instrument_id]
        best: int | None = book.best_ask() if side > 0 else book.best_bid()
        return best

    def reconcile(self, time_ns: int, bids: list[Level], asks: list[Level]) -> None:
        """Make the resting LP liquidity equal to ``bids`` / ``asks`` (best first, uncrossed)."""
        assert len(bids) <= self.levels_max and len(asks) <= self.levels_max
        assert not bids or not asks or bids[0][0] < asks[0][0], "target book is crossed"
        self.reconciles += 1
        targets = {1: dict(bids), -1: dict(asks)}
        fresh = {side: sorted(p for p in targets[side] if p not in self._sides[side]) for side in (1, -1)}
        for side in (1, -1):
            self._remove_or_move(time_ns, side, targets[side], fresh[side])
        for side in (1, -1):
            for price, order in list(self._sides[side].items()):
                want = targets[side][price]
                if order.qty_lots != want:
                    self._submit(time_ns, "amend", AmendOrder(order.account_id, order.order_id, price, want))
        for side in (1, -1):
            for price in fresh[side]:
                if price not in self._sides[side]:
                    self._place(time_ns, side, price, targets[side][price])

    def _remove_or_move(self, time_ns: int, side: int, target: dict[int, int], fresh: list[int]) -> None:
        """Step 1 of the module docstring for one side; consumes moved-to prices from ``fresh``."""
        stale = sorted(p for p in self._sides[side] if p not in target)
        for price in stale:  # bounded by levels_max
            order = self._sides[side][price]
            if fresh:
                new_price = fresh[-1] if side > 0 else fresh[0]  # the level nearest the touch first
                opposite = self._opposite_best(side)
                crosses = opposite is not None and (new_price >= opposite if side > 0 else new_price <= opposite)
                if not crosses:
                    events = self._submit(time_ns, "move", AmendOrder(order.account_id, order.order_id,
                                                                      new_price, target[new_price]))
                    if not _rejected(events):
                        fresh.remove(new_price)
                        continue
            self._submit(time_ns, "cancel", CancelOrder(order.account_id, order.order_id))

    def inject(self, time_ns: int, side: int, price_ticks: int, qty_lots: int) -> bool:
        """Add ``qty_lots`` of resting liquidity on ``side`` at ``price_ticks`` (a fleeting order, see
        ``tick.py``): grow the LP order of that level or place one. Refused (False) when the price would
        cross the engine's opposite best, which only a stale mirror can cause."""
        assert qty_lots > 0
        opposite = self._opposite_best(side)
        if opposite is not None and (price_ticks <= opposite if side < 0 else price_ticks >= opposite):
            return False
        order = self._sides[side].get(price_ticks)
        if order is None:
            self._place(time_ns, side, price_ticks, qty_lots, what="inject")
            return price_ticks in self._sides[side]
        events = self._submit(time_ns, "inject", AmendOrder(order.account_id, order.order_id, price_ticks,
                                                            order.qty_lots + qty_lots))
        return not _rejected(events)

    def inject_ioc(self, time_ns: int, side: int, price_ticks: int, qty_lots: int) -> bool:
        """Batch markets: fleeting liquidity for one batch, an IOC of the level's LP on ``side`` at
        ``price_ticks`` that is not one of this book's levels (so no reconcile moves it; it is gone after
        the next clearing). Refused (False) when it would cross this book's own opposite best."""
        assert qty_lots > 0 and self.batch
        opposite = self._opposite_best(side)
        if opposite is not None and (price_ticks <= opposite if side < 0 else price_ticks >= opposite):
            return False
        account_id = self.lp_accounts[price_ticks % len(self.lp_accounts)]
        events = self._submit(time_ns, "inject", PlaceOrder(account_id, self.instrument_id,
                                                            self.exchange.next_client_order_id(account_id), side,
                                                            price_ticks, qty_lots, time_in_force=TimeInForce.IOC))
        return not _rejected(events)

    def _place(self, time_ns: int, side: int, price_ticks: int, qty_lots: int, what: str = "place") -> None:
        account_id = self.lp_accounts[price_ticks % len(self.lp_accounts)]
        client_id = self.exchange.next_client_order_id(account_id)
        events = self._submit(time_ns, what, PlaceOrder(account_id, self.instrument_id, client_id, side,
                                                        price_ticks, qty_lots, post_only=not self.batch))
        for i, event in enumerate(events):
            # Only this placement's acceptance: the same command may also carry the engine's own orders
            # (a liquidation IOC for some trader, sent after the command's fills).
            if type(event) is OrderAccepted and event.account_id == account_id and event.client_order_id == client_id:
                assert isinstance(event, OrderAccepted)
                order = _LpOrder(account_id, event.order_id, side, price_ticks, qty_lots)
                assert price_ticks not in self._sides[side]
                self._sides[side][price_ticks] = order
                self._by_id[event.order_id] = order
                # The observer saw this command's events before the order was known here: a liquidation IOC
                # later in the same command may already have filled (or a band sweep canceled) it.
                self._on_events([e for e in events[i + 1:] if event.order_id in _order_ids(e)])
                break

    def _submit(self, time_ns: int, what: str, command: PlaceOrder | AmendOrder | CancelOrder) -> list[Event]:
        self.commands[what] += 1
        events = self.exchange.submit(time_ns, command)
        if _rejected(events):
            self.rejected += 1
        return events


def _order_ids(event: Event) -> tuple[int, ...]:
    """The order ids an order event names (both for a fill)."""
    if type(event) is TradeExecuted:
        assert isinstance(event, TradeExecuted)
        return (event.maker_order_id, event.taker_order_id)
    order_id = getattr(event, "order_id", None)
    return () if order_id is None else (order_id,)


def _rejected(events: list[Event]) -> bool:
    return any(type(event) is CommandRejected for event in events)
