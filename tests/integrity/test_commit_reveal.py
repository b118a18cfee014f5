"""Sealed-bid commit–reveal: windows at their exact edges, forfeitures (mismatch, no reveal, late),
nothing about an order visible before its reveal window closes, griefing resistance, determinism."""

from __future__ import annotations

import hashlib

import msgspec

from bastion.core.integrity.codes import BondForfeitReason, IntegrityRejectCode
from bastion.core.integrity.commit_reveal import (
    BondForfeit,
    CommitAccepted,
    RevealAccepted,
    SealedBidBook,
    SealedOrder,
    SealedSpec,
    canonical_order_bytes,
    commitment_of,
)

C = IntegrityRejectCode
SPEC = SealedSpec(interval_ns=1_000, reveal_ns=400, bond_atoms_min=50)
IID = 7
PRICE = 7_654_321  # distinctive values, to search for in public output
QTY = 4_321


def salt(n: int) -> bytes:
    return hashlib.sha256(b"salt" + bytes([n])).digest()


def order(account: int, client_id: int, price: int = PRICE, qty: int = 3, side: int = 1) -> SealedOrder:
    return SealedOrder(account, IID, client_id, side, price, qty)


def test_commitment_is_sha256_of_canonical_bytes_and_salt() -> None:
    o = order(1, 1)
    data = canonical_order_bytes(o)
    assert data.startswith(b"bastion/sealed-order/v1\x00") and len(data) == 24 + 7 * 8
    assert commitment_of(o, salt(1)) == hashlib.sha256(data + salt(1)).digest()
    assert commitment_of(o, salt(1)) != commitment_of(order(1, 1, price=PRICE + 1), salt(1))


def test_windows_and_on_time_reveal() -> None:
    book = SealedBidBook(SPEC, IID)
    ack = book.commit(1, 11, commitment_of(order(1, 1), salt(1)), 50, now_ns=999)  # last ns of round 0
    assert isinstance(ack, CommitAccepted) and ack.round_index == 0
    assert (ack.reveal_open_ns, ack.reveal_close_ns) == (1_000, 1_400)
    assert book.reveal(1, 11, order(1, 1), salt(1), now_ns=999) == C.reveal_window_not_open
    assert book.close_due(1_399) == []
    ok = book.reveal(1, 11, order(1, 1), salt(1), now_ns=1_399)  # close - 1: on time
    assert ok == RevealAccepted(1, 11, 0)
    assert book.reveal(1, 11, order(1, 1), salt(1), now_ns=1_399) == C.commit_already_revealed
    (closed,) = book.close_due(1_400)
    assert closed.round_index == 0 and closed.close_ns == 1_400 and closed.forfeited == ()
    assert [r.order for r in closed.revealed] == [order(1, 1)]
    assert book.bonds_escrowed_atoms() == 0


def test_late_and_missing_reveals_forfeit_at_close() -> None:
    book = SealedBidBook(SPEC, IID)
    book.commit(1, 11, commitment_of(order(1, 1), salt(1)), 80, now_ns=100)
    assert book.bonds_escrowed_atoms() == 80
    (closed,) = book.close_due(1_400)  # window [1000, 1400): nothing came
    assert closed.revealed == ()
    assert closed.forfeited == (BondForfeit(1, 11, 0, 80, BondForfeitReason.no_reveal),)
    assert book.reveal(1, 11, order(1, 1), salt(1), now_ns=1_400) == C.reveal_window_closed  # late: refused
    assert book.bonds_escrowed_atoms() == 0


def test_mismatched_reveal_is_refused_and_forfeits_immediately() -> None:
    book = SealedBidBook(SPEC, IID)
    book.commit(1, 11, commitment_of(order(1, 1), salt(1)), 60, now_ns=100)
    lie = book.reveal(1, 11, order(1, 1, price=PRICE - 5), salt(1), now_ns=1_100)  # changed the price
    assert lie == BondForfeit(1, 11, 0, 60, BondForfeitReason.reveal_mismatch)
    assert book.bonds_escrowed_atoms() == 0
    # The true preimage afterwards cannot revive it.
    assert book.reveal(1, 11, order(1, 1), salt(1), now_ns=1_200) == C.reveal_window_closed
    assert book.close_due(1_400) == []  # already forfeited, not twice; nothing else in the round
    # Wrong salt and a foreign-account order are mismatches too.
    book.commit(1, 12, commitment_of(order(1, 2), salt(2)), 60, now_ns=1_500)
    assert isinstance(book.reveal(1, 12, order(1, 2), salt(3), now_ns=2_000), BondForfeit)
    book.commit(1, 13, commitment_of(order(2, 3), salt(3)), 60, now_ns=1_500)
    assert isinstance(book.reveal(1, 13, order(2, 3), salt(3), now_ns=2_000), BondForfeit)


def test_nobody_else_can_reveal_or_grief_a_commitment() -> None:
    book = SealedBidBook(SPEC, IID)
    book.commit(1, 11, commitment_of(order(1, 1), salt(1)), 60, now_ns=100)
    assert book.reveal(2, 11, order(1, 1, price=1), salt(9), now_ns=1_100) == C.commit_unknown
    assert book.bonds_escrowed_atoms() == 60
    assert isinstance(book.reveal(1, 11, order(1, 1), salt(1), now_ns=1_101), RevealAccepted)


def test_commit_validation() -> None:
    book = SealedBidBook(SealedSpec(interval_ns=1_000, reveal_ns=400, bond_atoms_min=50,
                                    commitments_per_round_max=2), IID)
    h = commitment_of(order(1, 1), salt(1))
    assert book.commit(1, 1, h[:31], 50, 0) == C.commitment_malformed
    assert book.commit(1, 1, h, 49, 0) == C.bond_atoms_below_min
    assert isinstance(book.commit(1, 1, h, 50, 0), CommitAccepted)
    assert book.commit(1, 1, h, 50, 0) == C.commit_id_duplicate
    assert isinstance(book.commit(2, 1, h, 50, 0), CommitAccepted)  # same hash, other account: allowed
    assert book.commit(3, 1, h, 50, 0) == C.commitments_per_round_max_reached
    assert isinstance(book.commit(3, 1, h, 50, 1_000), CommitAccepted)  # next round has room


def _session() -> tuple[list[object], SealedBidBook]:
    """Three traders in round 0; public output recorded until the reveal window closes."""
    book = SealedBidBook(SPEC, IID)
    public: list[object] = []
    orders = [order(a, a, price=PRICE + a, qty=QTY + a, side=1 if a % 2 else -1) for a in (1, 2, 3)]
    for a, o in zip((1, 2, 3), orders):
        public.append(book.commit(a, 100 + a, commitment_of(o, salt(a)), 50, now_ns=10 * a))
        public.append(book.public_view())
    for t in (1_000, 1_200, 1_399):
        public.extend(book.close_due(t))
    for a, o in zip((1, 2, 3), orders):
        public.append(book.reveal(a, 100 + a, o, salt(a), now_ns=1_100 + a))
        public.append(book.public_view())
    return public, book


def test_contents_are_invisible_until_the_reveal_window_closes() -> None:
    public, book = _session()
    commitments = {c.commitment for c in book.live.values()}
    published_ints: set[int] = set()
    for item in public:
        if isinstance(item, tuple):  # public_view(): nothing but commitment hashes
            assert set(item) <= commitments
            continue
        assert isinstance(item, (CommitAccepted, RevealAccepted)), item
        for name in item.__slots__:  # type: ignore[union-attr]
            value = getattr(item, name)
            if isinstance(value, bytes):
                assert value in commitments
            else:
                published_ints.add(value)
    secrets = {PRICE + a for a in (1, 2, 3)} | {QTY + a for a in (1, 2, 3)}
    assert not secrets & published_ints, "order contents leaked before the reveal window closed"
    assert not any(str(s).encode() in repr(public).encode() for s in secrets)
    (closed,) = book.close_due(1_400)
    assert [r.order.price_ticks for r in closed.revealed] == [PRICE + 1, PRICE + 2, PRICE + 3]  # arrival order


def test_deterministic() -> None:
    a_public, a_book = _session()
    b_public, b_book = _session()
    assert a_public == b_public
    assert msgspec.msgpack.encode(a_book.canonical()) == msgspec.msgpack.encode(b_book.canonical())
    restored = SealedBidBook.from_canonical(SPEC, msgspec.msgpack.decode(msgspec.msgpack.encode(a_book.canonical())))
    assert restored.canonical() == a_book.canonical()
    assert a_book.close_due(1_400) == b_book.close_due(1_400) == restored.close_due(1_400)
    assert a_book.round_counts == {} and a_book.canonical() == restored.canonical()


def test_idle_rounds_and_two_live_rounds() -> None:
    book = SealedBidBook(SPEC, IID)
    book.commit(1, 1, commitment_of(order(1, 1), salt(1)), 50, now_ns=500)  # round 0
    book.commit(1, 2, commitment_of(order(1, 2), salt(2)), 50, now_ns=1_200)  # round 1, while 0 reveals
    book.reveal(1, 1, order(1, 1), salt(1), now_ns=1_300)
    closed = book.close_due(10_000_000)  # long silence: both rounds close, oldest first, in one call
    assert [c.round_index for c in closed] == [0, 1]
    assert [len(c.revealed) for c in closed] == [1, 0] and [len(c.forfeited) for c in closed] == [0, 1]
    assert book.close_due(10_000_001) == []
