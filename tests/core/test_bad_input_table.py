"""Bad input, generated from the command structs: every field of every command type, with wrong types,
negative, zero and huge values (2**63, 2**70, -2**70) and unknown references, gets its specific reject
code; no exception escapes the engine; a rejected command leaves the state hash unchanged; an accepted one
leaves a state that still hashes, snapshots and restores (nothing beyond int64 enters the state).

The probe table is built from ``msgspec.structs.fields`` of every member of the ``Command`` union, so a
new command or field is probed automatically: wrong types must give ``field_type_invalid``, and value
probes must either be rejected without effect or leave an encodable state. Known fields also carry the
exact expected code per probe (EXPECT below). Commands that need a market in another state first
(SetMatchingMode: a halted market; CommitOrder / RevealOrder: a sealed-batch market, and for the reveal a
commitment in its reveal window) get that state from SETUPS before the probe. A command the engine does
not dispatch must give ``command_unknown`` for every probe.
"""

from __future__ import annotations

import copy
import tomllib
import typing
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.config import default_config_path
from bastion.core.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    Command,
    CommitOrder,
    CreateAccount,
    Deposit,
    DepositInsuranceFund,
    Heartbeat,
    PlaceOrder,
    RevealOrder,
    Sequenced,
    SetKillSwitch,
    SetMarketState,
    SetMarkPrice,
    SetMatchingMode,
    SetOraclePrice,
    Transfer,
    Withdraw,
)
from bastion.core.engine import Engine
from bastion.core.events import CommandRejected
from bastion.core.instruments import VenueConfig, venue_config_from_dict
from bastion.core.integrity.codes import MatchingMode
from bastion.core.integrity.commit_reveal import SealedOrder, commitment_of
from bastion.core.integrity.states import MarketState
from bastion.core.rejects import RejectCode as R
from bastion.core.units import DECIMAL_TEXT_LEN_MAX, GridError, decimal_to_grid, grid_to_decimal, parse_decimal
from tests.conftest import Driver

G = 7  # the configured guardian
P = 600_000
ACCEPT = None  # expected outcome: accepted


def _config() -> VenueConfig:
    raw = tomllib.loads(default_config_path().read_text(encoding="utf-8"))
    raw = copy.deepcopy(raw)
    raw["venue"]["guardian_ids"] = [G]
    return venue_config_from_dict(raw)


CONFIG = _config()


def busy_engine() -> tuple[Engine, Driver]:
    """Accounts 1 (owner 1, 1,000 USDC), 2 (owner 2), 3 (owner 1: a subaccount of 1); order 1 = account 1's
    bid 1 @ P-20 (client id 5), order 2 = account 2's ask 1 @ P+20 (client id 1)."""
    engine = Engine(CONFIG, check_invariants=True)
    drive = Driver(engine)
    for cmd in (CreateAccount(1, 1), CreateAccount(2, 2), CreateAccount(3, 1), Deposit(1, 10**9),
                Deposit(2, 10**12), PlaceOrder(1, 1, 5, 1, P - 20, 1), PlaceOrder(2, 1, 1, -1, P + 20, 1)):
        drive(cmd)
    return engine, drive


# A valid command of every type: each is accepted by busy_engine().
BASELINES: dict[type, Any] = {
    CreateAccount: CreateAccount(10, 10),
    Deposit: Deposit(1, 1_000),
    Withdraw: Withdraw(1, 1_000),
    Transfer: Transfer(1, 3, 1_000),
    DepositInsuranceFund: DepositInsuranceFund(1_000),
    PlaceOrder: PlaceOrder(1, 1, 99, 1, P - 10, 1),
    CancelOrder: CancelOrder(1, 1, 0),
    CancelAll: CancelAll(1, 0),
    AmendOrder: AmendOrder(1, 1, P - 25, 1),
    SetMarkPrice: SetMarkPrice(1, P),
    Heartbeat: Heartbeat(),
    SetMarketState: SetMarketState(G, 1, 3, 0),
    SetKillSwitch: SetKillSwitch(G, True),
    SetOraclePrice: SetOraclePrice(1, P, 1, False),
    SetMatchingMode: SetMatchingMode(G, 1, 1, 1_000_000, 0),
    CommitOrder: CommitOrder(1, 1, 1, bytes(32), 10),
    RevealOrder: RevealOrder(1, 1, 1, 99, 1, P, 1, 0, bytes(32)),
}

TAU_NS = 1_000_000  # sealed rounds of the SETUPS: 1 ms, reveal window 0.4 ms
REVEAL_NS = 400_000
SEALED_ORDER = SealedOrder(1, 1, 99, 1, P, 1)  # what BASELINES[RevealOrder] opens


def _to_sealed(drive: Driver) -> int:
    drive(SetMarketState(G, 1, MarketState.HALTED))
    t0 = drive.now_ns + 1_000
    drive(SetMatchingMode(G, 1, MatchingMode.SEALED_BATCH, TAU_NS, REVEAL_NS), at_ns=t0)
    drive(SetMarketState(G, 1, MarketState.ACTIVE))
    return t0


def _setup_reveal(drive: Driver) -> None:
    t0 = _to_sealed(drive)
    drive(CommitOrder(1, 1, 1, commitment_of(SEALED_ORDER, bytes(32)), 10))
    drive(Heartbeat(), at_ns=t0 + TAU_NS)  # the reveal window opens; the probe follows 1 µs later


SETUPS: dict[type, Any] = {
    SetMatchingMode: lambda drive: drive(SetMarketState(G, 1, MarketState.HALTED)),
    CommitOrder: _to_sealed,
    RevealOrder: _setup_reveal,
}

WRONG_TYPES: dict[type, dict[str, Any]] = {
    int: {"str": "1", "float": 1.0, "none": None, "bool": True, "list": [1], "bytes": b"1"},
    bool: {"int": 1, "str": "true", "none": None, "float": 0.0},
    bytes: {"str": "00", "int": 1, "none": None, "list": [0]},
}
VALUES: dict[type, dict[str, Any]] = {
    int: {"neg": -1, "zero": 0, "huge63": 2**63, "huge70": 2**70, "neg_huge": -(2**70)},
    bool: {"true": True, "false": False},
    bytes: {"empty": b"", "long": bytes(1_000)},
}

_ACC = dict.fromkeys(("neg", "zero", "huge63", "huge70", "neg_huge"), R.account_unknown)
_INST = dict.fromkeys(("neg", "zero", "huge63", "huge70", "neg_huge"), R.instrument_unknown)
_RANGE = dict.fromkeys(("neg", "zero", "huge63", "huge70", "neg_huge"), R.field_value_out_of_range)
_AMOUNT = {"neg": R.amount_atoms_not_positive, "zero": R.amount_atoms_not_positive, "huge63": R.amount_atoms_above_max,
           "huge70": R.amount_atoms_above_max, "neg_huge": R.amount_atoms_not_positive}
_PRICE = {"neg": R.price_ticks_not_positive, "zero": R.price_ticks_not_positive, "huge63": R.price_ticks_above_max,
          "huge70": R.price_ticks_above_max, "neg_huge": R.price_ticks_not_positive}
_QTY = {"neg": R.qty_lots_below_min, "zero": R.qty_lots_below_min, "huge63": R.qty_lots_above_max,
        "huge70": R.qty_lots_above_max, "neg_huge": R.qty_lots_below_min}
_GUARD = dict.fromkeys(("neg", "zero", "huge63", "huge70", "neg_huge"), R.guardian_unauthorized)
_ORDER = dict.fromkeys(("neg", "zero", "huge63", "huge70", "neg_huge"), R.order_unknown)


def _bad(code: R, *, ok: tuple[str, ...] = ()) -> dict[str, R | None]:
    out: dict[str, R | None] = dict.fromkeys(("neg", "zero", "huge63", "huge70", "neg_huge"), code)
    out.update(dict.fromkeys(ok, ACCEPT))
    return out


# (command type, field) -> probe name -> expected reject code (ACCEPT: accepted). Extra probes carry a value.
EXPECT: dict[tuple[type, str], dict[str, Any]] = {
    (CreateAccount, "account_id"): {**_RANGE, "existing": (1, R.account_exists)},
    (CreateAccount, "owner_id"): _RANGE,
    (CreateAccount, "isolated_instrument_id"): {**_bad(R.instrument_unknown, ok=("zero",)), "isolated": (1, ACCEPT),
                                                "unknown": (99, R.instrument_unknown)},
    (Deposit, "account_id"): {**_ACC, "unknown": (777, R.account_unknown)},
    (Deposit, "amount_atoms"): _AMOUNT,
    (Withdraw, "account_id"): _ACC,
    (Withdraw, "amount_atoms"): {**_AMOUNT, "over_balance": (10**15, R.balance_insufficient)},
    (Transfer, "from_account_id"): _ACC,
    (Transfer, "to_account_id"): {**_ACC, "self": (1, R.transfer_to_self), "other_owner": (2, R.account_owner_mismatch)},
    (Transfer, "amount_atoms"): _AMOUNT,
    (DepositInsuranceFund, "amount_atoms"): _AMOUNT,
    (PlaceOrder, "account_id"): _ACC,
    (PlaceOrder, "instrument_id"): {**_INST, "unknown": (99, R.instrument_unknown)},
    (PlaceOrder, "client_order_id"): {**_RANGE, "duplicate_live": (5, R.client_order_id_duplicate)},
    (PlaceOrder, "side"): {**_bad(R.side_invalid, ok=("neg",)), "two": (2, R.side_invalid)},
    (PlaceOrder, "price_ticks"): {**_PRICE, "max_plus_one": (100_000_001, R.price_ticks_above_max)},
    (PlaceOrder, "qty_lots"): {**_QTY, "too_large_for_margin": (100_000, R.margin_initial_insufficient)},
    (PlaceOrder, "order_type"): _bad(R.order_type_invalid, ok=("zero",)),
    (PlaceOrder, "time_in_force"): {**_bad(R.time_in_force_invalid, ok=("zero",)),
                                    "gtd_without_expiry": (3, R.expire_at_ns_not_in_future)},
    (PlaceOrder, "post_only"): {"true": ACCEPT, "false": ACCEPT},
    (PlaceOrder, "reduce_only"): {"true": R.reduce_only_would_increase, "false": ACCEPT},
    (PlaceOrder, "stp"): _bad(R.stp_mode_invalid, ok=("zero",)),
    (PlaceOrder, "expire_at_ns"): _bad(R.expire_at_ns_without_gtd, ok=("zero",)),
    (CancelOrder, "account_id"): _ACC,
    (CancelOrder, "order_id"): {**_ORDER, "other_accounts": (2, R.order_unknown)},
    # order_id given: the client id is not consulted (any int is accepted and ignored)
    (CancelOrder, "client_order_id"): _bad(ACCEPT),  # type: ignore[arg-type]
    (CancelAll, "account_id"): _ACC,
    (CancelAll, "instrument_id"): {**_bad(R.instrument_unknown, ok=("zero",)), "one": (1, ACCEPT)},
    (AmendOrder, "account_id"): {**_ACC, "not_the_owner": (2, R.order_unknown)},
    (AmendOrder, "order_id"): _ORDER,
    (AmendOrder, "price_ticks"): {**_PRICE, "same": (P - 20, R.amend_no_change)},
    (AmendOrder, "qty_lots"): _QTY,
    (SetMarkPrice, "instrument_id"): _INST,
    (SetMarkPrice, "price_ticks"): _PRICE,
    (SetMarketState, "guardian_id"): {**_GUARD, "not_a_guardian": (8, R.guardian_unauthorized)},
    (SetMarketState, "instrument_id"): _INST,
    (SetMarketState, "state"): {**_RANGE, "zero": R.market_state_transition_invalid,
                                "seven": (7, R.field_value_out_of_range)},
    (SetMarketState, "auction_ns"): {**_bad(R.field_value_out_of_range, ok=("zero",)),
                                     "without_auction": (5, R.market_state_transition_invalid)},
    (SetKillSwitch, "guardian_id"): _GUARD,
    (SetKillSwitch, "engaged"): {"true": ACCEPT, "false": ACCEPT},
    (SetOraclePrice, "instrument_id"): _INST,
    (SetOraclePrice, "index_price_ticks"): _PRICE,
    (SetOraclePrice, "oracle_timestamp_ns"): {**_RANGE, "future": (2 * 10**9, R.field_value_out_of_range)},
    (SetOraclePrice, "liquidations_paused"): {"true": ACCEPT, "false": ACCEPT},
}

# Whole-command cases the single-field probes cannot express (a combination of fields).
COMBINATIONS: list[tuple[str, Any, R | None]] = [
    ("gtd_expiry_beyond_int64", PlaceOrder(1, 1, 99, 1, P - 10, 1, time_in_force=3, expire_at_ns=2**63),
     R.expire_at_ns_above_max),
    ("gtd_expiry_2_70", PlaceOrder(1, 1, 99, 1, P - 10, 1, time_in_force=3, expire_at_ns=2**70), R.expire_at_ns_above_max),
    ("gtd_expiry_in_the_past", PlaceOrder(1, 1, 99, 1, P - 10, 1, time_in_force=3, expire_at_ns=5),
     R.expire_at_ns_not_in_future),
    ("gtd_expiry_int64_max_ok", PlaceOrder(1, 1, 99, 1, P - 10, 1, time_in_force=3, expire_at_ns=2**63 - 1), ACCEPT),
    ("market_price_negative", PlaceOrder(1, 1, 99, 1, -1, 1, order_type=1), R.field_value_out_of_range),
    ("market_price_huge", PlaceOrder(1, 1, 99, 1, 2**63, 1, order_type=1), R.field_value_out_of_range),
    ("market_price_ignored", PlaceOrder(1, 1, 99, 1, 0, 1, order_type=1), ACCEPT),
    ("market_post_only", PlaceOrder(1, 1, 99, 1, 0, 1, order_type=1, post_only=True), R.market_order_flags_invalid),
    ("post_only_ioc", PlaceOrder(1, 1, 99, 1, P - 10, 1, time_in_force=1, post_only=True), R.market_order_flags_invalid),
    ("post_only_would_take", PlaceOrder(1, 1, 99, 1, P + 20, 1, post_only=True), R.post_only_would_take),
    ("cancel_by_client_id", CancelOrder(1, 0, 5), ACCEPT),
    ("cancel_by_unknown_client_id", CancelOrder(1, 0, 777), R.order_unknown),
    ("cancel_by_client_id_2_70", CancelOrder(1, 0, 2**70), R.order_unknown),
    ("transfer_beyond_balance", Transfer(1, 3, 10**15), R.balance_insufficient),
]


@dataclass(frozen=True)
class Probe:
    name: str
    command: Any
    expected: Any  # RejectCode, ACCEPT, or GENERIC
    handled: bool


GENERIC = "generic"  # no exact expectation (a field this table does not know): reject-or-accept-safely


def _command_types() -> list[type]:
    return [t for t in typing.get_args(Command)]


def _probes() -> list[Probe]:
    engine, _ = busy_engine()
    handled = set(engine._handlers)
    probes: list[Probe] = []
    for cls in _command_types():
        base = BASELINES.get(cls)
        if base is None:
            raise AssertionError(f"no baseline for command {cls.__name__}: add one to BASELINES")
        is_handled = cls in handled
        probes.append(Probe(f"{cls.__name__}-baseline", base, ACCEPT, is_handled))
        for field in msgspec.structs.fields(cls):
            kind = field.type if field.type in WRONG_TYPES else int
            for name, value in WRONG_TYPES[kind].items():
                probes.append(Probe(f"{cls.__name__}.{field.name}-{name}",
                                    msgspec.structs.replace(base, **{field.name: value}), R.field_type_invalid,
                                    is_handled))
            table = EXPECT.get((cls, field.name))
            for name, value in VALUES[kind].items():
                expected = GENERIC if table is None else table.get(name, GENERIC)
                probes.append(Probe(f"{cls.__name__}.{field.name}-{name}",
                                    msgspec.structs.replace(base, **{field.name: value}), expected, is_handled))
            for name, spec in (table or {}).items():
                if isinstance(spec, tuple):
                    value, expected = spec
                    probes.append(Probe(f"{cls.__name__}.{field.name}-{name}",
                                        msgspec.structs.replace(base, **{field.name: value}), expected, is_handled))
    for name, command, expected in COMBINATIONS:
        probes.append(Probe(f"combination-{name}", command, expected, True))
    return probes


PROBES = _probes()


def _encodable_state(engine: Engine) -> None:
    """What an accepted command leaves must still hash, snapshot and restore (fits msgpack/int64)."""
    digest = engine.state_hash()
    restored = Engine.restore(CONFIG, engine.snapshot())
    assert restored.state_hash() == digest


@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
def test_probe(probe: Probe) -> None:
    engine, drive = busy_engine()
    setup = SETUPS.get(type(probe.command))
    if setup is not None:
        setup(drive)
    before = engine.state_hash()
    events = drive(probe.command)  # must not raise, whatever the field holds
    msgspec.msgpack.encode(events)  # and its events always fit the output log (ids echoed only if 64-bit)
    rejected = [e for e in events if isinstance(e, CommandRejected)]
    if not probe.handled:
        assert events == [CommandRejected(type(probe.command).__name__, 0, 0, R.command_unknown)]
        assert engine.state_hash() == before
        return
    if probe.expected is GENERIC:
        if rejected:
            assert len(events) == 1 and engine.state_hash() == before, events
        else:
            _encodable_state(engine)
        return
    if probe.expected is ACCEPT:
        assert not rejected, events
        _encodable_state(engine)
        return
    assert len(events) == 1 and rejected, events
    assert rejected[0].code == probe.expected, (probe.name, rejected[0])
    assert engine.state_hash() == before


def test_every_command_and_field_is_probed() -> None:
    """The table really covers every field of every command type in the Command union."""
    names = {p.name.split("-")[0] for p in PROBES}
    for cls in _command_types():
        for field in msgspec.structs.fields(cls):
            assert f"{cls.__name__}.{field.name}" in names
    assert {cls for cls in _command_types()} == set(BASELINES)
    assert sum(1 for p in PROBES if p.expected is not GENERIC and p.handled) > 400


def test_money_cannot_pile_up_beyond_int64() -> None:
    """Deposits and transfers stop at the caps: one account's balance at 2**61 atoms (about 2.3e18:
    balance_atoms_above_max) and the venue's total deposits at 2**62 (about 4.6e18:
    deposits_total_above_max), so balances, the fund and the totals always fit an int64."""
    engine, drive = busy_engine()

    def code(cmd: Any) -> R | None:
        events = drive(cmd)
        return events[0].code if isinstance(events[0], CommandRejected) else None

    assert [code(Deposit(2, 10**18)) for _ in range(3)] == [None, None, R.balance_atoms_above_max]
    assert engine.accounts[2].balance_atoms == 10**12 + 2 * 10**18
    assert [code(Deposit(3, 10**18)) for _ in range(2)] == [None, None]
    assert code(Deposit(1, 5 * 10**17)) is None  # total 1e9 + 1e12 + 4.5e18 < 2**62
    before = engine.state_hash()
    assert code(Transfer(1, 3, 5 * 10**17)) == R.balance_atoms_above_max  # 3 would hold 2.5e18 > 2**61
    assert code(Deposit(1, 2 * 10**17)) == R.deposits_total_above_max
    assert code(DepositInsuranceFund(2 * 10**17)) == R.deposits_total_above_max
    assert engine.state_hash() == before
    assert code(Transfer(1, 3, 3 * 10**17)) is None  # 2.3e18 <= 2**61
    _encodable_state(engine)


def test_sequencer_time_beyond_int64_is_a_bug() -> None:
    engine, _ = busy_engine()
    with pytest.raises(AssertionError):
        engine.apply(Sequenced(engine.seq + 1, 2**63, Heartbeat()))


# ---- the edge decimal parser: off-grid strings are rejected, never rounded


@pytest.mark.parametrize(("text", "step", "count"), [
    ("60000.1", "0.1", 600_001),
    ("0.001", "0.001", 1),
    ("1.000", "0.001", 1_000),
    ("7.5", "0.5", 15),
    ("  42  ", "1", 42),
    ("+3", "1", 3),
    ("12345678901234567890123456789.1", "0.1", 123456789012345678901234567891),  # beyond 28 digits: exact
])
def test_on_grid_decimals_convert_exactly(text: str, step: str, count: int) -> None:
    assert decimal_to_grid(text, Decimal(step)) == count
    assert grid_to_decimal(count, Decimal(step)) == Decimal(text.strip())


@pytest.mark.parametrize(("text", "step"), [
    ("60000.15", "0.1"),      # half a tick: never rounded to either neighbour
    ("60000.09", "0.1"),
    ("0.0015", "0.001"),
    ("7.6", "0.5"),
    ("0.1000000000000000000000000000001", "0.1"),  # off by 1e-31: beyond the default 28-digit precision
    ("1e3", "1"), ("1E3", "1"), ("NaN", "1"), ("inf", "1"), ("-inf", "1"), ("0x10", "1"), ("1_000", "1"),
    ("", "1"), ("   ", "1"), (".", "1"), ("1.2.3", "0.1"), ("--1", "1"), ("+-1", "1"), ("١٢", "1"),
    ("-1", "1"), ("0", "1"), ("-0.0", "0.1"),
    ("1" * (DECIMAL_TEXT_LEN_MAX + 1), "1"),   # longer than the named limit
])
def test_off_grid_or_malformed_decimals_are_rejected(text: str, step: str) -> None:
    with pytest.raises(GridError):
        decimal_to_grid(text, Decimal(step))


def test_zero_only_when_allowed_and_non_strings_refused() -> None:
    assert decimal_to_grid("0.000", Decimal("0.001"), allow_zero=True) == 0
    for value in (1, 1.5, None, b"1"):
        with pytest.raises(GridError):
            parse_decimal(value)  # type: ignore[arg-type]


@given(count=st.integers(min_value=1, max_value=10**30), exponent=st.integers(min_value=-12, max_value=3),
       off=st.integers(min_value=1, max_value=9))
def test_grid_round_trip_and_any_offset_is_rejected(count: int, exponent: int, off: int) -> None:
    """count * step prints back to count; adding any fraction of a step is rejected, never rounded."""
    step = Decimal(1).scaleb(exponent)
    text = format(grid_to_decimal(count, step), "f")
    assert decimal_to_grid(text, step) == count
    with localcontext(prec=100):  # the test's own arithmetic must not round either
        nudged = grid_to_decimal(count, step) + Decimal(off).scaleb(exponent - 1)
    with pytest.raises(GridError):
        decimal_to_grid(format(nudged, "f"), step)
