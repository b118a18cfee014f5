"""Benchmarks that print figures (never timed tests). ``bastion bench --json`` prints one JSON object per
line, one per workload, with at least: workload, commands_per_s, latency_us_p50/p99/p999.

Workloads:

* ``mix``          exchange-core-like: ~9% GTC, 3% IOC, 6% cancel, 82% amend/move, ~1,000 resting orders,
                   1,000 accounts (single instrument, single thread, in-core).
* ``place``        place-only: fresh non-crossing GTC limits from 1,000 accounts.
* ``mix_journal``  the mix with the input journal on: every command encoded and appended, group commit
                   with fsync per group (``group_size`` commands).
* ``liquidation_sweep``  time from a mark-price update to all liquidation orders issued, 1,000,000
                   accounts with positions of which 0.1 % become liquidatable (latency_ms_p50/p99).
* ``liquidation_engine``  the same through ``Engine.apply(SetOraclePrice)``: oracle command to the last
                   liquidation IOC filled in the book, 200,000 engine accounts with positions (0.1 %
                   liquidatable per move; latency_ms_p50/p99).
* ``replay`` / ``verify``  the fast engine's journal replay and the independent verifier (reference
                   engine + every check) on the same journal of the mix (events_per_s, per-record
                   latency; the verify line carries ``verify_to_replay_ratio``, target >= 0.25).
* ``replay_risk`` / ``verify_risk``  the same on a risk-heavy journal: an oracle update a minute with
                   crashes, liquidations, ADL, insurance fund, hourly funding and a 5 % band
                   (``bastion.sim.risk_session``).

Every line carries ``workload``, ``commands_per_s`` and ``latency_us_p50/p99/p999`` (for
``liquidation_sweep`` a "command" is one mark update and its latency the sweep's; it also keeps its
``latency_ms_*`` figures); the journal workloads add ``events_per_s``.

Commands are generated beforehand (not timed) and applied to a fresh engine; the latency of each command
is measured with ``time.perf_counter_ns`` around ``Engine.apply`` (plus the journal append for
``mix_journal``; the group's fsync is charged to the command that triggers it). The cyclic GC is disabled
while measuring, as latency-sensitive Python services do.
"""

from __future__ import annotations

import gc
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from bastion.core.commands import Command, PlaceOrder, Sequenced, encode_sequenced
from bastion.core.engine import Engine
from bastion.config import load_venue_config
from bastion.core.instruments import VenueConfig
from bastion.sim.streams import exchange_core_mix, sequenced

__all__ = ["WORKLOADS", "machine_info", "percentile", "run_workloads"]


def default_config() -> VenueConfig:
    """The bundled default venue."""
    return load_venue_config(resources.files("bastion") / "configs" / "default.toml")


def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile of an ascending list (q in [0, 1])."""
    if not sorted_values:
        return 0
    index = min(len(sorted_values) - 1, max(0, int(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def machine_info() -> dict[str, Any]:
    """Where the figures came from."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"python": platform.python_version(), "cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine()}


@dataclass
class _Timing:
    latencies_ns: list[int]
    wall_s: float


def _time_apply(engine: Engine, items: list[Sequenced], per_item: Callable[[Sequenced], object] | None = None) -> _Timing:
    apply = engine.apply
    clock = time.perf_counter_ns
    lat: list[int] = []
    record = lat.append
    gc_was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        if per_item is None:
            for item in items:
                t0 = clock()
                apply(item)
                record(clock() - t0)
        else:
            for item in items:
                t0 = clock()
                per_item(item)
                apply(item)
                record(clock() - t0)
        wall = time.perf_counter() - start
    finally:
        if gc_was:
            gc.enable()
    return _Timing(lat, wall)


def _result(workload: str, timing: _Timing, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    lat = sorted(timing.latencies_ns)
    n = len(lat)
    out: dict[str, Any] = {
        "workload": workload,
        "commands": n,
        "commands_per_s": round(n / timing.wall_s) if timing.wall_s > 0 else 0,
        "latency_us_p50": round(percentile(lat, 0.50) / 1000, 2),
        "latency_us_p99": round(percentile(lat, 0.99) / 1000, 2),
        "latency_us_p999": round(percentile(lat, 0.999) / 1000, 2),
        "latency_us_max": round(lat[-1] / 1000, 2) if lat else 0,
    }
    out.update(extra or {})
    return out


def bench_mix(config: VenueConfig, n: int, seed: int = 7) -> dict[str, Any]:
    """The exchange-core-like mix (about 9 % GTC, 3 % IOC, 6 % cancel, 82 % amend over ~1,000 resting
    orders, 1,000 accounts; :func:`bastion.sim.streams.exchange_core_mix`): ``n`` commands timed one by one
    in-core. Returns the workload's JSON line (commands/s, latency µs p50/p99/p99.9)."""
    setup, body = exchange_core_mix(config, seed, n)
    engine = Engine(config)
    for item in setup:
        engine.apply(item)
    timing = _time_apply(engine, body)
    resting = sum(len(b) for b in engine.books.values())
    return _result("mix", timing, {"accounts": 1000, "resting_orders_end": resting, "seed": seed})


def bench_place(config: VenueConfig, n: int, seed: int = 7) -> dict[str, Any]:
    """Place-only: ``n`` non-crossing GTC limits from 1,000 accounts (the book grows to ~``n``
    orders), timed one by one in-core. Returns the workload's JSON line."""
    import random

    rng = random.Random(seed)
    engine = Engine(config)
    setup = [c for a in range(1, 1001) for c in _account_setup(a)]
    items = sequenced(setup)
    for item in items:
        engine.apply(item)
    mid = config.instruments[1].reference_price_ticks
    cmds: list[Command] = []
    for i in range(n):
        side = 1 if i % 2 else -1
        cmds.append(PlaceOrder(rng.randint(1, 1000), 1, i + 1, side, mid - side * rng.randint(1, 2000), rng.randint(1, 5)))
    body = sequenced(cmds, start_seq=len(items) + 1, start_ns=items[-1].timestamp_ns + 1_000)
    timing = _time_apply(engine, body)
    return _result("place", timing, {"accounts": 1000, "resting_orders_end": len(engine.books[1]), "seed": seed})


def _account_setup(a: int) -> Iterator[Any]:
    from bastion.core.commands import CreateAccount, Deposit

    yield CreateAccount(a, a)
    yield Deposit(a, 10**15)


def bench_mix_journal(config: VenueConfig, n: int, seed: int = 7, group_size: int = 1024) -> dict[str, Any]:
    """The mix of :func:`bench_mix` with every command appended to a real journal file (fsync
    per group of ``group_size`` records, :class:`~bastion.journal.file.FsyncPolicy` GROUP) inside the timed
    loop; the final commit counts in the throughput. Returns the workload's JSON line with ``journal_bytes``."""
    from bastion.journal.file import FsyncPolicy, JournalWriter

    setup, body = exchange_core_mix(config, seed, n)
    engine = Engine(config)
    for item in setup:
        engine.apply(item)
    with tempfile.TemporaryDirectory(prefix="bastion-bench-") as tmp:
        writer = JournalWriter.open(Path(tmp) / "journal.bin", fsync_policy=FsyncPolicy.GROUP,
                                    group_records_max=group_size)
        append = writer.append
        timing = _time_apply(engine, body, per_item=lambda item: append(encode_sequenced(item)))
        t0 = time.perf_counter()
        writer.commit()
        timing.wall_s += time.perf_counter() - t0
        size = os.path.getsize(Path(tmp) / "journal.bin")
        writer.close()
    return _result("mix_journal", timing, {"fsync": f"group of {group_size}", "journal_bytes": size, "seed": seed})


def bench_liquidation_sweep(config: VenueConfig, n: int) -> dict[str, Any]:
    """Mark update -> every liquidation order issued, over ``n`` accounts with positions (0.1 % liquidatable).

    Wraps :func:`bastion.sim.risk_bench.bench_liquidation_sweep` (single core, its own population).
    """
    from bastion.sim.risk_bench import bench_liquidation_sweep as sweep

    return sweep(n_accounts=n, liquidatable_fraction=0.001)


def bench_trigger_sweep(config: VenueConfig, n: int) -> dict[str, Any]:
    """Mark updates over ``n`` untriggered stop orders: quiet ones and ones firing 64 (sim/trigger_bench.py)."""
    from bastion.sim.trigger_bench import bench_trigger_sweep as sweep

    return sweep(config, n, steps=min(100, n // 64))


def bench_liquidation_engine(config: VenueConfig, n: int) -> dict[str, Any]:
    """``Engine.apply(SetOraclePrice)`` through every liquidation IOC, over ``n`` engine accounts.

    Wraps :func:`bastion.sim.risk_bench.bench_liquidation_engine` (the default venue, mark = index).
    """
    from bastion.sim.risk_bench import bench_liquidation_engine as engine_sweep

    return engine_sweep(n_accounts=n - n % 2, liquidatable_fraction=0.001)


def bench_replay(config: VenueConfig, n: int) -> dict[str, Any]:
    """The fast engine replaying a journal of the mix (events/s); see bastion.audit.bench."""
    from bastion.audit.bench import bench_replay as replay

    return replay(config, n)


def bench_verify(config: VenueConfig, n: int) -> dict[str, Any]:
    """``bastion verify`` (reference engine, every check) on the same journal (events/s)."""
    from bastion.audit.bench import bench_verify as verify

    return verify(config, n)


def bench_replay_risk(config: VenueConfig, n: int) -> dict[str, Any]:
    """The fast engine replaying the risk-heavy journal (oracle, liquidations, funding, bands)."""
    from bastion.audit.bench import bench_replay as replay

    return replay(config, n, journal="risk")


def bench_verify_risk(config: VenueConfig, n: int) -> dict[str, Any]:
    """``bastion verify`` on the risk-heavy journal."""
    from bastion.audit.bench import bench_verify as verify

    return verify(config, n, journal="risk")


WORKLOADS: dict[str, Callable[[VenueConfig, int], dict[str, Any]]] = {
    "mix": bench_mix,
    "place": bench_place,
    "mix_journal": bench_mix_journal,
    "liquidation_sweep": bench_liquidation_sweep,
    "trigger_sweep": bench_trigger_sweep,
    "liquidation_engine": bench_liquidation_engine,
    "replay": bench_replay,
    "verify": bench_verify,
    "replay_risk": bench_replay_risk,
    "verify_risk": bench_verify_risk,
}


def run_workloads(names: list[str], quick: bool) -> Iterator[dict[str, Any]]:
    """Run the named workloads; ``quick`` keeps the whole run under a minute."""
    config = default_config()
    sizes = {"mix": 300_000, "place": 200_000, "mix_journal": 300_000, "liquidation_sweep": 1_000_000,
             "liquidation_engine": 200_000, "replay": 200_000, "verify": 200_000, "replay_risk": 200_000,
             "verify_risk": 200_000}
    for name in names:
        n = sizes.get(name, 100_000) // (10 if quick else 1)
        result = WORKLOADS[name](config, n)
        result["quick"] = quick
        yield result
