"""Loss waterfall: ADL ranking worked example, insurance/ADL/socialization steps, conservation properties."""

from __future__ import annotations

import random
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.core.risk import (
    CloseVia,
    WaterfallConfig,
    account_health,
    adl_queue,
    adl_rank,
    apply_waterfall,
    backstop_capacity_lots,
    plan_waterfall,
)
from tests.risk._helpers import USDT, make_account, make_spec

BTC = make_spec()
ETH = make_spec(tick="0.01", instrument_id=2, symbol="ETH-USDT")
SPECS = {1: BTC, 2: ETH}
K = BTC.atoms_per_tick_lot
MARKS = {1: 500_000, 2: 300_000}  # BTC 50,000.0; ETH 3,000.00


def short(account_id: int, btc_lots: int, entry_ticks: int, balance_usdt: int):
    return make_account(account_id, balance_usdt * USDT, {1: (-btc_lots, -btc_lots * entry_ticks * K)})


def market():
    """Mark 50,000. Shorts: A 2 BTC @ 55,000 (equity 20,000), B 1 BTC @ 60,000 (equity 50,000),
    C 4 BTC @ 51,000 (equity 10,000), D 1 BTC @ 45,000 (equity 25,000). Longs: X 5 BTC @ 55,000 with
    20,000 balance (equity -5,000: bankrupt), Y 3 BTC @ 50,000."""
    accounts = {
        1: short(1, 2_000, 550_000, 10_000),
        2: short(2, 1_000, 600_000, 40_000),
        3: short(3, 4_000, 510_000, 6_000),
        4: short(4, 1_000, 450_000, 30_000),
        10: make_account(10, 20_000 * USDT, {1: (5_000, 5_000 * 550_000 * K)}),
        11: make_account(11, 50_000 * USDT, {1: (3_000, 3_000 * 500_000 * K)}),
    }
    return accounts


def test_adl_ranking_worked_example() -> None:
    """BitMEX "Auto-Deleveraging" (bitmex.com/app/autoDeleveraging), same family on Binance/Bybit:
    Ranking = PnL% * EffLev if PnL% > 0 else PnL% / EffLev, PnL% = (MarkValue - AvgEntryValue) /
    |AvgEntryValue|, EffLev = |MarkValue| / (MarkValue - BankruptValue) = notional / account equity.
    A: PnL 10,000 / 110,000 = 9.09 %, lev 100,000 / 20,000 = 5    -> 5/11  = 0.4545
    C: PnL  4,000 / 204,000 = 1.96 %, lev 200,000 / 10,000 = 20   -> 20/51 = 0.3922
    B: PnL 10,000 /  60,000 = 16.7 %, lev  50,000 / 50,000 = 1    -> 1/6   = 0.1667
    D: PnL -5,000 /  45,000 = -11.1 %, lev 50,000 / 25,000 = 2    -> -1/18 = -0.0556
    Queue (shorts, highest first): A, C, B, D."""
    accounts = market()
    assert adl_rank(-2_000, -2_000 * 550_000 * K, 500_000, K, 20_000 * USDT) == Fraction(5, 11)
    assert adl_rank(-4_000, -4_000 * 510_000 * K, 500_000, K, 10_000 * USDT) == Fraction(20, 51)
    assert adl_rank(-1_000, -1_000 * 600_000 * K, 500_000, K, 50_000 * USDT) == Fraction(1, 6)
    assert adl_rank(-1_000, -1_000 * 450_000 * K, 500_000, K, 25_000 * USDT) == Fraction(-1, 18)
    queue = adl_queue(accounts.values(), 1, -1, SPECS, MARKS, 500)
    assert [c.account_id for c in queue] == [1, 3, 2, 4]
    assert adl_rank(-1_000, -1_000 * 450_000 * K, 500_000, K, 0) is None  # bankrupt: not a counterparty


def _apply(plan, accounts, fund: int) -> int:
    return fund + apply_waterfall(plan, accounts, SPECS)


def test_insurance_fund_covers_the_deficit() -> None:
    """X (equity -5,000) closes 5 BTC at the mark against A (2 BTC) and C (3 of 4 BTC); the fund pays 5,000."""
    accounts = market()
    plan = plan_waterfall(accounts[10], SPECS, MARKS, 100_000 * USDT, {1: list(accounts.values())},
                          list(accounts.values()), WaterfallConfig())
    assert plan.equity_atoms == -5_000 * USDT and plan.insurance_delta_atoms == -5_000 * USDT
    assert [(c.counterparty_id, c.qty_lots, c.via, c.charge_atoms) for c in plan.closes] == [
        (1, 2_000, CloseVia.ADL, 0), (3, 3_000, CloseVia.ADL, 0)]
    fund = _apply(plan, accounts, 100_000 * USDT)
    assert fund == 95_000 * USDT
    assert accounts[10].balance_atoms == 0 and accounts[10].positions[1].size_lots == 0
    assert accounts[1].positions[1].size_lots == 0 and accounts[3].positions[1].size_lots == -1_000


def test_adl_counterparties_absorb_what_the_fund_cannot() -> None:
    """Fund 2,000: the remaining 3,000 is the bankruptcy-price adjustment, charged to A and C pro rata to
    the notional they closed (100,000 : 150,000) = 1,200 and 1,800."""
    accounts = market()
    plan = plan_waterfall(accounts[10], SPECS, MARKS, 2_000 * USDT, {1: list(accounts.values())},
                          list(accounts.values()), WaterfallConfig())
    assert plan.insurance_delta_atoms == -2_000 * USDT
    assert [c.charge_atoms for c in plan.closes] == [1_200 * USDT, 1_800 * USDT]
    fund = _apply(plan, accounts, 2_000 * USDT)
    assert fund == 0 and accounts[10].balance_atoms == 0
    assert accounts[1].balance_atoms == (10_000 + 10_000 - 1_200) * USDT
    assert accounts[3].balance_atoms == (6_000 + 3_000 - 1_800) * USDT


def test_socialized_loss_is_the_last_resort_with_remainder_to_named_account() -> None:
    """Counterparties that can pay nothing: the deficit is spread pro rata to loss capacity over the pool;
    the floor remainder goes to the named account first."""
    accounts = {
        10: make_account(10, 0, {1: (1_000, 1_000 * 510_000 * K)}),  # equity -1,000 USDT at 50,000
        1: make_account(1, 0, {1: (-1_000, -1_000 * 500_000 * K)}),  # flat PnL, no cash: capacity 0
        20: make_account(20, 1 * USDT + 1, {}),
        21: make_account(21, 2 * USDT, {}),
        22: make_account(22, 10_000 * USDT, {}),
    }
    config = WaterfallConfig(remainder_account_id=21)
    plan = plan_waterfall(accounts[10], SPECS, MARKS, 0, {1: [accounts[1]]}, list(accounts.values()), config)
    assert plan.insurance_delta_atoms == 0 and [c.charge_atoms for c in plan.closes] == [0]
    total = sum(c.amount_atoms for c in plan.socialized)
    assert total == 1_000 * USDT and plan.bad_debt_atoms == 0
    shares = {c.account_id: c.amount_atoms for c in plan.socialized}
    capacity = 10_003 * USDT + 1
    floors = {20: 1_000 * USDT * (USDT + 1) // capacity, 21: 1_000 * USDT * 2 * USDT // capacity,
              22: 1_000 * USDT * 10_000 * USDT // capacity}
    remainder = 1_000 * USDT - sum(floors.values())
    assert 0 < remainder < 3 and shares == {20: floors[20], 21: floors[21] + remainder, 22: floors[22]}
    _apply(plan, accounts, 0)
    assert accounts[10].balance_atoms == 0 and all(a.balance_atoms >= 0 for a in accounts.values())


def test_bad_debt_when_every_capacity_is_exhausted() -> None:
    accounts = {
        10: make_account(10, 0, {1: (1_000, 1_000 * 510_000 * K)}),
        1: make_account(1, 0, {1: (-1_000, -1_000 * 500_000 * K)}),
        20: make_account(20, 300 * USDT, {}),
    }
    plan = plan_waterfall(accounts[10], SPECS, MARKS, 100 * USDT, {1: [accounts[1]]}, list(accounts.values()),
                          WaterfallConfig())
    assert plan.insurance_delta_atoms == -100 * USDT and plan.bad_debt_atoms == 600 * USDT
    _apply(plan, accounts, 100 * USDT)
    assert accounts[10].balance_atoms == -600 * USDT and accounts[20].balance_atoms == 0


def test_positive_equity_goes_to_the_fund_and_backstop_takes_first() -> None:
    """Equity >= 0 (the book could not absorb): the fund takes over at the bankruptcy price, i.e. keeps
    the residual equity; the backstop account takes the position at the mark up to its capacity."""
    accounts = market()
    accounts[10].balance_atoms = 30_000 * USDT  # equity +5,000
    backstop = make_account(99, 1_000_000 * USDT, {})
    accounts[99] = backstop
    lots = backstop_capacity_lots(backstop, 1, 5_000, SPECS, MARKS)
    assert lots == 5_000
    plan = plan_waterfall(accounts[10], SPECS, MARKS, 0, {1: list(accounts.values())}, [], WaterfallConfig(),
                          backstop=backstop, backstop_capacity={1: 4_000})
    assert plan.insurance_delta_atoms == 5_000 * USDT
    assert [(c.counterparty_id, c.qty_lots, c.via) for c in plan.closes] == [(99, 4_000, CloseVia.BACKSTOP),
                                                                             (1, 1_000, CloseVia.ADL)]
    fund = _apply(plan, accounts, 0)
    assert fund == 5_000 * USDT and accounts[10].balance_atoms == 0
    assert accounts[99].positions[1].size_lots == 4_000


def _random_market(rng: random.Random):
    accounts = {}
    holders = list(range(1, rng.randint(2, 12)))
    sizes = {1: {}, 2: {}}
    for iid in (1, 2):
        if iid == 2 and rng.random() < 0.5:
            continue
        x = rng.randint(1, 5_000) * rng.choice([1, -1])
        sizes[iid][100] = x
        net = x
        for h in holders:
            if rng.random() < 0.7:
                s = rng.randint(1, 4_000) * rng.choice([1, -1])
                sizes[iid][h] = s
                net += s
        sizes[iid][holders[-1] + 1] = sizes[iid].get(holders[-1] + 1, 0) - net
    ids = set(sizes[1]) | set(sizes[2]) | {200, 201}
    for account_id in sorted(ids):
        held = {}
        for iid in (1, 2):
            s = sizes[iid].get(account_id, 0)
            if s:
                entry = MARKS[iid] * rng.randint(800, 1_200) // 1_000
                held[iid] = (s, s * entry * SPECS[iid].atoms_per_tick_lot)
        accounts[account_id] = make_account(account_id, rng.randint(0, 50_000) * USDT * rng.randint(0, 1), held)
    x = accounts[100]
    equity = account_health(x, SPECS, MARKS).equity_atoms
    x.balance_atoms -= equity + rng.choice([rng.randint(0, 200_000) * USDT, -rng.randint(0, 5_000) * USDT, 0])
    return accounts


def _ledger(accounts, fund: int) -> int:
    return fund + sum(a.balance_atoms - sum(p.cost_atoms for p in a.positions.values()) for a in accounts.values())


@settings(max_examples=600, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), fund=st.integers(min_value=0, max_value=300_000 * USDT),
       with_backstop=st.booleans())
def test_waterfall_conserves_to_the_atom_and_leaves_no_negative_balance(seed: int, fund: int,
                                                                        with_backstop: bool) -> None:
    """Random balanced markets with a bankrupt (or merely closed-out) account: applying the plan with the
    engine's settle_fill keeps sum(balance - cost) + fund exact, long OI = short OI, the fund >= 0, every
    touched account's balance and equity >= 0; the account ends flat at exactly 0 unless bad debt or
    unclosed lots are reported."""
    rng = random.Random(seed)
    accounts = _random_market(rng)
    backstop = accounts[200] if with_backstop else None
    if backstop is not None:
        backstop.balance_atoms = rng.randint(0, 10**6) * USDT
    caps = {iid: backstop_capacity_lots(backstop, iid, 10**6, SPECS, MARKS) // 3 for iid in SPECS} if backstop else None
    before = _ledger(accounts, fund)
    net_before = {iid: sum(a.positions[iid].size_lots for a in accounts.values() if iid in a.positions)
                  for iid in SPECS}
    health_before = {i: account_health(a, SPECS, MARKS) for i, a in accounts.items()}
    balances_before = {i: a.balance_atoms for i, a in accounts.items()}
    plan = plan_waterfall(accounts[100], SPECS, MARKS, fund, {iid: list(accounts.values()) for iid in SPECS},
                          list(accounts.values()), WaterfallConfig(insurance_loss_max_atoms=rng.randint(0, 10**11)),
                          backstop=backstop, backstop_capacity=caps)
    fund_after = _apply(plan, accounts, fund)
    assert fund_after >= 0 and _ledger(accounts, fund_after) == before
    for iid in SPECS:
        assert sum(a.positions[iid].size_lots for a in accounts.values() if iid in a.positions) == net_before[iid]
    for account_id, account in accounts.items():
        if account_id == 100:
            continue
        was, now = health_before[account_id], account_health(account, SPECS, MARKS)
        assert now.equity_atoms >= min(was.equity_atoms, 0)  # charges never push equity below zero
        if balances_before[account_id] >= 0:
            assert account.balance_atoms >= 0
    me = accounts[100]
    if not plan.unclosed:
        assert all(p.size_lots == 0 for p in me.positions.values())
        assert me.balance_atoms == -plan.bad_debt_atoms
