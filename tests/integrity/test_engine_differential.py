"""Fast vs reference engine with the integrity layer on (bands, velocity, LULD, guardian commands in
the chaos stream), with the full invariant check after every command, plus snapshot/replay."""

from __future__ import annotations

import pytest

from bastion.core.engine import Engine
from bastion.core.events import TradeExecuted
from bastion.sim.differential import run_differential
from bastion.sim.streams import chaos_commands
from tests.integrity._engine_helpers import make_config

INTEGRITY = {
    "band_ppm": 2_000, "band_reference": "last_trade", "band_sweep_orders_max": 3,
    "velocity_threshold_ticks": 25, "velocity_lookback_ns": 200_000, "velocity_pause_ns": 300_000,
    "luld_halt_ns": 400_000, "luld_limit_state_ns": 50_000, "luld_auction_ns": 200_000,
    "luld_reference_update_ppm": 100,
}


@pytest.mark.parametrize("seed", range(8))
def test_fast_and_reference_agree_with_integrity_on(seed: int) -> None:
    result = run_differential(make_config(INTEGRITY), seed, 1_500, check_invariants=True)
    assert result.divergence is None, f"seed {seed}: {result.divergence}"


@pytest.mark.parametrize("seed", range(4))
def test_no_trade_outside_the_band_and_snapshots_replay(seed: int) -> None:
    config = make_config(INTEGRITY)
    engine = Engine(config, check_invariants=True)
    gen = chaos_commands(config, seed, 1_500)
    item = next(gen)
    log = []
    try:
        while True:
            band = engine.integ[1].band
            events = engine.apply(item)
            log.append(item)
            for ev in events:
                if type(ev) is TradeExecuted and ev.instrument_id == 1 and ev.taker_side != 0:
                    assert band.low_ticks <= ev.price_ticks <= band.high_ticks, (seed, item, ev)
            if item.seq % 250 == 0:
                again = Engine.restore(config, engine.snapshot(), check_invariants=True)
                assert again.state_hash() == engine.state_hash()
            item = gen.send(events)
    except StopIteration:
        pass
    replay = Engine(config)
    for item in log:
        replay.apply(item)
    assert replay.state_hash() == engine.state_hash()


# ---- matching modes (BATCH / SEALED_BATCH) and commit-reveal in the chaos stream

def _mode_stats(config, seed: int, n: int) -> tuple[Engine, list, dict[str, int]]:
    """Run the mode-chaos stream on one engine with snapshot round trips; return it, the log, event counts."""
    engine = Engine(config, check_invariants=True)
    gen = chaos_commands(config, seed, n, modes=True)
    counts: dict[str, int] = {}
    log = []
    item = next(gen)
    try:
        while True:
            events = engine.apply(item)
            log.append(item)
            for ev in events:
                counts[type(ev).__name__] = counts.get(type(ev).__name__, 0) + 1
            if item.seq % 300 == 0:
                again = Engine.restore(config, engine.snapshot(), check_invariants=True)
                assert again.state_hash() == engine.state_hash(), (seed, item.seq)
            item = gen.send(events)
    except StopIteration:
        pass
    return engine, log, counts


@pytest.mark.parametrize("seed", range(6))
def test_fast_and_reference_agree_across_matching_mode_switches(seed: int) -> None:
    """Fast vs reference engine (which clears with auction_reference.clear_auction_naive) on chaos
    streams that switch instruments between continuous, batch and sealed-batch matching and commit,
    reveal, mis-reveal and forget sealed bids; full invariants after every command."""
    config = make_config(INTEGRITY if seed % 2 else None)
    result = run_differential(config, seed, 2_000, check_invariants=True, modes=True)
    assert result.divergence is None, f"seed {seed}: {result.divergence}"


def test_mode_chaos_streams_exercise_the_new_paths_and_replay() -> None:
    """The streams above really reach batch clearings, sealed admissions and every bond outcome (so the
    differential test is not vacuous); journal replay and snapshots give the live engine's hash."""
    totals: dict[str, int] = {}
    for seed in range(3):
        config = make_config()
        engine, log, counts = _mode_stats(config, seed, 2_000)
        for kind, count in counts.items():
            totals[kind] = totals.get(kind, 0) + count
        replay = Engine(config)
        for item in log:
            replay.apply(item)
        assert replay.state_hash() == engine.state_hash()
    for kind in ("MatchingModeSet", "AuctionCleared", "OrderCommitted", "RevealReceived", "BondReturned",
                 "BondForfeited"):
        assert totals.get(kind, 0) >= 3, (kind, totals)
