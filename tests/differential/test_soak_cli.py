"""``bastion soak`` end to end (small): both venues, sampled invariants, coverage in the JSON output."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from bastion.cli import app


def test_soak_command_reports_totals_and_coverage() -> None:
    result = CliRunner().invoke(app, ["soak", "--commands", "4000", "--per-seed", "2000", "--mix-commands", "0",
                                      "--invariants-every", "20"])
    assert result.exit_code == 0, result.output
    line = [ln for ln in result.stdout.splitlines() if ln.startswith("{")][-1]
    report = json.loads(line)
    assert report["divergences"] == 0 and report["streams"] == 2
    assert set(report["commands_by_venue"]) == {"default", "soak"}
    assert report["commands"] == sum(report["commands_by_venue"].values()) >= 4_000
    assert report["invariant_checks"] == sum(n // 20 for n in report["commands_by_venue"].values())
    assert report["rejects"]["guardian_unauthorized"] > 0  # default venue: no guardians configured
    assert sum(report["cancels"].values()) > 0 and report["event_types"]["TradeExecuted"] > 0


def test_soak_rejects_an_unknown_venue_name() -> None:
    result = CliRunner().invoke(app, ["soak", "--venue", "nope", "--commands", "10"])
    assert result.exit_code == 2
