"""SIGKILL the venue at random points; after reopening, the directory verifies end to end.

Recovery cuts the torn tails of both the journal and the output log, re-derives the leaves the output
log lacks, and checks them against the newest signed checkpoint; ``bastion verify`` then re-executes
everything on the reference engine. Set BASTION_CRASH_ITERATIONS for a longer soak; failures print
the seed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from bastion.audit.verify import EXIT_OK, verify_directory
from bastion.venue import Venue

CHILD = Path(__file__).with_name("_outlog_child.py")
SEED = int(os.environ.get("BASTION_CRASH_SEED", "424242"))
COMMANDS = 2_500


def _run_until_killed(directory: Path, rng: random.Random) -> tuple[int, bool]:
    proc = subprocess.Popen([sys.executable, str(CHILD), str(directory), str(SEED), str(COMMANDS)],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    acked, stop_after = 0, rng.randint(1, 150)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("ack "):
            acked = int(line.split()[1])
            stop_after -= 1
            if stop_after == 0:
                time.sleep(rng.random() * 0.003)  # often mid-append, mid-fsync or mid-checkpoint
                proc.send_signal(signal.SIGKILL)
                break
        elif line.startswith("done"):
            break
    proc.wait(timeout=60)
    return acked, proc.returncode == 0


def test_sigkill_then_reopen_verifies(config, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    directory = tmp_path / "venue"
    iterations = int(os.environ.get("BASTION_CRASH_ITERATIONS", "4"))
    kills = 0
    for iteration in range(iterations):
        acked, finished = _run_until_killed(directory, rng)
        kills += not finished
        with Venue.open(config, directory) as venue:
            assert venue.engine.seq >= acked, f"seed {SEED} iteration {iteration}: lost acknowledged commands"
        report = verify_directory(directory)
        assert report.status == EXIT_OK, f"seed {SEED} iteration {iteration}: {report.finding}"
        if finished:
            break
    assert kills >= 1
