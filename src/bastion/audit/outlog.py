"""The output log: every event of every command, as leaves of an RFC 6962 Merkle log, in ``events.bin``.

Leaf format (the bytes that are hashed as ``SHA-256(0x00 || leaf)``, RFC 6962 §2.1; integers
big-endian, as in RFC 6962's TLS encodings)::

    0   1  leaf_version   u8 = 1
    1   8  seq            u64, journal sequence number of the command that produced the event
    9   4  index          u32, position of the event among that command's events (0, 1, 2, ...)
   13   n  event          encode_event(event): canonical msgpack of the tagged event struct

Leaves appear in (seq, index) order with no gaps in ``index``; commands that produce no event (a
heartbeat with nothing to expire) contribute no leaf. The leaf is a pure function of the journal:
re-executing the journal reproduces every leaf byte for byte (that is what ``bastion verify`` checks).

File format of ``events.bin`` (integers little-endian, like the input journal)::

    file header (32 bytes)
      0   8  magic        b"BSTNEVTS"
      8   2  version      u16 = 1
     10   2  header_size  u16 = 32
     12   4  reserved     u32 = 0
     16  16  journal_id   the journal_id of journal.bin (binds this file to its journal)

    record (repeated): u32 leaf_len (13 < leaf_len <= LEAF_SIZE_MAX), then leaf_len bytes of leaf

There is no per-record checksum: every leaf is committed to by the Merkle root of each signed
checkpoint and by the root stored beside each snapshot (:class:`~bastion.audit.layout.OutlogMark`), and
a verifier re-derives each leaf from the journal. A record that runs past the end of the file (or a
zero-filled tail) is the footprint of a crash mid-write: a *torn tail*.

The venue writes the leaves of the commands it has journaled at each commit, after the journal's
fsync, then fsyncs this file (:class:`OutputLogWriter`). Recovery (:func:`recover_output_log`) keeps
the leaves that agree with re-execution, cuts a torn tail and appends what is missing.

Errors::

    OutputLogError (Exception)
    └── OutputLogCorruptError   the file contradicts re-execution or its recorded roots (names offset)
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NamedTuple

import msgspec

from bastion.audit.merkle import EMPTY_ROOT, HASH_SIZE, TREE_HEIGHT_MAX
from bastion.core.events import Event, decode_event, encode_event
from bastion.journal.file import _write_all, fsync_directory

__all__ = [
    "LEAF_HEAD",
    "LEAF_HEADER_SIZE",
    "LEAF_SIZE_MAX",
    "LEAF_VERSION",
    "OUTLOG_HEADER_SIZE",
    "OUTLOG_MAGIC",
    "Leaf",
    "LeafRecord",
    "MerkleFrontier",
    "OutlogFault",
    "OutlogRecovery",
    "OutlogScanner",
    "OutputLogCorruptError",
    "OutputLogError",
    "OutputLogWriter",
    "decode_leaf",
    "decode_outlog_header",
    "encode_leaf",
    "encode_outlog_header",
    "leaf_hash_of",
    "leaves_of",
    "recover_output_log",
]

OUTLOG_MAGIC: Final = b"BSTNEVTS"
OUTLOG_VERSION: Final = 1
OUTLOG_HEADER_SIZE: Final = 32
LEAF_VERSION: Final = 1
#: 64 KiB: an event is ~100 bytes; bounds what a corrupt length field can make a reader touch.
LEAF_SIZE_MAX: Final = 1 << 16
#: Events one command may produce, bounded by the u32 index field.
EVENTS_PER_COMMAND_MAX: Final = (1 << 32) - 1

_HEADER: Final = struct.Struct("<8sHHI16s")
LEAF_HEAD: Final = struct.Struct(">BQI")
"""Packs (leaf_version, seq, index), the 13-byte head of every leaf."""
_LEAF_HEAD = LEAF_HEAD
_LEN: Final = struct.Struct("<I")
LEAF_HEADER_SIZE: Final = _LEAF_HEAD.size
_sha256 = hashlib.sha256
_encode = msgspec.msgpack.Encoder().encode  # the same canonical encoding as events.encode_event

assert _HEADER.size == OUTLOG_HEADER_SIZE
assert LEAF_HEADER_SIZE == 13


class OutputLogError(Exception):
    """Base class of output-log errors."""


class OutputLogCorruptError(OutputLogError):
    """``events.bin`` cannot be reconciled with the journal or with a root recorded earlier.

    Attributes:
        offset: byte offset in the file of the first bad record (0 for the header).
        reason: what failed.
    """

    def __init__(self, path: Path | str, offset: int, reason: str) -> None:
        self.path = str(path)
        self.offset = offset
        self.reason = reason
        super().__init__(f"{path}: output log corrupt at offset {offset}: {reason}")


# ---------------------------------------------------------------------------------------------
# Leaves
# ---------------------------------------------------------------------------------------------


class Leaf(NamedTuple):
    """A decoded leaf: the command's seq, the event's index within the command, the event."""

    seq: int
    event_index: int
    event: Event


def encode_leaf(seq: int, index: int, event: Event) -> bytes:
    """Canonical leaf bytes of event ``index`` of command ``seq`` (layout in the module docstring)."""
    assert 1 <= seq < 1 << 64 and 0 <= index <= EVENTS_PER_COMMAND_MAX
    return _LEAF_HEAD.pack(LEAF_VERSION, seq, index) + encode_event(event)


def leaves_of(seq: int, events: Sequence[Event]) -> list[bytes]:
    """The leaves of one command's events, in order."""
    head = _LEAF_HEAD.pack
    return [head(LEAF_VERSION, seq, i) + encode_event(ev) for i, ev in enumerate(events)]


def decode_leaf(leaf: bytes) -> Leaf:
    """Parse leaf bytes.

    Raises:
        ValueError: too short, unknown leaf version, or an event that does not decode (the msgspec
            error is chained).
    """
    if len(leaf) <= LEAF_HEADER_SIZE:
        raise ValueError(f"leaf of {len(leaf)} bytes is shorter than its {LEAF_HEADER_SIZE}-byte header + event")
    version, seq, index = _LEAF_HEAD.unpack_from(leaf)
    if version != LEAF_VERSION:
        raise ValueError(f"leaf version {version} is not {LEAF_VERSION}")
    try:
        event = decode_event(bytes(leaf[LEAF_HEADER_SIZE:]))
    except Exception as exc:  # noqa: BLE001 - msgspec raises DecodeError or ValidationError
        raise ValueError(f"leaf event does not decode: {exc}") from exc
    return Leaf(seq, index, event)


def leaf_hash_of(leaf: bytes) -> bytes:
    """``SHA-256(0x00 || leaf)`` (RFC 6962 §2.1)."""
    return _sha256(b"\x00" + leaf).digest()


# ---------------------------------------------------------------------------------------------
# Compact Merkle frontier
# ---------------------------------------------------------------------------------------------


class MerkleFrontier:
    """The right edge of an append-only RFC 6962 tree: O(log n) memory, current root only.

    ``hashes`` holds the roots of the perfect subtrees that make up the tree, largest (leftmost)
    first; there is one per set bit of ``size``. Appending a leaf merges the trailing equal-height
    subtrees (one merge per trailing zero bit of the new size); the root folds them right to left,
    which is RFC 6962's split at the largest power of two (same tree as
    :class:`~bastion.audit.merkle.MerkleLog`, which keeps every node for proofs).
    """

    __slots__ = ("hashes", "size")

    def __init__(self) -> None:
        self.hashes: list[bytes] = []
        self.size = 0

    def append_leaf_hash(self, leaf_hash: bytes) -> None:
        """Append one leaf by its hash ``SHA-256(0x00 || leaf)`` (32 bytes)."""
        assert len(leaf_hash) == HASH_SIZE
        hashes = self.hashes
        hashes.append(leaf_hash)
        self.size += 1
        count = self.size
        while not count & 1:
            right = hashes.pop()
            hashes[-1] = _sha256(b"\x01" + hashes[-1] + right).digest()
            count >>= 1
        assert len(hashes) == self.size.bit_count() <= TREE_HEIGHT_MAX

    def append(self, leaf: bytes) -> None:
        """Append one leaf by its bytes."""
        self.append_leaf_hash(_sha256(b"\x00" + leaf).digest())

    def root(self) -> bytes:
        """RFC 6962 Merkle Tree Hash of all leaves appended (``SHA-256("")`` when empty)."""
        hashes = self.hashes
        if not hashes:
            return EMPTY_ROOT
        acc = hashes[-1]
        for left in reversed(hashes[:-1]):
            acc = _sha256(b"\x01" + left + acc).digest()
        return acc


# ---------------------------------------------------------------------------------------------
# File header and scanning
# ---------------------------------------------------------------------------------------------


def encode_outlog_header(journal_id: bytes) -> bytes:
    """The 32-byte file header binding ``events.bin`` to the journal ``journal_id`` (16 bytes)."""
    assert len(journal_id) == 16
    return _HEADER.pack(OUTLOG_MAGIC, OUTLOG_VERSION, OUTLOG_HEADER_SIZE, 0, journal_id)


def decode_outlog_header(image: bytes | mmap.mmap) -> bytes:
    """Check the file header and return its journal_id.

    Raises:
        ValueError: short file, bad magic, version, header size or reserved field (message says which).
    """
    if len(image) < OUTLOG_HEADER_SIZE:
        raise ValueError(f"file is {len(image)} bytes, shorter than the {OUTLOG_HEADER_SIZE}-byte header")
    magic, version, size, reserved, journal_id = _HEADER.unpack_from(image, 0)
    if magic != OUTLOG_MAGIC:
        raise ValueError(f"magic {magic!r} != {OUTLOG_MAGIC!r}")
    if version != OUTLOG_VERSION or size != OUTLOG_HEADER_SIZE or reserved != 0:
        raise ValueError(f"version/header_size/reserved = {version}/{size}/{reserved}, expected 1/32/0")
    return bytes(journal_id)


class LeafRecord(NamedTuple):
    """One framed record: where it starts in the file and its leaf bytes."""

    offset: int
    leaf: bytes


@dataclass(frozen=True, slots=True)
class OutlogFault:
    """Why scanning stopped before the end of the file.

    Attributes:
        offset: start of the record that failed to frame.
        reason: ``truncated`` (runs past the end of the file) or ``bad_length``.
        detail: specifics.
        torn: True when a crash mid-write can explain it (truncated, or only zero bytes from here on).
    """

    offset: int
    reason: str
    detail: str
    torn: bool


class OutlogScanner:
    """Iterate the framed records of an ``events.bin`` image from ``start`` (after the header).

    Iteration stops at the end of the image or at the first record that does not frame; then
    :attr:`fault` says why (None at a clean end) and :attr:`end_offset` is just past the last record
    yielded. Framing is all that is checked here; leaf contents are checked by whoever compares them.
    """

    __slots__ = ("_image", "_start", "end_offset", "fault", "records_count")

    def __init__(self, image: bytes | mmap.mmap, start: int = OUTLOG_HEADER_SIZE) -> None:
        assert OUTLOG_HEADER_SIZE <= start <= len(image)
        self._image = image
        self._start = start
        self.end_offset = start
        self.fault: OutlogFault | None = None
        self.records_count = 0

    def __iter__(self) -> Iterator[LeafRecord]:
        image = self._image
        size = len(image)
        offset = self._start
        unpack = _LEN.unpack_from
        records_max = (size - offset) // (4 + LEAF_HEADER_SIZE + 1) + 1  # each record >= 18 bytes
        try:
            for _ in range(records_max):
                if offset == size:
                    return
                if size - offset < 4:
                    self.fault = self._fault(offset, "truncated", f"{size - offset} bytes left, length needs 4")
                    return
                (length,) = unpack(image, offset)
                if not LEAF_HEADER_SIZE < length <= LEAF_SIZE_MAX:
                    detail = f"leaf_len {length} outside ({LEAF_HEADER_SIZE}, {LEAF_SIZE_MAX}]"
                    self.fault = self._fault(offset, "bad_length", detail)
                    return
                end = offset + 4 + length
                if end > size:
                    detail = f"leaf needs {length} bytes, {size - offset - 4} left"
                    self.fault = self._fault(offset, "truncated", detail)
                    return
                yield LeafRecord(offset, bytes(image[offset + 4 : end]))
                offset = end
                self.end_offset = end
                self.records_count += 1
            raise AssertionError("record loop exceeded its bound")
        finally:
            self.end_offset = offset

    def _fault(self, offset: int, reason: str, detail: str) -> OutlogFault:
        rest = self._image[offset:]
        torn = reason == "truncated" or rest.count(0) == len(rest)
        return OutlogFault(offset, reason, detail, torn)


# ---------------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------------


def _create_file(path: Path, journal_id: bytes) -> None:
    """Create ``path`` holding only the header, atomically (temp file, fsync, rename, dir fsync)."""
    tmp = path.with_name(f".{path.name}.creating")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        _write_all(fd, encode_outlog_header(journal_id))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_directory(path.parent)


class OutputLogWriter:
    """Append-only writer of ``events.bin``; keeps the Merkle frontier of everything appended.

    Leaves are hashed into the frontier on append and buffered; :meth:`commit` writes the buffer with
    one ``os.write`` and fsyncs (unless ``sync`` is False). The venue commits the output log right
    after the journal, so the file only ever describes journaled commands. Not thread-safe; the venue's
    journal lock guards the directory.
    """

    __slots__ = ("path", "frontier", "sync", "_fd", "_pending", "_pending_leaves", "_offset", "_durable_size",
                 "_closed")

    def __init__(self, path: Path, fd: int, frontier: MerkleFrontier, offset: int, sync: bool) -> None:
        self.path = path
        self.frontier = frontier
        self.sync = sync
        self._fd = fd
        self._pending: list[bytes] = []
        self._pending_leaves = 0
        self._offset = offset
        self._durable_size = frontier.size
        self._closed = False

    @classmethod
    def _open_at(cls, path: Path, frontier: MerkleFrontier, offset: int, sync: bool) -> OutputLogWriter:
        """Open ``path`` for appending after truncating it to ``offset`` (the verified end)."""
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        try:
            if os.fstat(fd).st_size != offset:
                os.ftruncate(fd, offset)
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, frontier, offset, sync)

    @property
    def size(self) -> int:
        """Leaves appended (durable or not)."""
        return self.frontier.size

    @property
    def durable_size(self) -> int:
        """Leaves written (and fsynced unless ``sync`` is off) by the last :meth:`commit`."""
        return self._durable_size

    @property
    def offset(self) -> int:
        """File size after the last commit: the offset just past leaf ``durable_size - 1``."""
        return self._offset

    def root(self) -> bytes:
        """Merkle root of every leaf appended so far."""
        return self.frontier.root()

    def append_events(self, seq: int, events: Sequence[Event]) -> None:
        """Append the leaves of command ``seq`` (its events in order; none is fine).

        The hot path of every journaled command: the frontier merge of
        :meth:`MerkleFrontier.append_leaf_hash` is inlined here.
        """
        if not events:
            return
        head, length, pending, encode, sha256 = _LEAF_HEAD.pack, _LEN.pack, self._pending, _encode, _sha256
        frontier = self.frontier
        hashes, size = frontier.hashes, frontier.size
        for index, event in enumerate(events):
            leaf = head(LEAF_VERSION, seq, index) + encode(event)
            pending.append(length(len(leaf)) + leaf)
            hashes.append(sha256(b"\x00" + leaf).digest())
            size += 1
            count = size
            while not count & 1:
                right = hashes.pop()
                hashes[-1] = sha256(b"\x01" + hashes[-1] + right).digest()
                count >>= 1
        frontier.size = size
        assert len(hashes) == size.bit_count() and len(leaf) <= LEAF_SIZE_MAX
        self._pending_leaves += len(events)

    def append_leaves(self, leaves: Iterable[bytes]) -> None:
        """Append already encoded leaves (recovery)."""
        for leaf in leaves:
            assert LEAF_HEADER_SIZE < len(leaf) <= LEAF_SIZE_MAX
            self._pending.append(_LEN.pack(len(leaf)) + leaf)
            self.frontier.append(leaf)
            self._pending_leaves += 1

    def commit(self) -> int:
        """Write the buffered leaves and fsync (when ``sync``); return the durable tree size.

        Raises:
            OSError: write or fsync failed (the venue treats this like a journal failure).
        """
        assert not self._closed
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            _write_all(self._fd, data)
            self._offset += len(data)
            if self.sync:
                os.fsync(self._fd)
            self._durable_size += self._pending_leaves
            self._pending_leaves = 0
        assert self._durable_size == self.frontier.size
        return self._durable_size

    def close(self) -> None:
        """Commit and close. Idempotent."""
        if self._closed:
            return
        try:
            self.commit()
        finally:
            self._closed = True
            os.close(self._fd)


# ---------------------------------------------------------------------------------------------
# Recovery
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutlogRecovery:
    """What :func:`recover_output_log` did.

    Attributes:
        writer: positioned after the last leaf, frontier complete.
        leaves_kept: leaves already in the file that were kept (hashed or matched against replay).
        leaves_appended: leaves re-derived by replay and written now.
        torn_tail_bytes: bytes of a torn final record that were cut.
        created: the file did not exist and was created.
    """

    writer: OutputLogWriter
    leaves_kept: int
    leaves_appended: int
    torn_tail_bytes: int
    created: bool


class _RootWatch:
    """Checks the frontier root when it passes a tree size recorded earlier (checkpoint, snapshot)."""

    def __init__(self, path: Path, expected: Sequence[tuple[int, bytes, str]]) -> None:
        self.path = path
        self.pending = sorted(expected)

    def after_append(self, frontier: MerkleFrontier, offset: int) -> None:
        while self.pending and self.pending[0][0] == frontier.size:
            _, root, what = self.pending.pop(0)
            if frontier.root() != root:
                raise OutputLogCorruptError(self.path, offset, f"leaves 0..{frontier.size - 1} do not hash to {what}")


def recover_output_log(
    path: Path,
    journal_id: bytes,
    *,
    prefix_size: int,
    prefix_root: bytes,
    derived: Iterable[bytes],
    expected_roots: Sequence[tuple[int, bytes, str]] = (),
    sync: bool = True,
) -> OutlogRecovery:
    """Reconcile ``events.bin`` with re-execution and return a writer positioned at its end.

    The first ``prefix_size`` leaves are trusted by hash: they must exist and hash to
    ``prefix_root`` (recorded with the snapshot the engine was restored from). Every later leaf in
    the file must equal, byte for byte, the next leaf of ``derived`` (the leaves that replaying the
    journal after the snapshot produced). A torn final record is cut; the derived leaves the file
    lacks are appended and fsynced. The file is created if missing (then ``prefix_size`` must be 0).

    Args:
        path: ``events.bin``.
        journal_id: the journal's id (checked against the file header).
        prefix_size: leaves covered by ``prefix_root`` (0 for a replay from seq 1).
        prefix_root: RFC 6962 root of those leaves.
        derived: re-derived leaves following the prefix, in order.
        expected_roots: (tree size, root, description) that must also hold on the way, e.g. the
            newest signed checkpoint; a size beyond the recovered log is an error.
        sync: fsync after writing.

    Returns:
        :class:`OutlogRecovery`.

    Raises:
        OutputLogCorruptError: bad header, fewer than ``prefix_size`` leaves, a wrong prefix root, a
            complete leaf that differs from re-execution, leaves beyond what the journal produces, a
            framing fault that is not a torn tail, or a recorded root that does not match. Nothing is
            modified in that case.
    """
    created = not path.exists()
    if created:
        if prefix_size:
            raise OutputLogCorruptError(path, 0, f"file missing but {prefix_size} leaves are recorded before it")
        _create_file(path, journal_id)
    watch = _RootWatch(path, [(prefix_size, prefix_root, "the root recorded with the snapshot"), *expected_roots])
    frontier = MerkleFrontier()
    derived_iter = iter(derived)
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        image: bytes | mmap.mmap = mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_READ) if size else b""
    try:
        try:
            file_journal_id = decode_outlog_header(image)
        except ValueError as exc:
            raise OutputLogCorruptError(path, 0, f"bad header: {exc}") from None
        if file_journal_id != journal_id:
            raise OutputLogCorruptError(path, 0, "header names another journal (journal_id differs)")
        watch.after_append(frontier, OUTLOG_HEADER_SIZE)
        scanner = OutlogScanner(image)
        kept = 0
        for record in scanner:
            end = record.offset + 4 + len(record.leaf)
            if kept >= prefix_size:
                want = next(derived_iter, None)
                if want is None:
                    raise OutputLogCorruptError(path, record.offset, f"leaf {kept} is beyond every leaf the journal "
                                                "produces (the journal lost records this log covers)")
                if want != record.leaf:
                    raise OutputLogCorruptError(path, record.offset, f"leaf {kept} differs from re-execution")
            frontier.append(record.leaf)
            kept += 1
            watch.after_append(frontier, end)
        fault = scanner.fault
        if kept < prefix_size:
            at = fault.offset if fault else scanner.end_offset
            raise OutputLogCorruptError(path, at, f"only {kept} leaves, but {prefix_size} were durable at the snapshot")
        if fault is not None and not fault.torn:
            raise OutputLogCorruptError(path, fault.offset, f"{fault.reason}: {fault.detail} (not a torn tail)")
        end_offset = scanner.end_offset
        torn = size - end_offset if fault is not None else 0
    finally:
        if isinstance(image, mmap.mmap):
            image.close()
    missing = list(derived_iter)
    probe = MerkleFrontier()  # check the recorded roots the appended leaves pass before touching the file
    probe.hashes, probe.size = list(frontier.hashes), frontier.size
    for leaf in missing:
        probe.append(leaf)
        watch.after_append(probe, end_offset)
    if watch.pending:
        size_needed = watch.pending[-1][0]
        raise OutputLogCorruptError(path, end_offset, f"a recorded root covers {size_needed} leaves, but replay "
                                    f"yields only {probe.size}")
    writer = OutputLogWriter._open_at(path, frontier, end_offset, sync)
    writer.append_leaves(missing)
    writer.commit()
    return OutlogRecovery(writer, kept, len(missing), torn, created)
