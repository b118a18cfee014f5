"""Benchmark: mark-price updates with many untriggered stop orders resting (``bastion bench trigger_sweep``).

``n`` sell stop-market orders (1 lot each, 200 per account, distinct trigger prices from 580,000 ticks
down) rest on the mark. Two kinds of SetMarkPrice commands are timed, interleaved:

* *quiet*: the mark moves between 590,000 and 590,001 — no trigger is reached;
* *firing*: the mark steps down to the 64th-highest remaining trigger, so exactly
  ``triggers_per_command_max`` (64) orders fire and sell into a deep bid at 450,000.

The fast engine's cost of a quiet update should not grow with ``n`` (the trigger book reads two list
heads); the firing cost is about 64 market orders' matching. Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from typing import Any

from bastion.core.commands import CreateAccount, Deposit, OrderType, PlaceOrder, Sequenced, SetMarkPrice
from bastion.core.engine import Engine
from bastion.core.events import OrderTriggered
from bastion.core.instruments import VenueConfig

__all__ = ["bench_trigger_sweep"]

PER_ACCOUNT = 200
TOP_TRIGGER_TICKS = 580_000


def _percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_trigger_sweep(config: VenueConfig, n: int, steps: int = 100) -> dict[str, Any]:
    """Time quiet and firing mark updates over ``n`` untriggered orders; returns the figures."""
    assert n >= 64 * steps, "need at least 64 orders per firing step"
    cap = config.limits.triggers_per_command_max
    config = dataclasses.replace(config, limits=dataclasses.replace(config.limits, orders_open_max=PER_ACCOUNT))
    engine = Engine(config)
    seq, now = 0, 1_000_000_000

    def send(cmd: Any) -> list[Any]:
        nonlocal seq, now
        seq += 1
        now += 1_000
        return engine.apply(Sequenced(seq, now, cmd))

    accounts = -(-n // PER_ACCOUNT)
    for a in range(1, accounts + 2):
        send(CreateAccount(a, a))
        send(Deposit(a, 10**15))
    send(PlaceOrder(accounts + 1, 1, 1, 1, 450_000, 10**9))  # the bid every fired stop sells into
    triggers = [TOP_TRIGGER_TICKS - i for i in range(n)]
    for i, trigger in enumerate(triggers):
        send(PlaceOrder(1 + i // PER_ACCOUNT, 1, 10 + i, -1, 0, 1, order_type=OrderType.STOP_MARKET,
                        trigger_price_ticks=trigger))
    quiet: list[int] = []
    firing: list[int] = []
    fired = 0
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for step in range(steps):
            for k in range(4):
                t0 = clock()
                send(SetMarkPrice(1, 590_000 + (k & 1)))
                quiet.append(clock() - t0)
            t0 = clock()
            events = send(SetMarkPrice(1, triggers[(step + 1) * cap - 1]))
            firing.append(clock() - t0)
            fired += sum(1 for e in events if type(e) is OrderTriggered)
    finally:
        gc.enable()
    both = quiet + firing
    return {
        "workload": "trigger_sweep",
        "commands": len(both),
        "latency_us_p50": round(_percentile(both, 0.5) / 1000, 2),
        "latency_us_p99": round(_percentile(both, 0.99) / 1000, 2),
        "latency_us_p999": round(_percentile(both, 0.999) / 1000, 2),
        "untriggered_orders": n,
        "quiet_updates": len(quiet),
        "quiet_latency_us_p50": round(_percentile(quiet, 0.5) / 1000, 2),
        "quiet_latency_us_p99": round(_percentile(quiet, 0.99) / 1000, 2),
        "firing_updates": len(firing),
        "fired_per_update": fired // steps,
        "firing_latency_ms_p50": round(_percentile(firing, 0.5) / 1e6, 3),
        "firing_latency_ms_p99": round(_percentile(firing, 0.99) / 1e6, 3),
    }
