"""Benchmarks of verifiable execution: fast replay vs the independent verifier, on one journal.

* ``replay``: the fast engine (``Engine(config)``, FastBook) re-applies the journal: every record read
  and verified by :class:`~bastion.journal.file.JournalReader` (header checksum + hash chain), decoded,
  applied. This is what crash recovery does.
* ``verify``: :func:`bastion.audit.verify.verify_directory` on the same directory: the same journal
  reading, plus re-execution on the *reference* engine (ReferenceBook), every event encoded and compared
  with ``events.bin``, an RFC 6962 Merkle log rebuilt, every checkpoint's signature, root, state hash
  and journal head checked, consistency proofs between checkpoints, the fill checks of
  :mod:`bastion.audit.fills` (limits, price-time priority on a shadow book, bands), a crossed-book and
  open-interest check after every command and the full invariant check every ``invariants_every``
  commands. Its line carries ``verify_to_replay_ratio`` = verify events/s / replay events/s on the same
  journal (target >= 0.25, issue 5), with the replay figure of the same process when ``replay`` ran.

Two journals (same seed, same journal, so both workloads measure the same input; a directory built for
one is reused by the other within a process):

* the order mix (``replay`` / ``verify``): :func:`bastion.sim.streams.exchange_core_mix`, 1,000 accounts,
  ~1,000 resting orders, ``n`` commands after the setup;
* the risk-heavy session (``replay_risk`` / ``verify_risk``): :func:`bastion.sim.risk_session.risk_session`,
  ``n // 25`` simulated minutes (about ``n`` commands): an oracle update a minute with crashes,
  liquidations, ADL and the insurance fund, hourly funding, a 5 % price band, 400 leveraged traders.

Both are journaled through :class:`~bastion.venue.Venue` (commit every 256 commands, checkpoint every
10,000 events). Wall time is measured with the cyclic GC off (as in ``bastion.bench``); latencies are
per journal record (read + apply, or read + re-execute + every check). Benchmarks are programs that
print figures, never timed tests.
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

from bastion.audit.layout import JOURNAL_NAME, load_stored_config
from bastion.audit.verify import INVARIANTS_EVERY_DEFAULT, verify_directory
from bastion.core.commands import decode_sequenced
from bastion.core.engine import Engine
from bastion.core.instruments import VenueConfig
from bastion.journal.file import FsyncPolicy, JournalReader
from bastion.sim.streams import exchange_core_mix
from bastion.venue import Venue

__all__ = ["VERIFY_TO_REPLAY_TARGET", "bench_replay", "bench_verify", "build_bench_venue"]

VERIFY_TO_REPLAY_TARGET = 0.25
"""The verifier keeps up with at least a quarter of the engine's own replay speed (issue 5)."""
MINUTE_COMMANDS = 25
"""About this many commands per simulated minute in the risk session (sizes its minutes from ``n``)."""

_built: dict[tuple[bytes, int, int, str], Path] = {}
_replayed: dict[Path, dict[str, Any]] = {}  # directory -> the last replay figures measured on it
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


def _venue_dir(config: VenueConfig, n: int, seed: int, journal: str = "mix") -> Path:
    """A directory holding the benchmark journal, built once per process and removed at exit."""
    global _root
    if journal == "risk":
        from bastion.sim.risk_session import risk_config

        config = risk_config()
    digest = hashlib.sha256(msgspec.msgpack.encode(config.canonical())).digest()
    key = (digest, n, seed, journal)
    if key not in _built:
        if _root is None:
            _root = Path(tempfile.mkdtemp(prefix="bastion-audit-bench-"))
            atexit.register(shutil.rmtree, _root, True)
        directory = _root / f"venue-{len(_built)}"
        if journal == "risk":
            from bastion.sim.risk_session import risk_session

            risk_session(config, directory, max(1, n // MINUTE_COMMANDS), seed=seed)
        else:
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


def _percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile (the same rule as ``bastion.bench.percentile``)."""
    if not sorted_values:
        return 0
    return sorted_values[min(len(sorted_values) - 1, max(0, int(q * len(sorted_values) + 0.5) - 1))]


def _result(workload: str, commands: int, events: int, seconds: float, latencies_ns: list[int],
            extra: dict[str, Any]) -> dict[str, Any]:
    lat = sorted(latencies_ns)
    return {
        "workload": workload,
        "commands": commands,
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds) if seconds > 0 else 0,
        "commands_per_s": round(commands / seconds) if seconds > 0 else 0,
        "latency_us_p50": round(_percentile(lat, 0.50) / 1000, 2),
        "latency_us_p99": round(_percentile(lat, 0.99) / 1000, 2),
        "latency_us_p999": round(_percentile(lat, 0.999) / 1000, 2),
        "latency_us_max": round(lat[-1] / 1000, 2) if lat else 0,
        **extra,
    }


def bench_replay(config: VenueConfig, n: int, seed: int = 7, directory: Path | None = None,
                 journal: str = "mix") -> dict[str, Any]:
    """Time the fast engine replaying the benchmark journal from seq 1.

    Args:
        config: venue configuration (the risk journal uses its own, :func:`~bastion.sim.risk_session.risk_config`).
        n: commands after the setup (mix), or about that many (risk: ``n // 25`` minutes).
        seed: stream seed.
        directory: an existing venue directory to use instead of building one.
        journal: ``"mix"`` or ``"risk"``.

    Returns:
        ``{"workload": "replay" | "replay_risk", "commands", "events", "seconds", "events_per_s",
        "commands_per_s", "latency_us_p50/p99/p999/max", ...}``.
    """
    directory = _venue_dir(config, n, seed, journal) if directory is None else directory
    stored = load_stored_config(directory)
    latencies: list[int] = []

    def run() -> tuple[int, int]:
        engine, events = Engine(stored), 0
        apply, decode, clock, lap_list = engine.apply, decode_sequenced, time.perf_counter_ns, latencies.append
        with JournalReader(directory / JOURNAL_NAME) as reader:
            lap = clock()
            for record in reader.records():
                events += len(apply(decode(record.payload)))
                now = clock()
                lap_list(now - lap)
                lap = now
        return engine.seq, events

    (commands, events), seconds = _timed(run)
    name = "replay" if journal == "mix" else f"replay_{journal}"
    result = _result(name, commands, events, seconds, latencies, {"engine": "fast", "seed": seed, "journal": journal})
    _replayed[directory] = result
    return result


def bench_verify(config: VenueConfig, n: int, seed: int = 7, directory: Path | None = None,
                 invariants_every: int = INVARIANTS_EVERY_DEFAULT, journal: str = "mix") -> dict[str, Any]:
    """Time ``bastion verify`` (reference engine and every check) on the benchmark journal.

    The replay figure for ``verify_to_replay_ratio`` is the one measured on the same directory earlier in
    the process (``bench -w replay -w verify``), else a replay is timed here first.

    Returns:
        ``{"workload": "verify" | "verify_risk", "commands", "events", "seconds", "events_per_s",
        "commands_per_s", "latency_us_p50/p99/p999/max", "verify_to_replay_ratio",
        "verify_to_replay_target", "replay_events_per_s", "status", "checkpoints", "fills", "band_fills",
        "invariants_every", ...}``.

    Raises:
        RuntimeError: the verifier did not come out clean (the figures would be meaningless).
    """
    directory = _venue_dir(config, n, seed, journal) if directory is None else directory
    replay = _replayed.get(directory) or bench_replay(config, n, seed, directory, journal)
    latencies: list[int] = []
    report, seconds = _timed(lambda: verify_directory(directory, invariants_every=invariants_every,
                                                      latencies_ns=latencies))
    if report.status != 0:
        raise RuntimeError(f"verify failed on the benchmark journal: {report.finding}")
    name = "verify" if journal == "mix" else f"verify_{journal}"
    result = _result(name, report.commands, report.events, seconds, latencies, {
        "engine": "reference", "seed": seed, "journal": journal, "status": report.status,
        "checkpoints": report.checkpoints, "fills": report.fills, "band_fills": report.band_fills,
        "invariants_every": invariants_every, "invariant_checks": report.invariant_checks,
    })
    ratio = result["events_per_s"] / replay["events_per_s"] if replay["events_per_s"] else 0.0
    result.update({"replay_events_per_s": replay["events_per_s"], "verify_to_replay_ratio": round(ratio, 3),
                   "verify_to_replay_target": VERIFY_TO_REPLAY_TARGET,
                   "meets_target": ratio >= VERIFY_TO_REPLAY_TARGET})
    return result
