"""The liquidation-sweep benchmark runs end to end on a small population (figures are not asserted)."""

from __future__ import annotations

from bastion.sim.risk_bench import bench_liquidation_sweep


def test_bench_liquidation_sweep_smoke() -> None:
    result = bench_liquidation_sweep(n_accounts=3_000, liquidatable_fraction=0.01, iterations=4)
    assert result["workload"] == "liquidation_sweep" and result["accounts"] == 3_000
    assert result["latency_ms_p50"] > 0 and result["latency_ms_p99"] >= result["latency_ms_p50"]
    assert result["orders_mean"] > 0


def test_bench_liquidation_engine_smoke() -> None:
    """The engine-level variant: Engine.apply(SetOraclePrice) liquidates into the LP ladder each move."""
    from bastion.sim.risk_bench import bench_liquidation_engine

    result = bench_liquidation_engine(n_accounts=2_000, liquidatable_fraction=0.01, iterations=4)
    assert result["workload"] == "liquidation_engine" and result["accounts"] == 2_000
    assert result["latency_ms_p50"] > 0 and result["latency_ms_p99"] >= result["latency_ms_p50"]
    assert result["liquidations_mean"] >= 10 and result["queue_left_end"] == 0
