"""The fast limit order book: price levels as intrusive doubly linked lists, sorted level prices.

* ``levels``: dict price_ticks -> :class:`Level` (FIFO of orders, total quantity).
* ``prices``: a ``sortedcontainers.SortedList`` of the level prices on that side.

Add/cancel/reduce are O(1) within a level plus O(log L) when a level appears or disappears; matching
is O(fills + levels walked). Semantics are those of :mod:`bastion.core.book.base`, identical to the
reference book in :mod:`bastion.core.book.reference`.
"""

from __future__ import annotations

from sortedcontainers import SortedList  # type: ignore[import-untyped]

from bastion.core.book.base import STOP_NONE, MatchContext, Order
from bastion.core.commands import STP
from bastion.core.rejects import CancelReason

__all__ = ["FastBook", "Level"]

_EXPIRED = CancelReason.expired
_STP_MAKER = CancelReason.stp_expire_maker
_STP_BOTH = CancelReason.stp_expire_both
_STP_TAKER = CancelReason.stp_expire_taker
_STP_DEC = CancelReason.stp_decrement
_RO = CancelReason.reduce_only_resized


class Level:
    """One price level: FIFO of resting orders and their total remaining quantity."""

    __slots__ = ("price_ticks", "head", "tail", "total_lots", "count")

    def __init__(self, price_ticks: int) -> None:
        self.price_ticks = price_ticks
        self.head: Order | None = None
        self.tail: Order | None = None
        self.total_lots = 0
        self.count = 0


class _Side:
    """One side of the book. ``best_price`` caches the best level price (None when empty)."""

    __slots__ = ("levels", "prices", "is_bid", "best_price")

    def __init__(self, is_bid: bool) -> None:
        self.levels: dict[int, Level] = {}
        self.prices: SortedList = SortedList()
        self.is_bid = is_bid
        self.best_price: int | None = None

    def best(self) -> int | None:
        return self.best_price

    def add_level(self, price: int) -> Level:
        level = Level(price)
        self.levels[price] = level
        self.prices.add(price)
        best = self.best_price
        if best is None or (price > best if self.is_bid else price < best):
            self.best_price = price
        return level

    def remove_level(self, price: int) -> None:
        del self.levels[price]
        prices = self.prices
        prices.remove(price)
        if price == self.best_price:
            self.best_price = (prices[-1] if self.is_bid else prices[0]) if prices else None


class FastBook:
    """Price-time priority book for one instrument (see module docstring)."""

    __slots__ = ("instrument_id", "bids", "asks", "_priority", "_count")

    def __init__(self, instrument_id: int) -> None:
        self.instrument_id = instrument_id
        self.bids = _Side(True)
        self.asks = _Side(False)
        self._priority = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def best_bid(self) -> int | None:
        """Highest resting bid price in ticks, or None."""
        return self.bids.best_price

    def best_ask(self) -> int | None:
        """Lowest resting ask price in ticks, or None."""
        return self.asks.best_price

    def best_live_price(self, side: int, now_ns: int, skipped_max: int) -> int | None:
        """Best price on ``side`` (+1 bids, -1 asks) of an order that has not expired at ``now_ns``.

        GTD orders past their expiry may still rest (the engine sweeps at most
        ``expiries_per_command_max`` per command); they never trade, so they must not set the price a
        post-only check or a market order's protection price is taken from. At most ``skipped_max``
        expired orders are skipped, best first; past that the next order counts as live (the safe side:
        a post-only order is refused, a protection price is tighter). None: no live order on ``side``.
        """
        book_side = self.bids if side > 0 else self.asks
        skipped = 0
        for price in (reversed(book_side.prices) if side > 0 else iter(book_side.prices)):
            order = book_side.levels[price].head
            while order is not None:
                if not (order.expire_at_ns and order.expire_at_ns <= now_ns) or skipped == skipped_max:
                    return int(price)
                skipped += 1
                order = order.next
        return None

    def add(self, order: Order) -> None:
        """Rest ``order`` at the back of its price level. Precondition: it does not cross the book."""
        side = self.bids if order.side > 0 else self.asks
        price = order.price_ticks
        assert order.qty_lots > 0
        level = side.levels.get(price)
        if level is None:
            opp_best = (self.asks if order.side > 0 else self.bids).best_price
            assert opp_best is None or (price < opp_best if order.side > 0 else price > opp_best), "would cross"
            level = side.add_level(price)
        self._priority += 1
        order.priority = self._priority
        order.level = level
        order.next = None
        order.prev = level.tail
        if level.tail is None:
            level.head = order
        else:
            level.tail.next = order
        level.tail = order
        level.total_lots += order.qty_lots
        level.count += 1
        self._count += 1

    def remove(self, order: Order) -> None:
        """Unlink a resting order (its ``qty_lots`` is left as it was)."""
        level = order.level
        assert isinstance(level, Level), "order is not resting in this book"
        prev, nxt = order.prev, order.next
        if prev is None:
            level.head = nxt
        else:
            prev.next = nxt
        if nxt is None:
            level.tail = prev
        else:
            nxt.prev = prev
        level.total_lots -= order.qty_lots
        level.count -= 1
        self._count -= 1
        order.prev = order.next = None
        order.level = None
        if level.count == 0:
            (self.bids if order.side > 0 else self.asks).remove_level(level.price_ticks)

    def reduce(self, order: Order, new_qty_lots: int) -> None:
        """Shrink a resting order in place, keeping its priority (0 < new < current)."""
        assert 0 < new_qty_lots < order.qty_lots
        level = order.level
        assert isinstance(level, Level)
        level.total_lots -= order.qty_lots - new_qty_lots
        order.qty_lots = new_qty_lots

    def match(self, taker: Order, limit_price_ticks: int, now_ns: int, ctx: MatchContext) -> int:
        """Match ``taker`` against the opposite side (contract in :mod:`~bastion.core.book.base`).

        Returns:
            0 when the taker is filled or no longer crosses; otherwise the :class:`CancelReason` that
            stopped the walk (STP taker/both, levels_walked_max, fills_per_command_max).
        """
        buy = taker.side > 0
        opp = self.asks if buy else self.bids
        levels = opp.levels
        levels_walked = 0
        levels_max = ctx.levels_walked_max
        fills_max = ctx.fills_per_command_max
        while taker.qty_lots > 0 and opp.best_price is not None:
            price = opp.best_price
            if (price > limit_price_ticks) if buy else (price < limit_price_ticks):
                return STOP_NONE
            if levels_walked == levels_max:
                return CancelReason.levels_walked_max
            levels_walked += 1
            level = levels[price]
            maker = level.head
            while maker is not None and taker.qty_lots > 0:
                nxt = maker.next
                if maker.expire_at_ns and maker.expire_at_ns <= now_ns:
                    self.remove(maker)
                    ctx.on_maker_removed(maker, _EXPIRED)
                elif maker.account_id == taker.account_id:
                    mode = taker.stp
                    if mode == STP.EXPIRE_MAKER:
                        self.remove(maker)
                        ctx.on_maker_removed(maker, _STP_MAKER)
                    elif mode == STP.EXPIRE_TAKER:
                        return _STP_TAKER
                    elif mode == STP.EXPIRE_BOTH:
                        self.remove(maker)
                        ctx.on_maker_removed(maker, _STP_BOTH)
                        return _STP_BOTH
                    else:
                        dec = min(maker.qty_lots, taker.qty_lots)
                        taker.qty_lots -= dec
                        if dec == maker.qty_lots:
                            self.remove(maker)
                            maker.qty_lots = 0
                        else:
                            level.total_lots -= dec
                            maker.qty_lots -= dec
                        ctx.on_maker_reduced(maker, dec, _STP_DEC)
                else:
                    if maker.reduce_only:
                        cap = ctx.reduce_only_cap(maker)
                        if cap <= 0:
                            self.remove(maker)
                            ctx.on_maker_removed(maker, _RO)
                            maker = nxt
                            continue
                        if cap < maker.qty_lots:
                            by = maker.qty_lots - cap
                            self.reduce(maker, cap)
                            ctx.on_maker_reduced(maker, by, _RO)
                    if ctx.fills_made == fills_max:
                        return CancelReason.fills_per_command_max
                    qty = maker.qty_lots if maker.qty_lots < taker.qty_lots else taker.qty_lots
                    taker.qty_lots -= qty
                    if qty == maker.qty_lots:
                        self.remove(maker)
                        maker.qty_lots = 0
                    else:
                        maker.qty_lots -= qty
                        level.total_lots -= qty
                    ctx.on_trade(maker, taker, qty, price)
                maker = nxt
        return STOP_NONE

    def fillable_lots(self, taker: Order, limit_price_ticks: int, now_ns: int, ctx: MatchContext) -> int:
        """Lots :meth:`match` would fill for ``taker`` right now, without changing anything (for FOK).

        Self orders stop the count under EXPIRE_TAKER / EXPIRE_BOTH (the walk stops there), are skipped
        under EXPIRE_MAKER, and under DECREMENT consume the taker like a fill (both shrink by the overlap,
        without a trade and without using the fill budget), so they count toward the lots taken up.
        Reduce-only makers count up to their account's cap, consumed across that account's makers.
        """
        buy = taker.side > 0
        opp = self.asks if buy else self.bids
        wanted = taker.qty_lots
        got = fills = walked = 0
        consumed: dict[int, int] = {}
        it = iter(opp.prices) if buy else reversed(opp.prices)
        for price in it:
            if got >= wanted or ((price > limit_price_ticks) if buy else (price < limit_price_ticks)):
                break
            if walked == ctx.levels_walked_max:
                break
            walked += 1
            maker = opp.levels[price].head
            while maker is not None and got < wanted:
                if maker.expire_at_ns and maker.expire_at_ns <= now_ns:
                    pass
                elif maker.account_id == taker.account_id:
                    if taker.stp == STP.DECREMENT:
                        got += min(maker.qty_lots, wanted - got)
                    elif taker.stp != STP.EXPIRE_MAKER:
                        return got
                else:
                    avail = maker.qty_lots
                    acct = maker.account_id
                    if maker.reduce_only:
                        cap = ctx.reduce_only_cap(maker) - consumed.get(acct, 0)
                        avail = min(avail, max(cap, 0))
                    if avail > 0:
                        if ctx.fills_made + fills == ctx.fills_per_command_max:
                            return got
                        take = min(avail, wanted - got)
                        got += take
                        fills += 1
                        consumed[acct] = consumed.get(acct, 0) + take
                maker = maker.next
        return got

    def orders_in_priority(self) -> list[Order]:
        """All resting orders: bids best-first then asks best-first, each level in time priority."""
        out: list[Order] = []
        for side, prices in ((self.bids, reversed(self.bids.prices)), (self.asks, iter(self.asks.prices))):
            for price in prices:
                order = side.levels[price].head
                while order is not None:
                    out.append(order)
                    order = order.next
        return out

    def depth(self, levels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Top ``levels`` of (price_ticks, total_lots) per side, best first."""
        bids = [(p, self.bids.levels[p].total_lots) for p in list(reversed(self.bids.prices))[:levels]]
        asks = [(p, self.asks.levels[p].total_lots) for p in list(self.asks.prices[:levels])]
        return bids, asks
