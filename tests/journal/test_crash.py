"""kill -9 loop: a child appends and acknowledges; the parent kills it at seeded-random moments.

After every kill, on the same journal and snapshot directory:
- every acknowledged seq is present with its exact payload (payloads depend only on seq);
- opening the writer leaves a clean tail, and the reader then sees no torn tail;
- recovery (snapshot + tail) gives the toy state hash of a clean in-memory replay.

``BASTION_CRASH_ITERATIONS`` (default 20) sets the number of kills; ``BASTION_CRASH_SEED`` the seed,
printed on failure. Only process crashes are simulated here (the page cache survives); power loss is
covered by ``test_file.py::test_power_loss_keeps_every_acknowledged_record``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from bastion.journal.file import JournalReader, JournalWriter
from bastion.journal.recovery import recover

from ._writer_child import ToyState, payload_for, toy_apply, toy_empty, toy_hash, toy_restore

CHILD = Path(__file__).with_name("_writer_child.py")
SRC = Path(__file__).resolve().parents[2] / "src"
ITERATIONS = int(os.environ.get("BASTION_CRASH_ITERATIONS", "20"))
SEED = int(os.environ.get("BASTION_CRASH_SEED", "1729"))
CHILD_LINES_MAX = 1_000_000
#: Start a fresh journal every this many kills, so a long soak stays linear in time.
KILLS_PER_JOURNAL = 10


def run_child_and_kill(
    journal: Path, snaps: Path, rng: random.Random, policy: str
) -> tuple[int, int]:
    """Start the child, await a random number of acks, SIGKILL it; return (start seq, max ack)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    child_seed = rng.randrange(1 << 30)
    process = subprocess.Popen(
        [sys.executable, str(CHILD), str(journal), str(snaps), str(child_seed), policy],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert process.stdout is not None
    acks_wanted = rng.randint(0, 60)
    start_line = process.stdout.readline()
    assert start_line.startswith("start "), (start_line, process.stderr and process.stderr.read())
    start_seq = int(start_line.split()[1])
    acked = start_seq
    for _ in range(acks_wanted):
        line = process.stdout.readline()
        assert line.startswith("ack "), (line, process.stderr and process.stderr.read())
        acked = max(acked, int(line.split()[1]))
    if rng.random() < 0.7:
        time.sleep(rng.uniform(0, 0.004))  # land the kill inside append/write/fsync/snapshot
    process.send_signal(signal.SIGKILL)
    remaining, errors = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, errors
    for line in remaining.splitlines()[:CHILD_LINES_MAX]:  # printed before death = acknowledged
        if line.startswith("ack "):
            acked = max(acked, int(line.split()[1]))
    return start_seq, acked


class CleanReplay:
    """The toy state after payloads 1..seq, advanced incrementally (keeps the loop linear)."""

    def __init__(self) -> None:
        self.seq = 0
        self.state: ToyState = toy_empty()

    def hash_at(self, seq: int) -> bytes:
        assert seq >= self.seq, "the journal head never moves backwards"
        for next_seq in range(self.seq + 1, seq + 1):
            toy_apply(self.state, payload_for(next_seq))
        self.seq = seq
        return toy_hash(self.state)


def verify_after_crash(journal: Path, snaps: Path, acked_max: int, replay: CleanReplay) -> int:
    """Check the invariants listed in the module docstring; return the journal head seq."""
    with JournalWriter.open(journal) as writer:  # truncates a torn tail, if the kill left one
        head_seq = writer.last_durable_seq
    assert head_seq >= acked_max, f"acknowledged seq {acked_max} lost; journal head {head_seq}"
    with JournalReader(journal) as reader:
        for expected_seq, record in enumerate(reader, start=1):
            assert record.seq == expected_seq
            assert record.payload == payload_for(record.seq), f"payload of seq {record.seq}"
        assert reader.torn_tail is None
        assert reader.head.seq == head_seq
    result = recover(journal, snaps, toy_restore, toy_apply, toy_hash, toy_empty)
    assert result.snapshots_rejected == []
    assert result.last_seq == head_seq
    assert toy_hash(result.state) == replay.hash_at(head_seq)
    return head_seq


def test_kill9_loop_never_loses_acknowledged_records(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    acked_total = 0
    for first in range(0, ITERATIONS, KILLS_PER_JOURNAL):
        directory = tmp_path / f"run-{first}"
        journal, snaps = directory / "journal.bin", directory / "snapshots"
        directory.mkdir()
        acked_max, head_seq, replay = 0, 0, CleanReplay()
        for iteration in range(first, min(ITERATIONS, first + KILLS_PER_JOURNAL)):
            policy = rng.choice(["always", "group", "none"])
            try:
                start_seq, acked = run_child_and_kill(journal, snaps, rng, policy)
                assert start_seq == head_seq  # the child resumed at the verified head
                acked_max = max(acked_max, acked)
                head_seq = verify_after_crash(journal, snaps, acked_max, replay)
            except AssertionError as exc:
                context = f"BASTION_CRASH_SEED={SEED} iteration={iteration} policy={policy}"
                raise AssertionError(f"{context}: {exc}") from exc
        acked_total += acked_max
    assert acked_total > 0 or ITERATIONS == 0
