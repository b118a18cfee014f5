"""Journal writer child process for the kill -9 crash test, plus the toy state machine it drives.

Run as a script::

    python _writer_child.py JOURNAL SNAPSHOT_DIR SEED POLICY

It opens the journal (truncating any torn tail left by the previous kill), recovers the toy state,
then loops: append a seeded-random number of deterministic payloads, ``commit()``, print the acked
(durable) seq as one line on stdout and flush. Every few commits it writes a snapshot at the durable
seq. The parent SIGKILLs it at a random moment. A payload depends only on its seq, so the parent can
rebuild the exact expected history.

Tests import the toy state machine from here (``payload_for``, ``toy_apply``, ...).
"""

from __future__ import annotations

import hashlib
import random
import struct
import sys
from pathlib import Path

if __name__ == "__main__":  # pragma: no cover - make ``bastion`` importable without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from bastion.journal.file import FsyncPolicy, JournalWriter
from bastion.journal.recovery import recover
from bastion.journal.snapshot import write_snapshot

ToyState = dict[str, int]

_PAYLOAD = struct.Struct("<Q8sq")
KEYS_COUNT = 13
GROUPS_MAX = 1_000_000
SNAPSHOT_EVERY_COMMITS = 7
LARGE_EVERY = 100
LARGE_FILLER_BYTES = 256 << 10


def payload_for(seq: int) -> bytes:
    """Deterministic payload of record ``seq``: seq, key, signed delta, then filler bytes.

    Filler is 0..39 bytes, except every ``LARGE_EVERY``-th seq carries ``LARGE_FILLER_BYTES`` so
    that some group writes span many pages and a SIGKILL can land inside one (a torn tail).
    """
    key = f"k{(seq * 7919) % KEYS_COUNT:02d}".encode()
    delta = (seq * 2654435761) % 1001 - 500
    filler_size = LARGE_FILLER_BYTES if seq % LARGE_EVERY == 0 else seq % 40
    filler = (bytes(range(256)) * (filler_size // 256 + 1))[seq % 256 : seq % 256 + filler_size]
    return _PAYLOAD.pack(seq, key.ljust(8, b"\0"), delta) + filler


def toy_empty() -> ToyState:
    """The state before seq 1."""
    return {}


def toy_apply(state: ToyState, payload: bytes) -> None:
    """Apply one payload: add its delta to its key's counter, count records under ``"n"``."""
    seq, key_raw, delta = _PAYLOAD.unpack_from(payload)
    assert payload == payload_for(seq), f"payload of seq {seq} is not the deterministic one"
    key = key_raw.rstrip(b"\0").decode()
    state[key] = state.get(key, 0) + delta
    state["n"] = state.get("n", 0) + 1


def toy_encode(state: ToyState) -> bytes:
    """Canonical encoding: ``key=value`` lines sorted by key."""
    return "".join(f"{key}={state[key]}\n" for key in sorted(state)).encode()


def toy_restore(data: bytes) -> ToyState:
    """Inverse of :func:`toy_encode`."""
    state: ToyState = {}
    for line in data.decode().splitlines():
        key, value = line.split("=")
        state[key] = int(value)
    return state


def toy_hash(state: ToyState) -> bytes:
    """SHA-256 of the canonical encoding."""
    return hashlib.sha256(toy_encode(state)).digest()


def clean_replay(last_seq: int) -> ToyState:
    """State after applying payloads 1..last_seq to the empty state."""
    state = toy_empty()
    for seq in range(1, last_seq + 1):
        toy_apply(state, payload_for(seq))
    return state


def main(argv: list[str]) -> int:
    journal, snapshots, seed, policy = Path(argv[1]), Path(argv[2]), int(argv[3]), argv[4]
    rng = random.Random(seed)
    writer = JournalWriter.open(journal, FsyncPolicy(policy), group_records_max=16)
    result = recover(journal, snapshots, toy_restore, toy_apply, toy_hash, toy_empty)
    assert result.last_seq == writer.last_durable_seq
    assert not result.snapshots_rejected, result.snapshots_rejected
    state = result.state
    print(f"start {writer.last_durable_seq}", flush=True)
    for group in range(GROUPS_MAX):
        for _ in range(rng.randint(1, 40)):
            payload = payload_for(writer.last_appended_seq + 1)
            writer.append(payload)
            toy_apply(state, payload)
        durable_seq = writer.commit()
        print(f"ack {durable_seq}", flush=True)
        if group % SNAPSHOT_EVERY_COMMITS == SNAPSHOT_EVERY_COMMITS - 1:
            head = writer.durable_head
            assert head.seq == writer.last_appended_seq
            write_snapshot(snapshots, head.seq, head.chain, toy_encode(state), toy_hash(state))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
