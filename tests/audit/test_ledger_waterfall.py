"""The ledger's SocializedLoss and BadDebtRecorded rules, driven through a real engine.

No other engine-driven test reaches the last two steps of the loss waterfall (waterfall.py steps 7-8).
ADL at the bankruptcy price needs the counterparty's *cash* (balance) and equity to stay >= 0 after
closing at the mark and paying the lots' deficit share. A short who entered at or above the bankrupt
long's entry realizes, per lot, at least the long's loss, which exceeds the long's deficit share (the
loss less the long's margin), so it can always pay. So here the only short, S, entered *below* the
bankrupt long's entry (through an intermediary I) and carries that loss into its cash when closed,
while an unrealized ETH gain keeps its equity (and margin) up.
Closing a BTC lot at the crash mark then costs S cash it does not have: ADL stops at S's cash, the rest
goes to the (empty) fund over capacity, and its deficit share is socialized over the BTC holders and, past
their loss capacity, booked as bad debt.

Default venue, mark = oracle index (``MarkMethod.INDEX``), insurance fund 0, no backstop, only
``Engine.apply`` (via the tests' Driver): deposits, orders, ``SetOraclePrice``, time. BTC: tick 0.1,
lot 0.001, k = 100 atoms per tick-lot; ETH: tick 0.01, lot 0.001, k = 10; taker fee 500 ppm, maker
rebate 100 ppm. After every command: ``ledger.mismatches(engine) == []``, ``ledger.anomalies == []`` and
``engine.check_invariants()`` (the engine also runs it itself, ``check_invariants=True``).

The setup shared by the tests (USDC; 1 USDC = 10**6 atoms):

1. BTC index 55,000.0, ETH index 3,000.00.
2. S buys 4 ETH at 3,000.00 from the LP (taker fee 6.00), ETH index to 4,500.00: S's uPnL +6,000.
3. S sells ``1 + residual`` BTC to I at 55,000.0 (S taker: 27.50 per BTC of fee).
4. BTC index to 60,000.0; I sells 1 BTC to X at 60,000.0 (X taker: fee 30.00). X deposited 1,000,
   so its cash is 970 and its equity at 58,000.0 is 970 - 2,000 = -1,030: its bankruptcy price is
   59,030.0 and every one of its 1,000 lots carries a deficit share of 1.03.
5. BTC index to 58,000.0 (the crash). The book has no bids: X's liquidation IOC at 59,030.0 is
   canceled and X goes to the waterfall. The fund is empty; the only BTC short is S. For S, closing a
   lot at 58,000.0 realizes (55,000 - 58,000) * 0.001 = -3.00 and paying its share costs 1.03 more:
   4.03 of *cash* per lot (ADL requires balance >= 0 and equity >= 0 after the charge); at the mark
   (no charge) 3.00 per lot. What S cannot close goes to the fund at the mark, over capacity, and its
   1.03 per lot is uncollected.
"""

from __future__ import annotations

import collections

import pytest

from bastion.audit.ledger import Ledger
from bastion.core.commands import CreateAccount, Deposit, Heartbeat, PlaceOrder
from bastion.core.engine import Engine
from bastion.core.events import Event
from bastion.core.instruments import VenueConfig
from bastion.core.risk.mark import MarkConfig, MarkMethod
from bastion.core.risk_engine import RiskConfig
from bastion.core.risk_messages import (
    AutoDeleveraged,
    BadDebtRecorded,
    InsuranceFundUsed,
    PositionTakenOver,
    SetOraclePrice,
    SocializedLoss,
)
from tests.conftest import Driver

USDC = 10**6
FUND = 0
LP, X, S, I = 1, 2, 3, 4
BTC, ETH = 1, 2
HOUR_NS = 3600 * 10**9
SHARE = 1_030_000  # X's deficit share per lot: 1,030 USDC over 1,000 lots
FUND_FUNDING = 505 * 580_000 * 100 * 12_500 // 10**9  # the fund's hour of funding at 58,000.0 (0.366125 USDC)
RISK = RiskConfig(mark=MarkConfig(method=MarkMethod.INDEX))


class Venue:
    """An engine, its ledger folded from the events, and the checks run after every command."""

    def __init__(self, config: VenueConfig) -> None:
        self.engine = Engine(config, check_invariants=True, risk=RISK)
        self.ledger = Ledger(config)
        self.drive = Driver(self.engine)
        self.seen: collections.Counter[str] = collections.Counter()

    def __call__(self, cmd: object, at_ns: int | None = None) -> list[Event]:
        events = self.drive(cmd, at_ns=at_ns)  # type: ignore[arg-type]
        self.ledger.fold(self.drive.log[-1].seq, events)
        self.seen.update(type(ev).__name__ for ev in events)
        self.engine.check_invariants()
        problems = self.ledger.mismatches(self.engine)
        assert problems == [], (self.drive.log[-1], events, problems[:5])
        assert self.ledger.anomalies == [], (self.drive.log[-1], events)
        return events

    def oracle(self, iid: int, ticks: int) -> list[Event]:
        return self(SetOraclePrice(iid, ticks, self.drive.now_ns + 1_000))

    def cash(self, account_id: int) -> int:
        return self.engine.accounts[account_id].balance_atoms

    def size(self, account_id: int, iid: int = BTC) -> int:
        pos = self.engine.accounts[account_id].positions.get(iid)
        return 0 if pos is None else pos.size_lots


def _before_the_crash(config: VenueConfig, s_cash_atoms: int, residual_lots: int) -> Venue:
    """Setup steps 1-4 (module docstring); S is left with exactly ``s_cash_atoms`` of cash, I with
    ``residual_lots`` BTC long at 55,000.0."""
    v = Venue(config)
    btc_lots = 1_000 + residual_lots
    s_fees = 4_000 * 300_000 * 10 * 500 // 10**6 + btc_lots * 550_000 * 100 * 500 // 10**6
    for account, atoms in ((LP, 10**13), (X, 1_000 * USDC), (S, s_cash_atoms + s_fees), (I, 100_000 * USDC)):
        v(CreateAccount(account, account))
        v(Deposit(account, atoms))
    v.oracle(BTC, 550_000)
    v.oracle(ETH, 300_000)
    v(PlaceOrder(LP, ETH, 1, -1, 300_000, 4_000))
    v(PlaceOrder(S, ETH, 1, 1, 300_000, 4_000))  # S: 4 ETH long at 3,000.00
    v.oracle(ETH, 450_000)  # S: +6,000 unrealized
    v(PlaceOrder(I, BTC, 1, 1, 550_000, btc_lots))
    v(PlaceOrder(S, BTC, 2, -1, 550_000, btc_lots))  # S short, I long, at 55,000.0
    v.oracle(BTC, 600_000)
    v(PlaceOrder(I, BTC, 2, -1, 600_000, 1_000))
    v(PlaceOrder(X, BTC, 1, 1, 600_000, 1_000))  # X: 1 BTC long at 60,000.0 from I
    assert v.cash(S) == s_cash_atoms and v.cash(X) == 970 * USDC and v.engine.insurance_fund_atoms == 0
    assert (v.size(X), v.size(S), v.size(I)) == (1_000, -btc_lots, residual_lots)
    assert v.engine.risk.bad_debt_atoms == 0 and not v.seen["AutoDeleveraged"]
    return v


def _waterfall(events: list[Event]) -> list[Event]:
    kinds = (AutoDeleveraged, PositionTakenOver, InsuranceFundUsed, SocializedLoss, BadDebtRecorded)
    return [ev for ev in events if isinstance(ev, kinds)]


def test_crash_reaches_socialized_loss_charged_to_a_holder_with_capacity(config: VenueConfig) -> None:
    """Socialized loss, fully absorbed (no bad debt). Worked example (USDC):

    S's cash before the crash is 1,994.85 = 495 * 4.03 (deposit 2,031.10 less fees 6.00 + 1.1 * 27.50);
    I kept 0.1 BTC long at 55,000.0 and has about 105,000 of cash.

    * ADL at the bankruptcy price: S closes 495 lots (496 would need 1,998.88 of cash), pays
      495 * 1.03 = 509.85 and realizes 495 * -3.00 = -1,485.00: its cash is exactly 0.
    * ADL at the mark: 0 lots (a lot costs 3.00 of cash).
    * The fund (cash 0) takes the other 505 lots at 58,000.0 over capacity, charge 0; their share
      505 * 1.03 = 520.15 is uncollected.
    * Socialized loss over the BTC holders {S, I}, pro rata to min(balance, equity): S's capacity is 0,
      I's about 105,000, so I pays all 520.15. Nothing is left for bad debt.

    X ends flat at 0. An hour later funding settles (premium 0, so the 0.01 %/8h interest: 12,500 ppb
    an hour, longs pay): the fund owes 505 lots * 58,000.0 = 29,290 notional * 12,500 ppb = 0.366125 on
    its over-capacity inventory with no cash, so the engine books that to the venue as bad debt
    (``BadDebtRecorded(0, ...)``, the ledger's Dr bad_debt, Cr insurance_fund).
    """
    v = _before_the_crash(config, 1_994_850_000, residual_lots=100)
    i_cash = v.cash(I)
    events = v.oracle(BTC, 580_000)
    assert _waterfall(events) == [
        AutoDeleveraged(BTC, X, S, 495, 580_000, 2, 495 * SHARE, -1_485_000_000),
        PositionTakenOver(BTC, X, FUND, 505, 580_000, 0, 3, True),
        SocializedLoss(I, X, 505 * SHARE),
    ]
    assert 505 * SHARE == 520_150_000 and FUND_FUNDING == 366_125
    assert v.cash(X) == 0 and v.size(X) == 0 and v.cash(S) == 0 and v.cash(I) == i_cash - 520_150_000
    assert v.size(FUND) == 505 and v.engine.insurance_fund_atoms == 0 and v.engine.risk.bad_debt_atoms == 0
    # The ledger posted it Dr cash:I, Cr cash:X.
    assert v.ledger.statement(I)["socialized_loss"] == -520_150_000
    assert v.ledger.statement(X)["socialized_loss"] == 520_150_000
    assert "bad_debt" not in v.ledger.statement(X)
    events = v(Heartbeat(), at_ns=v.drive.now_ns + HOUR_NS)  # funding; no bids, so no fund unwind
    assert [ev for ev in events if isinstance(ev, BadDebtRecorded)] == [BadDebtRecorded(FUND, FUND_FUNDING, FUND_FUNDING)]
    assert v.seen["SocializedLoss"] == 1 and v.seen["BadDebtRecorded"] == 1


def test_crash_reaches_bad_debt_past_the_pool_capacity(config: VenueConfig) -> None:
    """Socialized loss up to the pool's capacity, then bad debt. Worked example (USDC):

    S's cash before the crash is 1,996.85 = 495 * 4.03 + 2.00 (deposit 2,030.35 less fees 6.00 +
    27.50); I is flat, so the BTC holders besides X are S alone.

    * ADL at the bankruptcy price: S closes 495 lots, pays 509.85, realizes -1,485.00: cash 2.00 left.
    * ADL at the mark: 0 lots (a lot needs 3.00).
    * The fund takes 505 lots at 58,000.0 over capacity; 520.15 uncollected.
    * Socialized loss: the pool {S} can lose min(balance 2.00, equity 2.00 - 1,515 + 6,000) = 2.00.
    * Bad debt: 520.15 - 2.00 = 518.15 booked to the venue, X credited to exactly 0.

    Conservation now holds with the bad-debt account: ``risk.bad_debt_atoms`` = 518.15 = the ledger's
    ``bad_debt`` (a debit balance). An hour later the fund's funding (0.366125, first test) adds to it:
    518.516125. A further drop to 57,000.0 puts the fund's equity at -505 (its own waterfall: S cannot
    close at a loss with no cash, so the lots stay unclosed); the ledger still equals the engine.
    """
    v = _before_the_crash(config, 1_996_850_000, residual_lots=0)
    events = v.oracle(BTC, 580_000)
    assert _waterfall(events) == [
        AutoDeleveraged(BTC, X, S, 495, 580_000, 2, 495 * SHARE, -1_485_000_000),
        PositionTakenOver(BTC, X, FUND, 505, 580_000, 0, 3, True),
        SocializedLoss(S, X, 2 * USDC),
        BadDebtRecorded(X, 518_150_000, 518_150_000),
    ]
    assert 505 * SHARE - 2 * USDC == 518_150_000
    assert v.cash(X) == 0 and v.size(X) == 0 and v.cash(S) == 0 and v.size(S) == -505
    assert v.size(FUND) == 505 and v.engine.insurance_fund_atoms == 0
    assert v.engine.risk.bad_debt_atoms == 518_150_000 == v.ledger.balance("bad_debt")
    assert v.ledger.statement(X)["bad_debt"] == 518_150_000
    assert v.ledger.statement(S)["socialized_loss"] == -2 * USDC
    events = v(Heartbeat(), at_ns=v.drive.now_ns + HOUR_NS)
    total = 518_150_000 + FUND_FUNDING
    assert [ev for ev in events if isinstance(ev, BadDebtRecorded)] == [BadDebtRecorded(FUND, FUND_FUNDING, total)]
    assert v.engine.risk.bad_debt_atoms == total == v.ledger.balance("bad_debt")
    v.oracle(BTC, 570_000)
    v(Heartbeat())
    assert v.seen["BadDebtRecorded"] == 2 and v.seen["SocializedLoss"] == 1
