"""Differential runs: the fast engine and the reference engine fed the same seeded stream.

Used by the test suite (short runs) and by ``bastion soak`` (>= 1,000,000 commands): every event of every
command and the final state hash must agree; the first divergence is reported with its seed and seq.
The full invariant check (conservation, OI balance, uncrossed books, index consistency) runs on both
engines every ``invariants_every`` commands, and the run counts every reject code, cancel reason and
event type it saw, so coverage is visible (``DifferentialResult.coverage``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from importlib import resources

from bastion.config import load_venue_config
from bastion.core.book.reference import ReferenceBook
from bastion.core.engine import Engine
from bastion.core.events import CommandRejected, Event, OrderCanceled, OrderReduced
from bastion.core.instruments import VenueConfig
from bastion.sim.streams import chaos_commands, exchange_core_mix

__all__ = ["DifferentialResult", "run_differential", "run_differential_mix", "soak_config"]


def soak_config() -> VenueConfig:
    """The soak venue (``bastion/configs/soak.toml``): guardians, tiny named limits, an ETH price band
    and velocity logic, risk gates, so random streams reach every stop, cap and guardian path."""
    return load_venue_config(resources.files("bastion") / "configs" / "soak.toml")


@dataclass(frozen=True, slots=True)
class DifferentialResult:
    """Outcome of one seeded differential run.

    Attributes:
        seed: the stream's seed (rerun with it to reproduce).
        commands: commands applied to both engines.
        events: events compared.
        divergence: None, or a human-readable description of the first mismatch (with its seq).
        state_hash: the final state hash (hex) when both agreed.
        invariant_checks: full invariant checks run (on each engine).
        rejects / cancels / reductions / event_types: how often each reject code, cancel reason,
            reduce reason and event type occurred (by name), from the fast engine's events.
    """

    seed: int
    commands: int
    events: int
    divergence: str | None
    state_hash: str
    invariant_checks: int = 0
    rejects: Counter[str] = field(default_factory=Counter)
    cancels: Counter[str] = field(default_factory=Counter)
    reductions: Counter[str] = field(default_factory=Counter)
    event_types: Counter[str] = field(default_factory=Counter)


class _Tally:
    """Counts reject codes, cancel/reduce reasons and event types."""

    __slots__ = ("rejects", "cancels", "reductions", "event_types")

    def __init__(self) -> None:
        self.rejects: Counter[str] = Counter()
        self.cancels: Counter[str] = Counter()
        self.reductions: Counter[str] = Counter()
        self.event_types: Counter[str] = Counter()

    def add(self, events: list[Event]) -> None:
        for ev in events:
            kind = type(ev)
            self.event_types[kind.__name__] += 1
            if kind is CommandRejected:
                self.rejects[ev.code.name] += 1  # type: ignore[union-attr]
            elif kind is OrderCanceled:
                self.cancels[ev.reason.name] += 1  # type: ignore[union-attr]
            elif kind is OrderReduced:
                self.reductions[ev.reason.name] += 1  # type: ignore[union-attr]


def _result(seed: int, commands: int, events: int, divergence: str | None, digest: str, checks: int,
            tally: _Tally) -> DifferentialResult:
    return DifferentialResult(seed, commands, events, divergence, digest, checks, tally.rejects, tally.cancels,
                              tally.reductions, tally.event_types)


def run_differential(config: VenueConfig, seed: int, n: int, check_invariants: bool = False,
                     accounts: int = 12, modes: bool = False, trigger_share: float | None = None, *,
                     soak: bool = False, invariants_every: int = 0) -> DifferentialResult:
    """Run ``n`` chaos commands (plus account setup) through both engines; stop at the first mismatch.

    Args:
        check_invariants: the full invariant check after every command (both engines).
        modes: with matching-mode switches and commit-reveal traffic (``chaos_commands(modes=True)``).
        trigger_share: overrides the stream's rate of trigger-order commands (None: its default).
        soak: the soak stream (oracle prices, price jumps, account creation; ``chaos_commands``).
        invariants_every: > 0: the full invariant check on both engines every this many commands
            (a sampled fraction: the check is O(state)); an InvariantViolation is reported as a
            divergence with its seq.
    """
    fast = Engine(config, check_invariants=check_invariants)
    ref = Engine(config, ReferenceBook, check_invariants=check_invariants)
    extra = {} if trigger_share is None else {"trigger_share": trigger_share}
    gen = chaos_commands(config, seed, n, accounts=accounts, modes=modes, soak=soak, **extra)
    events = checks = 0
    tally = _Tally()
    try:
        item = next(gen)
        while True:
            ev_fast = fast.apply(item)
            ev_ref = ref.apply(item)
            events += len(ev_fast)
            tally.add(ev_fast)
            if ev_fast != ev_ref:
                return _result(seed, item.seq, events, f"seq {item.seq}: {item.command!r}: fast {ev_fast!r} "
                               f"!= reference {ev_ref!r}", "", checks, tally)
            if invariants_every and item.seq % invariants_every == 0:
                checks += 1
                for name, engine in (("fast", fast), ("reference", ref)):
                    try:
                        engine.check_invariants()
                    except AssertionError as exc:
                        return _result(seed, item.seq, events, f"seq {item.seq}: {name} engine: {exc}", "", checks,
                                       tally)
            item = gen.send(ev_fast)
    except StopIteration:
        pass
    if fast.state_hash() != ref.state_hash():
        return _result(seed, fast.seq, events, f"state hash differs after seq {fast.seq}", "", checks, tally)
    return _result(seed, fast.seq, events, None, fast.state_hash().hex(), checks, tally)


def run_differential_mix(config: VenueConfig, seed: int, n: int, check_invariants: bool = False) -> DifferentialResult:
    """The exchange-core-like mix (1,000 accounts, ~1,000 resting orders) through both engines."""
    setup, body = exchange_core_mix(config, seed, n)
    fast = Engine(config, check_invariants=check_invariants)
    ref = Engine(config, ReferenceBook, check_invariants=check_invariants)
    events = 0
    tally = _Tally()
    for item in setup + body:
        ev_fast, ev_ref = fast.apply(item), ref.apply(item)
        events += len(ev_fast)
        tally.add(ev_fast)
        if ev_fast != ev_ref:
            return _result(seed, item.seq, events, f"seq {item.seq}: {item.command!r}: fast {ev_fast!r} "
                           f"!= reference {ev_ref!r}", "", 0, tally)
    if fast.state_hash() != ref.state_hash():
        return _result(seed, fast.seq, events, f"state hash differs after seq {fast.seq}", "", 0, tally)
    return _result(seed, fast.seq, events, None, fast.state_hash().hex(), 0, tally)
