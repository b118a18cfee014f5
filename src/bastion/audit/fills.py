"""The verifier's own checks of every fill, derived from the output events alone (not from the engine).

``bastion verify`` re-executes the journal on the reference engine and compares every event with
``events.bin``, so a fast book that breaks a rule is caught as a differing leaf. That does not catch a
rule broken by *both* engines (a bug in shared code, in the integrity layer, or in the reference book
itself). The two classes here re-derive, from the event stream only, what the matching rules say must
hold for each ``TradeExecuted``, with their own small code (no engine, book or integrity module is
called):

* :class:`ShadowBook` — **price-time priority and order limits.** A shadow of every live order
  (``OrderAccepted`` adds it at the back of its price level, ``OrderAmended`` with
  ``priority_kept=False`` moves it to the back of its new level, ``OrderReduced`` / ``OrderAmended``
  with ``priority_kept=True`` shrink it in place, ``OrderCanceled`` and full fills remove it). Per
  continuous fill (``taker_side`` +-1): the maker must be the *first* order of the *best* price level
  on the opposite side — the best-priced, earliest resting order. Orders the matching loop skips
  (self-trade prevention, expired, reduce-only with no room) leave the book with an ``OrderCanceled``
  or ``OrderReduced`` event *before* the fill that passes them, so they are not in the shadow when the
  fill is checked; a maker of the taker's own account is refused as a self-trade. Also: the fill is
  at the maker's limit, within the taker's limit, no larger than either order's remaining size.
  An auction or batch fill (``taker_side`` 0, allocated by the auction rules, not by time) has no
  priority to check: it must be at the clearing price of an ``AuctionCleared`` of its instrument earlier
  in the same command, within both orders' limits (a market order's limit is its collar edge), and it
  updates the shadow. While a market is in a call auction (``MarketStateChanged`` to AUCTION), new and
  re-entered orders rest in the auction's book, not in the continuous one (only the engine's own
  liquidation orders, client order id 0, still meet the continuous book); at the uncross the ones left
  join the back of their levels in arrival order. **Batch markets** (``MatchingModeSet`` to BATCH or
  SEALED_BATCH, docs/integrity-integration.md §6.3, §7): the continuous book's orders move to the batch
  book (in priority order) and every order that enters later rests there too, liquidation orders
  included (the FastBook is empty in batch mode); a batch market has no continuous fill at all. Back to
  CONTINUOUS, the batch book's orders join
  the back of their levels in batch priority (the ones that would cross are canceled by events that
  follow). With the venue config given, every ``AuctionCleared`` of an instrument without a band must
  lie in the collar the engine clears in: mark +- ``market_protection_ppm`` of the last
  ``MarkPriceSet`` (the band is the collar otherwise, checked by :class:`BandWatch`).
* :class:`BandWatch` — **no trade outside a band.** For every instrument with ``[instrument.integrity]
  band_ppm > 0``, the band is rebuilt from the venue config and the event stream, as
  ``docs/integrity-integration.md`` §5.2 and :mod:`bastion.core.integrity.bands` define it:
  reference = the instrument's ``reference_price`` at start, then every ``MarkPriceSet`` (band
  reference ``mark``) or the last price of each match / the clearing price of each auction (band
  reference ``last_trade``), smoothed by the LULD rule when LULD is on (the candidate replaces the
  reference only when ``|candidate - reference| * 10**6 >= reference * luld_reference_update_ppm``);
  half-width ``w = floor(reference * band_ppm / 10**6)``; band ``[max(reference - w, 1),
  min(reference + w, price_ticks_max)]``, both edges inclusive. Every ``TradeExecuted`` and
  ``AuctionCleared`` price must lie in the band in force when the match (or the auction) began: the
  reference moves after a match, so all fills of one taker are checked against the same band.

Both return a reason string for the first fill that breaks a rule (None otherwise); the verifier turns
it into a finding naming the command's seq and the leaf's offset.
"""

from __future__ import annotations

import heapq
from typing import Any

from bastion.core.events import (
    AuctionCleared,
    MarketStateChanged,
    MarkPriceSet,
    MatchingModeSet,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderReduced,
    TradeExecuted,
)
from bastion.core.instruments import VenueConfig

__all__ = ["BAND_EVENTS", "ORDER_EVENTS", "BandWatch", "ShadowBook"]

_PPM = 1_000_000
_BAND_REFERENCE_MARK, _BAND_REFERENCE_LAST_TRADE = 0, 1  # IntegrityConfig.band_reference (config values)
_STP_DECREMENT = 8  # CancelReason.stp_decrement: maker and taker shrink by the same amount, one event
_ACTIVE, _HALTED, _AUCTION = 0, 3, 4  # MarketState values (journaled, stable)
_VELOCITY = 2  # TransitionReason.velocity

_CONTINUOUS = 0  # MatchingMode.CONTINUOUS (journaled, stable); BATCH = 1, SEALED_BATCH = 2

ORDER_EVENTS = frozenset({OrderAccepted, OrderAmended, OrderCanceled, OrderReduced, TradeExecuted, MarketStateChanged,
                          MatchingModeSet, AuctionCleared, MarkPriceSet})
BAND_EVENTS = frozenset({MarkPriceSet, TradeExecuted, AuctionCleared})


class _Side:
    """One side of one instrument's shadow book: price levels in arrival order and a heap of price ranks.

    ``levels[price]`` is a dict used as an ordered set of order ids (insertion order = time priority);
    ``heap`` holds ``rank = -side * price`` (best first) of every level that may be non-empty, each
    price at most once (``in_heap``); empty levels are dropped lazily when they reach the top.
    """

    __slots__ = ("sign", "levels", "heap", "in_heap")

    def __init__(self, side: int) -> None:
        self.sign = -side
        self.levels: dict[int, dict[int, None]] = {}
        self.heap: list[int] = []
        self.in_heap: set[int] = set()

    def add(self, price: int, order_id: int) -> None:
        level = self.levels.get(price)
        if level is None:
            level = self.levels[price] = {}
            if price not in self.in_heap:
                self.in_heap.add(price)
                heapq.heappush(self.heap, self.sign * price)
        level[order_id] = None

    def remove(self, price: int, order_id: int) -> None:
        level = self.levels[price]
        del level[order_id]
        if not level:
            del self.levels[price]

    def in_priority(self) -> list[int]:
        """Every order id on this side, best price first, each level in time priority."""
        return [order_id for price in sorted(self.levels, key=lambda p: self.sign * p)
                for order_id in self.levels[price]]

    def best(self) -> tuple[int, int] | None:
        """(best price, its earliest order id), or None when the side is empty."""
        heap, levels = self.heap, self.levels
        while heap:
            price = self.sign * heap[0]
            level = levels.get(price)
            if level:
                return price, next(iter(level))
            heapq.heappop(heap)
            self.in_heap.discard(price)
        return None


class ShadowBook:
    """Live orders and their time priority, as the event stream describes them (module docstring).

    ``live[order_id] = [side, limit price, remaining lots, instrument id, parked]``; ``parked`` is 1 for
    an order held by a call auction's or a batch market's book instead of the continuous book (see
    :meth:`_market_state`, :meth:`_matching_mode`).

    Args:
        config: the venue config; with it, auction clearings of instruments without a band are held to
            the mark collar (module docstring). None: that check is off (fabricated streams).
    """

    __slots__ = ("live", "fills", "_sides", "_taker", "_auction", "_parked", "_batch", "_cleared", "_marks",
                 "_collars")

    def __init__(self, config: VenueConfig | None = None) -> None:
        self.live: dict[int, list[int]] = {}
        self.fills = 0
        self._sides: dict[tuple[int, int], _Side] = {}
        self._taker = 0  # the order that entered last (accepted or re-entered by an amend): the one matching
        self._auction: set[int] = set()  # instruments in a call auction (new orders go to its book)
        self._batch: set[int] = set()  # instruments in BATCH / SEALED_BATCH mode (every order in its book)
        self._parked: dict[int, dict[int, None]] = {}  # instrument -> auction/batch-book orders, in priority order
        self._cleared: dict[int, tuple[int, int]] = {}  # instrument -> (seq, price) of its last AuctionCleared
        # instrument without a band -> (market_protection_ppm, price_ticks_max); its mark, from MarkPriceSet
        self._collars: dict[int, tuple[int, int]] = {}
        self._marks: dict[int, int] = {}
        if config is not None:
            for iid, spec in config.instruments.items():
                if not spec.integrity.band_ppm:
                    self._collars[iid] = (spec.market_protection_ppm, spec.price_ticks_max)
                    self._marks[iid] = spec.reference_price_ticks

    def _side(self, instrument_id: int, side: int) -> _Side:
        key = (instrument_id, side)
        found = self._sides.get(key)
        if found is None:
            found = self._sides[key] = _Side(side)
        return found

    def _enter(self, order_id: int, rec: list[int], internal: bool = False) -> None:
        """Put a live order at the back: of the batch book in a batch market, of the auction book while its
        market is in a call auction (engine-internal liquidation orders, client order id 0, meet the
        continuous book then), else of its level."""
        iid = rec[3]
        if (iid in self._auction and not internal) or iid in self._batch:
            rec[4] = 1
            self._parked.setdefault(iid, {})[order_id] = None
        else:
            rec[4] = 0
            self._side(iid, rec[0]).add(rec[1], order_id)

    def _leave(self, order_id: int, rec: list[int]) -> None:
        if rec[4]:
            del self._parked[rec[3]][order_id]
        else:
            self._side(rec[3], rec[0]).remove(rec[1], order_id)

    def observe(self, ev: Any, seq: int) -> str | None:
        """Update from one order event (or a market-state change); return why a fill is wrong, else None."""
        t = type(ev)
        rec: list[int] | None
        if t is TradeExecuted:
            return self._fill(ev, seq)
        if t is OrderAccepted:
            if ev.order_id in self.live:
                return f"order {ev.order_id} accepted twice"
            rec = self.live[ev.order_id] = [ev.side, ev.price_ticks, ev.qty_lots, ev.instrument_id, 0]
            self._enter(ev.order_id, rec, internal=ev.client_order_id == 0)
            self._taker = ev.order_id
        elif t is OrderAmended:
            rec = self.live.get(ev.order_id)
            if rec is None:
                return f"order {ev.order_id} amended but not live"
            if ev.priority_kept:
                if ev.price_ticks != rec[1] or not 0 < ev.qty_lots < rec[2]:
                    return f"order {ev.order_id} amended in place, but not to a smaller size at its price"
            else:
                self._leave(ev.order_id, rec)
                rec[1] = ev.price_ticks
                self._enter(ev.order_id, rec)  # to the back of the new level (or of the auction book)
                self._taker = ev.order_id
            rec[2] = ev.qty_lots
        elif t is OrderCanceled:
            rec = self.live.pop(ev.order_id, None)
            if rec is not None:
                self._leave(ev.order_id, rec)
        elif t is OrderReduced:
            rec = self.live.get(ev.order_id)
            if rec is None:
                return f"order {ev.order_id} reduced but not live"
            if not 0 <= ev.qty_lots < rec[2]:
                return f"order {ev.order_id} 'reduced' from {rec[2]} to {ev.qty_lots} lots"
            if ev.reason == _STP_DECREMENT:  # the taker (same account, opposite side) shrank by as much
                taker = self.live.get(self._taker)
                if taker is None or taker[0] != -rec[0] or taker[3] != rec[3] or taker[2] < rec[2] - ev.qty_lots:
                    return f"self-trade decrement of order {ev.order_id} without a matching taker"
                taker[2] -= rec[2] - ev.qty_lots  # its OrderCanceled follows if that consumed it
            rec[2] = ev.qty_lots
            if ev.qty_lots == 0:
                del self.live[ev.order_id]
                self._leave(ev.order_id, rec)
        elif t is MarkPriceSet:
            if ev.instrument_id in self._marks:
                self._marks[ev.instrument_id] = ev.price_ticks
        elif t is AuctionCleared:
            return self._auction_cleared(ev, seq)
        elif t is MarketStateChanged:
            self._market_state(ev)
        elif t is MatchingModeSet:
            self._matching_mode(ev)
        return None

    def _auction_cleared(self, ev: AuctionCleared, seq: int) -> str | None:
        """Remember the clearing price (its fills follow in this command); check it against the collar."""
        iid = ev.instrument_id
        self._cleared[iid] = (seq, ev.price_ticks)
        collar = self._collars.get(iid)
        if collar is not None:
            mark = self._marks[iid]
            width = mark * collar[0] // _PPM
            low, high = max(mark - width, 1), min(mark + width, collar[1])
            if not low <= ev.price_ticks <= high:
                return (f"auction clearing at {ev.price_ticks} ticks on instrument {iid} is outside its collar "
                        f"[{low}, {high}] (mark {mark} +- {collar[0]} ppm)")
        return None

    def _matching_mode(self, ev: MatchingModeSet) -> None:
        """A mode switch (the market is halted, nothing trades): into BATCH / SEALED_BATCH the continuous
        book's orders move to the batch book in priority order (bids then asks, each best first, time
        priority within a level), behind any already there; back to CONTINUOUS the batch book's orders join
        the back of their levels in batch priority (the engine cancels those that would cross or are IOC
        with OrderCanceled events right after)."""
        iid = ev.instrument_id
        if ev.mode != _CONTINUOUS:
            moving: list[int] = []
            for side in (1, -1):
                book = self._sides.get((iid, side))
                if book is not None:
                    for order_id in book.in_priority():
                        book.remove(self.live[order_id][1], order_id)
                        moving.append(order_id)
            parked = self._parked.setdefault(iid, {})
            before = list(parked)
            parked.clear()
            for order_id in moving + before:
                parked[order_id] = None
                self.live[order_id][4] = 1
            self._batch.add(iid)
        else:
            self._batch.discard(iid)
            for order_id in self._parked.pop(iid, {}):
                rec = self.live[order_id]
                rec[4] = 0
                self._side(iid, rec[0]).add(rec[1], order_id)

    def _market_state(self, ev: MarketStateChanged) -> None:
        """Call auctions (docs/integrity-integration.md §6.1): entering AUCTION opens an auction book that
        takes every new or re-entered order (a velocity pause also parks the taker that triggered it; its
        OrderCanceled follows when it was IOC); a halt keeps the book; AUCTION -> ACTIVE uncrosses, and
        the parked orders still live after the clearing rest behind the book's orders, in arrival order."""
        iid = ev.instrument_id
        if ev.to_state == _AUCTION:
            self._auction.add(iid)
            if ev.from_state == _ACTIVE and ev.reason == _VELOCITY:
                rec = self.live.get(self._taker)
                if rec is not None and rec[3] == iid and not rec[4]:
                    self._leave(self._taker, rec)
                    self._enter(self._taker, rec)
        elif ev.from_state == _AUCTION and ev.to_state == _ACTIVE:
            self._auction.discard(iid)
            parked = self._parked.pop(iid, {})
            for order_id in parked:
                rec = self.live[order_id]
                rec[4] = 0
                self._side(iid, rec[0]).add(rec[1], order_id)
        elif ev.to_state != _HALTED:
            self._auction.discard(iid)  # SETTLING: every order is canceled (their events follow)

    def _fill(self, ev: TradeExecuted, seq: int) -> str | None:
        """Continuous fills (``taker_side`` +-1) trade at the maker's limit within the taker's, with the
        best-priced earliest maker of the continuous book, never in a batch market; an auction or batch
        fill (``taker_side`` 0: maker = the sell order, taker = the buy order) trades at the clearing price
        of this command's ``AuctionCleared`` within both limits (a limit of 0 is a market order and bounds
        nothing)."""
        self.fills += 1
        maker = self.live.get(ev.maker_order_id)
        taker = self.live.get(ev.taker_order_id)
        if maker is None or taker is None:
            return f"fill between orders {ev.maker_order_id}/{ev.taker_order_id}, not both live"
        price, qty, side = ev.price_ticks, ev.qty_lots, ev.taker_side
        buy_side = side if side else 1  # an auction pair lists the buy order as taker
        if taker[0] != buy_side or maker[0] != -buy_side or ev.instrument_id != maker[3] or ev.instrument_id != taker[3]:
            return f"fill sides/instrument do not match orders {ev.maker_order_id}/{ev.taker_order_id}"
        if not 0 < qty <= min(maker[2], taker[2]):
            return f"fill of {qty} lots exceeds what orders {ev.maker_order_id}/{ev.taker_order_id} have left"
        if side:
            if ev.instrument_id in self._batch:
                return f"continuous fill (taker side {side}) on instrument {ev.instrument_id}, a batch market"
            if price != maker[1]:
                return f"fill at {price} is not the maker's limit {maker[1]}"
            if (price > taker[1]) if side > 0 else (price < taker[1]):
                return f"fill at {price} violates the taker's limit {taker[1]} (side {side})"
            if ev.maker_account_id == ev.taker_account_id:
                return f"self-trade of account {ev.maker_account_id}"
            if maker[4]:
                return f"continuous fill against order {ev.maker_order_id}, which rests in the auction book"
            best = self._side(ev.instrument_id, -side).best()
            assert best is not None  # the maker itself is live on that side
            if best[1] != ev.maker_order_id:
                what = "a better price" if best[0] != price else "the same price, earlier"
                return (f"price-time priority: the fill takes order {ev.maker_order_id} at {price}, but order "
                        f"{best[1]} rests at {best[0]} ({what})")
        else:
            if (taker[1] and price > taker[1]) or (maker[1] and price < maker[1]):
                return f"auction fill at {price} outside the limits buy {taker[1]} / sell {maker[1]}"
            cleared = self._cleared.get(ev.instrument_id)
            if cleared is None or cleared[0] != seq or cleared[1] != price:
                where = "no clearing in this command" if cleared is None or cleared[0] != seq else (
                    f"this command's clearing price is {cleared[1]}")
                return f"auction fill at {price} on instrument {ev.instrument_id}, but {where}"
        for oid, rec in ((ev.maker_order_id, maker), (ev.taker_order_id, taker)):
            rec[2] -= qty
            if rec[2] == 0:
                del self.live[oid]
                self._leave(oid, rec)
        return None


class _BandState:
    """The band of one instrument: its parameters from the config and the current reference."""

    __slots__ = ("band_ppm", "source", "luld_update_ppm", "price_ticks_max", "reference", "low", "high")

    def __init__(self, band_ppm: int, source: int, luld_update_ppm: int | None, price_ticks_max: int,
                 reference: int) -> None:
        self.band_ppm = band_ppm
        self.source = source
        self.luld_update_ppm = luld_update_ppm
        self.price_ticks_max = price_ticks_max
        self.reference = 0
        self.low = self.high = 0
        self.move(reference)

    def move(self, candidate: int) -> None:
        """A new reference candidate (mark, last trade or clearing price), LULD-smoothed when LULD is on."""
        current = self.reference
        update = self.luld_update_ppm
        if current and update is not None and abs(candidate - current) * _PPM < current * update:
            return  # LULD: moves of less than luld_reference_update_ppm leave the reference where it is
        assert 0 < candidate <= self.price_ticks_max, "a reference price off the instrument's range"
        width = candidate * self.band_ppm // _PPM
        self.reference = candidate
        self.low = max(candidate - width, 1)
        self.high = min(candidate + width, self.price_ticks_max)


class BandWatch:
    """Every fill inside its instrument's band (module docstring). Call :meth:`end_command` after each
    command's events (a last-trade reference moves after the command's final match)."""

    __slots__ = ("bands", "checked", "_pending", "_pending_key")

    def __init__(self, bands: dict[int, _BandState]) -> None:
        self.bands = bands
        self.checked = 0
        self._pending: tuple[int, int] | None = None  # (instrument, last price) of the open match
        self._pending_key: tuple[int, int] | None = None  # (instrument, taker order id or 0 for an auction)

    @classmethod
    def from_config(cls, config: VenueConfig) -> BandWatch | None:
        """A watch over every instrument with a band, or None when no instrument has one."""
        bands: dict[int, _BandState] = {}
        for iid, spec in config.instruments.items():
            cfg = spec.integrity
            if cfg.band_ppm:
                update = cfg.luld_reference_update_ppm if cfg.luld_halt_ns else None
                bands[iid] = _BandState(cfg.band_ppm, cfg.band_reference, update, spec.price_ticks_max,
                                        spec.reference_price_ticks)
        return cls(bands) if bands else None

    def _flush(self) -> None:
        pending = self._pending
        if pending is not None:
            self._pending = self._pending_key = None
            band = self.bands[pending[0]]
            if band.source == _BAND_REFERENCE_LAST_TRADE:
                band.move(pending[1])

    def observe(self, ev: Any) -> str | None:
        """Update from a MarkPriceSet / TradeExecuted / AuctionCleared; return why a price is outside."""
        t = type(ev)
        band = self.bands.get(ev.instrument_id)
        if band is None:
            return None
        if t is MarkPriceSet:
            if band.source == _BAND_REFERENCE_MARK:
                band.move(ev.price_ticks)
            return None
        key = (ev.instrument_id, ev.taker_order_id if t is TradeExecuted and ev.taker_side else 0)
        if t is AuctionCleared or key != self._pending_key:
            self._flush()  # a new match or auction: the previous one's last price moved the reference
            self._pending_key = key
        self._pending = (ev.instrument_id, ev.price_ticks)
        self.checked += t is TradeExecuted
        if not band.low <= ev.price_ticks <= band.high:
            what = "fill" if t is TradeExecuted else "auction clearing"
            return (f"{what} at {ev.price_ticks} ticks on instrument {ev.instrument_id} is outside its band "
                    f"[{band.low}, {band.high}] (reference {band.reference}, band_ppm {band.band_ppm})")
        return None

    def end_command(self) -> None:
        """The command's events are over: apply the last match's price to a last-trade reference."""
        self._flush()
