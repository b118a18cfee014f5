"""Partial liquidation: which position, how much, at what limit price, and the liquidation fee.

A liquidatable account (``equity < maintenance``, margin_math.py) gets one IOC order per step, on the
position carrying the largest maintenance margin (ties: lowest instrument id):

1. **Bankruptcy price of the close** (dYdX v4 ``GetBankruptcyPriceInQuoteQuantums``): the closed part
   may consume the share of the account's equity that it carries in maintenance margin.
2. **Fillable price = the IOC limit** (dYdX v4 ``GetFillablePrice``, re-anchored on the bankruptcy price):
   ``ABR = clamp(BA * (1 - TNC/TMMR), 0, 1)``, ``f = min(1, ABR * SMMR)`` and the limit is
   ``mark - f * (mark - bankruptcy)`` for a long (sell) and ``mark + f * (bankruptcy - mark)`` for a short
   (buy), rounded to the less adverse side (up for a sell, down for a buy: the venue's favour). An account just below
   maintenance (TNC = TMMR) gets a limit at the mark; one at zero equity may fill down to its bankruptcy
   price. The limit always lies between the mark and the bankruptcy price, so a book fill never needs
   the insurance fund. (dYdX lets fills pass the bankruptcy price and the fund pays; here that is the
   waterfall's job, waterfall.py.)
3. **Size: just enough** (Drift: "liquidate until MR + liquidation buffer", 2 % buffer): the smallest
   close ``D`` such that, even if every lot fills at the limit and pays the liquidation fee and the taker
   fee, ``equity' >= maintenance' * (1 + buffer)``. Solved in closed form bracket by bracket (the
   requirement is piecewise linear in the remaining size) with a conservative bound on every rounding,
   so the inequality provably holds after the close. If no partial close can restore the account
   (fees and slippage cost more per lot than the margin they free), the whole position is closed.
4. **Floors and caps**: at least ``min_notional_atoms`` (dYdX ``min_position_notional_liquidated``
   $1,000) or the whole position; never leave a remainder below that notional (no dust); at most the
   account's remaining allowance of ``max_notional_per_interval_atoms`` per ``interval_ns`` (dYdX
   subaccount ``max_notional_liquidated`` $100,000 per block) so a cascade is spread over time. A
   bankrupt account (equity <= 0) is closed whole without throttling: the waterfall takes what the book
   cannot.
5. **Fee** (dYdX ``GetLiquidationInsuranceFundDelta``): per fill, the insurance fund receives
   ``min(fee_ppm * fill notional, proceeds - bankruptcy value)``, never more than the fill beats the
   bankruptcy value by, so the fee never makes the account negative.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from bastion.core.instruments import InstrumentSpec
from bastion.core.risk._types import PPM, AccountLike
from bastion.core.risk.margin_math import _ceil_div, maintenance_margin_atoms, position_maintenance_atoms

__all__ = [
    "LiquidationConfig",
    "LiquidationOrder",
    "ThrottleWindow",
    "fillable_price_ticks",
    "liquidation_allowance_atoms",
    "liquidation_close_lots",
    "liquidation_fee_atoms",
    "partial_close_lots",
    "plan_liquidation",
    "plan_position_liquidation",
    "throttle_record",
]


@dataclass(frozen=True, slots=True)
class LiquidationConfig:
    """Liquidation parameters (defaults from the anchors, shared/reference/risk-engines.md §2.1-2.2).

    Attributes:
        buffer_ppm: margin buffer to restore above maintenance (Drift 2 % = 20,000).
        fee_ppm: liquidation fee to the insurance fund, ppm of fill notional (dYdX code default 0.5 %;
            genesis maximum 1.5 %; Binance BTCUSDT 0.3 %... here 5,000).
        bankruptcy_adjustment_ppm: dYdX BA (genesis 1.0).
        spread_to_maintenance_ppm: dYdX SMMR (genesis 1.5).
        min_notional_atoms: smallest liquidation, atoms (dYdX $1,000).
        max_notional_per_interval_atoms: cap per account per interval (dYdX $100,000 per block).
        interval_ns: the throttle interval (1 s ~ one dYdX block).
        liquidations_per_command_max: accounts liquidated per command (dYdX 50 attempts per block).
    """

    buffer_ppm: int = 20_000
    fee_ppm: int = 5_000
    bankruptcy_adjustment_ppm: int = 1_000_000
    spread_to_maintenance_ppm: int = 1_500_000
    min_notional_atoms: int = 1_000 * 10**6
    max_notional_per_interval_atoms: int = 100_000 * 10**6
    interval_ns: int = 1_000_000_000
    liquidations_per_command_max: int = 50

    def __post_init__(self) -> None:
        assert 0 <= self.buffer_ppm <= PPM and 0 <= self.fee_ppm <= PPM // 10
        assert 0 <= self.bankruptcy_adjustment_ppm <= 10 * PPM and 0 <= self.spread_to_maintenance_ppm <= 10 * PPM
        assert self.min_notional_atoms >= 0 and self.max_notional_per_interval_atoms > 0
        assert self.interval_ns > 0 and self.liquidations_per_command_max > 0


@dataclass(frozen=True, slots=True)
class ThrottleWindow:
    """An account's liquidation notional used in its current interval (engine state, journaled by replay)."""

    window_start_ns: int
    used_atoms: int


def liquidation_allowance_atoms(window: ThrottleWindow | None, now_ns: int, config: LiquidationConfig) -> int:
    """Notional (atoms) the account may still be liquidated for in the interval holding ``now_ns``."""
    if window is None or now_ns >= window.window_start_ns + config.interval_ns:
        return config.max_notional_per_interval_atoms
    return max(0, config.max_notional_per_interval_atoms - window.used_atoms)


def throttle_record(window: ThrottleWindow | None, now_ns: int, notional_atoms: int,
                    config: LiquidationConfig) -> ThrottleWindow:
    """The window after liquidating ``notional_atoms`` (>= 0) at ``now_ns`` (a new window if expired)."""
    assert notional_atoms >= 0
    if window is None or now_ns >= window.window_start_ns + config.interval_ns:
        return ThrottleWindow(now_ns, notional_atoms)
    return ThrottleWindow(window.window_start_ns, window.used_atoms + notional_atoms)


def fillable_price_ticks(size_lots: int, mark_ticks: int, bankruptcy_ticks: int, equity_atoms: int,
                         maintenance_atoms: int, config: LiquidationConfig) -> int:
    """Limit price of the IOC that closes (part of) a position of ``size_lots`` (module docstring §2).

    Returns:
        A price between the mark and the bankruptcy price (inclusive), rounded up for a sell and down
        for a buy (less adverse), and at least 1 tick.
    """
    assert size_lots != 0 and mark_ticks > 0 and maintenance_atoms > 0
    f_num, f_den = _fillable_fraction(equity_atoms, maintenance_atoms, config)
    return _fillable(size_lots, mark_ticks, bankruptcy_ticks, f_num, f_den)


def _fillable_fraction(equity_atoms: int, maintenance_atoms: int, config: LiquidationConfig) -> tuple[int, int]:
    """``f = min(1, clamp(BA * (TMMR - TNC) / TMMR, 0, 1) * SMMR)`` as an exact fraction (num, den)."""
    abr_den = PPM * maintenance_atoms
    abr_num = min(max(config.bankruptcy_adjustment_ppm * (maintenance_atoms - equity_atoms), 0), abr_den)
    f_den = abr_den * PPM
    return min(abr_num * config.spread_to_maintenance_ppm, f_den), f_den


def _fillable(size_lots: int, mark_ticks: int, bankruptcy_ticks: int, f_num: int, f_den: int) -> int:
    """The limit for fraction f_num / f_den, rounded once toward the less adverse side."""
    if size_lots > 0:
        limit = mark_ticks - (mark_ticks - bankruptcy_ticks) * f_num // f_den
    else:
        limit = mark_ticks + (bankruptcy_ticks - mark_ticks) * f_num // f_den
    assert min(mark_ticks, bankruptcy_ticks) <= limit <= max(mark_ticks, bankruptcy_ticks)
    return limit if limit > 1 else 1


def partial_close_lots(spec: InstrumentSpec, size_lots: int, mark_ticks: int, limit_price_ticks: int,
                       equity_atoms: int, maintenance_atoms: int, config: LiquidationConfig) -> int:
    """Smallest close restoring ``equity' >= maintenance' * (1 + buffer)`` with every fill at the limit.

    Per lot closed the account pays at most ``c = slippage to the limit + (liquidation + taker fee) at
    the limit + 2 atoms`` (fees round up once per fill and a fill is at least one lot); a fill at a
    better price only helps (its extra fee is smaller than its price improvement). With ``x`` lots
    left, maintenance is bounded by ``O + (x*M*k*mmf_t - ded_t + PPM - 1) / PPM`` in bracket t (O = the
    other positions' maintenance). The sufficient condition

        PPM**2 * E - PPM * c * (S - x) >= (PPM + buffer) * (PPM * O + x*M*k*mmf_t - ded_t + PPM - 1)

    is linear in x inside a bracket (``A * x <= D``); the brackets are walked from the current one down
    and the largest feasible x (smallest close) is returned as ``S - x``.

    Args:
        spec: the instrument.
        size_lots: signed position size, != 0.
        mark_ticks: mark price (> 0).
        limit_price_ticks: the IOC limit (fillable_price_ticks).
        equity_atoms / maintenance_atoms: the whole account's, at marks (liquidatable: E < MM).
        config: buffer and fee.

    Returns:
        Lots to close, 1..|size_lots| (|size_lots| when no partial close can restore the account).
    """
    own_mm = position_maintenance_atoms(spec, size_lots, mark_ticks)
    return _partial_close_lots(spec, size_lots, mark_ticks, limit_price_ticks, equity_atoms,
                               maintenance_atoms - own_mm, config)


def _partial_close_lots(spec: InstrumentSpec, size_lots: int, mark_ticks: int, limit_price_ticks: int,
                        equity_atoms: int, other_mm: int, config: LiquidationConfig) -> int:
    """:func:`partial_close_lots` with the other positions' maintenance margin already known."""
    abs_size = size_lots if size_lots > 0 else -size_lots
    k = spec.atoms_per_tick_lot
    assert abs_size > 0 and mark_ticks > 0 and limit_price_ticks > 0 and other_mm >= 0
    slip_ticks = (mark_ticks - limit_price_ticks) if size_lots > 0 else (limit_price_ticks - mark_ticks)
    fee_rate_ppm = config.fee_ppm + max(spec.taker_fee_ppm, 0)
    cost_scaled = slip_ticks * k * PPM + limit_price_ticks * k * fee_rate_ppm + 2 * PPM  # atom*ppm per lot
    scale = PPM + config.buffer_ppm
    lot_notional = mark_ticks * k
    tiers = spec.margin_tiers
    last = len(tiers) - 1
    notional = abs_size * lot_notional
    index = 0
    while index < last and notional > tiers[index].notional_max_atoms:
        index += 1  # start in the bracket of the current size: larger remainders are impossible
    fixed = PPM * PPM * equity_atoms - PPM * cost_scaled * abs_size - scale * (PPM * other_mm + PPM - 1)
    for _ in range(len(tiers)):
        if index < 0:
            break
        tier = tiers[index]
        x_lo = 0 if index == 0 else tiers[index - 1].notional_max_atoms // lot_notional + 1
        x_hi = abs_size if index == last else min(abs_size, tier.notional_max_atoms // lot_notional)
        index -= 1
        if x_lo > x_hi:
            continue
        a = scale * lot_notional * tier.mmf_ppm - PPM * cost_scaled
        d = fixed + scale * tier.mm_deduction_atom_ppm
        if a > 0:
            best = min(x_hi, d // a)
        elif a == 0:
            best = x_hi if d >= 0 else -1
        else:
            best = x_hi if x_hi >= _ceil_div(-d, -a) else -1
        if best >= x_lo:
            return max(abs_size - best, 1)
    return abs_size


def liquidation_close_lots(needed_lots: int, abs_size_lots: int, mark_ticks: int, k: int,
                           allowance_atoms: int, config: LiquidationConfig) -> int:
    """Apply the floor, the no-dust rule and the interval cap to a needed close (module docstring §4).

    Returns:
        Lots to close now, 0..abs_size_lots (0 when the interval's allowance is used up).
    """
    assert 1 <= needed_lots <= abs_size_lots and allowance_atoms >= 0
    lot_notional = mark_ticks * k
    close = max(needed_lots, _ceil_div(config.min_notional_atoms, lot_notional))
    close = min(close, abs_size_lots)
    if (abs_size_lots - close) * lot_notional < config.min_notional_atoms:
        close = abs_size_lots
    close = min(close, allowance_atoms // lot_notional)
    assert 0 <= close <= abs_size_lots
    return close


class LiquidationOrder(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One liquidation step for one account: an IOC order the engine sends to the book.

    Attributes:
        account_id / instrument_id: whose position, which market.
        side: order side, +1 buy (closing a short) / -1 sell (closing a long).
        qty_lots: lots to close now (> 0).
        limit_price_ticks: IOC limit (the fillable price).
        bankruptcy_price_ticks: bankruptcy price of this close (fee / insurance split per fill).
        mark_ticks: the mark the plan used.
        equity_atoms / maintenance_atoms: account health at plan time.
        bankrupt: equity <= 0: whatever the book does not fill goes to the waterfall.
    """

    account_id: int
    instrument_id: int
    side: int
    qty_lots: int
    limit_price_ticks: int
    bankruptcy_price_ticks: int
    mark_ticks: int
    equity_atoms: int
    maintenance_atoms: int
    bankrupt: bool


def plan_liquidation(account: AccountLike, specs: Mapping[int, InstrumentSpec], marks: Mapping[int, int],
                     config: LiquidationConfig, allowance_atoms: int) -> LiquidationOrder | None:
    """The next liquidation step of ``account``, or None if it is not liquidatable or capped out.

    Args:
        account: the account (engine ``Account`` fits); its open orders should already be canceled.
        specs / marks: by instrument id.
        config: parameters.
        allowance_atoms: the account's remaining interval allowance (liquidation_allowance_atoms).

    Returns:
        A :class:`LiquidationOrder` with qty >= 1, or None.
    """
    # One pass: equity, total maintenance, and the position with the largest maintenance (ties: lowest id).
    equity = account.balance_atoms
    maintenance = 0
    iid, size, own_mm = 0, 0, -1
    for pid, pos in account.positions.items():
        psize = pos.size_lots
        if not psize:
            continue
        pspec = specs[pid]
        pmark = marks[pid]
        pk = pspec.atoms_per_tick_lot
        equity += psize * pmark * pk - pos.cost_atoms
        mm = maintenance_margin_atoms(pspec, (psize if psize > 0 else -psize) * pmark * pk)
        maintenance += mm
        if mm > own_mm or (mm == own_mm and pid < iid):
            iid, size, own_mm = pid, psize, mm
    if not (maintenance > 0 and equity < maintenance):
        return None
    return plan_position_liquidation(account.account_id, specs[iid], size, marks[iid], equity, maintenance,
                                     own_mm, config, allowance_atoms)


def plan_position_liquidation(account_id: int, spec: InstrumentSpec, size_lots: int, mark_ticks: int,
                              equity_atoms: int, maintenance_atoms: int, position_maintenance_atoms: int,
                              config: LiquidationConfig, allowance_atoms: int) -> LiquidationOrder | None:
    """:func:`plan_liquidation` once the position and the account's health are known.

    Args:
        account_id: the account.
        spec / size_lots / mark_ticks: the position to liquidate (the one with the largest maintenance).
        equity_atoms / maintenance_atoms: the account's health (liquidatable: ``0 < E < MM`` or E <= 0).
        position_maintenance_atoms: this position's share of ``maintenance_atoms``.
        config / allowance_atoms: as in :func:`plan_liquidation`.
    """
    size, mark, equity, maintenance = size_lots, mark_ticks, equity_atoms, maintenance_atoms
    own_mm = position_maintenance_atoms
    assert size != 0 and maintenance > 0 and equity < maintenance and 0 < own_mm <= maintenance
    k = spec.atoms_per_tick_lot
    abs_size = size if size > 0 else -size
    bankrupt = equity <= 0
    full_bp = _bankruptcy_price(size, abs_size, mark, k, equity, maintenance, own_mm)
    f_num, f_den = _fillable_fraction(equity, maintenance, config)
    sizing_limit = _fillable(size, mark, full_bp, f_num, f_den)
    if bankrupt:
        qty = abs_size
    else:
        needed = _partial_close_lots(spec, size, mark, sizing_limit, equity, maintenance - own_mm, config)
        qty = liquidation_close_lots(needed, abs_size, mark, k, allowance_atoms, config)
        if qty == 0:
            return None
    if qty == abs_size:
        bp, limit = full_bp, sizing_limit
    else:
        delta_mm = own_mm - maintenance_margin_atoms(spec, (abs_size - qty) * mark * k)
        bp = _bankruptcy_price(size, qty, mark, k, equity, maintenance, delta_mm)
        limit = _fillable(size, mark, bp, f_num, f_den)
        # Never more adverse than the limit the size was computed for (the cost bound must hold).
        limit = max(limit, sizing_limit) if size > 0 else min(limit, sizing_limit)
    return LiquidationOrder(account_id, spec.instrument_id, -1 if size > 0 else 1, qty, limit, bp, mark,
                            equity, maintenance, bankrupt)


def _bankruptcy_price(size: int, qty: int, mark: int, k: int, equity: int, maintenance: int, delta_mm: int) -> int:
    """close_bankruptcy_price_ticks with the maintenance change of the close already known."""
    scale = qty * k * maintenance
    if size > 0:
        return _ceil_div(qty * mark * k * maintenance - equity * delta_mm, scale)
    return (qty * mark * k * maintenance + equity * delta_mm) // scale


def liquidation_fee_atoms(order: LiquidationOrder, fill_qty_lots: int, fill_price_ticks: int, k: int,
                          fee_ppm: int) -> tuple[int, int]:
    """Split of one liquidation fill between the account and the insurance fund (dYdX v4).

    Args:
        order: the liquidation order the fill belongs to.
        fill_qty_lots: lots filled (> 0).
        fill_price_ticks: fill price.
        k: atoms per tick-lot.
        fee_ppm: liquidation fee rate.

    Returns:
        ``(fee_atoms, insurance_payout_atoms)``: the fee the account pays the fund (>= 0, at most the
        fill's surplus over its bankruptcy value) and what the fund pays the account when the fill is
        worse than the bankruptcy value (>= 0; 0 for fills at or inside the fillable price).
    """
    assert fill_qty_lots > 0 and fill_price_ticks > 0
    proceeds = fill_qty_lots * fill_price_ticks * k
    bankruptcy_value = fill_qty_lots * order.bankruptcy_price_ticks * k
    surplus = proceeds - bankruptcy_value if order.side < 0 else bankruptcy_value - proceeds
    if surplus < 0:
        return 0, -surplus
    fee = min(_ceil_div(proceeds * fee_ppm, PPM), surplus)
    assert 0 <= fee <= surplus
    return fee, 0
