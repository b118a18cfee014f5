"""Shared shapes of the risk core: read-only views of accounts and positions, limits, codes.

The risk functions read accounts through two structural protocols, so the engine passes its own
:class:`bastion.core.accounts.Account` objects unchanged (no copies on the hot path) and tests may pass
any object with the same attributes.

Units follow the house rules: prices in ticks, sizes in lots, money in atoms, fractions in ppm, funding
rates in ppb (parts per billion, see :mod:`bastion.core.risk.funding` for why), time in ns.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import Final, Protocol

__all__ = [
    "PPB",
    "PPM",
    "PRICE_TICKS_UNBOUNDED",
    "AccountLike",
    "PositionLike",
    "RiskRejectCode",
    "positions_open",
]

PPM: Final = 1_000_000
"""One whole in parts per million."""

PPB: Final = 1_000_000_000
"""One whole in parts per billion (funding rates and premiums)."""

PRICE_TICKS_UNBOUNDED: Final = 2**62
"""A liquidation price that every mark satisfies (a long that is liquidatable at any price)."""


class PositionLike(Protocol):
    """What the risk core reads of a position (``bastion.core.accounts.Position`` fits)."""

    @property
    def size_lots(self) -> int: ...

    @property
    def cost_atoms(self) -> int: ...


class AccountLike(Protocol):
    """What the risk core reads of an account (``bastion.core.accounts.Account`` fits)."""

    @property
    def account_id(self) -> int: ...

    @property
    def balance_atoms(self) -> int: ...

    @property
    def positions(self) -> Mapping[int, PositionLike]: ...


def positions_open(account: AccountLike) -> list[tuple[int, int, int]]:
    """The account's non-flat positions as ``(instrument_id, size_lots, cost_atoms)``, by instrument id."""
    return sorted((iid, p.size_lots, p.cost_atoms) for iid, p in account.positions.items() if p.size_lots)


class RiskRejectCode(IntEnum):
    """Reject codes the risk engine adds to the 3xx band of ``bastion.core.rejects.RejectCode``.

    Proposed numbers continue after ``withdrawal_exceeds_free_collateral = 303``; the integration moves
    them into ``RejectCode`` unchanged (docs/risk-integration.md). Names read as sentences.
    """

    open_interest_cap_exceeded = 304
    """The order could raise the market's open interest above its cap (oi_caps.py)."""

    account_in_liquidation = 305
    """The account has a liquidation in progress: only reduce-only orders and deposits are accepted."""

    withdrawal_blocked_negative_equity_seen = 306
    """Withdrawals and transfers are paused after a negative-equity account was seen (dYdX v4 rule)."""

    insurance_fund_insufficient = 307
    """An operator withdrawal from the insurance fund exceeds its balance."""

    index_price_unavailable = 308
    """No valid index price (oracle no-price or liquidations paused): risk-increasing orders refused."""
