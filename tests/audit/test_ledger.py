"""The double-entry ledger rebuilt from events alone equals the engine's money fields after every command.

Real engines are driven by seeded streams (chaos with and without matching modes / sealed bonds, the soak
stream with liquidations, takeovers and ADL, the risk session with funding and fund unwinds, a hypothesis
property with funding hours and the loss waterfall, backstop scenarios); every command's events are folded
and ``Ledger.mismatches(engine)`` must be empty after each one. Negative tests alter one fee, one funding
amount, one realized PnL, and check the mismatch is named. The CLI runs on a risk-session directory.
"""

from __future__ import annotations

import collections
import struct
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bastion.audit.ledger import Ledger
from bastion.audit.outlog import OUTLOG_HEADER_SIZE, OutlogScanner, decode_leaf, encode_leaf
from bastion.cli import app
from bastion.core.commands import (
    CreateAccount,
    Deposit,
    DepositInsuranceFund,
    PlaceOrder,
    Sequenced,
    SetMarkPrice,
    decode_sequenced,
)
from bastion.core.engine import Engine
from bastion.core.events import Event, FundingPaid, TradeExecuted
from bastion.core.instruments import VenueConfig, venue_config_from_dict
from bastion.core.risk.mark import MarkConfig, MarkMethod
from bastion.core.risk_engine import RiskConfig
from bastion.core.risk_messages import SetOraclePrice
from bastion.journal.file import JournalReader
from bastion.sim.differential import soak_config
from bastion.sim.risk_session import risk_config, risk_session
from bastion.sim.streams import chaos_commands
from tests.conftest import Driver

_COUNTS: collections.Counter[str] = collections.Counter()


def _fold_checked(config: VenueConfig, engine: Engine, ledger: Ledger, item: Sequenced) -> list[Event]:
    events = engine.apply(item)
    ledger.fold(item.seq, events)
    for ev in events:
        _COUNTS[type(ev).__name__] += 1
    problems = ledger.mismatches(engine)
    assert problems == [], (item, events, problems[:5])
    return events


def _chaos(config: VenueConfig, seed: int, n: int, **kw: bool) -> tuple[Engine, Ledger]:
    engine, ledger = Engine(config), Ledger(config)
    gen = chaos_commands(config, seed, n, **kw)
    item = next(gen)
    while True:
        events = _fold_checked(config, engine, ledger, item)
        try:
            item = gen.send(events)
        except StopIteration:
            return engine, ledger


@pytest.mark.parametrize("seed, modes", [(1, False), (2, True), (3, True)])
def test_chaos_stream_ledger_equals_engine_after_every_command(config: VenueConfig, seed: int, modes: bool) -> None:
    engine, ledger = _chaos(config, seed, 1_500, modes=modes)
    assert ledger.commands == engine.seq and ledger.events > ledger.commands
    for aid in engine.accounts:  # a statement sums to the cash balance
        assert sum(ledger.statement(aid).values()) == engine.accounts[aid].balance_atoms


def test_sealed_bonds_are_posted_returned_and_forfeited() -> None:
    """The soak stream with matching modes commits sealed bids: bonds go to escrow, back, and to the fund."""
    before = _COUNTS.copy()
    _, ledger = _chaos(soak_config(), 4, 3_000, soak=True, modes=True)
    seen = _COUNTS - before
    assert seen["OrderCommitted"] and seen["BondForfeited"] and seen["BondReturned"]
    assert any(s.get("bond_posted") and s.get("bond_returned") for s in ledger.statements.values())


@pytest.mark.parametrize("seed", [3, 5, 6, 8, 9, 11])
def test_soak_stream_with_liquidations_takeovers_and_adl(seed: int) -> None:
    config = soak_config()
    before = _COUNTS.copy()
    _chaos(config, seed, 4_000, soak=True)
    seen = _COUNTS - before
    assert seen["TradeExecuted"] and seen["AutoDeleveraged"] and seen["PositionTakenOver"]


def test_risk_session_with_funding_and_fund_unwinds(tmp_path: Path) -> None:
    """The risk session (liquidations into the book, fund takeovers and unwinds, hourly funding), its
    journal re-executed command by command with the ledger checked after each."""
    config = risk_config()
    risk_session(config, tmp_path / "v", 190, traders=60, crash_every_minutes=60, crash_minutes=8, crash_ppm=15_000)
    engine, ledger = Engine(config), Ledger(config)
    before = _COUNTS.copy()
    with JournalReader(tmp_path / "v" / "journal.bin") as reader:
        for record in reader.records():
            _fold_checked(config, engine, ledger, decode_sequenced(record.payload))
    seen = _COUNTS - before
    assert seen["FundingPaid"] and seen["InsuranceFundUnwound"] and seen["PositionLiquidated"]
    assert ledger.statement(1000).get("funding") or any(s.get("funding") for s in ledger.statements.values())


# ---- the loss waterfall: a hypothesis property (trades, oracle moves, funding hours) and backstop cases

P = 600_000
HOUR_NS = 3600 * 10**9
_STEP = st.one_of(
    st.tuples(st.just("trade"), st.integers(1, 4), st.integers(1, 3), st.sampled_from([1, -1]),
              st.integers(-2000, 2000), st.integers(1, 1500)),
    st.tuples(st.just("oracle"), st.integers(-40_000, 40_000)),
    st.tuples(st.just("quote"), st.sampled_from([1, -1]), st.integers(500, 30_000), st.integers(1, 2000)),
    st.tuples(st.just("hours"), st.integers(1, 3)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(fund=st.sampled_from([0, 10**9, 10**11]), steps=st.lists(_STEP, min_size=5, max_size=40))
def test_property_waterfall_and_funding(config: VenueConfig, fund: int, steps: list[tuple[object, ...]]) -> None:
    engine = Engine(config, risk=RiskConfig(mark=MarkConfig(method=MarkMethod.INDEX)))
    ledger = Ledger(config)
    drive = Driver(engine)

    def step(cmd: object, at_ns: int | None = None) -> None:
        events = drive(cmd, at_ns=at_ns)  # type: ignore[arg-type]
        ledger.fold(drive.log[-1].seq, events)
        for ev in events:
            _COUNTS[type(ev).__name__] += 1
        problems = ledger.mismatches(engine)
        assert problems == [], (drive.log[-1], events, problems[:5])

    for a in (1, 2, 3, 4):
        step(CreateAccount(a, a))
        step(Deposit(a, 2_000_000_000 if a < 4 else 10**12))
    if fund:
        step(DepositInsuranceFund(fund))
    index = P
    step(SetOraclePrice(1, index, drive.now_ns + 1_000))
    for i, s in enumerate(steps, 1):
        if s[0] == "trade":
            _, maker, taker, side, offset, qty = s
            price = max(1, engine.marks[1] + int(offset))  # type: ignore[call-overload]
            step(PlaceOrder(maker, 1, 2 * i, side, price, qty))
            step(PlaceOrder(taker, 1, 2 * i + 1, -int(side), price, qty))  # type: ignore[call-overload]
        elif s[0] == "quote":
            _, side, away, qty = s
            step(PlaceOrder(4, 1, 2 * i, side, max(1, engine.marks[1] - int(side) * int(away)), qty))  # type: ignore[call-overload]
        elif s[0] == "oracle":
            index = max(10_000, index + int(s[1]))  # type: ignore[call-overload]
            step(SetOraclePrice(1, index, drive.now_ns + 1_000))
        else:
            at = drive.now_ns + int(s[1]) * HOUR_NS  # type: ignore[call-overload]
            step(SetOraclePrice(1, index, at), at_ns=at)


def _backstop_config() -> VenueConfig:
    """The risk-config tests' venue (Binance-like tiers) with a backstop liquidator account 9."""
    from tests.risk.test_risk_config import _raw

    return venue_config_from_dict(_raw({"backstop_account_id": 9}))


@pytest.mark.parametrize("backstop_atoms, fund_atoms", [(10**12, 0), (10**12, 10**10), (10_000_000, 0), (0, 0)])
def test_crash_into_backstop_fund_adl_and_socialized_loss(backstop_atoms: int, fund_atoms: int) -> None:
    """A 40x long with no bids below: the fund, the backstop, ADL against the LP and maybe socialized loss."""
    config = _backstop_config()
    engine, ledger = Engine(config, check_invariants=True), Ledger(config)
    drive = Driver(engine)

    seen: collections.Counter[str] = collections.Counter()

    def step(cmd: object) -> None:
        events = drive(cmd)  # type: ignore[arg-type]
        ledger.fold(drive.log[-1].seq, events)
        seen.update(type(ev).__name__ for ev in events)
        assert ledger.mismatches(engine) == [], events

    for account, atoms in ((1, 10**13), (2, 1_000_000_000), (3, 10**9), (9, backstop_atoms)):
        step(CreateAccount(account, account))
        if atoms:
            step(Deposit(account, atoms))
    if fund_atoms:
        step(DepositInsuranceFund(fund_atoms))
    step(PlaceOrder(1, 1, 1, -1, P, 1000))
    step(PlaceOrder(2, 1, 1, 1, P, 1000))
    step(SetMarkPrice(1, 580_000))
    step(SetMarkPrice(1, 540_000))
    step(SetMarkPrice(1, 620_000))
    assert seen["PositionTakenOver"] + seen["AutoDeleveraged"] > 0


# ---- negative tests: one altered figure in the event stream is a named mismatch


def _tamper_run(config: VenueConfig, seed: int, n: int, kind: type, alter: object, **kw: bool) -> list[str]:
    """Run a stream, altering the first event of ``kind`` with ``alter(event) -> event`` before folding it."""
    engine, ledger = Engine(config), Ledger(config)
    gen = chaos_commands(config, seed, n, **kw) if kind is TradeExecuted else None
    done = False
    if gen is not None:
        item = next(gen)
        while True:
            events = engine.apply(item)
            folded = list(events)
            for i, ev in enumerate(folded):
                if not done and isinstance(ev, kind):
                    folded[i], done = alter(ev), True  # type: ignore[operator]
            ledger.fold(item.seq, folded)
            if done:
                return ledger.mismatches(engine)
            try:
                item = gen.send(events)
            except StopIteration:
                break
    raise AssertionError("no event to alter")


def test_altered_fee_is_named(config: VenueConfig) -> None:
    problems = _tamper_run(config, 1, 1_500, TradeExecuted,
                           lambda ev: msgspec.structs.replace(ev, taker_fee_atoms=ev.taker_fee_atoms + 1))
    assert any(p.startswith("fee_pool: ledger") for p in problems), problems
    assert any(p.startswith("cash:") and "engine balance_atoms" in p for p in problems), problems


def test_altered_realized_pnl_is_named_without_an_engine(config: VenueConfig) -> None:
    """The ledger recomputes realized PnL from its own positions: a changed figure is an anomaly even
    before any engine comparison."""
    engine, ledger = Engine(config), Ledger(config)
    gen = chaos_commands(config, 1, 1_500)
    item = next(gen)
    while not ledger.anomalies:
        events = engine.apply(item)
        folded = [msgspec.structs.replace(ev, maker_realized_pnl_atoms=ev.maker_realized_pnl_atoms + 7)
                  if isinstance(ev, TradeExecuted) and ev.maker_realized_pnl_atoms else ev for ev in events]
        ledger.fold(item.seq, folded)
        item = gen.send(events)
    assert "realized PnL of maker account" in ledger.anomalies[0]
    assert any("realized PnL" in p for p in ledger.mismatches(engine))


def test_altered_funding_amount_is_named(tmp_path: Path) -> None:
    config = risk_config()
    risk_session(config, tmp_path / "v", 70, traders=30)
    engine, ledger = Engine(config), Ledger(config)
    altered = None
    with JournalReader(tmp_path / "v" / "journal.bin") as reader:
        for record in reader.records():
            item = decode_sequenced(record.payload)
            events = engine.apply(item)
            folded = list(events)
            for i, ev in enumerate(folded):
                if altered is None and isinstance(ev, FundingPaid):
                    folded[i] = altered = msgspec.structs.replace(ev, amount_atoms=ev.amount_atoms - 3)
            ledger.fold(item.seq, folded)
            if altered is not None:
                break
    assert altered is not None, "the session settled no funding"
    problems = ledger.mismatches(engine)
    assert f"cash:{altered.account_id}: ledger" in "\n".join(problems), problems
    assert any(p.startswith(f"funding:{altered.instrument_id}: funding clearing left at") for p in problems), problems


# ---- the CLI on a venue directory


@pytest.fixture(scope="module")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ledger") / "venue"
    risk_session(risk_config(), directory, 130, traders=40, crash_every_minutes=60, crash_minutes=8,
                 crash_ppm=15_000)
    return directory


def test_cli_trial_balance_and_statement(session_dir: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["ledger", str(session_dir)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output and "insurance_fund" in result.output
    result = runner.invoke(app, ["ledger", str(session_dir), "--json", "--account", "1000"])
    assert result.exit_code == 0, result.output
    import json

    out = json.loads(result.output)
    assert out["status"] == 0 and out["mismatches"] == [] and out["debits_atoms"] == out["credits_atoms"]
    assert sum(out["account"]["statement"].values()) == out["account"]["cash_atoms"]
    assert out["account"]["statement"]["deposit"] > 0
    result = runner.invoke(app, ["ledger", str(session_dir), "--account", "1000"])
    assert result.exit_code == 0 and "statement of account 1000" in result.output


def test_cli_names_a_mismatch_in_a_tampered_output_log(session_dir: Path, tmp_path: Path) -> None:
    """One fee changed in events.bin (re-framed): exit 1 naming the fee pool."""
    image = (session_dir / "events.bin").read_bytes()
    out = bytearray(image[:OUTLOG_HEADER_SIZE])
    done = False
    for record in OutlogScanner(image):
        leaf = decode_leaf(record.leaf)
        data = record.leaf
        if not done and isinstance(leaf.event, TradeExecuted):
            data = encode_leaf(leaf.seq, leaf.event_index,
                               msgspec.structs.replace(leaf.event, maker_fee_atoms=leaf.event.maker_fee_atoms + 1))
            done = True
        out += struct.pack("<I", len(data)) + data
    assert done
    bad = tmp_path / "venue"
    bad.mkdir()
    for name in ("venue.toml", "journal.bin"):
        (bad / name).write_bytes((session_dir / name).read_bytes())
    (bad / "events.bin").write_bytes(bytes(out))
    result = CliRunner().invoke(app, ["ledger", str(bad)])
    assert result.exit_code == 1, result.output
    assert "MISMATCH" in result.output and "fee_pool: ledger" in result.output


def test_cli_cannot_run_without_a_venue_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["ledger", str(tmp_path)])
    assert result.exit_code == 2
