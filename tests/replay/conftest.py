"""Fixtures of the replay tests: one run of the bundled sample shared by the tests that only read it."""

from __future__ import annotations

import time

import pytest

from bastion.sim.replay.runner import ReplayResult, run_replay
from bastion.sim.replay.scenario import resolve_scenario


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> ReplayResult:
    """The default scenario (bundled sample) from a fresh state, with every cross-check switched on:
    engine invariants after every command and the fast risk scan compared with the exact one."""
    out = tmp_path_factory.mktemp("replay") / "sample"
    started = time.perf_counter()
    result = run_replay(resolve_scenario(None), out, shared_data=None, check_risk=True, check_invariants=True)
    print(f"\nbundled sample replay: {time.perf_counter() - started:.1f} s wall (with checks and report)")
    return result
