"""Benchmark: liquidation sweep latency on a large population of accounts (a program, not a test).

``bench_liquidation_sweep(n_accounts=1_000_000, liquidatable_fraction=0.001)`` builds a seeded population
on the default venue (BTC-USD-PERP and ETH-USD-PERP): every account holds a BTC position (long or short,
0.001..5 BTC, leverage 2x..50x, entry within 40 % of the initial margin from 60,000 so that every account
starts healthy) and ``multi_position_fraction`` of them also an ETH position (cross margin: indexed with
conservative trigger bands). It bulk-loads a :class:`~bastion.core.risk.LiquidationIndex`, then
repeatedly moves the BTC mark (alternately down and up) to a price chosen so that about
``liquidatable_fraction * n_accounts`` single-position accounts cross their liquidation price, and
measures, single-threaded with the cyclic GC off (as ``bastion.bench`` does):

    time from the mark update to the list of liquidation orders (account, side, size, limit price)
    = index query + exact checks of multi-position suspects + partial-liquidation sizing of every
      liquidatable account.

The re-snapshot of multi-position false alarms (``refresh_pending``), which the engine runs after the
command's liquidations, is timed separately (``refresh_ms_*``).

``bench_liquidation_engine`` (workload ``liquidation_engine``) measures the same thing through the real
engine: ``Engine.apply(SetOraclePrice)`` from the oracle command to the last liquidation IOC of the
command (mark = index, every liquidatable account processed in that command), on a population of engine
accounts holding BTC positions (long/short pairs, so open interest balances), with an LP ladder in the
book that the IOCs fill against. The population is written straight into an engine and then passed
through ``Engine.snapshot`` / ``Engine.restore``, which rebuilds every derived index (trigger index,
holders) and checks every invariant before the clock starts.

Time is read with ``time.perf_counter_ns`` here in the shell; the core stays clock-free.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Mapping
from importlib import resources
from typing import Any

from bastion.config import load_venue_config
from bastion.core.risk import (
    PRICE_TICKS_UNBOUNDED,
    LiquidationConfig,
    LiquidationIndex,
    sweep_liquidations,
)

__all__ = ["bench_liquidation_engine", "bench_liquidation_sweep"]


class _Pos:
    """A light position (the engine's Position carries order bookkeeping the sweep never reads)."""

    __slots__ = ("size_lots", "cost_atoms")

    def __init__(self, size_lots: int, cost_atoms: int) -> None:
        self.size_lots = size_lots
        self.cost_atoms = cost_atoms


class _Acct:
    """A light account with the attributes the risk core reads."""

    __slots__ = ("account_id", "balance_atoms", "positions")

    def __init__(self, account_id: int, balance_atoms: int, positions: dict[int, _Pos]) -> None:
        self.account_id = account_id
        self.balance_atoms = balance_atoms
        self.positions = positions


def _population(n: int, multi_fraction: float, marks: Mapping[int, int], ks: Mapping[int, int],
                rng: random.Random) -> dict[int, _Acct]:
    accounts: dict[int, _Acct] = {}
    for account_id in range(1, n + 1):
        positions: dict[int, _Pos] = {}
        notional = 0
        leverage = rng.randint(2, 50)
        for iid in ((1, 2) if rng.random() < multi_fraction else (1,)):
            size = rng.randint(1, 5_000) * (1 if rng.random() < 0.5 else -1)
            # Entry within +-40 % of the initial margin of the mark: every account starts healthy.
            offset_ppm = rng.randint(-400_000 // leverage, 400_000 // leverage)
            entry = marks[iid] * (1_000_000 + offset_ppm) // 1_000_000
            positions[iid] = _Pos(size, size * entry * ks[iid])
            notional += abs(size) * entry * ks[iid]
        accounts[account_id] = _Acct(account_id, notional // leverage, positions)
    return accounts


def _percentile(sorted_values: list[int], q: float) -> int:
    index = min(len(sorted_values) - 1, max(0, int(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def bench_liquidation_sweep(n_accounts: int = 1_000_000, liquidatable_fraction: float = 0.001,
                            iterations: int = 200, multi_position_fraction: float = 0.05,
                            seed: int = 20240808) -> dict[str, Any]:
    """Run the sweep benchmark and return its figures.

    Args:
        n_accounts: population size.
        liquidatable_fraction: share of single-position accounts each mark move makes liquidatable.
        iterations: mark moves measured (alternately down and up).
        multi_position_fraction: share of accounts that also hold ETH (cross, conservative triggers).
        seed: population and move seed.

    Returns:
        ``{"workload": "liquidation_sweep", "commands" (mark updates measured), "commands_per_s",
        "latency_us_p50/p99/p999", "accounts", "latency_ms_p50", "latency_ms_p99",
        "latency_ms_max", "refresh_ms_p50", "refresh_ms_p99", "liquidatable_mean", "orders_mean",
        "suspects_checked_mean", "false_alarms_mean", "build_s", "iterations", ...}``.
    """
    assert n_accounts >= 100 and 0 < liquidatable_fraction < 0.5 and iterations >= 1
    config = load_venue_config(str(resources.files("bastion") / "configs" / "default.toml"))
    specs = dict(config.instruments)
    ks = {iid: s.atoms_per_tick_lot for iid, s in specs.items()}
    start_marks = {iid: s.reference_price_ticks for iid, s in specs.items()}
    rng = random.Random(seed)
    build_start = time.perf_counter()
    accounts = _population(n_accounts, multi_position_fraction, start_marks, ks, rng)
    index = LiquidationIndex(specs)
    index.bulk_load(accounts.values(), start_marks)
    build_s = time.perf_counter() - build_start

    # Exact liquidation prices of single-position BTC accounts, to aim each move at ~target crossings.
    multi = {a.account_id for a in accounts.values() if len(a.positions) > 1}
    longs, shorts = [], []
    for entry in index._entries.items():  # read-only peek for aiming; the sweep uses the public API
        account_id, entries = entry
        if account_id in multi:
            continue
        _, side, key = entries[0]
        trigger = key >> 64
        if side > 0 and 0 < trigger < start_marks[1]:
            longs.append(trigger)
        elif side < 0 and start_marks[1] < trigger < PRICE_TICKS_UNBOUNDED:
            shorts.append(trigger)
    longs.sort(reverse=True)
    shorts.sort()
    target = max(1, int(n_accounts * liquidatable_fraction))
    liq_config = LiquidationConfig()
    marks = dict(start_marks)
    latencies_ns: list[int] = []
    refresh_ns: list[int] = []
    found: list[int] = []
    orders_made: list[int] = []
    checked: list[int] = []
    refreshed: list[int] = []
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for i in range(iterations):
            jitter = rng.randint(target * 9 // 10, target * 11 // 10)
            side_list = longs if i % 2 == 0 else shorts
            mark = max(1, side_list[min(jitter, len(side_list)) - 1])
            marks[1] = mark
            began = time.perf_counter_ns()
            orders = sweep_liquidations(index, 1, mark, accounts, marks, liq_config)
            latencies_ns.append(time.perf_counter_ns() - began)
            began = time.perf_counter_ns()
            index.refresh_pending(marks)  # what the engine does after the command's liquidations
            refresh_ns.append(time.perf_counter_ns() - began)
            orders_made.append(len(orders))
            found.append(index.stats.liquidatable)
            checked.append(index.stats.suspects_checked)
            refreshed.append(index.stats.false_alarms)
    finally:
        if gc_was_enabled:
            gc.enable()
    ordered = sorted(latencies_ns)
    sweep_s = sum(latencies_ns) / 1e9
    return {
        "workload": "liquidation_sweep",
        "commands": iterations,
        "commands_per_s": round(iterations / sweep_s) if sweep_s > 0 else 0,  # mark updates swept per second
        "latency_us_p50": round(_percentile(ordered, 0.50) / 1e3, 2),
        "latency_us_p99": round(_percentile(ordered, 0.99) / 1e3, 2),
        "latency_us_p999": round(_percentile(ordered, 0.999) / 1e3, 2),
        "accounts": n_accounts,
        "liquidatable_fraction": liquidatable_fraction,
        "multi_position_fraction": multi_position_fraction,
        "iterations": iterations,
        "latency_ms_p50": round(_percentile(ordered, 0.50) / 1e6, 3),
        "latency_ms_p99": round(_percentile(ordered, 0.99) / 1e6, 3),
        "latency_ms_max": round(ordered[-1] / 1e6, 3),
        "refresh_ms_p50": round(_percentile(sorted(refresh_ns), 0.50) / 1e6, 3),
        "refresh_ms_p99": round(_percentile(sorted(refresh_ns), 0.99) / 1e6, 3),
        "liquidatable_mean": round(sum(found) / len(found), 1),
        "orders_mean": round(sum(orders_made) / len(orders_made), 1),
        "suspects_checked_mean": round(sum(checked) / len(checked), 1),
        "false_alarms_mean": round(sum(refreshed) / len(refreshed), 1),
        "build_s": round(build_s, 2),
        "seed": seed,
    }


def _engine_population(engine: Any, n: int, rng: random.Random) -> None:
    """Write ``n`` accounts (ids 1..n) with BTC positions into ``engine``: pairs of the same size, one long
    and one short, entries within +-40 % of the initial margin of the mark, balance = notional / leverage."""
    from bastion.core.accounts import Account, Position

    spec = engine.specs[1]
    k, mark = spec.atoms_per_tick_lot, spec.reference_price_ticks
    net_cash = 0
    for pair in range(n // 2):
        lots = rng.randint(1, 5_000)
        for account_id, size in ((2 * pair + 1, lots), (2 * pair + 2, -lots)):
            leverage = rng.randint(2, 50)
            offset_ppm = rng.randint(-400_000 // leverage, 400_000 // leverage)
            entry = mark * (1_000_000 + offset_ppm) // 1_000_000
            account = Account(account_id, account_id)
            account.balance_atoms = abs(size) * entry * k // leverage
            pos = Position()
            pos.size_lots, pos.cost_atoms = size, size * entry * k
            account.positions[1] = pos
            engine.accounts[account_id] = account
            net_cash += account.balance_atoms - pos.cost_atoms
    engine.deposits_total_atoms += net_cash  # the population's cash, as if deposited


def bench_liquidation_engine(n_accounts: int = 200_000, liquidatable_fraction: float = 0.001,
                             iterations: int = 60, seed: int = 20240808,
                             liquidations_per_command_max: int = 0) -> dict[str, Any]:
    """Time ``Engine.apply(SetOraclePrice)`` through every liquidation IOC it triggers (module docstring).

    Args:
        n_accounts: engine accounts with a BTC position (even; plus one LP account).
        liquidatable_fraction: share of accounts each oracle move aims to make liquidatable.
        iterations: oracle moves timed (alternately down and up, each a little deeper).
        seed: population seed.
        liquidations_per_command_max: the engine's per-command cap (0: high enough that every account
            the move makes liquidatable is liquidated in that command; the venue default is 50 and
            carries the rest over to the next commands).

    Returns:
        ``{"workload": "liquidation_engine", "accounts", "latency_ms_p50", "latency_ms_p99",
        "latency_ms_max", "liquidations_mean", "build_s", "iterations", ...}``.
    """
    from bastion.core.commands import CancelAll, CreateAccount, Deposit, PlaceOrder, Sequenced
    from bastion.core.engine import Engine
    from bastion.core.events import OrderAccepted
    from bastion.core.risk.mark import MarkConfig, MarkMethod
    from bastion.core.risk_engine import RiskConfig
    from bastion.core.risk_messages import PositionLiquidated, SetOraclePrice

    assert n_accounts >= 100 and n_accounts % 2 == 0 and iterations >= 1
    config = load_venue_config(str(resources.files("bastion") / "configs" / "default.toml"))
    target = max(1, int(n_accounts * liquidatable_fraction))
    cap = liquidations_per_command_max or 20 * target
    risk = RiskConfig(mark=MarkConfig(method=MarkMethod.INDEX),
                      liquidation=LiquidationConfig(liquidations_per_command_max=cap))
    rng = random.Random(seed)
    build_start = time.perf_counter()
    seed_engine = Engine(config, risk=risk)
    _engine_population(seed_engine, n_accounts, rng)
    engine = Engine.restore(config, seed_engine.snapshot(), risk=risk)  # derived indexes + invariants
    del seed_engine
    build_s = time.perf_counter() - build_start
    lp = n_accounts + 1
    now = [10**9]
    seq = [engine.seq]

    def apply(cmd: Any) -> list[Any]:
        now[0] += 1_000_000
        seq[0] += 1
        return engine.apply(Sequenced(seq[0], now[0], cmd))

    apply(CreateAccount(lp, lp))
    apply(Deposit(lp, 10**17))
    client = [0]

    def ladder(mark: int) -> None:  # untimed: 64 levels a side, 0.5 USD apart, 100 BTC each
        apply(CancelAll(lp, 0))
        for level in range(1, 65):
            for side in (1, -1):
                client[0] += 1
                apply(PlaceOrder(lp, 1, client[0], side, mark - side * 5 * level, 100_000))

    start = engine.specs[1].reference_price_ticks
    apply(SetOraclePrice(1, start, now[0] + 1_000_000))
    triggers: dict[int, list[int]] = {1: [], -1: []}
    for entries in engine.risk.index._entries.values():  # read-only peek for aiming, as above
        _, side, key = entries[0]
        trigger = key >> 64
        if (side > 0 and 0 < trigger < start) or (side < 0 and start < trigger < PRICE_TICKS_UNBOUNDED):
            triggers[side].append(trigger)
    triggers[1].sort(reverse=True)
    triggers[-1].sort()
    latencies_ns: list[int] = []
    liquidations: list[int] = []
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for i in range(iterations):
            side = 1 if i % 2 == 0 else -1
            depth = min(len(triggers[side]), (i // 2 + 1) * target) - 1
            mark = max(1, triggers[side][max(0, depth)])
            ladder(engine.marks[1])
            now[0] += 1_000_000
            seq[0] += 1
            item = Sequenced(seq[0], now[0], SetOraclePrice(1, mark, now[0]))
            began = time.perf_counter_ns()
            events = engine.apply(item)
            latencies_ns.append(time.perf_counter_ns() - began)
            liquidations.append(sum(1 for e in events if isinstance(e, OrderAccepted) and e.client_order_id == 0))
            assert not any(isinstance(e, PositionLiquidated) and e.account_id == lp for e in events)
    finally:
        if gc_was_enabled:
            gc.enable()
    engine.check_invariants()
    ordered = sorted(latencies_ns)
    return {
        "workload": "liquidation_engine",
        "accounts": n_accounts,
        "liquidatable_fraction": liquidatable_fraction,
        "iterations": iterations,
        "latency_ms_p50": round(_percentile(ordered, 0.50) / 1e6, 3),
        "latency_ms_p99": round(_percentile(ordered, 0.99) / 1e6, 3),
        "latency_ms_max": round(ordered[-1] / 1e6, 3),
        "liquidations_mean": round(sum(liquidations) / len(liquidations), 1),
        "liquidations_max": max(liquidations),
        "liquidations_per_command_max": cap,
        "queue_left_end": len(engine.risk.queue),
        "parked_end": len(engine.risk.parked),
        "build_s": round(build_s, 2),
        "seed": seed,
    }


if __name__ == "__main__":  # pragma: no cover - shell entry point: python -m bastion.sim.risk_bench
    import json
    import sys

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    if len(sys.argv) > 2 and sys.argv[2] == "engine":
        cap = int(sys.argv[3]) if len(sys.argv) > 3 else 0
        print(json.dumps(bench_liquidation_engine(n_accounts=size, liquidations_per_command_max=cap)))
    else:
        print(json.dumps(bench_liquidation_sweep(n_accounts=size)))
