"""The reference book: slow and obviously correct, for differential tests and the verifier.

Resting orders live in one plain list. Every step of matching re-selects the best maker by sorting the
crossing orders on (price, arrival priority) — no levels, no links, no caches. Same contract and the same
callbacks, in the same order, as :class:`~bastion.core.book.fast.FastBook`.
"""

from __future__ import annotations

from bastion.core.book.base import STOP_NONE, MatchContext, Order
from bastion.core.commands import STP
from bastion.core.rejects import CancelReason

__all__ = ["ReferenceBook"]


class ReferenceBook:
    """Naive price-time priority book for one instrument."""

    def __init__(self, instrument_id: int) -> None:
        self.instrument_id = instrument_id
        self.resting: list[Order] = []
        self._priority = 0

    def __len__(self) -> int:
        return len(self.resting)

    def _side(self, side: int) -> list[Order]:
        return [o for o in self.resting if o.side == side]

    def best_bid(self) -> int | None:
        bids = self._side(1)
        return max(o.price_ticks for o in bids) if bids else None

    def best_ask(self) -> int | None:
        asks = self._side(-1)
        return min(o.price_ticks for o in asks) if asks else None

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
        self.resting.append(order)

    def remove(self, order: Order) -> None:
        self.resting = [o for o in self.resting if o is not order]

    def reduce(self, order: Order, new_qty_lots: int) -> None:
        assert 0 < new_qty_lots < order.qty_lots
        order.qty_lots = new_qty_lots

    def _sorted_opposite(self, taker: Order) -> list[Order]:
        """Opposite-side orders in matching order: best price first, then earliest arrival."""
        opp = self._side(-taker.side)
        if taker.side > 0:
            return sorted(opp, key=lambda o: (o.price_ticks, o.priority))
        return sorted(opp, key=lambda o: (-o.price_ticks, o.priority))

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
                if taker.stp != STP.EXPIRE_MAKER:
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
        bids = sorted(self._side(1), key=lambda o: (-o.price_ticks, o.priority))
        asks = sorted(self._side(-1), key=lambda o: (o.price_ticks, o.priority))
        return bids + asks

    def depth(self, levels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        def agg(orders: list[Order]) -> list[tuple[int, int]]:
            out: list[tuple[int, int]] = []
            for o in orders:
                if out and out[-1][0] == o.price_ticks:
                    out[-1] = (o.price_ticks, out[-1][1] + o.qty_lots)
                else:
                    out.append((o.price_ticks, o.qty_lots))
            return out[:levels]

        bids = sorted(self._side(1), key=lambda o: (-o.price_ticks, o.priority))
        asks = sorted(self._side(-1), key=lambda o: (o.price_ticks, o.priority))
        return agg(bids), agg(asks)
