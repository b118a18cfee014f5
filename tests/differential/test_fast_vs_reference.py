"""Differential test: fast book vs reference book on seeded random streams (every event, final hash).

The CI run covers 24 seeds x 1,500 commands with the full invariant check after every command; the
1,000,000-command soak is ``bastion soak`` (figures in the README / closing note).
"""

from __future__ import annotations

import pytest

from bastion.sim.differential import run_differential, run_differential_mix, soak_config


@pytest.mark.parametrize("seed", range(24))
def test_fast_and_reference_agree(config, seed: int) -> None:
    result = run_differential(config, seed, 1_500, check_invariants=True)
    assert result.divergence is None, f"seed {seed}: {result.divergence}"
    assert result.events > 1_500


@pytest.mark.parametrize("seed", range(8))
def test_fast_and_reference_agree_on_the_soak_venue(seed: int) -> None:
    """The soak venue and stream: guardians, oracle prices, price jumps, tiny named limits, an ETH band
    with velocity logic, risk gates; full invariant check after every command on both engines."""
    result = run_differential(soak_config(), seed, 1_500, check_invariants=True, soak=True)
    assert result.divergence is None, f"seed {seed}: {result.divergence}"


def test_an_auction_remainder_beyond_a_moved_band_is_swept() -> None:
    """Regression (soak seeds 9 and 12): an ETH auction uncrossed after the mark had moved the band;
    a limit remainder from the auction book rested below the band with no sweep pending, breaking the
    'nothing rests beyond its band' invariant. The uncross now marks the sweep."""
    for seed in (9, 12):
        result = run_differential(soak_config(), seed, 2_100, soak=True, invariants_every=1)
        assert result.divergence is None, f"seed {seed}: {result.divergence}"
        assert result.invariant_checks > 2_000 and result.cancels["outside_band"] > 0


def test_auction_fills_refresh_the_liquidation_index() -> None:
    """Regression (soak seed 17, seq 3567): account 6's position last changed in a call-auction uncross
    (seq 3392), which did not mark the two accounts for a health check and a liquidation-index refresh;
    a later 6 % mark drop then swept the stale entry and left it below maintenance with no liquidation
    pending (a risk invariant). Auction fills now touch both accounts, like continuous fills."""
    result = run_differential(soak_config(), 17, 3_600, soak=True, invariants_every=1)
    assert result.divergence is None, result.divergence
    assert result.event_types["AuctionCleared"] > 0 and result.event_types["PositionLiquidated"] > 0


def test_a_liquidation_that_takes_the_orders_a_sweep_waits_for_clears_the_sweep() -> None:
    """Regression (soak seed 47, seq 18130): an oracle move shifted the ETH band above every ask; the
    sweep canceled its budget of 3 and stayed pending, then the same command's liquidation IOC bought
    the remaining asks: no violation left, yet the sweep stayed pending (an integrity invariant)."""
    result = run_differential(soak_config(), 47, 18_200, soak=True, invariants_every=1)
    assert result.divergence is None, result.divergence


def test_the_soak_stream_reaches_every_stop_and_gate() -> None:
    """Coverage of the soak, counted from the events: named-limit stops, oracle prices, guardian
    transitions, liquidations, reduce-only resizing, STP, caps and gates all occur."""
    from collections import Counter

    rejects, cancels, kinds = Counter(), Counter(), Counter()
    for seed in range(4):
        result = run_differential(soak_config(), seed, 4_000, soak=True, invariants_every=50)
        assert result.divergence is None, f"seed {seed}: {result.divergence}"
        assert result.invariant_checks == result.commands // 50
        rejects.update(result.rejects)
        cancels.update(result.cancels)
        cancels.update(result.reductions)  # reduce-only resizing and STP decrement also shrink orders
        kinds.update(result.event_types)
    for reason in ("levels_walked_max", "fills_per_command_max", "reduce_only_resized", "liquidation", "expired",
                   "outside_band", "stp_expire_maker", "stp_decrement", "cancel_all"):
        assert cancels[reason] > 0, (reason, cancels)
    for code in ("orders_open_max_reached", "accounts_max_reached", "open_interest_cap_exceeded",
                 "index_price_unavailable", "market_halted", "guardian_unauthorized", "price_ticks_outside_band",
                 "expire_at_ns_above_max", "time_in_force_invalid", "stp_mode_invalid", "order_type_invalid",
                 "field_value_out_of_range", "fok_not_fillable"):
        assert rejects[code] > 0, (code, rejects)
    for kind in ("IndexPriceSet", "MarketStateChanged", "KillSwitchSet", "PositionLiquidated", "AuctionCleared"):
        assert kinds[kind] > 0, (kind, kinds)


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
