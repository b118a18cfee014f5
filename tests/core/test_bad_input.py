"""Bad input: every field of every command with a wrong type, a negative/zero/huge value, an off-grid or
unknown reference gets its numbered reject code, and the state hash does not change."""

from __future__ import annotations

import pytest

from bastion.core.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    CreateAccount,
    Deposit,
    DepositInsuranceFund,
    PlaceOrder,
    Sequenced,
    SetMarkPrice,
    Transfer,
    Withdraw,
)
from bastion.core.engine import Engine
from bastion.core.events import CommandRejected
from bastion.core.rejects import RejectCode as R
from tests.conftest import Driver

HUGE = 2**70
P = 600_000


def order(**kw):
    base = dict(account_id=1, instrument_id=1, client_order_id=99, side=1, price_ticks=P - 10, qty_lots=1)
    base.update(kw)
    return PlaceOrder(**base)


CASES = [
    # PlaceOrder: types
    (order(account_id="1"), R.field_type_invalid),
    (order(instrument_id=1.0), R.field_type_invalid),
    (order(client_order_id=None), R.field_type_invalid),
    (order(side="buy"), R.field_type_invalid),
    (order(price_ticks=600_000.5), R.field_type_invalid),
    (order(price_ticks="600000"), R.field_type_invalid),
    (order(qty_lots=1.0), R.field_type_invalid),
    (order(qty_lots=True), R.field_type_invalid),
    (order(post_only=1), R.field_type_invalid),
    (order(reduce_only="no"), R.field_type_invalid),
    (order(order_type=None), R.field_type_invalid),
    (order(time_in_force=0.0), R.field_type_invalid),
    (order(stp=[]), R.field_type_invalid),
    (order(expire_at_ns="soon"), R.field_type_invalid),
    # PlaceOrder: values
    (order(account_id=777), R.account_unknown),
    (order(account_id=-1), R.account_unknown),
    (order(instrument_id=99), R.instrument_unknown),
    (order(instrument_id=0), R.instrument_unknown),
    (order(client_order_id=0), R.field_value_out_of_range),
    (order(client_order_id=-5), R.field_value_out_of_range),
    (order(client_order_id=HUGE), R.field_value_out_of_range),
    (order(side=0), R.side_invalid),
    (order(side=2), R.side_invalid),
    (order(price_ticks=0), R.price_ticks_not_positive),
    (order(price_ticks=-600_000), R.price_ticks_not_positive),
    (order(price_ticks=HUGE), R.price_ticks_above_max),
    (order(qty_lots=0), R.qty_lots_below_min),
    (order(qty_lots=-3), R.qty_lots_below_min),
    (order(qty_lots=HUGE), R.qty_lots_above_max),
    (order(order_type=7), R.order_type_invalid),
    (order(time_in_force=9), R.time_in_force_invalid),
    (order(stp=-1), R.stp_mode_invalid),
    (order(time_in_force=3, expire_at_ns=1), R.expire_at_ns_not_in_future),
    (order(expire_at_ns=HUGE), R.expire_at_ns_without_gtd),
    (order(order_type=1, post_only=True), R.market_order_flags_invalid),
    (order(post_only=True, time_in_force=1), R.market_order_flags_invalid),
    (order(client_order_id=5), R.client_order_id_duplicate),
    (order(qty_lots=100_000), R.margin_initial_insufficient),
    (order(side=-1, price_ticks=P - 20, post_only=True), R.post_only_would_take),
    (order(side=-1, reduce_only=True), R.reduce_only_would_increase),
    # Cancel / amend
    (CancelOrder(1, order_id=12345), R.order_unknown),
    (CancelOrder(1, order_id="1"), R.field_type_invalid),
    (CancelOrder(2, order_id=1), R.order_unknown),  # somebody else's order
    (CancelOrder(777, order_id=1), R.account_unknown),
    (CancelAll(1, 99), R.instrument_unknown),
    (CancelAll("1", 0), R.field_type_invalid),
    (AmendOrder(1, 1, P - 10, 0), R.qty_lots_below_min),
    (AmendOrder(1, 1, 0, 1), R.price_ticks_not_positive),
    (AmendOrder(1, 1, HUGE, 1), R.price_ticks_above_max),
    (AmendOrder(1, 1, P - 20, 1.5), R.field_type_invalid),
    (AmendOrder(1, 1, P - 20, 1), R.amend_no_change),
    (AmendOrder(1, 99, P, 1), R.order_unknown),
    (AmendOrder(2, 1, P, 1), R.order_unknown),
    # Money
    (Deposit(1, 0), R.amount_atoms_not_positive),
    (Deposit(1, -5), R.amount_atoms_not_positive),
    (Deposit(1, HUGE), R.amount_atoms_above_max),
    (Deposit(1, 1.5), R.field_type_invalid),
    (Deposit(777, 5), R.account_unknown),
    (Withdraw(1, 10**15), R.balance_insufficient),
    (Withdraw(1, 0), R.amount_atoms_not_positive),
    (Withdraw(1, "5"), R.field_type_invalid),
    (Transfer(1, 2, 5), R.account_owner_mismatch),
    (Transfer(1, 1, 5), R.transfer_to_self),
    (Transfer(1, 3, -1), R.amount_atoms_not_positive),
    (Transfer(1, 777, 5), R.account_unknown),
    (DepositInsuranceFund(0), R.amount_atoms_not_positive),
    (CreateAccount(1, 1), R.account_exists),
    (CreateAccount(0, 1), R.field_value_out_of_range),
    (CreateAccount("9", 1), R.field_type_invalid),
    (SetMarkPrice(99, 5), R.instrument_unknown),
    (SetMarkPrice(1, 0), R.price_ticks_not_positive),
    (SetMarkPrice(1, HUGE), R.price_ticks_above_max),
    (SetMarkPrice(1, "5"), R.field_type_invalid),
]


@pytest.fixture
def busy_engine(config) -> tuple[Engine, Driver]:
    """Accounts 1 (owner 1), 2 (owner 2), 3 (owner 1, a subaccount of 1); account 1 has a resting bid
    (order 1, client id 5) and an ask from account 2 rests above it."""
    engine = Engine(config, check_invariants=True)
    drive = Driver(engine)
    drive(CreateAccount(1, 1))
    drive(CreateAccount(2, 2))
    drive(CreateAccount(3, 1))
    drive(Deposit(1, 10**9))
    drive(Deposit(2, 10**12))
    drive(PlaceOrder(1, 1, 5, 1, P - 20, 1))
    drive(PlaceOrder(2, 1, 1, -1, P + 20, 1))
    return engine, drive


@pytest.mark.parametrize(("command", "code"), CASES, ids=[f"{type(c).__name__}-{code.name}-{i}" for i, (c, code) in enumerate(CASES)])
def test_bad_command_is_rejected_and_changes_nothing(busy_engine, command, code) -> None:
    engine, drive = busy_engine
    before = engine.state_hash()
    events = drive(command)
    assert len(events) == 1 and isinstance(events[0], CommandRejected), events
    assert events[0].code == code
    assert engine.state_hash() == before


def test_position_above_last_margin_tier_is_refused(busy_engine) -> None:
    """At a mark of 10,000,000.0 a 1,000 BTC order is 10 bn USDC of notional: above the last bracket."""
    engine, drive = busy_engine
    drive(Deposit(2, 10**15))
    drive(SetMarkPrice(1, 100_000_000))
    before = engine.state_hash()
    ev = drive(PlaceOrder(2, 1, 7, -1, 100_000_000, 1_000_000))
    assert ev[0].code == R.position_notional_above_max_tier and engine.state_hash() == before


def test_every_reject_code_is_unique_and_banded() -> None:
    values = [c.value for c in R]
    assert len(values) == len(set(values))
    assert all(100 <= v < 600 for v in values)


def test_sequencer_contract_violations_are_bugs(config) -> None:
    engine = Engine(config)
    engine.apply(Sequenced(1, 10, CreateAccount(1, 1)))
    with pytest.raises(AssertionError):
        engine.apply(Sequenced(3, 20, CreateAccount(2, 2)))  # gap
    with pytest.raises(AssertionError):
        engine.apply(Sequenced(2, 5, CreateAccount(2, 2)))   # time going backwards


# ---- market-integrity commands (issue 4): every field, with a guardian configured.

from bastion.core.commands import SetKillSwitch, SetMarketState  # noqa: E402

G = 7
INTEGRITY_CASES = [
    (SetMarketState("7", 1, 3), R.field_type_invalid),
    (SetMarketState(G, 1.0, 3), R.field_type_invalid),
    (SetMarketState(G, 1, None), R.field_type_invalid),
    (SetMarketState(G, 1, 4, "5"), R.field_type_invalid),
    (SetMarketState(G, 1, True), R.field_type_invalid),
    (SetMarketState(8, 1, 3), R.guardian_unauthorized),
    (SetMarketState(-1, 1, 3), R.guardian_unauthorized),
    (SetMarketState(G, 99, 3), R.instrument_unknown),
    (SetMarketState(G, 1, 6), R.field_value_out_of_range),
    (SetMarketState(G, 1, -1), R.field_value_out_of_range),
    (SetMarketState(G, 1, 4, -1), R.field_value_out_of_range),
    (SetMarketState(G, 1, 4, HUGE), R.field_value_out_of_range),
    (SetMarketState(G, 1, 0), R.market_state_transition_invalid),  # ACTIVE -> ACTIVE
    (SetMarketState(G, 1, 3, 5), R.market_state_transition_invalid),  # auction_ns without AUCTION
    (SetKillSwitch("7", True), R.field_type_invalid),
    (SetKillSwitch(G, 1), R.field_type_invalid),
    (SetKillSwitch(G, None), R.field_type_invalid),
    (SetKillSwitch(8, True), R.guardian_unauthorized),
]


@pytest.mark.parametrize(("command", "code"), INTEGRITY_CASES,
                         ids=[f"{type(c).__name__}-{code.name}-{i}" for i, (c, code) in enumerate(INTEGRITY_CASES)])
def test_bad_integrity_command_is_rejected_and_changes_nothing(command, code) -> None:
    from tests.integrity._engine_helpers import make_config

    engine = Engine(make_config(), check_invariants=True)
    drive = Driver(engine)
    drive(CreateAccount(1, 1))
    drive(Deposit(1, 10**9))
    drive(PlaceOrder(1, 1, 5, 1, P - 20, 1))
    before = engine.state_hash()
    events = drive(command)
    assert len(events) == 1 and isinstance(events[0], CommandRejected), events
    assert events[0].code == code
    assert engine.state_hash() == before
