"""The verifier's own checks can fail: fill limits on fabricated event streams, invariant wiring."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.audit import verify as verify_module
from bastion.audit.verify import EXIT_DIVERGENCE, EXIT_OK, Finding, _OrderLimits, verify_directory
from bastion.core.engine import Engine
from bastion.core.errors import InvariantViolation
from bastion.core.events import OrderAccepted, OrderAmended, OrderCanceled, OrderReduced, TradeExecuted
from tests.audit._sessions import mix_venue

BUY, SELL = 1, -1


def _accept(oid: int, account: int, side: int, price: int, qty: int) -> OrderAccepted:
    return OrderAccepted(oid, account, 1, oid, side, price, qty, 0)


def _trade(price: int, qty: int, taker_side: int, maker: int, taker: int, maker_acct: int = 1,
           taker_acct: int = 2) -> TradeExecuted:
    return TradeExecuted(1, price, qty, taker_side, maker, taker, maker_acct, taker_acct, 0, 0, 0, 0)


def _run(*events: object) -> str | None:
    limits = _OrderLimits()
    for ev in events:
        why = limits.observe(ev, 1)
        if why is not None:
            return why
    return None


def test_honest_fills_pass() -> None:
    assert _run(_accept(1, 1, SELL, 100, 5), _accept(2, 2, BUY, 101, 3), _trade(100, 3, BUY, 1, 2),
                _accept(3, 3, BUY, 100, 2), _trade(100, 2, BUY, 1, 3),
                _accept(4, 4, SELL, 90, 1), OrderAmended(4, 4, 95, 1, False), _accept(5, 5, SELL, 110, 4),
                OrderReduced(5, 5, 0, 2), _accept(6, 6, BUY, 111, 2), _trade(110, 2, BUY, 5, 6, 5, 6),
                OrderCanceled(4, 4, 0, 1)) is None


@pytest.mark.parametrize("events, reason", [
    ((_accept(1, 1, SELL, 100, 5), _accept(2, 2, BUY, 99, 3), _trade(100, 3, BUY, 1, 2)), "taker's limit"),
    ((_accept(1, 1, BUY, 100, 5), _accept(2, 2, SELL, 101, 3), _trade(100, 3, SELL, 1, 2)), "taker's limit"),
    ((_accept(1, 1, SELL, 100, 5), _accept(2, 2, BUY, 105, 3), _trade(101, 3, BUY, 1, 2)), "maker's limit"),
    ((_accept(1, 1, SELL, 100, 5), _accept(2, 2, BUY, 105, 3), _trade(100, 4, BUY, 1, 2)), "exceeds"),
    ((_accept(1, 1, SELL, 100, 5), _accept(2, 2, BUY, 105, 3), _trade(100, 3, SELL, 1, 2)), "sides"),
    ((_accept(1, 1, SELL, 100, 5), _trade(100, 1, BUY, 1, 9)), "not both live"),
    ((_accept(1, 1, SELL, 100, 5), _accept(2, 2, BUY, 105, 3), OrderCanceled(1, 1, 0, 5),
      _trade(100, 1, BUY, 1, 2)), "not both live"),
    ((_accept(1, 1, SELL, 100, 5), _accept(2, 1, BUY, 105, 3), _trade(100, 1, BUY, 1, 2, 1, 1)), "self-trade"),
    ((_accept(1, 1, SELL, 100, 5), _accept(2, 2, BUY, 105, 3), OrderAmended(2, 2, 99, 3, False),
      _trade(100, 1, BUY, 1, 2)), "taker's limit"),
])
def test_fills_breaking_a_limit_are_named(events: tuple[object, ...], reason: str) -> None:
    why = _run(*events)
    assert why is not None and reason in why


class _FaultyEngine:
    """Wraps the verifier's engine to plant a fault (no monkeypatching of Engine: it may be compiled)."""

    fault = "invariant"

    def __init__(self, *args: object, **kwargs: object) -> None:
        self._engine = Engine(*args, **kwargs)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self._engine, name)

    def apply(self, item: object) -> list[object]:
        events = self._engine.apply(item)  # type: ignore[arg-type]
        if self.fault == "oi" and self._engine.seq >= 650 and any(type(ev) is TradeExecuted for ev in events):
            self._engine.open_interest_lots[1] += 1  # the engine's OI counter drifts from the positions
        return events  # type: ignore[return-value]

    def check_invariants(self) -> None:
        self._engine.check_invariants()
        if self.fault == "invariant" and self._engine.seq >= 700:
            raise InvariantViolation(f"conservation broken at seq {self._engine.seq}")


def test_a_broken_invariant_is_reported_with_its_seq(config, tmp_path: Path, monkeypatch) -> None:
    directory = tmp_path / "venue"
    mix_venue(config, directory, seed=2, n=600, accounts=50, resting=60)
    assert verify_directory(directory, invariants_every=100).status == EXIT_OK
    monkeypatch.setattr(verify_module, "Engine", _FaultyEngine)
    monkeypatch.setattr(_FaultyEngine, "fault", "invariant")
    report = verify_directory(directory, invariants_every=100)
    assert report.status == EXIT_DIVERGENCE and report.finding is not None
    assert report.finding.seq == 700 and "conservation" in report.finding.reason


def test_unbalanced_open_interest_is_caught_at_the_command(config, tmp_path: Path, monkeypatch) -> None:
    """The per-command OI check (not the sampled full check) names the first command that breaks it."""
    directory = tmp_path / "venue"
    mix_venue(config, directory, seed=4, n=800, accounts=50, resting=60)
    monkeypatch.setattr(verify_module, "Engine", _FaultyEngine)
    monkeypatch.setattr(_FaultyEngine, "fault", "oi")
    report = verify_directory(directory, invariants_every=0)
    assert report.status == EXIT_DIVERGENCE and report.finding is not None
    assert "open interest unbalanced on instrument 1: net size" in report.finding.reason  # the per-command check
    assert report.finding.seq is not None and report.finding.seq >= 650


def test_finding_text_names_file_offset_and_seq() -> None:
    assert str(Finding("events.bin", "leaf differs", 1234, 56)) == "events.bin offset 1234 (seq 56): leaf differs"



# ---------------------------------------------------------------------------------------------
# Open-interest tracking over loss-waterfall events
# ---------------------------------------------------------------------------------------------

_NON_ACCOUNT_IDS = {"client_order_id", "commit_id", "instrument_id", "maker_order_id", "order_id", "owner_id",
                    "taker_order_id", "guardian_id", "isolated_instrument_id"}


def test_every_event_field_naming_an_account_ends_in_account_id() -> None:
    """The verifier's per-command OI check re-reads the accounts an event names by the ``*account_id``
    field convention; an account field named otherwise (``AutoDeleveraged.counterparty_id`` once was)
    would leave that account's position stale and report a false divergence (or hide a real one)."""
    import typing

    from bastion.core.events import Event

    for kind in typing.get_args(Event):
        for name in kind.__struct_fields__:
            if name.endswith("_id"):
                assert name.endswith("account_id") or name in _NON_ACCOUNT_IDS, (kind.__name__, name)


def test_verify_passes_a_journal_with_insurance_fund_and_adl(tmp_path: Path, config) -> None:
    """A bankrupt long with no bids and an empty insurance fund: the waterfall closes it against the short
    by ADL at the bankruptcy price. Re-executed by the verifier, the ADL counterparty's position change
    must be tracked (OI stays balanced) and the directory verifies clean."""
    from bastion.core.commands import CreateAccount, Deposit, PlaceOrder, SetMarkPrice
    from bastion.core.risk_messages import AutoDeleveraged
    from bastion.journal.file import FsyncPolicy
    from bastion.venue import Venue

    price = 600_000
    adl: list[object] = []
    with Venue.open(config, tmp_path, fsync_policy=FsyncPolicy.NONE, checkpoint_every_events=5) as venue:
        for account, atoms in ((1, 10**13), (2, 1_000_000_000)):
            venue.submit(CreateAccount(account, account), 0)
            venue.submit(Deposit(account, atoms), 0)
        venue.submit(PlaceOrder(1, 1, 1, -1, price, 1000), 0)
        venue.submit(PlaceOrder(2, 1, 1, 1, price, 1000), 0)
        _, events = venue.submit(SetMarkPrice(1, 580_000), 0)
        adl = [e for e in events if isinstance(e, AutoDeleveraged)]
        venue.commit()
    assert adl and {e.counterparty_account_id for e in adl} == {1}
    report = verify_directory(tmp_path)
    assert report.status == EXIT_OK, report.finding
    assert report.commands == 7 and report.events > 9


def test_verify_passes_a_journal_where_the_fund_takes_over_and_unwinds(tmp_path: Path, config) -> None:
    """The insurance fund takes the bankrupt position onto its account 0 (PositionTakenOver names it) and
    later unwinds it into a bid (TradeExecuted with taker account 0): the verifier's OI tracking follows
    account 0 and the directory verifies clean, with the full invariant check after every command."""
    from bastion.core.commands import CreateAccount, Deposit, DepositInsuranceFund, Heartbeat, PlaceOrder, SetMarkPrice
    from bastion.core.risk_messages import InsuranceFundUnwound, PositionTakenOver
    from bastion.journal.file import FsyncPolicy
    from bastion.venue import Venue

    price = 600_000
    seen: list[object] = []
    with Venue.open(config, tmp_path, fsync_policy=FsyncPolicy.NONE, checkpoint_every_events=5) as venue:
        for account, atoms in ((1, 10**13), (2, 1_000_000_000), (3, 10**13)):
            venue.submit(CreateAccount(account, account), 0)
            venue.submit(Deposit(account, atoms), 0)
        venue.submit(DepositInsuranceFund(10**11), 0)
        venue.submit(PlaceOrder(1, 1, 1, -1, price, 1000), 0)
        venue.submit(PlaceOrder(2, 1, 1, 1, price, 1000), 0)
        seen += venue.submit(SetMarkPrice(1, 580_000), 0)[1]
        venue.submit(PlaceOrder(3, 1, 1, 1, 579_000, 1000), 0)
        for second in (2, 4, 6):
            seen += venue.submit(Heartbeat(), second * 10**9)[1]
        venue.commit()
    assert any(isinstance(e, PositionTakenOver) for e in seen)
    assert sum(e.qty_lots for e in seen if isinstance(e, InsuranceFundUnwound)) > 0
    report = verify_directory(tmp_path, invariants_every=1)
    assert report.status == EXIT_OK, report.finding
