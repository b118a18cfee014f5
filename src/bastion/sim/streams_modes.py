"""Matching-mode chaos for :func:`bastion.sim.streams.chaos_commands` (shell code: uses ``random``).

:class:`ModeChaos` replaces a share of a chaos stream's commands by market-integrity mode traffic:
guardian scripts that halt an instrument, switch it between CONTINUOUS, BATCH and SEALED_BATCH
(``SetMatchingMode``) and reopen it; sealed-bid ``CommitOrder`` s (valid and malformed, small and
unaffordable bonds) and their ``RevealOrder`` s inside the reveal window — mostly correct, sometimes
mismatching (a forfeiture), sometimes never sent (forfeit at close), sometimes too early or late.

It draws from its own generator (seeded from the stream's seed), so a stream built without it is
unchanged, and it learns modes and reveal windows from the events (``MatchingModeSet``,
``OrderCommitted``), like the stream's :class:`~bastion.sim.streams.OrderTracker`.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from bastion.core.commands import Command, CommitOrder, RevealOrder, SetMarketState, SetMatchingMode
from bastion.core.events import Event, MatchingModeSet, OrderCommitted
from bastion.core.instruments import VenueConfig
from bastion.core.integrity.commit_reveal import SealedOrder, commitment_of

__all__ = ["ModeChaos"]

_HALTED, _CANCEL_ONLY, _ACTIVE = 3, 2, 0
PENDING_MAX = 64
"""Commitments the generator remembers for revealing (older ones are simply never revealed)."""


@dataclass
class _Pending:
    order: SealedOrder
    salt: bytes
    commit_id: int
    open_ns: int = -1  # reveal window, from OrderCommitted (-1: not confirmed yet)
    close_ns: int = -1


class ModeChaos:
    """Mode switches and commit-reveal traffic mixed into a chaos stream (module docstring).

    Args:
        config: the venue (instrument ids, guardian ids, price limits).
        seed: the stream's seed (this generator uses a derived one).
        accounts: account ids 1..accounts exist (accounts + 1 is used as an unknown one).
        switch_rate: probability per command of starting a halt / switch / reopen script.
    """

    def __init__(self, config: VenueConfig, seed: int, accounts: int, switch_rate: float = 0.006) -> None:
        self.rng = random.Random(seed * 1_000_003 + 7)
        self.iids = sorted(config.instruments)
        self.guardians = list(config.guardian_ids) or [1]
        self.accounts = accounts
        self.switch_rate = switch_rate
        self.modes: dict[int, int] = dict.fromkeys(self.iids, 0)
        self.script: list[Command] = []
        self.pending: list[_Pending] = []
        self.last_commit: _Pending | None = None
        self.next_commit_id = 1

    def observe(self, events: list[Event]) -> None:
        """Learn mode changes and the reveal windows of accepted commitments from a command's events."""
        last, self.last_commit = self.last_commit, None
        for ev in events:
            if type(ev) is MatchingModeSet:
                self.modes[ev.instrument_id] = ev.mode
            elif type(ev) is OrderCommitted and last is not None and ev.commit_id == last.commit_id:
                last.open_ns, last.close_ns = ev.reveal_open_ns, ev.reveal_close_ns
                self.pending.append(last)
                del self.pending[:-PENDING_MAX]

    def replace(self, cmd: Command, now_ns: int, mids: dict[int, int]) -> Command:
        """The command to send instead of ``cmd`` (often ``cmd`` itself)."""
        rng = self.rng
        if self.script:
            return self.script.pop(0)
        r = rng.random()
        if r < self.switch_rate:
            return self._switch_script()
        if r < 0.30:
            due = [p for p in self.pending if p.open_ns <= now_ns < p.close_ns or rng.random() < 0.01]
            if due:  # mostly inside the window; now and then too early or too late
                return self._reveal(rng.choice(due))
        sealed = [i for i, mode in self.modes.items() if mode == 2]
        if sealed and rng.random() < 0.08:
            return self._commit(rng.choice(sealed), now_ns, mids)
        return cmd

    def _switch_script(self) -> Command:
        rng = self.rng
        guardian = rng.choice(self.guardians)
        iid = rng.choice(self.iids)
        mode = rng.choice((0, 1, 1, 2, 2))
        tau = rng.choice((20_000, 100_000, 300_000)) if mode else 0
        reveal = rng.choice((tau // 4, tau // 2, tau)) if mode == 2 else 0
        if rng.random() < 0.03:
            tau, reveal = rng.choice(((0, 0), (tau, tau + 1), (-5, 0)))  # out of range
        self.script = [SetMatchingMode(guardian, iid, mode, tau, reveal), SetMarketState(guardian, iid, _ACTIVE)]
        return SetMarketState(guardian, iid, rng.choice((_HALTED, _CANCEL_ONLY)))

    def _commit(self, iid: int, now_ns: int, mids: dict[int, int]) -> Command:
        rng = self.rng
        account = rng.randint(1, self.accounts + 1)
        price = 0 if rng.random() < 0.1 else max(1, mids[iid] + rng.randint(-30, 30))
        order = SealedOrder(account, iid, rng.randint(1, 10**6), rng.choice((1, -1, 1, -1, 2)), price,
                            rng.choice((1, 2, 5, 10, 50, 0)), rng.choice((0, 0, 1, 2, 3)))
        salt = hashlib.sha256(f"{now_ns}/{self.next_commit_id}".encode()).digest()
        self.last_commit = _Pending(order, salt, self.next_commit_id)
        commitment = commitment_of(order, salt)
        self.next_commit_id += 1 if rng.random() > 0.05 else 0  # sometimes a duplicate commit id
        if rng.random() < 0.03:
            commitment = commitment[:31]
        bond = rng.choice((1, 10**6, 10**6, 10**8, 10**13))
        return CommitOrder(account, iid, self.last_commit.commit_id, commitment, bond)

    def _reveal(self, pending: _Pending) -> Command:
        rng = self.rng
        o = pending.order
        qty, salt = o.qty_lots, pending.salt
        roll = rng.random()
        if roll < 0.08:
            qty += 1  # does not open the commitment: the bond is forfeited
        elif roll < 0.11:
            salt = salt[:16]  # malformed salt: refused, changes nothing
        if rng.random() < 0.7:
            self.pending.remove(pending)
        return RevealOrder(o.account_id, o.instrument_id, pending.commit_id, o.client_order_id, o.side,
                           o.price_ticks, qty, o.time_in_force, salt)
