"""Differential test: fast book vs reference book on seeded random streams (every event, final hash).

The CI run covers 24 seeds x 1,500 commands with the full invariant check after every command; the
1,000,000-command soak is ``bastion soak`` (figures in the README / closing note).
"""

from __future__ import annotations

import pytest

from bastion.sim.differential import run_differential, run_differential_mix


@pytest.mark.parametrize("seed", range(24))
def test_fast_and_reference_agree(config, seed: int) -> None:
    result = run_differential(config, seed, 1_500, check_invariants=True)
    assert result.divergence is None, f"seed {seed}: {result.divergence}"
    assert result.events > 1_500


def test_fast_and_reference_agree_on_the_deep_book_mix(config) -> None:
    """1,000 accounts, ~1,000 resting orders: deep levels, long FIFO queues, many partial fills."""
    result = run_differential_mix(config, 11, 3_000)
    assert result.divergence is None, result.divergence
    assert result.events > 3_000


def test_a_planted_divergence_is_found(config, monkeypatch) -> None:
    """The comparison can fail: break the reference book's time priority and the run must diverge."""
    from bastion.core.book import reference

    original = reference.ReferenceBook._sorted_opposite

    def lifo(self, taker):
        orders = original(self, taker)
        return sorted(orders, key=lambda o: (o.price_ticks * taker.side, -o.priority))

    monkeypatch.setattr(reference.ReferenceBook, "_sorted_opposite", lifo)
    results = [run_differential(config, seed, 1_500) for seed in range(3)]
    assert any(r.divergence is not None for r in results)
