"""Sealed-bid commit–reveal for batch markets, as a deterministic state machine over engine time.

A trader first commits ``SHA-256(canonical_order_bytes(order) || salt)`` (32 bytes) and escrows a bond
(atoms); later it reveals ``(order, salt)``. Until a round's reveal window closes, the venue's public
output carries commitment hashes only: no price, size or side of any order of the round. Then the
revealed orders are admitted together into the batch auction (batch.py / auction.py), so nobody can
react to anybody else's order of the same round. (BCS §3.8 of shared/reference/matching-engines.md:
"orders are not displayed during the interval"; Penumbra's flow encryption is the same goal.)

Rounds and windows (exact; ``tau = interval_ns``, ``r = reveal_ns``, ``0 < r <= tau``):

* a commit at engine time ``t`` joins round ``k = floor((t - origin) / tau)`` — commits are always open;
* round ``k`` reveals during ``[origin + (k+1)*tau, origin + (k+1)*tau + r)`` — start inclusive, end
  exclusive: a reveal at ``close - 1`` is on time, at ``close`` it is late;
* round ``k`` closes at the first command with engine time ``>= close`` (:meth:`SealedBidBook.close_due`,
  run by the engine before anything else of that command). At most two rounds are live at once.

Bonds: escrowed at commit; returned when the order was revealed correctly and the engine admitted it;
forfeited to the insurance fund when (1) the reveal does not hash to the commitment (immediately, the
reveal is refused), (2) no valid reveal arrived before the window closed — a late reveal is refused
with ``reveal_window_closed`` and changes nothing, the bond having gone at close — or (3) the revealed
order is rejected at admission (otherwise an order made invalid on purpose, e.g. by withdrawing margin,
would be a free option not to trade). Only the committing account can reveal a commitment, so no one
can make another account forfeit.

Canonical order bytes: ``b"bastion/sealed-order/v1\\x00"`` followed by seven signed 64-bit big-endian
integers ``account_id, instrument_id, client_order_id, side, price_ticks, qty_lots, time_in_force``
(price_ticks 0 = market order). The salt is exactly 32 bytes (random, chosen by the client). Fixed
widths make the concatenation unambiguous.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from bastion.core.integrity.codes import BondForfeitReason, IntegrityRejectCode

__all__ = [
    "COMMITMENT_BYTES",
    "ORDER_DOMAIN",
    "ROUNDS_LIVE_MAX",
    "SALT_BYTES",
    "BondForfeit",
    "CommitAccepted",
    "CommitStatus",
    "Commitment",
    "RevealAccepted",
    "RevealedOrder",
    "RoundClosed",
    "SealedBidBook",
    "SealedOrder",
    "SealedSpec",
    "canonical_order_bytes",
    "commitment_of",
]

SALT_BYTES = 32
COMMITMENT_BYTES = 32
ORDER_DOMAIN = b"bastion/sealed-order/v1\x00"
ROUNDS_LIVE_MAX = 2
"""Rounds with live commitments at any time (one committing, one revealing)."""

_ORDER_STRUCT = struct.Struct(">7q")


@dataclass(frozen=True, slots=True)
class SealedOrder:
    """The hidden content of a commitment (integer units; ``price_ticks`` 0 = market order)."""

    account_id: int
    instrument_id: int
    client_order_id: int
    side: int
    price_ticks: int
    qty_lots: int
    time_in_force: int = 0


def canonical_order_bytes(order: SealedOrder) -> bytes:
    """The committed encoding of ``order`` (module docstring).

    Raises:
        ValueError: a field is not an int or does not fit in a signed 64-bit integer.
    """
    try:
        return ORDER_DOMAIN + _ORDER_STRUCT.pack(order.account_id, order.instrument_id, order.client_order_id,
                                                 order.side, order.price_ticks, order.qty_lots, order.time_in_force)
    except struct.error as exc:
        raise ValueError(f"sealed order not encodable: {exc}") from exc


def commitment_of(order: SealedOrder, salt: bytes) -> bytes:
    """``SHA-256(canonical_order_bytes(order) || salt)``, 32 bytes (what a client commits).

    Raises:
        ValueError: ``salt`` is not exactly :data:`SALT_BYTES` bytes, or the order is not encodable.
    """
    if not isinstance(salt, bytes) or len(salt) != SALT_BYTES:
        raise ValueError(f"salt must be {SALT_BYTES} bytes")
    return hashlib.sha256(canonical_order_bytes(order) + salt).digest()


@dataclass(frozen=True, slots=True)
class SealedSpec:
    """Commit–reveal parameters of one batch market.

    Attributes:
        interval_ns: round length ``tau`` (> 0), normally the batch interval.
        reveal_ns: reveal window length, ``0 < reveal_ns <= interval_ns``.
        origin_ns: engine time where round 0 starts (>= 0).
        bond_atoms_min: smallest bond accepted (> 0).
        commitments_per_round_max: live commitments per round.
    """

    interval_ns: int
    reveal_ns: int
    origin_ns: int = 0
    bond_atoms_min: int = 1
    commitments_per_round_max: int = 10_000

    def __post_init__(self) -> None:
        assert self.interval_ns > 0 and 0 < self.reveal_ns <= self.interval_ns and self.origin_ns >= 0
        assert self.bond_atoms_min > 0 and self.commitments_per_round_max > 0


class CommitStatus(IntEnum):
    COMMITTED = 0
    REVEALED = 1


@dataclass(slots=True)
class Commitment:
    """A live commitment. ``order`` is private state until its round closes (never published)."""

    account_id: int
    commit_id: int
    commitment: bytes
    bond_atoms: int
    round_index: int
    arrival: int
    status: CommitStatus = CommitStatus.COMMITTED
    order: SealedOrder | None = None

    def canonical(self) -> list[object]:
        o = self.order
        order = None if o is None else [o.account_id, o.instrument_id, o.client_order_id, o.side, o.price_ticks,
                                        o.qty_lots, o.time_in_force]
        return [self.account_id, self.commit_id, self.commitment, self.bond_atoms, self.round_index, self.arrival,
                int(self.status), order]


@dataclass(frozen=True, slots=True)
class CommitAccepted:
    """Public: a commitment was recorded and its bond escrowed (no order content)."""

    account_id: int
    commit_id: int
    round_index: int
    commitment: bytes
    bond_atoms: int
    reveal_open_ns: int
    reveal_close_ns: int


@dataclass(frozen=True, slots=True)
class RevealAccepted:
    """A reveal matched its commitment. Carries no order content (published only at round close)."""

    account_id: int
    commit_id: int
    round_index: int


@dataclass(frozen=True, slots=True)
class BondForfeit:
    """A bond goes to the insurance fund (``BondForfeited`` event)."""

    account_id: int
    commit_id: int
    round_index: int
    bond_atoms: int
    reason: BondForfeitReason


@dataclass(frozen=True, slots=True)
class RevealedOrder:
    """A correctly revealed order, released at round close in commit-arrival order."""

    order: SealedOrder
    commit_id: int
    bond_atoms: int
    arrival: int


@dataclass(frozen=True, slots=True)
class RoundClosed:
    """A round's reveal window closed: orders to admit (then clear), bonds forfeited for no reveal."""

    round_index: int
    close_ns: int
    revealed: tuple[RevealedOrder, ...]
    forfeited: tuple[BondForfeit, ...]


class SealedBidBook:
    """Commitments of one instrument's batch market (see module docstring). Deterministic; no I/O."""

    __slots__ = ("spec", "instrument_id", "live", "round_counts", "closed_keys", "next_arrival", "closed_through")

    def __init__(self, spec: SealedSpec, instrument_id: int) -> None:
        self.spec = spec
        self.instrument_id = instrument_id
        self.live: dict[tuple[int, int], Commitment] = {}  # insertion order = arrival order
        self.round_counts: dict[int, int] = {}  # commitments accepted per live round (incl. forfeited)
        # Keys of commitments closed in the last round (and forfeited since): key -> round_index.
        self.closed_keys: dict[tuple[int, int], int] = {}
        self.next_arrival = 1
        self.closed_through = -1  # every round <= this index is closed

    def round_of(self, now_ns: int) -> int:
        """Round a commit at ``now_ns`` joins."""
        assert now_ns >= self.spec.origin_ns
        return (now_ns - self.spec.origin_ns) // self.spec.interval_ns

    def reveal_window(self, round_index: int) -> tuple[int, int]:
        """``[open_ns, close_ns)`` of round ``round_index``'s reveal window."""
        open_ns = self.spec.origin_ns + (round_index + 1) * self.spec.interval_ns
        return open_ns, open_ns + self.spec.reveal_ns

    def commit(self, account_id: int, commit_id: int, commitment: bytes, bond_atoms: int,
               now_ns: int) -> CommitAccepted | IntegrityRejectCode:
        """Record a commitment (the engine has checked the account and escrows the bond on success)."""
        key = (account_id, commit_id)
        if not isinstance(commitment, bytes) or len(commitment) != COMMITMENT_BYTES:
            return IntegrityRejectCode.commitment_malformed
        if key in self.live or key in self.closed_keys:
            return IntegrityRejectCode.commit_id_duplicate
        if bond_atoms < self.spec.bond_atoms_min:
            return IntegrityRejectCode.bond_atoms_below_min
        round_index = self.round_of(now_ns)
        assert round_index > self.closed_through, "close_due(now_ns) must run before commit"
        if self.round_counts.get(round_index, 0) >= self.spec.commitments_per_round_max:
            return IntegrityRejectCode.commitments_per_round_max_reached
        self.live[key] = Commitment(account_id, commit_id, commitment, bond_atoms, round_index, self.next_arrival)
        self.round_counts[round_index] = self.round_counts.get(round_index, 0) + 1
        self.next_arrival += 1
        open_ns, close_ns = self.reveal_window(round_index)
        return CommitAccepted(account_id, commit_id, round_index, commitment, bond_atoms, open_ns, close_ns)

    def reveal(self, account_id: int, commit_id: int, order: SealedOrder, salt: bytes,
               now_ns: int) -> RevealAccepted | BondForfeit | IntegrityRejectCode:
        """Open a commitment during its reveal window.

        Returns:
            :class:`RevealAccepted` (order stored privately); :class:`BondForfeit` with reason
            ``reveal_mismatch`` when the bytes do not hash to the commitment, or the order names another
            account or instrument (the commitment is closed, the bond forfeited); or a reject code with
            no state change: ``commit_unknown``, ``reveal_window_not_open`` (too early),
            ``reveal_window_closed`` (too late), ``commit_already_revealed``.
        """
        key = (account_id, commit_id)
        entry = self.live.get(key)
        if entry is None:
            return (IntegrityRejectCode.reveal_window_closed if key in self.closed_keys
                    else IntegrityRejectCode.commit_unknown)
        open_ns, close_ns = self.reveal_window(entry.round_index)
        assert now_ns < close_ns, "close_due(now_ns) must run before reveal"
        if now_ns < open_ns:
            return IntegrityRejectCode.reveal_window_not_open
        if entry.status == CommitStatus.REVEALED:
            return IntegrityRejectCode.commit_already_revealed
        try:
            matches = commitment_of(order, salt) == entry.commitment
        except ValueError:
            matches = False
        if not matches or order.account_id != account_id or order.instrument_id != self.instrument_id:
            del self.live[key]
            self.closed_keys[key] = entry.round_index
            return BondForfeit(account_id, commit_id, entry.round_index, entry.bond_atoms,
                               BondForfeitReason.reveal_mismatch)
        entry.status = CommitStatus.REVEALED
        entry.order = order
        return RevealAccepted(account_id, commit_id, entry.round_index)

    def close_due(self, now_ns: int) -> list[RoundClosed]:
        """Close every round whose reveal window ended at or before ``now_ns`` (oldest first).

        Bounded: only rounds with live commitments can produce output, at most
        :data:`ROUNDS_LIVE_MAX`; empty rounds are skipped arithmetically.
        """
        closed: list[RoundClosed] = []
        last_closable = (now_ns - self.spec.origin_ns - self.spec.reveal_ns) // self.spec.interval_ns - 1
        if last_closable <= self.closed_through:
            return closed
        rounds = sorted({c.round_index for c in self.live.values() if c.round_index <= last_closable})
        assert len(rounds) <= ROUNDS_LIVE_MAX
        for round_index in rounds:
            closed.append(self._close_round(round_index))
        for round_index in [r for r in self.round_counts if r <= last_closable]:  # <= ROUNDS_LIVE_MAX + 1
            del self.round_counts[round_index]
        self.closed_through = last_closable
        return closed

    def _close_round(self, round_index: int) -> RoundClosed:
        revealed: list[RevealedOrder] = []
        forfeited: list[BondForfeit] = []
        keys = [k for k, c in self.live.items() if c.round_index == round_index]  # <= 2 rounds live
        for key in keys:
            entry = self.live.pop(key)
            if entry.status == CommitStatus.REVEALED:
                assert entry.order is not None
                revealed.append(RevealedOrder(entry.order, entry.commit_id, entry.bond_atoms, entry.arrival))
            else:
                forfeited.append(BondForfeit(entry.account_id, entry.commit_id, round_index, entry.bond_atoms,
                                             BondForfeitReason.no_reveal))
        # Remember this round's keys (late reveals get reveal_window_closed) until the next round closes.
        self.closed_keys = {k: r for k, r in self.closed_keys.items() if r >= round_index}
        self.closed_keys.update(dict.fromkeys(keys, round_index))
        return RoundClosed(round_index, self.reveal_window(round_index)[1], tuple(revealed), tuple(forfeited))

    def release_all(self) -> list[Commitment]:
        """Remove every live commitment (the market settles or leaves sealed mode), in arrival order.

        The caller returns their bonds. Their keys are remembered like closed ones, so a late reveal gets
        ``reveal_window_closed``. At most :data:`ROUNDS_LIVE_MAX` rounds' commitments.
        """
        released = list(self.live.values())
        for entry in released:
            self.closed_keys[(entry.account_id, entry.commit_id)] = entry.round_index
        self.live.clear()
        return released

    def public_view(self) -> tuple[bytes, ...]:
        """Everything about live commitments that may be published: their hashes, in arrival order."""
        return tuple(c.commitment for c in self.live.values())

    def bonds_escrowed_atoms(self) -> int:
        """Total bonds held for live commitments (part of the conservation invariant)."""
        return sum(c.bond_atoms for c in self.live.values())

    def canonical(self) -> list[object]:
        """Plain data for the state hash and snapshots (includes revealed, not yet published orders)."""
        return [self.instrument_id, self.next_arrival, self.closed_through,
                sorted([a, c, r] for (a, c), r in self.closed_keys.items()), sorted(self.round_counts.items()),
                [c.canonical() for c in self.live.values()]]

    @classmethod
    def from_canonical(cls, spec: SealedSpec, data: list[Any]) -> SealedBidBook:
        """Inverse of :meth:`canonical`."""
        instrument_id, next_arrival, closed_through, closed_keys, round_counts, live = data
        book = cls(spec, instrument_id)
        book.next_arrival, book.closed_through = next_arrival, closed_through
        book.closed_keys = {(a, c): r for a, c, r in closed_keys}
        book.round_counts = {r: n for r, n in round_counts}
        for account_id, commit_id, commitment, bond, round_index, arrival, status, order in live:
            sealed = None if order is None else SealedOrder(*order)
            book.live[(account_id, commit_id)] = Commitment(account_id, commit_id, bytes(commitment), bond,
                                                             round_index, arrival, CommitStatus(status), sealed)
        return book
