"""Determinism across processes: the bundled sample replayed by two separate interpreters (different
hash seeds, so any iteration over a set or dict keyed by str that leaked into the journal would show)
gives the same state hash and the same summary figures (everything but the wall-clock ``timing``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_CHILD = """
import json, sys
from pathlib import Path
from bastion.sim.replay.runner import run_replay
from bastion.sim.replay.scenario import resolve_scenario
result = run_replay(resolve_scenario(None), Path(sys.argv[1]), write_report=False)
summary = dict(result.summary)
summary.pop("timing")
print(json.dumps(summary, sort_keys=True))
"""


def _run(out: Path, hash_seed: str) -> dict[str, object]:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    src = Path(__file__).resolve().parents[2] / "src"
    env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run([sys.executable, "-c", _CHILD, str(out)], env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    summary: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def test_two_processes_replay_the_sample_identically(tmp_path: Path) -> None:
    first = _run(tmp_path / "a", "1")
    second = _run(tmp_path / "b", "2")
    assert first["state_hash"] == second["state_hash"] == first["journal_replay_state_hash"]
    assert first == second
    assert first["commands"] > 10_000 and first["fills"] > 2_000  # a real run, not an empty one
