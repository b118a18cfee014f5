"""``run_replay``: one scenario, journaled through the venue, verified, summarised and reported.

Steps: open a fresh :class:`~bastion.venue.Venue` in ``out`` (journal + snapshots), drive it with the
scenario's loop (``tick.py`` or ``bars.py``), snapshot and close; then, unless the scenario turns it
off, reopen the directory (snapshot recovery) and replay the journal from seq 1 on a fresh engine — all
three state hashes must agree. ``summary.json`` holds the deterministic figures plus a separate
``timing`` object (wall-clock figures, the only ones that differ between identical runs);
``report.html`` renders them (``report.py``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from bastion.journal.file import FsyncPolicy
from bastion.sim.replay.bars import run_bars
from bastion.sim.replay.calibration import load_calibration
from bastion.sim.replay.context import NS_PER_S, BookSample, OracleTamper, Progress, ReplayContext, out_dir_ready
from bastion.sim.replay.risk import risk_features
from bastion.sim.replay.scenario import Scenario, ScenarioError, resolve_data_dir, scenario_venue_config
from bastion.sim.replay.series import Series, Timeline
from bastion.sim.replay.tick import run_tick
from bastion.venue import JOURNAL_NAME, Venue, replay_journal

__all__ = ["ReplayError", "ReplayResult", "run_replay"]

SUMMARY_NAME = "summary.json"
REPORT_NAME = "report.html"


class ReplayError(RuntimeError):
    """The replay's own checks failed (journal replay diverged)."""


@dataclass
class ReplayResult:
    """What :func:`run_replay` produced: the summary, the plotted series and the book checks."""

    summary: dict[str, Any]
    series: Series
    book_samples: list[BookSample]
    out: Path
    timeline: Timeline | None = None


def run_replay(scenario: Scenario, out: Path, *, shared_data: Path | None = None, seed: int | None = None,
               progress: Progress | None = None, write_report: bool = True,
               fsync_policy: FsyncPolicy = FsyncPolicy.GROUP, check_risk: bool = False,
               check_invariants: bool = False, oracle_tamper: OracleTamper | None = None) -> ReplayResult:
    """Run ``scenario`` into ``out`` (emptied first if it is a previous replay's output).

    Args:
        scenario: a loaded scenario.
        out: output directory: journal.bin, snapshots/, summary.json, report.html.
        shared_data: the ``shared/data`` directory (scenarios with ``data.source = "shared"``).
        seed: overrides the scenario's seed.
        progress: ``progress(completed, total)`` callback (capture seconds or bar minutes).
        write_report: also write report.html.
        fsync_policy: journal durability (tests may relax it; the CLI keeps group commit).
        check_risk: compare every fast risk scan with the exact reference scan (tests; slow).
        check_invariants: the engine's full invariant check after every command (tests; slow).
        oracle_tamper: an adversary between the sources and the oracle shell (tests: forged or
            altered signed reports must be refused and counted, never reach the engine).

    Raises:
        ScenarioError: bad scenario, venue config or missing data. ReplayError: journal replay diverged.
        FileExistsError: ``out`` is a non-empty directory that is not a replay output.
    """
    if seed is not None:
        scenario = msgspec.structs.replace(scenario, scenario=msgspec.structs.replace(scenario.scenario, seed=seed))
    data_dir = resolve_data_dir(scenario, shared_data)
    config = scenario_venue_config(scenario)
    spec = config.instruments.get(scenario.scenario.instrument_id)
    if spec is None:
        raise ScenarioError(f"{scenario.name}: instrument {scenario.scenario.instrument_id} not in the venue config")
    calibration = load_calibration(scenario.traders.calibration, shared_data)
    out_dir_ready(out)
    interval_ns = (60 if scenario.scenario.kind == "bars" else scenario.oracle.interval_s) * NS_PER_S
    started = time.perf_counter()
    with Venue.open(config, out, fsync_policy=fsync_policy, check_invariants=check_invariants) as venue:
        ctx = ReplayContext(scenario, config, spec, venue, calibration, interval_ns, progress, oracle_tamper)
        ctx.risk.cross_check = check_risk
        if scenario.scenario.kind == "tick":
            run_tick(ctx, data_dir)
        else:
            run_bars(ctx, data_dir)
        venue.snapshot()
        state_hash = venue.engine.state_hash().hex()
    run_s = time.perf_counter() - started
    verify = _verify(config, out, scenario.run.verify_journal)
    replayed = verify.get("journal_replay_state_hash")
    if replayed not in (None, state_hash) or verify["recovered_state_hash"] != state_hash:
        raise ReplayError(f"journal replay diverged: run {state_hash}, {verify}")
    summary = _summary(ctx, scenario, data_dir, state_hash, verify)
    summary["timing"] = {
        "wall_s": round(run_s, 3),
        "events_per_s": round(ctx.exchange.events / run_s) if run_s > 0 else 0,
        "commands_per_s": round(ctx.exchange.commands / run_s) if run_s > 0 else 0,
        "verify_s": verify.pop("verify_s"),
    }
    result = ReplayResult(summary, ctx.series, ctx.book_samples, out, ctx.timeline)
    if write_report:
        from bastion.sim.replay.report import write_report as render

        started = time.perf_counter()
        render(result, scenario, out / REPORT_NAME)
        summary["timing"]["report_s"] = round(time.perf_counter() - started, 3)
    (out / SUMMARY_NAME).write_text(json.dumps(summary, indent=2) + "\n")
    return result


def _verify(config: Any, out: Path, full_replay: bool) -> dict[str, Any]:
    started = time.perf_counter()
    with Venue.open(config, out) as reopened:
        recovered = reopened.engine.state_hash().hex()
    result: dict[str, Any] = {"recovered_state_hash": recovered, "journal_replay_state_hash": None}
    if full_replay:
        result["journal_replay_state_hash"] = replay_journal(config, out / JOURNAL_NAME).state_hash().hex()
    result["verify_s"] = round(time.perf_counter() - started, 3)
    return result


def _integrity_table(ctx: ReplayContext) -> dict[str, Any]:
    """The instrument's market-integrity settings in force (non-default fields only)."""
    from bastion.core.instruments import IntegrityConfig

    integrity, default = ctx.spec.integrity, IntegrityConfig()
    return {name: getattr(integrity, name) for name in integrity.__slots__
            if getattr(integrity, name) != getattr(default, name)}


def _summary(ctx: ReplayContext, s: Scenario, data_dir: Path, state_hash: str,
             verify: dict[str, Any]) -> dict[str, Any]:
    ex, engine, risk, index = ctx.exchange, ctx.exchange.engine, ctx.risk, ctx.index
    iid = ctx.spec.instrument_id
    k = ctx.spec.atoms_per_tick_lot
    features = risk_features()
    traders = ctx.traders
    return {
        "scenario": s.name,
        "kind": s.scenario.kind,
        "seed": s.seed,
        "data": {"source": s.data.source, "path": s.data.path, "directory_name": data_dir.name},
        "calibration": s.traders.calibration,
        "calibration_source": ctx.calibration.source.split(":", 1)[0],
        "start_ns": ctx.start_ns,
        "end_ns": ctx.end_ns,
        "duration_s": (ctx.end_ns - ctx.start_ns) / NS_PER_S,
        "commands": ex.commands,
        "events": ex.events,
        "fills": ex.fills,
        "volume_lots": ex.volume_lots,
        "notional_atoms": ex.notional_tick_lots * k,
        "liquidations": risk.counts["liquidations"],
        "bad_debt_atoms": risk.bad_debt_atoms,
        "insurance_fund_drawdown_atoms": risk.insurance_drawdown_max_atoms,
        "adl_count": risk.counts["adl"],
        "adl_lots": risk.adl_lots,
        "accounts_liquidated": len(risk.liquidated_accounts),
        "insurance_fund_used_atoms": risk.insurance_fund_used_atoms,
        "max_index_deviation_ppm": index.max_index_deviation_ppm,
        "oracle_reports": {"signed": ctx.signer.signed, **ctx.oracle.figures()},
        "breakers": {"integrity": _integrity_table(ctx), **ctx.timeline.figures(ctx.end_ns)},
        "matching": {
            "mode": s.matching.mode,
            "interval_ns": s.matching.interval_ns,
            "tick_size": str(ctx.spec.tick_size),
            **ctx.timeline.matching_figures(ctx.end_ns),
            "boundary_heartbeats": ex.heartbeats,
            "fills_without_aggressor": ex.batch_fills,
        },
        "state_hash": state_hash,
        "journal_replay_state_hash": verify["journal_replay_state_hash"],
        "recovered_state_hash": verify["recovered_state_hash"],
        "risk_engine_features": features,
        "risk": {
            "accounts_under_maintenance_max": risk.under_maintenance_max,
            "accounts_under_maintenance_end": risk.last.under_maintenance,
            "accounts_bankrupt_max": risk.bankrupt_max,
            "accounts_bankrupt_end": risk.last.bankrupt,
            "equity_shortfall_max_atoms": risk.shortfall_max_atoms,
            "equity_shortfall_max_at_ns": risk.shortfall_max_ns,
            "equity_shortfall_end_atoms": risk.last.shortfall_atoms,
            "funding_events": risk.counts["funding"],
            "breaker_events": risk.counts["breakers"],
            "insurance_fund_end_atoms": engine.insurance_fund_atoms,
            "other_events_by_type": dict(sorted(risk.events_by_type.items())),
        },
        "index": {
            "reference_source": s.oracle.reference_source,
            "max_index_deviation_at_ns": index.max_index_deviation_ns,
            "source_deviation_max_ppm": index.source_deviation_max_ppm,
            "ticks": index.ticks,
            "priced_ticks": index.priced_ticks,
            "liquidations_paused_ticks": index.paused_ticks,
            "no_price_ticks_by_reason": dict(sorted(index.no_price.items())),
            "rejected_reports": dict(sorted(index.rejected.items())),
            "mark_updates": ctx.mark_updates,
            "mark_vs_book_mid_max_ppm": ctx.mark_book_deviation_max_ppm,
            "mark_end_ticks": engine.marks[iid],
        },
        "book": {
            "levels": s.book.levels,
            "checks": ctx.book_checks,
            "mismatches": ctx.book_mismatches,
            "lp_commands": dict(sorted(ctx.liquidity.commands.items())),
            "lp_rejected": ctx.liquidity.rejected,
        },
        "traders": {
            "count": len(ctx.trader_ids),
            "open_positions_end": traders.open_positions() if traders is not None else 0,
            **(dict(sorted(traders.figures.items())) if traders is not None else {}),
        },
        "open_interest_end_lots": engine.open_interest_lots[iid],
        "open_interest_max_lots": max(ctx.series.open_interest_lots, default=0),
        "fee_pool_atoms": engine.fee_pool_atoms,
        "events_by_type": dict(sorted(ex.events_by_type.items())),
        "commands_by_type": dict(sorted(ex.commands_by_type.items())),
        "rejects_by_code": dict(sorted(ex.rejects_by_code.items())),
        **ctx.extra,
    }
