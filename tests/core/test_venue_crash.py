"""Crash safety of the journaled venue: SIGKILL the writer at random points, reopen, and check that
every acknowledged command is present, the tail is clean, and the state equals a clean replay.

Set BASTION_CRASH_ITERATIONS for a longer soak (default 8 kills); a failure prints the seed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from bastion.core.engine import Engine
from bastion.journal.file import JournalReader
from bastion.venue import JOURNAL_NAME, Venue
from tests.core._venue_child import session

CHILD = Path(__file__).with_name("_venue_child.py")
SEED = int(os.environ.get("BASTION_CRASH_SEED", "20261122"))
COMMANDS = 3_000


def run_child_until_killed(directory: Path, rng: random.Random) -> tuple[int, bool]:
    """Start the child, let it acknowledge a random number of groups, SIGKILL it. Returns
    (highest acknowledged seq, whether it finished before the kill)."""
    proc = subprocess.Popen([sys.executable, str(CHILD), str(directory), str(SEED), str(COMMANDS)],
                            stdout=subprocess.PIPE, text=True)
    acked, stop_after = 0, rng.randint(1, 120)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("ack "):
            acked = max(acked, int(line.split()[1]))
            stop_after -= 1
            if stop_after == 0:
                if rng.random() < 0.5:  # sometimes mid-append rather than right after an ack
                    time.sleep(rng.random() * 0.002)
                proc.send_signal(signal.SIGKILL)
                break
        elif line.startswith("done"):
            break
    proc.wait(timeout=60)
    return acked, proc.returncode == 0


def test_sigkill_loses_nothing_acknowledged(tmp_path: Path, config) -> None:
    rng = random.Random(SEED)
    _, items = session(SEED, COMMANDS)
    iterations = int(os.environ.get("BASTION_CRASH_ITERATIONS", "8"))
    directory = tmp_path / "venue"
    kills = 0
    for iteration in range(iterations):
        acked, finished = run_child_until_killed(directory, rng)
        with Venue.open(config, directory) as venue:
            seq = venue.engine.seq
            assert seq >= acked, f"seed {SEED} iteration {iteration}: acknowledged {acked} but recovered {seq}"
            clean = Engine(config)
            for item in items[:seq]:
                clean.apply(item)
            assert venue.engine.state_hash() == clean.state_hash(), f"seed {SEED} iteration {iteration}"
        with JournalReader(directory / JOURNAL_NAME) as reader:
            assert reader.torn_tail is None and reader.head.seq == seq
            assert [r.seq for r in reader.records()] == list(range(1, seq + 1))
        kills += not finished
        if finished:
            break
    assert kills >= 1
