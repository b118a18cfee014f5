"""Pre-trade initial-margin check (cross margin over all of an account's instruments).

For each instrument with a position or open orders, at mark price M (atoms per tick-lot k):

* worst-case size  W = max(|size + open_buy|, |size - open_sell|)  — every open order on one side fills;
* initial margin   IM(W * M * k) from the instrument's notional brackets;
* open loss        sum over open orders of max(0, p - M) * q * k for buys, max(0, M - p) * q * k for
                   sells, plus a fee reserve: the taker fee on max(p, M) * q * k for buys and on
                   M * q * k for sells (Binance USD-M "open loss" for orders: an order priced through
                   the mark is charged the loss it locks in; shared/reference/risk-engines.md §2.5).
                   A fill at a better price than the limit only helps: its extra fee is smaller than
                   its price improvement. With this choice the open loss of a buy never falls when its
                   price rises and that of a sell never falls when its price drops, so an amendment
                   that moves an order away from the market without growing it needs no check;
* unrealized PnL   size * M * k - cost.

``free = balance + sum(uPnL - IM - open_loss)``. With ``index_prices`` (the engine passes the oracle
index of every instrument that has one), each instrument's term is the smaller of the term at the mark
and the term at the index: a gain that only the venue's own book shows (a pushed mark) or a loss that
only the oracle shows cannot be borrowed against or withdrawn (docs/risk-integration.md, "Manipulation
resistance"). The term at the mark is still included, so the safety argument below is unchanged.

Cash leaving the account (withdrawal, transfer out) is held to a stricter rule, :func:`withdrawable_atoms`:
each position counts ``min(0, uPnL)``, so positive unrealized PnL never becomes withdrawable.

An order (or amendment, withdrawal, transfer) is accepted
when ``free_after >= 0``, or when it does not make an under-margined account worse
(``free_after >= free_before``, the dYdX v4 rule for orders that reduce risk).

Why this bound is safe: any set of partial fills of the open orders yields a net size inside
[size - open_sell, size + open_buy], whose IM is at most the IM at one of the ends (brackets only raise
rates with notional); the loss a fill can realize is at most the order's open loss; and fills at better
prices only help. So no fill at an unchanged mark can take an account that passed the check below its
initial margin.
"""

from __future__ import annotations

from bastion.core.accounts import PRICE_BOUND_NONE, Account, Position
from bastion.core.units import PPM
from bastion.core.book.base import Order
from bastion.core.instruments import InstrumentSpec

__all__ = ["OVER_MAX_TIER", "free_collateral_atoms", "order_open_loss_atoms", "withdrawable_atoms"]

OVER_MAX_TIER: int = -(2**127)
"""Sentinel returned when a worst-case position would exceed the last margin bracket."""


def order_open_loss_atoms(spec: InstrumentSpec, mark_ticks: int, side: int, price_ticks: int, qty_lots: int) -> int:
    """Open loss of a single order (atoms): through-the-mark loss + fee reserve + rounding slack.

    The fee reserve is the taker fee on max(p, M)*q*k for a buy and M*q*k for a sell, rounded up, plus
    one atom per lot because each fill's fee is rounded up separately (a fill is at least one lot).
    """
    k = spec.atoms_per_tick_lot
    through = (price_ticks - mark_ticks) if side > 0 else (mark_ticks - price_ticks)
    fee_base = price_ticks if side > 0 and through > 0 else mark_ticks
    fee = -((-fee_base * qty_lots * k * spec.taker_fee_ppm) // PPM) + qty_lots
    return (through * qty_lots * k + fee) if through > 0 else fee


def _position_requirement(spec: InstrumentSpec, mark: int, size: int, cost: int, buy: int, sell: int,
                          through_ticks_lots: int, fee_base_ticks_lots: int, gains: bool = True) -> int:
    """uPnL - IM(worst case) - open loss for one position, or OVER_MAX_TIER (see module docstring).

    ``gains`` False counts min(0, uPnL) instead of uPnL (withdrawals: paper gains never leave).
    """
    k = spec.atoms_per_tick_lot
    long_case = size + buy
    short_case = sell - size
    worst = long_case if long_case > short_case else short_case
    if -long_case > worst:
        worst = -long_case
    if -short_case > worst:
        worst = -short_case
    notional = worst * mark * k
    for tier in spec.margin_tiers:
        if notional <= tier.notional_max_atoms:
            im = -((tier.im_deduction_atom_ppm - notional * tier.imf_ppm) // PPM)
            break
    else:
        return OVER_MAX_TIER
    fee = -((-fee_base_ticks_lots * k * spec.taker_fee_ppm) // PPM) + buy + sell
    upnl = size * mark * k - cost
    if not gains and upnl > 0:
        upnl = 0
    return upnl - im - through_ticks_lots * k - fee


def _through_ticks_lots(pos: Position, mark: int, drop: Order | None) -> tuple[int, int]:
    """(buys, sells): sums over live orders (except ``drop``) of how far each is priced through
    ``mark``, times its size, in tick-lots.

    Only called when a price bound says some order may be through the mark; refreshes the bounds to the
    exact extremes so the next check can skip the loop again (bounded by ``orders_open_max``). The buy
    sum also enters the fee base, since a buy may fill at up to its price, above the mark.
    """
    through_buy = through_sell = 0
    hi, lo = 0, PRICE_BOUND_NONE
    for o in pos.orders.values():
        p = o.price_ticks
        if o.side > 0:
            if p > hi:
                hi = p
            if o is not drop and p > mark:
                through_buy += (p - mark) * o.qty_lots
        else:
            if p < lo:
                lo = p
            if o is not drop and p < mark:
                through_sell += (mark - p) * o.qty_lots
    pos.buy_price_hi, pos.sell_price_lo = hi, lo
    return through_buy, through_sell


def _new_instrument_part(spec: InstrumentSpec, mark: int, side: int, price: int, qty: int, gains: bool) -> int:
    """Requirement of an order on an instrument the account holds nothing in, at price ``mark``."""
    through = (price - mark) if side > 0 else (mark - price)
    base = price if side > 0 and through > 0 else mark
    return _position_requirement(spec, mark, 0, 0, qty if side > 0 else 0, qty if side < 0 else 0,
                                 through * qty if through > 0 else 0, base * qty, gains)


def _held_part(iid: int, spec: InstrumentSpec, pos: Position, mark: int, add: tuple[int, int, int, int] | None,
               drop: Order | None, gains: bool) -> int:
    """Requirement of one held instrument (position and live orders, plus ``add``) at price ``mark``."""
    buy = pos.open_buy_lots
    sell = pos.open_sell_lots
    if drop is not None and drop.instrument_id == iid:
        if drop.side > 0:
            buy -= drop.qty_lots
        else:
            sell -= drop.qty_lots
    through_buy = through_sell = 0
    if pos.buy_price_hi > mark or pos.sell_price_lo < mark:
        through_buy, through_sell = _through_ticks_lots(pos, mark, drop)
    through = through_buy + through_sell
    base = mark * (buy + sell) + through_buy
    if add is not None:
        _, side, price, qty = add
        t = (price - mark) if side > 0 else (mark - price)
        if side > 0:
            buy += qty
        else:
            sell += qty
        base += mark * qty
        if t > 0:
            through += t * qty
            if side > 0:
                base += t * qty
    return _position_requirement(spec, mark, pos.size_lots, pos.cost_atoms, buy, sell, through, base, gains)


def free_collateral_atoms(
    account: Account,
    specs: dict[int, InstrumentSpec],
    marks: dict[int, int],
    balance_delta_atoms: int = 0,
    add: tuple[int, int, int, int] | None = None,
    drop: Order | None = None,
    index_prices: dict[int, int] | None = None,
    gains: bool = True,
) -> int:
    """Free collateral of ``account`` in atoms after hypothetical changes.

    Args:
        account: the account.
        specs / marks: instrument specs and mark prices (ticks) by instrument id.
        balance_delta_atoms: change to settled cash (e.g. minus a withdrawal).
        add: an order not yet live, as (instrument_id, side, price_ticks, qty_lots).
        drop: a live order to leave out (the old version of an amended order).
        index_prices: oracle index prices (ticks) by instrument id, or None. For an instrument with an
            index that differs from its mark, the instrument's requirement (uPnL - IM - open loss) is
            computed at both prices and the smaller one counts: new risk and withdrawals need the
            initial margin at the mark *and* at the index, so a paper gain (or a hidden loss) that only
            one of the venue's own book and the external oracle shows lends nothing (docs/risk-integration.md,
            "Manipulation resistance"; Drift v2 margins initial checks at the worse of the oracle and
            its 5-min TWAP, ``StrictOraclePrice``).
        gains: count positive unrealized PnL (True, for orders); False gives
            :func:`withdrawable_atoms`' rule, where each position counts min(0, uPnL).

    Returns:
        Free collateral (may be negative), or :data:`OVER_MAX_TIER` when some worst-case position
        notional exceeds the instrument's last margin bracket.
    """
    free = account.balance_atoms + balance_delta_atoms
    positions = account.positions
    add_iid = add[0] if add is not None else 0
    if add is not None and add_iid not in positions:
        _, side, price, qty = add
        spec = specs[add_iid]
        mark = marks[add_iid]
        part = _new_instrument_part(spec, mark, side, price, qty, gains)
        if index_prices is not None and part != OVER_MAX_TIER:
            index = index_prices.get(add_iid, mark)
            if index != mark:
                other = _new_instrument_part(spec, index, side, price, qty, gains)
                if other < part:
                    part = other
        if part == OVER_MAX_TIER:
            return OVER_MAX_TIER
        free += part
    for iid, pos in positions.items():
        if not pos.size_lots and not pos.orders and iid != add_iid:
            continue
        spec = specs[iid]
        mark = marks[iid]
        mine = add if iid == add_iid else None
        part = _held_part(iid, spec, pos, mark, mine, drop, gains)
        if index_prices is not None and part != OVER_MAX_TIER:
            index = index_prices.get(iid, mark)
            if index != mark:
                other = _held_part(iid, spec, pos, index, mine, drop, gains)
                if other < part:
                    part = other
        if part == OVER_MAX_TIER:
            return OVER_MAX_TIER
        free += part
    return free


def withdrawable_atoms(account: Account, specs: dict[int, InstrumentSpec], marks: dict[int, int],
                       balance_delta_atoms: int = 0, index_prices: dict[int, int] | None = None) -> int:
    """What is left for cash to leave (withdrawal, transfer out) after a change of settled cash, atoms.

    ``balance + delta + sum over positions of (min(0, uPnL) - IM(worst case) - open loss)``, each
    instrument's term the smaller at the mark and at the index when ``index_prices`` gives one (see
    :func:`free_collateral_atoms`): the withdrawal rule. Unrealized gains never count, not even against
    another position's unrealized loss, so cash that only paper gains (a mark that can be pushed, the
    Mango Markets exploit of October 2022) would cover can never leave; realized PnL is settled cash and
    can. A withdrawal of ``amount`` is allowed when ``withdrawable_atoms(..., -amount) >= 0``.

    Returns:
        The slack (may be negative), or :data:`OVER_MAX_TIER` (see :func:`free_collateral_atoms`).
    """
    return free_collateral_atoms(account, specs, marks, balance_delta_atoms=balance_delta_atoms,
                                 index_prices=index_prices, gains=False)
