"""What the fast book and the reference book share: the order record and the matching contract.

Both books implement :class:`OrderBook`; the engine drives them through the same calls and they must
produce identical callbacks in identical order (checked by the differential tests).

Matching contract (price-time priority, one instrument):

* The taker walks the opposite side from the best price while it crosses ``limit_price``; within a
  price level, makers trade in arrival order (priority is lost on re-entry, kept on size-down).
* A maker whose ``expire_at_ns`` <= now is removed (reason ``expired``) instead of trading.
* A maker of the taker's own account triggers self-trade prevention by the taker's STP mode:
  EXPIRE_MAKER removes the maker and continues; EXPIRE_TAKER stops (taker remainder canceled);
  EXPIRE_BOTH removes the maker and stops; DECREMENT shrinks both by the overlap without a trade.
* A reduce-only maker trades at most ``ctx.reduce_only_cap(maker)``; beyond it, it is shrunk or removed
  (reason ``reduce_only_resized``).
* FOK: ``fillable_lots`` counts what ``match`` would consume (fills, and DECREMENT's self-overlap).
* At most ``levels_walked_max`` price levels are walked and at most ``fills_per_command_max`` fills
  made; hitting either stops the walk (the taker's remainder is then canceled by the engine).
"""

from __future__ import annotations

from typing import Protocol

from bastion.core.rejects import CancelReason

__all__ = ["MatchContext", "Order", "OrderBook", "STOP_NONE"]

STOP_NONE = 0


class Order:
    """A live order (resting or being matched). Mutable; owned by exactly one book.

    Attributes (units): price_ticks, qty_lots = remaining quantity, side = +1 buy / -1 sell,
    expire_at_ns = 0 for no expiry. ``priority`` is the book-assigned arrival counter; ``prev``,
    ``next``, ``level`` are the fast book's intrusive links (unused by the reference book).
    ``margin_epoch`` is the engine's mark epoch when the order last passed the initial-margin check
    (-1: never, or accepted only as a closing order); a fill at that same epoch cannot take its account
    below maintenance, so the risk engine need not re-check it (an optimisation, not state).
    """

    __slots__ = (
        "order_id", "account_id", "instrument_id", "client_order_id", "side", "price_ticks",
        "qty_lots", "time_in_force", "post_only", "reduce_only", "stp", "expire_at_ns", "priority",
        "prev", "next", "level", "margin_epoch",
    )

    def __init__(
        self,
        order_id: int,
        account_id: int,
        instrument_id: int,
        client_order_id: int,
        side: int,
        price_ticks: int,
        qty_lots: int,
        time_in_force: int,
        post_only: bool,
        reduce_only: bool,
        stp: int,
        expire_at_ns: int,
    ) -> None:
        self.order_id = order_id
        self.account_id = account_id
        self.instrument_id = instrument_id
        self.client_order_id = client_order_id
        self.side = side
        self.price_ticks = price_ticks
        self.qty_lots = qty_lots
        self.time_in_force = time_in_force
        self.post_only = post_only
        self.reduce_only = reduce_only
        self.stp = stp
        self.expire_at_ns = expire_at_ns
        self.priority = 0
        self.margin_epoch = -1
        self.prev: Order | None = None
        self.next: Order | None = None
        self.level: object | None = None

    def canonical(self) -> list[int]:
        """Plain-data form for snapshots and the state hash (links excluded, order of fields fixed)."""
        return [
            self.order_id, self.account_id, self.instrument_id, self.client_order_id, self.side,
            self.price_ticks, self.qty_lots, self.time_in_force, int(self.post_only), int(self.reduce_only),
            self.stp,
            self.expire_at_ns,
        ]


class MatchContext(Protocol):
    """What the engine provides to a book during one match (settlement happens in the callbacks)."""

    fills_per_command_max: int
    levels_walked_max: int
    fills_made: int

    def on_trade(self, maker: Order, taker: Order, qty_lots: int, price_ticks: int) -> None:
        """Called after both orders' ``qty_lots`` were reduced by ``qty_lots`` (maker removed if 0)."""

    def on_maker_removed(self, maker: Order, reason: CancelReason) -> None:
        """Called after ``maker`` was unlinked from the book with its remaining ``qty_lots``."""

    def on_maker_reduced(self, maker: Order, by_lots: int, reason: CancelReason) -> None:
        """Called after ``maker.qty_lots`` shrank by ``by_lots`` without a trade (still resting if > 0)."""

    def reduce_only_cap(self, maker: Order) -> int:
        """Lots a reduce-only ``maker`` may still trade without increasing its account's position."""


class OrderBook(Protocol):
    """One instrument's limit order book."""

    def best_bid(self) -> int | None: ...
    def best_ask(self) -> int | None: ...
    def best_live_price(self, side: int, now_ns: int, skipped_max: int) -> int | None: ...
    def add(self, order: Order) -> None: ...
    def remove(self, order: Order) -> None: ...
    def reduce(self, order: Order, new_qty_lots: int) -> None: ...
    def match(self, taker: Order, limit_price_ticks: int, now_ns: int, ctx: MatchContext) -> int: ...
    def fillable_lots(
        self, taker: Order, limit_price_ticks: int, now_ns: int, ctx: MatchContext
    ) -> int: ...
    def orders_in_priority(self) -> list[Order]: ...
    def depth(self, levels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]: ...
    def __len__(self) -> int: ...
