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


def test_auction_fills_are_not_held_to_time_priority() -> None:
    """taker_side 0 (a call auction or batch): allocation is the auction's, only the limits bind."""
    events = (_accept(1, 1, SELL, 100, 2), _accept(2, 2, SELL, 99, 2), _accept(3, 3, BUY, 101, 2))
    assert _run(*events, _trade(100, 2, 0, 1, 3, 1, 3)) is None
    assert "outside the limits" in (_run(*events, _trade(102, 2, 0, 1, 3, 1, 3)) or "")


# ---------------------------------------------------------------------------------------------
# Bands (fabricated streams, then planted bugs in code both engines share)
# ---------------------------------------------------------------------------------------------

P = 600_000  # default.toml BTC reference price, ticks


def _band_watch(**integrity: object) -> object:
    from bastion.audit.fills import BandWatch
    from tests.integrity._engine_helpers import make_config

    watch = BandWatch.from_config(make_config(integrity))
    assert watch is not None
    return watch


def _band_run(watch: object, *events: object) -> str | None:
    for ev in events:
        if ev == "end":
            watch.end_command()  # type: ignore[attr-defined]
            continue
        why = watch.observe(ev)  # type: ignore[attr-defined]
        if why is not None:
            return why
    return None


def test_band_around_the_mark_edges_inclusive() -> None:
    """band_ppm 10,000 around the mark: w = floor(600,000 * 1 %) = 6,000 ticks -> [594,000, 606,000]
    (bands.py: rounded down, edges inclusive); a new mark moves it."""
    from bastion.core.events import MarkPriceSet

    assert _band_run(_band_watch(band_ppm=10_000), _trade(606_000, 1, BUY, 1, 2), _trade(594_000, 1, SELL, 3, 4)) is None
    why = _band_run(_band_watch(band_ppm=10_000), _trade(606_001, 1, BUY, 1, 2))
    assert why is not None and "outside its band [594000, 606000]" in why
    watch = _band_watch(band_ppm=10_000)
    assert _band_run(watch, MarkPriceSet(1, 612_345), _trade(618_468, 1, BUY, 1, 2)) is None  # w = 6,123
    assert "outside" in (_band_run(watch, _trade(618_469, 1, BUY, 1, 2)) or "")
    assert _band_run(_band_watch(band_ppm=10_000), MarkPriceSet(2, 1), _trade(600_000, 1, BUY, 1, 2)) is None


def test_last_trade_band_moves_after_each_match_and_luld_smooths_it() -> None:
    """Reference ``last_trade``: all fills of one taker are held to the band in force when it began; the
    next taker's band is centred on the previous match's last price. With LULD on, a move smaller than
    luld_reference_update_ppm (1 %) leaves the reference where it was (luld.py)."""
    last = {"band_ppm": 10_000, "band_reference": "last_trade"}
    # taker 2: 604,000 then 606,000 inside [594,000, 606,000]; taker 4 then sees 606,000 +- 6,060.
    watch = _band_watch(**last)
    assert _band_run(watch, _trade(604_000, 1, BUY, 1, 2), _trade(606_000, 1, BUY, 3, 2),
                     _trade(612_060, 1, BUY, 5, 4), "end") is None
    # reference 612,060 now: w = floor(6,120.6) = 6,120, band [605,940, 618,180].
    twin = _band_watch(**last)
    assert _band_run(twin, _trade(604_000, 1, BUY, 1, 2), _trade(606_000, 1, BUY, 3, 2),
                     _trade(612_060, 1, BUY, 5, 4), "end", _trade(618_180, 1, BUY, 7, 8)) is None
    why = _band_run(watch, _trade(618_181, 1, BUY, 9, 10))
    assert why is not None and "[605940, 618180] (reference 612060" in why
    watch = _band_watch(**last)
    assert _band_run(watch, _trade(612_060, 1, BUY, 5, 4), "end") is not None  # 612,060 > 606,000 at the start
    # Within one match the band does not follow the fills: 610,000 after 604,000 is still outside.
    why = _band_run(_band_watch(**last), _trade(604_000, 1, BUY, 1, 2), _trade(610_000, 1, BUY, 3, 2))
    assert why is not None and "[594000, 606000]" in why
    assert _band_run(_band_watch(**last), _trade(604_000, 1, BUY, 1, 2), "end", _trade(610_000, 1, BUY, 3, 4)) is None
    luld = {**last, "luld_halt_ns": 1_000_000, "luld_reference_update_ppm": 10_000}
    assert _band_run(_band_watch(**last), _trade(605_000, 1, BUY, 1, 2), "end", _trade(606_001, 1, BUY, 3, 4)) is None
    why = _band_run(_band_watch(**luld), _trade(605_000, 1, BUY, 1, 2), "end", _trade(606_001, 1, BUY, 3, 4))
    assert why is not None and "reference 600000" in why


def test_auction_clearing_outside_the_band_is_named() -> None:
    from bastion.core.events import AuctionCleared

    watch = _band_watch(band_ppm=10_000)
    assert _band_run(watch, AuctionCleared(1, 0, 5, 605_000, 3, 0), _trade(605_000, 3, 0, 1, 2)) is None
    why = _band_run(_band_watch(band_ppm=10_000), AuctionCleared(1, 0, 5, 607_000, 3, 0))
    assert why is not None and why.startswith("auction clearing at 607000")


def _band_venue(directory: Path) -> int:
    """A venue with a 1 % band around the mark: a passive ask at 610,000 (above the band: allowed, it is
    not its aggressive side), then a buy limit at 610,000, which the band must refuse. Returns the seq of
    the buy."""
    from bastion.core.commands import CreateAccount, Deposit, PlaceOrder, SetMarkPrice
    from bastion.journal.file import FsyncPolicy
    from bastion.venue import Venue
    from tests.integrity._engine_helpers import make_config

    with Venue.open(make_config({"band_ppm": 10_000}), directory, fsync_policy=FsyncPolicy.NONE) as venue:
        for account in (1, 2):
            venue.submit(CreateAccount(account, account), 0)
            venue.submit(Deposit(account, 10**13), 0)
        venue.submit(SetMarkPrice(1, P), 0)
        venue.submit(PlaceOrder(1, 1, 1, SELL, 610_000, 5), 0)
        item, _ = venue.submit(PlaceOrder(2, 1, 1, BUY, 610_000, 5), 0)
        venue.submit(PlaceOrder(2, 1, 2, BUY, 599_000, 5), 0)
        return item.seq


def test_an_honest_band_venue_verifies(tmp_path: Path) -> None:
    seq = _band_venue(tmp_path / "venue")
    report = verify_directory(tmp_path / "venue")
    assert report.status == EXIT_OK, report.finding
    assert report.commands > seq and report.fills == 0  # the buy beyond the band was refused


def test_a_band_bug_in_shared_code_is_caught_at_the_fill(tmp_path: Path, monkeypatch) -> None:
    """Planted bug in the integrity layer both engines use (``InstrumentIntegrity.rebuild_band`` builds a
    band 4x too wide): the venue and the re-executing reference engine agree leaf for leaf, so only the
    verifier's own band, rebuilt from the config and the MarkPriceSet events, catches the fill at 610,000
    outside [594,000, 606,000]; the finding names the command's seq."""
    from bastion.core.integrity import market
    from bastion.core.integrity.bands import band_around

    def too_wide(self: market.InstrumentIntegrity) -> None:
        self.band = None if self.band_spec is None else band_around(self.reference, 4 * self.band_spec.band_ppm,
                                                                       self.price_ticks_max)

    monkeypatch.setattr(market.InstrumentIntegrity, "rebuild_band", too_wide)
    seq = _band_venue(tmp_path / "venue")
    report = verify_directory(tmp_path / "venue")
    assert report.status == EXIT_DIVERGENCE and report.finding is not None, report
    assert report.finding.file == "events.bin" and report.finding.seq == seq
    assert "fill at 610000 ticks on instrument 1 is outside its band [594000, 606000]" in report.finding.reason
    assert report.commands == seq - 1


def _reference_venue_engine(book: type) -> object:
    """``bastion.venue.Engine`` replaced by one that runs on ``book`` (venue.py is plain Python)."""
    def factory(config: object, *args: object, **kwargs: object) -> Engine:
        return Engine(config, book, check_invariants=bool(kwargs.get("check_invariants", False)))  # type: ignore[arg-type]

    factory.restore = lambda config, data, **kw: Engine.restore(config, data, book)  # type: ignore[attr-defined]
    return factory


def test_a_priority_bug_in_both_books_is_caught_by_the_shadow_book(config, tmp_path: Path, monkeypatch) -> None:
    """Planted bug in the reference book itself (last-in-first-out within a price level), and the venue run
    on that same book: every leaf re-derives identically, so the leaf comparison sees nothing; the shadow
    book kept from the events names the first fill that skipped an earlier order at the same price."""
    from bastion import venue as venue_module
    from bastion.core.book import reference
    from bastion.core.book.reference import ReferenceBook

    original = reference.ReferenceBook._sorted_opposite

    def lifo(self, taker):  # type: ignore[no-untyped-def]
        return sorted(original(self, taker), key=lambda o: (o.price_ticks * taker.side, -o.priority))

    directory = tmp_path / "venue"
    monkeypatch.setattr(venue_module, "Engine", _reference_venue_engine(ReferenceBook))
    mix_venue(config, directory, seed=2, n=400, accounts=50, resting=60)
    assert verify_directory(directory).status == EXIT_OK  # honest book: clean
    directory2 = tmp_path / "lifo"
    monkeypatch.setattr(reference.ReferenceBook, "_sorted_opposite", lifo)
    mix_venue(config, directory2, seed=2, n=400, accounts=50, resting=60)
    report = verify_directory(directory2)
    assert report.status == EXIT_DIVERGENCE and report.finding is not None
    assert report.finding.file == "events.bin" and report.finding.seq is not None
    assert "price-time priority" in report.finding.reason and "(the same price, earlier)" in report.finding.reason


def test_orders_in_a_call_auction_rest_in_its_book_until_the_uncross() -> None:
    """docs/integrity-integration.md §6.1: in AUCTION new orders go to the auction book; the engine's own
    liquidation IOC (client order id 0) still meets the continuous book, where order 2 (parked) is not;
    at the uncross order 2 rests behind the book and is then the best ask."""
    from bastion.core.events import MarketStateChanged

    auction = (_accept(1, 1, SELL, 100, 2), MarketStateChanged(1, 0, 4, 1), _accept(2, 2, SELL, 99, 2))
    liquidation = OrderAccepted(3, 3, 1, 0, BUY, 101, 1, 1)
    assert _run(*auction, liquidation, _trade(100, 1, BUY, 1, 3, 1, 3)) is None
    assert "auction book" in (_run(*auction, liquidation, _trade(99, 1, BUY, 2, 3, 2, 3)) or "")
    reopened = (*auction, MarketStateChanged(1, 4, 0, 5), _accept(4, 4, BUY, 101, 1))
    assert _run(*reopened, _trade(99, 1, BUY, 2, 4, 2, 4)) is None
    assert "a better price" in (_run(*reopened, _trade(100, 1, BUY, 1, 4, 1, 4)) or "")
    # A velocity pause parks the taker that triggered it (GTC): it is not resting in the continuous book.
    paused = (_accept(1, 1, SELL, 100, 2), _accept(5, 5, BUY, 99, 2), MarketStateChanged(1, 0, 4, 2),
              OrderAccepted(6, 6, 1, 0, SELL, 98, 1, 1))
    assert "auction book" in (_run(*paused, _trade(99, 1, SELL, 5, 6, 5, 6)) or "")
