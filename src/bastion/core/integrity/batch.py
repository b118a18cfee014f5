"""Frequent batch auctions: orders accumulate during an interval ``tau`` of engine time and clear at
every boundary with the uniform-price rule of :mod:`auction`.

Budish–Cramton–Shim (QJE 2015; shared/reference/matching-engines.md §3.8): "uniform-price sealed-bid
double auctions conducted at frequent but discrete time intervals". A speed edge ``delta`` matters only
when a boundary falls inside it, so it is worth about ``delta / tau`` of its continuous-market value.

Timing (exact): batch ``k`` is ``[origin + k*tau, origin + (k+1)*tau)``. An order submitted at engine
time ``t`` belongs to batch ``floor((t - origin) / tau)``; the batch clears at the boundary
``origin + (k+1)*tau``, i.e. during the first command whose engine time is ``>= boundary``, *before*
that command is applied (a command stamped exactly on a boundary goes to the next batch). The engine
therefore calls :meth:`BatchBook.run_due` at the start of every command, before submitting or canceling.

Orders rest across batches (BCS): a GTC remainder keeps its priority; IOC and market remainders are
canceled right after the batch they entered. After a clearing, the resting limit orders never cross
inside the collar (volume maximization: a remaining crossing pair would raise ``V`` at one of their
prices), so a boundary with no new order since the last clearing needs no clearing: :meth:`run_due`
is O(1) for idle boundaries and clears at most once per call, however many boundaries passed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bastion.core.integrity.auction import (
    AUCTION_ORDERS_MAX,
    Allocation,
    AuctionOrder,
    AuctionResult,
    AuctionTrade,
    clear_auction,
    pair_fills,
)
from bastion.core.integrity.codes import IntegrityRejectCode

__all__ = ["CALL_AUCTION_SPEC", "BatchBook", "BatchClearing", "BatchOrder", "BatchSpec", "ClearFn", "OrdersAt",
           "clear_fast"]

ClearFn = Callable[[Sequence[AuctionOrder], int, Allocation, int | None, int | None], AuctionResult]
"""A clearing rule ``(orders, reference_ticks, allocation, price_min_ticks, price_max_ticks) -> AuctionResult``:
:func:`clear_fast` (the engine) or ``auction_reference.clear_auction_naive`` (the reference engine)."""

OrdersAt = Callable[[int], Sequence[AuctionOrder]]
"""``at_ns -> auction input``: lets the engine feed a clearing its own view of the book's orders (expired
GTD orders left out, reduce-only orders capped), in the book's priority order, each ``qty <= `` the book's."""


def clear_fast(orders: Sequence[AuctionOrder], reference_ticks: int, allocation: Allocation,
               price_min_ticks: int | None, price_max_ticks: int | None) -> AuctionResult:
    """:func:`auction.clear_auction` as a :data:`ClearFn` (``orders_max`` = the input size)."""
    return clear_auction(orders, reference_ticks, allocation, price_min_ticks, price_max_ticks, max(len(orders), 1))


@dataclass(frozen=True, slots=True)
class BatchSpec:
    """Batch-auction parameters of one instrument.

    Attributes:
        interval_ns: ``tau`` (> 0).
        origin_ns: engine time of the first boundary grid point (>= 0).
        orders_max: orders the book may hold (resting + new), <= AUCTION_ORDERS_MAX.
        allocation: rationing at the margin.
    """

    interval_ns: int
    origin_ns: int = 0
    orders_max: int = 10_000
    allocation: Allocation = Allocation.TIME

    def __post_init__(self) -> None:
        assert self.interval_ns > 0 and self.origin_ns >= 0
        assert 0 < self.orders_max <= AUCTION_ORDERS_MAX


@dataclass(slots=True)
class BatchOrder:
    """A live order in the batch book (mutable: ``qty_lots`` shrinks as it fills)."""

    order_id: int
    side: int
    price_ticks: int
    qty_lots: int
    priority: int
    is_market: bool = False
    ioc: bool = False

    def canonical(self) -> list[int]:
        return [self.order_id, self.side, self.price_ticks, self.qty_lots, self.priority, int(self.is_market),
                int(self.ioc)]


@dataclass(frozen=True, slots=True)
class BatchClearing:
    """One boundary's result: the auction, the trades, and the IOC/market remainders canceled."""

    batch_index: int
    boundary_ns: int
    result: AuctionResult
    trades: tuple[AuctionTrade, ...]
    canceled: tuple[tuple[int, int], ...]  # (order_id, qty_lots) remainders removed after the batch
    filled: tuple[int, ...] = field(default=())  # order_ids that filled completely


CALL_AUCTION_SPEC = BatchSpec(interval_ns=2**62)
"""Spec of the order book of a call auction (states.AUCTION): no boundary ever passes (2**62 ns is 146
years); the engine uncrosses it with :meth:`BatchBook.clear_now`."""


class BatchBook:
    """The order book of one instrument in batch mode (see module docstring)."""

    __slots__ = ("spec", "orders", "open_index", "dirty", "next_priority")

    def __init__(self, spec: BatchSpec, now_ns: int = 0) -> None:
        self.spec = spec
        self.orders: dict[int, BatchOrder] = {}  # insertion order = priority order
        self.open_index = self.batch_index(max(now_ns, spec.origin_ns))
        self.dirty = False
        self.next_priority = 1

    def batch_index(self, now_ns: int) -> int:
        """Index of the batch that an order arriving at ``now_ns`` joins."""
        assert now_ns >= self.spec.origin_ns
        return (now_ns - self.spec.origin_ns) // self.spec.interval_ns

    def boundary_ns(self, index: int) -> int:
        """Engine time at which batch ``index`` clears."""
        return self.spec.origin_ns + (index + 1) * self.spec.interval_ns

    def submit(self, order_id: int, side: int, price_ticks: int, qty_lots: int, now_ns: int, *,
               is_market: bool = False, ioc: bool = False) -> IntegrityRejectCode | None:
        """Add an order to the open batch (the caller already ran :meth:`run_due` for ``now_ns``).

        Returns None when accepted, ``auction_orders_max_reached`` when the book is full.
        """
        assert self.batch_index(now_ns) == self.open_index, "run_due(now_ns) must run before submit"
        assert order_id not in self.orders and side in (1, -1) and qty_lots > 0
        assert (price_ticks == 0) if is_market else price_ticks > 0
        if len(self.orders) >= self.spec.orders_max:
            return IntegrityRejectCode.auction_orders_max_reached
        self.orders[order_id] = BatchOrder(order_id, side, price_ticks, qty_lots, self.next_priority,
                                           is_market, ioc or is_market)
        self.next_priority += 1
        self.dirty = True
        return None

    def cancel(self, order_id: int) -> int | IntegrityRejectCode:
        """Remove a live order; return its remaining lots, or ``auction_order_unknown``."""
        order = self.orders.pop(order_id, None)
        if order is None:
            return IntegrityRejectCode.auction_order_unknown
        return order.qty_lots

    def reduce(self, order_id: int, new_qty_lots: int) -> IntegrityRejectCode | None:
        """Shrink a live order in place, keeping its priority (``0 < new < current``), as AmendOrder does."""
        order = self.orders.get(order_id)
        if order is None:
            return IntegrityRejectCode.auction_order_unknown
        assert 0 < new_qty_lots < order.qty_lots
        order.qty_lots = new_qty_lots
        return None

    def auction_orders(self) -> list[AuctionOrder]:
        """The live orders as auction input, in priority order."""
        return [AuctionOrder(o.order_id, o.side, o.price_ticks, o.qty_lots, o.priority, o.is_market)
                for o in self.orders.values()]

    def run_due(self, now_ns: int, reference_ticks: int, price_min_ticks: int | None = None,
                price_max_ticks: int | None = None, *, orders: OrdersAt | None = None,
                clear: ClearFn | None = None) -> BatchClearing | None:
        """Clear the open batch if its boundary is ``<= now_ns``; advance to the batch of ``now_ns``.

        Args:
            now_ns: engine time of the command being applied (non-decreasing).
            reference_ticks: tie-break reference (last clearing price or mark).
            price_min_ticks, price_max_ticks: optional collar (the price band).
            orders: the auction input at the boundary (default: every live order, whole).
            clear: the clearing rule (default :func:`clear_fast`).

        Returns:
            The clearing of the batch that closed, or None when no boundary passed or nothing changed
            since the previous clearing.
        """
        index = self.batch_index(now_ns)
        assert index >= self.open_index, "engine time went backwards"
        if index == self.open_index:
            return None
        closed = self.open_index
        self.open_index = index
        if not self.dirty:
            return None
        return self._clear(closed, self.boundary_ns(closed), reference_ticks, price_min_ticks, price_max_ticks,
                           orders, clear)

    def due(self, now_ns: int) -> bool:
        """True when :meth:`run_due` at ``now_ns`` would pass a boundary (O(1))."""
        return self.batch_index(now_ns) > self.open_index

    def advance(self, now_ns: int) -> None:
        """Move to the batch of ``now_ns`` *without* clearing (market not ACTIVE, or kill switch engaged).

        Pending orders stay (``dirty`` is kept), so they clear at the first boundary after trading resumes,
        or in :meth:`clear_now`.
        """
        index = self.batch_index(now_ns)
        assert index >= self.open_index, "engine time went backwards"
        self.open_index = index

    def clear_now(self, now_ns: int, reference_ticks: int, price_min_ticks: int | None = None,
                  price_max_ticks: int | None = None, *, orders: OrdersAt | None = None,
                  clear: ClearFn | None = None) -> BatchClearing:
        """Clear immediately, off the boundary grid: the call-auction uncross and the sealed-round close.

        ``batch_index`` of the result is the open batch; ``boundary_ns`` is ``now_ns``.
        """
        self.advance(now_ns)
        return self._clear(self.open_index, now_ns, reference_ticks, price_min_ticks, price_max_ticks, orders, clear)

    def _clear(self, index: int, at_ns: int, reference_ticks: int, price_min_ticks: int | None,
               price_max_ticks: int | None, orders: OrdersAt | None, clear: ClearFn | None) -> BatchClearing:
        self.dirty = False
        book_orders = self.auction_orders() if orders is None else orders(at_ns)
        assert len(book_orders) <= self.spec.orders_max
        result = (clear or clear_fast)(book_orders, reference_ticks, self.spec.allocation, price_min_ticks,
                                       price_max_ticks)
        filled: list[int] = []
        for fill in result.fills:
            order = self.orders[fill.order_id]
            order.qty_lots -= fill.qty_lots
            assert order.qty_lots >= 0
            if order.qty_lots == 0:
                del self.orders[fill.order_id]
                filled.append(fill.order_id)
        canceled = tuple((o.order_id, o.qty_lots) for o in self.orders.values() if o.ioc)
        for order_id, _ in canceled:
            del self.orders[order_id]
        return BatchClearing(index, at_ns, result, pair_fills(result.fills), canceled, tuple(filled))

    def mark_dirty(self) -> None:
        """Force a clearing at the next boundary (the engine calls this when the collar/band moved)."""
        self.dirty = True

    def crossed(self) -> bool:
        """True when a resting buy limit is >= a resting sell limit (never after a collar-free clearing)."""
        bids = [o.price_ticks for o in self.orders.values() if o.side > 0 and not o.is_market]
        asks = [o.price_ticks for o in self.orders.values() if o.side < 0 and not o.is_market]
        return bool(bids and asks and max(bids) >= min(asks))

    def canonical(self) -> list[object]:
        """Plain data for the state hash and snapshots."""
        return [self.open_index, int(self.dirty), self.next_priority, [o.canonical() for o in self.orders.values()]]

    @classmethod
    def from_canonical(cls, spec: BatchSpec, data: list[object]) -> BatchBook:
        """Inverse of :meth:`canonical`."""
        open_index, dirty, next_priority, orders = data
        assert isinstance(open_index, int) and isinstance(next_priority, int) and isinstance(orders, list)
        book = cls(spec)
        book.open_index, book.dirty, book.next_priority = open_index, bool(dirty), next_priority
        for oid, side, price, qty, prio, mkt, ioc in orders:
            book.orders[oid] = BatchOrder(oid, side, price, qty, prio, bool(mkt), bool(ioc))
        return book
