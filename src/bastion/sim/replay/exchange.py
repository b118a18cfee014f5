"""The replay's handle on the journaled venue: stamps commands at capture time and routes events.

Every command of a replay goes through :meth:`Exchange.submit`, which sequences it at
``max(capture time, engine time)`` (the capture's receive clock is the engine clock; a record
that arrives a few µs out of order — buffered depth diffs emitted after their snapshot — is stamped
at the engine's current time instead of going back), journals it through
:meth:`bastion.venue.Venue.submit_sequenced` and hands the resulting events to the observers that
need them (book mirror, risk monitor, recorder). Observers only read events; they never change
engine state except by submitting further commands through this class, so the journal is the
complete input of the run and replaying it from seq 1 reproduces the state hash.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from bastion.core.commands import Command, Sequenced
from bastion.core.engine import Engine
from bastion.core.events import CommandRejected, Event, TradeExecuted
from bastion.core.rejects import RejectCode
from bastion.venue import Venue

__all__ = ["Exchange", "EventObserver"]

EventObserver = Callable[[list[Event]], None]
client_order_id_max = 2**63 - 1


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

    def submit(self, timestamp_ns: int, command: Command) -> list[Event]:
        """Sequence, journal and apply ``command`` at ``max(timestamp_ns, engine time)``.

        Returns:
            The events it caused (also passed to every observer).
        """
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
