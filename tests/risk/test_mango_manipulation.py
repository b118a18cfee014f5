"""Mango Markets-style manipulation through the venue's own thin book, only through ``Engine.apply``.

The Mango pattern (2022-10-11, reference/risk-engines.md §3): push the price a margin engine reads,
then withdraw or borrow against the paper gain before the price comes back. Here the attacker holds
two accounts (``ATT`` long, ``PUP`` its puppet on the other side of the fake book); the victim
``VIC`` is short 1 BTC to the attacker at 60,000. Each test prints and asserts the attacker's PnL:
``sum over attacker accounts of (withdrawn + equity at the honest index - deposited)`` <= 0.

Default venue (configs/default.toml): BTC-USD-PERP, tick 0.1 (60,000.0 = 600,000 ticks), lot 0.001,
k = 100 atoms per tick-lot, USDC with 6 decimals.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from importlib import resources

import pytest

from bastion.core.commands import CancelAll, CreateAccount, Deposit, DepositInsuranceFund, PlaceOrder, Withdraw
from bastion.core.engine import Engine
from bastion.core.events import CommandRejected, Event, Withdrawn
from bastion.core.instruments import VenueConfig, venue_config_from_dict
from bastion.core.rejects import RejectCode
from bastion.core.risk_messages import AutoDeleveraged, InsuranceFundUsed, PositionLiquidated, SetOraclePrice
from tests.conftest import Driver

P = 600_000  # the honest index: 60,000.0 USDC
USDC = 10**6
K = 100  # atoms per tick-lot
SEC = 10**9
ATT, PUP, VIC, LP = 1, 2, 3, 4  # attacker, attacker's second account (another owner), victim, LP
RULES = ("binance", "hyperliquid", "index")


def _config(method: str | None = None) -> VenueConfig:
    """The shipped default venue; ``method`` only swaps the mark rule."""
    raw = tomllib.loads((resources.files("bastion") / "configs" / "default.toml").read_text())
    if method is not None:
        raw.setdefault("risk", {}).setdefault("mark", {})["method"] = method
    return venue_config_from_dict(raw)


class Venue:
    """The probe's venue: four funded accounts, the victim short 1 BTC to the attacker at 60,000."""

    def __init__(self, method: str | None = None) -> None:
        self.engine = Engine(_config(method), check_invariants=True)
        self.drive = Driver(self.engine)
        self.deposited = Counter[int]()
        self.withdrawn = Counter[int]()
        self.events: list[Event] = []
        for account in (ATT, PUP, VIC, LP):
            self.drive(CreateAccount(account, account))
        for account, usdc in ((ATT, 10_000), (PUP, 200_000), (VIC, 10_000), (LP, 10_000_000)):
            self.drive(Deposit(account, usdc * USDC))
            self.deposited[account] += usdc * USDC
        self.drive(DepositInsuranceFund(1_000 * USDC))
        self.fund_start = self.engine.insurance_fund_atoms
        self.drive(PlaceOrder(VIC, 1, 1, -1, P, 1000))
        assert any(type(e).__name__ == "TradeExecuted" for e in self.drive(PlaceOrder(ATT, 1, 1, 1, P, 1000)))
        self.t = self.drive.now_ns
        self.oracle(P, 3, 60 * SEC)

    def __call__(self, cmd: object) -> list[Event]:
        events = self.drive(cmd)  # type: ignore[arg-type]
        self.events += events
        return events

    def oracle(self, index: int, n: int = 1, step_ns: int = 5 * SEC, paused: bool = False) -> list[Event]:
        """``n`` honest SetOraclePrice commands, ``step_ns`` apart."""
        out: list[Event] = []
        for _ in range(n):
            self.t = max(self.t, self.drive.now_ns) + step_ns
            events = self.drive(SetOraclePrice(1, index, self.t, paused), at_ns=self.t)
            self.events += events
            out += events
        return out

    def mark(self) -> int:
        return self.engine.marks[1]

    def equity_at(self, account: int, price_ticks: int) -> int:
        acc = self.engine.accounts[account]
        return acc.balance_atoms + sum(p.size_lots * price_ticks * K - p.cost_atoms for p in acc.positions.values())

    def withdraw_all(self, account: int) -> int:
        """Withdraw as much as the engine lets through (to within 1 USDC), one command at a time."""
        total = 0
        amount = self.engine.accounts[account].balance_atoms
        while amount >= USDC:
            events = self(Withdraw(account, amount))
            if isinstance(events[0], Withdrawn):
                total += amount
                self.withdrawn[account] += amount
                amount = min(amount, self.engine.accounts[account].balance_atoms)
            else:
                assert isinstance(events[0], CommandRejected)
                amount //= 2
        return total

    def attacker_pnl_atoms(self, honest_ticks: int = P) -> int:
        """Withdrawn + equity at the honest index - deposited, over every attacker account."""
        return sum(self.withdrawn[a] + self.equity_at(a, honest_ticks) - self.deposited[a] for a in (ATT, PUP))

    def victim_hit(self) -> list[Event]:
        """Liquidation / ADL / fund events that touched the victim."""
        return [e for e in self.events
                if (isinstance(e, (PositionLiquidated, InsuranceFundUsed)) and e.account_id == VIC)
                or (isinstance(e, AutoDeleveraged) and VIC in (e.account_id, e.counterparty_account_id))]


def _report(name: str, venue: Venue) -> int:
    pnl = venue.attacker_pnl_atoms()
    print(f"\n{name}: attacker PnL {pnl / USDC:+,.6f} USDC (withdrawn {sum(venue.withdrawn.values()) / USDC:,.2f}); "
          f"mark {venue.mark()}; victim equity {venue.equity_at(VIC, P) / USDC:,.2f}; "
          f"fund {venue.engine.insurance_fund_atoms / USDC:,.2f}")
    return pnl


@pytest.mark.parametrize("method", RULES)
def test_thin_book_one_lot_attack_does_not_pay(method: str) -> None:
    """The audit probe (/tmp/audit3/mango.py): the puppet quotes a one-lot market at 10x and the attacker
    buys that lot, so both the top of book and the last trade say 600,000.0; then honest oracle updates
    arrive. Before the fix the Binance rule's one-sample basis average was the full 10x, the mark
    jumped to 599,999.5, the victim was ADL'd against the attacker at that mark, the fund paid, and the
    attacker withdrew +10,975.76 USDC of real cash. Now: the mark stays at the index, the victim is
    untouched, and the attacker's PnL (fees paid to the venue) is <= 0."""
    venue = Venue(method)
    x = 10 * P
    venue(PlaceOrder(PUP, 1, 10, -1, x, 1))  # ask at 10x
    venue(PlaceOrder(ATT, 1, 2, 1, x, 1))  # last trade at 10x (the attacker pays its puppet)
    venue(PlaceOrder(PUP, 1, 11, 1, x - 10, 1))  # bid at 10x - 1 tick
    venue(PlaceOrder(PUP, 1, 12, -1, x, 1))  # ask at 10x
    venue.oracle(P, 10)
    mark_during = venue.mark()
    venue(CancelAll(PUP, 1))
    for account in (ATT, PUP):
        venue.withdraw_all(account)
    pnl = _report(f"thin book, {method}", venue)
    assert abs(mark_during - P) * 1_000 <= P  # within 0.1 % of the index
    assert not venue.victim_hit()
    assert venue.engine.insurance_fund_atoms >= venue.fund_start
    assert pnl <= 0


# --------------------------------------------------------------------------------- a deep fake book


def _copy(venue: Venue) -> tuple[Engine, Driver]:
    """A throwaway copy of the venue (snapshot -> restore) to probe limits without changing the real one."""
    engine = Engine.restore(venue.engine.config, venue.engine.snapshot(), check_invariants=True)
    return engine, Driver(engine, start_ns=venue.drive.now_ns)


def _max_withdrawable_atoms(venue: Venue, account: int) -> int:
    """Cash the engine would let ``account`` withdraw now (to within 1 USDC), probed on a copy."""
    engine, drive = _copy(venue)
    total, amount = 0, engine.accounts[account].balance_atoms
    while amount >= USDC:
        if isinstance(drive(Withdraw(account, amount))[0], Withdrawn):
            total += amount
            amount = min(amount, engine.accounts[account].balance_atoms)
        else:
            amount //= 2
    return total


def _max_new_buy_lots(venue: Venue, account: int, price_ticks: int) -> int:
    """Largest resting buy ``account`` may add at ``price_ticks`` (its buying power), probed on a copy."""
    engine, drive = _copy(venue)
    lo, hi, cid = 0, 10**6, 900
    while lo < hi:
        mid, cid = (lo + hi + 1) // 2, cid + 1
        if isinstance(drive(PlaceOrder(account, 1, cid, 1, price_ticks, mid, post_only=True))[0], CommandRejected):
            hi = mid - 1
        else:
            lo = mid
            drive(CancelAll(account, 1))
    return lo


@pytest.mark.parametrize("method", RULES)
def test_deep_fake_book_held_for_half_an_hour_lends_nothing(method: str) -> None:
    """The expensive version: the puppet quotes 500 lots each side 10 % above the index (an impact-deep
    book: 417 lots are the impact depth) for 35 minutes, the attacker prints a one-lot last trade in it,
    and honest oracle updates arrive every 15 s. (At 10x the puppet could not even post the bid side: a
    500-lot bid 540,000.0 through the mark locks a 270,000 USDC loss, more than it holds.)

    The band is what binds here: binance (price2 moves band/30 a minute) and hyperliquid (150 s EMA)
    reach 61,800.0 = index + 3 %; the index rule never moves. At that mark the attacker shows a
    1,800 USDC paper gain and tries (c) to withdraw more than before the manipulation, to add more buying
    power than before, and to buy 8 BTC from its own puppet at the fake mark (a trade that loses 3 % at
    the honest index, so the attacker's account would go bankrupt and the fund / ADL would pay the
    puppet). None succeeds; (d) the victim, down 1,800 USDC at the fake mark, is not liquidated; and once
    the book is gone and every attacker account withdrew all it could, the attacker's PnL is <= 0."""
    venue = Venue(method)
    withdrawable_before = _max_withdrawable_atoms(venue, ATT)
    buy_power_before = _max_new_buy_lots(venue, ATT, 9 * P // 10)
    x = 11 * P // 10
    assert not isinstance(venue(PlaceOrder(PUP, 1, 20, -1, x, 501))[0], CommandRejected)
    venue(PlaceOrder(ATT, 1, 3, 1, x, 1))  # the last trade at +10 %
    assert not isinstance(venue(PlaceOrder(PUP, 1, 21, 1, x - 10, 500))[0], CommandRejected)
    venue.oracle(P, 35 * 4, 15 * SEC)
    mark = venue.mark()
    if method == "index":
        assert mark == P
    else:  # at the band edge, index + 3 % (the hyperliquid EMA truncates a few ticks short of it)
        assert P * 1029 // 1000 <= mark <= P * 103 // 100
    withdrawable_during = _max_withdrawable_atoms(venue, ATT)
    buy_power_during = _max_new_buy_lots(venue, ATT, 9 * P // 10)
    print(f"\n{method}: mark {mark}; withdrawable {withdrawable_before / USDC:,.2f} -> {withdrawable_during / USDC:,.2f} "
          f"USDC; buying power {buy_power_before} -> {buy_power_during} lots at 54,000.0")
    assert withdrawable_during <= withdrawable_before
    assert buy_power_during <= buy_power_before
    # Buy 8 BTC from the puppet at the mark: through the honest index by 3 % (binance, hyperliquid).
    venue(CancelAll(PUP, 1))
    venue(PlaceOrder(PUP, 1, 30, -1, mark, 8_000, post_only=True))
    events = venue(PlaceOrder(ATT, 1, 4, 1, mark, 8_000))
    if method != "index":
        assert isinstance(events[0], CommandRejected) and events[0].code == RejectCode.margin_initial_insufficient
    venue(CancelAll(PUP, 1))
    venue.oracle(P, 40 * 4, 15 * SEC)  # the fake book is gone; the basis decays back to the index
    for account in (ATT, PUP):
        venue.withdraw_all(account)
    pnl = _report(f"deep fake book, {method}", venue)
    assert not venue.victim_hit()
    assert venue.engine.insurance_fund_atoms >= venue.fund_start
    assert pnl <= 0
