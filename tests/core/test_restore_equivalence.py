"""Snapshot + restore must not change behaviour: a restored engine and an uninterrupted one produce the
same events and state hash on every later command.

The live-order indexes (engine, account and position ``orders``) are walked in creation order by
reduce-only resizing ("oldest keeps its size"), cancel-all and the liquidation cancels; the snapshot lists
orders in book priority, so ``Engine.restore`` must rebuild those indexes in order-id order (the audit's
probe: two reduce-only bids whose book order differs from their creation order).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bastion.core.commands import CancelAll, CreateAccount, Deposit, PlaceOrder, Sequenced
from bastion.core.engine import Engine
from bastion.core.events import OrderCanceled, OrderReduced
from bastion.core.instruments import VenueConfig
from bastion.core.rejects import CancelReason
from bastion.sim.streams import chaos_commands
from bastion.venue import CommandNotJournalableError, Venue

P = 600_000


def _stamp(commands: list, start: int = 1) -> list[Sequenced]:
    return [Sequenced(start + i, 10**9 + (start + i) * 1_000, c) for i, c in enumerate(commands)]


def test_restored_engine_resizes_reduce_only_orders_oldest_first(config: VenueConfig) -> None:
    """Account 2 is short 10 with two reduce-only bids: A (older, 6 lots at P-20) and B (newer, 4 lots at
    P-10; better priced, so first in the book). Buying 5 leaves it short 5: the oldest (A) keeps what room
    is left (5 lots) and the newest (B) is canceled, in the restored engine as in the uninterrupted one."""
    prefix = _stamp([CreateAccount(1, 1), Deposit(1, 10**13), CreateAccount(2, 2), Deposit(2, 10**13),
                     CreateAccount(3, 3), Deposit(3, 10**13),
                     PlaceOrder(1, 1, 1, 1, P, 10), PlaceOrder(2, 1, 1, -1, P, 10),
                     PlaceOrder(2, 1, 2, 1, P - 20, 6, reduce_only=True),   # order 3 (A)
                     PlaceOrder(2, 1, 3, 1, P - 10, 4, reduce_only=True),   # order 4 (B)
                     PlaceOrder(3, 1, 1, -1, P + 50, 5)])
    suffix = _stamp([PlaceOrder(2, 1, 4, 1, P + 50, 5), CancelAll(2, 0)], start=len(prefix) + 1)
    live = Engine(config, check_invariants=True)
    for item in prefix:
        live.apply(item)
    restored = Engine.restore(config, live.snapshot(), check_invariants=True)
    resize_live, resize_restored = live.apply(suffix[0]), restored.apply(suffix[0])
    assert resize_restored == resize_live
    assert [e for e in resize_live if isinstance(e, (OrderReduced, OrderCanceled))] == [
        OrderReduced(3, 2, CancelReason.reduce_only_resized, 5),
        OrderCanceled(4, 2, CancelReason.reduce_only_resized, 4),
    ]
    assert restored.apply(suffix[1]) == live.apply(suffix[1])
    assert restored.state_hash() == live.state_hash()


def test_restore_keeps_positions_in_instrument_order(config: VenueConfig) -> None:
    """An account that first trades instrument 2, then 1, iterates its positions as 1, 2 (as restore does)."""
    live = Engine(config, check_invariants=True)
    items = _stamp([CreateAccount(1, 1), Deposit(1, 10**12), PlaceOrder(1, 2, 1, 1, 300_000, 1),
                    PlaceOrder(1, 1, 2, 1, P - 10, 1)])
    for item in items:
        live.apply(item)
    assert list(live.accounts[1].positions) == [1, 2]
    restored = Engine.restore(config, live.snapshot())
    assert list(restored.accounts[1].positions) == [1, 2]


def _hopping_run(config: VenueConfig, seed: int, n: int, restore_every_max: int, soak: bool = False) -> tuple[int, int]:
    """Drive an uninterrupted engine and one that is snapshotted and restored from its own snapshot at
    random points (every 1..restore_every_max commands) with one chaos stream; compare every command's
    events and, at each restore, the state hash. Returns (restores, events compared)."""
    rng = random.Random(seed ^ 0x5EED)
    live = Engine(config)
    hopping = Engine(config)
    gen = chaos_commands(config, seed, n, soak=soak)
    restores = compared = 0
    next_restore = rng.randint(1, restore_every_max)
    item = next(gen)
    while True:
        events = live.apply(item)
        assert hopping.apply(item) == events, f"seed {seed} seq {item.seq}: {item.command!r}"
        compared += len(events)
        if item.seq == next_restore:
            hopping = Engine.restore(config, hopping.snapshot())
            assert hopping.state_hash() == live.state_hash(), f"seed {seed} seq {item.seq}"
            restores += 1
            next_restore += rng.randint(1, restore_every_max)
        try:
            item = gen.send(events)
        except StopIteration:
            break
    assert hopping.state_hash() == live.state_hash()
    return restores, compared


@pytest.mark.parametrize("seed", range(12))
def test_engine_restored_mid_stream_matches_the_uninterrupted_one(config: VenueConfig, seed: int) -> None:
    restores, compared = _hopping_run(config, seed, 2_500, restore_every_max=25)
    assert restores > 100 and compared > 2_500


def test_soak_config_restored_mid_stream_matches_the_uninterrupted_one() -> None:
    """The soak venue (guardians, oracle prices, tiny limits, band, velocity, risk gates) and its stream:
    integrity and risk state (auctions, liquidations, funding) round-trip through snapshots too."""
    from bastion.sim.differential import soak_config

    for seed in range(4):
        restores, compared = _hopping_run(soak_config(), seed, 2_000, restore_every_max=40, soak=True)
        assert restores > 40 and compared > 2_000


@pytest.mark.parametrize("seed", [2, 6])
def test_venue_reopened_from_snapshots_matches_the_uninterrupted_engine(config: VenueConfig, tmp_path: Path,
                                                                         seed: int) -> None:
    """Through the real Venue: snapshot files, close, reopen (newest snapshot + journal tail) at many points
    of a chaos stream; every event and the final state hash equal an uninterrupted engine's."""
    rng = random.Random(seed)
    live = Engine(config)
    directory = tmp_path / "venue"
    venue = Venue.open(config, directory)
    gen = chaos_commands(config, seed, 3_000)
    reopened = 0
    reopen_at = None
    item = next(gen)
    try:
        while True:
            item = Sequenced(venue.engine.seq + 1, item.timestamp_ns, item.command)
            try:
                events = venue.submit_sequenced(item)
            except CommandNotJournalableError:
                events = []  # never journaled: the uninterrupted engine skips it too
            else:
                assert live.apply(item) == events, f"seq {item.seq}: {item.command!r}"
            if reopen_at is None and rng.random() < 0.06:
                venue.snapshot()
                reopen_at = venue.engine.seq + rng.randint(0, 8)  # a few commands of journal tail to replay
            if reopen_at is not None and venue.engine.seq >= reopen_at:
                venue.close()
                venue = Venue.open(config, directory)
                assert venue.recovery.snapshot_used is not None
                assert venue.engine.state_hash() == live.state_hash()
                reopened += 1
                reopen_at = None
            try:
                item = gen.send(events)
            except StopIteration:
                break
    finally:
        venue.close()
    assert reopened > 60
    reopened_venue = Venue.open(config, directory)
    try:
        assert reopened_venue.engine.state_hash() == live.state_hash()
    finally:
        reopened_venue.close()
