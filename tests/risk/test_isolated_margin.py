"""Isolated margin as isolated subaccounts (dYdX v4 / Drift: an isolated position lives in its own
subaccount; shared/reference/risk-engines.md, "Isolated margin" row).

An owner keeps a cross account (C) and opens an isolated account (I) for BTC-USD-PERP, funding it by
Transfer. I may trade only BTC; its loss is bounded by the collateral moved into it: a crash through its
bankruptcy price is covered by the insurance fund, never by C. Default venue grid: 60,000.0 = 600,000
ticks, lot 0.001 BTC, k = 100 atoms per tick-lot, taker fee 500 ppm.
"""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest

from bastion.core.commands import (
    CreateAccount,
    Deposit,
    DepositInsuranceFund,
    PlaceOrder,
    SetMarkPrice,
    Transfer,
)
from bastion.core.engine import Engine
from bastion.core.events import AccountCreated, CommandRejected, OrderAccepted
from bastion.core.instruments import VenueConfig, venue_config_from_dict
from bastion.core.rejects import RejectCode
from bastion.core.risk.margin_math import account_health
from bastion.core.risk_messages import InsuranceFundUsed
from tests.conftest import Driver

P = 600_000
OWNER, CROSS, ISO, LP = 7, 70, 71, 1


def _two_markets() -> VenueConfig:
    """configs/default.toml: BTC-USD-PERP (1) and ETH-USD-PERP (2, tick 0.01)."""
    config = venue_config_from_dict(tomllib.loads((resources.files("bastion") / "configs" / "default.toml").read_text()))
    assert {1, 2} <= set(config.instruments)
    return config


def _venue() -> tuple[Engine, Driver]:
    engine = Engine(_two_markets(), check_invariants=True)
    drive = Driver(engine)
    drive(CreateAccount(LP, LP))
    drive(Deposit(LP, 10**13))
    drive(CreateAccount(CROSS, OWNER))
    drive(Deposit(CROSS, 100_000 * 10**6))
    events = drive(CreateAccount(ISO, OWNER, 1))
    assert events == [AccountCreated(ISO, OWNER, 1)]
    drive(Transfer(CROSS, ISO, 1_000 * 10**6))
    drive(DepositInsuranceFund(10**10))
    return engine, drive


def _rejected(engine: Engine, drive: Driver, cmd: object, code: RejectCode) -> None:
    before = engine.state_hash()
    events = drive(cmd)
    assert len(events) == 1 and isinstance(events[0], CommandRejected) and events[0].code == code, events
    assert engine.state_hash() == before


def test_isolated_account_trades_only_its_instrument() -> None:
    engine, drive = _venue()
    drive(PlaceOrder(LP, 2, 1, -1, 30_000, 100))
    _rejected(engine, drive, PlaceOrder(ISO, 2, 1, 1, 30_000, 1), RejectCode.account_isolated_to_other_instrument)
    assert any(isinstance(e, OrderAccepted) for e in drive(PlaceOrder(CROSS, 2, 1, 1, 30_000, 1)))
    drive(PlaceOrder(LP, 1, 2, -1, P, 100))
    assert any(isinstance(e, OrderAccepted) for e in drive(PlaceOrder(ISO, 1, 2, 1, P, 100)))


@pytest.mark.parametrize("isolated, code", [
    (3, RejectCode.instrument_unknown),
    (-1, RejectCode.instrument_unknown),
    ("1", RejectCode.field_type_invalid),
    (1.0, RejectCode.field_type_invalid),
    (True, RejectCode.field_type_invalid),
])
def test_bad_isolated_instrument_is_refused(isolated: object, code: RejectCode) -> None:
    engine, drive = _venue()
    _rejected(engine, drive, CreateAccount(99, OWNER, isolated), code)  # type: ignore[arg-type]


def test_loss_of_an_isolated_position_stops_at_its_collateral() -> None:
    """ISO buys 1 BTC at 60,000.0 with 1,000 USDC (bankruptcy ≈ 59,030.0). The mark falls to 55,000.0
    with no bids: the waterfall closes ISO and the insurance fund pays its deficit. CROSS, which holds
    99,000 USDC of the same owner, is not touched."""
    engine, drive = _venue()
    cross_before = engine.accounts[CROSS].balance_atoms
    drive(PlaceOrder(LP, 1, 1, -1, P, 1000))
    drive(PlaceOrder(ISO, 1, 1, 1, P, 1000))
    events = drive(SetMarkPrice(1, 550_000))
    used = [e for e in events if isinstance(e, InsuranceFundUsed)]
    assert used and used[0].account_id == ISO and used[0].amount_atoms > 0
    assert engine.accounts[ISO].balance_atoms == 0 and engine.accounts[ISO].positions[1].size_lots == 0
    assert engine.accounts[CROSS].balance_atoms == cross_before


def test_margin_moves_in_and_out_by_transfer_checked_like_a_withdrawal() -> None:
    engine, drive = _venue()
    drive(PlaceOrder(LP, 1, 1, -1, P, 1000))
    drive(PlaceOrder(ISO, 1, 1, 1, P, 1000))  # initial margin 1 % - 100 = 500 USDC of its ~970
    _rejected(engine, drive, Transfer(ISO, CROSS, 500 * 10**6), RejectCode.withdrawal_exceeds_free_collateral)
    health = account_health(engine.accounts[ISO], engine.specs, engine.marks)
    drive(Transfer(CROSS, ISO, 2_000 * 10**6))  # add margin: equity up, requirement unchanged
    after = account_health(engine.accounts[ISO], engine.specs, engine.marks)
    assert after.equity_atoms == health.equity_atoms + 2_000 * 10**6
    assert after.maintenance_atoms == health.maintenance_atoms
    assert not any(isinstance(e, CommandRejected) for e in drive(Transfer(ISO, CROSS, 500 * 10**6)))


def test_isolation_survives_snapshot_and_replay() -> None:
    engine, drive = _venue()
    again = Engine.restore(engine.config, engine.snapshot(), check_invariants=True)
    assert again.state_hash() == engine.state_hash()
    assert again.accounts[ISO].isolated_instrument_id == 1 and again.accounts[CROSS].isolated_instrument_id == 0
    replayed = Engine(engine.config)
    for item in drive.log:
        replayed.apply(item)
    assert replayed.state_hash() == engine.state_hash()
    # and the flag is in the hash: the same session with a cross account differs
    cross = Engine(engine.config)
    for item in drive.log:
        cmd = item.command
        if isinstance(cmd, CreateAccount) and cmd.account_id == ISO:
            item = type(item)(item.seq, item.timestamp_ns, CreateAccount(ISO, OWNER))
        cross.apply(item)
    assert cross.state_hash() != engine.state_hash()
