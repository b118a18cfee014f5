"""Reject codes: a stable, numbered enum in bands by subsystem.

Codes never change meaning once released; new codes take new numbers. Each reads as a sentence.

* 1xx  validation (command shape: types, ranges, grid)
* 2xx  account (unknown account, balances, limits)
* 3xx  risk (margin, position limits, reduce-only)
* 4xx  matching (order book rules)
* 5xx  market state (reserved for circuit breakers)
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["RejectCode", "CancelReason"]


class RejectCode(IntEnum):
    """Why a command was refused. A rejected command changes nothing but the sequence number."""

    # 1xx validation
    field_type_invalid = 100
    field_value_out_of_range = 101
    instrument_unknown = 102
    price_ticks_not_positive = 103
    price_ticks_above_max = 104
    qty_lots_below_min = 105
    qty_lots_above_max = 106
    side_invalid = 107
    time_in_force_invalid = 108
    order_type_invalid = 109
    stp_mode_invalid = 110
    expire_at_ns_not_in_future = 111
    expire_at_ns_without_gtd = 112
    market_order_flags_invalid = 113
    amount_atoms_not_positive = 114
    amount_atoms_above_max = 115
    command_unknown = 116

    # 2xx account
    account_unknown = 200
    account_exists = 201
    account_owner_mismatch = 202
    balance_insufficient = 203
    orders_open_max_reached = 204
    accounts_max_reached = 205
    client_order_id_duplicate = 206
    order_unknown = 207
    transfer_to_self = 208

    # 3xx risk
    margin_initial_insufficient = 300
    position_notional_above_max_tier = 301
    reduce_only_would_increase = 302
    withdrawal_exceeds_free_collateral = 303

    # 4xx matching
    post_only_would_take = 400
    fok_not_fillable = 401
    market_no_liquidity = 402
    amend_no_change = 403


class CancelReason(IntEnum):
    """Why an order left the book (or a taker's remainder was not rested), other than a full fill."""

    user = 1
    cancel_all = 2
    ioc_remainder = 3
    expired = 4
    stp_expire_maker = 5
    stp_expire_taker = 6
    stp_expire_both = 7
    stp_decrement = 8
    reduce_only_resized = 9
    levels_walked_max = 10
    fills_per_command_max = 11
    amended = 12
