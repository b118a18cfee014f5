"""Withdrawals and transfers out never take unrealized gains (the Mango Markets pattern, October 2022:
a pumped mark price let an account borrow/withdraw against paper profit).

Rule (core/margin.py ``withdrawable_atoms``): after the withdrawal, settled cash + sum over positions of
min(0, uPnL) - initial margin (worst case with open orders) - open-order loss and fee reserve >= 0.

Numbers below use the default venue's BTC perpetual: tick 0.1, lot 0.001, so one tick-lot is
0.1 * 0.001 * 1e6 = 100 atoms; first margin bracket (notional <= 50,000 USDC) IMF 0.8 %; taker fee
500 ppm. ETH: tick 0.01, lot 0.001 -> 10 atoms per tick-lot; first bracket IMF 1 %.
"""

from __future__ import annotations

from bastion.core.commands import CreateAccount, Deposit, PlaceOrder, SetMarkPrice, Transfer, Withdraw
from bastion.core.engine import Engine
from bastion.core.events import CommandRejected, Transferred, Withdrawn
from bastion.core.margin import free_collateral_atoms, withdrawable_atoms
from bastion.core.rejects import RejectCode as R
from tests.conftest import Driver

P = 600_000  # 60,000.0 USD


def _long_btc(engine: Engine) -> Driver:
    """Account 1 (10 USDC) buys 10 lots at 60,000.0 as taker from account 2; fee 500 ppm of 600 USDC."""
    drive = Driver(engine)
    drive(CreateAccount(1, 1))
    drive(CreateAccount(2, 2))
    drive(CreateAccount(3, 1))  # a subaccount of owner 1
    drive(Deposit(1, 10_000_000))
    drive(Deposit(2, 10**12))
    drive(PlaceOrder(2, 1, 1, -1, P, 10))
    drive(PlaceOrder(1, 1, 1, 1, P, 10))
    account = engine.accounts[1]
    assert account.positions[1].size_lots == 10
    assert account.positions[1].cost_atoms == P * 10 * 100  # 600,000,000 atoms = 600 USDC
    assert account.balance_atoms == 10_000_000 - 300_000  # taker fee 600e6 * 500e-6
    return drive


def test_paper_gain_cannot_be_withdrawn(config) -> None:
    """Mark +10 % to 66,000.0: uPnL = 10 * 660,000 * 100 - 600,000,000 = +60,000,000 atoms (60 USDC),
    IM = 660,000,000 * 0.008 = 5,280,000. Settled cash 9,700,000, so at most 9,700,000 - 5,280,000 =
    4,420,000 atoms may leave; the 60 USDC of paper gain and the margin stay. (The old rule counted the
    gain and let all 9,700,000 go, leaving the position backed by paper profit only.)"""
    engine = Engine(config, check_invariants=True)
    drive = _long_btc(engine)
    drive(SetMarkPrice(1, 660_000))
    account = engine.accounts[1]
    assert free_collateral_atoms(account, engine.specs, engine.marks) == 9_700_000 + 60_000_000 - 5_280_000
    assert withdrawable_atoms(account, engine.specs, engine.marks) == 4_420_000
    before = engine.state_hash()
    for too_much in (9_700_000, 4_420_001):
        ev = drive(Withdraw(1, too_much))
        assert ev == [CommandRejected("withdraw", 1, 0, R.withdrawal_exceeds_free_collateral)]
        ev = drive(Transfer(1, 3, too_much))
        assert ev == [CommandRejected("transfer", 1, 0, R.withdrawal_exceeds_free_collateral)]
    assert engine.state_hash() == before
    assert drive(Withdraw(1, 4_420_000)) == [Withdrawn(1, 4_420_000, 5_280_000)]
    assert withdrawable_atoms(account, engine.specs, engine.marks) == 0


def test_unrealized_loss_reduces_what_can_leave(config) -> None:
    """Mark to 59,900.0: uPnL = 10 * 599,000 * 100 - 600,000,000 = -1,000,000 atoms and IM =
    599,000,000 * 0.008 = 4,792,000, so 9,700,000 - 1,000,000 - 4,792,000 = 3,908,000 atoms may leave."""
    engine = Engine(config, check_invariants=True)
    drive = _long_btc(engine)
    drive(SetMarkPrice(1, 599_000))
    account = engine.accounts[1]
    assert withdrawable_atoms(account, engine.specs, engine.marks) == 3_908_000
    assert drive(Withdraw(1, 3_908_001))[0].code == R.withdrawal_exceeds_free_collateral
    assert drive(Withdraw(1, 3_908_000)) == [Withdrawn(1, 3_908_000, 5_792_000)]


def test_a_gain_on_one_position_does_not_cover_a_loss_on_another(config) -> None:
    """Long 10 BTC at 60,000.0 (mark 66,000.0: +60,000,000 uPnL) and long 100 ETH lots at 3,000.00
    (300,000 ticks; cost 100 * 300,000 * 10 = 300,000,000 atoms; taker fee 150,000) marked at 2,970.00:
    uPnL -3,000,000, IM 297,000,000 * 1 % = 2,970,000. Settled cash 10,000,000 + 5,000,000 deposit -
    300,000 - 150,000 = 14,550,000. Withdrawable = 14,550,000 - 5,280,000 (BTC IM) - 3,000,000 (ETH loss)
    - 2,970,000 (ETH IM) = 3,300,000: the BTC gain offsets nothing."""
    engine = Engine(config, check_invariants=True)
    drive = _long_btc(engine)
    drive(Deposit(1, 5_000_000))
    drive(PlaceOrder(2, 2, 2, -1, 300_000, 100))
    drive(PlaceOrder(1, 2, 2, 1, 300_000, 100))
    drive(SetMarkPrice(1, 660_000))
    drive(SetMarkPrice(2, 297_000))
    account = engine.accounts[1]
    assert account.balance_atoms == 14_550_000
    assert withdrawable_atoms(account, engine.specs, engine.marks) == 3_300_000
    assert drive(Withdraw(1, 3_300_001))[0].code == R.withdrawal_exceeds_free_collateral
    assert drive(Transfer(1, 3, 3_300_000)) == [Transferred(1, 3, 3_300_000)]


def test_realized_gain_is_settled_cash_and_can_leave(config) -> None:
    """Close the long at 66,000.0 (a resting bid of account 2, 10 lots): realized PnL +60,000,000, taker
    fee 660,000,000 * 500e-6 = 330,000. Flat: all settled cash, 9,700,000 + 60,000,000 - 330,000 =
    69,370,000 atoms, may leave."""
    engine = Engine(config, check_invariants=True)
    drive = _long_btc(engine)
    drive(SetMarkPrice(1, 660_000))
    drive(PlaceOrder(2, 1, 2, 1, 660_000, 10))
    drive(PlaceOrder(1, 1, 2, -1, 660_000, 10))
    account = engine.accounts[1]
    assert 1 not in account.positions
    assert account.balance_atoms == 69_370_000
    assert drive(Withdraw(1, 69_370_000)) == [Withdrawn(1, 69_370_000, 0)]


def test_cash_can_go_negative_against_paper_gains_but_then_nothing_leaves(config) -> None:
    """Cross margin lets unrealized gains carry margin and fees, so settled cash can go negative while
    equity stays positive (dYdX v4: a negative USDC position); the withdrawal rule then lets nothing
    leave, and the risk invariants hold (a negative balance is bad debt only on a flat account).

    Account 1 (10 USDC) sells 5 lots at 60,000.0 (fee 150,000; cash 9,850,000). Mark -> 48,000.0:
    uPnL +60,000,000, IM 5 * 480,000 * 100 * 0.8 % = 1,920,000, so 7,930,000 may be withdrawn (cash left
    1,920,000). It then sells 100 lots limited at 48,000.0 into account 2's bid at 60,000.0: margin passes
    (IM for 105 lots 40,320,000 + fee reserve 2,400,100 <= cash + gain 61,920,000) and the fill's fee is
    100 * 600,000 * 100 * 500e-6 = 3,000,000 > 1,920,000: cash -1,080,000, equity +1,258,920,000."""
    engine = Engine(config, check_invariants=True)
    drive = Driver(engine)
    drive(CreateAccount(1, 1))
    drive(CreateAccount(2, 2))
    drive(Deposit(1, 10_000_000))
    drive(Deposit(2, 10**13))
    drive(PlaceOrder(2, 1, 1, 1, P, 5))
    drive(PlaceOrder(1, 1, 1, -1, P, 5))
    drive(SetMarkPrice(1, 480_000))
    account = engine.accounts[1]
    assert withdrawable_atoms(account, engine.specs, engine.marks) == 9_850_000 - 1_920_000
    assert drive(Withdraw(1, 7_930_000)) == [Withdrawn(1, 7_930_000, 1_920_000)]
    drive(PlaceOrder(2, 1, 2, 1, P, 100))
    events = drive(PlaceOrder(1, 1, 2, -1, 480_000, 100))
    assert [e.taker_fee_atoms for e in events if hasattr(e, "taker_fee_atoms")] == [3_000_000]
    assert account.balance_atoms == -1_080_000
    pos = account.positions[1]
    equity = account.balance_atoms + pos.size_lots * 480_000 * 100 - pos.cost_atoms
    assert (pos.size_lots, equity) == (-105, 1_258_920_000)
    assert withdrawable_atoms(account, engine.specs, engine.marks) < 0
    drive(CreateAccount(3, 1))
    for cmd in (Withdraw(1, 1), Transfer(1, 3, 1)):
        assert drive(cmd)[0].code == R.balance_insufficient  # negative settled cash: nothing to take
    assert engine.risk.check() == []
