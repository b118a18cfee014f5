"""The venue process (shell): sequencer + write-ahead input journal + engine + output log + snapshots.

``Venue.open(dir)`` recovers the state from the newest valid snapshot plus the journal tail (a corrupt
snapshot falls back to an older one; a torn journal tail is cut), reconciles the output log with what
replaying that tail produced (a torn output-log tail is cut and rebuilt), then accepts commands:

* :meth:`Venue.submit` stamps a command (seq = last + 1, ``timestamp_ns`` from the injected clock, never
  decreasing), appends it to the journal, applies it to the engine and appends its events to the
  output log;
* :meth:`Venue.commit` makes the appended commands durable (journal write + fsync per policy), then
  their events (``events.bin`` write + fsync), then signs a checkpoint when at least
  ``checkpoint_every_events`` leaves were added since the last one. A command is *acknowledged* only
  when ``commit()`` has returned a seq >= its own: callers must not release its events before that
  (LMAX-style output gating).
* :meth:`Venue.close` commits and signs a final checkpoint (if the log grew since the last one).

The engine always executes the command as decoded from its journal bytes, never the caller's object,
and a command whose encoding does not decode back (a float or an int beyond 64 bits where an int
belongs) is refused with :class:`CommandNotJournalableError` before anything is journaled: otherwise
the journal could hold a record that replay cannot decode, and live and replayed execution could
differ.

Directory layout (details in :mod:`bastion.audit.layout`): ``venue.toml`` (the config, written at
creation), ``venue.key`` / ``venue.pub`` (the Ed25519 log key, created on first open, 0600),
``journal.bin`` (input journal), ``events.bin`` (output log, :mod:`bastion.audit.outlog`),
``snapshots/snapshot-<seq>.bin`` + ``.outlog`` (state and output-log position),
``checkpoints/checkpoint-<seq>.txt`` + ``checkpoint.txt`` (C2SP signed checkpoints: origin = venue
name, tree size, root, state hash, journal head seq + chain).

Checkpoints are only signed when the output log grew: two checkpoints of one tree size that differ in
their journal line would read as a split view to :func:`bastion.audit.checkpoint.check_consistent`, so
commands that produce no events (heartbeats) after the last event are covered by the next checkpoint.

Output-log recovery rules (never silent repair of attested data): a missing ``events.bin`` is rebuilt
by a full replay of the journal; a torn final record is cut and rebuilt from the recovery replay;
anything else that contradicts re-execution, the root stored beside the snapshot, or the newest signed
checkpoint raises :class:`~bastion.audit.outlog.OutputLogCorruptError` (remedy: ``bastion verify``
the directory; deleting ``events.bin`` makes the next open rebuild it from the journal).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from bastion.audit.checkpoint import Checkpoint, CheckpointError, VenueKey, open_checkpoint, sign_checkpoint
from bastion.audit.layout import (
    CHECKPOINT_LATEST,
    EVENTS_NAME,
    JOURNAL_NAME,
    SNAPSHOT_DIR,
    LayoutError,
    OutlogMark,
    journal_id_for,
    load_or_create_key,
    read_outlog_mark,
    store_config,
    write_checkpoint,
    write_outlog_mark,
)
from bastion.audit.merkle import EMPTY_ROOT
from bastion.audit.outlog import (
    OutlogRecovery,
    OutputLogCorruptError,
    OutputLogWriter,
    leaves_of,
    recover_output_log,
)
from bastion.core.commands import Command, Sequenced, decode_sequenced, encode_sequenced
from bastion.core.engine import Engine
from bastion.core.events import CommandRejected, Event
from bastion.core.rejects import RejectCode
from bastion.core.instruments import VenueConfig
from bastion.journal.file import FsyncPolicy, JournalReader, JournalWriter
from bastion.journal.recovery import RecoveryResult, recover
from bastion.journal.snapshot import snapshot_seq, write_snapshot

__all__ = [
    "CHECKPOINT_EVERY_EVENTS_DEFAULT",
    "CommandNotJournalableError",
    "EVENTS_NAME",
    "JOURNAL_NAME",
    "SNAPSHOT_DIR",
    "Venue",
    "VenueRecovery",
    "apply_payload",
    "replay_journal",
]

#: Default cadence of signed checkpoints, in output-log leaves (events).
CHECKPOINT_EVERY_EVENTS_DEFAULT = 10_000


class CommandNotJournalableError(ValueError):
    """A command whose journal encoding does not decode back to a command; nothing was journaled."""


def apply_payload(engine: Engine, payload: bytes) -> list[Event]:
    """Decode one journal payload and apply it (the replay step shared by recovery and verification)."""
    return engine.apply(decode_sequenced(payload))


def _gate_rejection(command: object) -> CommandRejected:
    """The rejection of a command that cannot be journaled (see :meth:`Venue.submit`)."""
    config = getattr(command, "__struct_config__", None)
    tag = config.tag if config is not None and isinstance(config.tag, str) else type(command).__name__
    values = [getattr(command, f) for f in getattr(command, "__struct_fields__", ())]
    code = RejectCode.field_type_invalid
    if any(type(v) is int and not -(2**63) <= v < 2**64 for v in values):
        code = RejectCode.field_value_out_of_range

    def small_int(name: str) -> int:
        value = getattr(command, name, 0)
        return value if type(value) is int and 0 <= value < 2**63 else 0

    return CommandRejected(tag, small_int("account_id") or small_int("from_account_id"), small_int("client_order_id"),
                           code)


@dataclass(frozen=True, slots=True)
class VenueRecovery:
    """What opening a venue directory found: the seq recovered to, the snapshot used (if any), the
    snapshots rejected with reasons, records replayed, the torn tail cut from the journal (bytes), and
    for the output log: leaves kept, leaves re-derived and appended, torn bytes cut, and whether it
    was rebuilt by a full replay (missing file or no output-log mark beside the snapshot)."""

    last_seq: int
    snapshot_used: Path | None
    snapshots_rejected: list[tuple[Path, str]]
    replayed_records: int
    torn_tail_bytes: int
    outlog_leaves_kept: int = 0
    outlog_leaves_appended: int = 0
    outlog_torn_tail_bytes: int = 0
    outlog_full_replay: bool = False


def _newest_checkpoint(directory: Path, key: VenueKey) -> Checkpoint | None:
    """The venue's own newest signed checkpoint (``checkpoint.txt``), verified with its key."""
    path = directory / CHECKPOINT_LATEST
    if not path.exists():
        return None
    try:
        return open_checkpoint(path.read_bytes(), key.verifier)
    except CheckpointError as exc:
        raise LayoutError(f"{path}: not a valid checkpoint of this venue: {exc}") from exc


def _replay_leaves(config: VenueConfig, journal_path: Path, expect_state: bytes) -> Iterator[bytes]:
    """Every output-log leaf of the journal, by a full replay from seq 1 on a fresh engine."""
    engine = Engine(config)
    with JournalReader(journal_path) as reader:
        for record in reader.records():
            item = decode_sequenced(record.payload)
            yield from leaves_of(item.seq, engine.apply(item))
    assert engine.state_hash() == expect_state, "full replay and snapshot recovery disagree"


class Venue:
    """One engine process owning a set of markets (see module docstring)."""

    def __init__(self, config: VenueConfig, directory: Path, engine: Engine, writer: JournalWriter,
                 recovery: VenueRecovery, clock_ns: Callable[[], int], *, outlog: OutputLogWriter,
                 key: VenueKey, checkpoint: Checkpoint | None, checkpoint_every_events: int) -> None:
        assert checkpoint_every_events >= 1
        self.config = config
        self.directory = directory
        self.engine = engine
        self.writer = writer
        self.recovery = recovery
        self.outlog = outlog
        self.key = key
        self.last_checkpoint = checkpoint
        self.checkpoint_every_events = checkpoint_every_events
        self._clock_ns = clock_ns
        self._closed = False

    @classmethod
    def open(cls, config: VenueConfig, directory: str | Path, *, fsync_policy: FsyncPolicy = FsyncPolicy.GROUP,
             group_records_max: int = 256, clock_ns: Callable[[], int] | None = None,
             check_invariants: bool = False, checkpoint_every_events: int = CHECKPOINT_EVERY_EVENTS_DEFAULT,
             origin: str | None = None, config_path: str | Path | None = None,
             repair_journal_tail: bool = False) -> Venue:
        """Open or create a venue directory, recovering state from snapshot + journal and the output log.

        Args:
            config: the venue configuration (stored as ``venue.toml`` at creation, compared afterwards).
            directory: the venue directory (created if missing).
            fsync_policy, group_records_max: journal durability (see :class:`FsyncPolicy`); the output
                log follows the same policy.
            clock_ns: the sequencer clock (defaults to ``time.time_ns``; the engine never reads it).
            check_invariants: full invariant check after every command (tests).
            checkpoint_every_events: sign a checkpoint at a commit once this many leaves were added.
            origin: checkpoint origin and key name; defaults to the venue name ``config.name``.
            config_path: the TOML file ``config`` was loaded from, copied as ``venue.toml`` at creation
                (default: ``venue.toml`` is generated from ``config``).
            repair_journal_tail: cut a final journal record that is complete but fails verification
                (after a :class:`~bastion.journal.errors.JournalTailCorruptError`; an operator decision:
                that record may have been acknowledged). The cut is in ``recovery.torn_tail_bytes``.

        Raises:
            JournalTailCorruptError: the journal's final record is complete but fails verification.
            JournalCorruptError: the journal is damaged before its tail (never silently truncated).
            RecoveryError: no usable snapshot and the journal does not start at seq 1.
            OutputLogCorruptError: ``events.bin`` contradicts re-execution or a recorded root.
            LayoutError: ``venue.toml`` / ``venue.pub`` / ``checkpoint.txt`` belong to something else.
            KeyFormatError: the origin is not usable as a key name (spaces, '+').
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        origin = config.name if origin is None else origin
        store_config(directory, config, None if config_path is None else Path(config_path))
        key = load_or_create_key(directory, origin)
        journal_path = directory / JOURNAL_NAME
        tail_leaves: list[bytes] = []

        def apply(engine: Engine, payload: bytes) -> None:
            item = decode_sequenced(payload)
            tail_leaves.extend(leaves_of(item.seq, engine.apply(item)))

        result: RecoveryResult[Engine] | None = None
        if journal_path.exists():
            result = recover(
                journal_path,
                directory / SNAPSHOT_DIR,
                restore=lambda data: Engine.restore(config, data, check_invariants=check_invariants),
                apply=apply,
                state_hash=lambda e: e.state_hash(),
                empty=lambda: Engine(config, check_invariants=check_invariants),
                repair_tail=repair_journal_tail,
            )
        engine = result.state if result is not None else Engine(config, check_invariants=check_invariants)
        journal_id = None if result is not None else journal_id_for(key.verifier)  # set at creation only
        writer = JournalWriter.open(journal_path, fsync_policy, group_records_max=group_records_max,
                                    journal_id=journal_id, repair_tail=repair_journal_tail)
        try:
            assert writer.head.seq == engine.seq, "journal head and recovered state disagree"
            checkpoint = _newest_checkpoint(directory, key)
            if checkpoint is not None and checkpoint.journal_seq > engine.seq:
                raise LayoutError(f"the newest checkpoint covers journal seq {checkpoint.journal_seq}, beyond the "
                                  f"recovered journal head {engine.seq}: the journal lost acknowledged records")
            snap_seq = snapshot_seq(result.snapshot_used) if result and result.snapshot_used else 0
            assert snap_seq is not None
            outlog, full = cls._recover_outlog(config, directory, writer, engine, snap_seq, tail_leaves,
                                               checkpoint, fsync_policy)
        except BaseException:
            writer.close()
            raise
        recovery = VenueRecovery(
            last_seq=engine.seq,
            snapshot_used=result.snapshot_used if result else None,
            snapshots_rejected=result.snapshots_rejected if result else [],
            replayed_records=result.replayed_records if result else 0,
            torn_tail_bytes=(result.torn_tail.bytes_dropped if result and result.torn_tail else 0),
            outlog_leaves_kept=outlog.leaves_kept,
            outlog_leaves_appended=outlog.leaves_appended,
            outlog_torn_tail_bytes=outlog.torn_tail_bytes,
            outlog_full_replay=full,
        )
        return cls(config, directory, engine, writer, recovery, clock_ns or time.time_ns, outlog=outlog.writer,
                   key=key, checkpoint=checkpoint, checkpoint_every_events=checkpoint_every_events)

    @staticmethod
    def _recover_outlog(config: VenueConfig, directory: Path, writer: JournalWriter, engine: Engine,
                        snap_seq: int, tail_leaves: list[bytes], checkpoint: Checkpoint | None,
                        fsync_policy: FsyncPolicy) -> tuple[OutlogRecovery, bool]:
        """Reconcile ``events.bin`` (fast path: snapshot mark + recovery tail; else full replay)."""
        events_path = directory / EVENTS_NAME
        mark = read_outlog_mark(directory / SNAPSHOT_DIR, snap_seq) if snap_seq else OutlogMark(0, 0, EMPTY_ROOT, 0)
        full = mark is None or (not events_path.exists() and mark.tree_size > 0)
        if full:
            mark = OutlogMark(0, 0, EMPTY_ROOT, 0)
            derived = _replay_leaves(config, directory / JOURNAL_NAME, engine.state_hash())
        else:
            derived = iter(tail_leaves)
        assert mark is not None
        expected = [] if checkpoint is None else [
            (checkpoint.tree_size, checkpoint.root_hash, f"the signed checkpoint at journal seq {checkpoint.journal_seq}")
        ]
        outcome = recover_output_log(events_path, writer.header.journal_id, prefix_size=mark.tree_size,
                                     prefix_root=mark.root, derived=derived, expected_roots=expected,
                                     sync=fsync_policy is not FsyncPolicy.NONE)
        return outcome, full

    # ------------------------------------------------------------------ commands

    def submit(self, command: Command, timestamp_ns: int | None = None) -> tuple[Sequenced, list[Event]]:
        """Sequence, journal (buffered) and apply one command. Not acknowledged until :meth:`commit`.

        Never raises on what a client or feed sends: a command that cannot be journaled (a float, a
        string or an int beyond 64 bits where an int belongs, or not a command at all) is refused at
        the gate, before the sequencer: nothing is journaled or applied, the returned envelope has
        ``seq`` 0 (not sequenced) and the one event is a ``CommandRejected`` with
        ``field_value_out_of_range`` (an int beyond 64 bits) or ``field_type_invalid``. Such a refusal
        is not in the output log: it is not part of the journaled history.
        """
        now = self._clock_ns() if timestamp_ns is None else timestamp_ns
        item = Sequenced(self.engine.seq + 1, max(now, self.engine.now_ns), command)
        try:
            return item, self._journal_and_apply(item)
        except CommandNotJournalableError:
            return Sequenced(0, item.timestamp_ns, command), [_gate_rejection(command)]

    def submit_sequenced(self, item: Sequenced) -> list[Event]:
        """Journal and apply an already stamped command (replays of recorded sessions).

        Raises:
            CommandNotJournalableError: the command does not survive encode/decode (nothing changes).
        """
        return self._journal_and_apply(item)

    def _journal_and_apply(self, item: Sequenced) -> list[Event]:
        # The engine executes exactly what replay will decode from the journal, never the caller's
        # object: a command whose encoding does not decode back (a float where an int belongs, an int
        # beyond 64 bits) would make the journal unreplayable, so it is refused before it is journaled.
        try:
            payload = encode_sequenced(item)
            journaled = decode_sequenced(payload)
        except (OverflowError, TypeError, msgspec.EncodeError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise CommandNotJournalableError(f"seq {item.seq}: {item.command!r} cannot be journaled: {exc}") from exc
        seq = self.writer.append(payload)
        assert seq == item.seq
        events = self.engine.apply(journaled)
        self.outlog.append_events(seq, events)
        if self.writer.last_durable_seq == seq:
            # The journal committed its full group on its own: keep the output log in step.
            self._commit_outlog()
        return events

    def commit(self) -> int:
        """Make everything submitted durable per the fsync policy; returns the last acknowledged seq.

        Order: journal (write + fsync), then output log (write + fsync), then a signed checkpoint if
        ``checkpoint_every_events`` leaves accumulated since the last one.
        """
        seq = self.writer.commit()
        self._commit_outlog()
        return seq

    def _commit_outlog(self) -> None:
        self.outlog.commit()
        last = self.last_checkpoint.tree_size if self.last_checkpoint else 0
        if self.outlog.durable_size - last >= self.checkpoint_every_events:
            self.checkpoint()

    def checkpoint(self) -> Checkpoint | None:
        """Commit, then sign and write a checkpoint of the current log head (None if the log did not grow).

        The checkpoint states: origin, tree size, root, the engine's state hash, and the journal head
        (seq, chain) after the last journaled command; all of it durable before it is signed.
        """
        self.writer.commit()
        self.outlog.commit()
        size = self.outlog.durable_size
        if size == (self.last_checkpoint.tree_size if self.last_checkpoint else 0):
            return None
        head = self.writer.durable_head
        assert head.seq == self.engine.seq, "checkpoint of state that is not journaled"
        cp = Checkpoint(origin=self.key.name, tree_size=size, root_hash=self.outlog.root(),
                        state_hash=self.engine.state_hash(), journal_seq=head.seq, journal_head=head.chain)
        write_checkpoint(self.directory, head.seq, sign_checkpoint(cp, self.key))
        self.last_checkpoint = cp
        return cp

    def snapshot(self) -> Path:
        """Commit, then write a snapshot of the current state (carrying its state hash) and, first, the
        output-log mark beside it (tree size, root, offset at the snapshot's seq)."""
        self.commit()
        head = self.writer.durable_head
        assert head.seq == self.engine.seq
        snapshot_dir = self.directory / SNAPSHOT_DIR
        write_outlog_mark(snapshot_dir, OutlogMark(head.seq, self.outlog.durable_size, self.outlog.root(),
                                                   self.outlog.offset))
        return write_snapshot(snapshot_dir, head.seq, head.chain, self.engine.snapshot(), self.engine.state_hash())

    def close(self, *, final_checkpoint: bool = True) -> None:
        """Commit what is pending, sign a final checkpoint, close the journal and the output log. Idempotent.

        Args:
            final_checkpoint: sign a checkpoint of the final state (skipped when leaving a ``with``
                block by an exception: the state is then not attested; the next open and close will).
        """
        if self._closed:
            return
        try:
            if final_checkpoint:
                self.checkpoint()
            else:
                self.writer.commit()
                self.outlog.commit()
        finally:
            self._closed = True
            try:
                self.writer.close()
            finally:
                self.outlog.close()

    def __enter__(self) -> Venue:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(final_checkpoint=exc_type is None)


def replay_journal(config: VenueConfig, journal_path: str | Path, *, check_invariants: bool = False,
                   on_record: Callable[[int], None] | None = None) -> Engine:
    """Replay a whole journal from seq 1 on a fresh engine (no snapshots) and return the engine."""
    engine = Engine(config, check_invariants=check_invariants)
    with JournalReader(journal_path) as reader:
        for record in reader.records():
            engine.apply(decode_sequenced(record.payload))
            if on_record is not None:
                on_record(record.seq)
    return engine


__all__ += ["OutputLogCorruptError"]
