"""The ``bastion`` command line (typer + rich). Shell code: clocks, files and progress bars live here."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

app = typer.Typer(help="Bastion: a deterministic, verifiable derivatives exchange core.", no_args_is_help=True,
                  add_completion=False)
console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=False)


@app.command()
def bench(
    json_lines: bool = typer.Option(False, "--json", help="One JSON object per line, one per workload."),
    quick: bool = typer.Option(False, "--quick", help="Smaller runs: the whole bench in under a minute."),
    workload: list[str] = typer.Option([], "--workload", "-w", help="Run only these workloads (repeatable)."),
) -> None:
    """Run the benchmark workloads and print their figures."""
    from bastion.bench import WORKLOADS, machine_info, run_workloads

    names = workload or list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        console.print(f"[red]unknown workload(s): {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
        raise typer.Exit(2)
    info = machine_info()
    table = Table(title=f"bastion bench ({info['cpu']}, {info['cores']} cores, Python {info['python']})")
    for col in ("workload", "commands", "commands/s", "events/s", "p50 µs", "p99 µs", "p99.9 µs", "verify/replay"):
        table.add_column(col, justify="right")
    for result in run_workloads(names, quick):
        result["machine"] = info
        if json_lines:
            print(json.dumps(result), flush=True)
        else:
            events = result.get("events_per_s")
            ratio = result.get("verify_to_replay_ratio")
            table.add_row(result["workload"], str(result.get("commands", "")), f"{result.get('commands_per_s', 0):,}",
                          "" if events is None else f"{events:,}",
                          str(result.get("latency_us_p50", "")), str(result.get("latency_us_p99", "")),
                          str(result.get("latency_us_p999", "")),
                          "" if ratio is None else f"{ratio:.2f} (target {result['verify_to_replay_target']})")
    if not json_lines:
        Console().print(table)


@app.command()
def soak(
    commands: int = typer.Option(1_000_000, help="Total random commands across all seeds."),
    per_seed: int = typer.Option(20_000, help="Commands per seeded stream."),
    first_seed: int = typer.Option(0, help="Seed of the first stream."),
    mix_commands: int = typer.Option(100_000, help="Also run this many deep-book mix commands (0: skip)."),
    venue: str = typer.Option("both", help="Streams on the 'soak' venue (guardians, tiny limits, band, "
                                           "risk gates, oracle prices), the 'default' venue, or 'both' "
                                           "(alternating by seed)."),
    invariants_every: int = typer.Option(50, help="Full invariant check on both engines every N commands "
                                                  "(0: off)."),
) -> None:
    """Differential soak: fast engine vs reference engine on seeded random streams; exit 1 on divergence.

    Prints one JSON object: totals, elapsed seconds, and how often each reject code, cancel reason,
    reduce reason and event type occurred (coverage of the stream).
    """
    import time
    from collections import Counter

    from bastion.bench import default_config
    from bastion.sim.differential import run_differential, soak_config

    if venue not in ("both", "soak", "default"):
        console.print(f"[red]--venue must be both, soak or default, not {venue!r}")
        raise typer.Exit(2)
    configs = {"default": default_config(), "soak": soak_config()}
    streams = max(1, commands // per_seed)
    total_cmds = total_events = checks = 0
    per_venue: Counter[str] = Counter()
    coverage: dict[str, Counter[str]] = {k: Counter() for k in ("rejects", "cancels", "reductions", "event_types")}
    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task("fast vs reference", total=streams * per_seed)
        for seed in range(first_seed, first_seed + streams):
            name = venue if venue != "both" else ("soak" if seed % 2 else "default")
            result = run_differential(configs[name], seed, per_seed, soak=name == "soak",
                                      invariants_every=invariants_every)
            total_cmds += result.commands
            total_events += result.events
            checks += result.invariant_checks
            per_venue[name] += result.commands
            for key, counter in coverage.items():
                counter.update(getattr(result, key))
            if result.divergence is not None:
                console.print(f"[red]DIVERGENCE seed={seed} venue={name}: {result.divergence}")
                raise typer.Exit(1)
            progress.advance(task, per_seed)
    mix = None
    if mix_commands:
        from bastion.sim.differential import run_differential_mix

        console.print(f"deep-book mix: {mix_commands:,} commands through both engines...")
        mix = run_differential_mix(configs["default"], first_seed, mix_commands)
        if mix.divergence is not None:
            console.print(f"[red]DIVERGENCE (mix, seed={first_seed}): {mix.divergence}")
            raise typer.Exit(1)
    elapsed = time.perf_counter() - started
    table = Table(title="soak coverage (fast engine's events)")
    for col in ("kind", "name", "count"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for key in ("rejects", "cancels", "reductions"):
        for name, count in sorted(coverage[key].items(), key=lambda kv: -kv[1]):
            table.add_row(key, name, f"{count:,}")
    console.print(table)
    print(json.dumps({"streams": streams, "commands": total_cmds, "events": total_events,
                      "commands_by_venue": dict(per_venue), "invariant_checks": checks,
                      "mix_commands": mix.commands if mix else 0, "mix_events": mix.events if mix else 0,
                      "divergences": 0, "elapsed_s": round(elapsed, 1),
                      **{k: dict(sorted(v.items())) for k, v in coverage.items()}}))


@app.command()
def simulate(
    out: Path = typer.Option(Path("out/simulate"), help="Directory for the journal, snapshots and summary."),
    commands: int = typer.Option(200_000, help="Commands in the seeded session."),
    seed: int = typer.Option(1, help="Seed of the session."),
) -> None:
    """A seeded simulated session through the journaled engine, then crash-recovery and replay checks."""
    from bastion.sim.session import run_session

    summary = run_session(out, commands, seed, progress=_progress())
    print(json.dumps(summary, indent=2))


@app.command()
def recover(
    directory: Path = typer.Argument(..., help="A venue directory (venue.toml, journal.bin, snapshots/, events.bin)."),
    repair_tail: bool = typer.Option(
        False, "--repair-tail",
        help="Cut a final journal record that is complete but fails verification (operator decision: it may "
             "have been acknowledged; a signed checkpoint covering it still refuses the cut)."),
) -> None:
    """Open a venue directory as the venue would: snapshot + journal tail, output log reconciled; print what
    recovery found as JSON. Exit 0 recovered, 1 the journal or output log is damaged (names the record), 2
    not a venue directory."""
    from bastion.audit.layout import LayoutError, load_stored_config
    from bastion.audit.outlog import OutputLogError
    from bastion.core.instruments import ConfigError
    from bastion.journal.errors import JournalError, JournalTailCorruptError
    from bastion.venue import Venue

    if not (directory / "journal.bin").exists():
        console.print(f"[red]not a venue directory:[/] {directory} has no journal.bin")
        raise typer.Exit(2)
    try:
        config = load_stored_config(directory)
    except (ConfigError, OSError) as exc:
        console.print(f"[red]cannot load {directory / 'venue.toml'}:[/] {exc}")
        raise typer.Exit(2) from None
    try:
        venue = Venue.open(config, directory, repair_journal_tail=repair_tail)
    except JournalTailCorruptError as exc:
        console.print(f"[red]{exc}[/]\nThe final record is complete but fails verification (not a torn write). "
                      "Check which commands were acknowledged, then run again with --repair-tail to cut it.")
        raise typer.Exit(1) from None
    except (JournalError, OutputLogError, LayoutError) as exc:
        console.print(f"[red]recovery refused:[/] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    r = venue.recovery
    summary = {
        "directory": str(directory), "last_seq": r.last_seq, "state_hash": venue.engine.state_hash().hex(),
        "snapshot_used": None if r.snapshot_used is None else r.snapshot_used.name,
        "snapshots_rejected": [[p.name, why] for p, why in r.snapshots_rejected],
        "replayed_records": r.replayed_records, "journal_tail_bytes_cut": r.torn_tail_bytes,
        "tail_repaired": repair_tail and r.torn_tail_bytes > 0,
        "outlog_leaves_kept": r.outlog_leaves_kept, "outlog_leaves_appended": r.outlog_leaves_appended,
        "outlog_tail_bytes_cut": r.outlog_torn_tail_bytes, "outlog_full_replay": r.outlog_full_replay,
    }
    venue.close(final_checkpoint=False)  # recovery attests nothing new; the next session's close will
    print(json.dumps(summary, indent=2))


@app.command("latency-arb")
def latency_arb(
    out: Path = typer.Option(Path("out/latency_arb"), help="Directory for summary.json, latency_arb.png/.html."),
    seed: int = typer.Option(1, help="Seed of the jump and noise path (the same path in every mode)."),
    seconds: int = typer.Option(120, min=1, max=3600, help="Engine seconds of the experiment."),
) -> None:
    """Latency-arbitrage experiment: snipers vs a slow market maker, continuous vs frequent batch auctions."""
    from dataclasses import replace

    from bastion.sim.latency_arb import LatencyArbParams, run_latency_arbitrage

    params = replace(LatencyArbParams(), duration_ns=seconds * 1_000_000_000)
    with console.status("running continuous and batch modes on one path..."):
        summary = run_latency_arbitrage(out, seed, params)
    table = Table(title=f"latency arbitrage (seed {seed}, {seconds} s, delta {params.delta_ns / 1e3:g} µs)")
    for col in ("mode", "delta/tau", "sniper PnL tick-lots/s", "BCS prediction", "maker eff. spread ticks"):
        table.add_column(col, justify="right")
    def spread(row: dict[str, object]) -> str:
        value = row["maker_effective_spread_ticks"]
        return "no maker fills" if value is None else f"{value:.2f}"

    cont = summary["continuous"]
    table.add_row("continuous", "", f"{cont['sniper_pnl_ticks_lots_per_s']:.1f}", "", spread(cont))
    for row in summary["batch"]:
        table.add_row(f"batch {row['interval_ns'] / 1e6:g} ms", f"{row['delta_over_tau']:.3f}",
                      f"{row['sniper_pnl_ticks_lots_per_s']:.1f}", f"{row['bcs_predicted_ticks_lots_per_s']:.1f}",
                      spread(row))
    Console().print(table)
    console.print(f"report: {Path(out) / 'latency_arb.html'}")


def _register_subcommands() -> None:
    from bastion.audit.commands import register as register_audit
    from bastion.sim.replay.cli import register as register_replay

    register_audit(app)
    register_replay(app)


_register_subcommands()


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
