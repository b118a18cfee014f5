"""The input journal: append-only, hash-chained, fsync'd with group commit; snapshots; recovery.

The journal stores opaque payloads (the venue stores ``encode_sequenced`` bytes); record framing and
the hash chain are pure (:mod:`bastion.journal.records`), file I/O is in :mod:`bastion.journal.file`.
"""

from bastion.journal.errors import (
    FaultReason,
    JournalCorruptError,
    JournalError,
    JournalIOError,
    JournalLockedError,
    JournalTailCorruptError,
    RecoveryError,
    SnapshotCorruptError,
)
from bastion.journal.file import FsyncPolicy, JournalReader, JournalWriter
from bastion.journal.recovery import RecoveryResult, recover
from bastion.journal.snapshot import Snapshot, list_snapshots, load_snapshot, write_snapshot

__all__ = [
    "FaultReason", "FsyncPolicy", "JournalCorruptError", "JournalError", "JournalIOError", "JournalLockedError",
    "JournalReader", "JournalTailCorruptError", "JournalWriter", "RecoveryError", "RecoveryResult", "Snapshot", "SnapshotCorruptError",
    "list_snapshots", "load_snapshot", "recover", "write_snapshot",
]
