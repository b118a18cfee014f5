"""Loss waterfall (waterfall.py): the order fund -> fund cash -> backstop -> ADL at the bankruptcy price ->
ADL at the mark -> fund over capacity -> socialized loss -> bad debt, with exact numbers; ADL ranking
worked examples (one from BitMEX's public ADL example page); conservation properties.

Units: BTC tick 0.1 (500,000 ticks = 50,000.0), lot 0.001 BTC, k = 100 atoms per tick-lot, 1 USDT =
10**6 atoms. The fund is account 0 whose ``balance_atoms`` is its cash (apply_waterfall's convention).
"""

from __future__ import annotations

import random
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.core.risk import (
    CloseVia,
    ForcedClose,
    WaterfallConfig,
    account_health,
    adl_queue,
    adl_rank,
    apply_waterfall,
    backstop_capacity_lots,
    plan_waterfall,
)
from bastion.core.risk.waterfall import (
    BadDebtBooked,
    FundPayment,
    SocializedCharge,
    cash_safe_close_lots,
    fund_free_atoms,
)
from tests.risk._helpers import USDT, make_account, make_spec

BTC = make_spec()
ETH = make_spec(tick="0.01", instrument_id=2, symbol="ETH-USDT")
SPECS = {1: BTC, 2: ETH}
K = BTC.atoms_per_tick_lot
MARKS = {1: 500_000, 2: 300_000}  # BTC 50,000.0; ETH 3,000.00
FUND = 0
FUND_CLOSE = CloseVia.INSURANCE_FUND


def short(account_id: int, btc_lots: int, entry_ticks: int, balance_usdt: int):
    return make_account(account_id, balance_usdt * USDT, {1: (-btc_lots, -btc_lots * entry_ticks * K)})


def market():
    """Mark 50,000. Shorts: A 2 BTC @ 55,000 (equity 20,000), B 1 BTC @ 60,000 (equity 50,000),
    C 4 BTC @ 51,000 (equity 10,000), D 1 BTC @ 45,000 (equity 25,000). Longs: X 5 BTC @ 55,000 with
    20,000 balance (equity -5,000: bankrupt; bankruptcy price 51,000), Y 3 BTC @ 50,000."""
    return {
        1: short(1, 2_000, 550_000, 10_000),
        2: short(2, 1_000, 600_000, 40_000),
        3: short(3, 4_000, 510_000, 6_000),
        4: short(4, 1_000, 450_000, 30_000),
        10: make_account(10, 20_000 * USDT, {1: (5_000, 5_000 * 550_000 * K)}),
        11: make_account(11, 50_000 * USDT, {1: (3_000, 3_000 * 500_000 * K)}),
    }


def _plan(accounts, fund_usdt: int, config: WaterfallConfig | None = None, backstop=None, specs=None, marks=None):
    """Plan X's (or the given account's) waterfall with every account as holder and pool member."""
    accounts[FUND] = make_account(FUND, fund_usdt * USDT)
    others = [a for i, a in accounts.items() if i != FUND]
    return plan_waterfall(accounts[10], specs or SPECS, marks or MARKS, accounts[FUND], {1: others, 2: others},
                          others, config or WaterfallConfig(), backstop)


def _ledger(accounts, bad_debt: int = 0) -> int:
    return sum(a.balance_atoms - sum(p.cost_atoms for p in a.positions.values()) for a in accounts.values()) - bad_debt


# ------------------------------------------------------------------------------------------- ADL rank


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
    assert [c.account_id for c in adl_queue(accounts.values(), 1, -1, SPECS, MARKS, 2)] == [1, 3]
    assert [c.account_id for c in adl_queue(accounts.values(), 1, -1, SPECS, MARKS, 500, exclude={1})] == [3, 2, 4]
    assert adl_rank(-1_000, -1_000 * 450_000 * K, 500_000, K, 0) is None  # bankrupt: cannot pay a charge


def _naive_adl_queue(accounts, iid: int, side: int, candidates_max: int, exclude=()) -> list[tuple[int, object]]:
    """The ranking by definition: adl_rank for every opposite position, sorted by (-rank, id); accounts
    with equity <= 0 last by id."""
    ranked, unranked = [], []
    for account in accounts:
        pos = account.positions.get(iid)
        if pos is None or pos.size_lots * side <= 0 or account.account_id in exclude:
            continue
        equity = account_health(account, SPECS, MARKS).equity_atoms
        rank = adl_rank(pos.size_lots, pos.cost_atoms, MARKS[iid], SPECS[iid].atoms_per_tick_lot, equity)
        (unranked if rank is None else ranked).append((account.account_id, rank))
    ranked.sort(key=lambda r: (-r[1], r[0]))
    unranked.sort()
    return (ranked + unranked)[:candidates_max]


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), candidates_max=st.integers(1, 40))
def test_adl_queue_equals_the_ranking_by_definition_in_any_input_order(seed: int, candidates_max: int) -> None:
    """Differential: the scan (integer keys, exact comparison only near the cut) returns exactly the
    naive exact ranking, for random single- and two-position accounts (some bankrupt, many with equal
    ranks: copies of one account under other ids), any exclusion set and a shuffled input order."""
    rng = random.Random(seed)
    accounts = []
    for aid in range(1, rng.randint(1, 80)):
        if accounts and rng.random() < 0.3:  # a copy: the same rank, the tie broken by id
            twin = rng.choice(accounts)
            held = {i: (p.size_lots, p.cost_atoms) for i, p in twin.positions.items()}
            accounts.append(make_account(aid, twin.balance_atoms, held))
            continue
        held = {}
        for iid in ([1, 2] if rng.random() < 0.3 else [1]):
            size = rng.randint(1, 5_000) * rng.choice([1, -1])
            entry = MARKS[iid] * rng.randint(800, 1_200) // 1_000
            held[iid] = (size, size * entry * SPECS[iid].atoms_per_tick_lot)
        accounts.append(make_account(aid, rng.randint(0, 50_000) * USDT, held))
    exclude = {a.account_id for a in accounts if rng.random() < 0.1}
    side = rng.choice([1, -1])
    expected = _naive_adl_queue(accounts, 1, side, candidates_max, exclude)
    rng.shuffle(accounts)
    got = adl_queue(accounts, 1, side, SPECS, MARKS, candidates_max, exclude)
    assert [(c.account_id, c.rank) for c in got] == expected
    by_id = {a.account_id: a for a in accounts}
    for c in got:
        pos = by_id[c.account_id].positions[1]
        assert (c.size_lots, c.cost_atoms) == (pos.size_lots, pos.cost_atoms)
        assert c.equity_atoms == account_health(by_id[c.account_id], SPECS, MARKS).equity_atoms


def test_bitmex_adl_example_six_longs_and_a_liquidated_short() -> None:
    """BitMEX "Auto-Deleveraging Further Information" (bitmex.com/app/autoDeleveragingExamples): six longs
    with PnL rankings 1:3, 2:6, 3:1, 4:4, 5:5, 6:2 and quantities 10, 10, 20, 30, 20, 10; "a short position
    that has been liquidated with size 20 and bankruptcy price of USD 650. Accounts 2 and 5 will be
    deleveraged at the bankruptcy price of USD 650. Account 2 will have their entire position of 10
    contracts closed, while the remaining 10 contracts ... will be assigned to account 5."

    Reproduced on a USD grid (tick 1, lot 1, k = 10**6 atoms): the mark is 660; each long entered at 66
    (PnL% = 9) with a balance chosen so its rank = 9 * notional / equity is exactly the page's score
    (balance = qty * k * (5,940 / rank - 594)). The short (20 @ 640, balance 200 USD) is bankrupt at
    650: its equity at 660 is -200 USD, 10 USD per contract. The fund is empty, so ADL closes at the
    mark and each counterparty pays 10 USD per contract: exactly a close at 650."""
    spec = make_spec(tick="1", lot="1")
    k = spec.atoms_per_tick_lot
    specs, marks = {1: spec}, {1: 660}
    ranks = {1: (10, 3), 2: (10, 6), 3: (20, 1), 4: (30, 4), 5: (20, 5), 6: (10, 2)}
    accounts = {aid: make_account(aid, qty * k * (5_940 // rank - 594), {1: (qty, qty * 66 * k)})
                for aid, (qty, rank) in ranks.items()}
    accounts[8] = make_account(8, 10**6 * k, {1: (-80, -80 * 660 * k)})  # the rest of the short side
    accounts[10] = make_account(10, 200 * k, {1: (-20, -20 * 640 * k)})  # the liquidated short
    for aid, (qty, rank) in ranks.items():
        equity = account_health(accounts[aid], specs, marks).equity_atoms
        assert adl_rank(qty, qty * 66 * k, 660, k, equity) == rank
    assert [c.account_id for c in adl_queue(accounts.values(), 1, 1, specs, marks, 500)] == [2, 5, 4, 1, 6, 3]
    assert account_health(accounts[10], specs, marks).equity_atoms == -200 * k
    plan = _plan(accounts, 0, specs=specs, marks=marks)
    assert plan.steps == (ForcedClose(1, 10, 2, 10, -1, 660, CloseVia.ADL, 100 * k),
                          ForcedClose(1, 10, 5, 10, -1, 660, CloseVia.ADL, 100 * k))
    apply_waterfall(plan, accounts, specs)
    assert accounts[2].positions[1].size_lots == 0 and accounts[5].positions[1].size_lots == 10
    # closed at the bankruptcy price 650: realized (650 - 66) per contract
    assert accounts[2].balance_atoms == 10 * k * (5_940 // 6 - 594) + 10 * (650 - 66) * k
    assert accounts[10].balance_atoms == 0 and accounts[10].positions[1].size_lots == 0


# ---------------------------------------------------------------------------------- the waterfall order


def test_a_full_fund_takes_the_position_and_prevents_adl() -> None:
    """Fund 100,000: it takes X's 5 BTC at the mark and pays X's deficit of 5,000, i.e. it holds 5 BTC
    at the bankruptcy price 51,000 (equity 95,000 >= 10 % of 250,000). Nobody is deleveraged."""
    accounts = market()
    plan = _plan(accounts, 100_000)
    assert plan.deficit_atoms == 5_000 * USDT
    assert plan.steps == (ForcedClose(1, 10, FUND, 5_000, 1, 500_000, FUND_CLOSE, 5_000 * USDT),)
    before = _ledger(accounts)
    apply_waterfall(plan, accounts, SPECS)
    fund = accounts[FUND]
    assert fund.balance_atoms == 95_000 * USDT
    assert (fund.positions[1].size_lots, fund.positions[1].cost_atoms) == (5_000, 5_000 * 500_000 * K)
    assert accounts[10].balance_atoms == 0 and accounts[10].positions[1].size_lots == 0
    assert [accounts[i].positions[1].size_lots for i in (1, 2, 3, 4)] == [-2_000, -1_000, -4_000, -1_000]
    assert _ledger(accounts) == before


def test_the_fund_takes_what_its_capacity_allows_then_adl_at_the_bankruptcy_price() -> None:
    """Fund 24,000: after taking q lots it has 24,000 - q USDT (1 USDT deficit per lot) and must keep
    10 % of the notional (5 USDT per lot): q = 4,000 exactly (20,000 = 20,000). Its free cash is then 0,
    so the last 1,000 lots go to the top of the ADL queue, A, which pays their deficit share 1,000."""
    accounts = market()
    plan = _plan(accounts, 24_000)
    assert plan.steps == (ForcedClose(1, 10, FUND, 4_000, 1, 500_000, FUND_CLOSE, 4_000 * USDT),
                          ForcedClose(1, 10, 1, 1_000, 1, 500_000, CloseVia.ADL, 1_000 * USDT))
    apply_waterfall(plan, accounts, SPECS)
    fund = accounts[FUND]
    assert fund.balance_atoms == 20_000 * USDT and fund.positions[1].size_lots == 4_000
    assert fund_free_atoms(fund, SPECS, MARKS, WaterfallConfig()) == 0
    # A closed 1 BTC at the bankruptcy price 51,000: realized (55,000 - 51,000)
    assert accounts[1].balance_atoms == (10_000 + 4_000) * USDT and accounts[1].positions[1].size_lots == -1_000
    assert accounts[10].balance_atoms == 0


def test_fund_cash_pays_down_the_deficit_before_adl() -> None:
    """Fund 2,000: capacity 2,000 - q >= 5 q * ... gives q = 333 lots (paying 333); its free cash is then
    min(1,667, 1,667 - 1,665) = 2 USDT, paid in cash; ADL charges carry the remaining 4,665 USDT."""
    accounts = market()
    plan = _plan(accounts, 2_000)
    closes = plan.closes
    assert closes[0] == ForcedClose(1, 10, FUND, 333, 1, 500_000, FUND_CLOSE, 333 * USDT)
    assert plan.steps[1] == FundPayment(10, 2 * USDT)
    assert [c.via for c in closes[1:]] == [CloseVia.ADL, CloseVia.ADL]
    assert [(c.counterparty_id, c.qty_lots) for c in closes[1:]] == [(1, 2_000), (3, 2_667)]
    assert sum(c.charge_atoms for c in closes[1:]) == 4_665 * USDT
    assert plan.fund_paid_atoms == 335 * USDT and plan.bad_debt_atoms == 0
    apply_waterfall(plan, accounts, SPECS)
    assert accounts[FUND].balance_atoms == 1_665 * USDT and accounts[10].balance_atoms == 0


def test_a_depleted_fund_leads_to_adl_at_the_bankruptcy_price() -> None:
    """Fund 0: X's 5 BTC are deleveraged against A (2 BTC) and C (3 of 4 BTC), each paying 1 USDT per lot:
    both close at X's bankruptcy price 51,000 (X: 55,000 - 20,000 / 5)."""
    accounts = market()
    plan = _plan(accounts, 0)
    assert plan.steps == (ForcedClose(1, 10, 1, 2_000, 1, 500_000, CloseVia.ADL, 2_000 * USDT),
                          ForcedClose(1, 10, 3, 3_000, 1, 500_000, CloseVia.ADL, 3_000 * USDT))
    apply_waterfall(plan, accounts, SPECS)
    assert accounts[1].balance_atoms == (10_000 + (55_000 - 51_000) * 2) * USDT
    assert accounts[3].balance_atoms == (6_000 + (51_000 - 51_000) * 3) * USDT
    assert accounts[3].positions[1].size_lots == -1_000 and accounts[10].balance_atoms == 0
    assert accounts[FUND].balance_atoms == 0 and not accounts[FUND].positions


def test_the_backstop_takes_after_the_fund() -> None:
    """With an empty fund a backstop account with 1,000,000 takes the 5 BTC at the bankruptcy price
    (pays 5,000); with a full fund it is not needed."""
    accounts = market()
    accounts[99] = make_account(99, 1_000_000 * USDT, {})
    plan = _plan(accounts, 0, backstop=accounts[99])
    assert plan.steps == (ForcedClose(1, 10, 99, 5_000, 1, 500_000, CloseVia.BACKSTOP, 5_000 * USDT),)
    apply_waterfall(plan, accounts, SPECS)
    assert accounts[99].balance_atoms == 995_000 * USDT and accounts[99].positions[1].size_lots == 5_000
    accounts = market()
    accounts[99] = make_account(99, 1_000_000 * USDT, {})
    assert [c.counterparty_id for c in _plan(accounts, 100_000, backstop=accounts[99]).closes] == [FUND]
    assert backstop_capacity_lots(accounts[99], 1, 5_000, SPECS, MARKS) == 5_000


def test_socialized_loss_is_the_last_resort_with_remainder_to_named_account() -> None:
    """The only counterparty has no cash: it is closed at the mark (ADL_AT_MARK, no charge); the deficit
    is spread pro rata to loss capacity over the pool; the floor remainder goes to the named account."""
    accounts = {
        10: make_account(10, 0, {1: (1_000, 1_000 * 510_000 * K)}),  # equity -1,000 USDT at 50,000
        1: make_account(1, 0, {1: (-1_000, -1_000 * 500_000 * K)}),  # flat PnL, no cash: capacity 0
        20: make_account(20, 1 * USDT + 1, {}),
        21: make_account(21, 2 * USDT, {}),
        22: make_account(22, 10_000 * USDT, {}),
    }
    plan = _plan(accounts, 0, WaterfallConfig(remainder_account_id=21))
    assert plan.closes == (ForcedClose(1, 10, 1, 1_000, 1, 500_000, CloseVia.ADL_AT_MARK, 0),)
    total = sum(c.amount_atoms for c in plan.socialized)
    assert total == 1_000 * USDT and plan.bad_debt_atoms == 0
    shares = {c.account_id: c.amount_atoms for c in plan.socialized}
    capacity = 10_003 * USDT + 1
    floors = {20: 1_000 * USDT * (USDT + 1) // capacity, 21: 1_000 * USDT * 2 * USDT // capacity,
              22: 1_000 * USDT * 10_000 * USDT // capacity}
    remainder = 1_000 * USDT - sum(floors.values())
    assert 0 < remainder < 3 and shares == {20: floors[20], 21: floors[21] + remainder, 22: floors[22]}
    apply_waterfall(plan, accounts, SPECS)
    assert accounts[10].balance_atoms == 0 and all(a.balance_atoms >= 0 for a in accounts.values())


def test_bad_debt_is_booked_to_the_venue_and_the_account_is_zeroed() -> None:
    """Deficit 1,000 (1 USDT per lot, 50 USDT notional per lot). Fund 100: it takes q = 16 lots
    (84 >= 10 % of 800 = 80; q = 17 fails: 83 < 85) and pays 16, then 4 of free cash; the cashless
    counterparty is closed at the mark; the pool's one account pays its 300; 680 is bad debt, booked to
    the venue, and the account ends at exactly 0 (never negative)."""
    accounts = {
        10: make_account(10, 0, {1: (1_000, 1_000 * 510_000 * K)}),
        1: make_account(1, 0, {1: (-1_000, -1_000 * 500_000 * K)}),
        20: make_account(20, 300 * USDT, {}),
    }
    plan = _plan(accounts, 100)
    assert plan.steps == (
        ForcedClose(1, 10, FUND, 16, 1, 500_000, FUND_CLOSE, 16 * USDT),
        FundPayment(10, 4 * USDT),
        ForcedClose(1, 10, 1, 984, 1, 500_000, CloseVia.ADL_AT_MARK, 0),
        SocializedCharge(20, 300 * USDT),
        BadDebtBooked(10, 680 * USDT),
    )
    before = _ledger(accounts)
    bad = apply_waterfall(plan, accounts, SPECS)
    assert bad == 680 * USDT and _ledger(accounts, bad) == before
    assert accounts[10].balance_atoms == 0 and accounts[20].balance_atoms == 0
    assert accounts[FUND].balance_atoms == 80 * USDT and accounts[FUND].positions[1].size_lots == 16


def test_lots_nobody_can_close_go_to_the_fund_over_capacity() -> None:
    """The only short lost 1,000 at the mark and has no cash: closing it would leave it at -1,000, so the
    fund (empty) takes X's 1 BTC at the mark over capacity; the deficit is socialized, then bad debt."""
    accounts = {
        10: make_account(10, 0, {1: (1_000, 1_000 * 510_000 * K)}),
        1: make_account(1, 0, {1: (-1_000, -1_000 * 490_000 * K)}),
        20: make_account(20, 300 * USDT, {}),
    }
    plan = _plan(accounts, 0)
    assert plan.steps == (ForcedClose(1, 10, FUND, 1_000, 1, 500_000, FUND_CLOSE, 0, True),
                          SocializedCharge(20, 300 * USDT), BadDebtBooked(10, 700 * USDT))
    apply_waterfall(plan, accounts, SPECS)
    assert accounts[FUND].positions[1].size_lots == 1_000 and accounts[FUND].balance_atoms == 0
    assert accounts[10].balance_atoms == 0 and accounts[1].balance_atoms == 0


def test_a_flat_account_below_zero_is_paid_by_the_fund_then_socialized() -> None:
    accounts = {10: make_account(10, -700 * USDT, {}), 20: make_account(20, 300 * USDT, {})}
    plan = _plan(accounts, 500)
    assert plan.steps == (FundPayment(10, 500 * USDT), SocializedCharge(20, 200 * USDT))
    apply_waterfall(plan, accounts, SPECS)
    assert accounts[10].balance_atoms == 0 and accounts[FUND].balance_atoms == 0


def test_an_insolvent_fund_deleverages_its_own_inventory() -> None:
    """The fund holds 1 BTC long bought at 60,000 with 1,000 of cash; the mark is 50,000: equity -9,000.
    Its own waterfall ADLs the inventory against A at the fund's bankruptcy price (A pays 9,000), and the
    fund ends flat with cash exactly 0."""
    accounts = market()
    fund = accounts[FUND] = make_account(FUND, 1_000 * USDT, {1: (1_000, 1_000 * 600_000 * K)})
    others = [a for i, a in accounts.items() if i != FUND]
    plan = plan_waterfall(fund, SPECS, MARKS, fund, {1: others}, others, WaterfallConfig())
    assert plan.deficit_atoms == 9_000 * USDT and not plan.unclosed
    assert plan.steps == (ForcedClose(1, FUND, 1, 1_000, 1, 500_000, CloseVia.ADL, 9_000 * USDT),)
    apply_waterfall(plan, accounts, SPECS)
    assert fund.balance_atoms == 0 and fund.positions[1].size_lots == 0
    assert accounts[1].balance_atoms == (10_000 + 5_000 - 9_000) * USDT


def test_cash_safe_close_lots_never_lets_the_fund_cash_go_negative() -> None:
    """Long 1 BTC at 60,000, selling at 59,000 loses 1 USDT per lot: 250 USDT of cash allows 250 lots."""
    assert cash_safe_close_lots(250 * USDT, 1_000, 1_000 * 600_000 * K, 590_000, K, 1_000) == 250
    assert cash_safe_close_lots(250 * USDT, 1_000, 1_000 * 600_000 * K, 600_000, K, 400) == 400
    assert cash_safe_close_lots(0, -1_000, -1_000 * 600_000 * K, 600_001, K, 1_000) == 0


# ------------------------------------------------------------------------------------------ properties


def _random_market(rng: random.Random):
    accounts = {}
    holders = list(range(1, rng.randint(2, 12)))
    sizes: dict[int, dict[int, int]] = {1: {}, 2: {}}
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
    if rng.random() < 0.5:  # the fund may already hold inventory
        x = rng.randint(1, 3_000) * rng.choice([1, -1])
        sizes[1][FUND] = x
        sizes[1][holders[-1] + 1] = sizes[1].get(holders[-1] + 1, 0) - x
    ids = set(sizes[1]) | set(sizes[2]) | {200, 201, FUND}
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
    x.balance_atoms -= equity + rng.choice([rng.randint(0, 200_000) * USDT, 0, 1])  # equity <= 0
    return accounts


@settings(max_examples=600, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), fund_usdt=st.integers(min_value=0, max_value=300_000),
       with_backstop=st.booleans(), loss_max=st.integers(min_value=0, max_value=10**11))
def test_waterfall_conserves_to_the_atom_and_leaves_no_negative_balance(seed: int, fund_usdt: int,
                                                                        with_backstop: bool, loss_max: int) -> None:
    """Random balanced markets (the fund may hold inventory already) with a bankrupt account: applying
    the plan with the engine's settle_fill keeps sum(balance - cost) - bad debt exact (fund cash
    included), long OI = short OI, the fund's cash >= 0 and within the per-account cap, every other
    account's balance >= 0 (if it was) and equity >= min(before, 0); the bankrupt account always ends
    flat at exactly 0; fund takeovers within capacity leave the fund at or above its requirement."""
    rng = random.Random(seed)
    accounts = _random_market(rng)
    fund = accounts[FUND]
    fund.balance_atoms = fund_usdt * USDT
    backstop = accounts[200] if with_backstop else None
    if backstop is not None:
        backstop.balance_atoms = rng.randint(0, 10**6) * USDT
    config = WaterfallConfig(insurance_loss_max_atoms=loss_max)
    before = _ledger(accounts)
    net_before = {iid: sum(a.positions[iid].size_lots for a in accounts.values() if iid in a.positions)
                  for iid in SPECS}
    health_before = {i: account_health(a, SPECS, MARKS) for i, a in accounts.items()}
    balances_before = {i: a.balance_atoms for i, a in accounts.items()}
    others = [a for i, a in accounts.items() if i != FUND]
    plan = plan_waterfall(accounts[100], SPECS, MARKS, fund, {iid: others for iid in SPECS}, others, config,
                          backstop=backstop)
    bad = apply_waterfall(plan, accounts, SPECS)
    assert bad >= 0 and _ledger(accounts, bad) == before
    assert 0 <= plan.fund_paid_atoms <= loss_max and fund.balance_atoms >= 0
    for iid in SPECS:
        assert sum(a.positions[iid].size_lots for a in accounts.values() if iid in a.positions) == net_before[iid]
    for account_id, account in accounts.items():
        if account_id in (100, FUND):
            continue
        was, now = health_before[account_id], account_health(account, SPECS, MARKS)
        assert now.equity_atoms >= min(was.equity_atoms, 0)  # charges never push equity below zero
        if balances_before[account_id] >= 0:
            assert account.balance_atoms >= 0
    me = accounts[100]
    assert all(p.size_lots == 0 for p in me.positions.values()) and me.balance_atoms == 0
    steps = plan.steps
    kinds = [(type(s).__name__, s.via if isinstance(s, ForcedClose) else None) for s in steps]
    order = {("ForcedClose", CloseVia.INSURANCE_FUND): 0, ("FundPayment", None): 1, ("ForcedClose", CloseVia.BACKSTOP): 2,
             ("ForcedClose", CloseVia.ADL): 3, ("ForcedClose", CloseVia.ADL_AT_MARK): 3,
             ("SocializedCharge", None): 5, ("BadDebtBooked", None): 6}
    ranks = [order[k] if not (isinstance(s, ForcedClose) and s.over_capacity) else 4 for k, s in zip(kinds, steps)]
    if not any(isinstance(s, ForcedClose) and s.over_capacity for s in steps) and len({c.instrument_id for c in plan.closes}) <= 1:
        assert ranks == sorted(ranks)  # one instrument: the steps come in waterfall order
    if not any(isinstance(s, ForcedClose) and s.over_capacity for s in steps) and any(
            isinstance(s, ForcedClose) and s.via == CloseVia.INSURANCE_FUND for s in steps):
        equity = account_health(fund, SPECS, MARKS).equity_atoms
        assert equity >= 0  # the fund never takes more than it can carry
