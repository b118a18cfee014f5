"""Loss waterfall for an account the order book could not liquidate: plan, then apply.

When the liquidation IOC (liquidation.py) leaves an account **bankrupt** — equity <= 0 at the marks with
positions left, or flat with a negative balance — :func:`plan_waterfall` returns, in order, every
position transfer and cash movement that closes it out; the engine applies them with its own settlement
arithmetic (``settle_fill``) and emits one event per step (``core/risk_engine.py``). The order is the
issue's and the anchors' (shared/reference/risk-engines.md §1, §2.3-2.5):

1. **The insurance fund takes the position at the bankruptcy price, within its capacity.** BitMEX: the
   liquidation engine takes the position over and "the Insurance Fund is used to prevent ADL; if it is
   depleted, ADL will occur" (bitmex.com/app/autoDeleveraging); Binance: ADL "only when the Insurance
   Fund cannot accept the bankrupt client's positions" (Binance FAQ 360033525471). The fund is an
   account with positions, :data:`INSURANCE_FUND_ACCOUNT_ID` (0, never a client id); its cash is the
   engine's ``insurance_fund_atoms`` and its **equity = cash + unrealized PnL of its inventory**. It takes
   lots at the mark and pays the account their share of the deficit, which is the exact integer form of
   a transfer at the (rational) bankruptcy price. The share of each position is the dYdX bankruptcy
   split ``deficit * MMR_i / TMMR`` (``GetBankruptcyPriceInQuoteQuantums``), pro rata per lot.
   **Capacity:** the fund takes as many lots as keep, after paying, ``cash >= 0``,
   ``equity >= MM * (1 + takeover_buffer_ppm)`` and ``equity >= fund_margin_ppm * inventory notional``
   (default 10 %: the fund never runs more than 10x), and pays at most ``insurance_loss_max_atoms`` per
   account (dYdX ``max_quantums_insurance_lost``; the fund never goes negative,
   ``IsValidInsuranceFundDelta``). Found by bisection (<= 64 probes), each probe exact.
2. **The fund pays what it can of the rest in cash** (its free collateral
   ``min(cash, equity - requirement)``, same cap): the remaining lots' deficit shrinks, so whoever takes
   them next takes them closer to the mark. With a fund that can carry the position this step is empty.
3. **The backstop liquidator account** (Hyperliquid's liquidator vault, optional, ``backstop_account_id``)
   takes lots the same way, paying their remaining share, while its equity stays >= MM * (1 + buffer).
4. **ADL at the bankruptcy price** for what nobody took: opposite positions ranked by the BitMEX /
   Binance rule ``rank = PnL% * effective leverage`` (PnL% > 0) else ``PnL% / effective leverage``, with
   ``PnL% = uPnL / |entry value|`` and ``effective leverage = |mark value| / (mark value - bankrupt
   value)`` = notional / account equity in cross margin (:func:`adl_rank`). Highest first, ties by lowest
   account id, at most ``adl_candidates_max`` examined (dYdX iterates <= 500). Each closes at the mark
   and pays its lots' deficit share as ``charge_atoms`` (= closing at the bankruptcy price), as many lots
   as keep its balance and equity >= 0. When the fund is empty the charge is the whole deficit share, so
   the close is at exactly the bankruptcy price.
5. **ADL at the mark**: lots still open are closed against the same queue at the mark without a charge
   (for counterparties that could not pay it); their deficit share goes on to step 7.
6. **The fund, over capacity** (``over_capacity=True``): lots no counterparty could close at all (every
   opposite holder would go below a zero balance) go to the fund at the mark, whatever its capacity, so
   the account always ends flat. Their deficit share goes on to step 7.
7. **Socialized loss, last resort** (Drift: pro rata after the fund): the uncollected deficit is spread
   over the socialization pool pro rata to each account's loss capacity ``min(balance, equity)``; floor
   remainders go first to ``remainder_account_id``, then by account id.
8. **Bad debt**: whatever is left (nobody can absorb it) is booked to the venue's bad-debt account
   (``RiskEngine.bad_debt_atoms``, which enters the conservation identity with a minus sign) and the
   account is credited to exactly zero. **No balance is left negative.**

The bankrupt account always ends flat at balance 0 (equity <= 0 in: its equity is spent, and every atom
of deficit is paid by exactly one of steps 1-8).

**The fund's inventory** is unwound into the book by the engine over later commands, one reduce-only
IOC per instrument every ``fund_unwind_interval_ns``, ``fund_unwind_fraction_ppm`` of the inventory at a
limit ``fund_unwind_slippage_ppm`` through the mark, never more than its cash can lose. If a price move
takes the fund's equity below zero, the fund itself goes through steps 3-8 (:func:`plan_waterfall` with
the fund as the account): ADL at the fund's bankruptcy price, socialized loss, bad debt.

Guarantees (tests/risk/test_waterfall.py, Hypothesis): conservation to the atom (sum of balance - cost
over accounts, fund cash included, minus bad debt, is unchanged); long OI = short OI; no account the plan
debits ends with a negative balance or negative equity; the fund's cash never goes below zero; every
loop is bounded by ``adl_candidates_max``, ``socialized_accounts_max``, the account's position count and
64 bisection probes.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from fractions import Fraction
from typing import Any, Final, Union

from bastion.core.accounts import Account, Position, settle_fill
from bastion.core.instruments import InstrumentSpec
from bastion.core.risk._types import PPM, AccountLike
from bastion.core.risk.margin_math import maintenance_margin_atoms

__all__ = [
    "INSURANCE_FUND_ACCOUNT_ID",
    "AdlCandidate",
    "BadDebtBooked",
    "CloseVia",
    "ForcedClose",
    "FundPayment",
    "SocializedCharge",
    "WaterfallConfig",
    "WaterfallPlan",
    "WaterfallStep",
    "adl_queue",
    "adl_rank",
    "apply_waterfall",
    "backstop_capacity_lots",
    "cash_safe_close_lots",
    "fund_free_atoms",
    "plan_waterfall",
]

INSURANCE_FUND_ACCOUNT_ID: Final = 0
"""Account id of the insurance fund's position book (client account ids are >= 1)."""

POSITIONS_PER_ACCOUNT_MAX = 256
"""Most open positions one account may have (bounds the per-account loops)."""

BISECTION_PROBES_MAX = 64
"""Probes of a capacity bisection (quantities are < 2**63)."""


@dataclass(frozen=True, slots=True)
class WaterfallConfig:
    """Waterfall parameters (module docstring).

    Attributes:
        insurance_loss_max_atoms: most the fund pays for one account in one waterfall (dYdX
            ``max_quantums_insurance_lost``, $1,000,000 per block).
        adl_candidates_max: ranked counterparties examined per position (dYdX 500).
        socialized_accounts_max: most accounts one socialized loss is spread over.
        remainder_account_id: the named account that takes socialized-loss rounding remainders first.
        fund_margin_ppm: the fund's equity must stay >= this share of its inventory notional after a
            takeover (100,000 = 10 %: at most 10x).
        takeover_buffer_ppm: fund and backstop equity must stay >= maintenance * (1 + buffer) after a
            takeover (the liquidation buffer, Drift 2 %).
        fund_unwind_interval_ns: the fund sends at most one unwind IOC per instrument per interval.
        fund_unwind_fraction_ppm: share of the inventory each unwind IOC offers (at least one lot).
        fund_unwind_slippage_ppm: the unwind IOC's limit, this far through the mark.
    """

    insurance_loss_max_atoms: int = 1_000_000 * 10**6
    adl_candidates_max: int = 500
    socialized_accounts_max: int = 100_000
    remainder_account_id: int = 0
    fund_margin_ppm: int = 100_000
    takeover_buffer_ppm: int = 20_000
    fund_unwind_interval_ns: int = 10**9
    fund_unwind_fraction_ppm: int = 250_000
    fund_unwind_slippage_ppm: int = 10_000

    def __post_init__(self) -> None:
        assert self.insurance_loss_max_atoms >= 0 and self.adl_candidates_max > 0
        assert self.socialized_accounts_max > 0
        assert 0 <= self.fund_margin_ppm <= 10 * PPM and 0 <= self.takeover_buffer_ppm <= 10 * PPM
        assert self.fund_unwind_interval_ns > 0 and 0 < self.fund_unwind_fraction_ppm <= PPM
        assert 0 <= self.fund_unwind_slippage_ppm < PPM

    def extras(self) -> list[Any]:
        """The settings added with the fund's inventory, for the config hash (empty when all default:
        hashes of venues that never set them are unchanged)."""
        default = WaterfallConfig()
        names = ("fund_margin_ppm", "takeover_buffer_ppm", "fund_unwind_interval_ns", "fund_unwind_fraction_ppm",
                 "fund_unwind_slippage_ppm")
        changed = [[name, getattr(self, name)] for name in names if getattr(self, name) != getattr(default, name)]
        return [["waterfall", changed]] if changed else []


class CloseVia(IntEnum):
    """Who took the other side of a forced close."""

    BACKSTOP = 1
    """The backstop liquidator account took the lots at the bankruptcy price."""
    ADL = 2
    """Auto-deleveraged at the bankruptcy price (the charge is the lots' deficit share)."""
    INSURANCE_FUND = 3
    """The insurance fund took the lots at the bankruptcy price (over capacity: at the mark)."""
    ADL_AT_MARK = 4
    """Auto-deleveraged at the mark: the counterparty could not pay the deficit share."""


@dataclass(frozen=True, slots=True)
class ForcedClose:
    """A forced trade at the mark between the bankrupt account and a counterparty.

    Attributes:
        instrument_id: the market.
        account_id: the bankrupt account; its position shrinks toward zero by ``qty_lots``.
        counterparty_id: the fund (0), the backstop or the deleveraged account; it trades the other side.
        qty_lots: lots closed (> 0).
        account_side: sign of the bankrupt account's position (+1 long: it sells; -1 short: it buys).
        price_ticks: the mark price.
        via: fund, backstop, ADL or ADL at the mark.
        charge_atoms: what the counterparty pays the bankrupt account (>= 0): the lots' deficit share,
            so mark + charge is the bankruptcy price; 0 for ``ADL_AT_MARK`` and over-capacity takeovers.
        over_capacity: a fund takeover beyond its capacity (step 6).
    """

    instrument_id: int
    account_id: int
    counterparty_id: int
    qty_lots: int
    account_side: int
    price_ticks: int
    via: CloseVia
    charge_atoms: int
    over_capacity: bool = False


@dataclass(frozen=True, slots=True)
class FundPayment:
    """The insurance fund pays ``amount_atoms`` (> 0) of the account's deficit in cash (step 2)."""

    account_id: int
    amount_atoms: int


@dataclass(frozen=True, slots=True)
class SocializedCharge:
    """A socialized-loss debit of ``amount_atoms`` (> 0) from ``account_id`` to the bankrupt account."""

    account_id: int
    amount_atoms: int


@dataclass(frozen=True, slots=True)
class BadDebtBooked:
    """``amount_atoms`` (> 0) booked to the venue's bad-debt account; ``account_id`` (the bankrupt
    account, or the fund whose cash would otherwise go below zero) is credited."""

    account_id: int
    amount_atoms: int


WaterfallStep = Union[ForcedClose, FundPayment, SocializedCharge, BadDebtBooked]

HoldersSource = Union[Mapping[int, Iterable[AccountLike]], Callable[[int], Iterable[AccountLike]]]
"""Holders per instrument (any order; iterated once): a mapping, or a function called only when ADL needs
them (the engine's)."""

PoolSource = Union[Sequence[AccountLike], Callable[[], Sequence[AccountLike]]]
"""The socialization pool: a sequence, or a function called only when a loss must be socialized."""


@dataclass(frozen=True, slots=True)
class WaterfallPlan:
    """Everything the waterfall does to one bankrupt account, in application order.

    Attributes:
        account_id: the bankrupt account (or the fund, for the fund's own waterfall).
        equity_atoms: its equity at the marks before the plan.
        deficit_atoms: what the plan must cover: ``-equity`` (flat: ``-balance``), >= 0.
        steps: forced closes, fund payments, socialized charges and bad debt, in order.
        unclosed: ``(instrument_id, lots)`` left open (only in the fund's own waterfall).
    """

    account_id: int
    equity_atoms: int
    deficit_atoms: int
    steps: tuple[WaterfallStep, ...]
    unclosed: tuple[tuple[int, int], ...] = field(default=())

    @property
    def closes(self) -> tuple[ForcedClose, ...]:
        """The forced closes (takeovers and ADL), in order."""
        return tuple(s for s in self.steps if isinstance(s, ForcedClose))

    @property
    def socialized(self) -> tuple[SocializedCharge, ...]:
        """The socialized-loss debits."""
        return tuple(s for s in self.steps if isinstance(s, SocializedCharge))

    @property
    def fund_paid_atoms(self) -> int:
        """Cash the fund pays: its takeover charges plus its cash payments."""
        paid = sum(s.amount_atoms for s in self.steps if isinstance(s, FundPayment))
        return paid + sum(c.charge_atoms for c in self.closes if c.counterparty_id == INSURANCE_FUND_ACCOUNT_ID)

    @property
    def bad_debt_atoms(self) -> int:
        """What nobody could absorb (booked to the venue's bad-debt account)."""
        return sum(s.amount_atoms for s in self.steps if isinstance(s, BadDebtBooked))


# ---------------------------------------------------------------------------------------------- ADL rank


def adl_rank(size_lots: int, cost_atoms: int, mark_ticks: int, k: int, equity_atoms: int) -> Fraction | None:
    """ADL rank of one position (BitMEX / Binance; module docstring), exact as a fraction.

    Args:
        size_lots: signed size (!= 0); cost_atoms: signed entry value; mark_ticks: mark; k: atoms per
        tick-lot; equity_atoms: the account's equity at marks (the cross-margin "mark value - bankrupt
        value").

    Returns:
        ``PnL% * leverage`` (PnL% > 0) or ``PnL% / leverage`` (otherwise), or None when equity <= 0 (the
        account is bankrupt itself and cannot pay a charge).
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


_RANK_SCALE_BITS = 64
"""Bits of the integer rank key the scan sorts by before the exact comparison (:func:`adl_queue`)."""


def adl_queue(accounts: Iterable[AccountLike], instrument_id: int, side: int, specs: Mapping[int, InstrumentSpec],
              marks: Mapping[int, int], candidates_max: int, exclude: Collection[int] = ()) -> list[AdlCandidate]:
    """Positions on ``side`` (+1 longs, -1 shorts) of ``instrument_id`` in deleveraging order.

    Highest rank first, ties by lowest account id; accounts with equity <= 0 have no rank and come last
    (by id): they can pay no charge, only close at the mark. At most ``candidates_max`` are returned;
    accounts in ``exclude`` are skipped; the order of ``accounts`` does not matter.

    Cost: one pass over the ``n`` accounts given with integer arithmetic only (equity, and the rank as a
    fraction ``num / den`` keyed by ``floor(num * 2**64 / den)``), a selection of the ``candidates_max``
    largest keys, and the exact :func:`adl_rank` comparison only among the accounts whose key reaches
    the last selected one: floor is monotone, so the true top ``candidates_max`` are all among them.
    ``O(n + c log c)``, about 1 µs per holder in CPython. It stays linear in the holders of the
    instrument: the rank depends on the mark and, through cross-margin equity, on every mark of the
    account, so no order of the holders survives a price move (two accounts' ranks cross as the mark
    moves); docs/risk-integration.md §10 has the figures.
    """
    return [candidate for candidate, _ in _adl_ranked(accounts, instrument_id, side, specs, marks, candidates_max,
                                                      exclude)]


def _adl_ranked(accounts: Iterable[AccountLike], instrument_id: int, side: int, specs: Mapping[int, InstrumentSpec],
                marks: Mapping[int, int], candidates_max: int,
                exclude: Collection[int]) -> list[tuple[AdlCandidate, AccountLike]]:
    """:func:`adl_queue` with each candidate's account (one pass over ``accounts``)."""
    spec, mark = specs[instrument_id], marks[instrument_id]
    k = spec.atoms_per_tick_lot
    keys: list[int] = []  # -floor(rank * 2**64), parallel to rows
    rows: list[tuple[int, int, int, int, int, int, AccountLike]] = []  # (id, num, den, size, cost, equity, account)
    unranked: list[tuple[AdlCandidate, AccountLike]] = []
    for account in accounts:
        pos = account.positions.get(instrument_id)
        if pos is None:
            continue
        size = pos.size_lots
        if size * side <= 0 or account.account_id in exclude:
            continue
        equity = account.balance_atoms
        held = 0
        for pid, p in account.positions.items():
            psize = p.size_lots
            if psize:
                equity += psize * marks[pid] * specs[pid].atoms_per_tick_lot - p.cost_atoms
                held += 1
        assert held <= POSITIONS_PER_ACCOUNT_MAX
        cost = pos.cost_atoms
        if equity <= 0:
            unranked.append((AdlCandidate(account.account_id, size, cost, equity, None), account))
            continue
        assert cost != 0 and mark > 0
        notional = (size if size > 0 else -size) * mark * k
        upnl = size * mark * k - cost
        entry = cost if cost > 0 else -cost
        if upnl > 0:  # adl_rank, as num / den with den > 0
            num, den = upnl * notional, entry * equity
        else:
            num, den = upnl * equity, entry * notional
        keys.append(-((num << _RANK_SCALE_BITS) // den))
        rows.append((account.account_id, num, den, size, cost, equity, account))
    if len(rows) > candidates_max:
        cut = heapq.nsmallest(candidates_max, keys)[-1]  # the key of the last selected
        rows = [row for key, row in zip(keys, rows) if key <= cut]
    exact = sorted(rows, key=lambda r: (-Fraction(r[1], r[2]), r[0]))[:candidates_max]
    best = [(AdlCandidate(aid, size, cost, equity, Fraction(num, den)), account)
            for aid, num, den, size, cost, equity, account in exact]
    if len(best) < candidates_max:
        best += sorted(unranked, key=lambda c: c[0].account_id)[:candidates_max - len(best)]
    return best


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


def _margin_and_notional(positions: Mapping[int, list[int]], specs: Mapping[int, InstrumentSpec],
                         marks: Mapping[int, int]) -> tuple[int, int]:
    mm = notional = 0
    for iid, (size, _) in positions.items():
        value = abs(size) * marks[iid] * specs[iid].atoms_per_tick_lot
        mm += maintenance_margin_atoms(specs[iid], value)
        notional += value
    return mm, notional


class _Shadow:
    """Copy-on-touch working state of one account while planning (the inputs are never mutated)."""

    __slots__ = ("balance", "positions")

    def __init__(self, balance: int, positions: dict[int, list[int]]) -> None:
        self.balance = balance
        self.positions = positions

    @classmethod
    def of(cls, account: AccountLike) -> _Shadow:
        return cls(account.balance_atoms, _open(account))

    def copy(self) -> _Shadow:
        return _Shadow(self.balance, {iid: list(sc) for iid, sc in self.positions.items()})

    def equity(self, specs: Mapping[int, InstrumentSpec], marks: Mapping[int, int]) -> int:
        return _equity(self.balance, self.positions, specs, marks)

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
        """Take ``signed_qty`` lots at ``price`` (a taker's side of a takeover; settle_fill's rules)."""
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
        return max(0, min(self.balance, self.equity(specs, marks)))


def _fund_requirement(shadow: _Shadow, specs: Mapping[int, InstrumentSpec], marks: Mapping[int, int],
                      config: WaterfallConfig) -> int:
    """Equity the fund must keep for its inventory: max(MM * (1 + buffer), fund_margin * notional)."""
    if not shadow.positions:
        return 0
    mm, notional = _margin_and_notional(shadow.positions, specs, marks)
    return max(-(-mm * (PPM + config.takeover_buffer_ppm) // PPM), -(-notional * config.fund_margin_ppm // PPM))


def fund_free_atoms(fund: AccountLike, specs: Mapping[int, InstrumentSpec], marks: Mapping[int, int],
                    config: WaterfallConfig) -> int:
    """Cash the fund (``balance_atoms`` = its cash) may pay out: ``min(cash, equity - requirement)``, >= 0."""
    shadow = _Shadow.of(fund)
    return _fund_free(shadow, specs, marks, config)


def _fund_free(shadow: _Shadow, specs: Mapping[int, InstrumentSpec], marks: Mapping[int, int],
               config: WaterfallConfig) -> int:
    free = shadow.equity(specs, marks) - _fund_requirement(shadow, specs, marks, config)
    return max(0, min(shadow.balance, free))


def _max_lots(want: int, feasible: Callable[[int], bool]) -> int:
    """Largest q in [0, want] found feasible by bisection (q = 0 is the no-op); every q returned > 0 was
    probed feasible, so a non-monotone edge can only make the answer smaller, never unsafe."""
    if want <= 0:
        return 0
    if feasible(want):
        return want
    lo, hi = 0, want
    for _ in range(BISECTION_PROBES_MAX):
        if hi - lo <= 1:
            break
        mid = (lo + hi) // 2
        if feasible(mid):
            lo = mid
        else:
            hi = mid
    return lo


class _Lots:
    """The not yet transferred part of one bankrupt position and the deficit it still carries."""

    __slots__ = ("iid", "side", "lots", "deficit")

    def __init__(self, iid: int, side: int, lots: int, deficit: int) -> None:
        self.iid, self.side, self.lots, self.deficit = iid, side, lots, deficit

    def share(self, qty: int) -> int:
        """Deficit share of ``qty`` lots (floor; the last lots carry the remainder, so totals are exact)."""
        return self.deficit if qty == self.lots else self.deficit * qty // self.lots

    def take(self, qty: int, share: int) -> None:
        assert 0 < qty <= self.lots and 0 <= share <= self.deficit
        self.lots -= qty
        self.deficit -= share


def _split_deficit(me: _Shadow, deficit: int, specs: Mapping[int, InstrumentSpec],
                   marks: Mapping[int, int]) -> list[_Lots]:
    """The deficit split over the positions by maintenance share (dYdX), exact; by instrument id."""
    ids = sorted(me.positions)
    if not ids:
        return []
    mms = {iid: maintenance_margin_atoms(specs[iid], abs(me.positions[iid][0]) * marks[iid]
                                         * specs[iid].atoms_per_tick_lot) for iid in ids}
    total = sum(mms.values())
    shares = {iid: deficit * mms[iid] // total for iid in ids[:-1]}
    shares[ids[-1]] = deficit - sum(shares.values())
    return [_Lots(iid, 1 if me.positions[iid][0] > 0 else -1, abs(me.positions[iid][0]), shares[iid]) for iid in ids]


# ------------------------------------------------------------------------------------------ planning


class _Planner:
    """Working state of one :func:`plan_waterfall` call (shadows, steps, the fund's remaining cap)."""

    def __init__(self, account: AccountLike, specs: Mapping[int, InstrumentSpec], marks: Mapping[int, int],
                 fund: AccountLike, config: WaterfallConfig) -> None:
        self.account_id = account.account_id
        self.specs, self.marks, self.config = specs, marks, config
        self.shadows: dict[int, _Shadow] = {account.account_id: _Shadow.of(account)}
        self.me = self.shadows[account.account_id]
        if fund.account_id not in self.shadows:
            self.shadows[fund.account_id] = _Shadow.of(fund)
        self.fund = self.shadows[fund.account_id]
        self.fund_id = fund.account_id
        self.fund_cap = config.insurance_loss_max_atoms
        self.steps: list[WaterfallStep] = []
        self.uncollected = 0

    def of(self, account: AccountLike) -> _Shadow:
        found = self.shadows.get(account.account_id)
        if found is None:
            found = self.shadows[account.account_id] = _Shadow.of(account)
        return found

    def transfer(self, lot: _Lots, taker_id: int, qty: int, share: int, charge: int, via: CloseVia,
                 over_capacity: bool = False) -> None:
        """Move ``qty`` lots to the taker at the mark; the taker pays ``charge`` (<= the lots' ``share``),
        the rest of the share stays uncollected (steps 7-8)."""
        iid = lot.iid
        k, mark = self.specs[iid].atoms_per_tick_lot, self.marks[iid]
        taker = self.shadows[taker_id]
        self.me.close(iid, qty, mark, k)
        if via in (CloseVia.ADL, CloseVia.ADL_AT_MARK):
            taker.close(iid, qty, mark, k)
        else:
            taker.open_or_add(iid, lot.side * qty, mark, k)
        taker.balance -= charge
        self.me.balance += charge
        lot.take(qty, share)
        self.uncollected += share - charge
        self.steps.append(ForcedClose(iid, self.account_id, taker_id, qty, lot.side, mark, via, charge, over_capacity))
        if taker_id == self.fund_id and taker.balance < 0:
            # Over capacity against the fund's own opposite inventory: realizing it cost more than the
            # fund's cash. The shortfall is the venue's (the fund's cash never goes below zero).
            self.steps.append(BadDebtBooked(taker_id, -taker.balance))
            taker.balance = 0

    def takeover(self, lot: _Lots, taker_id: int, via: CloseVia, ok: Callable[[_Shadow], bool],
                 capped: bool) -> None:
        """Steps 1 and 3: the taker takes as many lots as ``ok`` allows after paying their share."""
        k, mark = self.specs[lot.iid].atoms_per_tick_lot, self.marks[lot.iid]
        taker = self.shadows[taker_id]

        def feasible(qty: int) -> bool:
            share = lot.share(qty)
            if capped and share > self.fund_cap:
                return False
            trial = taker.copy()
            trial.open_or_add(lot.iid, lot.side * qty, mark, k)
            trial.balance -= share
            return ok(trial)

        qty = _max_lots(lot.lots, feasible)
        if qty:
            share = lot.share(qty)
            if capped:
                self.fund_cap -= share
            self.transfer(lot, taker_id, qty, share, share, via)

    def fund_pays(self, lots: list[_Lots], flat_deficit: int) -> int:
        """Step 2: the fund's free cash pays down the remaining deficit; returns the flat part left."""
        owed = flat_deficit + sum(lot.deficit for lot in lots)
        paid = min(owed, _fund_free(self.fund, self.specs, self.marks, self.config), self.fund_cap)
        if paid <= 0:
            return flat_deficit
        self.fund_cap -= paid
        self.fund.balance -= paid
        self.me.balance += paid
        self.steps.append(FundPayment(self.account_id, paid))
        rest = paid
        from_flat = min(rest, flat_deficit)
        rest -= from_flat
        for lot in lots:
            part = min(rest, lot.deficit)
            lot.deficit -= part
            rest -= part
        assert rest == 0
        return flat_deficit - from_flat

    def deleverage(self, lot: _Lots, holders: Iterable[AccountLike], exclude: Collection[int]) -> None:
        """Steps 4 and 5: ranked opposite positions, first at the bankruptcy price, then at the mark."""
        ranked = _adl_ranked(holders, lot.iid, -lot.side, self.specs, self.marks, self.config.adl_candidates_max,
                             exclude)
        by_id = {candidate.account_id: account for candidate, account in ranked}
        queue = [candidate for candidate, _ in ranked]
        k, mark = self.specs[lot.iid].atoms_per_tick_lot, self.marks[lot.iid]
        for via in (CloseVia.ADL, CloseVia.ADL_AT_MARK):
            for candidate in queue:
                if lot.lots == 0:
                    return
                other = self.of(by_id[candidate.account_id])
                pos = other.positions.get(lot.iid)
                if pos is None or pos[0] * lot.side >= 0:
                    continue
                at_mark = via == CloseVia.ADL_AT_MARK

                def feasible(qty: int, other: _Shadow = other, at_mark: bool = at_mark) -> bool:
                    trial = other.copy()
                    trial.close(lot.iid, qty, mark, k)
                    if at_mark:
                        return trial.balance >= 0
                    trial.balance -= lot.share(qty)
                    return trial.balance >= 0 and trial.equity(self.specs, self.marks) >= 0

                qty = _max_lots(min(lot.lots, abs(pos[0])), feasible)
                if qty:
                    share = lot.share(qty)
                    self.transfer(lot, candidate.account_id, qty, share, 0 if at_mark else share, via)

    def socialize(self, amount: int, pool: Sequence[AccountLike], exclude: Collection[int]) -> int:
        """Step 7: spread ``amount`` pro rata to loss capacity; remainders to the named account, then by
        id. Returns what was socialized."""
        if amount <= 0:
            return 0
        members = sorted((a for a in pool if a.account_id not in exclude), key=lambda a: a.account_id)
        members = members[:self.config.socialized_accounts_max]
        shadows = [self.of(a) for a in members]
        caps = [s.capacity(self.specs, self.marks) for s in shadows]
        total = sum(caps)
        if total == 0:
            return 0
        target = min(amount, total)
        amounts = [target * c // total for c in caps]  # <= c because target <= total
        rest = target - sum(amounts)
        named = self.config.remainder_account_id
        order = sorted(range(len(members)), key=lambda i: (members[i].account_id != named, members[i].account_id))
        for i in order:
            if rest == 0:
                break
            extra = min(rest, caps[i] - amounts[i])
            amounts[i] += extra
            rest -= extra
        assert rest == 0
        for acct, shadow, share in zip(members, shadows, amounts):
            if share > 0:
                shadow.balance -= share
                self.me.balance += share
                self.steps.append(SocializedCharge(acct.account_id, share))
        return target


def plan_waterfall(account: AccountLike, specs: Mapping[int, InstrumentSpec], marks: Mapping[int, int],
                   fund: AccountLike, holders: HoldersSource, socialization_pool: PoolSource,
                   config: WaterfallConfig, backstop: AccountLike | None = None) -> WaterfallPlan:
    """Plan the waterfall for ``account`` (module docstring). Pure: no input is mutated.

    Args:
        account: the bankrupt account (equity <= 0 with positions, or flat with a negative balance), its
            orders already canceled. Passing ``fund`` itself plans the fund's own waterfall (steps 3-8).
        specs / marks: by instrument id.
        fund: the insurance fund as an account: ``account_id`` 0, ``balance_atoms`` = the fund's cash
            (>= 0), ``positions`` = its inventory.
        holders: per instrument, accounts that may hold the opposite side (any order; ranked here; the
            account, the fund and the backstop are skipped); a mapping or a function of the instrument
            id, called only if ADL is reached (a fund that takes everything costs no holder scan).
        socialization_pool: accounts that share a socialized loss (the account and the fund are
            skipped); a sequence or a function called only if a loss is socialized.
        config: limits, the fund's capacity rule and the named remainder account.
        backstop: the backstop liquidator account, if any.

    Returns:
        The :class:`WaterfallPlan`; applied, the account ends flat at balance 0 (the fund's own
        waterfall may leave ``unclosed`` inventory).
    """
    assert fund.balance_atoms >= 0
    plan = _Planner(account, specs, marks, fund, config)
    me = plan.me
    is_fund = account.account_id == fund.account_id
    equity = me.equity(specs, marks)
    deficit = max(0, -equity) if me.positions else max(0, -me.balance)
    lots = _split_deficit(me, deficit, specs, marks)
    flat_deficit = 0 if me.positions else deficit
    skip = {account.account_id, fund.account_id}
    use_backstop = backstop is not None and backstop.account_id not in skip
    if use_backstop:
        assert backstop is not None
        skip.add(backstop.account_id)
        plan.of(backstop)

    def fund_ok(trial: _Shadow) -> bool:
        return trial.balance >= 0 and trial.equity(specs, marks) >= _fund_requirement(trial, specs, marks, config)

    def backstop_ok(trial: _Shadow) -> bool:
        mm, _ = _margin_and_notional(trial.positions, specs, marks)
        return trial.balance >= 0 and trial.equity(specs, marks) * PPM >= mm * (PPM + config.takeover_buffer_ppm)

    if not is_fund:
        for lot in lots:
            plan.takeover(lot, fund.account_id, CloseVia.INSURANCE_FUND, fund_ok, capped=True)
        flat_deficit = plan.fund_pays(lots, flat_deficit)
    for lot in lots:
        if use_backstop and lot.lots:
            assert backstop is not None
            plan.takeover(lot, backstop.account_id, CloseVia.BACKSTOP, backstop_ok, capped=False)
        if lot.lots:
            plan.deleverage(lot, holders.get(lot.iid, ()) if isinstance(holders, Mapping) else holders(lot.iid),
                            skip)
    unclosed: list[tuple[int, int]] = []
    for lot in lots:
        if lot.lots and is_fund:
            unclosed.append((lot.iid, lot.lots))
        elif lot.lots:
            plan.transfer(lot, fund.account_id, lot.lots, lot.deficit, 0, CloseVia.INSURANCE_FUND, over_capacity=True)
    owed = plan.uncollected + flat_deficit
    if owed > 0:
        pool = socialization_pool if isinstance(socialization_pool, Sequence) else socialization_pool()
        owed -= plan.socialize(owed, pool, {account.account_id, fund.account_id})
    if owed > 0:
        me.balance += owed
        plan.steps.append(BadDebtBooked(account.account_id, owed))
    if is_fund and me.balance < 0:  # unclosed inventory whose share the fund's cash cannot carry
        plan.steps.append(BadDebtBooked(account.account_id, -me.balance))
        me.balance = 0
    if not is_fund:
        assert not me.positions and me.balance == max(0, equity)
    return WaterfallPlan(account.account_id, equity, deficit, tuple(plan.steps), tuple(unclosed))


# ------------------------------------------------------------------------------------- backstop + apply


def backstop_capacity_lots(backstop: AccountLike, instrument_id: int, signed_take_lots: int,
                           specs: Mapping[int, InstrumentSpec], marks: Mapping[int, int],
                           buffer_ppm: int = 0) -> int:
    """Most lots (<= |signed_take_lots|) the backstop can take at the mark keeping equity >= MM*(1+buffer).

    (Without paying a deficit; :func:`plan_waterfall` applies the same rule after the payment.)
    """
    want = abs(signed_take_lots)
    sign = 1 if signed_take_lots > 0 else -1
    k = specs[instrument_id].atoms_per_tick_lot
    mark = marks[instrument_id]
    base = _Shadow.of(backstop)

    def ok(qty: int) -> bool:
        shadow = base.copy()
        if qty:
            shadow.open_or_add(instrument_id, sign * qty, mark, k)
        mm, _ = _margin_and_notional(shadow.positions, specs, marks)
        return shadow.equity(specs, marks) * PPM >= mm * (PPM + buffer_ppm)

    qty = _max_lots(want, ok)
    return qty if qty or ok(0) else 0


def cash_safe_close_lots(cash_atoms: int, size_lots: int, cost_atoms: int, price_ticks: int, k: int,
                         want_lots: int) -> int:
    """Most lots (<= ``want_lots``, <= |size|) whose close at ``price_ticks`` keeps ``cash + realized >= 0``.

    The fund's unwind IOC is sized with it, so a fill at its limit (or better) never takes the fund's cash
    below zero. Exact (settle_fill's rounding), by bisection.
    """
    assert size_lots != 0 and price_ticks > 0 and cash_atoms >= 0
    base = _Shadow(cash_atoms, {0: [size_lots, cost_atoms]})

    def feasible(qty: int) -> bool:
        trial = base.copy()
        trial.close(0, qty, price_ticks, k)
        return trial.balance >= 0

    return _max_lots(min(want_lots, abs(size_lots)), feasible)


def apply_waterfall(plan: WaterfallPlan, accounts: Mapping[int, Account], specs: Mapping[int, InstrumentSpec]) -> int:
    """Apply ``plan`` to engine accounts with ``settle_fill``; returns the bad debt booked.

    ``accounts`` holds the fund as account 0 whose ``balance_atoms`` is its cash (the engine keeps that
    cash in ``insurance_fund_atoms`` instead and emits events; ``RiskEngine._apply_plan`` does exactly
    this otherwise). Tests use it to prove the plan's guarantees with the engine's arithmetic. Positions
    that end flat are left in place.
    """
    me = accounts[plan.account_id]
    for step in plan.steps:
        if isinstance(step, ForcedClose):
            k = specs[step.instrument_id].atoms_per_tick_lot
            other = accounts[step.counterparty_id]
            theirs = other.positions.get(step.instrument_id)
            if theirs is None:
                theirs = other.positions[step.instrument_id] = Position()
            settle_fill(me, me.positions[step.instrument_id], -step.account_side * step.qty_lots, step.price_ticks, k)
            settle_fill(other, theirs, step.account_side * step.qty_lots, step.price_ticks, k)
            other.balance_atoms -= step.charge_atoms
            me.balance_atoms += step.charge_atoms
        elif isinstance(step, FundPayment):
            accounts[INSURANCE_FUND_ACCOUNT_ID].balance_atoms -= step.amount_atoms
            me.balance_atoms += step.amount_atoms
        elif isinstance(step, SocializedCharge):
            accounts[step.account_id].balance_atoms -= step.amount_atoms
            me.balance_atoms += step.amount_atoms
        else:
            accounts[step.account_id].balance_atoms += step.amount_atoms
    return plan.bad_debt_atoms
