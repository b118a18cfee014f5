"""Sealed-bid commit-reveal through ``Engine.apply`` and the venue's output log (issue 4 item 7; §7).

Default venue (P = 600,000 ticks, k = 100, auction fee 500 ppm on both legs, collar mark +/- 5 %,
tie-break reference the mark). Round 0 is ``[t0, t0 + TAU)``; its reveal window ``[t0 + TAU,
t0 + TAU + REVEAL)`` (start inclusive, end exclusive); it closes at the first command at or after
``t0 + TAU + REVEAL``, before that command is handled.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec

from bastion.audit.outlog import OUTLOG_HEADER_SIZE, OutlogScanner, decode_leaf
from bastion.audit.verify import EXIT_OK, verify_directory
from bastion.core.commands import (
    CommitOrder,
    CreateAccount,
    Deposit,
    Heartbeat,
    PlaceOrder,
    RevealOrder,
    SetKillSwitch,
    SetMarketState,
    SetMatchingMode,
    Withdraw,
)
from bastion.core.engine import Engine
from bastion.core.events import (
    AccountCreated,
    AuctionCleared,
    BondForfeited,
    BondReturned,
    CommandRejected,
    Deposited,
    MarketStateChanged,
    MatchingModeSet,
    OrderAccepted,
    OrderCanceled,
    OrderCommitted,
    RevealReceived,
    TradeExecuted,
)
from bastion.core.integrity.codes import BondForfeitReason as F
from bastion.core.integrity.codes import MatchingMode
from bastion.core.integrity.commit_reveal import SealedOrder, commitment_of
from bastion.core.integrity.states import MarketState as S
from bastion.core.rejects import CancelReason
from bastion.core.rejects import RejectCode as R
from bastion.journal.file import FsyncPolicy
from bastion.venue import EVENTS_NAME, JOURNAL_NAME, Venue, replay_journal
from tests.conftest import Driver
from tests.integrity._engine_helpers import GUARDIAN, P, assert_snapshot_roundtrip, make_config, make_engine, of, rejected

TAU = 1_000_000
REVEAL = 400_000
BOND = 1_000_000  # 1 USDC
DEPOSIT = 10**12
K = 100


def _fee(price: int, qty: int) -> int:
    return -(-price * qty * K * 500 // 1_000_000)


def _salt(tag: str) -> bytes:
    return hashlib.sha256(tag.encode()).digest()


def _to_sealed(drive: Driver) -> int:
    drive(SetMarketState(GUARDIAN, 1, S.CANCEL_ONLY))
    t0 = drive.now_ns + 1_000
    assert drive(SetMatchingMode(GUARDIAN, 1, MatchingMode.SEALED_BATCH, TAU, REVEAL), at_ns=t0) == [
        MatchingModeSet(1, 2, TAU, REVEAL)]
    drive(SetMarketState(GUARDIAN, 1, S.ACTIVE))
    return t0


def _commit(drive: Driver, order: SealedOrder, salt: bytes, commit_id: int = 1, bond: int = BOND) -> list:
    return drive(CommitOrder(order.account_id, order.instrument_id, commit_id, commitment_of(order, salt), bond))


def _reveal(order: SealedOrder, salt: bytes, commit_id: int = 1, **changes: int) -> RevealOrder:
    fields = {"client_order_id": order.client_order_id, "side": order.side, "price_ticks": order.price_ticks,
              "qty_lots": order.qty_lots, "time_in_force": order.time_in_force, **changes}
    return RevealOrder(order.account_id, order.instrument_id, commit_id, fields["client_order_id"], fields["side"],
                       fields["price_ticks"], fields["qty_lots"], fields["time_in_force"], salt)


def test_round_with_a_mismatch_a_no_show_and_exact_balances() -> None:
    """Four commitments: 1 buys 7 @ P+3, 2 sells 5 @ P-3 (both reveal), 3 reveals a different size
    (mismatch: refused at once, bond to the insurance fund), 4 never reveals (forfeits at close; its late
    reveal is refused). At close the revealed orders are admitted in commit order and clear at P-3:
    5 lots; both candidates clear 5 with |I| 2 and lie 3 ticks from the mark, the lower price wins."""
    engine, drive = make_engine(accounts=4)
    t0 = _to_sealed(drive)
    close = t0 + TAU + REVEAL
    orders = [SealedOrder(1, 1, 11, 1, P + 3, 7), SealedOrder(2, 1, 12, -1, P - 3, 5),
              SealedOrder(3, 1, 13, -1, P - 3, 5), SealedOrder(4, 1, 14, 1, P + 9, 1)]
    salts = [_salt(f"s{i}") for i in range(4)]
    for order, salt in zip(orders, salts):
        ev = _commit(drive, order, salt)
        assert ev == [OrderCommitted(order.account_id, 1, 1, commitment_of(order, salt), BOND, 0, t0 + TAU, close)]
    assert engine.bonds_escrowed_atoms == 4 * BOND
    assert [engine.accounts[a].balance_atoms for a in (1, 2, 3, 4)] == [DEPOSIT - BOND] * 4
    before = engine.state_hash()
    assert rejected(drive(PlaceOrder(1, 1, 99, 1, P, 1))) == R.sealed_batch_requires_commit
    assert rejected(drive(_reveal(orders[0], salts[0]), at_ns=t0 + TAU - 1)) == R.reveal_window_not_open
    assert engine.state_hash() == before
    # Reveal window.
    assert drive(_reveal(orders[0], salts[0]), at_ns=t0 + TAU) == [RevealReceived(1, 1, 1)]
    assert rejected(drive(_reveal(orders[0], salts[0]))) == R.commit_already_revealed
    assert drive(_reveal(orders[2], salts[2], qty_lots=6)) == [
        BondForfeited(3, 1, 1, BOND, F.reveal_mismatch, BOND)]
    assert rejected(drive(_reveal(orders[2], salts[2]))) == R.reveal_window_closed  # the commitment is gone
    assert engine.insurance_fund_atoms == BOND and engine.bonds_escrowed_atoms == 3 * BOND
    assert drive(_reveal(orders[1], salts[1]), at_ns=close - 1) == [RevealReceived(2, 1, 1)]
    assert_snapshot_roundtrip(engine)  # mid-round: the revealed orders are private state in the snapshot
    ev = drive(_reveal(orders[3], salts[3]), at_ns=close)
    kinds = [type(e).__name__ for e in ev]
    assert kinds == ["BondForfeited", "OrderAccepted", "BondReturned", "OrderAccepted", "BondReturned",
                     "AuctionCleared", "TradeExecuted", "CommandRejected"]
    assert ev[0] == BondForfeited(4, 1, 1, BOND, F.no_reveal, 2 * BOND)
    assert [(e.account_id, e.client_order_id, e.side, e.price_ticks, e.qty_lots) for e in of(ev, OrderAccepted)] == [
        (1, 11, 1, P + 3, 7), (2, 12, -1, P - 3, 5)]
    assert of(ev, BondReturned) == [BondReturned(1, 1, 1, BOND), BondReturned(2, 1, 1, BOND)]
    assert of(ev, AuctionCleared) == [AuctionCleared(1, 0, close, P - 3, 5, 2)]
    trade = of(ev, TradeExecuted)[0]
    assert (trade.maker_account_id, trade.taker_account_id, trade.qty_lots, trade.price_ticks) == (2, 1, 5, P - 3)
    assert ev[-1] == CommandRejected("reveal_order", 4, 0, R.reveal_window_closed)
    assert engine.accounts[1].balance_atoms == DEPOSIT - _fee(P - 3, 5)
    assert engine.accounts[2].balance_atoms == DEPOSIT - _fee(P - 3, 5)
    assert engine.accounts[3].balance_atoms == engine.accounts[4].balance_atoms == DEPOSIT - BOND
    assert engine.insurance_fund_atoms == 2 * BOND and engine.bonds_escrowed_atoms == 0
    # Account 1's remainder (2 @ P+3) rests in the batch book for the next round.
    assert [(b.order_id, b.qty_lots) for b in engine.integ[1].batch_book.orders.values()] == [(1, 2)]
    assert_snapshot_roundtrip(engine)


def test_admission_failures_forfeit_and_market_orders_clear_in_the_collar() -> None:
    """A revealed order that fails PlaceOrder's validation at close (qty 0) forfeits
    (revealed_order_rejected); a revealed market buy is margined at the collar's high edge and fills at
    the clearing price; the bond counts as collateral of its own order at admission."""
    engine, drive = make_engine(accounts=3)
    t0 = _to_sealed(drive)
    bad = SealedOrder(1, 1, 21, 1, P, 0)
    market = SealedOrder(2, 1, 22, 1, 0, 4, 1)
    ask = SealedOrder(3, 1, 23, -1, P + 2, 3)
    for order in (bad, market, ask):
        _commit(drive, order, _salt(str(order.client_order_id)))
    for order in (bad, market, ask):
        assert of(drive(_reveal(order, _salt(str(order.client_order_id))), at_ns=t0 + TAU), RevealReceived)
    ev = drive(Heartbeat(), at_ns=t0 + TAU + REVEAL)
    assert ev[0] == BondForfeited(1, 1, 1, BOND, F.revealed_order_rejected, BOND)
    accepted = of(ev, OrderAccepted)
    assert [(e.account_id, e.price_ticks, e.qty_lots, e.time_in_force) for e in accepted] == [
        (2, 630_000, 4, 1), (3, P + 2, 3, 0)]
    # D = 4 (market) everywhere; S(P+2) = 3: V 3 at P+2 and at the collar high; |I| 1 both; P+2 is nearer.
    assert of(ev, AuctionCleared) == [AuctionCleared(1, 0, t0 + TAU + REVEAL, P + 2, 3, 1)]
    assert [(c.account_id, c.reason, c.qty_lots) for c in of(ev, OrderCanceled)] == [
        (2, CancelReason.auction_remainder, 1)]
    assert engine.accounts[1].balance_atoms == DEPOSIT - BOND and engine.insurance_fund_atoms == BOND


def test_a_full_batch_book_returns_the_bond_instead_of_forfeiting_it() -> None:
    """``auction_orders_max = 1``: a GTC remainder occupies the batch book, so the next round's revealed
    order is refused with 530 at admission: not the trader's doing, so the bond comes back."""
    engine, drive = make_engine({"auction_orders_max": 1}, accounts=2)
    t0 = _to_sealed(drive)
    rest = SealedOrder(1, 1, 1, 1, P - 10, 2)
    _commit(drive, rest, _salt("rest"))
    drive(_reveal(rest, _salt("rest")), at_ns=t0 + TAU)
    assert of(drive(Heartbeat(), at_ns=t0 + TAU + REVEAL), OrderAccepted)
    late = SealedOrder(2, 1, 2, -1, P + 10, 1)
    _commit(drive, late, _salt("late"))
    round_index = (drive.now_ns - t0) // TAU
    drive(_reveal(late, _salt("late")), at_ns=t0 + (round_index + 1) * TAU)
    ev = drive(Heartbeat(), at_ns=t0 + (round_index + 1) * TAU + REVEAL)
    assert ev == [BondReturned(2, 1, 1, BOND)]
    assert engine.accounts[2].balance_atoms == DEPOSIT and engine.insurance_fund_atoms == 0


def test_bond_as_margin_and_withdrawal_style_check() -> None:
    """The bond must be free collateral (checked like a withdrawal); at admission it is back in the
    balance, so an account may commit its last free atoms and still have its order admitted."""
    engine = Engine(make_config(), check_invariants=True)
    drive = Driver(engine)
    drive(CreateAccount(1, 1))
    drive(CreateAccount(2, 2))
    drive(Deposit(1, 4_900_000))  # 4.9 USDC; 9 lots at P need 9 * 600,000 * 100 * 0.8 % = 4.32 USDC of margin
    drive(Deposit(2, DEPOSIT))
    t0 = _to_sealed(drive)
    order = SealedOrder(1, 1, 1, 1, P, 9)
    assert rejected(_commit(drive, order, _salt("a"), bond=4_900_001)) == R.balance_insufficient
    assert rejected(drive(CommitOrder(1, 1, 1, b"short", BOND))) == R.commitment_malformed
    assert rejected(drive(CommitOrder(1, 1, 1, "x" * 32, BOND))) == R.field_type_invalid  # type: ignore[arg-type]
    assert rejected(drive(CommitOrder(1, 2, 1, commitment_of(order, _salt("a")), BOND))) == R.market_not_sealed_batch
    assert rejected(_commit(drive, order, _salt("a"), bond=0)) == R.amount_atoms_not_positive
    assert of(_commit(drive, order, _salt("a"), bond=4_000_000), OrderCommitted)
    assert rejected(_commit(drive, order, _salt("a"), bond=1)) == R.commit_id_duplicate
    assert rejected(drive(Withdraw(1, 900_001))) == R.balance_insufficient  # the bond is not in the balance
    drive(_reveal(order, _salt("a")), at_ns=t0 + TAU)
    ev = drive(Heartbeat(), at_ns=t0 + TAU + REVEAL)
    assert [type(e) for e in ev] == [OrderAccepted, BondReturned]  # admitted with the bond as its margin
    assert engine.accounts[1].balance_atoms == 4_900_000
    # Control: the same order placed with only the 0.9 USDC left after a 4.0 USDC escrow is refused.
    check = Engine(make_config())
    again = Driver(check)
    again(CreateAccount(1, 1))
    again(Deposit(1, 900_000))
    assert rejected(again(PlaceOrder(1, 1, 1, 1, P, 9))) == R.margin_initial_insufficient


def test_kill_switch_at_close_returns_bonds_and_settling_returns_live_ones() -> None:
    engine, drive = make_engine(accounts=2)
    t0 = _to_sealed(drive)
    a, b = SealedOrder(1, 1, 1, 1, P, 1), SealedOrder(2, 1, 2, -1, P, 1)
    _commit(drive, a, _salt("a"))
    _commit(drive, b, _salt("b"))
    drive(SetKillSwitch(GUARDIAN, True))
    assert rejected(_commit(drive, a, _salt("a"), commit_id=2)) == R.venue_kill_switch_engaged
    drive(_reveal(a, _salt("a")), at_ns=t0 + TAU)  # REVEAL is allowed under the kill switch
    ev = drive(Heartbeat(), at_ns=t0 + TAU + REVEAL)
    assert ev == [BondForfeited(2, 1, 1, BOND, F.no_reveal, BOND), BondReturned(1, 1, 1, BOND)]
    drive(SetKillSwitch(GUARDIAN, False))
    _commit(drive, a, _salt("a"), commit_id=3)
    assert rejected(drive(SetMatchingMode(GUARDIAN, 1, 1, TAU))) == R.matching_mode_change_invalid  # ACTIVE
    drive(SetMarketState(GUARDIAN, 1, S.HALTED))
    assert rejected(drive(SetMatchingMode(GUARDIAN, 1, 1, TAU))) == R.matching_mode_change_invalid  # live commit
    ev = drive(SetMarketState(GUARDIAN, 1, S.SETTLING))
    assert of(ev, BondReturned) == [BondReturned(1, 1, 3, BOND)]
    assert engine.bonds_escrowed_atoms == 0 and engine.accounts[1].balance_atoms == DEPOSIT
    assert_snapshot_roundtrip(engine)


# ---- invisibility in the public output, replay, snapshot and the verifier

PRICE, QTY, CLIENT = P + 1_234, 777, 987_654_321
SECRET = SealedOrder(1, 1, CLIENT, 1, PRICE, QTY)


def _needles() -> dict[str, bytes]:
    """The msgpack encodings of the secret's distinctive integers, as they would appear in an event."""
    return {name: msgspec.msgpack.encode(value) for name, value in
            (("price", PRICE), ("qty", QTY), ("client_order_id", CLIENT))}


def _session(directory: Path) -> tuple[Venue, int, int]:
    """A venue session up to (not including) the close of the secret's round; returns (venue, t0, close)."""
    venue = Venue.open(make_config(), directory, fsync_policy=FsyncPolicy.NONE, clock_ns=lambda: 0)
    t = 1_000_000_000
    for a in (1, 2):
        venue.submit(CreateAccount(a, a), t)
        venue.submit(Deposit(a, DEPOSIT), t)
    venue.submit(SetMarketState(GUARDIAN, 1, S.CANCEL_ONLY), t)
    t0 = t + 1_000
    venue.submit(SetMatchingMode(GUARDIAN, 1, 2, TAU, REVEAL), t0)
    venue.submit(SetMarketState(GUARDIAN, 1, S.ACTIVE), t0)
    counter = SealedOrder(2, 1, 5, -1, P, QTY + 1)
    venue.submit(CommitOrder(1, 1, 1, commitment_of(SECRET, _salt("secret")), BOND), t0 + 10)
    venue.submit(CommitOrder(2, 1, 1, commitment_of(counter, _salt("counter")), BOND), t0 + 20)
    early = venue.submit(_reveal(SECRET, _salt("secret")), t0 + 30)[1]
    assert early == [CommandRejected("reveal_order", 1, 0, R.reveal_window_not_open)]  # no client id in it
    venue.submit(_reveal(SECRET, _salt("secret")), t0 + TAU)
    again = venue.submit(_reveal(SECRET, _salt("secret")), t0 + TAU + 1)[1]
    assert again == [CommandRejected("reveal_order", 1, 0, R.commit_already_revealed)]
    venue.submit(_reveal(counter, _salt("counter")), t0 + TAU + 2)
    return venue, t0, t0 + TAU + REVEAL


def _published(directory: Path) -> list[bytes]:
    image = (directory / EVENTS_NAME).read_bytes()
    return [record.leaf for record in OutlogScanner(image, OUTLOG_HEADER_SIZE)]


def test_sealed_orders_are_invisible_in_the_output_log_until_the_window_closes(tmp_path: Path) -> None:
    """Scan every leaf of events.bin (the Merkle output log) for the secret order's price, size and client
    order id: absent until its round closes, present right after (the positive control), and the only
    events naming its account before close carry no order content."""
    directory = tmp_path / "venue"
    venue, t0, close = _session(directory)
    venue.commit()
    leaves = _published(directory)
    for leaf in leaves:
        for name, needle in _needles().items():
            assert needle not in leaf, f"{name} leaked in {decode_leaf(leaf).event!r}"
    allowed = (AccountCreated, Deposited, MarketStateChanged, MatchingModeSet, OrderCommitted, RevealReceived,
               CommandRejected)
    assert all(isinstance(decode_leaf(leaf).event, allowed) for leaf in leaves)
    before = len(leaves)
    venue.submit(Heartbeat(), close)
    venue.commit()
    after = [decode_leaf(leaf).event for leaf in _published(directory)[before:]]
    accepted = [e for e in after if type(e) is OrderAccepted and e.account_id == 1]
    assert [(e.client_order_id, e.price_ticks, e.qty_lots) for e in accepted] == [(CLIENT, PRICE, QTY)]
    assert any(type(e) is TradeExecuted and e.qty_lots == QTY and e.price_ticks == P for e in after)
    venue.close()


def test_replay_snapshot_and_verifier_reproduce_a_sealed_session(tmp_path: Path) -> None:
    """Journal replay gives the live engine's state hash; a snapshot taken mid-round (revealed orders
    held privately) restores and continues identically; the verifier (reference engine, naive clearing)
    re-derives every leaf."""
    directory = tmp_path / "venue"
    venue, t0, close = _session(directory)
    config = venue.config
    middle = Engine.restore(config, venue.engine.snapshot(), check_invariants=True)
    assert middle.state_hash() == venue.engine.state_hash()
    tail = [Heartbeat(), CommitOrder(2, 1, 2, commitment_of(SealedOrder(2, 1, 6, 1, P - 1, 3), _salt("x")), BOND),
            Heartbeat()]
    for i, cmd in enumerate(tail):
        item, events = venue.submit(cmd, close + i * TAU)
        assert middle.apply(item) == events
    assert middle.state_hash() == venue.engine.state_hash()
    venue.close()
    assert replay_journal(config, directory / JOURNAL_NAME, check_invariants=True).state_hash() == middle.state_hash()
    report = verify_directory(directory, invariants_every=1)
    assert report.status == EXIT_OK, report
