"""Trigger orders (stop / take-profit): the book of untriggered orders, and its naive reference.

An untriggered order is not live: it holds no margin, is in no order book and has no OrderAccepted. It
waits here, per instrument and trigger source (mark, index, last trade), until the source price reaches
its trigger price; the engine then enters it as an ordinary order (docs/trigger-orders.md).

Direction rule (Binance USD-M Futures API, "New Order (TRADE)" ``POST /fapi/v1/order``: "STOP,
STOP_MARKET: BUY: latest price >= stopPrice, SELL: latest price <= stopPrice; TAKE_PROFIT,
TAKE_PROFIT_MARKET: BUY: latest price <= stopPrice, SELL: latest price >= stopPrice"; the same rule as
dYdX v4 ``Order.CanTrigger`` in protocol/x/clob/types/order.go). An order therefore fires either on a
falling price (``DOWN``: sell stop, buy take-profit) or on a rising one (``UP``: buy stop, sell
take-profit).

Carry-over: the engine *observes* every new source price. The prices observed since the last complete
sweep of an ``(instrument, source)`` form its *armed range* ``[low, high]``; an order fires when some
observed price reaches its trigger, i.e. a DOWN order when ``low <= trigger`` and an UP order when
``high >= trigger``. Orders fire in *trigger order*: DOWN orders by trigger price descending (a
falling price reaches the highest first), then UP orders by trigger price ascending, ties by order id;
armed keys in ``(instrument_id, source)`` order. The engine fires at most ``triggers_per_command_max``
per command; the armed range (state: it is in :meth:`TriggerBookBase.canonical`) keeps the rest for
the next command, and a new order whose trigger lies inside a still-armed range is refused as firing
immediately, so carried-over work is exactly the orders that were reached.

Two implementations behind one interface, as for the order books:

* :class:`TriggerBook` (fast): per ``(instrument, source)`` two ``SortedList`` of int keys,
  ``-trigger << 64 | order_id`` for DOWN and ``trigger << 64 | order_id`` for UP, so the next order to
  fire is the head of a list: a price update costs ``O(log n)`` per fired order and nothing for the
  rest (the liquidation index, core/risk/liquidation_index.py, uses the same keys).
* :class:`ReferenceTriggerBook`: one plain list scanned in full for every question, with the venue's
  direction table written out again (:func:`venue_condition`), so the verifier's replay checks the key
  arithmetic independently (``Engine(config, ReferenceBook)`` selects it).
"""

from __future__ import annotations

from typing import Any

from sortedcontainers import SortedList  # type: ignore[import-untyped]

from bastion.core.commands import OrderType, Side

__all__ = [
    "DOWN",
    "UP",
    "ReferenceTriggerBook",
    "TriggerBook",
    "TriggerBookBase",
    "TriggerOrder",
    "is_market_kind",
    "is_trigger_type",
    "trigger_direction",
    "venue_condition",
]

UP = 1
"""Fires when the source price rises to or above the trigger (buy stop, sell take-profit)."""
DOWN = -1
"""Fires when the source price falls to or below the trigger (sell stop, buy take-profit)."""

ID_BITS = 64
ID_MASK = (1 << ID_BITS) - 1
NEVER_NS = 2**63
_STOPS = (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)
_MARKET_KINDS = (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET)


def is_trigger_type(order_type: int) -> bool:
    """True for STOP_MARKET, STOP_LIMIT, TAKE_PROFIT_MARKET and TAKE_PROFIT_LIMIT."""
    return OrderType.STOP_MARKET <= order_type <= OrderType.TAKE_PROFIT_LIMIT


def is_market_kind(order_type: int) -> bool:
    """True for the trigger types that enter as a MARKET order when they fire."""
    return order_type in _MARKET_KINDS


def trigger_direction(order_type: int, side: int) -> int:
    """``UP`` or ``DOWN`` for a trigger type and side (+1 buy / -1 sell): stops follow the side,
    take-profits oppose it."""
    return side if order_type in _STOPS else -side


def venue_condition(order_type: int, side: int, trigger_price_ticks: int, price_ticks: int) -> bool:
    """The venue table, literally: does ``price_ticks`` of the source trigger this order?

    Source: Binance USD-M "New Order" (STOP*: BUY price >= stopPrice, SELL price <= stopPrice;
    TAKE_PROFIT*: BUY price <= stopPrice, SELL price >= stopPrice). Used by the reference book.
    """
    if order_type in _STOPS:
        return price_ticks >= trigger_price_ticks if side == Side.BUY else price_ticks <= trigger_price_ticks
    return price_ticks <= trigger_price_ticks if side == Side.BUY else price_ticks >= trigger_price_ticks


class TriggerOrder:
    """An untriggered order. Units: ticks, lots, ns. ``price_ticks`` is 0 for the *_MARKET types,
    ``qty_lots`` 0 for a close-position order; ``direction`` is derived (``UP`` / ``DOWN``)."""

    __slots__ = ("order_id", "account_id", "instrument_id", "client_order_id", "side", "order_type",
                 "trigger_source", "trigger_price_ticks", "price_ticks", "qty_lots", "time_in_force",
                 "post_only", "reduce_only", "close_position", "stp", "expire_at_ns", "direction")

    def __init__(self, order_id: int, account_id: int, instrument_id: int, client_order_id: int, side: int,
                 order_type: int, trigger_source: int, trigger_price_ticks: int, price_ticks: int, qty_lots: int,
                 time_in_force: int, post_only: bool, reduce_only: bool, close_position: bool, stp: int,
                 expire_at_ns: int) -> None:
        assert is_trigger_type(order_type) and side in (1, -1) and trigger_price_ticks > 0
        self.order_id = order_id
        self.account_id = account_id
        self.instrument_id = instrument_id
        self.client_order_id = client_order_id
        self.side = side
        self.order_type = order_type
        self.trigger_source = trigger_source
        self.trigger_price_ticks = trigger_price_ticks
        self.price_ticks = price_ticks
        self.qty_lots = qty_lots
        self.time_in_force = time_in_force
        self.post_only = post_only
        self.reduce_only = reduce_only
        self.close_position = close_position
        self.stp = stp
        self.expire_at_ns = expire_at_ns
        self.direction = trigger_direction(order_type, side)

    @property
    def watches_position(self) -> bool:
        """Reduce-only and close-position orders follow their position (resized or canceled)."""
        return self.reduce_only or self.close_position

    def canonical(self) -> list[int]:
        """Plain data for snapshots and the state hash (field order fixed)."""
        return [self.order_id, self.account_id, self.instrument_id, self.client_order_id, self.side,
                self.order_type, self.trigger_source, self.trigger_price_ticks, self.price_ticks, self.qty_lots,
                self.time_in_force, int(self.post_only), int(self.reduce_only), int(self.close_position), self.stp,
                self.expire_at_ns]

    @staticmethod
    def from_canonical(data: list[Any]) -> TriggerOrder:
        """Inverse of :meth:`canonical`."""
        (oid, aid, iid, cid, side, otype, src, trigger, price, qty, tif, post, ro, close, stp, exp) = data
        return TriggerOrder(oid, aid, iid, cid, side, otype, src, trigger, price, qty, tif, bool(post), bool(ro),
                            bool(close), stp, exp)


class TriggerBookBase:
    """What both trigger books share: the order records and their per-account, per-client,
    reduce-only and expiry indexes, and the armed ranges. Subclasses provide the price index
    (``_index_add``, ``_index_remove``, :meth:`first_fired`, :meth:`would_fire`).

    Args:
        instrument_ids: the venue's instruments.
    """

    def __init__(self, instrument_ids: list[int]) -> None:
        self.instrument_ids = tuple(sorted(instrument_ids))
        self.orders: dict[int, TriggerOrder] = {}
        self.by_account: dict[int, dict[int, TriggerOrder]] = {}
        self.by_client: dict[tuple[int, int], TriggerOrder] = {}
        self.position_keys: dict[tuple[int, int], int] = {}
        """(account_id, instrument_id) -> untriggered reduce-only / close-position orders there."""
        self.per_key: dict[tuple[int, int], int] = {}
        """(instrument_id, source) -> untriggered orders there."""
        self.armed: dict[tuple[int, int], list[int]] = {}
        """(instrument_id, source) -> [low, high] observed since its last complete sweep (state)."""
        self.expiries: SortedList = SortedList()
        self.next_expiry_ns = NEVER_NS

    # ---------------------------------------------------------------- records

    @property
    def size(self) -> int:
        """Untriggered orders held."""
        return len(self.orders)

    def add(self, t: TriggerOrder) -> None:
        """Hold a new (or re-keyed) untriggered order."""
        assert t.order_id not in self.orders and (t.account_id, t.client_order_id) not in self.by_client
        self.orders[t.order_id] = t
        self.by_account.setdefault(t.account_id, {})[t.order_id] = t
        self.by_client[(t.account_id, t.client_order_id)] = t
        key = (t.instrument_id, t.trigger_source)
        self.per_key[key] = self.per_key.get(key, 0) + 1
        if t.watches_position:
            pkey = (t.account_id, t.instrument_id)
            self.position_keys[pkey] = self.position_keys.get(pkey, 0) + 1
        if t.expire_at_ns:
            self.expiries.add((t.expire_at_ns, t.order_id))
            self.next_expiry_ns = self.expiries[0][0]
        self._index_add(t)

    def remove(self, t: TriggerOrder) -> None:
        """Forget an untriggered order (fired, canceled, expired)."""
        self._index_remove(t)
        del self.orders[t.order_id]
        mine = self.by_account[t.account_id]
        del mine[t.order_id]
        if not mine:
            del self.by_account[t.account_id]
        del self.by_client[(t.account_id, t.client_order_id)]
        key = (t.instrument_id, t.trigger_source)
        self.per_key[key] -= 1
        if not self.per_key[key]:
            del self.per_key[key]
            self.armed.pop(key, None)  # nothing waits on this source any more: its sweep is complete
        if t.watches_position:
            pkey = (t.account_id, t.instrument_id)
            self.position_keys[pkey] -= 1
            if not self.position_keys[pkey]:
                del self.position_keys[pkey]
        if t.expire_at_ns:
            self.expiries.remove((t.expire_at_ns, t.order_id))
            self.next_expiry_ns = self.expiries[0][0] if self.expiries else NEVER_NS

    def move_trigger(self, t: TriggerOrder, trigger_price_ticks: int) -> None:
        """Change an order's trigger price (amend): re-keyed in the price index, same order id."""
        self._index_remove(t)
        t.trigger_price_ticks = trigger_price_ticks
        self._index_add(t)

    def count_for(self, account_id: int) -> int:
        """Untriggered orders of ``account_id`` (they count toward ``orders_open_max``)."""
        mine = self.by_account.get(account_id)
        return 0 if mine is None else len(mine)

    def of_account(self, account_id: int, instrument_id: int = 0) -> list[TriggerOrder]:
        """The account's untriggered orders (on one instrument, or all for 0), by order id."""
        mine = self.by_account.get(account_id)
        if mine is None:
            return []
        return [mine[oid] for oid in sorted(mine) if instrument_id in (0, mine[oid].instrument_id)]

    def find(self, account_id: int, order_id: int, client_order_id: int) -> TriggerOrder | None:
        """By venue ``order_id``, or by ``client_order_id`` when ``order_id`` is 0 (CancelOrder rule)."""
        if order_id != 0:
            t = self.orders.get(order_id)
            return t if t is not None and t.account_id == account_id else None
        return self.by_client.get((account_id, client_order_id))

    def has_orders(self, instrument_id: int, source: int) -> bool:
        return (instrument_id, source) in self.per_key

    def due_expiries(self, now_ns: int, count_max: int) -> list[TriggerOrder]:
        """Up to ``count_max`` GTD orders whose expiry is at or before ``now_ns``, earliest first."""
        out: list[TriggerOrder] = []
        for expire_at_ns, order_id in self.expiries:
            if expire_at_ns > now_ns or len(out) == count_max:
                break
            out.append(self.orders[order_id])
        return out

    # ---------------------------------------------------------------- prices and firing

    def observe(self, instrument_id: int, source: int, price_ticks: int) -> None:
        """A new source price: widen the armed range (only where orders wait)."""
        key = (instrument_id, source)
        if key not in self.per_key:
            return
        span = self.armed.get(key)
        if span is None:
            self.armed[key] = [price_ticks, price_ticks]
        elif price_ticks < span[0]:
            span[0] = price_ticks
        elif price_ticks > span[1]:
            span[1] = price_ticks

    def span(self, instrument_id: int, source: int, current_ticks: int) -> tuple[int, int]:
        """Prices an order placed now must not be reached by: the armed range plus the current price."""
        armed = self.armed.get((instrument_id, source))
        if armed is None:
            return current_ticks, current_ticks
        return min(armed[0], current_ticks), max(armed[1], current_ticks)

    def next_to_fire(self, blocked: set[int]) -> tuple[TriggerOrder, int] | None:
        """The next order to fire and the source price that reached it, or None.

        Armed keys are visited in ``(instrument_id, source)`` order, skipping instruments in ``blocked``
        (their market does not accept orders now; they stay armed).
        """
        for key in sorted(self.armed):
            if key[0] in blocked:
                continue
            low, high = self.armed[key]
            t = self.first_fired(key[0], key[1], low, high)
            if t is not None:
                return t, (low if t.direction == DOWN else high)
        return None

    def settle(self) -> None:
        """After a sweep: disarm every key with nothing left to fire (kept: carried-over work)."""
        for key in sorted(self.armed):
            low, high = self.armed[key]
            if key not in self.per_key or self.first_fired(key[0], key[1], low, high) is None:
                del self.armed[key]

    # ---------------------------------------------------------------- the price index (per subclass)

    def _index_add(self, t: TriggerOrder) -> None:
        raise NotImplementedError

    def _index_remove(self, t: TriggerOrder) -> None:
        raise NotImplementedError

    def first_fired(self, instrument_id: int, source: int, low_ticks: int, high_ticks: int) -> TriggerOrder | None:
        """The first order, in trigger order, reached by some price in ``[low_ticks, high_ticks]``."""
        raise NotImplementedError

    def would_fire(self, instrument_id: int, source: int, order_type: int, side: int, trigger_price_ticks: int,
                   current_ticks: int) -> bool:
        """Would an order with this trigger fire at once (reached by the current price or an armed range)?"""
        raise NotImplementedError

    # ---------------------------------------------------------------- state

    def canonical(self) -> list[Any] | None:
        """``[orders by id, armed ranges]`` as plain data, or None while empty (hash unchanged)."""
        if not self.orders and not self.armed:
            return None
        return [[self.orders[oid].canonical() for oid in sorted(self.orders)],
                [[iid, src, span[0], span[1]] for (iid, src), span in sorted(self.armed.items())]]

    def restore(self, data: list[Any]) -> None:
        """Inverse of :meth:`canonical` on an empty book."""
        assert not self.orders and not self.armed
        orders, armed = data
        for entry in orders:
            self.add(TriggerOrder.from_canonical(entry))
        for iid, src, low, high in armed:
            self.armed[(iid, src)] = [low, high]

    def check(self) -> list[str]:
        """Internal consistency of the records and indexes; the broken ones (empty when all hold)."""
        broken: list[str] = []
        if sum(len(m) for m in self.by_account.values()) != len(self.orders) or len(self.by_client) != len(self.orders):
            broken.append("trigger account/client indexes disagree with the records")
        per: dict[tuple[int, int], int] = {}
        pos: dict[tuple[int, int], int] = {}
        for t in self.orders.values():
            per[(t.instrument_id, t.trigger_source)] = per.get((t.instrument_id, t.trigger_source), 0) + 1
            if t.watches_position:
                pos[(t.account_id, t.instrument_id)] = pos.get((t.account_id, t.instrument_id), 0) + 1
            if self.by_client.get((t.account_id, t.client_order_id)) is not t:
                broken.append(f"trigger {t.order_id} missing from the client index")
        if per != self.per_key or pos != self.position_keys:
            broken.append("trigger per-key or position counts drifted")
        if sorted(self.expiries) != sorted((t.expire_at_ns, t.order_id) for t in self.orders.values() if t.expire_at_ns):
            broken.append("trigger expiry index drifted")
        if any(key not in self.per_key or span[0] > span[1] for key, span in self.armed.items()):
            broken.append("armed range without orders, or inverted")
        return broken + self._index_check()

    def _index_check(self) -> list[str]:
        return []


class TriggerBook(TriggerBookBase):
    """The fast trigger book: sorted int keys per ``(instrument, source)`` and direction."""

    def __init__(self, instrument_ids: list[int]) -> None:
        super().__init__(instrument_ids)
        self._down: dict[tuple[int, int], SortedList] = {}
        self._up: dict[tuple[int, int], SortedList] = {}

    @staticmethod
    def _key(t: TriggerOrder) -> int:
        if t.direction == DOWN:
            return -t.trigger_price_ticks << ID_BITS | t.order_id  # ascending = trigger descending
        return t.trigger_price_ticks << ID_BITS | t.order_id

    def _lists(self, t: TriggerOrder) -> dict[tuple[int, int], SortedList]:
        return self._down if t.direction == DOWN else self._up

    def _index_add(self, t: TriggerOrder) -> None:
        lists = self._lists(t)
        key = (t.instrument_id, t.trigger_source)
        keys = lists.get(key)
        if keys is None:
            keys = lists[key] = SortedList()
        keys.add(self._key(t))

    def _index_remove(self, t: TriggerOrder) -> None:
        lists = self._lists(t)
        key = (t.instrument_id, t.trigger_source)
        keys = lists[key]
        keys.remove(self._key(t))
        if not keys:
            del lists[key]

    def first_fired(self, instrument_id: int, source: int, low_ticks: int, high_ticks: int) -> TriggerOrder | None:
        key = (instrument_id, source)
        down = self._down.get(key)
        if down is not None:
            head = down[0]
            if -(head >> ID_BITS) >= low_ticks:
                return self.orders[head & ID_MASK]
        up = self._up.get(key)
        if up is not None:
            head = up[0]
            if head >> ID_BITS <= high_ticks:
                return self.orders[head & ID_MASK]
        return None

    def would_fire(self, instrument_id: int, source: int, order_type: int, side: int, trigger_price_ticks: int,
                   current_ticks: int) -> bool:
        low, high = self.span(instrument_id, source, current_ticks)
        if trigger_direction(order_type, side) == DOWN:
            return low <= trigger_price_ticks
        return high >= trigger_price_ticks

    def _index_check(self) -> list[str]:
        indexed = sum(len(k) for k in self._down.values()) + sum(len(k) for k in self._up.values())
        if indexed != len(self.orders):
            return [f"trigger price index holds {indexed} keys for {len(self.orders)} orders"]
        for lists in (self._down, self._up):
            for (iid, src), keys in lists.items():
                for k in keys:
                    t = self.orders.get(k & ID_MASK)
                    if t is None or self._key(t) != k or (t.instrument_id, t.trigger_source) != (iid, src):
                        return [f"trigger price index key {k} does not match its order"]
        return []


class ReferenceTriggerBook(TriggerBookBase):
    """The naive reference: one list in arrival order, scanned in full, with the venue table spelled
    out (:func:`venue_condition`). Same answers as :class:`TriggerBook` (tests/differential)."""

    def __init__(self, instrument_ids: list[int]) -> None:
        super().__init__(instrument_ids)
        self._all: list[TriggerOrder] = []

    def _index_add(self, t: TriggerOrder) -> None:
        self._all.append(t)

    def _index_remove(self, t: TriggerOrder) -> None:
        self._all.remove(t)

    def first_fired(self, instrument_id: int, source: int, low_ticks: int, high_ticks: int) -> TriggerOrder | None:
        best: TriggerOrder | None = None
        best_rank: tuple[int, int, int] = (0, 0, 0)
        for t in self._all:
            if t.instrument_id != instrument_id or t.trigger_source != source:
                continue
            # Every price in [low, high] was observed; the conditions are monotone in the price, so
            # an order is reached iff one of the two ends reaches it.
            on_fall = (t.order_type in _STOPS) == (t.side == Side.SELL)
            if on_fall:
                if not venue_condition(t.order_type, t.side, t.trigger_price_ticks, low_ticks):
                    continue
                rank = (0, -t.trigger_price_ticks, t.order_id)  # falling prices reach the highest first
            else:
                if not venue_condition(t.order_type, t.side, t.trigger_price_ticks, high_ticks):
                    continue
                rank = (1, t.trigger_price_ticks, t.order_id)
            if best is None or rank < best_rank:
                best, best_rank = t, rank
        return best

    def would_fire(self, instrument_id: int, source: int, order_type: int, side: int, trigger_price_ticks: int,
                   current_ticks: int) -> bool:
        low, high = self.span(instrument_id, source, current_ticks)
        return any(venue_condition(order_type, side, trigger_price_ticks, p) for p in (low, high))
