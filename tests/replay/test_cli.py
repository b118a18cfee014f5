"""``register(app)`` adds ``bastion replay`` to a typer app (the lead wires it into bastion.cli)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from bastion.sim.replay.cli import register


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False)

    @app.command()
    def other() -> None:  # a second command, so typer keeps sub-command dispatch
        pass

    register(app)
    return app


def test_replay_command_runs_the_bundled_sample(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(_app(), ["replay", "--out", str(out), "--no-report"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"] == "binance-tick-sample"
    assert (out / "journal.bin").is_file() and not (out / "report.html").exists()


def test_list_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(_app(), ["replay", "--list"])
    assert listed.exit_code == 0 and "march-2023-stress" in listed.output
    unknown = runner.invoke(_app(), ["replay", "no-such-scenario", "--out", str(tmp_path / "x")])
    assert unknown.exit_code == 2
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    refused = runner.invoke(_app(), ["replay", "--out", str(precious)])
    assert refused.exit_code == 2 and (precious / "notes.txt").read_text() == "keep me"
