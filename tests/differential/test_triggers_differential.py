"""Differential: the fast trigger book (sorted keys) vs the naive reference (linear scan, the venue's
direction table spelled out), on seeded chaos streams heavy in trigger orders, every event and the state
hash compared after every command; plus snapshot/restore mid-stream on both engines.

``triggers_per_command_max`` is 2 here so that carry-over across commands happens all the time.
"""

from __future__ import annotations

import dataclasses

import pytest

from bastion.core.book.reference import ReferenceBook
from bastion.core.engine import Engine
from bastion.core.events import OrderTriggered, TriggerOrderAccepted
from bastion.core.instruments import VenueConfig
from bastion.core.triggers import ReferenceTriggerBook
from bastion.sim.differential import run_differential
from bastion.sim.streams import chaos_commands
from tests.conftest import default_config
from tests.integrity._engine_helpers import make_config
from tests.integrity.test_engine_differential import INTEGRITY

SHARE = 0.6


def capped(config: VenueConfig, cap: int = 2) -> VenueConfig:
    return dataclasses.replace(config, limits=dataclasses.replace(config.limits, triggers_per_command_max=cap))


@pytest.mark.parametrize("seed", range(10))
def test_fast_and_reference_triggers_agree(seed: int) -> None:
    result = run_differential(capped(default_config()), seed, 1_200, check_invariants=True, trigger_share=SHARE)
    assert result.divergence is None, f"seed {seed}: {result.divergence}"


@pytest.mark.parametrize("seed", range(4))
def test_fast_and_reference_triggers_agree_with_breakers_on(seed: int) -> None:
    """Bands, velocity pauses, LULD halts and guardian halts: triggers wait while a market is closed."""
    result = run_differential(capped(make_config(INTEGRITY)), seed, 1_200, check_invariants=True, trigger_share=SHARE)
    assert result.divergence is None, f"seed {seed}: {result.divergence}"


@pytest.mark.parametrize("seed", range(3))
def test_snapshots_mid_stream_continue_identically(seed: int) -> None:
    """Every 150 commands: restore the snapshot on a fresh fast and a fresh reference engine and run
    the next 40 commands on all three; events and hashes must match. The stream must really exercise
    triggers (accepted and fired in the hundreds)."""
    config = capped(default_config())
    engine = Engine(config, check_invariants=True)
    gen = chaos_commands(config, seed, 1_500, trigger_share=SHARE)
    item = next(gen)
    pending: list[tuple[Engine, Engine, int]] = []
    counts = {TriggerOrderAccepted: 0, OrderTriggered: 0}
    compared = 0
    try:
        while True:
            events = engine.apply(item)
            for ev in events:
                if type(ev) in counts:
                    counts[type(ev)] += 1
            for fast, ref, until in pending:
                assert fast.apply(item) == events == ref.apply(item), f"seed {seed} seq {item.seq}"
                assert fast.state_hash() == engine.state_hash() == ref.state_hash()
                compared += 1
            pending = [p for p in pending if p[2] > item.seq]
            if item.seq % 150 == 0:
                snap = engine.snapshot()
                pending.append((Engine.restore(config, snap, check_invariants=True),
                                Engine.restore(config, snap, ReferenceBook, check_invariants=True), item.seq + 40))
            item = gen.send(events)
    except StopIteration:
        pass
    assert counts[TriggerOrderAccepted] > 200 and counts[OrderTriggered] > 50, counts
    assert compared > 300


def test_a_planted_trigger_order_divergence_is_found(monkeypatch) -> None:
    """The comparison can fail: make the reference fire reached orders by order id alone (ignoring the
    trigger-price order) and some seed must diverge."""
    original = ReferenceTriggerBook.first_fired

    def by_id(self, instrument_id, source, low, high):
        reached = []
        while True:
            t = original(self, instrument_id, source, low, high)
            if t is None:
                break
            reached.append(t)
            self._all.remove(t)
        self._all.extend(reached)
        self._all.sort(key=lambda o: o.order_id)
        return min(reached, key=lambda o: o.order_id) if reached else None

    monkeypatch.setattr(ReferenceTriggerBook, "first_fired", by_id)
    results = [run_differential(capped(default_config()), seed, 1_200, trigger_share=SHARE) for seed in range(4)]
    assert any(r.divergence is not None for r in results)
