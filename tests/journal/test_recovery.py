"""Recovery = newest valid snapshot + journal tail, compared with a clean replay (exchange-core's
journaling test: restored state hash == original final state hash)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.journal.errors import JournalCorruptError, RecoveryError
from bastion.journal.file import JournalReader, JournalWriter
from bastion.journal.recovery import RecoveryResult, recover
from bastion.journal.snapshot import list_snapshots, snapshot_name, write_snapshot

from ._writer_child import (
    ToyState,
    clean_replay,
    payload_for,
    toy_apply,
    toy_empty,
    toy_encode,
    toy_hash,
    toy_restore,
)


def build(
    tmp_path: Path, records_count: int, snapshot_seqs: tuple[int, ...]
) -> tuple[Path, Path]:
    """Journal of payload_for(1..records_count) with snapshots of the toy state at snapshot_seqs."""
    journal, snaps = tmp_path / "journal.bin", tmp_path / "snapshots"
    state = toy_empty()
    with JournalWriter.open(journal) as writer:
        if 0 in snapshot_seqs:
            head = writer.durable_head
            write_snapshot(snaps, 0, head.chain, toy_encode(state), toy_hash(state))
        for seq in range(1, records_count + 1):
            writer.append(payload_for(seq))
            toy_apply(state, payload_for(seq))
            if seq in snapshot_seqs:
                writer.commit()
                head = writer.durable_head
                write_snapshot(snaps, seq, head.chain, toy_encode(state), toy_hash(state))
    return journal, snaps


def run(journal: Path, snaps: Path) -> RecoveryResult[ToyState]:
    return recover(journal, snaps, toy_restore, toy_apply, toy_hash, toy_empty)


def corrupt_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("records_count", [0, 1, 57, 400])
def test_full_replay_without_snapshots_equals_clean_replay(
    tmp_path: Path, records_count: int
) -> None:
    journal, snaps = build(tmp_path, records_count, ())
    result = run(journal, snaps)
    assert result.snapshot_used is None
    assert result.snapshots_rejected == []
    assert (result.last_seq, result.replayed_records) == (records_count, records_count)
    assert toy_hash(result.state) == toy_hash(clean_replay(records_count))
    assert result.torn_tail is None


def test_newest_snapshot_is_used_and_only_the_tail_replayed(tmp_path: Path) -> None:
    journal, snaps = build(tmp_path, 300, (0, 100, 200, 250))
    result = run(journal, snaps)
    assert result.snapshot_used == snaps / snapshot_name(250)
    assert result.replayed_records == 50
    assert result.last_seq == 300
    assert toy_hash(result.state) == toy_hash(clean_replay(300))
    with JournalReader(journal) as reader:
        assert result.head == reader.head


def test_snapshot_at_journal_head_replays_nothing(tmp_path: Path) -> None:
    journal, snaps = build(tmp_path, 120, (120,))
    result = run(journal, snaps)
    assert (result.replayed_records, result.last_seq) == (0, 120)
    assert toy_hash(result.state) == toy_hash(clean_replay(120))


def test_corrupted_snapshots_fall_back_to_older_ones(tmp_path: Path) -> None:
    journal, snaps = build(tmp_path, 300, (100, 200, 250))
    corrupt_byte(snaps / snapshot_name(250), 70)
    result = run(journal, snaps)
    assert result.snapshot_used == snaps / snapshot_name(200)
    assert [(p.name, reason.split(":")[0]) for p, reason in result.snapshots_rejected] == [
        (snapshot_name(250), "corrupt")
    ]
    assert result.replayed_records == 100
    assert toy_hash(result.state) == toy_hash(clean_replay(300))
    for path in list_snapshots(snaps):
        corrupt_byte(path, 3)
    result = run(journal, snaps)
    assert result.snapshot_used is None
    assert len(result.snapshots_rejected) == 3
    assert result.replayed_records == 300
    assert toy_hash(result.state) == toy_hash(clean_replay(300))


def test_snapshot_with_wrong_state_hash_is_rejected(tmp_path: Path) -> None:
    journal, snaps = build(tmp_path, 200, (100,))
    with JournalReader(journal) as reader:
        position = reader.scan({150}).positions[150]
    state = clean_replay(150)
    write_snapshot(snaps, 150, position.chain, toy_encode(state), toy_hash(clean_replay(149)))
    result = run(journal, snaps)
    assert result.snapshots_rejected == [
        (snaps / snapshot_name(150), "state hash mismatch after restore")
    ]
    assert result.snapshot_used == snaps / snapshot_name(100)
    assert toy_hash(result.state) == toy_hash(clean_replay(200))


def test_snapshot_of_another_history_is_rejected(tmp_path: Path) -> None:
    journal, snaps = build(tmp_path, 200, (50,))
    state = clean_replay(150)
    write_snapshot(snaps, 150, b"\x07" * 32, toy_encode(state), toy_hash(state))
    result = run(journal, snaps)
    assert [reason for _, reason in result.snapshots_rejected] == [
        "chain head mismatch at seq 150: not a state of this journal"
    ]
    assert result.snapshot_used == snaps / snapshot_name(50)
    assert toy_hash(result.state) == toy_hash(clean_replay(200))


def test_snapshot_beyond_journal_head_is_rejected_and_reported(tmp_path: Path) -> None:
    journal, snaps = build(tmp_path, 100, (40,))
    state = clean_replay(100)
    write_snapshot(snaps, 180, b"\0" * 32, toy_encode(state), toy_hash(state))
    result = run(journal, snaps)
    assert result.snapshots_rejected[0][1] == "snapshot seq 180 is beyond the journal head 100"
    assert result.snapshot_used == snaps / snapshot_name(40)
    assert toy_hash(result.state) == toy_hash(clean_replay(100))


def test_restore_failure_rejects_the_snapshot(tmp_path: Path) -> None:
    journal, snaps = build(tmp_path, 100, (30, 60))
    with JournalReader(journal) as reader:
        chain = reader.scan({80}).positions[80].chain
    write_snapshot(snaps, 80, chain, b"not=a=valid=encoding\n", b"h")
    result = run(journal, snaps)
    assert result.snapshots_rejected[0][1].startswith("restore failed: ValueError")
    assert result.snapshot_used == snaps / snapshot_name(60)
    assert toy_hash(result.state) == toy_hash(clean_replay(100))


def test_torn_tail_is_reported_and_not_replayed(tmp_path: Path) -> None:
    journal, snaps = build(tmp_path, 100, (50,))
    size = journal.stat().st_size
    with open(journal, "r+b") as handle:
        handle.truncate(size - 5)
    result = run(journal, snaps)
    assert result.torn_tail is not None
    assert result.last_seq == 99
    assert toy_hash(result.state) == toy_hash(clean_replay(99))
    assert journal.stat().st_size == size - 5  # recovery never modifies the journal


def test_corrupt_journal_halts_recovery(tmp_path: Path) -> None:
    journal, snaps = build(tmp_path, 100, (50,))
    with JournalReader(journal) as reader:
        offsets = {record.seq: record.offset for record in reader}
    for seq in (10, 70):  # before and after the snapshot: the whole journal is verified
        corrupt_byte(journal, offsets[seq] + 70)
        with pytest.raises(JournalCorruptError) as info:
            run(journal, snaps)
        assert (info.value.seq, info.value.offset) == (seq, offsets[seq])
        corrupt_byte(journal, offsets[seq] + 70)  # undo


def test_continuation_segment_needs_a_snapshot(tmp_path: Path) -> None:
    first, snaps = build(tmp_path, 100, (100,))
    with JournalReader(first) as reader:
        head = reader.head
    second = tmp_path / "segment-2.bin"
    with JournalWriter.open(second, segment_start=head) as writer:
        for seq in range(101, 161):
            assert writer.append(payload_for(seq)) == seq
    result = run(second, snaps)
    assert result.snapshot_used == snaps / snapshot_name(100)
    assert (result.last_seq, result.replayed_records) == (160, 60)
    assert toy_hash(result.state) == toy_hash(clean_replay(160))
    with pytest.raises(RecoveryError):
        run(second, tmp_path / "no-snapshots")
