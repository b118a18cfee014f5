"""A short latency-arbitrage run on the engine: the sniper's profit rate collapses in batch mode (BCS delta/tau)."""

from __future__ import annotations

import json
from pathlib import Path

from bastion.sim.latency_arb import LatencyArbParams, run_latency_arbitrage

SEED = 3


def test_sniper_profit_rate_collapses_under_batch_auctions(tmp_path: Path) -> None:
    params = LatencyArbParams(duration_ns=15_000_000_000, batch_intervals_ns=(100_000, 1_000_000, 10_000_000, 100_000_000))
    summary = run_latency_arbitrage(tmp_path, SEED, params)
    cont = summary["continuous"]["sniper_pnl_ticks_lots_per_s"]
    rows = {row["interval_ns"]: row for row in summary["batch"]}
    assert cont > 100, f"seed {SEED}: continuous sniping should pay ({cont})"
    # tau == delta: every race is won, exactly as in continuous matching.
    assert rows[100_000]["sniper_pnl_ticks_lots_per_s"] == cont
    # tau = 10 x delta and beyond: a small fraction of the continuous rent (BCS: about delta/tau).
    assert rows[1_000_000]["sniper_pnl_ticks_lots_per_s"] < 0.25 * cont, f"seed {SEED}"
    for tau in (10_000_000, 100_000_000):
        assert rows[tau]["sniper_pnl_ticks_lots_per_s"] < 0.05 * cont, f"seed {SEED}, tau {tau}"
    # The maker keeps (about) its quoted spread once batches are long.
    quoted = 2 * params.half_spread_ticks
    assert summary["continuous"]["maker_effective_spread_ticks"] < 0.5 * quoted
    assert rows[100_000_000]["maker_effective_spread_ticks"] > 0.9 * quoted
    # Batch mode runs on the engine: every fill came out of an AuctionCleared, none in continuous mode.
    assert summary["continuous"]["clearings"] == 0
    assert all(row["clearings"] > 0 and row["sniper_fills"] + row["maker_lots"] > 0 for row in summary["batch"])
    assert "BCS prediction" in (tmp_path / "latency_arb.html").read_text()
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["continuous"] == summary["continuous"]
    assert (tmp_path / "latency_arb.png").stat().st_size > 10_000
    again = run_latency_arbitrage(tmp_path / "again", SEED, params)
    assert again["batch"] == summary["batch"] and again["continuous"] == summary["continuous"]


def test_latency_arb_command_writes_the_report_and_prints_the_table(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bastion.cli import app

    result = CliRunner().invoke(app, ["latency-arb", "--out", str(tmp_path), "--seed", str(SEED), "--seconds", "5"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["params"]["duration_ns"] == 5_000_000_000 and summary["seed"] == SEED
    assert "continuous" in result.output and "batch 100 ms" in result.output
    assert (tmp_path / "latency_arb.html").exists()
    bad = CliRunner().invoke(app, ["latency-arb", "--out", str(tmp_path / "bad"), "--seconds", "0"])
    assert bad.exit_code == 2 and not (tmp_path / "bad").exists()
