"""Reject codes: a stable, numbered enum in bands by subsystem.

Codes never change meaning once released; new codes take new numbers. Each reads as a sentence.

* 1xx  validation (command shape: types, ranges, grid)
* 2xx  account (unknown account, balances, limits)
* 3xx  risk (margin, position limits, reduce-only); 31x trigger orders
* 4xx  matching (order book rules)
* 5xx  market state, guardian commands, price bands, auctions, commit-reveal (market integrity)
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
    expire_at_ns_above_max = 117
    """A GTD expiry beyond the int64 nanosecond range (year 2262)."""

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
    balance_atoms_above_max = 209
    """A deposit or transfer would take the receiving balance above BALANCE_ATOMS_MAX (2**61)."""
    deposits_total_above_max = 210
    """A deposit would take the venue's total deposits above DEPOSITS_TOTAL_ATOMS_MAX (2**62)."""
    account_isolated_to_other_instrument = 220
    """An isolated-margin account trades only the instrument it was opened for."""

    # 3xx risk
    margin_initial_insufficient = 300
    position_notional_above_max_tier = 301
    reduce_only_would_increase = 302
    withdrawal_exceeds_free_collateral = 303
    open_interest_cap_exceeded = 304
    account_in_liquidation = 305
    withdrawal_blocked_negative_equity_seen = 306
    insurance_fund_insufficient = 307
    index_price_unavailable = 308
    withdrawal_blocked_oracle_paused = 320
    """Withdrawal or transfer out of an account with a position on an instrument whose oracle guard has
    paused liquidations (index too far from its TWAP, stale): cash does not leave against a price the
    venue does not trust enough to liquidate at (Drift refuses withdrawals on an invalid oracle)."""

    # 31x trigger orders (docs/trigger-orders.md)
    trigger_price_ticks_out_of_range = 310
    """Trigger price not positive or above the instrument's price_ticks_max."""
    trigger_source_invalid = 311
    """trigger_source is not MARK (0), INDEX (1) or LAST (2)."""
    trigger_would_fire_immediately = 312
    """The trigger is already reached by its source price (Binance -2021 "Order would immediately
    trigger"), or by a price range whose triggers are still being worked off (carry-over)."""
    trigger_fields_on_plain_order = 313
    """trigger_price_ticks / trigger_source set on a LIMIT or MARKET order, or a trigger price in an
    amend of a live (already triggered) order."""
    trigger_source_price_unavailable = 314
    """The chosen source has no price yet (no oracle index, no trade): the direction cannot be checked."""
    close_position_invalid = 315
    """close_position only on STOP_MARKET / TAKE_PROFIT_MARKET, with qty_lots 0 and reduce_only False."""
    trigger_requires_continuous_matching = 316
    """Trigger orders are not accepted on a batch or sealed-batch market."""

    # 4xx matching
    post_only_would_take = 400
    fok_not_fillable = 401
    market_no_liquidity = 402
    amend_no_change = 403
    reduce_only_room_below_min_lots = 404
    """Clamping a reduce-only order to what would close the position leaves less than min_order_lots."""

    # 5xx market state, guardian commands, price protection, auctions, commit-reveal (issue 4; the same
    # names and numbers as bastion.core.integrity.codes.IntegrityRejectCode)
    market_halted = 500
    market_cancel_only = 501
    market_post_only_requires_post_only_order = 502
    market_auction_forbids_order_kind = 503
    market_settling = 504
    venue_kill_switch_engaged = 505
    market_state_transition_invalid = 506
    guardian_unauthorized = 507
    matching_mode_change_invalid = 508
    market_not_sealed_batch = 509
    price_ticks_outside_band = 510
    band_sweep_in_progress = 511
    commit_id_duplicate = 520
    commitment_malformed = 521
    bond_atoms_below_min = 522
    commitments_per_round_max_reached = 523
    commit_unknown = 524
    reveal_window_not_open = 525
    reveal_window_closed = 526
    commit_already_revealed = 527
    reveal_mismatch = 528
    salt_malformed = 529
    auction_orders_max_reached = 530
    auction_order_unknown = 531
    sealed_batch_requires_commit = 532


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
    liquidation = 17
    velocity_pause = 13  # IOC/FOK/market remainder when its walk engaged the velocity pause
    outside_band = 14  # resting order beyond the moved band on its aggressive side (swept)
    auction_remainder = 15  # IOC/market remainder after an uncross or a batch clearing
    market_settling = 16  # canceled when the instrument entered SETTLING
    position_closed = 20  # an untriggered close-position order whose position was closed or flipped
