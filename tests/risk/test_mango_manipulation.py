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

from bastion.core.commands import (
    CancelAll,
    CreateAccount,
    Deposit,
    DepositInsuranceFund,
    Heartbeat,
    PlaceOrder,
    Withdraw,
)
from bastion.core.engine import Engine
from bastion.core.events import CommandRejected, Event, Withdrawn
from bastion.core.instruments import VenueConfig, venue_config_from_dict
from bastion.core.oracle import (
    AggregateConfig,
    GuardConfig,
    OracleState,
    OracleStateConfig,
    OracleUpdate,
    SourceConfig,
    SourcePrice,
)
from bastion.core.rejects import RejectCode
from bastion.core.risk_messages import (
    AutoDeleveraged,
    IndexPriceSet,
    InsuranceFundUsed,
    PositionLiquidated,
    SetOraclePrice,
)
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


# ------------------------------------------------------------------------- through the oracle path

SOURCES = ("coinbase", "kraken", "bitstamp", "okx")


def _oracle_state() -> OracleState:
    """Four USD sources (cents), quorum 3, outliers beyond 2 % of the median dropped; Drift-style guard:
    5-minute TWAP, flag beyond 10 %, liquidations paused beyond 50 %, stale after 60 s."""
    aggregate = AggregateConfig(symbol="BTC", quote="USD", price_exponent=-2,
                                sources=tuple(SourceConfig(s, "USD", 60 * SEC) for s in SOURCES),
                                quorum_min=3, outlier_deviation_max_ppm=20_000)
    guard = GuardConfig(history_max=1_000, twap_window_ns=300 * SEC, far_deviation_max_ppm=100_000,
                        pause_deviation_max_ppm=500_000, staleness_max_ns=60 * SEC)
    return OracleState(OracleStateConfig(aggregate, guard))


def _feed(venue: Venue, state: OracleState, prices_cents: dict[str, int], step_ns: int = 5 * SEC) -> OracleUpdate:
    """One oracle tick: signed-and-verified reports (here: given) -> OracleState -> SetOraclePrice.

    The index is on a 0.01 USD grid; the instrument's tick is 0.1 USD, so ticks = cents // 10 (the test
    prices are multiples of 10 cents). Nothing is filtered here: whatever the oracle publishes, the
    engine gets, with the guard's pause verdict."""
    venue.t = max(venue.t, venue.drive.now_ns) + step_ns
    reports = [SourcePrice(s, "BTC", "USD", price, -2, venue.t) for s, price in prices_cents.items()]
    update = state.update(reports, venue.t)
    if update.price is not None:
        assert update.price % 10 == 0
        venue.events += venue.drive(SetOraclePrice(1, update.price // 10, venue.t, update.liquidations_paused),
                                    at_ns=venue.t)
    return update


@pytest.mark.parametrize("method", RULES)
def test_one_oracle_source_pushed_10x_moves_nothing(method: str) -> None:
    """(b) One of four sources reports 600,000.00 USD (10x) for five minutes, as a pumped thin spot venue
    would (Mango: MNGO pushed ~24x on three venues). The aggregator drops it as an outlier (more than
    2 % from the median), the index stays at 60,000.0, so the mark does too; the attacker, long 1 BTC
    and trying to withdraw everything at the peak and after, makes nothing and the victim is untouched."""
    venue = Venue(method)
    state = _oracle_state()
    honest = {s: 6_000_000 for s in SOURCES}
    for _ in range(60):  # five minutes of history for the TWAP
        _feed(venue, state, honest)
    rejected = 0
    for _ in range(60):  # five minutes of a 10x source
        update = _feed(venue, state, dict(honest, kraken=60_000_000))
        rejected += sum(1 for v in update.result.rejected if v.report.source_id == "kraken")
        assert update.price == 6_000_000 and not update.liquidations_paused
        assert venue.mark() == P
    peak_withdrawable = _max_withdrawable_atoms(venue, ATT)
    for _ in range(12):
        _feed(venue, state, honest)
    for account in (ATT, PUP):
        venue.withdraw_all(account)
    pnl = _report(f"one source 10x, {method}", venue)
    assert rejected == 60
    assert {e.index_price_ticks for e in venue.events if isinstance(e, IndexPriceSet)} == {P}
    assert peak_withdrawable <= venue.withdrawn[ATT]  # the pump lent nothing extra at its peak
    assert not venue.victim_hit()
    assert pnl <= 0


# --------------------------------------------------------------------- liquidations pause, end to end


def test_paused_index_liquidates_nobody_until_the_pause_lifts() -> None:
    """An IndexPriceSet with liquidations_paused: the victim (short 1 BTC at 60,000.0 with 10,000 USDC)
    is bankrupt at 72,000.0 yet nothing is liquidated, by that command or by later ones, while the
    oracle says paused; withdrawals from the accounts holding positions are refused (320). The first
    unpaused update liquidates it."""
    venue = Venue()
    events = venue.oracle(720_000, paused=True)
    assert any(isinstance(e, IndexPriceSet) and e.liquidations_paused for e in events)
    assert venue.mark() == 720_000 and VIC in venue.engine.risk.queue
    venue(Heartbeat())
    events = venue(Withdraw(VIC, USDC))
    assert isinstance(events[0], CommandRejected) and events[0].code == RejectCode.withdrawal_blocked_oracle_paused
    events = venue(Withdraw(ATT, USDC))
    assert isinstance(events[0], CommandRejected) and events[0].code == RejectCode.withdrawal_blocked_oracle_paused
    assert isinstance(venue(Withdraw(LP, USDC))[0], Withdrawn)  # no position: not affected
    venue.oracle(720_000, 3, paused=True)
    assert not venue.victim_hit()
    venue.oracle(720_000, paused=False)
    assert any(isinstance(e, (PositionLiquidated, AutoDeleveraged, InsuranceFundUsed)) for e in venue.victim_hit())


def test_oracle_guard_pause_holds_liquidations_through_a_flash_crash() -> None:
    """End to end through OracleState: three of four sources flash-crash to 24,000.00 (-60 %) for 30 s.
    The median follows them (a majority), but the guard sees the price 60 % from its 5-minute TWAP
    (limit 50 %, Drift's liquidation guard), marks it too volatile and pauses liquidations; the engine
    receives the crash with liquidations_paused and liquidates nobody although the attacker's long is
    bankrupt at that mark, and nobody withdraws against it. When the sources recover, the position is
    intact and nobody was liquidated."""
    venue = Venue()
    state = _oracle_state()
    honest = {s: 6_000_000 for s in SOURCES}
    for _ in range(60):
        _feed(venue, state, honest)
    crash = dict(honest, coinbase=2_400_000, kraken=2_400_000, bitstamp=2_400_000)
    for _ in range(6):
        update = _feed(venue, state, crash)
        assert update.price == 2_400_000 and update.liquidations_paused
        assert venue.mark() == 240_000
        events = venue(Withdraw(VIC, USDC))  # the short's paper gain of 36,000 USDC
        assert isinstance(events[0], CommandRejected) and events[0].code == RejectCode.withdrawal_blocked_oracle_paused
    assert ATT in venue.engine.risk.queue  # bankrupt at the crash mark, waiting
    for _ in range(12):
        update = _feed(venue, state, honest)
        assert update.price == 6_000_000 and not update.liquidations_paused
    assert venue.mark() == P and venue.engine.accounts[ATT].positions[1].size_lots == 1_000
    assert not any(isinstance(e, (PositionLiquidated, AutoDeleveraged, InsuranceFundUsed)) for e in venue.events)
    assert venue.engine.risk.check() == []
