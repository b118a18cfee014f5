"""Loss waterfall for an account the order book could not liquidate: plan, then apply.

When a liquidation IOC leaves a bankrupt account (equity <= 0) with positions, or the engine decides a
backstop takeover, :func:`plan_waterfall` returns every position change and cash movement as typed
records; :func:`apply_waterfall` applies them to engine ``Account`` objects with the engine's own
settlement arithmetic (``settle_fill``). Order of the waterfall:

1. **Counterparties for the positions.** Every open position of the account is closed *at the mark*
   against, first, the backstop liquidator account (Hyperliquid HLP-style, up to a capacity the engine
   grants) and then **auto-deleveraging**: opposite-side positions ranked by the BitMEX / Binance rule
   ``rank = PnL% * effective leverage`` if PnL% > 0 else ``PnL% / effective leverage``, with
   ``PnL% = uPnL / |entry value|`` and ``effective leverage = |mark value| / (mark value - bankrupt
   value)`` = ``notional / account equity`` in cross margin (bitmex.com/app/autoDeleveraging; Binance
   "What is Auto-Deleveraging"; reference/risk-engines.md §2.4). Highest rank first, ties by lowest
   account id, accounts with equity <= 0 last; at most ``adl_candidates_max`` (dYdX iterates <= 500).
   A candidate closes only as many lots as keep its settled balance >= 0.
2. **The account's equity E at the marks**, split over its positions by maintenance-margin share
   (dYdX bankruptcy formula ``TNC * |DMMR| / TMMR``), belongs to the closed lots pro rata.
   *E >= 0*: the insurance fund takes over at the bankruptcy price, i.e. collects the closed lots'
   equity (Binance: the fund accumulates "liquidations above the bankruptcy price").
   *E < 0*: the fund pays the deficit D up to ``min(fund, insurance_loss_max_atoms)`` (dYdX
   ``max_quantums_insurance_lost`` per block; the fund never goes negative, dYdX
   ``IsValidInsuranceFundDelta``).
3. **Bankruptcy-price adjustment on the counterparties.** What the fund did not cover is charged to the
   closing counterparties pro rata to the notional they closed (capped at what each can pay). Closing at
   the mark plus this charge is the exact integer form of "closed at the bankruptcy price of the
   liquidated order" (BitMEX), whose rational price rarely lies on the tick grid.
4. **Socialized loss, last resort** (Drift: pro rata after the fund): the rest is spread over the
   socialization pool pro rata to each account's loss capacity ``min(balance, equity)``; floor remainders
   go first to the named ``remainder_account_id``, then to the pool in account-id order.
5. Anything still uncovered (every capacity exhausted) is reported as ``bad_debt_atoms`` and stays on
   the account; with enough capacity the account ends flat at balance exactly 0.

Guarantees (tested with Hypothesis): conservation to the atom (sum of balance - cost over accounts plus
the insurance fund is unchanged); long OI = short OI; no account the plan debits or deleverages ends with
a negative balance or negative equity; the fund never goes below zero; all loops bounded by
``adl_candidates_max``, ``socialized_accounts_max`` and the account's position count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from fractions import Fraction

from bastion.core.accounts import Account, Position, settle_fill
from bastion.core.instruments import InstrumentSpec
from bastion.core.risk._types import PPM, AccountLike
from bastion.core.risk.margin_math import maintenance_margin_atoms

__all__ = [
    "AdlCandidate",
    "CloseVia",
    "ForcedClose",
    "SocializedCharge",
    "WaterfallConfig",
    "WaterfallPlan",
    "adl_queue",
    "adl_rank",
    "apply_waterfall",
    "backstop_capacity_lots",
    "plan_waterfall",
]

POSITIONS_PER_ACCOUNT_MAX = 256
"""Most open positions one account may have (bounds the per-account loops)."""


@dataclass(frozen=True, slots=True)
class WaterfallConfig:
    """Waterfall parameters.

    Attributes:
        insurance_loss_max_atoms: most the fund pays for one account in one step (dYdX $1,000,000/block).
        adl_candidates_max: ranked counterparties examined per position (dYdX 500).
        socialized_accounts_max: most accounts one socialized loss is spread over.
        remainder_account_id: the named account that takes socialized-loss rounding remainders first.
    """

    insurance_loss_max_atoms: int = 1_000_000 * 10**6
    adl_candidates_max: int = 500
    socialized_accounts_max: int = 100_000
    remainder_account_id: int = 0

    def __post_init__(self) -> None:
        assert self.insurance_loss_max_atoms >= 0 and self.adl_candidates_max > 0
        assert self.socialized_accounts_max > 0


class CloseVia(IntEnum):
    """Who took the other side of a forced close."""

    BACKSTOP = 1
    ADL = 2


@dataclass(frozen=True, slots=True)
class ForcedClose:
    """A forced trade at the mark between the bankrupt account and a counterparty.

    Attributes:
        instrument_id: the market.
        account_id: the bankrupt account; its position shrinks toward zero by ``qty_lots``.
        counterparty_id: the backstop or deleveraged account; it trades the other side.
        qty_lots: lots closed (> 0).
        account_side: sign of the bankrupt account's position (+1 long: it sells; -1 short: it buys).
        price_ticks: the mark price.
        via: backstop or ADL.
        charge_atoms: bankruptcy-price adjustment the counterparty pays the bankrupt account (>= 0).
    """

    instrument_id: int
    account_id: int
    counterparty_id: int
    qty_lots: int
    account_side: int
    price_ticks: int
    via: CloseVia
    charge_atoms: int


@dataclass(frozen=True, slots=True)
class SocializedCharge:
    """A socialized-loss debit of ``amount_atoms`` (> 0) from ``account_id`` to the bankrupt account."""

    account_id: int
    amount_atoms: int


@dataclass(frozen=True, slots=True)
class WaterfallPlan:
    """Everything the waterfall does to one bankrupt account, in application order.

    Attributes:
        account_id: the bankrupt account.
        equity_atoms: its equity at the marks before the plan.
        closes: forced closes (backstop first, then ADL by rank), with their charges.
        insurance_delta_atoms: > 0 the fund collects this from the account; < 0 the fund pays it.
        socialized: socialized-loss debits.
        bad_debt_atoms: deficit nobody could absorb (stays on the account; 0 with enough capacity).
        unclosed: ``(instrument_id, lots)`` left open for lack of counterparties (retry later).
    """

    account_id: int
    equity_atoms: int
    closes: tuple[ForcedClose, ...]
    insurance_delta_atoms: int
    socialized: tuple[SocializedCharge, ...]
    bad_debt_atoms: int
    unclosed: tuple[tuple[int, int], ...] = field(default=())


# ---------------------------------------------------------------------------------------------- ADL rank


def adl_rank(size_lots: int, cost_atoms: int, mark_ticks: int, k: int, equity_atoms: int) -> Fraction | None:
    """ADL rank of one position (BitMEX / Binance; module docstring), exact as a fraction.

    Args:
        size_lots: signed size (!= 0); cost_atoms: signed entry value; mark_ticks: mark; k: atoms per
        tick-lot; equity_atoms: the account's equity at marks (the cross-margin "mark value - bankrupt
        value").

    Returns:
        ``PnL% * leverage`` (PnL% > 0) or ``PnL% / leverage`` (otherwise), or None when equity <= 0 (the
        account is bankrupt itself and cannot be a counterparty).
    """
    assert size_lots != 0 and cost_atoms != 0 and mark_ticks > 0
    if equity_atoms <= 0:
        return None
    notional = abs(size_lots) * mark_ticks * k
    upnl = size_lots * mark_ticks * k - cost_atoms
    entry = abs(cost_atoms)
    if upnl > 0:
        return Fraction(upnl * notional, entry * equity_atoms)
    return Fraction(upnl * equity_atoms, entry * notional)


@dataclass(frozen=True, slots=True)
class AdlCandidate:
    """An opposite-side position in ADL order (rank as an exact fraction; None when equity <= 0)."""

    account_id: int
    size_lots: int
    cost_atoms: int
    equity_atoms: int
    rank: Fraction | None


def adl_queue(accounts: Iterable[AccountLike], instrument_id: int, side: int, specs: Mapping[int, InstrumentSpec],
              marks: Mapping[int, int], candidates_max: int, exclude_account_id: int = 0) -> list[AdlCandidate]:
    """Positions on ``side`` (+1 longs, -1 shorts) of ``instrument_id`` in deleveraging order.

    Highest rank first, ties by lowest account id; accounts with equity <= 0 have no rank and come last
    (by id): closing them at the mark costs them nothing, but they can absorb no charge. At most
    ``candidates_max`` are returned.
    """
    spec, mark = specs[instrument_id], marks[instrument_id]
    k = spec.atoms_per_tick_lot
    ranked: list[AdlCandidate] = []
    unranked: list[AdlCandidate] = []
    for account in accounts:
        pos = account.positions.get(instrument_id)
        if pos is None or account.account_id == exclude_account_id or pos.size_lots * side <= 0:
            continue
        equity = _equity(account.balance_atoms, _open(account), specs, marks)
        rank = adl_rank(pos.size_lots, pos.cost_atoms, mark, k, equity)
        candidate = AdlCandidate(account.account_id, pos.size_lots, pos.cost_atoms, equity, rank)
        (unranked if rank is None else ranked).append(candidate)
    ranked.sort(key=lambda c: (-c.rank if c.rank is not None else 0, c.account_id))
    unranked.sort(key=lambda c: c.account_id)
    return (ranked + unranked)[:candidates_max]


# ----------------------------------------------------------------------------------- shadow arithmetic


def _open(account: AccountLike) -> dict[int, list[int]]:
    positions = {iid: [p.size_lots, p.cost_atoms] for iid, p in account.positions.items() if p.size_lots}
    assert len(positions) <= POSITIONS_PER_ACCOUNT_MAX
    return positions


def _equity(balance: int, positions: Mapping[int, list[int]], specs: Mapping[int, InstrumentSpec],
            marks: Mapping[int, int]) -> int:
    equity = balance
    for iid, (size, cost) in positions.items():
        equity += size * marks[iid] * specs[iid].atoms_per_tick_lot - cost
    return equity


class _Shadow:
    """Copy-on-touch working state of one account while planning (the inputs are never mutated)."""

    __slots__ = ("balance", "positions")

    def __init__(self, account: AccountLike) -> None:
        self.balance = account.balance_atoms
        self.positions = _open(account)

    def close(self, iid: int, qty: int, price: int, k: int) -> None:
        """Reduce the position by ``qty`` lots at ``price`` (settle_fill's reducing rule)."""
        size, cost = self.positions[iid]
        sign = 1 if size > 0 else -1
        abs_size = size * sign
        assert 0 < qty <= abs_size
        removed = sign * ((cost * sign) * qty // abs_size)
        self.balance += sign * price * qty * k - removed
        if qty == abs_size:
            del self.positions[iid]
        else:
            self.positions[iid] = [size - sign * qty, cost - removed]

    def open_or_add(self, iid: int, signed_qty: int, price: int, k: int) -> None:
        """Take ``signed_qty`` lots at ``price`` (the backstop's side of a takeover)."""
        size, cost = self.positions.get(iid, [0, 0])
        if size and (size > 0) != (signed_qty > 0):
            closing = min(abs(signed_qty), abs(size))
            self.close(iid, closing, price, k)
            rest = abs(signed_qty) - closing
            if rest:
                sign = 1 if signed_qty > 0 else -1
                self.positions[iid] = [sign * rest, sign * rest * price * k]
            return
        self.positions[iid] = [size + signed_qty, cost + signed_qty * price * k]

    def capacity(self, specs: Mapping[int, InstrumentSpec], marks: Mapping[int, int]) -> int:
        """Most this account can pay without balance or equity going negative."""
        return max(0, min(self.balance, _equity(self.balance, self.positions, specs, marks)))


def _balance_safe_lots(shadow: _Shadow, iid: int, want: int, mark: int, k: int) -> int:
    """Most lots (<= want) whose close at the mark keeps the shadow's balance >= 0.

    Closing q of (S, C) realizes ``sign*M*q*k - sign*floor(|C|*q/|S|)``, which is at least
    ``q * (M*k*|S| - |C|) / |S|`` for a long and more than ``q * (|C| - M*k*|S|) / |S| - 1`` for a short;
    requiring that bound to be >= -balance (resp. > -balance - 1) is linear in q and sufficient.
    """
    size, cost = shadow.positions[iid]
    abs_size = abs(size)
    loss_den = (abs(cost) - mark * k * abs_size) if size > 0 else (mark * k * abs_size - abs(cost))
    if shadow.balance < 0:
        return 0
    if loss_den <= 0:
        return want
    return min(want, shadow.balance * abs_size // loss_den)


# ------------------------------------------------------------------------------------------ planning


def plan_waterfall(account: AccountLike, specs: Mapping[int, InstrumentSpec], marks: Mapping[int, int],
                   insurance_fund_atoms: int, counterparties: Mapping[int, Sequence[AccountLike]],
                   socialization_pool: Sequence[AccountLike], config: WaterfallConfig,
                   backstop: AccountLike | None = None,
                   backstop_capacity: Mapping[int, int] | None = None) -> WaterfallPlan:
    """Plan the waterfall for ``account`` (module docstring). Pure: no input is mutated.

    Args:
        account: the account to close out (engine ``Account`` fits); its orders already canceled.
        specs / marks: by instrument id.
        insurance_fund_atoms: the fund's balance (>= 0).
        counterparties: per instrument, accounts that may hold the opposite side (any order; ranked
            here; the account itself and same-side holders are skipped).
        socialization_pool: accounts that share a socialized loss (the account itself is skipped).
        config: limits and the named remainder account.
        backstop: the backstop liquidator account, if any.
        backstop_capacity: lots the backstop may take per instrument (backstop_capacity_lots).

    Returns:
        The :class:`WaterfallPlan`.
    """
    assert insurance_fund_atoms >= 0
    book = _Shadows()
    me = book.of(account)
    start = {iid: list(sc) for iid, sc in me.positions.items()}
    equity = _equity(me.balance, me.positions, specs, marks)
    pending: list[tuple[int, int, int, CloseVia]] = []  # (iid, counterparty, qty, via)
    unclosed: list[tuple[int, int]] = []
    for iid in sorted(start):
        lots = (backstop_capacity or {}).get(iid, 0) if backstop is not None else 0
        left = _close_position(account.account_id, iid, book, specs, marks, counterparties.get(iid, ()),
                               config, backstop, lots, pending)
        if left:
            unclosed.append((iid, left))
    closed_equity = _closed_equity(equity, start, dict(unclosed), specs, marks)
    if closed_equity >= 0:
        collected = closed_equity if not unclosed else min(closed_equity, max(0, me.balance))
        me.balance -= collected
        return WaterfallPlan(account.account_id, equity, _records(account.account_id, start, pending, marks, {}),
                             collected, (), 0, tuple(unclosed))
    paid = min(-closed_equity, insurance_fund_atoms, config.insurance_loss_max_atoms)
    me.balance += paid
    deficit = -closed_equity - paid
    charges = _charge_counterparties(deficit, pending, book, specs, marks)
    deficit -= sum(charges.values())
    me.balance += sum(charges.values())
    socialized = _socialize(deficit, account.account_id, socialization_pool, book, specs, marks, config)
    deficit -= sum(c.amount_atoms for c in socialized)
    me.balance += sum(c.amount_atoms for c in socialized)
    assert deficit >= 0
    return WaterfallPlan(account.account_id, equity, _records(account.account_id, start, pending, marks, charges),
                         -paid, tuple(socialized), deficit, tuple(unclosed))


class _Shadows:
    """The planner's working copies, by account id (created on first touch)."""

    __slots__ = ("by_id",)

    def __init__(self) -> None:
        self.by_id: dict[int, _Shadow] = {}

    def of(self, account: AccountLike) -> _Shadow:
        found = self.by_id.get(account.account_id)
        if found is None:
            found = self.by_id[account.account_id] = _Shadow(account)
        return found


def _close_position(account_id: int, iid: int, book: _Shadows, specs: Mapping[int, InstrumentSpec],
                    marks: Mapping[int, int], holders: Sequence[AccountLike], config: WaterfallConfig,
                    backstop: AccountLike | None, backstop_lots: int,
                    pending: list[tuple[int, int, int, CloseVia]]) -> int:
    """Close the account's position on ``iid`` against the backstop then ADL; returns lots left open."""
    k, mark = specs[iid].atoms_per_tick_lot, marks[iid]
    me = book.by_id[account_id]
    size = me.positions[iid][0]
    side = 1 if size > 0 else -1
    need = abs(size)
    if backstop is not None and backstop_lots > 0 and backstop.account_id != account_id:
        qty = min(need, backstop_lots)
        me.close(iid, qty, mark, k)
        book.of(backstop).open_or_add(iid, side * qty, mark, k)
        pending.append((iid, backstop.account_id, qty, CloseVia.BACKSTOP))
        need -= qty
    if need == 0:
        return 0
    by_id = {a.account_id: a for a in holders}
    skip = backstop.account_id if backstop is not None else account_id
    queue = adl_queue(holders, iid, -side, specs, marks, config.adl_candidates_max, exclude_account_id=account_id)
    for candidate in queue:
        if need == 0:
            break
        if candidate.account_id == skip:
            continue
        other = book.of(by_id[candidate.account_id])
        pos = other.positions.get(iid)
        if pos is None or pos[0] * side >= 0:
            continue
        qty = _balance_safe_lots(other, iid, min(need, abs(pos[0])), mark, k)
        if qty <= 0:
            continue
        me.close(iid, qty, mark, k)
        other.close(iid, qty, mark, k)
        assert other.balance >= 0
        pending.append((iid, candidate.account_id, qty, CloseVia.ADL))
        need -= qty
    return need


def _closed_equity(equity: int, start: Mapping[int, list[int]], unclosed: Mapping[int, int],
                   specs: Mapping[int, InstrumentSpec], marks: Mapping[int, int]) -> int:
    """The part of ``equity`` carried by the closed lots: split by maintenance share, then pro rata."""
    if not unclosed:
        return equity
    mms = {iid: maintenance_margin_atoms(specs[iid], abs(s) * marks[iid] * specs[iid].atoms_per_tick_lot)
           for iid, (s, _) in start.items()}
    total = sum(mms.values())
    ids = sorted(start)
    shares = {iid: equity * mms[iid] // total for iid in ids[:-1]}
    shares[ids[-1]] = equity - sum(shares.values())
    closed = 0
    for iid in ids:
        abs_size = abs(start[iid][0])
        done = abs_size - unclosed.get(iid, 0)
        closed += shares[iid] * done // abs_size
    return closed


def _charge_counterparties(deficit: int, pending: Sequence[tuple[int, int, int, CloseVia]],
                           book: _Shadows, specs: Mapping[int, InstrumentSpec],
                           marks: Mapping[int, int]) -> dict[int, int]:
    """Charge ``deficit`` to the closing counterparties pro rata to closed notional, capped by capacity.

    Returns:
        Charges by position in ``pending`` (index -> atoms); floor remainders go to the earliest
        (highest-ranked) closes with spare capacity.
    """
    charges: dict[int, int] = {}
    if deficit <= 0 or not pending:
        return charges
    weights = [qty * marks[iid] * specs[iid].atoms_per_tick_lot for iid, _, qty, _ in pending]
    total = sum(weights)
    spare: dict[int, int] = {}
    for index, (_, cp, _, _) in enumerate(pending):
        if cp not in spare:
            spare[cp] = book.by_id[cp].capacity(specs, marks)
        share = min(deficit * weights[index] // total, spare[cp])
        if share > 0:
            charges[index] = share
            spare[cp] -= share
    rest = deficit - sum(charges.values())
    for index, (_, cp, _, _) in enumerate(pending):
        if rest == 0:
            break
        extra = min(rest, spare[cp])
        if extra > 0:
            charges[index] = charges.get(index, 0) + extra
            spare[cp] -= extra
            rest -= extra
    for index, amount in charges.items():
        book.by_id[pending[index][1]].balance -= amount
    return charges


def _socialize(deficit: int, account_id: int, pool: Sequence[AccountLike], book: _Shadows,
               specs: Mapping[int, InstrumentSpec], marks: Mapping[int, int],
               config: WaterfallConfig) -> list[SocializedCharge]:
    """Spread ``deficit`` pro rata to loss capacity; remainders to the named account, then by id."""
    if deficit <= 0:
        return []
    members = sorted((a for a in pool if a.account_id != account_id), key=lambda a: a.account_id)
    members = members[:config.socialized_accounts_max]
    shadows = [book.of(a) for a in members]
    caps = [s.capacity(specs, marks) for s in shadows]
    total = sum(caps)
    if total == 0:
        return []
    target = min(deficit, total)
    amounts = [target * c // total for c in caps]  # <= c because target <= total
    rest = target - sum(amounts)
    order = sorted(range(len(members)), key=lambda i: (members[i].account_id != config.remainder_account_id,
                                                       members[i].account_id))
    for i in order:
        if rest == 0:
            break
        extra = min(rest, caps[i] - amounts[i])
        amounts[i] += extra
        rest -= extra
    assert rest == 0
    charges = []
    for acct, shadow, amount in zip(members, shadows, amounts):
        if amount > 0:
            shadow.balance -= amount
            charges.append(SocializedCharge(acct.account_id, amount))
    return charges


def _records(account_id: int, start: Mapping[int, list[int]], pending: Sequence[tuple[int, int, int, CloseVia]],
             marks: Mapping[int, int], charges: Mapping[int, int]) -> tuple[ForcedClose, ...]:
    return tuple(
        ForcedClose(iid, account_id, cp, qty, 1 if start[iid][0] > 0 else -1, marks[iid], via, charges.get(i, 0))
        for i, (iid, cp, qty, via) in enumerate(pending)
    )


# ------------------------------------------------------------------------------------- backstop + apply


def backstop_capacity_lots(backstop: AccountLike, instrument_id: int, signed_take_lots: int,
                           specs: Mapping[int, InstrumentSpec], marks: Mapping[int, int],
                           buffer_ppm: int = 0) -> int:
    """Most lots (<= |signed_take_lots|) the backstop can take at the mark keeping equity >= MM*(1+buffer).

    Binary search (the requirement only grows with the position in the taken direction once it is
    past flat); at most 64 probes.
    """
    want = abs(signed_take_lots)
    sign = 1 if signed_take_lots > 0 else -1
    spec, mark = specs[instrument_id], marks[instrument_id]
    k = spec.atoms_per_tick_lot

    def ok(qty: int) -> bool:
        shadow = _Shadow(backstop)
        if qty:
            shadow.open_or_add(instrument_id, sign * qty, mark, k)
        equity = _equity(shadow.balance, shadow.positions, specs, marks)
        mm = sum(maintenance_margin_atoms(specs[i], abs(s) * marks[i] * specs[i].atoms_per_tick_lot)
                 for i, (s, _) in shadow.positions.items())
        return equity * PPM >= mm * (PPM + buffer_ppm)

    lo, hi = 0, want
    if ok(hi):
        return hi
    for _ in range(64):
        if lo >= hi - 1:
            break
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo if ok(lo) else 0


def apply_waterfall(plan: WaterfallPlan, accounts: Mapping[int, Account], specs: Mapping[int, InstrumentSpec]) -> int:
    """Apply ``plan`` to engine accounts with ``settle_fill``; returns the insurance-fund delta.

    The engine's own application (with events) must do exactly this; tests use it to prove the plan's
    guarantees with the engine's arithmetic. Positions that end flat and idle are left in place (the
    engine prunes idle positions as it does after fills).
    """
    me = accounts[plan.account_id]
    for close in plan.closes:
        k = specs[close.instrument_id].atoms_per_tick_lot
        other = accounts[close.counterparty_id]
        mine = me.positions[close.instrument_id]
        theirs = other.positions.get(close.instrument_id)
        if theirs is None:
            theirs = other.positions[close.instrument_id] = Position()
        settle_fill(me, mine, -close.account_side * close.qty_lots, close.price_ticks, k)
        settle_fill(other, theirs, close.account_side * close.qty_lots, close.price_ticks, k)
        other.balance_atoms -= close.charge_atoms
        me.balance_atoms += close.charge_atoms
    me.balance_atoms -= plan.insurance_delta_atoms
    for charge in plan.socialized:
        accounts[charge.account_id].balance_atoms -= charge.amount_atoms
        me.balance_atoms += charge.amount_atoms
    return plan.insurance_delta_atoms
