"""Differential runs: the fast engine and the reference engine fed the same seeded stream.

Used by the test suite (short runs) and by ``bastion soak`` (>= 1,000,000 commands): every event of every
command and the final state hash must agree; the first divergence is reported with its seed and seq.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.core.book.reference import ReferenceBook
from bastion.core.engine import Engine
from bastion.core.instruments import VenueConfig
from bastion.sim.streams import chaos_commands, exchange_core_mix

__all__ = ["DifferentialResult", "run_differential", "run_differential_mix"]


@dataclass(frozen=True, slots=True)
class DifferentialResult:
    """Outcome of one seeded differential run.

    Attributes:
        seed: the stream's seed (rerun with it to reproduce).
        commands: commands applied to both engines.
        events: events compared.
        divergence: None, or a human-readable description of the first mismatch (with its seq).
        state_hash: the final state hash (hex) when both agreed.
    """

    seed: int
    commands: int
    events: int
    divergence: str | None
    state_hash: str


def run_differential(config: VenueConfig, seed: int, n: int, check_invariants: bool = False,
                     accounts: int = 12, modes: bool = False,
                     trigger_share: float | None = None) -> DifferentialResult:
    """Run ``n`` chaos commands (plus account setup) through both engines; stop at the first mismatch.

    ``modes``: with matching-mode switches and commit-reveal traffic (``chaos_commands(modes=True)``).
    ``trigger_share`` overrides the stream's rate of trigger-order commands (None: its default).
    """
    fast = Engine(config, check_invariants=check_invariants)
    ref = Engine(config, ReferenceBook, check_invariants=check_invariants)
    extra = {} if trigger_share is None else {"trigger_share": trigger_share}
    gen = chaos_commands(config, seed, n, accounts=accounts, modes=modes, **extra)
    events = 0
    try:
        item = next(gen)
        while True:
            ev_fast = fast.apply(item)
            ev_ref = ref.apply(item)
            events += len(ev_fast)
            if ev_fast != ev_ref:
                return DifferentialResult(seed, item.seq, events, f"seq {item.seq}: {item.command!r}: fast {ev_fast!r} "
                                          f"!= reference {ev_ref!r}", "")
            item = gen.send(ev_fast)
    except StopIteration:
        pass
    if fast.state_hash() != ref.state_hash():
        return DifferentialResult(seed, fast.seq, events, f"state hash differs after seq {fast.seq}", "")
    return DifferentialResult(seed, fast.seq, events, None, fast.state_hash().hex())


def run_differential_mix(config: VenueConfig, seed: int, n: int, check_invariants: bool = False) -> DifferentialResult:
    """The exchange-core-like mix (1,000 accounts, ~1,000 resting orders) through both engines."""
    setup, body = exchange_core_mix(config, seed, n)
    fast = Engine(config, check_invariants=check_invariants)
    ref = Engine(config, ReferenceBook, check_invariants=check_invariants)
    events = 0
    for item in setup + body:
        ev_fast, ev_ref = fast.apply(item), ref.apply(item)
        events += len(ev_fast)
        if ev_fast != ev_ref:
            return DifferentialResult(seed, item.seq, events, f"seq {item.seq}: {item.command!r}: fast {ev_fast!r} "
                                      f"!= reference {ev_ref!r}", "")
    if fast.state_hash() != ref.state_hash():
        return DifferentialResult(seed, fast.seq, events, f"state hash differs after seq {fast.seq}", "")
    return DifferentialResult(seed, fast.seq, events, None, fast.state_hash().hex())
