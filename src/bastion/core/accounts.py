"""Accounts, positions and the settlement arithmetic of a linear perpetual.

Accounting model (all integers):

* ``Account.balance_atoms`` is settled cash: deposits - withdrawals + realized PnL - fees (+ funding).
  It may be negative while the account holds positions whose unrealized gains keep its equity up: a
  fee or a realized loss paid against paper profit on another position (cross margin; dYdX v4 holds
  this as a negative USDC asset position). Such an account can withdraw nothing
  (``margin.withdrawable_atoms`` counts no gains). A *flat* account with negative cash is bad debt,
  and only the risk engine's loss waterfall may leave one (recorded; ``RiskEngine.check``).
* ``Position.size_lots`` is signed (long > 0). ``Position.cost_atoms`` is the signed entry notional,
  ``size_lots * average_entry_price_ticks * atoms_per_tick_lot`` kept exactly as a sum; it has the sign
  of the position and is 0 when flat.
* Equity at mark price M: ``balance + sum(size * M * k - cost)`` (k = atoms per tick-lot).

Double entry: every movement of value has two sides that sum to zero. A fill moves ``price*qty*k``
between the buyer's and the seller's (balance - cost); fees move from traders to the fee pool;
deposits/withdrawals move between an account and the outside world. Hence the conservation invariant
checked after every command::

    sum(balance - sum(cost)) + fee_pool + insurance_fund == deposits_total - withdrawals_total
"""

from __future__ import annotations

from collections import deque

from bastion.core.book.base import Order

__all__ = ["PRICE_BOUND_NONE", "Account", "Position", "settle_fill"]

PRICE_BOUND_NONE = 2**62
"""``sell_price_lo`` when no sell order was ever live (above any valid price)."""


class Position:
    """One account's exposure and open orders on one instrument.

    Attributes:
        size_lots: signed position size.
        cost_atoms: signed entry notional (see module docstring).
        open_buy_lots / open_sell_lots: remaining quantity of the account's live orders per side.
        orders: live orders on this instrument by order id (insertion ordered).
        reduce_only_count: how many of ``orders`` are reduce-only.
        buy_price_hi / sell_price_lo: an upper bound on the live buy prices and a lower bound on the
            live sell prices (ticks); a cache that lets the margin check skip the per-order loop when no
            order is priced through the mark. Not state: rebuilt from the orders on restore.
    """

    __slots__ = ("size_lots", "cost_atoms", "open_buy_lots", "open_sell_lots", "orders", "reduce_only_count",
                 "buy_price_hi", "sell_price_lo")

    def __init__(self) -> None:
        self.size_lots = 0
        self.cost_atoms = 0
        self.open_buy_lots = 0
        self.open_sell_lots = 0
        self.orders: dict[int, Order] = {}
        self.reduce_only_count = 0
        self.buy_price_hi = 0
        self.sell_price_lo = PRICE_BOUND_NONE

    def note_price(self, side: int, price_ticks: int) -> None:
        """Widen the price bounds for a live order at ``price_ticks`` on ``side``."""
        if side > 0:
            if price_ticks > self.buy_price_hi:
                self.buy_price_hi = price_ticks
        elif price_ticks < self.sell_price_lo:
            self.sell_price_lo = price_ticks

    def is_idle(self) -> bool:
        """Flat and with no orders: carries no risk and no state worth keeping."""
        return self.size_lots == 0 and not self.orders


class Account:
    """A trading account (a subaccount of ``owner_id``; isolated to one instrument when
    ``isolated_instrument_id`` > 0).

    ``recent_client_ids`` remembers the last ``client_order_ids_remembered_max`` client order ids this
    account used (FIFO), so a resent order is rejected as a duplicate even after it left the book.
    """

    __slots__ = ("account_id", "owner_id", "balance_atoms", "positions", "orders", "live_by_client",
                 "recent_client_ids", "recent_client_set", "isolated_instrument_id")

    def __init__(self, account_id: int, owner_id: int, isolated_instrument_id: int = 0) -> None:
        self.account_id = account_id
        self.owner_id = owner_id
        self.isolated_instrument_id = isolated_instrument_id
        """> 0: an isolated-margin account that may trade only this instrument (CreateAccount)."""
        self.balance_atoms = 0
        self.positions: dict[int, Position] = {}
        self.orders: dict[int, Order] = {}
        self.live_by_client: dict[int, Order] = {}
        self.recent_client_ids: deque[int] = deque()
        self.recent_client_set: set[int] = set()

    def remember_client_id(self, client_order_id: int, remembered_max: int) -> None:
        """Record a used client order id, forgetting the oldest beyond ``remembered_max``."""
        self.recent_client_ids.append(client_order_id)
        self.recent_client_set.add(client_order_id)
        if len(self.recent_client_ids) > remembered_max:
            # Ids in the window are unique (a duplicate is rejected before it is remembered).
            self.recent_client_set.discard(self.recent_client_ids.popleft())


def settle_fill(account: Account, position: Position, signed_qty_lots: int, price_ticks: int, k: int) -> int:
    """Apply a fill of ``signed_qty_lots`` (buy > 0) at ``price_ticks`` to a position.

    Reducing part: the removed entry cost is the position's cost pro rata, its magnitude rounded toward
    zero; realized PnL = sign * price * closed * k - removed cost, credited to the balance. Rounding only
    shifts PnL between this fill and later ones of the same position (it is exact when the position
    closes), so cash is conserved to the atom: the change in (balance - cost) is always
    ``-signed_qty * price * k``.

    Args:
        account: owner of the position (its balance receives realized PnL).
        position: the position to change.
        signed_qty_lots: fill quantity, > 0 buy, < 0 sell, never 0.
        price_ticks: fill price (> 0).
        k: atoms per tick-lot of the instrument.

    Returns:
        Realized PnL in atoms (0 when the fill only opens or adds).
    """
    assert signed_qty_lots != 0 and price_ticks > 0
    size = position.size_lots
    if size == 0 or (size > 0) == (signed_qty_lots > 0):
        position.size_lots = size + signed_qty_lots
        position.cost_atoms += signed_qty_lots * price_ticks * k
        return 0
    sign = 1 if size > 0 else -1
    abs_size = size * sign
    abs_qty = -signed_qty_lots * sign
    closing = abs_qty if abs_qty < abs_size else abs_size
    removed = sign * ((position.cost_atoms * sign) * closing // abs_size)
    realized = sign * price_ticks * closing * k - removed
    position.cost_atoms -= removed
    position.size_lots = size - sign * closing
    account.balance_atoms += realized
    rest = abs_qty - closing
    if rest:
        assert position.size_lots == 0 and position.cost_atoms == 0
        position.size_lots = -sign * rest
        position.cost_atoms = -sign * rest * price_ticks * k
    return realized
