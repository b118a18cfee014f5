"""Journal file writer (group commit, fsync before acknowledgement) and verifying reader.

The writer owns one journal file (one segment), appends framed records from
:mod:`bastion.journal.records` with ``os.write`` on a raw ``O_APPEND`` descriptor and makes them
durable with ``os.fsync`` according to an :class:`FsyncPolicy`. A command is *acknowledged* only
once :meth:`JournalWriter.commit` has returned a ``last_durable_seq`` >= its seq (the NATS/Jepsen
lesson: fsync before ack, never after).

Opening an existing file re-verifies every record. A torn tail (an *incomplete* final record, or a
zero-filled tail, with nothing valid after it: the footprint of a crash mid-append) is truncated and
reported in :attr:`JournalWriter.tail_truncation`. A *complete* final record that fails verification
may have been acknowledged, so it raises :class:`JournalTailCorruptError` unless the caller passes
``repair_tail=True``. Anything invalid before the tail raises :class:`JournalCorruptError`; it is never
repaired silently.
"""

from __future__ import annotations

import enum
import fcntl
import mmap
import os
from collections.abc import Collection, Iterator
from pathlib import Path
from types import TracebackType
from typing import Final

from bastion.journal.errors import (
    JournalCorruptError,
    JournalError,
    JournalIOError,
    JournalLockedError,
)
from bastion.journal.records import (
    JOURNAL_ID_SIZE,
    PAYLOAD_SIZE_MAX,
    RECORD_HEADER_SIZE,
    SEQ_MAX,
    ChainHead,
    FileHeader,
    JournalPosition,
    Record,
    RecordScanner,
    ScanSummary,
    TornTail,
    decode_file_header,
    encode_file_header,
    encode_record_header,
    genesis_chain,
    scan_image,
)

__all__ = [
    "BUFFER_BYTES_MAX",
    "BUFFER_RECORDS_MAX",
    "GROUP_BYTES_MAX_DEFAULT",
    "GROUP_RECORDS_MAX_DEFAULT",
    "FsyncPolicy",
    "JournalReader",
    "JournalWriter",
    "fsync_directory",
]

GROUP_RECORDS_MAX_DEFAULT: Final = 1000
GROUP_BYTES_MAX_DEFAULT: Final = 1 << 20
#: Hard bounds on the in-memory group under every policy (a named limit on the queue).
BUFFER_RECORDS_MAX: Final = 1 << 20
BUFFER_BYTES_MAX: Final = 64 << 20


class FsyncPolicy(enum.Enum):
    """When the writer commits and fsyncs.

    ALWAYS: every :meth:`~JournalWriter.commit` writes and fsyncs; ``append`` commits on its own
        only when the hard buffer bounds (``BUFFER_RECORDS_MAX`` / ``BUFFER_BYTES_MAX``) are hit.
    GROUP: like ALWAYS, and ``append`` also commits (write + fsync) automatically as soon as the
        group holds ``group_records_max`` records or ``group_bytes_max`` bytes.
    NONE: grouping as GROUP, but never fsync (benchmarks only). "Durable" then means "handed to the
        OS page cache": it survives a process kill, not a power loss.
    """

    ALWAYS = "always"
    GROUP = "group"
    NONE = "none"


def fsync_directory(directory: Path) -> None:
    """fsync a directory so that a file created or renamed in it survives a power loss.

    Raises:
        JournalIOError: the open or fsync failed.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise JournalIOError(f"{directory}: directory fsync failed: {exc}") from exc


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte of ``data`` is written (regular files rarely write short)."""
    view = memoryview(data)
    written = 0
    for _ in range(len(data) + 1):  # every successful os.write moves at least one byte
        if written == len(data):
            return
        count = os.write(fd, view[written:])
        assert count > 0, "os.write returned 0 on a regular file"
        written += count
    raise AssertionError("write loop exceeded its bound")


def _create_journal_file(path: Path, header: FileHeader) -> None:
    """Create ``path`` holding only ``header``, atomically: temp file, fsync, link, fsync dir.

    If another process created ``path`` meanwhile, the existing file wins (it is verified on open).
    """
    tmp = path.with_name(path.name + ".creating")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            _write_all(fd, encode_file_header(header))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        os.unlink(tmp)
    except OSError as exc:
        raise JournalIOError(f"{path}: cannot create journal file: {exc}") from exc
    fsync_directory(path.parent)


def _new_header(journal_id: bytes | None, segment_start: ChainHead | None) -> FileHeader:
    journal_id = bytes(JOURNAL_ID_SIZE) if journal_id is None else journal_id
    if len(journal_id) != JOURNAL_ID_SIZE:
        raise ValueError(f"journal_id must be {JOURNAL_ID_SIZE} bytes, got {len(journal_id)}")
    if segment_start is None:
        return FileHeader(journal_id, 1, genesis_chain(journal_id))
    if not 0 <= segment_start.seq < SEQ_MAX:
        raise ValueError(f"segment_start.seq {segment_start.seq} out of range")
    return FileHeader(journal_id, segment_start.seq + 1, segment_start.chain)


def _check_header_expected(
    path: Path, header: FileHeader, journal_id: bytes | None, segment_start: ChainHead | None
) -> None:
    """Refuse to append to an existing file that is not the journal the caller asked for."""
    if journal_id is not None and header.journal_id != journal_id:
        raise JournalError(f"{path}: journal_id {header.journal_id.hex()} != {journal_id.hex()}")
    if segment_start is not None and header.start.head != segment_start:
        raise JournalError(f"{path}: existing segment does not start at {segment_start}")


def _scan_fd(fd: int, path: Path, positions_wanted: Collection[int] = (), *, repair_tail: bool = False) -> ScanSummary:
    """Verify the whole file behind ``fd`` through a read-only mmap.

    Raises:
        JournalTailCorruptError: the final record is complete but fails verification (not repair_tail).
        JournalCorruptError: corruption before the tail (names ``path``).
        JournalIOError: stat or mmap failed.
    """
    try:
        size = os.fstat(fd).st_size
        image = mmap.mmap(fd, size, access=mmap.ACCESS_READ) if size > 0 else None
    except OSError as exc:
        raise JournalIOError(f"{path}: cannot map journal: {exc}") from exc
    try:
        return scan_image(b"" if image is None else image, positions_wanted, repair_tail=repair_tail)
    except JournalCorruptError as exc:
        raise exc.with_path(str(path)) from None
    finally:
        if image is not None:
            image.close()


class JournalWriter:
    """Append-only writer of one journal file. Not thread-safe; one writer per file (flock).

    Use :meth:`open`; the constructor is private.
    """

    __slots__ = (
        "path",
        "policy",
        "header",
        "tail_truncation",
        "fsyncs_count",
        "writes_count",
        "_fd",
        "_records_limit",
        "_bytes_limit",
        "_pending",
        "_pending_records",
        "_pending_bytes",
        "_appended",
        "_written",
        "_durable",
        "_failed",
        "_closed",
    )

    def __init__(
        self,
        *,
        path: Path,
        fd: int,
        policy: FsyncPolicy,
        summary: ScanSummary,
        limits: tuple[int, int],
    ) -> None:
        assert summary.torn_tail is None or summary.torn_tail.offset == summary.end.offset
        self.path = path
        self.policy = policy
        self.header = summary.header
        self.tail_truncation: TornTail | None = summary.torn_tail
        self.fsyncs_count = 0
        self.writes_count = 0
        self._fd = fd
        self._records_limit, self._bytes_limit = limits
        self._pending: list[bytes] = []
        self._pending_records = 0
        self._pending_bytes = 0
        self._appended = summary.end.head
        self._written = summary.end.head
        self._durable = summary.end.head
        self._failed = False
        self._closed = False

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        fsync_policy: FsyncPolicy = FsyncPolicy.ALWAYS,
        *,
        group_records_max: int = GROUP_RECORDS_MAX_DEFAULT,
        group_bytes_max: int = GROUP_BYTES_MAX_DEFAULT,
        journal_id: bytes | None = None,
        segment_start: ChainHead | None = None,
        repair_tail: bool = False,
    ) -> JournalWriter:
        """Open (creating if absent) the journal at ``path``, verify it and truncate a torn tail.

        Args:
            path: journal file. Created atomically (temp file, fsync, link, directory fsync).
            fsync_policy: see :class:`FsyncPolicy`.
            group_records_max: GROUP/NONE auto-commit threshold, records (1..BUFFER_RECORDS_MAX).
            group_bytes_max: GROUP/NONE auto-commit threshold, framed bytes (1..BUFFER_BYTES_MAX).
            journal_id: 16 bytes binding the genesis chain value; when creating, ``None`` means
                16 zero bytes (set a unique id per deployment); when opening, ``None`` skips the
                check.
            segment_start: when creating a continuation segment, the head (seq, chain) of the
                previous segment; when opening, ``None`` skips the check.
            repair_tail: also cut a final record that is complete but fails verification (an operator
                decision after a :class:`JournalTailCorruptError`; reported with ``repaired=True``).

        Returns:
            The writer; ``tail_truncation`` reports any torn tail that was cut off.

        Raises:
            JournalTailCorruptError: the final record is complete but fails verification (nothing is
                modified; see ``repair_tail``).
            JournalCorruptError: the file is corrupt before its tail (nothing is modified).
            JournalLockedError: another writer holds the file.
            JournalError: the file's journal_id or segment start differs from the ones given.
            JournalIOError: an OS call failed.
        """
        if not 1 <= group_records_max <= BUFFER_RECORDS_MAX:
            raise ValueError(f"group_records_max {group_records_max} out of range")
        if not 1 <= group_bytes_max <= BUFFER_BYTES_MAX:
            raise ValueError(f"group_bytes_max {group_bytes_max} out of range")
        limits = (group_records_max, group_bytes_max)
        if fsync_policy is FsyncPolicy.ALWAYS:
            limits = (BUFFER_RECORDS_MAX, BUFFER_BYTES_MAX)
        path = Path(path)
        if not path.exists():
            _create_journal_file(path, _new_header(journal_id, segment_start))
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except OSError as exc:
            raise JournalIOError(f"{path}: cannot open journal: {exc}") from exc
        try:
            summary = cls._prepare(fd, path, journal_id, segment_start, repair_tail)
        except BaseException:
            os.close(fd)
            raise
        return cls(path=path, fd=fd, policy=fsync_policy, summary=summary, limits=limits)

    @staticmethod
    def _prepare(
        fd: int, path: Path, journal_id: bytes | None, segment_start: ChainHead | None, repair_tail: bool
    ) -> ScanSummary:
        """Lock, verify and (if torn) truncate the file behind ``fd``; return the scan."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise JournalLockedError(f"{path}: journal is locked by another writer") from exc
        except OSError as exc:
            raise JournalIOError(f"{path}: flock failed: {exc}") from exc
        summary = _scan_fd(fd, path, repair_tail=repair_tail)
        _check_header_expected(path, summary.header, journal_id, segment_start)
        if summary.torn_tail is not None:
            try:
                os.ftruncate(fd, summary.end.offset)
                os.fsync(fd)
            except OSError as exc:
                raise JournalIOError(f"{path}: cannot truncate torn tail: {exc}") from exc
            assert os.fstat(fd).st_size == summary.end.offset
        return summary

    # -- state ------------------------------------------------------------------------------------

    @property
    def head(self) -> ChainHead:
        """(seq, chain) of the last appended record, committed or not."""
        return self._appended

    @property
    def durable_head(self) -> ChainHead:
        """(seq, chain) of the last durable record (see :class:`FsyncPolicy` for NONE)."""
        return self._durable

    @property
    def last_appended_seq(self) -> int:
        """Seq of the last appended record (``first_seq - 1`` if none)."""
        return self._appended.seq

    @property
    def last_durable_seq(self) -> int:
        """Seq of the last durable record; commands with seq <= this may be acknowledged."""
        return self._durable.seq

    @property
    def pending_records(self) -> int:
        """Records appended but not yet written."""
        return self._pending_records

    def _check_usable(self) -> None:
        if self._closed:
            raise JournalError(f"{self.path}: writer is closed")
        if self._failed:
            raise JournalIOError(f"{self.path}: writer failed earlier; reopen the journal")

    # -- operations -------------------------------------------------------------------------------

    def append(self, payload: bytes) -> int:
        """Frame ``payload`` as the next record and buffer it; return its seq.

        The record is *not* durable until a commit covers it (GROUP/NONE commit on their own when
        the group is full; check :attr:`last_durable_seq`).

        Raises:
            ValueError: payload longer than PAYLOAD_SIZE_MAX (16 MiB) or seq space exhausted.
            JournalIOError: an automatic commit failed (the writer is then poisoned).
        """
        self._check_usable()
        if len(payload) > PAYLOAD_SIZE_MAX:
            raise ValueError(f"payload is {len(payload)} bytes > {PAYLOAD_SIZE_MAX}")
        seq = self._appended.seq + 1
        if seq > SEQ_MAX:
            raise ValueError("journal sequence space exhausted")
        header, chain = encode_record_header(seq, self._appended.chain, payload)
        self._pending.append(header)
        self._pending.append(payload)
        self._pending_records += 1
        self._pending_bytes += RECORD_HEADER_SIZE + len(payload)
        self._appended = ChainHead(seq, chain)
        if (
            self._pending_records >= self._records_limit
            or self._pending_bytes >= self._bytes_limit
        ):
            self.commit()
        return seq

    def commit(self) -> int:
        """Write the buffered group with one ``os.write`` and fsync per policy.

        Returns:
            ``last_durable_seq``: every record with seq <= it is on stable storage (NONE: in the OS
            page cache) and may be acknowledged.

        Raises:
            JournalIOError: write or fsync failed; the writer is poisoned (reopen to continue).
        """
        self._check_usable()
        try:
            if self._pending_records > 0:
                data = b"".join(self._pending)
                assert len(data) == self._pending_bytes
                self._pending.clear()
                self._pending_records = 0
                self._pending_bytes = 0
                _write_all(self._fd, data)
                self.writes_count += 1
                self._written = self._appended
            if self._durable != self._written and self.policy is not FsyncPolicy.NONE:
                os.fsync(self._fd)
                self.fsyncs_count += 1
        except OSError as exc:
            self._failed = True
            raise JournalIOError(f"{self.path}: commit failed: {exc}") from exc
        self._durable = self._written
        assert self._pending_records == 0
        assert self._durable == self._appended
        return self._durable.seq

    def close(self) -> None:
        """Commit pending records (unless the writer failed) and close the file. Idempotent."""
        if self._closed:
            return
        try:
            if not self._failed:
                self.commit()
        finally:
            self._closed = True
            os.close(self._fd)

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class JournalReader:
    """Read-only, verifying view of a journal file, mapped once at construction.

    Records appended after construction are not seen. Iterating yields every valid record from the
    start of the file and stops at a torn tail (reported in :attr:`torn_tail`, never truncated).
    ``repair_tail`` treats a complete-but-failing final record as a torn tail (see
    :class:`JournalTailCorruptError`) instead of raising.

    Raises (from the constructor and from iteration):
        JournalTailCorruptError: the final record is complete but fails verification.
        JournalCorruptError: bad file header, or corruption before the tail.
        JournalIOError: the file cannot be opened or mapped.
    """

    __slots__ = ("path", "header", "_image", "_summary", "_repair_tail")

    def __init__(self, path: str | os.PathLike[str], *, repair_tail: bool = False) -> None:
        self.path = Path(path)
        self._repair_tail = repair_tail
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                size = os.fstat(fd).st_size
                self._image: bytes | mmap.mmap = (
                    mmap.mmap(fd, size, access=mmap.ACCESS_READ) if size > 0 else b""
                )
            finally:
                os.close(fd)
        except OSError as exc:
            raise JournalIOError(f"{self.path}: cannot open journal: {exc}") from exc
        self._summary: ScanSummary | None = None
        try:
            self.header: FileHeader = decode_file_header(self._image)
        except JournalCorruptError as exc:
            self.close()
            raise exc.with_path(str(self.path)) from None

    def records(self, start: JournalPosition | None = None) -> Iterator[Record]:
        """Yield verified records after ``start`` (default: the start of the file).

        ``start`` must be a position obtained from this file (:meth:`scan`), e.g. a snapshot point.
        """
        start = self.header.start if start is None else start
        assert start.seq >= self.header.first_seq - 1
        scanner = RecordScanner(self._image, start, repair_tail=self._repair_tail)
        try:
            yield from scanner
        except JournalCorruptError as exc:
            raise exc.with_path(str(self.path)) from None

    def __iter__(self) -> Iterator[Record]:
        return self.records()

    def scan(self, positions_wanted: Collection[int] = ()) -> ScanSummary:
        """Verify the whole file; return head, torn tail and the positions of ``positions_wanted``.

        Raises:
            JournalCorruptError: corruption before the tail.
        """
        try:
            summary = scan_image(self._image, positions_wanted, repair_tail=self._repair_tail)
        except JournalCorruptError as exc:
            raise exc.with_path(str(self.path)) from None
        self._summary = summary
        return summary

    def _summary_cached(self) -> ScanSummary:
        return self.scan() if self._summary is None else self._summary

    @property
    def head(self) -> ChainHead:
        """(last seq, chain) of the last valid record; verifies the whole file on first use."""
        return self._summary_cached().end.head

    @property
    def torn_tail(self) -> TornTail | None:
        """The torn tail after the last valid record, if any (verifies the file on first use)."""
        return self._summary_cached().torn_tail

    @property
    def size_bytes(self) -> int:
        """Size of the mapped image, bytes."""
        return len(self._image)

    def close(self) -> None:
        """Unmap the file. Idempotent; generators from :meth:`records` must not be used after."""
        if isinstance(self._image, mmap.mmap) and not self._image.closed:
            self._image.close()

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

