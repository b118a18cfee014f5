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


def test_best_live_price_agrees_on_random_books() -> None:
    """FastBook.best_live_price and ReferenceBook.best_live_price on the same random resting orders (some
    GTD), at random engine times and skip budgets; checked against a naive scan of the resting orders."""
    import random

    from bastion.core.book.base import Order
    from bastion.core.book.fast import FastBook
    from bastion.core.book.reference import ReferenceBook

    rng = random.Random(5)
    for trial in range(200):
        fast, ref = FastBook(1), ReferenceBook(1)
        for oid in range(1, rng.randint(1, 40)):
            side = rng.choice((1, -1))
            price = 1_000 + (-rng.randint(1, 12) if side > 0 else rng.randint(1, 12))
            expire = rng.choice((0, 0, rng.randint(1, 100)))
            qty = rng.randint(1, 9)
            for book in (fast, ref):
                book.add(Order(oid, oid % 5, 1, oid, side, price, qty, 3 if expire else 0, False, False, 0, expire))
        now, skip = rng.randint(0, 120), rng.randint(0, 6)
        for side in (1, -1):
            resting = [o for o in ref.orders_in_priority() if o.side == side]
            expected = None
            for skipped, o in enumerate(resting):
                if not (o.expire_at_ns and o.expire_at_ns <= now) or skipped == skip:
                    expected = o.price_ticks
                    break
            assert fast.best_live_price(side, now, skip) == ref.best_live_price(side, now, skip) == expected, trial
