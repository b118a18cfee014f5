"""Benchmarks of verifiable execution: fast replay vs the independent verifier, on one journal.

* ``replay``: the fast engine (``Engine(config)``, FastBook) re-applies the journal: every record read
  and verified by :class:`~bastion.journal.file.JournalReader` (header checksum + hash chain), decoded,
  applied. This is what crash recovery does.
* ``verify``: :func:`bastion.audit.verify.verify_directory` on the same directory: the same journal
  reading, plus re-execution on the *reference* engine (ReferenceBook), every event encoded and compared
  with ``events.bin``, an RFC 6962 Merkle log rebuilt, every checkpoint's signature, root, state hash
  and journal head checked, consistency proofs between checkpoints, fill-limit checks, a crossed-book
  check after every command and the full invariant check every ``invariants_every`` commands.

The journal is the exchange-core-like mix (:func:`bastion.sim.streams.exchange_core_mix`, 1,000
accounts, ~1,000 resting orders) of ``n`` commands after the setup, journaled through
:class:`~bastion.venue.Venue` (commit every 256 commands, checkpoint every 10,000 events). The same seed
gives the same journal, so both workloads measure the same input; a directory built for one is reused
by the other within a process. Wall time is measured with the cyclic GC off (as in ``bastion.bench``).
Benchmarks are programs that print figures, never timed tests.
"""

from __future__ import annotations

import atexit
import gc
import hashlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from bastion.audit.layout import JOURNAL_NAME
from bastion.audit.verify import INVARIANTS_EVERY_DEFAULT, verify_directory
from bastion.core.commands import decode_sequenced
from bastion.core.engine import Engine
from bastion.core.instruments import VenueConfig
from bastion.journal.file import FsyncPolicy, JournalReader
from bastion.sim.streams import exchange_core_mix
from bastion.venue import Venue

__all__ = ["bench_replay", "bench_verify", "build_bench_venue"]

_built: dict[tuple[bytes, int, int], Path] = {}
_root: Path | None = None


def build_bench_venue(config: VenueConfig, n: int, directory: Path, seed: int = 7) -> dict[str, int]:
    """Journal the mix (setup + ``n`` commands) through a :class:`Venue` into ``directory`` (replaced).

    Returns:
        ``{"commands": journal records, "events": output-log leaves}``.
    """
    if directory.exists():
        shutil.rmtree(directory)
    setup, body = exchange_core_mix(config, seed, n)
    with Venue.open(config, directory, fsync_policy=FsyncPolicy.NONE, group_records_max=1024) as venue:
        for i, item in enumerate(setup + body, 1):
            venue.submit_sequenced(item)
            if i % 256 == 0:
                venue.commit()
        venue.commit()
        return {"commands": venue.engine.seq, "events": venue.outlog.size}


def _venue_dir(config: VenueConfig, n: int, seed: int) -> Path:
    """A directory holding the benchmark journal, built once per process and removed at exit."""
    global _root
    digest = hashlib.sha256(msgspec.msgpack.encode(config.canonical())).digest()
    key = (digest, n, seed)
    if key not in _built:
        if _root is None:
            _root = Path(tempfile.mkdtemp(prefix="bastion-audit-bench-"))
            atexit.register(shutil.rmtree, _root, True)
        directory = _root / f"venue-{len(_built)}"
        build_bench_venue(config, n, directory, seed)
        _built[key] = directory
    return _built[key]


def _timed(fn: Any) -> tuple[Any, float]:
    gc_was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - start
    finally:
        if gc_was:
            gc.enable()


def _result(workload: str, commands: int, events: int, seconds: float, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "workload": workload,
        "commands": commands,
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds) if seconds > 0 else 0,
        "commands_per_s": round(commands / seconds) if seconds > 0 else 0,
        **extra,
    }


def bench_replay(config: VenueConfig, n: int, seed: int = 7, directory: Path | None = None) -> dict[str, Any]:
    """Time the fast engine replaying the benchmark journal from seq 1.

    Args:
        config: venue configuration.
        n: mix commands after the setup.
        seed: stream seed.
        directory: an existing venue directory to use instead of building one.

    Returns:
        ``{"workload": "replay", "commands", "events", "seconds", "events_per_s", "commands_per_s", ...}``.
    """
    directory = _venue_dir(config, n, seed) if directory is None else directory

    def run() -> tuple[int, int]:
        engine, events = Engine(config), 0
        with JournalReader(directory / JOURNAL_NAME) as reader:
            for record in reader.records():
                events += len(engine.apply(decode_sequenced(record.payload)))
        return engine.seq, events

    (commands, events), seconds = _timed(run)
    return _result("replay", commands, events, seconds, {"engine": "fast", "seed": seed})


def bench_verify(config: VenueConfig, n: int, seed: int = 7, directory: Path | None = None,
                 invariants_every: int = INVARIANTS_EVERY_DEFAULT) -> dict[str, Any]:
    """Time ``bastion verify`` (reference engine and every check) on the benchmark journal.

    Returns:
        ``{"workload": "verify", "commands", "events", "seconds", "events_per_s", "commands_per_s",
        "status", "checkpoints", "fills", "invariants_every", ...}``.

    Raises:
        RuntimeError: the verifier did not come out clean (the figures would be meaningless).
    """
    directory = _venue_dir(config, n, seed) if directory is None else directory
    report, seconds = _timed(lambda: verify_directory(directory, invariants_every=invariants_every))
    if report.status != 0:
        raise RuntimeError(f"verify failed on the benchmark journal: {report.finding}")
    return _result("verify", report.commands, report.events, seconds, {
        "engine": "reference", "seed": seed, "status": report.status, "checkpoints": report.checkpoints,
        "fills": report.fills, "invariants_every": invariants_every, "invariant_checks": report.invariant_checks,
    })
