"""The reference book: slow-by-design and obviously correct, for differential tests and the verifier.

Each side is one plain Python list of resting orders kept in *matching order* — best price first, then
earliest arrival — so the order a taker meets next is always ``list[0]``. Beside it, a second list holds
each order's sort key ``(price rank, priority)`` at the same index, where the price rank is ``-price``
for bids and ``+price`` for asks (``-side * price``) and ``priority`` is the book's arrival counter
(strictly increasing, so keys are unique). Inserting and removing find the index by :mod:`bisect` on
the key list and edit both lists at that index. No levels, no links, no cached best price: every query
reads the lists directly. Same contract and the same callbacks, in the same order, as
:class:`~bastion.core.book.fast.FastBook` (checked by ``tests/differential``).

Complexity: add/remove O(log n) search + O(n) ``memmove`` inside CPython's lists, best price O(1),
each match step O(1) + the remove. An earlier version re-sorted every resting order on every query
(O(n log n) per step); keeping the lists sorted gives the same answers about 20x faster, which the
verifier (``bastion verify``, re-execution on this book) needs.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from bastion.core.book.base import STOP_NONE, MatchContext, Order
from bastion.core.commands import STP
from bastion.core.integrity.auction_reference import clear_auction_naive
from bastion.core.rejects import CancelReason
from bastion.core.triggers import ReferenceTriggerBook

__all__ = ["ReferenceBook"]


def _matching_key(order: Order) -> tuple[int, int]:
    """Sort key of a resting order within its side: better price first, then earlier arrival."""
    return (-order.side * order.price_ticks, order.priority)


class ReferenceBook:
    """Price-time priority book for one instrument: two sorted lists (see module docstring)."""

    auction_clearing = staticmethod(clear_auction_naive)
    """The clearing rule an engine built on this book uses for uncrosses and batch clearings: the
    brute-force twin of ``auction.clear_auction`` (the FastBook has none; the engine then uses the fast one)."""
    trigger_book_factory = ReferenceTriggerBook
    """An engine built on this book holds its untriggered orders in the naive reference trigger book."""

    def __init__(self, instrument_id: int) -> None:
        self.instrument_id = instrument_id
        self.bids: list[Order] = []  # highest price first, then earliest
        self.asks: list[Order] = []  # lowest price first, then earliest
        self._bid_keys: list[tuple[int, int]] = []  # _matching_key(bids[i]) == _bid_keys[i]
        self._ask_keys: list[tuple[int, int]] = []
        self._priority = 0

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)

    def _queue(self, side: int) -> list[Order]:
        return self.bids if side > 0 else self.asks

    def _keys(self, side: int) -> list[tuple[int, int]]:
        return self._bid_keys if side > 0 else self._ask_keys

    def best_bid(self) -> int | None:
        return self.bids[0].price_ticks if self.bids else None

    def best_ask(self) -> int | None:
        return self.asks[0].price_ticks if self.asks else None

    def best_live_price(self, side: int, now_ns: int, skipped_max: int) -> int | None:
        """Best price on ``side`` of an order not expired at ``now_ns``, skipping at most ``skipped_max``
        expired ones (then the next order counts as live); see ``FastBook.best_live_price``."""
        for skipped, order in enumerate(self._queue(side)):
            if order.expire_at_ns == 0 or order.expire_at_ns > now_ns or skipped == skipped_max:
                return order.price_ticks
        return None

    def add(self, order: Order) -> None:
        assert order.qty_lots > 0
        if order.side > 0:
            ask = self.best_ask()
            assert ask is None or order.price_ticks < ask, "would cross"
        else:
            bid = self.best_bid()
            assert bid is None or order.price_ticks > bid, "would cross"
        self._priority += 1
        order.priority = self._priority
        key, keys = _matching_key(order), self._keys(order.side)
        index = bisect_right(keys, key)
        keys.insert(index, key)
        self._queue(order.side).insert(index, order)

    def remove(self, order: Order) -> None:
        queue, keys = self._queue(order.side), self._keys(order.side)
        index = bisect_left(keys, _matching_key(order))
        assert index < len(queue) and queue[index] is order, "order is not resting in this book"
        del queue[index]
        del keys[index]

    def reduce(self, order: Order, new_qty_lots: int) -> None:
        assert 0 < new_qty_lots < order.qty_lots
        order.qty_lots = new_qty_lots

    def _sorted_opposite(self, taker: Order) -> list[Order]:
        """Opposite-side orders in matching order: best price first, then earliest arrival.

        Returns the side's live list (not a copy): callers re-read it after every removal.
        """
        return self._queue(-taker.side)

    @staticmethod
    def _crosses(taker: Order, price: int, limit: int) -> bool:
        return price <= limit if taker.side > 0 else price >= limit

    def match(self, taker: Order, limit_price_ticks: int, now_ns: int, ctx: MatchContext) -> int:
        walked_prices: list[int] = []
        while taker.qty_lots > 0:
            queue = self._sorted_opposite(taker)
            if not queue:
                return STOP_NONE
            maker = queue[0]
            if not self._crosses(taker, maker.price_ticks, limit_price_ticks):
                return STOP_NONE
            if not walked_prices or walked_prices[-1] != maker.price_ticks:
                if len(walked_prices) == ctx.levels_walked_max:
                    return CancelReason.levels_walked_max
                walked_prices.append(maker.price_ticks)
            if maker.expire_at_ns != 0 and maker.expire_at_ns <= now_ns:
                self.remove(maker)
                ctx.on_maker_removed(maker, CancelReason.expired)
                continue
            if maker.account_id == taker.account_id:
                if taker.stp == STP.EXPIRE_MAKER:
                    self.remove(maker)
                    ctx.on_maker_removed(maker, CancelReason.stp_expire_maker)
                elif taker.stp == STP.EXPIRE_TAKER:
                    return CancelReason.stp_expire_taker
                elif taker.stp == STP.EXPIRE_BOTH:
                    self.remove(maker)
                    ctx.on_maker_removed(maker, CancelReason.stp_expire_both)
                    return CancelReason.stp_expire_both
                else:
                    dec = min(maker.qty_lots, taker.qty_lots)
                    taker.qty_lots -= dec
                    maker.qty_lots -= dec
                    if maker.qty_lots == 0:
                        self.remove(maker)
                    ctx.on_maker_reduced(maker, dec, CancelReason.stp_decrement)
                continue
            if maker.reduce_only:
                cap = ctx.reduce_only_cap(maker)
                if cap <= 0:
                    self.remove(maker)
                    ctx.on_maker_removed(maker, CancelReason.reduce_only_resized)
                    continue
                if cap < maker.qty_lots:
                    by = maker.qty_lots - cap
                    maker.qty_lots = cap
                    ctx.on_maker_reduced(maker, by, CancelReason.reduce_only_resized)
            if ctx.fills_made == ctx.fills_per_command_max:
                return CancelReason.fills_per_command_max
            qty = min(maker.qty_lots, taker.qty_lots)
            taker.qty_lots -= qty
            maker.qty_lots -= qty
            if maker.qty_lots == 0:
                self.remove(maker)
            ctx.on_trade(maker, taker, qty, maker.price_ticks)
        return STOP_NONE

    def fillable_lots(self, taker: Order, limit_price_ticks: int, now_ns: int, ctx: MatchContext) -> int:
        got = fills = 0
        prices_seen: list[int] = []
        consumed: dict[int, int] = {}
        for maker in self._sorted_opposite(taker):
            if got >= taker.qty_lots or not self._crosses(taker, maker.price_ticks, limit_price_ticks):
                break
            if maker.price_ticks not in prices_seen:
                if len(prices_seen) == ctx.levels_walked_max:
                    break
                prices_seen.append(maker.price_ticks)
            if maker.expire_at_ns != 0 and maker.expire_at_ns <= now_ns:
                continue
            if maker.account_id == taker.account_id:
                if taker.stp == STP.DECREMENT:  # both shrink by the overlap: the taker is used up, no trade
                    got += min(maker.qty_lots, taker.qty_lots - got)
                elif taker.stp != STP.EXPIRE_MAKER:
                    return got
                continue
            avail = maker.qty_lots
            if maker.reduce_only:
                avail = min(avail, max(ctx.reduce_only_cap(maker) - consumed.get(maker.account_id, 0), 0))
            if avail > 0:
                if ctx.fills_made + fills == ctx.fills_per_command_max:
                    return got
                take = min(avail, taker.qty_lots - got)
                got += take
                fills += 1
                consumed[maker.account_id] = consumed.get(maker.account_id, 0) + take
        return got

    def orders_in_priority(self) -> list[Order]:
        return self.bids + self.asks

    def depth(self, levels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        def agg(orders: list[Order]) -> list[tuple[int, int]]:
            out: list[tuple[int, int]] = []
            for o in orders:
                if out and out[-1][0] == o.price_ticks:
                    out[-1] = (o.price_ticks, out[-1][1] + o.qty_lots)
                else:
                    out.append((o.price_ticks, o.qty_lots))
            return out[:levels]

        return agg(self.bids), agg(self.asks)
