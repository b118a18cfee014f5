"""The ``bastion replay`` command; ``register(app)`` adds it to the ``bastion`` typer app.

Usage::

    bastion replay                                  # the bundled real sample (binance-tick-sample)
    bastion replay march-2023 --out out/march       # a bundled scenario by name
    bastion replay path/to/scenario.toml --seed 7   # a scenario file, another seed

Writes ``DIR/journal.bin`` (and the venue's other files), ``DIR/summary.json`` and ``DIR/report.html``;
prints the summary as JSON on stdout. Exit codes: 0 done, 1 the journal replay diverged, 2 bad scenario
or missing data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

__all__ = ["register"]

_console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add the ``replay`` command to ``app``."""
    app.command("replay")(replay)


def replay(
    scenario: Optional[str] = typer.Argument(  # noqa: UP007 - typer needs Optional on 3.11
        None, help="Scenario file (.toml) or bundled name; default: binance-tick-sample (the bundled sample)."),
    out: Path = typer.Option(Path("out/replay"), "--out",
                             help="Output directory (journal, summary.json, report.html)."),
    seed: Optional[int] = typer.Option(None, help="Override the scenario's seed."),  # noqa: UP007
    shared_data: Optional[Path] = typer.Option(  # noqa: UP007
        None, "--shared-data", help="The shared data directory (default: <project root>/../shared/data)."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip report.html."),
    list_scenarios: bool = typer.Option(False, "--list", help="List the bundled scenarios and exit."),
) -> None:
    """Replay real market data through the journaled venue; write summary.json and report.html."""
    from bastion.sim.replay.runner import ReplayError, run_replay
    from bastion.sim.replay.scenario import (
        ScenarioError,
        bundled_scenarios,
        default_shared_data,
        resolve_data_dir,
        resolve_scenario,
    )

    if list_scenarios:
        for name in bundled_scenarios():
            print(name)
        return
    try:
        loaded = resolve_scenario(scenario)
        shared = shared_data or default_shared_data()
        resolve_data_dir(loaded, shared)  # fail before the progress bar when the data is absent
        unit = "capture s" if loaded.scenario.kind == "tick" else "bar minutes"
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                   TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=_console, transient=False) as progress:
            task = progress.add_task(f"replay {loaded.name}", total=None)

            def advance(completed: int, total: int) -> None:
                progress.update(task, completed=completed, total=total)

            result = run_replay(loaded, out, shared_data=shared, seed=seed,
                                progress=advance, write_report=not no_report)
    except (ScenarioError, FileExistsError) as exc:
        _console.print(f"[red]{exc}")
        raise typer.Exit(2) from exc
    except ReplayError as exc:
        _console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    print(json.dumps(result.summary, indent=2))
    _console.print(f"wrote {out / 'summary.json'}" + ("" if no_report else f" and {out / 'report.html'}"))
