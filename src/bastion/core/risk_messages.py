"""Commands and events of the risk engine (issue 3). Part of the engine's Command / Event unions.

Field layouts follow docs/risk-integration.md §3 and §5. Units: ticks, lots, atoms, ppb for funding
rates, ns for time.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "AutoDeleveraged",
    "BadDebtRecorded",
    "FundingPaid",
    "FundingRateSet",
    "IndexPriceSet",
    "InsuranceFundUsed",
    "InsuranceFundUnwound",
    "PositionLiquidated",
    "PositionTakenOver",
    "SetOraclePrice",
    "SocializedLoss",
    "VolMultiplierSet",
]

_opts = {"tag_field": "type", "frozen": True, "array_like": True, "gc": False}


class SetOraclePrice(msgspec.Struct, tag="set_oracle_price", **_opts):
    """The oracle shell's aggregated index price for one instrument, already on the tick grid.

    The shell runs :class:`bastion.core.oracle.OracleState` over Ed25519-verified source reports and
    journals its output here; the engine derives the mark price from it and the book, samples funding
    premiums against it, and sweeps for liquidations when the mark moves.

    Attributes:
        instrument_id: the market.
        index_price_ticks: > 0, <= price_ticks_max.
        oracle_timestamp_ns: when the aggregate was formed; 0 < t <= engine time.
        liquidations_paused: the oracle guard's verdict (index too far from its TWAP, stale, ...).
    """

    instrument_id: int
    index_price_ticks: int
    oracle_timestamp_ns: int
    liquidations_paused: bool = False


class IndexPriceSet(msgspec.Struct, tag="index_price_set", **_opts):
    instrument_id: int
    index_price_ticks: int
    oracle_timestamp_ns: int
    liquidations_paused: bool


class PositionLiquidated(msgspec.Struct, tag="position_liquidated", **_opts):
    """One fill of a liquidation IOC (its TradeExecuted comes first)."""

    account_id: int
    instrument_id: int
    side: int
    qty_lots: int
    price_ticks: int
    limit_price_ticks: int
    bankruptcy_price_ticks: int
    liquidation_fee_atoms: int
    equity_atoms: int
    maintenance_atoms: int


class InsuranceFundUsed(msgspec.Struct, tag="insurance_fund_used", **_opts):
    """The fund's cash paid ``amount_atoms`` (> 0) of a bankrupt account's deficit: the deficit share of
    lots it took over (after the ``PositionTakenOver``) or a cash payment. ``insurance_fund_atoms``: its
    cash after."""

    account_id: int
    amount_atoms: int
    insurance_fund_atoms: int


class PositionTakenOver(msgspec.Struct, tag="position_taken_over", **_opts):
    """The insurance fund (``taker_account_id`` 0) or the backstop took ``qty_lots`` of a bankrupt
    account's position at the bankruptcy price: at the mark ``price_ticks`` plus ``charge_atoms`` (the
    lots' deficit share, paid by the taker to the account). ``via``: ``CloseVia`` (1 backstop, 3 fund);
    ``over_capacity``: the fund took lots nobody else could (charge 0; the deficit went on)."""

    instrument_id: int
    account_id: int
    taker_account_id: int
    qty_lots: int
    price_ticks: int
    charge_atoms: int
    via: int
    over_capacity: bool


class InsuranceFundUnwound(msgspec.Struct, tag="insurance_fund_unwound", **_opts):
    """One fill of the fund's reduce-only unwind IOC (its ``TradeExecuted`` comes first).
    ``realized_pnl_atoms`` went to the fund's cash (``insurance_fund_atoms`` after);
    ``inventory_lots``: the fund's signed position left on the instrument."""

    instrument_id: int
    qty_lots: int
    price_ticks: int
    realized_pnl_atoms: int
    insurance_fund_atoms: int
    inventory_lots: int


class AutoDeleveraged(msgspec.Struct, tag="auto_deleveraged", **_opts):
    """A forced close at the mark between a bankrupt account and an opposite position (ADL). ``via``:
    ``CloseVia`` 2 at the bankruptcy price (the counterparty pays ``charge_atoms``, the lots' deficit
    share), 4 at the mark (it could not pay; charge 0)."""

    instrument_id: int
    account_id: int
    counterparty_account_id: int
    qty_lots: int
    price_ticks: int
    via: int
    charge_atoms: int
    counterparty_realized_pnl_atoms: int


class SocializedLoss(msgspec.Struct, tag="socialized_loss", **_opts):
    account_id: int
    bankrupt_account_id: int
    amount_atoms: int


class BadDebtRecorded(msgspec.Struct, tag="bad_debt_recorded", **_opts):
    """``amount_atoms`` of ``account_id``'s deficit nobody could absorb, booked to the venue's bad-debt
    account (``bad_debt_total_atoms`` after); the account was credited to zero. ``account_id`` 0: the
    insurance fund's cash would have gone negative."""

    account_id: int
    amount_atoms: int
    bad_debt_total_atoms: int


class FundingRateSet(msgspec.Struct, tag="funding_rate_set", **_opts):
    instrument_id: int
    premium_ppb: int
    rate_8h_ppb: int
    rate_ppb: int
    mark_ticks: int
    remainder_atoms: int


class FundingPaid(msgspec.Struct, tag="funding_paid", **_opts):
    """``amount_atoms`` > 0 received, < 0 paid."""

    instrument_id: int
    account_id: int
    amount_atoms: int


class VolMultiplierSet(msgspec.Struct, tag="vol_multiplier_set", **_opts):
    """Volatility-scaled margin: the instrument's margin fractions are now ``multiplier_ppm / 1e6`` times
    the configured ones (risk/vol_margin.py). ``volatility_ppm``: the EWMA estimate per sample period."""

    instrument_id: int
    multiplier_ppm: int
    volatility_ppm: int
