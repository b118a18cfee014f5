"""A seeded simulated session through the journaled venue (the main job until real-data replay lands).

Runs the exchange-core-like order flow through :class:`~bastion.venue.Venue` with the journal on (group
commit, fsync), snapshots periodically, then proves the journal: reopening the directory recovers the same
state hash from snapshot + tail, and a full replay from seq 1 reproduces it too.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.progress import Progress

from bastion.bench import default_config
from bastion.core.events import CommandRejected
from bastion.core.rejects import RejectCode
from bastion.sim.streams import exchange_core_mix
from bastion.venue import JOURNAL_NAME, Venue, replay_journal

__all__ = ["run_session"]


def run_session(out: Path, commands: int, seed: int, progress: Progress | None = None,
                snapshot_every: int = 50_000, commit_every: int = 256) -> dict[str, Any]:
    """Run the session into ``out`` (replaced if present); return and write ``out/summary.json``."""
    config = default_config()
    if out.exists():
        shutil.rmtree(out)
    setup, body = exchange_core_mix(config, seed, commands)
    items = setup + body
    events: Counter[str] = Counter()
    rejects: Counter[str] = Counter()
    started = time.perf_counter()
    with Venue.open(config, out) as venue:
        task = progress.add_task("session", total=len(items)) if progress else None
        if progress:
            progress.start()
        for i, item in enumerate(items, 1):
            for ev in venue.submit_sequenced(item):
                events[type(ev).__name__] += 1
                if type(ev) is CommandRejected:
                    rejects[RejectCode(ev.code).name] += 1
            if i % commit_every == 0:
                venue.commit()
            if snapshot_every and i % snapshot_every == 0:
                venue.snapshot()
            if progress and task is not None and i % 1000 == 0:
                progress.update(task, completed=i)
        venue.commit()
        state_hash = venue.engine.state_hash().hex()
        engine = venue.engine
        if progress and task is not None:
            progress.update(task, completed=len(items))
    elapsed = time.perf_counter() - started
    with Venue.open(config, out) as reopened:
        recovered_hash = reopened.engine.state_hash().hex()
        recovery = reopened.recovery
    replayed_hash = replay_journal(config, out / JOURNAL_NAME).state_hash().hex()
    if progress:
        progress.stop()
    summary = {
        "seed": seed,
        "commands": len(items),
        "events": sum(events.values()),
        "events_by_type": dict(sorted(events.items())),
        "rejects_by_code": dict(sorted(rejects.items())),
        "fills": events.get("TradeExecuted", 0),
        "commands_per_s_journaled": round(len(items) / elapsed),
        "journal_bytes": (out / JOURNAL_NAME).stat().st_size,
        "fee_pool_atoms": engine.fee_pool_atoms,
        "open_interest_lots": engine.open_interest_lots,
        "state_hash": state_hash,
        "recovered_state_hash": recovered_hash,
        "recovered_from_snapshot": str(recovery.snapshot_used) if recovery.snapshot_used else None,
        "recovery_replayed_records": recovery.replayed_records,
        "replayed_state_hash": replayed_hash,
        "replay_matches": state_hash == recovered_hash == replayed_hash,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if not summary["replay_matches"]:
        raise RuntimeError(f"replay diverged: {state_hash} / {recovered_hash} / {replayed_hash}")
    return summary
