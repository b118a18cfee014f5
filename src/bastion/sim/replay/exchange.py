"""The replay's handle on the journaled venue: stamps commands at capture time and routes events.

Every command of a replay goes through :meth:`Exchange.submit`, which sequences it at
``max(capture time, engine time)`` (the capture's receive clock is the engine clock; a record
that arrives a few µs out of order — buffered depth diffs emitted after their snapshot — is stamped
at the engine's current time instead of going back), journals it through
:meth:`bastion.venue.Venue.submit_sequenced` and hands the resulting events to the observers that
need them (book mirror, risk monitor, recorder). Observers only read events; they never change
engine state except by submitting further commands through this class, so the journal is the
complete input of the run and replaying it from seq 1 reproduces the state hash.

**Batch markets** (:meth:`Exchange.enable_batch`, after the replay switched the instrument to frequent
batch auctions): the engine clears a batch during the first command stamped at or after its boundary.
So that every clearing happens *at* its boundary, :meth:`Exchange.submit` first sends a ``Heartbeat``
stamped exactly on each boundary that has something to clear (the batch book is dirty: an order
arrived, or the mark moved the collar) and lies before the command's time; the heartbeat's own
aftermath (a liquidation order the risk engine places after the clearing) dirties the next batch, so
the loop runs on, one boundary at a time, up to the command. Boundaries with nothing new are skipped
(they clear nothing: ``bastion.core.integrity.batch``). :meth:`Exchange.settle` lets the open batch
clear now (a heartbeat on its boundary, moving engine time there): the replay loops call it where a
continuous market would have traded at once and the next step depends on the result. Both are bounded
(one heartbeat per boundary passed) and a function of the command stream alone, so deterministic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from bastion.core.commands import Command, Heartbeat, Sequenced
from bastion.core.engine import Engine
from bastion.core.events import AuctionCleared, CommandRejected, Event, TradeExecuted
from bastion.core.integrity.states import MarketState
from bastion.core.rejects import RejectCode
from bastion.venue import Venue

__all__ = ["Exchange", "EventObserver"]

EventObserver = Callable[[list[Event]], None]
client_order_id_max = 2**63 - 1
boundaries_per_submit_max = 10_000_000
"""Most batch boundaries one :meth:`Exchange.submit` may pass with heartbeats (a bug guard: 115 days of
1 s batches; the loops send a command at least every index tick)."""


class Exchange:
    """Sequencer shell around a :class:`Venue` for one replay.

    Args:
        venue: an open, empty venue (journal at seq 0).
        commit_every: commit (group fsync) after this many commands.
    """

    def __init__(self, venue: Venue, commit_every: int) -> None:
        assert venue.engine.seq == 0, "replays start from a fresh venue"
        assert commit_every >= 1
        self.venue = venue
        self.engine: Engine = venue.engine
        self.commit_every = commit_every
        self.commands = 0
        self.events = 0
        self.events_by_type: Counter[str] = Counter()
        self.rejects_by_code: Counter[str] = Counter()
        self.commands_by_type: Counter[str] = Counter()
        self.fills = 0
        self.volume_lots = 0
        self.notional_tick_lots = 0  # sum of price_ticks * qty_lots (x atoms_per_tick_lot = atoms)
        self.last_price_ticks: int | None = None
        self._observers: list[EventObserver] = []
        self._client_ids: dict[int, int] = {}
        self.batch_instrument_id: int | None = None  # set by enable_batch
        self.heartbeats = 0  # boundary heartbeats sent (batch markets)
        self.clearings = 0  # AuctionCleared events (call-auction uncrosses and batch clearings)
        self.batch_fills = 0  # TradeExecuted with taker_side 0 (no aggressor: auction or batch fills)

    def observe(self, observer: EventObserver) -> None:
        """Register a callback that sees the events of every later command, in order."""
        self._observers.append(observer)

    @property
    def now_ns(self) -> int:
        return self.engine.now_ns

    def next_client_order_id(self, account_id: int) -> int:
        """A fresh client order id for ``account_id`` (1, 2, 3, ... per account)."""
        value = self._client_ids.get(account_id, 0) + 1
        assert value <= client_order_id_max
        self._client_ids[account_id] = value
        return value

    def enable_batch(self, instrument_id: int) -> None:
        """From now on ``instrument_id`` is a batch market: pass its boundaries with heartbeats (module
        docstring). Call after its ``MatchingModeSet``."""
        assert self.engine.integ[instrument_id].batch_book is not None, "not a batch market"
        self.batch_instrument_id = instrument_id

    def _due_boundary(self) -> int | None:
        """The boundary of the open batch when it has something to clear and will clear (ACTIVE market,
        kill switch off), else None."""
        iid = self.batch_instrument_id
        if iid is None:
            return None
        m = self.engine.integ[iid]
        book = m.batch_book
        if (book is None or not book.dirty or m.status.state != MarketState.ACTIVE
                or self.engine.kill_switch_engaged):
            return None
        boundary: int = book.boundary_ns(book.open_index)
        return boundary

    def pass_boundaries(self, until_ns: int, *, inclusive: bool = False) -> None:
        """Heartbeats on every boundary with something to clear before ``until_ns`` (or at it, with
        ``inclusive``); see the module docstring."""
        for _ in range(boundaries_per_submit_max):
            boundary = self._due_boundary()
            if boundary is None or boundary > until_ns or (boundary == until_ns and not inclusive):
                return
            self._apply(boundary, Heartbeat())
            self.heartbeats += 1
        raise AssertionError(f"more than {boundaries_per_submit_max} batch boundaries before {until_ns}")

    def settle(self) -> None:
        """Let the open batch clear now: a heartbeat on its boundary if it has something to clear (engine
        time moves to that boundary). No-op in a continuous market."""
        boundary = self._due_boundary()
        if boundary is not None:
            self.pass_boundaries(boundary, inclusive=True)

    def submit(self, timestamp_ns: int, command: Command) -> list[Event]:
        """Sequence, journal and apply ``command`` at ``max(timestamp_ns, engine time)`` (in a batch market
        after the heartbeats of the boundaries before it: module docstring).

        Returns:
            The events it caused (also passed to every observer).
        """
        if self.batch_instrument_id is not None:
            self.pass_boundaries(timestamp_ns)
        return self._apply(timestamp_ns, command)

    def _apply(self, timestamp_ns: int, command: Command) -> list[Event]:
        engine = self.engine
        item = Sequenced(engine.seq + 1, max(timestamp_ns, engine.now_ns), command)
        events = self.venue.submit_sequenced(item)
        assert engine.seq == item.seq
        self.commands += 1
        self.commands_by_type[type(command).__name__] += 1
        self.events += len(events)
        for event in events:
            kind = type(event)
            self.events_by_type[kind.__name__] += 1
            if kind is TradeExecuted:
                assert isinstance(event, TradeExecuted)
                self.fills += 1
                self.volume_lots += event.qty_lots
                self.notional_tick_lots += event.price_ticks * event.qty_lots
                self.last_price_ticks = event.price_ticks
                if event.taker_side == 0:
                    self.batch_fills += 1
            elif kind is AuctionCleared:
                self.clearings += 1
            elif kind is CommandRejected:
                assert isinstance(event, CommandRejected)
                self.rejects_by_code[_reject_name(event.code)] += 1
        for observer in self._observers:
            observer(events)
        if self.commands % self.commit_every == 0:
            self.venue.commit()
        return events


def _reject_name(code: int) -> str:
    try:
        return RejectCode(code).name
    except ValueError:
        return f"code_{code}"
