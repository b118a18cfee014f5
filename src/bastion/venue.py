"""The venue process (shell): sequencer + write-ahead input journal + engine + snapshots + recovery.

``Venue.open(dir)`` recovers the state from the newest valid snapshot plus the journal tail (a corrupt
snapshot falls back to an older one; a torn journal tail is cut), then accepts commands:

* :meth:`Venue.submit` stamps a command (seq = last + 1, ``timestamp_ns`` from the injected clock, never
  decreasing), appends it to the journal and applies it to the engine;
* :meth:`Venue.commit` makes the appended commands durable (one write + fsync per policy). A command is
  *acknowledged* only when ``commit()`` has returned a seq >= its own: callers must not release its
  events before that (LMAX-style output gating).

Directory layout: ``journal.bin`` (input journal), ``snapshots/snapshot-<seq>.bin``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bastion.core.commands import Command, Sequenced, decode_sequenced, encode_sequenced
from bastion.core.engine import Engine
from bastion.core.events import Event
from bastion.core.instruments import VenueConfig
from bastion.journal.file import FsyncPolicy, JournalWriter
from bastion.journal.recovery import RecoveryResult, recover
from bastion.journal.snapshot import write_snapshot

__all__ = ["Venue", "VenueRecovery", "apply_payload", "replay_journal"]

JOURNAL_NAME = "journal.bin"
SNAPSHOT_DIR = "snapshots"


def apply_payload(engine: Engine, payload: bytes) -> list[Event]:
    """Decode one journal payload and apply it (the replay step shared by recovery and verification)."""
    return engine.apply(decode_sequenced(payload))


@dataclass(frozen=True, slots=True)
class VenueRecovery:
    """What opening a venue directory found: the seq recovered to, the snapshot used (if any), the
    snapshots rejected with reasons, records replayed, and the torn tail cut from the journal (bytes)."""

    last_seq: int
    snapshot_used: Path | None
    snapshots_rejected: list[tuple[Path, str]]
    replayed_records: int
    torn_tail_bytes: int


class Venue:
    """One engine process owning a set of markets (see module docstring)."""

    def __init__(self, config: VenueConfig, directory: Path, engine: Engine, writer: JournalWriter,
                 recovery: VenueRecovery, clock_ns: Callable[[], int]) -> None:
        self.config = config
        self.directory = directory
        self.engine = engine
        self.writer = writer
        self.recovery = recovery
        self._clock_ns = clock_ns

    @classmethod
    def open(cls, config: VenueConfig, directory: str | Path, *, fsync_policy: FsyncPolicy = FsyncPolicy.GROUP,
             group_records_max: int = 256, clock_ns: Callable[[], int] | None = None,
             check_invariants: bool = False) -> Venue:
        """Open or create a venue directory, recovering state from snapshot + journal.

        Raises:
            JournalCorruptError: the journal is damaged before its tail (never silently truncated).
            RecoveryError: no usable snapshot and the journal does not start at seq 1.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        journal_path = directory / JOURNAL_NAME
        result: RecoveryResult[Engine] | None = None
        if journal_path.exists():
            result = recover(
                journal_path,
                directory / SNAPSHOT_DIR,
                restore=lambda data: Engine.restore(config, data, check_invariants=check_invariants),
                apply=apply_payload,
                state_hash=lambda e: e.state_hash(),
                empty=lambda: Engine(config, check_invariants=check_invariants),
            )
        engine = result.state if result is not None else Engine(config, check_invariants=check_invariants)
        writer = JournalWriter.open(journal_path, fsync_policy, group_records_max=group_records_max)
        assert writer.head.seq == engine.seq, "journal head and recovered state disagree"
        recovery = VenueRecovery(
            last_seq=engine.seq,
            snapshot_used=result.snapshot_used if result else None,
            snapshots_rejected=result.snapshots_rejected if result else [],
            replayed_records=result.replayed_records if result else 0,
            torn_tail_bytes=(result.torn_tail.bytes_dropped if result and result.torn_tail else 0),
        )
        return cls(config, directory, engine, writer, recovery, clock_ns or time.time_ns)

    def submit(self, command: Command, timestamp_ns: int | None = None) -> tuple[Sequenced, list[Event]]:
        """Sequence, journal (buffered) and apply one command. Not acknowledged until :meth:`commit`."""
        now = self._clock_ns() if timestamp_ns is None else timestamp_ns
        item = Sequenced(self.engine.seq + 1, max(now, self.engine.now_ns), command)
        seq = self.writer.append(encode_sequenced(item))
        assert seq == item.seq
        return item, self.engine.apply(item)

    def submit_sequenced(self, item: Sequenced) -> list[Event]:
        """Journal and apply an already stamped command (replays of recorded sessions)."""
        seq = self.writer.append(encode_sequenced(item))
        assert seq == item.seq
        return self.engine.apply(item)

    def commit(self) -> int:
        """Make everything submitted durable per the fsync policy; returns the last acknowledged seq."""
        return self.writer.commit()

    def snapshot(self) -> Path:
        """Commit, then write a snapshot of the current state (carrying its state hash)."""
        self.commit()
        head = self.writer.durable_head
        assert head.seq == self.engine.seq
        return write_snapshot(self.directory / SNAPSHOT_DIR, head.seq, head.chain, self.engine.snapshot(),
                              self.engine.state_hash())

    def close(self) -> None:
        """Commit what is pending and close the journal."""
        self.commit()
        self.writer.close()

    def __enter__(self) -> Venue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def replay_journal(config: VenueConfig, journal_path: str | Path, *, check_invariants: bool = False,
                   on_record: Callable[[int], None] | None = None) -> Engine:
    """Replay a whole journal from seq 1 on a fresh engine (no snapshots) and return the engine."""
    from bastion.journal.file import JournalReader

    engine = Engine(config, check_invariants=check_invariants)
    with JournalReader(journal_path) as reader:
        for record in reader.records():
            engine.apply(decode_sequenced(record.payload))
            if on_record is not None:
                on_record(record.seq)
    return engine
