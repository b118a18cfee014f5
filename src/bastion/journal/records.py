"""Record framing and hash chain for the input journal: pure functions, no I/O.

A journal file is a file header followed by records (all integers little-endian)::

    file header (88 bytes)
      0   8  magic          b"BSTNJRNL"
      8   2  version        u16 = 1
     10   2  header_size    u16 = 88
     12   4  reserved       u32 = 0
     16  16  journal_id     opaque id of the journal (binds the genesis chain value)
     32   8  first_seq      u64, seq of the first record in this file (>= 1)
     40  32  chain_in       chain value entering this file (genesis if first_seq == 1)
     72  16  checksum       BLAKE2b-128(person="bastion.jfh") over bytes 0..72

    record = header (68 bytes) + payload
      0   4  magic          b"BREC"
      4   2  version        u16 = 1
      6   2  reserved       u16 = 0
      8   4  payload_len    u32, <= PAYLOAD_SIZE_MAX
     12   8  seq            u64, previous seq + 1
     20  32  chain          chain value after this record
     52  16  checksum       BLAKE2b-128(person="bastion.jrh") over bytes 0..52
     68   n  payload        opaque bytes

Hash chain (the model is TigerBeetle's hash-chained prepares, ``docs/ARCHITECTURE.md``)::

    genesis(journal_id) = BLAKE2b-256(person="bastion.genesis", journal_id)
    chain_seq           = BLAKE2b-256(person="bastion.chain",
                                  chain_{seq-1} || u64le(seq) || payload)

The header checksum protects the framing (length, seq, chain field); the chain field protects the
payload and links every record to all of history, so a flipped payload byte, a deleted, duplicated
or reordered record all fail verification.
"""

from __future__ import annotations

import hashlib
import mmap
import struct
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Final, NamedTuple, Union

from bastion.journal.errors import FaultReason, JournalCorruptError, JournalTailCorruptError

__all__ = [
    "CHAIN_SIZE",
    "CHECKSUM_SIZE",
    "FILE_HEADER_SIZE",
    "FILE_MAGIC",
    "FORMAT_VERSION",
    "JOURNAL_ID_SIZE",
    "PAYLOAD_SIZE_MAX",
    "RECORD_HEADER_SIZE",
    "RECORD_MAGIC",
    "SEQ_MAX",
    "ByteImage",
    "ChainHead",
    "FileHeader",
    "JournalPosition",
    "Record",
    "RecordFault",
    "RecordScanner",
    "ScanSummary",
    "TornTail",
    "chain_next",
    "decode_file_header",
    "decode_record",
    "encode_file_header",
    "encode_record",
    "encode_record_header",
    "genesis_chain",
    "is_torn_write",
    "scan_image",
]

FORMAT_VERSION: Final = 1
FILE_MAGIC: Final = b"BSTNJRNL"
RECORD_MAGIC: Final = b"BREC"
JOURNAL_ID_SIZE: Final = 16
CHAIN_SIZE: Final = 32
CHECKSUM_SIZE: Final = 16
SEQ_MAX: Final = (1 << 64) - 1
# 16 MiB: far above any command; bounds the memory a corrupt length field could make us touch.
PAYLOAD_SIZE_MAX: Final = 1 << 24

_FILE_BODY: Final = struct.Struct("<8sHHI16sQ32s")
_RECORD_BODY: Final = struct.Struct("<4sHHIQ32s")
_RECORD_BODY_SIZE: Final = _RECORD_BODY.size
FILE_HEADER_SIZE: Final = _FILE_BODY.size + CHECKSUM_SIZE
RECORD_HEADER_SIZE: Final = _RECORD_BODY.size + CHECKSUM_SIZE

_PERSON_FILE: Final = b"bastion.jfh"
_PERSON_RECORD: Final = b"bastion.jrh"
_PERSON_GENESIS: Final = b"bastion.genesis"
_PERSON_CHAIN: Final = b"bastion.chain"

assert FILE_HEADER_SIZE == 88
assert RECORD_HEADER_SIZE == 68
assert len(FILE_MAGIC) == 8
assert len(RECORD_MAGIC) == 4

_blake2b = hashlib.blake2b

#: Anything the scanner can read a journal image from: whole-file bytes or a read-only mmap.
ByteImage = Union[bytes, mmap.mmap]


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last record of a journal prefix: its seq and the chain value after it.

    For an empty journal ``seq == first_seq - 1`` and ``chain == chain_in`` of the file header.
    """

    seq: int
    chain: bytes


@dataclass(frozen=True, slots=True)
class JournalPosition:
    """A verified point in a journal file: record ``seq`` ends at byte ``offset`` with ``chain``.

    The next record (seq + 1) starts at ``offset``. Used to resume verified scanning mid-file.
    """

    offset: int
    seq: int
    chain: bytes

    @property
    def head(self) -> ChainHead:
        """The (seq, chain) pair of this position."""
        return ChainHead(self.seq, self.chain)


@dataclass(frozen=True, slots=True)
class FileHeader:
    """Decoded journal file header (see the module docstring for the layout)."""

    journal_id: bytes
    first_seq: int
    chain_in: bytes

    @property
    def start(self) -> JournalPosition:
        """Position before the first record of this file."""
        return JournalPosition(FILE_HEADER_SIZE, self.first_seq - 1, self.chain_in)


class Record(NamedTuple):
    """One verified journal record; unpacks as ``seq, payload, chain, offset``.

    A NamedTuple rather than a frozen dataclass: it is built once per record on the replay hot
    path, and frozen-dataclass construction costs several times more.

    Attributes:
        seq: sequence number (u64, 1-based, strictly +1 per record).
        payload: the opaque bytes that were appended.
        chain: chain value after this record (32 bytes).
        offset: byte offset of the record header within the file.
    """

    seq: int
    payload: bytes
    chain: bytes
    offset: int

    @property
    def size_bytes(self) -> int:
        """Header plus payload, in bytes."""
        return RECORD_HEADER_SIZE + len(self.payload)

    @property
    def end_offset(self) -> int:
        """Byte offset just past this record (where the next one starts)."""
        return self.offset + RECORD_HEADER_SIZE + len(self.payload)


@dataclass(frozen=True, slots=True)
class RecordFault:
    """Why the bytes at ``offset`` are not the valid record ``seq``."""

    reason: FaultReason
    offset: int
    seq: int
    detail: str


@dataclass(frozen=True, slots=True)
class TornTail:
    """An incomplete final record (or a zero-filled tail) with nothing valid after it.

    Attributes:
        offset: where the valid journal ends (the file is/should be truncated to this length).
        bytes_dropped: bytes from ``offset`` to the end of the image.
        seq: the seq that was expected at ``offset``.
        reason: which check failed first.
        detail: specifics.
        repaired: True when the dropped record was complete yet failed verification and was cut only
            because the caller asked for ``repair_tail`` (see :class:`JournalTailCorruptError`).
    """

    offset: int
    bytes_dropped: int
    seq: int
    reason: FaultReason
    detail: str
    repaired: bool = False


def genesis_chain(journal_id: bytes) -> bytes:
    """Return the chain value before seq 1 of the journal ``journal_id`` (16 bytes) -> 32 bytes."""
    assert len(journal_id) == JOURNAL_ID_SIZE, len(journal_id)
    return _blake2b(journal_id, digest_size=CHAIN_SIZE, person=_PERSON_GENESIS).digest()


_CHAIN_HASHER = _blake2b(digest_size=CHAIN_SIZE, person=_PERSON_CHAIN)
_RECORD_HASHER = _blake2b(digest_size=CHECKSUM_SIZE, person=_PERSON_RECORD)


def chain_next(chain_prev: bytes, seq: int, payload: bytes) -> bytes:
    """Return ``BLAKE2b-256(chain_prev || u64le(seq) || payload)`` (32 bytes)."""
    assert len(chain_prev) == CHAIN_SIZE
    assert 1 <= seq <= SEQ_MAX
    hasher = _CHAIN_HASHER.copy()  # a keyed-by-person hasher is cheaper to copy than to build
    hasher.update(chain_prev)
    hasher.update(seq.to_bytes(8, "little"))
    hasher.update(payload)
    return hasher.digest()


def _record_checksum(body: bytes) -> bytes:
    hasher = _RECORD_HASHER.copy()
    hasher.update(body)
    return hasher.digest()


def _file_checksum(body: bytes) -> bytes:
    return _blake2b(body, digest_size=CHECKSUM_SIZE, person=_PERSON_FILE).digest()


def encode_file_header(header: FileHeader) -> bytes:
    """Serialize ``header`` to exactly ``FILE_HEADER_SIZE`` bytes.

    A first segment (``first_seq == 1``) must carry ``chain_in == genesis_chain(journal_id)``.
    """
    assert len(header.journal_id) == JOURNAL_ID_SIZE
    assert len(header.chain_in) == CHAIN_SIZE
    assert 1 <= header.first_seq <= SEQ_MAX
    if header.first_seq == 1:
        assert header.chain_in == genesis_chain(header.journal_id)
    body = _FILE_BODY.pack(
        FILE_MAGIC,
        FORMAT_VERSION,
        FILE_HEADER_SIZE,
        0,
        header.journal_id,
        header.first_seq,
        header.chain_in,
    )
    encoded = body + _file_checksum(body)
    assert len(encoded) == FILE_HEADER_SIZE
    return encoded


def decode_file_header(image: ByteImage) -> FileHeader:
    """Parse and verify the file header at the start of ``image``.

    Raises:
        JournalCorruptError: (offset 0, seq None) if the image is shorter than the header, or the
            magic, checksum, version, size/reserved fields or genesis value are wrong.
    """

    def corrupt(reason: FaultReason, detail: str) -> JournalCorruptError:
        return JournalCorruptError(reason, offset=0, seq=None, detail=detail)

    if len(image) < FILE_HEADER_SIZE:
        raise corrupt(
            FaultReason.TRUNCATED,
            f"file is {len(image)} bytes, shorter than the {FILE_HEADER_SIZE}-byte file header",
        )
    body = image[: _FILE_BODY.size]
    magic, version, size, reserved, journal_id, first_seq, chain_in = _FILE_BODY.unpack(body)
    if magic != FILE_MAGIC:
        raise corrupt(FaultReason.BAD_MAGIC, f"file magic {magic!r} != {FILE_MAGIC!r}")
    if image[_FILE_BODY.size : FILE_HEADER_SIZE] != _file_checksum(body):
        raise corrupt(FaultReason.BAD_HEADER_CHECKSUM, "file header checksum mismatch")
    if version != FORMAT_VERSION:
        raise corrupt(FaultReason.BAD_VERSION, f"file format version {version} unsupported")
    if size != FILE_HEADER_SIZE or reserved != 0 or first_seq == 0:
        raise corrupt(
            FaultReason.BAD_RESERVED,
            f"header_size={size} reserved={reserved} first_seq={first_seq}",
        )
    if first_seq == 1 and chain_in != genesis_chain(journal_id):
        raise corrupt(FaultReason.BAD_GENESIS, "first segment chain_in is not the genesis value")
    return FileHeader(journal_id=journal_id, first_seq=first_seq, chain_in=chain_in)


def encode_record_header(seq: int, chain_prev: bytes, payload: bytes) -> tuple[bytes, bytes]:
    """Frame record ``seq``: return ``(header, chain)``; the record on disk is header + payload.

    Args:
        seq: 1..SEQ_MAX, must be the previous record's seq + 1 (caller's invariant).
        chain_prev: chain value after the previous record (or the file's chain_in), 32 bytes.
        payload: opaque bytes, at most PAYLOAD_SIZE_MAX.
    """
    assert len(payload) <= PAYLOAD_SIZE_MAX, len(payload)
    chain = chain_next(chain_prev, seq, payload)
    body = _RECORD_BODY.pack(RECORD_MAGIC, FORMAT_VERSION, 0, len(payload), seq, chain)
    header = body + _record_checksum(body)
    assert len(header) == RECORD_HEADER_SIZE
    return header, chain


def encode_record(seq: int, chain_prev: bytes, payload: bytes) -> tuple[bytes, bytes]:
    """Like :func:`encode_record_header` but return ``(header + payload, chain)``."""
    header, chain = encode_record_header(seq, chain_prev, payload)
    return header + payload, chain


def decode_record(
    image: ByteImage, offset: int, seq_expected: int, chain_prev: bytes
) -> Record | RecordFault:
    """Decode and verify the record at ``offset``; checks run cheapest-first.

    Returns the :class:`Record`, or a :class:`RecordFault` naming the first check that failed. The
    caller decides whether a fault is a torn tail or corruption (see :class:`RecordScanner`).
    This is the replay hot path (compiled with mypyc, where helper calls are cheap).
    """
    assert 0 <= offset <= len(image)
    assert len(chain_prev) == CHAIN_SIZE
    header = image[offset : offset + RECORD_HEADER_SIZE]
    if len(header) < RECORD_HEADER_SIZE:
        detail = f"{len(header)} bytes left, record header needs {RECORD_HEADER_SIZE}"
        return RecordFault(FaultReason.TRUNCATED, offset, seq_expected, detail)
    body = header[:_RECORD_BODY_SIZE]
    magic, version, reserved, length, seq, chain = _RECORD_BODY.unpack(body)
    if magic != RECORD_MAGIC:
        return RecordFault(FaultReason.BAD_MAGIC, offset, seq_expected, f"magic {magic!r}")
    checksum = _record_checksum(body)
    if header[_RECORD_BODY_SIZE:] != checksum:
        detail = "record header checksum mismatch"
        return RecordFault(FaultReason.BAD_HEADER_CHECKSUM, offset, seq_expected, detail)
    if version != FORMAT_VERSION or reserved != 0 or length > PAYLOAD_SIZE_MAX:
        return _header_fault(offset, seq_expected, version, reserved, length)
    if seq != seq_expected:
        detail = f"expected seq {seq_expected}, found {seq} (gap, duplicate or reorder)"
        return RecordFault(FaultReason.SEQ_MISMATCH, offset, seq_expected, detail)
    start = offset + RECORD_HEADER_SIZE
    payload = image[start : start + length]
    if len(payload) < length:
        detail = f"payload needs {length} bytes, {len(payload)} left"
        return RecordFault(FaultReason.TRUNCATED, offset, seq_expected, detail)
    if chain_next(chain_prev, seq, payload) != chain:
        detail = "chain mismatch: payload or an earlier record altered"
        return RecordFault(FaultReason.BAD_CHAIN, offset, seq_expected, detail)
    return Record(seq, payload, chain, offset)


def _header_fault(
    offset: int, seq_expected: int, version: int, reserved: int, length: int
) -> RecordFault:
    """Fault for a record header that verifies but carries values the writer never writes."""
    if version != FORMAT_VERSION:
        return RecordFault(FaultReason.BAD_VERSION, offset, seq_expected, f"version {version}")
    if reserved != 0:
        return RecordFault(FaultReason.BAD_RESERVED, offset, seq_expected, f"reserved {reserved}")
    assert length > PAYLOAD_SIZE_MAX
    detail = f"payload_len {length} > {PAYLOAD_SIZE_MAX}"
    return RecordFault(FaultReason.BAD_LENGTH, offset, seq_expected, detail)


def _valid_header_at_or_after(image: ByteImage, offset: int) -> int | None:
    """Return the offset of the first record header (magic + checksum verify) at >= ``offset``.

    Bounded: each iteration advances ``offset`` by at least one byte within the image.
    """
    candidates_max = max(0, len(image) - offset)
    for _ in range(candidates_max + 1):
        found = image.find(RECORD_MAGIC, offset)
        if found < 0 or found + RECORD_HEADER_SIZE > len(image):
            return None
        body = image[found : found + _RECORD_BODY.size]
        checksum = image[found + _RECORD_BODY.size : found + RECORD_HEADER_SIZE]
        if checksum == _record_checksum(body):
            return found
        offset = found + 1
    raise AssertionError("candidate scan exceeded its bound")


def is_torn_write(image: ByteImage, fault: RecordFault) -> bool:
    """True if a final-record ``fault`` is what an interrupted append leaves, not damage to a record.

    An append that a crash interrupts leaves a *prefix* of what was written: the image ends inside the
    record (``TRUNCATED``: fewer bytes than a record header, or than the verified header's length
    field says). After a power loss, a filesystem that extended the file size before writing the data
    shows zero bytes instead (checked: everything from the fault to the end is 0x00; a real record
    starts with its magic). Anything else, a record whose bytes are all present but whose header
    checksum or chain fails, may be a record that was fsynced and acknowledged, so it is corruption.
    """
    if fault.reason is FaultReason.TRUNCATED:
        return True
    tail = image[fault.offset :]
    return len(tail) > 0 and not tail.strip(b"\x00")


class RecordScanner:
    """Iterate the verified records of a journal image, starting at a verified position.

    Iteration stops at the end of the image or at a torn tail. A torn tail is a fault that an
    interrupted append produces (:func:`is_torn_write`: the image ends inside the final record, or is
    zero-filled from it) with no valid record header anywhere after it; it is recorded in
    :attr:`torn_tail` and never raised. A complete final record that fails verification raises
    :class:`JournalTailCorruptError` (unless ``repair_tail``: then it is reported as a torn tail with
    ``repaired=True``). Every other fault means the journal is corrupt before its tail (or was
    tampered with) and raises :class:`JournalCorruptError`.

    Once iteration stops, :attr:`position` is just past the last record yielded and
    :attr:`finished` is true if the scan reached the end of the image or a torn tail.
    """

    __slots__ = ("_image", "position", "torn_tail", "records_count", "finished", "_repair_tail")

    def __init__(self, image: ByteImage, start: JournalPosition, *, repair_tail: bool = False) -> None:
        assert FILE_HEADER_SIZE <= start.offset <= len(image)
        assert len(start.chain) == CHAIN_SIZE
        self._image = image
        self.position = start
        self.torn_tail: TornTail | None = None
        self.records_count = 0
        self.finished = False
        self._repair_tail = repair_tail

    def __iter__(self) -> Iterator[Record]:
        assert not self.finished, "a RecordScanner iterates once"
        image = self._image
        image_size = len(image)
        start = self.position
        offset, seq, chain = start.offset, start.seq, start.chain
        # Every record occupies at least RECORD_HEADER_SIZE bytes, which bounds the loop.
        records_max = (image_size - offset) // RECORD_HEADER_SIZE + 1
        try:
            for _ in range(records_max):
                if offset == image_size:
                    break
                decoded = decode_record(image, offset, seq + 1, chain)
                if isinstance(decoded, RecordFault):
                    self.torn_tail = self._classify(decoded)
                    break
                seq, payload, chain, _ = decoded
                offset += RECORD_HEADER_SIZE + len(payload)
                yield decoded
            else:
                raise AssertionError("record loop exceeded its bound")
        finally:
            # Position is kept in locals while iterating (speed); published when iteration stops.
            self.position = JournalPosition(offset, seq, chain)
            self.records_count = seq - start.seq
        self.finished = True

    def _classify(self, fault: RecordFault) -> TornTail:
        """Return the torn tail for ``fault`` or raise if it is corruption before the tail."""
        after = _valid_header_at_or_after(self._image, fault.offset + 1)
        if fault.reason.crash_possible and after is None:
            dropped = len(self._image) - fault.offset
            assert dropped > 0
            if is_torn_write(self._image, fault):
                return TornTail(fault.offset, dropped, fault.seq, fault.reason, fault.detail)
            if self._repair_tail:
                return TornTail(fault.offset, dropped, fault.seq, fault.reason, fault.detail, repaired=True)
            raise JournalTailCorruptError(
                fault.reason, offset=fault.offset, seq=fault.seq,
                detail=f"{fault.detail}; the final record is complete ({dropped} bytes), so this is not a "
                       "torn write and it may have been acknowledged: refusing to cut it (repair_tail=True "
                       "cuts it)")
        detail = fault.detail
        if after is not None:
            detail += f"; a valid record header follows at offset {after}"
        raise JournalCorruptError(fault.reason, offset=fault.offset, seq=fault.seq, detail=detail)


@dataclass(frozen=True, slots=True)
class ScanSummary:
    """Result of verifying a whole journal image.

    Attributes:
        header: the file header.
        end: position after the last valid record (``end.head`` is the journal head).
        torn_tail: the torn tail after ``end``, if any.
        records_count: valid records from the scan's start position.
        positions: for each requested seq that exists in the file, its verified position.
    """

    header: FileHeader
    end: JournalPosition
    torn_tail: TornTail | None
    records_count: int
    positions: dict[int, JournalPosition]


def scan_image(image: ByteImage, positions_wanted: Collection[int] = (), *,
               repair_tail: bool = False) -> ScanSummary:
    """Verify a whole journal image (file header and every record).

    Args:
        image: the file contents.
        positions_wanted: seqs whose verified positions to return (the file's start position
            ``first_seq - 1`` is included when asked for).
        repair_tail: report a complete-but-failing final record as a (repaired) torn tail instead of
            raising :class:`JournalTailCorruptError`.

    Raises:
        JournalTailCorruptError: the final record is complete but fails verification.
        JournalCorruptError: on corruption before the tail (torn tails are reported, not raised).
    """
    header = decode_file_header(image)
    start = header.start
    positions: dict[int, JournalPosition] = {}
    if start.seq in positions_wanted:
        positions[start.seq] = start
    scanner = RecordScanner(image, start, repair_tail=repair_tail)
    if positions_wanted:
        for record in scanner:
            if record.seq in positions_wanted:
                positions[record.seq] = JournalPosition(record.end_offset, record.seq, record.chain)
    else:
        for _ in scanner:
            pass
    assert scanner.finished
    assert scanner.position.seq - start.seq == scanner.records_count
    return ScanSummary(
        header, scanner.position, scanner.torn_tail, scanner.records_count, positions
    )
