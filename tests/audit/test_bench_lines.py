"""Every ``bastion bench`` line has the common fields, and the risk-heavy journal is what it says it is.

Figures are not asserted (benchmarks are programs, not timed tests): only the shape of each line, that
verify reports its ratio to replay on the same journal, and what the risk session's journal contains.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.audit.verify import EXIT_OK, verify_directory
from bastion.bench import WORKLOADS, default_config
from bastion.sim.risk_session import risk_config, risk_session

COMMON = ("workload", "commands_per_s", "latency_us_p50", "latency_us_p99", "latency_us_p999")


@pytest.mark.parametrize("name, n", [("mix", 3_000), ("place", 2_000), ("mix_journal", 2_000),
                                     ("liquidation_sweep", 3_000), ("replay", 2_000), ("verify", 2_000),
                                     ("replay_risk", 2_500), ("verify_risk", 2_500)])
def test_every_workload_line_has_the_common_fields(name: str, n: int) -> None:
    result = WORKLOADS[name](default_config(), n)
    assert result["workload"] == name
    for field in COMMON[1:]:
        assert isinstance(result[field], (int, float)) and result[field] >= 0, (name, field, result)
    assert result["commands_per_s"] > 0 and result["latency_us_p99"] >= result["latency_us_p50"] > 0
    if name.startswith(("replay", "verify")):
        assert result["events_per_s"] > 0 and result["events"] >= result["commands"] > 0
    if name.startswith("verify"):
        assert result["status"] == EXIT_OK and result["verify_to_replay_target"] == 0.25
        ratio = result["events_per_s"] / result["replay_events_per_s"]
        assert result["verify_to_replay_ratio"] == round(ratio, 3)
        assert result["meets_target"] == (ratio >= 0.25)


def test_the_risk_session_exercises_oracle_liquidations_funding_and_bands(tmp_path: Path) -> None:
    """600 minutes with a crash at minute 320..340: oracle updates every minute, liquidations into the book,
    the loss waterfall (ADL or the fund), hourly funding, every fill checked inside the 5 % band; the same
    seed gives the same journal."""
    stats = risk_session(risk_config(), tmp_path / "a", 600, seed=3)
    kinds = stats["events_by_type"]
    assert kinds["IndexPriceSet"] == 600 and kinds["FundingRateSet"] >= 9
    assert kinds["PositionLiquidated"] > 20 and kinds.get("AutoDeleveraged", 0) + kinds.get("InsuranceFundUsed", 0) > 0
    assert kinds["FundingPaid"] > 100
    report = verify_directory(tmp_path / "a")
    assert report.status == EXIT_OK, report.finding
    assert report.band_fills == report.fills == kinds["TradeExecuted"] > 100
    again = risk_session(risk_config(), tmp_path / "b", 600, seed=3)
    assert again == stats and _commands(tmp_path / "a") == _commands(tmp_path / "b")  # the key (journal id) differs


def _commands(directory: Path) -> list[bytes]:
    from bastion.journal.file import JournalReader

    with JournalReader(directory / "journal.bin") as reader:
        return [record.payload for record in reader.records()]
