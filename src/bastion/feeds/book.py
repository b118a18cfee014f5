"""Local L2 order book rebuilt from synchronised feed records.

`LocalBook` applies the output of `bastion.feeds.binance.iter_synced` (or a
`BookSequencer`): snapshots replace the book, diffs set absolute level quantities (0
removes the level), `SequenceGap` invalidates the book and `Resynced` validates it. It does
no sequencing of its own: the sequencer decides what is applied.

Crossed books. Once valid, the book is checked after every apply: best bid < best ask.
A correctly synchronised Binance book is never crossed after a whole event is applied;
in the 2024-08-08 capture this holds after every one of the 64,393 valid applies on
the four streams (and the top of book equals Binance's own bookTicker whenever both carry
the same update id), so a crossed valid book is treated as a *data* fault, not a bug:
``crossed_policy="invalidate"`` (default) marks the book invalid until the next
snapshot, which is what Binance's guide prescribes for any inconsistency ("initialize
the process from step 3"); ``"raise"`` turns it into `BookCrossedError` for strict
replays. The book is never silently "repaired" by deleting levels.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal

from sortedcontainers import SortedDict  # type: ignore[import-untyped]

from bastion.feeds.binance import BookDelta, BookSnapshot, Level, Resynced, SequenceGap
from bastion.feeds.errors import FeedError

__all__ = ["BookCrossedError", "LocalBook"]

levels_per_side_max_default: Final = 200_000
"""Hard cap on price levels per side; a real BTC book holds a few thousand."""

CrossedPolicy = Literal["invalidate", "raise"]


class BookCrossedError(FeedError):
    """A valid book became crossed (best bid >= best ask) after an apply."""


class LocalBook:
    """L2 book of one symbol: price_ticks -> qty_lots per side (`SortedDict`).

    Args:
        venue: venue label the records must carry.
        symbol: symbol the records must carry.
        crossed_policy: what to do when a valid book crosses (see module docstring).
        levels_per_side_max: bound on levels per side; exceeding it is a data fault and
            raises `FeedError`.
    """

    def __init__(
        self,
        venue: str,
        symbol: str,
        *,
        crossed_policy: CrossedPolicy = "invalidate",
        levels_per_side_max: int = levels_per_side_max_default,
    ) -> None:
        assert levels_per_side_max > 0
        self.venue = venue
        self.symbol = symbol
        self.crossed_policy: CrossedPolicy = crossed_policy
        self.levels_per_side_max = levels_per_side_max
        self.is_valid = False
        self.update_id: int | None = None
        self.crossed_count = 0
        self._bids: SortedDict[int, int] = SortedDict()
        self._asks: SortedDict[int, int] = SortedDict()

    def apply(self, record: BookSnapshot | BookDelta | SequenceGap | Resynced) -> None:
        """Apply one synchronised book record (see module docstring for semantics).

        Raises:
            BookCrossedError: crossed after apply while valid and policy is ``"raise"``.
            FeedError: a side would exceed ``levels_per_side_max``.
        """
        assert record.venue == self.venue and record.symbol == self.symbol, record
        if isinstance(record, BookDelta):
            self._set_levels(self._bids, record.bids)
            self._set_levels(self._asks, record.asks)
            self.update_id = record.final_update_id
        elif isinstance(record, BookSnapshot):
            self._bids.clear()
            self._asks.clear()
            self._set_levels(self._bids, record.bids)
            self._set_levels(self._asks, record.asks)
            self.update_id = record.last_update_id
            self.is_valid = False  # valid once a diff bridges it (Resynced)
        elif isinstance(record, Resynced):
            assert self.update_id == record.final_update_id, (self.update_id, record)
            self.is_valid = True
        else:
            assert isinstance(record, SequenceGap)
            self.is_valid = False
        if self.is_valid:
            self._check_uncrossed()

    def _set_levels(self, side: SortedDict[int, int], levels: tuple[Level, ...]) -> None:
        for price_ticks, qty_lots in levels:  # bounded by the record's size
            assert price_ticks > 0 and qty_lots >= 0
            if qty_lots == 0:
                side.pop(price_ticks, None)  # removing an unknown level is normal (Binance rule 9)
            else:
                side[price_ticks] = qty_lots
        if len(side) > self.levels_per_side_max:
            raise FeedError(f"{self.symbol}: more than {self.levels_per_side_max} levels on one side")

    def _check_uncrossed(self) -> None:
        bid = self.best_bid()
        ask = self.best_ask()
        if bid is None or ask is None or bid[0] < ask[0]:
            return
        self.crossed_count += 1
        if self.crossed_policy == "raise":
            raise BookCrossedError(f"{self.symbol} crossed at update {self.update_id}: bid {bid} >= ask {ask}")
        self.is_valid = False

    def best_bid(self) -> Level | None:
        """Highest bid ``(price_ticks, qty_lots)``, or ``None`` if the side is empty.

        Meaningful only while `is_valid`; the levels are kept while invalid for inspection.
        """
        if not self._bids:
            return None
        price_ticks, qty_lots = self._bids.peekitem(-1)
        return (price_ticks, qty_lots)

    def best_ask(self) -> Level | None:
        """Lowest ask ``(price_ticks, qty_lots)``, or ``None`` if the side is empty."""
        if not self._asks:
            return None
        price_ticks, qty_lots = self._asks.peekitem(0)
        return (price_ticks, qty_lots)

    def depth(self, levels_max: int) -> tuple[list[Level], list[Level]]:
        """Top ``levels_max`` levels per side, best first: ``(bids desc, asks asc)``."""
        assert levels_max >= 0
        bids_count = min(levels_max, len(self._bids))
        asks_count = min(levels_max, len(self._asks))
        bids = [self._bids.peekitem(-1 - i) for i in range(bids_count)]
        asks = [self._asks.peekitem(i) for i in range(asks_count)]
        return bids, asks

    def level_counts(self) -> tuple[int, int]:
        """Number of ``(bid, ask)`` levels held."""
        return len(self._bids), len(self._asks)

    def state_hash(self) -> str:
        """SHA-256 over (update_id, every level) -- equal books hash equal."""
        digest = hashlib.sha256()
        digest.update(f"{self.venue}|{self.symbol}|{self.update_id}|".encode())
        for side_tag, side in ((b"B", self._bids), (b"A", self._asks)):
            digest.update(side_tag)
            for price_ticks, qty_lots in side.items():
                digest.update(f"{price_ticks}:{qty_lots};".encode())
        return digest.hexdigest()
