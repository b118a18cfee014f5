"""Snapshot files: atomic write, listing order, verification of every byte."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion.journal.errors import SnapshotCorruptError
from bastion.journal.snapshot import (
    SNAPSHOT_HEADER_SIZE,
    list_snapshots,
    load_snapshot,
    snapshot_name,
    write_snapshot,
)

CHAIN = bytes(range(32))


def test_round_trip(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path / "snaps", 42, CHAIN, b"state-bytes", b"h" * 32)
    assert path.name == "snapshot-00000000000000000042.bin"
    assert path.name == snapshot_name(42)
    snapshot = load_snapshot(path)
    assert (snapshot.seq, snapshot.chain_head) == (42, CHAIN)
    assert (snapshot.state_bytes, snapshot.state_hash, snapshot.path) == (
        b"state-bytes",
        b"h" * 32,
        path,
    )
    assert [p.name for p in (tmp_path / "snaps").iterdir()] == [path.name]  # no temp left


def test_empty_state_and_short_hash(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, 0, CHAIN, b"", b"\x01")
    snapshot = load_snapshot(path)
    assert (snapshot.seq, snapshot.state_bytes, snapshot.state_hash) == (0, b"", b"\x01")


def test_list_newest_first_ignoring_other_files(tmp_path: Path) -> None:
    for seq in (5, 1000, 17, 0):
        write_snapshot(tmp_path, seq, CHAIN, b"s%d" % seq, b"h")
    (tmp_path / ".snapshot-00000000000000000099.bin.tmp").write_bytes(b"partial")
    (tmp_path / "snapshot-12.bin").write_bytes(b"not padded")
    (tmp_path / "notes.txt").write_text("x")
    names = [p.name for p in list_snapshots(tmp_path)]
    assert names == [snapshot_name(s) for s in (1000, 17, 5, 0)]
    assert list_snapshots(tmp_path / "missing") == []


def test_every_byte_flip_and_truncation_is_rejected(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, 7, CHAIN, b"some state", b"hash-bytes")
    data = path.read_bytes()
    assert len(data) == SNAPSHOT_HEADER_SIZE + 10 + 10 + 32
    for offset in range(len(data)):
        mutated = bytearray(data)
        mutated[offset] ^= 0x40
        path.write_bytes(bytes(mutated))
        with pytest.raises(SnapshotCorruptError):
            load_snapshot(path)
    for length in range(len(data)):
        path.write_bytes(data[:length])
        with pytest.raises(SnapshotCorruptError):
            load_snapshot(path)
    path.write_bytes(data + b"\0")
    with pytest.raises(SnapshotCorruptError):
        load_snapshot(path)
    path.write_bytes(data)
    assert load_snapshot(path).seq == 7


def test_renamed_snapshot_is_rejected(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, 7, CHAIN, b"state", b"hash")
    renamed = tmp_path / snapshot_name(8)
    os.rename(path, renamed)
    with pytest.raises(SnapshotCorruptError, match="name says seq 8"):
        load_snapshot(renamed)


def test_overwrite_same_seq_is_atomic_replace(tmp_path: Path) -> None:
    write_snapshot(tmp_path, 3, CHAIN, b"old", b"h")
    write_snapshot(tmp_path, 3, CHAIN, b"new", b"h")
    assert load_snapshot(tmp_path / snapshot_name(3)).state_bytes == b"new"


def test_argument_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_snapshot(tmp_path, 1, b"short", b"", b"h")
    with pytest.raises(ValueError):
        write_snapshot(tmp_path, 1, CHAIN, b"", b"")
    with pytest.raises(ValueError):
        write_snapshot(tmp_path, 1, CHAIN, b"", b"h" * 65)
    with pytest.raises(ValueError):
        write_snapshot(tmp_path, -1, CHAIN, b"", b"h")
