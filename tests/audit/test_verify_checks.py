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
                OrderReduced(5, 5, 0, 2), OrderCanceled(4, 4, 0, 1), _accept(6, 6, BUY, 111, 2),
                _trade(110, 2, BUY, 5, 6, 5, 6)) is None


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


# ---------------------------------------------------------------------------------------------
# Price-time priority on the shadow book (fabricated streams)
# ---------------------------------------------------------------------------------------------


def test_the_best_priced_earliest_maker_passes_and_any_other_is_named() -> None:
    """Two asks at 100 (orders 1 then 2) and one at 101 (order 3): a buy must take 1, then 2, then 3."""
    book = (_accept(1, 1, SELL, 100, 2), _accept(2, 2, SELL, 100, 2), _accept(3, 3, SELL, 101, 2),
            _accept(4, 4, BUY, 101, 6))
    assert _run(*book, _trade(100, 2, BUY, 1, 4, 1, 4), _trade(100, 2, BUY, 2, 4, 2, 4),
                _trade(101, 2, BUY, 3, 4, 3, 4)) is None
    why = _run(*book, _trade(100, 2, BUY, 2, 4, 2, 4))  # later order at the same price first
    assert why is not None and "price-time priority" in why and "order 1 rests at 100 (the same price, earlier)" in why
    why = _run(*book, _trade(101, 2, BUY, 3, 4, 3, 4))  # worse price first
    assert why is not None and "order 1 rests at 100 (a better price)" in why


def test_priority_follows_amends_reductions_and_stp() -> None:
    """An amend that loses priority goes to the back of its new level; one that keeps it (smaller size) and
    an OrderReduced do not move it; a maker removed by self-trade prevention (its OrderCanceled comes first)
    is no longer ahead; an STP decrement shrinks the taker too."""
    base = (_accept(1, 1, SELL, 100, 2), _accept(2, 2, SELL, 100, 2))
    moved = (*base, OrderAmended(1, 1, 100, 3, False), _accept(9, 9, BUY, 100, 1))
    assert _run(*moved, _trade(100, 1, BUY, 2, 9, 2, 9)) is None
    assert "priority" in (_run(*moved, _trade(100, 1, BUY, 1, 9, 1, 9)) or "")
    kept = (*base, OrderAmended(1, 1, 100, 1, True), OrderReduced(2, 2, 9, 1), _accept(9, 9, BUY, 100, 1))
    assert _run(*kept, _trade(100, 1, BUY, 1, 9, 1, 9)) is None
    assert "priority" in (_run(*kept, _trade(100, 1, BUY, 2, 9, 2, 9)) or "")
    stp = (*base, _accept(9, 1, BUY, 100, 3), OrderCanceled(1, 1, 5, 2))  # maker of the taker's account expired
    assert _run(*stp, _trade(100, 2, BUY, 2, 9, 2, 1)) is None
    decrement = (*base, _accept(9, 1, BUY, 100, 3), OrderReduced(1, 1, 8, 0))  # taker 3 -> 1 lot
    assert _run(*decrement, _trade(100, 1, BUY, 2, 9, 2, 1)) is None
    assert "exceeds" in (_run(*decrement, _trade(100, 2, BUY, 2, 9, 2, 1)) or "")
    assert "without a matching taker" in (_run(*base, OrderReduced(1, 1, 8, 0)) or "")


def _run_seq(*events: object, limits: object | None = None) -> str | None:
    """Like :func:`_run`, with ``"next"`` items starting a new command (seq + 1)."""
    limits = _OrderLimits() if limits is None else limits
    seq = 1
    for ev in events:
        if ev == "next":
            seq += 1
            continue
        why = limits.observe(ev, seq)  # type: ignore[attr-defined]
        if why is not None:
            return why
    return None


def test_auction_fills_are_not_held_to_time_priority() -> None:
    """taker_side 0 (a call auction or batch): allocation is the auction's, so no time priority; the limits
    and the clearing price of this command's AuctionCleared bind."""
    from bastion.core.events import AuctionCleared

    events = (_accept(1, 1, SELL, 100, 2), _accept(2, 2, SELL, 99, 2), _accept(3, 3, BUY, 101, 2))
    cleared = AuctionCleared(1, 0, 5, 100, 2, 0)
    assert _run(*events, cleared, _trade(100, 2, 0, 1, 3, 1, 3)) is None  # order 2 (99) is not ahead of it
    assert "outside the limits" in (_run(*events, AuctionCleared(1, 0, 5, 102, 2, 0),
                                         _trade(102, 2, 0, 1, 3, 1, 3)) or "")
    assert "clearing price is 100" in (_run(*events, cleared, _trade(101, 2, 0, 1, 3, 1, 3)) or "")
    assert "no clearing in this command" in (_run(*events, _trade(100, 2, 0, 1, 3, 1, 3)) or "")
    # A clearing belongs to its command: a fill in the next command at that price has no clearing.
    assert "no clearing in this command" in (_run_seq(*events, cleared, "next", _trade(100, 2, 0, 1, 3, 1, 3)) or "")
    assert "no clearing" in (_run(*events, AuctionCleared(2, 0, 5, 100, 2, 0), _trade(100, 2, 0, 1, 3, 1, 3)) or "")


def test_orders_of_a_batch_market_rest_in_its_batch_book() -> None:
    """docs/integrity-integration.md §6.3: MatchingModeSet to BATCH moves the continuous book into the
    batch book and every later order (liquidation orders too) rests there, so a continuous fill is a
    finding; batch fills at the clearing price pass whatever their time order. Back to CONTINUOUS the
    orders rejoin their levels in batch priority: the one moved from the book first (order 1), then the
    one accepted in batch mode (order 4, 100), then one amended there (order 6, re-entered at 100, at the
    back), then orders accepted after the switch."""
    from bastion.core.events import AuctionCleared, MatchingModeSet

    book = (_accept(1, 1, SELL, 100, 2), _accept(2, 2, BUY, 99, 2), _accept(6, 6, SELL, 101, 2))
    batch = (*book, MatchingModeSet(1, 1, 10**9, 0), _accept(3, 3, BUY, 101, 3), _accept(4, 4, SELL, 100, 2),
             OrderAmended(6, 6, 100, 2, False), OrderAccepted(5, 5, 1, 0, BUY, 102, 1, 1))  # 5: a liquidation IOC
    assert "a batch market" in (_run(*batch, _trade(100, 1, BUY, 1, 3, 1, 3)) or "")
    assert "a batch market" in (_run(*batch, _trade(100, 1, BUY, 4, 5, 4, 5)) or "")
    clearing = (AuctionCleared(1, 3, 2 * 10**9, 100, 3, 0), _trade(100, 2, 0, 4, 3, 4, 3), _trade(100, 1, 0, 1, 3, 1, 3))
    assert _run(*batch, *clearing) is None  # order 4 before order 1: the batch's allocation, not checked
    back = (*batch, *clearing, OrderCanceled(5, 5, 15, 1), MatchingModeSet(1, 0, 0, 0), _accept(7, 7, SELL, 100, 1),
            _accept(8, 8, BUY, 100, 4))
    # Order 1 has 1 lot left at 100, ahead of order 6 (amended to 100 in batch mode), then order 7.
    assert _run(*back, _trade(100, 1, BUY, 1, 8, 1, 8), _trade(100, 2, BUY, 6, 8, 6, 8),
                _trade(100, 1, BUY, 7, 8, 7, 8)) is None
    why = _run(*back, _trade(100, 1, BUY, 6, 8, 6, 8))
    assert why is not None and "order 1 rests at 100 (the same price, earlier)" in why
    why = _run(*back, _trade(100, 1, BUY, 1, 8, 1, 8), _trade(100, 1, BUY, 7, 8, 7, 8))
    assert why is not None and "order 6 rests at 100 (the same price, earlier)" in why
    # Back in continuous matching, a batch-style fill needs a clearing (a guardian auction) again.
    assert "no clearing" in (_run_seq(*back, "next", _trade(100, 1, 0, 1, 8, 1, 8)) or "")


def test_sealed_batch_orders_are_admitted_into_the_batch_book() -> None:
    """SEALED_BATCH (§7): orders appear only at the round close (OrderAccepted), rest in the batch book
    and fill at that close's clearing price; no continuous fill."""
    from bastion.core.events import AuctionCleared, MatchingModeSet

    sealed = (MatchingModeSet(1, 2, 10**9, 5 * 10**8), _accept(1, 1, SELL, 100, 2), _accept(2, 2, BUY, 103, 2))
    assert _run(*sealed, AuctionCleared(1, 0, 10**9, 101, 2, 0), _trade(101, 2, 0, 1, 2, 1, 2)) is None
    assert "a batch market" in (_run(*sealed, _trade(100, 2, BUY, 1, 2, 1, 2)) or "")
    assert "clearing price is 101" in (_run(*sealed, AuctionCleared(1, 0, 10**9, 101, 2, 0),
                                            _trade(100, 2, 0, 1, 2, 1, 2)) or "")


def test_auction_clearings_stay_in_the_mark_collar_without_a_band() -> None:
    """No band: an auction clears within mark +- market_protection_ppm (default.toml: 50,000 ppm), the
    mark of the last MarkPriceSet (the reference price before one): w = 30,000 ticks around 600,000,
    [570,000, 630,000]; after MarkPriceSet(612,345): w = 30,617, [581,728, 642,962]. An instrument with a
    band is left to the band check; without the config nothing is checked."""
    from bastion.core.events import AuctionCleared, MarkPriceSet
    from tests.integrity._engine_helpers import make_config

    def run(config: object, *events: object) -> str | None:
        return _run_seq(*events, limits=_OrderLimits(config))

    config = make_config()
    assert run(config, AuctionCleared(1, 0, 5, 570_000, 1, 0), AuctionCleared(1, 1, 6, 630_000, 1, 0)) is None
    why = run(config, AuctionCleared(1, 0, 5, 630_001, 1, 0))
    assert why is not None and "outside its collar [570000, 630000] (mark 600000 +- 50000 ppm)" in why
    assert "collar [570000" in (run(config, AuctionCleared(1, 0, 5, 569_999, 1, 0)) or "")
    assert run(config, MarkPriceSet(1, 612_345), AuctionCleared(1, 0, 5, 642_962, 1, 0),
               AuctionCleared(1, 0, 5, 581_728, 1, 0)) is None
    assert "[581728, 642962]" in (run(config, MarkPriceSet(1, 612_345), AuctionCleared(1, 0, 5, 642_963, 1, 0)) or "")
    assert run(make_config({"band_ppm": 10_000}), AuctionCleared(1, 0, 5, 640_000, 1, 0)) is None  # BandWatch's
    assert _run(AuctionCleared(1, 0, 5, 10, 1, 0)) is None


def test_a_real_batch_session_verifies_clean(tmp_path: Path) -> None:
    """A venue that trades continuously, switches to batch auctions (halted; the resting orders move into
    the batch book), trades there (clearings at boundaries, an IOC, an amend that re-enters at the back,
    a 10x long liquidated after the mark falls 9.8 %, its liquidation IOC filled at the next boundary),
    halts with a crossed pair pending and switches back (the resting orders rejoin the book; the crossing
    sell and the IOC are canceled) and trades continuously again: ``bastion verify`` (leaf comparison on
    the reference engine with the invariants after every command, shadow book, collar) exits 0 and counts
    every fill."""
    from bastion.core.commands import (AmendOrder, CreateAccount, Deposit, Heartbeat, PlaceOrder, SetMarketState,
                                       SetMarkPrice, SetMatchingMode, TimeInForce)
    from bastion.core.events import AuctionCleared, MatchingModeSet
    from bastion.core.integrity.codes import MatchingMode
    from bastion.core.integrity.states import MarketState
    from bastion.core.risk_messages import PositionLiquidated
    from bastion.journal.file import FsyncPolicy
    from bastion.venue import Venue
    from tests.integrity._engine_helpers import GUARDIAN, P, make_config

    tau = 10**9
    seen: list[list[object]] = []
    with Venue.open(make_config(), tmp_path, fsync_policy=FsyncPolicy.NONE, checkpoint_every_events=16) as venue:
        def go(command: object, at_s: float) -> list[object]:
            events = venue.submit(command, int(at_s * 10**9))[1]  # type: ignore[arg-type]
            seen.append(events)
            return events

        for account, atoms in ((1, 10**13), (2, 10**13), (3, 10**13), (4, 6 * 10**9)):
            go(CreateAccount(account, account), 0)
            go(Deposit(account, atoms), 0)
        go(PlaceOrder(1, 1, 1, SELL, P + 10, 50), 1)
        go(PlaceOrder(1, 1, 2, SELL, P + 20, 50), 1)
        go(PlaceOrder(2, 1, 1, BUY, P - 10, 50), 1)
        go(PlaceOrder(3, 1, 1, BUY, P + 10, 5), 1)  # continuous fill
        go(SetMarketState(GUARDIAN, 1, MarketState.HALTED), 2)
        assert [type(e) for e in go(SetMatchingMode(GUARDIAN, 1, MatchingMode.BATCH, tau), 2)] == [MatchingModeSet]
        go(SetMarketState(GUARDIAN, 1, MarketState.ACTIVE), 2)
        go(PlaceOrder(3, 1, 2, BUY, P + 20, 60, time_in_force=TimeInForce.IOC), 2.5)
        go(PlaceOrder(4, 1, 1, BUY, P + 20, 1000), 2.6)  # 10x long
        go(PlaceOrder(2, 1, 2, SELL, P + 15, 1000), 2.7)
        cleared = go(Heartbeat(), 3)  # boundary 3 s: one clearing, four pairs at one price
        go(AmendOrder(2, 3, P - 5, 50), 3.2)  # order 3 (bid P-10) re-enters at P-5, at the back
        go(PlaceOrder(1, 1, 3, SELL, P - 5, 20), 3.3)
        go(Heartbeat(), 4)
        go(PlaceOrder(2, 1, 3, BUY, 541_000, 2000), 4.4)
        go(SetMarkPrice(1, 541_000), 4.5)  # account 4 below maintenance: its liquidation IOC joins the batch
        liquidated = go(Heartbeat(), 5)
        go(PlaceOrder(3, 1, 4, SELL, 540_000, 10), 8.6)  # crosses the bid at 541,000 ...
        go(PlaceOrder(1, 1, 4, BUY, P + 30, 5, time_in_force=TimeInForce.IOC), 8.7)
        go(SetMarketState(GUARDIAN, 1, MarketState.HALTED), 8.8)  # ... and is pending when trading stops
        back = go(SetMatchingMode(GUARDIAN, 1, MatchingMode.CONTINUOUS, 0), 9)
        go(SetMarketState(GUARDIAN, 1, MarketState.AUCTION), 9)  # HALTED reopens through an auction
        go(SetMarketState(GUARDIAN, 1, MarketState.ACTIVE), 9.5)
        after = go(PlaceOrder(3, 1, 5, SELL, 538_000, 5, time_in_force=TimeInForce.IOC), 10)  # continuous again
        venue.commit()
    assert [type(e) for e in cleared] == [AuctionCleared] + [TradeExecuted] * 4
    assert {e.taker_side for e in cleared[1:]} == {0} and {e.price_ticks for e in cleared[1:]} == {P + 20}
    assert any(type(e) is PositionLiquidated for e in liquidated)
    assert [type(e) for e in back] == [MatchingModeSet, OrderCanceled, OrderCanceled]
    assert [(type(e), getattr(e, "taker_side", None)) for e in after] == [(OrderAccepted, None), (TradeExecuted, SELL)]
    fills = [e for events in seen for e in events if type(e) is TradeExecuted]
    report = verify_directory(tmp_path, invariants_every=1)
    assert report.status == EXIT_OK, report.finding
    assert report.fills == len(fills) == 9 and report.checkpoints >= 1
