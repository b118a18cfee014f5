"""Find every liquidatable account on a mark-price change without scanning the healthy ones.

Per instrument the index keeps two sorted lists of *trigger prices*:

* ``longs``: an entry fires when ``mark <= trigger``;
* ``shorts``: an entry fires when ``mark >= trigger``.

A mark update reads one contiguous range of each list (``bisect`` + slice), so its cost is
``O(log n + fired)``: healthy accounts whose triggers were not crossed are never touched.

Entries:

* **Single-position accounts** (the bulk of a retail venue) get their *exact* liquidation price
  (margin_math.liquidation_price_ticks, derived from the very predicate ``E < MM``): the entry fires iff
  the account is liquidatable. No false positives, no false negatives.
* **Multi-position (cross) accounts** get a *conservative* trigger per position from a slack budget:
  with slack ``S = E - MM >= 0`` at snapshot marks, position i gets ``B_i = floor(S * n_i / N) - 1``
  (n_i its notional, N the total) and may move ``d_i`` ticks against it, where a move of d ticks lowers
  ``E - MM`` by at most ``|s| * k * d`` for a long (its maintenance margin only falls) and by at most
  ``|s| * k * d * (1 + mmf_t) + 1`` for a short (t = the bracket at the band's far end; +1 for the
  ceiling of the maintenance margin); ``d_i`` is the largest d keeping that within ``B_i``. Favourable
  moves never lower ``E - MM`` (margin_math monotonicity), so while every mark stays inside its band the
  account is healthy: ``E - MM >= S - sum(B_i + 1) >= 0``. When a trigger fires, the account's health
  is computed exactly at current marks; a false alarm is queued for a re-snapshot at the current marks
  (:meth:`LiquidationIndex.refresh_pending`, called by the engine once the command's liquidations are
  done). Until then its other bands prove nothing, so every query checks the pending accounts exactly:
  deferring never hides an account. An account already below maintenance gets triggers that fire at any
  mark.

Update hooks: the engine calls :meth:`LiquidationIndex.update` whenever an account's balance or
positions change (fill, deposit, withdrawal, transfer, funding, liquidation, waterfall) and
:meth:`remove` when it goes flat; ``update`` returns whether the account is liquidatable right now, so
changes that move no mark (fees, funding) still get it queued. For single-position accounts the index
also keeps ``(size, cost, balance)`` next to the trigger (same contract), which the sweep's sizing reads
instead of walking the account object. Keys are ``trigger << 64 | account_id`` (Python ints: no
overflow; account ids are < 2**63 by the engine's ``ID_MAX``).

**Parked accounts** (:meth:`LiquidationIndex.park`): an account below maintenance that the per-interval
liquidation throttle holds back (its remaining allowance buys less than one lot of any of its positions,
and it is not bankrupt, so ``plan_liquidation`` returns None) has nothing to do until its throttle
window ends. The engine parks it instead of re-checking it every command, and the index then holds
*wake* entries for it in place of its liquidation triggers: they fire when a mark move could give it a
step before the window ends, i.e. when

* its equity could reach zero (a bankrupt account is closed whole, without throttling): the exact
  bankruptcy price of a single position; for several positions a slack band as above with
  ``S = E - 1`` and no maintenance term (a move of d ticks lowers E by exactly ``|s| * k * d``);
* one lot of a position could become affordable: ``mark <= allowance // k`` (the allowance is fixed
  until the window ends), on the longs list whatever the position's side.

A fired wake entry never decides anything: the account is reported in :attr:`LiquidationIndex.woken`
and the engine unparks it and checks it exactly. Between wakes a parked account costs nothing per
mark update. While no wake entry fired, ``E > 0`` and every lot costs more than the allowance, so
``plan_liquidation`` is None: no step is being withheld (the engine's invariant check asserts it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sortedcontainers import SortedList  # type: ignore[import-untyped]

from bastion.core.instruments import InstrumentSpec
from bastion.core.risk._types import PPM, PRICE_TICKS_UNBOUNDED, AccountLike
from bastion.core.risk.liquidation import (
    LiquidationConfig,
    LiquidationOrder,
    plan_liquidation,
    plan_position_liquidation,
)
from bastion.core.risk.margin_math import account_health, liquidation_price_ticks, maintenance_margin_atoms

__all__ = ["LiquidationIndex", "SweepStats", "sweep_liquidations"]

ID_BITS = 64
ID_MASK = (1 << ID_BITS) - 1


@dataclass(slots=True)
class SweepStats:
    """What the last sweep did (for benchmarks and monitoring)."""

    fired: int = 0
    """Entries whose trigger the mark crossed."""
    suspects_checked: int = 0
    """Multi-position (or pending) accounts whose health was computed exactly."""
    woken: int = 0
    """Parked accounts whose wake entries fired (reported in ``LiquidationIndex.woken``)."""
    false_alarms: int = 0
    """Suspects that turned out healthy (queued for a re-snapshot)."""
    liquidatable: int = 0
    """Accounts returned."""


class LiquidationIndex:
    """Trigger-price index over all accounts with positions (module docstring).

    Args:
        specs: instrument specs by id (the index keeps one pair of lists per instrument).
    """

    __slots__ = ("specs", "_longs", "_shorts", "_entries", "_multi", "_single", "_pending", "_parked", "woken",
                 "stats")

    def __init__(self, specs: Mapping[int, InstrumentSpec]) -> None:
        self.specs = dict(specs)
        self._longs: dict[int, SortedList] = {iid: SortedList() for iid in self.specs}
        self._shorts: dict[int, SortedList] = {iid: SortedList() for iid in self.specs}
        self._entries: dict[int, tuple[tuple[int, int, int], ...]] = {}
        self._multi: set[int] = set()
        self._single: dict[int, tuple[int, int, int]] = {}  # id -> (size, cost, balance) of 1-position accounts
        self._pending: dict[int, AccountLike] = {}
        self._parked: dict[int, int] = {}  # id -> throttle allowance (atoms) of parked accounts
        self.woken: list[int] = []
        """Parked accounts whose wake entries fired, in firing order (the engine drains it)."""
        self.stats = SweepStats()

    def __len__(self) -> int:
        """Number of indexed accounts."""
        return len(self._entries)

    def __contains__(self, account_id: object) -> bool:
        return account_id in self._entries

    # ----------------------------------------------------------------------------------- maintenance

    def entries(self, account: AccountLike, marks: Mapping[int, int]) -> tuple[tuple[int, int, int], ...]:
        """The ``(instrument_id, side, key)`` entries ``account`` should have at ``marks``."""
        account_id = account.account_id
        assert 0 < account_id <= ID_MASK
        open_positions = [(iid, p.size_lots, p.cost_atoms) for iid, p in account.positions.items() if p.size_lots]
        if not open_positions:
            return ()
        allowance = self._parked.get(account_id)
        if allowance is not None:
            return self._wake_entries(account, open_positions, marks, allowance)
        if len(open_positions) == 1:
            iid, size, cost = open_positions[0]
            trigger = liquidation_price_ticks(self.specs[iid], size, cost, account.balance_atoms, 0)
            return ((iid, 1 if size > 0 else -1, trigger << ID_BITS | account_id),)
        return self._bound_entries(account, open_positions, marks)

    def _bound_entries(self, account: AccountLike, open_positions: list[tuple[int, int, int]],
                       marks: Mapping[int, int]) -> tuple[tuple[int, int, int], ...]:
        health = account_health(account, self.specs, marks)
        slack = health.equity_atoms - health.maintenance_atoms
        notionals = [abs(size) * marks[iid] * self.specs[iid].atoms_per_tick_lot for iid, size, _ in open_positions]
        total = sum(notionals)
        out = []
        for (iid, size, _), notional in zip(open_positions, notionals):
            mark = marks[iid]
            if slack < 0:  # already below maintenance: fire at any mark
                trigger = PRICE_TICKS_UNBOUNDED if size > 0 else 0
            else:
                budget = slack * notional // total - 1
                move = self._band_ticks(iid, size, mark, budget) if budget >= 0 else -1
                trigger = max(mark - move - 1, 0) if size > 0 else mark + move + 1
            out.append((iid, 1 if size > 0 else -1, trigger << ID_BITS | account.account_id))
        return tuple(out)

    def _wake_entries(self, account: AccountLike, open_positions: list[tuple[int, int, int]],
                      marks: Mapping[int, int], allowance_atoms: int) -> tuple[tuple[int, int, int], ...]:
        """Wake entries of a parked account (module docstring): bankruptcy, and one lot affordable."""
        account_id = account.account_id
        specs = self.specs
        if len(open_positions) == 1:
            iid, size, cost = open_positions[0]
            k = specs[iid].atoms_per_tick_lot
            afford = allowance_atoms // k  # one lot costs mark * k <= allowance  <=>  mark <= allowance // k
            if size > 0:  # E = balance + size*k*mark - cost <= 0  <=>  mark <= (cost - balance) / (size*k)
                trigger = max((cost - account.balance_atoms) // (size * k), afford, 0)
                return ((iid, 1, trigger << ID_BITS | account_id),)
            # E <= 0  <=>  |size|*k*mark >= balance - cost
            bankrupt = max(-((account.balance_atoms - cost) // (size * k)), 0)  # ceil((b - c) / (|s| k))
            entries = [(iid, -1, bankrupt << ID_BITS | account_id)]
            if afford > 0:
                entries.append((iid, 1, afford << ID_BITS | account_id))
            return tuple(entries)
        equity = account.balance_atoms
        notionals = []
        for iid, size, cost in open_positions:
            k = specs[iid].atoms_per_tick_lot
            equity += size * marks[iid] * k - cost
            notionals.append(abs(size) * marks[iid] * k)
        slack = equity - 1  # E must stay >= 1
        total = sum(notionals)
        out = []
        for (iid, size, _), notional in zip(open_positions, notionals):
            mark = marks[iid]
            k = specs[iid].atoms_per_tick_lot
            afford = allowance_atoms // k
            if slack < 0:  # bankrupt already: wake at any mark
                trigger = PRICE_TICKS_UNBOUNDED if size > 0 else 0
            else:
                move = slack * notional // total // (abs(size) * k)  # E falls exactly |s|*k per adverse tick
                trigger = max(mark - move - 1, 0) if size > 0 else mark + move + 1
            if size > 0:
                out.append((iid, 1, max(trigger, afford) << ID_BITS | account_id))
            else:
                out.append((iid, -1, trigger << ID_BITS | account_id))
                if afford > 0:
                    out.append((iid, 1, afford << ID_BITS | account_id))
        return tuple(out)

    def _band_ticks(self, iid: int, size: int, mark: int, budget: int) -> int:
        """Largest adverse move (ticks) of position ``size`` that lowers ``E - MM`` by at most ``budget``."""
        spec = self.specs[iid]
        k = spec.atoms_per_tick_lot
        if size > 0:
            return budget // (size * k)  # long: equity falls |s|*k per tick, maintenance only falls
        abs_size = -size
        tiers = spec.margin_tiers
        move = (budget - 1) * PPM // (abs_size * k * (PPM + tiers[-1].mmf_ppm))  # safe start: top rate
        for tier in tiers:  # refine with the bracket at the band's far end (rates rise with notional)
            if abs_size * (mark + move + 1) * k <= tier.notional_max_atoms or tier is tiers[-1]:
                candidate = (budget - 1) * PPM // (abs_size * k * (PPM + tier.mmf_ppm))
                far = abs_size * (mark + candidate + 1) * k
                if far <= tier.notional_max_atoms or tier is tiers[-1]:
                    move = max(move, candidate)
                break
        return move

    def update(self, account: AccountLike, marks: Mapping[int, int]) -> bool:
        """Recompute ``account``'s entries (call after any change of its balance or positions).

        Returns:
            Whether the account is liquidatable at ``marks`` right now (exact), so a change that does
            not move a mark — a fee, a funding payment, a partial liquidation — still gets it queued.
        """
        self.remove(account.account_id)
        self._pending.pop(account.account_id, None)
        entries = self.entries(account, marks)
        if not entries:
            return False
        fires = False
        for iid, side, key in entries:
            (self._longs if side > 0 else self._shorts)[iid].add(key)
            trigger = key >> ID_BITS
            fires = fires or (marks[iid] <= trigger if side > 0 else marks[iid] >= trigger)
        self._entries[account.account_id] = entries
        if account.account_id in self._parked:
            if fires:
                self.woken.append(account.account_id)
            return False
        if len(entries) == 1:
            self._single[account.account_id] = _single_state(account)
            return fires
        self._multi.add(account.account_id)
        return fires and account_health(account, self.specs, marks).liquidatable

    def park(self, account: AccountLike, marks: Mapping[int, int], allowance_atoms: int) -> bool:
        """Park a throttled account: replace its triggers by wake entries (module docstring).

        Args:
            account: an account with positions whose next liquidation step the throttle withholds.
            marks: current marks.
            allowance_atoms: its remaining interval allowance (constant until the window ends).

        Returns:
            True if parked. False (nothing changed) when a wake entry would fire at ``marks`` already:
            the account is bankrupt, or a lot of one of its positions is affordable; it then stays an
            ordinary entry and the engine keeps it in its queue.
        """
        account_id = account.account_id
        open_positions = [(iid, p.size_lots, p.cost_atoms) for iid, p in account.positions.items() if p.size_lots]
        if not open_positions:
            return False
        for iid, side, key in self._wake_entries(account, open_positions, marks, allowance_atoms):
            trigger = key >> ID_BITS
            if marks[iid] <= trigger if side > 0 else marks[iid] >= trigger:
                return False
        self._parked[account_id] = allowance_atoms
        self.update(account, marks)
        return True

    def unpark(self, account: AccountLike, marks: Mapping[int, int]) -> bool:
        """End a park: ordinary entries again. Returns :meth:`update`'s answer (liquidatable now)."""
        self._parked.pop(account.account_id, None)
        return self.update(account, marks)

    def is_parked(self, account_id: int) -> bool:
        """Whether the account holds wake entries (:meth:`park`)."""
        return account_id in self._parked

    def parked_allowances(self) -> dict[int, int]:
        """Parked accounts and the allowance their wake entries use (a copy; invariant checks)."""
        return dict(self._parked)

    def remove(self, account_id: int) -> None:
        """Drop ``account_id``'s entries (no-op if it has none)."""
        old = self._entries.pop(account_id, None)
        if old is None:
            return
        for iid, side, key in old:
            (self._longs if side > 0 else self._shorts)[iid].remove(key)
        self._multi.discard(account_id)
        self._single.pop(account_id, None)

    def bulk_load(self, accounts: Iterable[AccountLike], marks: Mapping[int, int],
                  parked: Mapping[int, int] | None = None) -> None:
        """Index many accounts at once (one sort per list instead of n inserts); replaces the contents.

        ``parked``: accounts to index as parked, with their allowances (:meth:`park`; restore).
        """
        longs: dict[int, list[int]] = {iid: [] for iid in self.specs}
        shorts: dict[int, list[int]] = {iid: [] for iid in self.specs}
        self._entries.clear()
        self._multi.clear()
        self._single.clear()
        self._pending.clear()
        self._parked = dict(parked or {})
        self.woken.clear()
        for account in accounts:
            entries = self.entries(account, marks)
            if not entries:
                continue
            for iid, side, key in entries:
                (longs if side > 0 else shorts)[iid].append(key)
            self._entries[account.account_id] = entries
            if account.account_id in self._parked:
                continue
            if len(entries) > 1:
                self._multi.add(account.account_id)
            else:
                self._single[account.account_id] = _single_state(account)
        self._longs = {iid: SortedList(keys) for iid, keys in longs.items()}
        self._shorts = {iid: SortedList(keys) for iid, keys in shorts.items()}

    # ------------------------------------------------------------------------------------------ query

    def fired(self, instrument_id: int, mark_ticks: int) -> list[int]:
        """Account ids whose entries on ``instrument_id`` fire at ``mark_ticks`` (longs, then shorts)."""
        longs = self._longs[instrument_id]
        shorts = self._shorts[instrument_id]
        first = longs.bisect_left(mark_ticks << ID_BITS)
        last = shorts.bisect_left((mark_ticks + 1) << ID_BITS)
        return [key & ID_MASK for key in longs[first:]] + [key & ID_MASK for key in shorts[:last]]

    def liquidatable(self, instrument_id: int, mark_ticks: int, accounts: Mapping[int, AccountLike],
                     marks: Mapping[int, int]) -> list[int]:
        """Accounts liquidatable at ``marks`` among those whose entries on ``instrument_id`` fire.

        ``marks[instrument_id]`` must equal ``mark_ticks``. Single-position hits are exact; multi-position
        hits (and every account pending a re-snapshot) are checked exactly, and healthy ones are queued
        for :meth:`refresh_pending`. Parked accounts whose wake entries fire are not returned: they are
        appended to :attr:`woken` for the engine to unpark and check. Call once per mark update of each
        instrument: an account that became liquidatable through this update is always returned (or, if
        parked, woken), and the calls for all instruments together return every liquidatable account
        that is not parked.
        """
        assert marks[instrument_id] == mark_ticks
        stats = self.stats
        stats.fired = stats.suspects_checked = stats.false_alarms = stats.woken = 0
        out: list[int] = []
        multi = self._multi
        pending = self._pending
        # A pending account's bands were overrun on some instrument: its other bands no longer prove
        # health, so it is checked exactly on every query until it is re-snapshotted.
        suspects = list(pending)
        parked = self._parked
        woken = 0
        for account_id in self.fired(instrument_id, mark_ticks):
            stats.fired += 1
            if account_id not in multi:
                if parked and account_id in parked:
                    self.woken.append(account_id)
                    woken += 1
                else:
                    out.append(account_id)
            elif account_id not in pending:
                suspects.append(account_id)
        stats.woken = woken
        for account_id in suspects:
            stats.suspects_checked += 1
            account = accounts[account_id]
            pending[account_id] = account  # its bands are stale either way until re-snapshotted
            if account_health(account, self.specs, marks).liquidatable:
                out.append(account_id)
            else:
                stats.false_alarms += 1
        stats.liquidatable = len(out)
        return out

    def refresh_pending(self, marks: Mapping[int, int]) -> int:
        """Re-snapshot the multi-position accounts that fired but were healthy; returns how many.

        The engine calls this once per command after its liquidations ran (accounts that changed in the
        meantime were already refreshed through :meth:`update`).
        """
        pending = self._pending
        self._pending = {}
        for account in pending.values():
            self.update(account, marks)
        return len(pending)


def sweep_liquidations(index: LiquidationIndex, instrument_id: int, mark_ticks: int,
                       accounts: Mapping[int, AccountLike], marks: Mapping[int, int], config: LiquidationConfig,
                       allowances: Mapping[int, int] | None = None) -> list[LiquidationOrder]:
    """Liquidatable accounts after a mark update and their next liquidation orders, most underwater first.

    Args:
        index: the trigger index (kept current by the engine's update hooks).
        instrument_id / mark_ticks: the instrument whose mark just changed, and its new mark.
        accounts: all accounts by id (engine ``accounts`` dict).
        marks: all marks (already holding the new one).
        config: liquidation parameters.
        allowances: remaining interval allowance per account (atoms); absent = a full interval.

    Returns:
        One :class:`LiquidationOrder` per liquidatable account that is not capped out, sorted by margin
        ratio ``equity / maintenance`` ascending, then account id. The engine processes the first
        ``config.liquidations_per_command_max`` and sweeps again on the next command.
    """
    full = config.max_notional_per_interval_atoms
    specs = index.specs
    spec = specs[instrument_id]
    k = spec.atoms_per_tick_lot
    single = index._single
    orders: list[LiquidationOrder] = []
    for account_id in index.liquidatable(instrument_id, mark_ticks, accounts, marks):
        allowance = full if allowances is None else allowances.get(account_id, full)
        state = single.get(account_id)
        if state is None:  # multi-position: the general path
            order = plan_liquidation(accounts[account_id], specs, marks, config, allowance)
        else:  # single position on this instrument: health from the indexed state (kept by update())
            size, cost, balance = state
            own_mm = maintenance_margin_atoms(spec, (size if size > 0 else -size) * mark_ticks * k)
            order = plan_position_liquidation(account_id, spec, size, mark_ticks,
                                              balance + size * mark_ticks * k - cost, own_mm, own_mm,
                                              config, allowance)
        if order is not None:
            orders.append(order)
    orders.sort(key=lambda o: (o.equity_atoms * PPM // o.maintenance_atoms, o.account_id))
    return orders


def _single_state(account: AccountLike) -> tuple[int, int, int]:
    """(size, cost, balance) of a single-position account (what the sweep's fast path reads)."""
    for pos in account.positions.values():
        if pos.size_lots:
            return pos.size_lots, pos.cost_atoms, account.balance_atoms
    raise AssertionError("no open position")
