"""The trigger index finds exactly the accounts a brute-force scan finds, for random accounts and moves."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.core.risk import (
    LiquidationConfig,
    LiquidationIndex,
    account_health,
    plan_liquidation,
    sweep_liquidations,
)
from tests.risk._helpers import make_account, make_spec

BTC = make_spec()
ETH = make_spec(tick="0.01", instrument_id=2, symbol="ETH-USDT")
SPECS = {1: BTC, 2: ETH}
START = {1: 600_000, 2: 300_000}


def _accounts(rng: random.Random, n: int, multi_fraction: float) -> dict[int, object]:
    accounts = {}
    for account_id in range(1, n + 1):
        held = {}
        iids = [1, 2] if rng.random() < multi_fraction else [rng.choice([1, 2])]
        notional = 0
        for iid in iids:
            k = SPECS[iid].atoms_per_tick_lot
            size = rng.randint(1, 20_000) * rng.choice([1, -1])
            entry = START[iid] * rng.randint(850, 1_150) // 1_000
            held[iid] = (size, size * entry * k)
            notional += abs(size) * entry * k
        accounts[account_id] = make_account(account_id, notional // rng.randint(2, 120), held)
    return accounts


def _brute(accounts, marks) -> set[int]:
    return {a.account_id for a in accounts.values() if account_health(a, SPECS, marks).liquidatable}


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), multi=st.sampled_from([0.0, 0.3, 1.0]))
def test_index_matches_brute_force_scan(seed: int, multi: float) -> None:
    """After every mark move of instrument i: (a) every account that became liquidatable is among the
    hits of the query for i (what the engine relies on); (b) the hits are exactly liquidatable; (c) the
    union of queries over all instruments equals the brute-force set. Balance changes go through the
    update hook. Seed printed by Hypothesis on failure."""
    rng = random.Random(seed)
    accounts = _accounts(rng, 60, multi)
    marks = dict(START)
    index = LiquidationIndex(SPECS)
    index.bulk_load(accounts.values(), marks)
    before = _brute(accounts, marks)
    for _ in range(40):
        if rng.random() < 0.2:
            account = accounts[rng.randint(1, len(accounts))]
            account.balance_atoms += rng.randint(-10**9, 10**9)
            now_liquidatable = index.update(account, marks)
            assert now_liquidatable == account_health(account, SPECS, marks).liquidatable
            before = _brute(accounts, marks)
            continue
        iid = rng.choice([1, 2])
        marks[iid] = max(1, marks[iid] * rng.randint(880, 1_120) // 1_000)
        hits = set(index.liquidatable(iid, marks[iid], accounts, marks))
        now = _brute(accounts, marks)
        assert now - before <= hits
        assert hits <= now
        union = set()
        for other in SPECS:
            union |= set(index.liquidatable(other, marks[other], accounts, marks))
        assert union == now
        if rng.random() < 0.5:
            index.refresh_pending(marks)  # the engine does this at the end of each command
        before = now


def test_single_position_hits_need_no_check() -> None:
    """Single-position accounts are indexed by their exact liquidation price: no suspects to check."""
    rng = random.Random(5)
    accounts = _accounts(rng, 500, 0.0)
    index = LiquidationIndex(SPECS)
    index.bulk_load(accounts.values(), START)
    marks = dict(START)
    marks[1] = 570_000
    hits = index.liquidatable(1, 570_000, accounts, marks)
    assert index.stats.suspects_checked == 0
    assert set(hits) == {i for i in _brute(accounts, marks) if 1 in accounts[i].positions}


def test_sweep_returns_orders_most_underwater_first() -> None:
    rng = random.Random(11)
    accounts = _accounts(rng, 400, 0.2)
    index = LiquidationIndex(SPECS)
    index.bulk_load(accounts.values(), START)
    marks = dict(START)
    marks[1] = 560_000
    orders = sweep_liquidations(index, 1, 560_000, accounts, marks, LiquidationConfig())
    assert orders
    ratios = [o.equity_atoms * 10**6 // o.maintenance_atoms for o in orders]
    assert ratios == sorted(ratios)
    for order in orders:
        assert order.qty_lots >= 1
        assert account_health(accounts[order.account_id], SPECS, marks).liquidatable
        # The single-position fast path (indexed state) plans exactly what the general path plans.
        cfg = LiquidationConfig()
        general = plan_liquidation(accounts[order.account_id], SPECS, marks, cfg, cfg.max_notional_per_interval_atoms)
        assert order == general


def test_update_and_remove_hooks() -> None:
    account = make_account(9, 1_000 * 10**6, {1: (1_000, 1_000 * 600_000 * 100)})
    index = LiquidationIndex(SPECS)
    index.update(account, START)
    assert 9 in index and len(index) == 1
    account.balance_atoms = 0  # a withdrawal: the liquidation price moves up to the mark region
    index.update(account, START)
    assert index.fired(1, 600_000) == [9]
    account.positions[1].size_lots = 0
    account.positions[1].cost_atoms = 0
    index.update(account, START)
    assert 9 not in index and index.fired(1, 1) == []


def _wake_due(account, marks, allowance: int) -> bool:
    """What a parked account waits for (brute force): bankrupt, or one lot of a position affordable."""
    health = account_health(account, SPECS, marks)
    affordable = any(allowance >= marks[iid] * SPECS[iid].atoms_per_tick_lot
                     for iid, p in account.positions.items() if p.size_lots)
    return health.equity_atoms <= 0 or affordable


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), multi=st.sampled_from([0.0, 0.3, 1.0]))
def test_parked_wake_entries_fire_whenever_a_step_could_exist(seed: int, multi: float) -> None:
    """Parked accounts (random allowances below one lot of each position, equity > 0): after every mark
    move, every parked account whose wake condition holds (bankrupt, or a lot affordable: a brute-force
    check) has fired, i.e. is in ``woken``; single-position accounts fire exactly then (no false alarm);
    woken accounts are never returned as liquidatable; and while no wake entry fired
    ``plan_liquidation`` with the allowance is None (nothing is withheld from a parked account)."""
    rng = random.Random(seed)
    accounts = _accounts(rng, 60, multi)
    marks = dict(START)
    index = LiquidationIndex(SPECS)
    index.bulk_load(accounts.values(), marks)
    parked: dict[int, int] = {}
    for account in accounts.values():
        lot_min = min(marks[iid] * SPECS[iid].atoms_per_tick_lot for iid in account.positions)
        allowance = rng.randint(0, lot_min - 1)
        if account_health(account, SPECS, marks).equity_atoms > 0 and rng.random() < 0.7:
            assert index.park(account, marks, allowance)
            parked[account.account_id] = allowance
    woken: set[int] = set()
    config = LiquidationConfig()
    for _ in range(30):
        iid = rng.choice([1, 2])
        marks[iid] = max(1, marks[iid] * rng.randint(700, 1_300) // 1_000)
        hits = set(index.liquidatable(iid, marks[iid], accounts, marks))
        woken |= set(index.woken)
        index.woken.clear()
        assert not hits & set(parked)
        for aid, allowance in parked.items():
            account = accounts[aid]
            due = _wake_due(account, marks, allowance)
            if due:
                assert aid in woken, aid  # fired on this or an earlier move
            if len(account.positions) == 1 and aid not in woken:
                assert not due
            if aid not in woken:
                assert plan_liquidation(account, SPECS, marks, config, allowance) is None
        for iid2 in SPECS:  # exact single-position wakes: fired now iff due now
            fired = set(index.fired(iid2, marks[iid2]))
            for aid in parked:
                account = accounts[aid]
                if len(account.positions) == 1 and iid2 in account.positions:
                    assert (aid in fired) == _wake_due(account, marks, parked[aid]), aid


def test_park_refuses_an_account_whose_wake_is_due_and_unpark_restores_the_trigger() -> None:
    account = make_account(9, 1_000 * 10**6, {1: (1_000, 1_000 * 600_000 * 100)})
    index = LiquidationIndex(SPECS)
    index.update(account, START)
    trigger_entries = index.entries(account, START)
    assert not index.park(account, START, 600_000 * 100)  # one lot affordable: stays an ordinary entry
    assert index.park(account, START, 100)
    assert index.entries(account, START) != trigger_entries and index.is_parked(9)
    assert index.unpark(account, START) is False
    assert not index.is_parked(9) and index.entries(account, START) == trigger_entries
