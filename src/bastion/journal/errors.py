"""Exception tree for the input journal, snapshots and recovery.

All journal failures derive from :class:`JournalError`, so the shell can catch one type at the
boundary. Operating-system errors (``OSError``) are translated here and never leak raw::

    JournalError
    ├── JournalCorruptError     an on-disk journal image fails verification (never auto-repaired)
    │   └── JournalTailCorruptError   the final record is complete but fails verification (not torn)
    ├── JournalIOError          a read/write/fsync failed; a writer that raised it is poisoned
    ├── JournalLockedError      another writer holds the journal file
    ├── SnapshotCorruptError    a snapshot file fails verification
    └── RecoveryError           no consistent state can be rebuilt from snapshots + journal

Programmer errors (violated preconditions) are ``AssertionError`` or ``ValueError``, not part of the
tree: they mean a bug, and the process should stop.
"""

from __future__ import annotations

import enum

__all__ = [
    "FaultReason",
    "JournalCorruptError",
    "JournalError",
    "JournalIOError",
    "JournalLockedError",
    "JournalTailCorruptError",
    "RecoveryError",
    "SnapshotCorruptError",
]


class FaultReason(enum.Enum):
    """Why a journal record (or the file header) failed verification.

    ``TRUNCATED``, ``BAD_MAGIC``, ``BAD_HEADER_CHECKSUM`` and ``BAD_CHAIN`` can be produced by a
    crash in the middle of a write (a torn tail). The others need a record whose header checksum
    *verifies* yet says something the writer never writes, so they always mean corruption or
    tampering.
    """

    TRUNCATED = "truncated"
    BAD_MAGIC = "bad_magic"
    BAD_HEADER_CHECKSUM = "bad_header_checksum"
    BAD_VERSION = "bad_version"
    BAD_RESERVED = "bad_reserved"
    BAD_LENGTH = "bad_length"
    SEQ_MISMATCH = "seq_mismatch"
    BAD_CHAIN = "bad_chain"
    BAD_GENESIS = "bad_genesis"

    @property
    def crash_possible(self) -> bool:
        """True if a torn write (crash or power loss mid-append) can produce this fault."""
        return self in _CRASH_POSSIBLE


_CRASH_POSSIBLE = frozenset(
    {
        FaultReason.TRUNCATED,
        FaultReason.BAD_MAGIC,
        FaultReason.BAD_HEADER_CHECKSUM,
        FaultReason.BAD_CHAIN,
    }
)


class JournalError(Exception):
    """Base class of every journal, snapshot and recovery error."""


class JournalCorruptError(JournalError):
    """The journal image fails verification somewhere other than a torn tail.

    Attributes:
        reason: which check failed.
        offset: byte offset, from the start of the file, of the record (or file header) that failed.
        seq: the sequence number expected at that offset; ``None`` for the file header.
        detail: human-readable specifics (expected vs found values).
        path: the journal file, when known.
    """

    def __init__(
        self,
        reason: FaultReason,
        *,
        offset: int,
        seq: int | None,
        detail: str,
        path: str | None = None,
    ) -> None:
        self.reason = reason
        self.offset = offset
        self.seq = seq
        self.detail = detail
        self.path = path
        where = f"offset {offset}" + ("" if seq is None else f" (seq {seq})")
        prefix = "" if path is None else f"{path}: "
        super().__init__(f"{prefix}journal corrupt at {where}: {reason.value}: {detail}")

    def with_path(self, path: str) -> JournalCorruptError:
        """Return a copy of this error (same class) that names the journal file."""
        return type(self)(self.reason, offset=self.offset, seq=self.seq, detail=self.detail, path=path)


class JournalTailCorruptError(JournalCorruptError):
    """The journal's final record is complete (every byte its header says it has is present) yet fails
    verification: corruption or tampering, not a torn write.

    A crash mid-append leaves a *short* final record (the file ends inside it) or, after a power loss on
    a filesystem that extends the size before the data lands, a run of zero bytes; those are torn tails
    and are cut on open. A complete record with a bad checksum or chain may be one that was fsynced and
    acknowledged, so it is never dropped silently: opening refuses with this error (``offset`` and
    ``seq`` name the record). Pass ``repair_tail=True`` to the writer (or recovery, or
    ``Venue.open(repair_journal_tail=True)``) to cut it anyway, after checking which commands were
    acknowledged; the cut is reported in ``tail_truncation`` with ``repaired=True``.
    """


class JournalIOError(JournalError):
    """An OS-level read, write, truncate or fsync failed.

    After a failed write or fsync the page cache state is unknown ("fsyncgate"), so the writer that
    raised this refuses all further use; reopen the journal to re-verify and continue.
    """


class JournalLockedError(JournalError):
    """Another :class:`~bastion.journal.file.JournalWriter` holds the exclusive lock on the file."""


class SnapshotCorruptError(JournalError):
    """A snapshot file fails verification (size, magic, version, checksum or name/seq mismatch).

    Attributes:
        path: the snapshot file.
        reason: what failed.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: snapshot corrupt: {reason}")


class RecoveryError(JournalError):
    """No consistent state can be rebuilt (for example: no usable snapshot and the journal file is a
    continuation segment that does not start at seq 1)."""
