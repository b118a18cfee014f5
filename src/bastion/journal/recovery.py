"""Crash recovery: newest verified snapshot + replay of the journal tail.

State = replay(snapshot, journal tail) (ARCHITECTURE.md, principle 2; exchange-core's
``lastKnownStateFromJournal``). A snapshot is used only if all of these hold, newest first:

1. its file verifies (:func:`~bastion.journal.snapshot.load_snapshot`);
2. the journal contains its seq, and the journal's chain value after that seq equals the snapshot's
   ``chain_head`` (the snapshot belongs to *this* history);
3. ``state_hash(restore(state_bytes)) == state_hash`` stored in it (the engine re-derives the hash).

A rejected snapshot is reported with its reason and the next older one is tried; with none left the
state starts from ``empty()`` and the whole journal is replayed. The journal is opened read-only:
a torn tail is replayed up to (not including) and reported, never truncated here; opening a
:class:`~bastion.journal.file.JournalWriter` truncates it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Generic, TypeVar

from bastion.journal.errors import RecoveryError, SnapshotCorruptError
from bastion.journal.file import JournalReader
from bastion.journal.records import ChainHead, JournalPosition, ScanSummary, TornTail
from bastion.journal.snapshot import list_snapshots, load_snapshot, snapshot_seq

__all__ = ["SNAPSHOTS_TRIED_MAX", "RecoveryResult", "recover"]

#: Newest snapshots considered before falling back to a full replay.
SNAPSHOTS_TRIED_MAX: Final = 64

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class RecoveryResult(Generic[S]):
    """Outcome of :func:`recover`.

    Attributes:
        state: the rebuilt state (after the journal's last valid record).
        last_seq: seq of the last record applied (== journal head seq).
        snapshot_used: the snapshot restored, or ``None`` for a replay from ``empty()``.
        snapshots_rejected: (path, reason) for each newer snapshot that failed a check.
        replayed_records: journal records applied after the snapshot.
        head: journal head (seq, chain) the state corresponds to.
        torn_tail: the journal's torn tail (not replayed), if any.
    """

    state: S
    last_seq: int
    snapshot_used: Path | None
    snapshots_rejected: list[tuple[Path, str]]
    replayed_records: int
    head: ChainHead
    torn_tail: TornTail | None


@dataclass(frozen=True, slots=True)
class _Restored(Generic[S]):
    state: S
    position: JournalPosition


def _try_snapshot(
    path: Path,
    summary: ScanSummary,
    restore: Callable[[bytes], S],
    state_hash: Callable[[S], bytes],
) -> _Restored[S] | str:
    """Restore the snapshot at ``path`` if it passes every check, else return why not."""
    try:
        snapshot = load_snapshot(path)
    except SnapshotCorruptError as exc:
        return f"corrupt: {exc.reason}"
    head_seq = summary.end.seq
    if snapshot.seq > head_seq:
        return f"snapshot seq {snapshot.seq} is beyond the journal head {head_seq}"
    position = summary.positions.get(snapshot.seq)
    if position is None:
        return f"snapshot seq {snapshot.seq} precedes this journal segment"
    if position.chain != snapshot.chain_head:
        return f"chain head mismatch at seq {snapshot.seq}: not a state of this journal"
    try:
        state = restore(snapshot.state_bytes)
    except AssertionError:
        raise
    except Exception as exc:  # noqa: BLE001 - an engine decode error rejects the snapshot
        return f"restore failed: {exc!r}"
    if state_hash(state) != snapshot.state_hash:
        return "state hash mismatch after restore"
    return _Restored(state, position)


def recover(
    journal_path: str | os.PathLike[str],
    snapshot_dir: str | os.PathLike[str],
    restore: Callable[[bytes], S],
    apply: Callable[[S, bytes], None],
    state_hash: Callable[[S], bytes],
    empty: Callable[[], S],
    *,
    snapshots_tried_max: int = SNAPSHOTS_TRIED_MAX,
    repair_tail: bool = False,
) -> RecoveryResult[S]:
    """Rebuild state from the newest valid snapshot plus the journal tail.

    Args:
        journal_path: the journal file (one segment).
        snapshot_dir: directory of ``snapshot-*.bin`` files (may be missing: no snapshots).
        restore: decode snapshot state bytes into a state; raising rejects the snapshot.
        apply: apply one journal payload to the state in place (must be deterministic).
        state_hash: canonical hash of a state (compared byte-for-byte with the stored hash).
        empty: the state before seq 1.
        snapshots_tried_max: newest snapshots considered (older ones are ignored).
        repair_tail: replay up to a complete-but-failing final record instead of raising
            :class:`~bastion.journal.errors.JournalTailCorruptError` (an operator decision).

    Returns:
        :class:`RecoveryResult`; check ``snapshots_rejected`` (a snapshot beyond the journal head
        means the journal lost records that were durable when the snapshot was taken).

    Raises:
        JournalTailCorruptError: the final record is complete but fails verification (not torn).
        JournalCorruptError: the journal is corrupt before its tail.
        RecoveryError: no snapshot is usable and the journal does not start at seq 1.
        JournalIOError: the journal cannot be read.
    """
    assert snapshots_tried_max >= 0
    candidates = list_snapshots(snapshot_dir)[:snapshots_tried_max]
    with JournalReader(journal_path, repair_tail=repair_tail) as reader:
        wanted = {seq for seq in map(snapshot_seq, candidates) if seq is not None}
        summary = reader.scan(wanted)
        rejected: list[tuple[Path, str]] = []
        restored: _Restored[S] | None = None
        snapshot_used: Path | None = None
        for path in candidates:
            outcome = _try_snapshot(path, summary, restore, state_hash)
            if isinstance(outcome, str):
                rejected.append((path, outcome))
                continue
            restored, snapshot_used = outcome, path
            break
        if restored is None:
            if reader.header.first_seq != 1:
                raise RecoveryError(
                    f"{journal_path}: no usable snapshot and the journal starts at seq "
                    f"{reader.header.first_seq}, so the state before it is unknown"
                )
            restored = _Restored(empty(), reader.header.start)
        state = restored.state
        replayed = 0
        last = restored.position.head
        for record in reader.records(restored.position):
            apply(state, record.payload)
            replayed += 1
            last = ChainHead(record.seq, record.chain)
        assert last == summary.end.head, "journal changed between verification and replay"
        assert replayed == summary.end.seq - restored.position.seq
    return RecoveryResult(
        state=state,
        last_seq=last.seq,
        snapshot_used=snapshot_used,
        snapshots_rejected=rejected,
        replayed_records=replayed,
        head=last,
        torn_tail=summary.torn_tail,
    )
