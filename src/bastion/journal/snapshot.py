"""Snapshots of engine state, bound to a journal position, written atomically.

A snapshot file ``snapshot-<seq:020d>.bin`` holds (all integers little-endian)::

      0   8  magic            b"BSTNSNAP"
      8   2  version          u16 = 1
     10   2  state_hash_size  u16, 1..64
     12   4  reserved         u32 = 0
     16   8  seq              u64, last journal record applied to the state
     24  32  chain_head       journal chain value after record ``seq``
     56   8  state_size       u64, bytes of state
     64   h  state_hash       the engine's hash of the state (opaque here)
   64+h   n  state_bytes      the engine's canonical encoding of the state (opaque here)
  end-32 32  checksum         BLAKE2b-256(person="bastion.snap") over every byte before it

The file is written to a temp name, fsynced, renamed into place and the directory fsynced, so a
crash leaves either the old set of snapshots or the new one, never a partial file under the name.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bastion.journal.errors import JournalIOError, SnapshotCorruptError
from bastion.journal.file import _write_all, fsync_directory
from bastion.journal.records import CHAIN_SIZE, SEQ_MAX

__all__ = [
    "SNAPSHOT_HEADER_SIZE",
    "SNAPSHOT_MAGIC",
    "STATE_HASH_SIZE_MAX",
    "Snapshot",
    "list_snapshots",
    "load_snapshot",
    "snapshot_name",
    "snapshot_seq",
    "write_snapshot",
]

SNAPSHOT_MAGIC: Final = b"BSTNSNAP"
SNAPSHOT_VERSION: Final = 1
STATE_HASH_SIZE_MAX: Final = 64
_HEADER: Final = struct.Struct("<8sHHIQ32sQ")
SNAPSHOT_HEADER_SIZE: Final = _HEADER.size
_CHECKSUM_SIZE: Final = 32
_PERSON: Final = b"bastion.snap"
_NAME_RE: Final = re.compile(r"snapshot-(\d{20})\.bin")

assert SNAPSHOT_HEADER_SIZE == 64


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A verified snapshot.

    Attributes:
        seq: last journal seq applied to ``state_bytes`` (0 = before any record).
        chain_head: journal chain value after ``seq`` (32 bytes).
        state_bytes: opaque encoded state.
        state_hash: opaque hash of the state as computed by the engine (1..64 bytes).
        path: file it was loaded from or written to.
    """

    seq: int
    chain_head: bytes
    state_bytes: bytes
    state_hash: bytes
    path: Path


def snapshot_name(seq: int) -> str:
    """File name of the snapshot at ``seq``: ``snapshot-<seq zero-padded to 20 digits>.bin``."""
    assert 0 <= seq <= SEQ_MAX
    return f"snapshot-{seq:020d}.bin"


def snapshot_seq(path: str | os.PathLike[str]) -> int | None:
    """The seq encoded in a snapshot file name, or ``None`` if the name is not a snapshot name."""
    match = _NAME_RE.fullmatch(Path(path).name)
    return None if match is None else int(match.group(1))


def _checksum(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=_CHECKSUM_SIZE, person=_PERSON).digest()


def _encode(seq: int, chain_head: bytes, state_bytes: bytes, state_hash: bytes) -> bytes:
    header = _HEADER.pack(
        SNAPSHOT_MAGIC, SNAPSHOT_VERSION, len(state_hash), 0, seq, chain_head, len(state_bytes)
    )
    body = header + state_hash + state_bytes
    return body + _checksum(body)


def write_snapshot(
    directory: str | os.PathLike[str],
    seq: int,
    chain_head: bytes,
    state_bytes: bytes,
    state_hash: bytes,
) -> Path:
    """Write the snapshot of the state after journal record ``seq`` atomically; return its path.

    Only snapshot state whose records are durable (seq <= the writer's ``last_durable_seq``):
    otherwise a crash can leave a snapshot ahead of the journal, which recovery rejects.

    Args:
        directory: snapshot directory (created if missing).
        seq: 0..2**64-1, last applied journal seq.
        chain_head: 32-byte journal chain value after ``seq``.
        state_bytes: canonical encoded state.
        state_hash: engine hash of the state, 1..64 bytes.

    Raises:
        ValueError: argument sizes out of range.
        JournalIOError: an OS call failed (no partial file is left under the final name).
    """
    if not 0 <= seq <= SEQ_MAX:
        raise ValueError(f"seq {seq} out of range")
    if len(chain_head) != CHAIN_SIZE:
        raise ValueError(f"chain_head must be {CHAIN_SIZE} bytes")
    if not 1 <= len(state_hash) <= STATE_HASH_SIZE_MAX:
        raise ValueError(f"state_hash must be 1..{STATE_HASH_SIZE_MAX} bytes")
    directory = Path(directory)
    final = directory / snapshot_name(seq)
    tmp = directory / f".{final.name}.tmp"
    data = _encode(seq, chain_head, state_bytes, state_hash)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
    except OSError as exc:
        raise JournalIOError(f"{final}: cannot write snapshot: {exc}") from exc
    fsync_directory(directory)
    return final


def list_snapshots(directory: str | os.PathLike[str]) -> list[Path]:
    """Return snapshot files in ``directory``, newest (highest seq) first; [] if it is missing.

    Only names matching ``snapshot-<20 digits>.bin`` count; temp files are ignored. Contents are not
    verified here (see :func:`load_snapshot`).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found: list[tuple[int, Path]] = []
    for entry in directory.iterdir():
        seq = snapshot_seq(entry)
        if seq is not None and entry.is_file():
            found.append((seq, entry))
    found.sort(key=lambda item: item[0], reverse=True)
    return [path for _, path in found]


def load_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """Read and verify a snapshot file.

    Raises:
        SnapshotCorruptError: unreadable, wrong size, magic, version, reserved field, checksum, or
            the seq in the file differs from the seq in its name.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SnapshotCorruptError(str(path), f"unreadable: {exc}") from exc
    minimum = SNAPSHOT_HEADER_SIZE + _CHECKSUM_SIZE
    if len(data) < minimum:
        raise SnapshotCorruptError(str(path), f"{len(data)} bytes, shorter than {minimum}")
    body, checksum = data[:-_CHECKSUM_SIZE], data[-_CHECKSUM_SIZE:]
    if _checksum(body) != checksum:
        raise SnapshotCorruptError(str(path), "checksum mismatch")
    magic, version, hash_size, reserved, seq, chain_head, state_size = _HEADER.unpack(
        body[:SNAPSHOT_HEADER_SIZE]
    )
    if magic != SNAPSHOT_MAGIC or version != SNAPSHOT_VERSION or reserved != 0:
        raise SnapshotCorruptError(str(path), f"bad magic/version {magic!r}/{version}")
    if not 1 <= hash_size <= STATE_HASH_SIZE_MAX:
        raise SnapshotCorruptError(str(path), f"state_hash_size {hash_size} out of range")
    if SNAPSHOT_HEADER_SIZE + hash_size + state_size != len(body):
        raise SnapshotCorruptError(str(path), "sizes do not add up to the file length")
    name_seq = snapshot_seq(path)
    if name_seq is not None and name_seq != seq:
        raise SnapshotCorruptError(str(path), f"file name says seq {name_seq}, header {seq}")
    state_hash = body[SNAPSHOT_HEADER_SIZE : SNAPSHOT_HEADER_SIZE + hash_size]
    state_bytes = body[SNAPSHOT_HEADER_SIZE + hash_size :]
    assert len(state_bytes) == state_size
    return Snapshot(seq, chain_head, state_bytes, state_hash, path)
