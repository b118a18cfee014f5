"""Pure record framing and hash chain: encode/decode, pinned vectors, scanner classification."""

from __future__ import annotations

import hashlib
import random

import pytest

from bastion.journal.errors import FaultReason, JournalCorruptError, JournalTailCorruptError
from bastion.journal.records import (
    FILE_HEADER_SIZE,
    RECORD_HEADER_SIZE,
    FileHeader,
    Record,
    RecordFault,
    RecordScanner,
    chain_next,
    decode_file_header,
    decode_record,
    encode_file_header,
    encode_record,
    genesis_chain,
    scan_image,
)

JOURNAL_ID = bytes(16)


def build_image(payloads: list[bytes], journal_id: bytes = JOURNAL_ID) -> tuple[bytes, list[int]]:
    """Return (journal image, start offset of each record)."""
    chain = genesis_chain(journal_id)
    parts = [encode_file_header(FileHeader(journal_id, 1, chain))]
    offsets = []
    offset = FILE_HEADER_SIZE
    for seq, payload in enumerate(payloads, start=1):
        framed, chain = encode_record(seq, chain, payload)
        parts.append(framed)
        offsets.append(offset)
        offset += len(framed)
    return b"".join(parts), offsets


def test_pinned_vectors_fix_the_on_disk_format() -> None:
    """Self-derived regression vectors: a change here is a format change (bump FORMAT_VERSION)."""
    genesis = genesis_chain(JOURNAL_ID)
    assert genesis.hex() == "bba519b52ca1eb959e8cb52de5aab015b1bada98e68c8757d562ba10df0d3d30"
    framed, chain = encode_record(1, genesis, b"hello")
    assert framed[:RECORD_HEADER_SIZE].hex() == (
        "4252454301000000050000000100000000000000"
        "ba27c304470aba6656529a928cf19a41f3142151b5f13842398990c6e4f73d34"
        "6aed9863745f9e4905891b89af4e26e1"
    )
    assert framed[RECORD_HEADER_SIZE:] == b"hello"
    assert chain.hex() == "ba27c304470aba6656529a928cf19a41f3142151b5f13842398990c6e4f73d34"
    header = encode_file_header(FileHeader(JOURNAL_ID, 1, genesis))
    assert header.hex() == (
        "4253544e4a524e4c010058000000000000000000000000000000000000000000"
        "0100000000000000"
        "bba519b52ca1eb959e8cb52de5aab015b1bada98e68c8757d562ba10df0d3d30"
        "9f65a50b9900808b72fca21718e67887"
    )


def test_chain_matches_its_definition() -> None:
    """chain_seq = BLAKE2b-256(person="bastion.chain", chain_{seq-1} || u64le(seq) || payload)."""
    prev = bytes(range(32))
    expected = hashlib.blake2b(
        prev + (7).to_bytes(8, "little") + b"payload", digest_size=32, person=b"bastion.chain"
    ).digest()
    assert chain_next(prev, 7, b"payload") == expected
    assert chain_next(prev, 8, b"payload") != expected
    assert genesis_chain(bytes(16)) != genesis_chain(b"\x01" + bytes(15))


def test_round_trip_including_empty_payload() -> None:
    payloads = [b"", b"a", bytes(range(256)), b"BREC" * 20]
    image, offsets = build_image(payloads)
    summary = scan_image(image)
    assert summary.torn_tail is None
    assert summary.records_count == len(payloads)
    assert summary.end.offset == len(image)
    scanner = RecordScanner(image, summary.header.start)
    records = list(scanner)
    assert [r.payload for r in records] == payloads
    assert [r.seq for r in records] == [1, 2, 3, 4]
    assert [r.offset for r in records] == offsets
    assert summary.end.head.chain == records[-1].chain


def test_decode_record_reports_each_fault_reason() -> None:
    image, offsets = build_image([b"x" * 10, b"y" * 10])
    genesis = genesis_chain(JOURNAL_ID)
    first = decode_record(image, offsets[0], 1, genesis)
    assert isinstance(first, Record)

    def fault(mutated: bytes, seq: int = 1, offset: int = offsets[0]) -> FaultReason:
        decoded = decode_record(mutated, offset, seq, genesis)
        assert isinstance(decoded, RecordFault)
        return decoded.reason

    mutable = bytearray(image)
    mutable[offsets[0]] ^= 0xFF
    assert fault(bytes(mutable)) is FaultReason.BAD_MAGIC
    mutable = bytearray(image)
    mutable[offsets[0] + 10] ^= 0x01
    assert fault(bytes(mutable)) is FaultReason.BAD_HEADER_CHECKSUM
    mutable = bytearray(image)
    mutable[offsets[0] + RECORD_HEADER_SIZE] ^= 0x01
    assert fault(bytes(mutable)) is FaultReason.BAD_CHAIN
    assert fault(image, seq=2) is FaultReason.SEQ_MISMATCH
    assert fault(image[: offsets[0] + 20]) is FaultReason.TRUNCATED
    assert fault(image[: offsets[0] + RECORD_HEADER_SIZE + 3]) is FaultReason.TRUNCATED


def test_file_header_every_byte_flip_is_detected() -> None:
    image, _ = build_image([b"abc"])
    for offset in range(FILE_HEADER_SIZE):
        mutable = bytearray(image)
        mutable[offset] ^= 0x5A
        with pytest.raises(JournalCorruptError) as info:
            decode_file_header(bytes(mutable))
        assert info.value.offset == 0
        assert info.value.seq is None
        expected = FaultReason.BAD_MAGIC if offset < 8 else FaultReason.BAD_HEADER_CHECKSUM
        assert info.value.reason is expected, offset


def test_file_header_truncated_and_wrong_genesis() -> None:
    image, _ = build_image([])
    for length in range(FILE_HEADER_SIZE):
        with pytest.raises(JournalCorruptError) as info:
            decode_file_header(image[:length])
        assert info.value.reason is FaultReason.TRUNCATED
    continuation = encode_file_header(FileHeader(JOURNAL_ID, 5, bytes(32)))
    assert decode_file_header(continuation).first_seq == 5
    with pytest.raises(AssertionError):
        encode_file_header(FileHeader(JOURNAL_ID, 1, bytes(32)))


def test_scanner_tail_versus_middle_classification() -> None:
    image, offsets = build_image([bytes([i]) * 30 for i in range(6)])
    rng = random.Random(7)
    for _ in range(200):
        offset = rng.randrange(offsets[0], len(image))
        mutable = bytearray(image)
        mutable[offset] ^= rng.randrange(1, 256)
        record_index = max(i for i, start in enumerate(offsets) if start <= offset)
        if record_index == len(offsets) - 1:
            # The last record is complete: a flip there is corruption (was: cut as a torn tail).
            with pytest.raises(JournalTailCorruptError) as tail_info:
                scan_image(bytes(mutable))
            assert (tail_info.value.seq, tail_info.value.offset) == (len(offsets), offsets[-1])
            summary = scan_image(bytes(mutable), repair_tail=True)
            assert summary.torn_tail is not None and summary.torn_tail.repaired
            assert summary.torn_tail.offset == offsets[-1]
            assert summary.end.seq == len(offsets) - 1
        else:
            with pytest.raises(JournalCorruptError) as info:
                scan_image(bytes(mutable))
            assert info.value.seq == record_index + 1
            assert info.value.offset == offsets[record_index]


def test_header_valid_but_wrong_seq_at_tail_is_corruption_not_torn() -> None:
    """A duplicated last record cannot come from a crash: its header verifies, so it must halt."""
    image, offsets = build_image([b"one", b"two"])
    duplicated = image + image[offsets[1] :]
    with pytest.raises(JournalCorruptError) as info:
        scan_image(duplicated)
    assert info.value.reason is FaultReason.SEQ_MISMATCH
    assert info.value.seq == 3
    assert info.value.offset == len(image)


def test_garbage_after_last_record_is_a_torn_tail() -> None:
    """Zero fill (size extended before the data landed) and fewer bytes than a record header are torn
    writes; nothing complete was ever there."""
    image, _ = build_image([b"one", b"two"])
    for garbage in (b"\0" * 100, b"\xff" * 7, b"BREC" + bytes(60)):
        summary = scan_image(image + garbage)
        assert summary.torn_tail is not None and not summary.torn_tail.repaired
        assert summary.torn_tail.offset == len(image)
        assert summary.torn_tail.bytes_dropped == len(garbage)
        assert summary.end.seq == 2


def test_a_complete_final_record_that_fails_is_corruption_not_a_torn_tail() -> None:
    """A full record header's worth of non-zero bytes that do not verify (84 bytes: "BREC" then zeros;
    was treated as torn), and a last record whose header verifies and whose payload is all there but
    whose chain fails: refused with JournalTailCorruptError naming the offset, unless repair_tail."""
    image, offsets = build_image([b"one", b"two"])
    bad_chain = bytearray(image)
    bad_chain[-1] ^= 0x01
    for damaged, offset, reason in ((image + b"BREC" + bytes(80), len(image), FaultReason.BAD_HEADER_CHECKSUM),
                                    (bytes(bad_chain), offsets[1], FaultReason.BAD_CHAIN)):
        with pytest.raises(JournalTailCorruptError) as info:
            scan_image(damaged)
        assert (info.value.offset, info.value.reason) == (offset, reason)
        assert f"offset {offset}" in str(info.value)
        summary = scan_image(damaged, repair_tail=True)
        assert summary.torn_tail is not None and summary.torn_tail.repaired
        assert summary.torn_tail.offset == offset and summary.end.offset == offset


def test_a_short_final_record_is_a_torn_tail_at_every_length() -> None:
    """Every strict prefix of the last record (header cut, or payload cut after a good header) is torn."""
    image, offsets = build_image([b"one", b"a longer second payload"])
    for length in range(offsets[1] + 1, len(image)):
        summary = scan_image(image[:length])
        assert summary.torn_tail is not None and summary.torn_tail.reason is FaultReason.TRUNCATED
        assert not summary.torn_tail.repaired and summary.end.seq == 1


def test_scan_positions_resume_verification_midway() -> None:
    payloads = [bytes([i]) * i for i in range(20)]
    image, offsets = build_image(payloads)
    summary = scan_image(image, positions_wanted={0, 7, 19, 25})
    assert set(summary.positions) == {0, 7, 19}
    assert summary.positions[7].offset == offsets[7]
    tail = list(RecordScanner(image, summary.positions[7]))
    assert [r.seq for r in tail] == list(range(8, 21))
    assert [r.payload for r in tail] == payloads[7:]
