"""Reject codes and reasons of the market-integrity layer (the 5xx band of ``RejectCode``).

:class:`IntegrityRejectCode` holds the numbers reserved in :mod:`bastion.core.rejects` for market state
("5xx market state, reserved for circuit breakers"). Integration copies these members into ``RejectCode``
with the same names and numbers (docs/integrity-integration.md); until then they live here so the pure
modules can return typed codes. Numbers never change meaning once released.

* 50x  market state and guardian commands
* 51x  price protection (bands)
* 52x  sealed-bid commit-reveal
* 53x  batch and call-auction books
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["BondForfeitReason", "IntegrityCancelReason", "IntegrityRejectCode", "MatchingMode", "TransitionReason"]


class IntegrityRejectCode(IntEnum):
    """Why a command was refused by a market-integrity check. Each name reads as a sentence."""

    # 50x market state and guardian commands
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

    # 51x price protection
    price_ticks_outside_band = 510
    band_sweep_in_progress = 511

    # 52x sealed-bid commit-reveal
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

    # 53x batch and call-auction books
    auction_orders_max_reached = 530
    auction_order_unknown = 531
    sealed_batch_requires_commit = 532


class TransitionReason(IntEnum):
    """Why a market changed state (carried by the ``MarketStateChanged`` event)."""

    guardian = 1
    velocity = 2
    luld_limit_state = 3
    scheduled = 4
    auction_uncrossed = 5


class BondForfeitReason(IntEnum):
    """Why a commit-reveal bond went to the insurance fund (carried by ``BondForfeited``)."""

    no_reveal = 1
    reveal_mismatch = 2
    revealed_order_rejected = 3


class IntegrityCancelReason(IntEnum):
    """New ``CancelReason`` members (numbers follow the existing 1..12): why an order left the book."""

    velocity_pause = 13  # IOC/FOK/market remainder when its walk engaged the velocity pause
    outside_band = 14  # resting order beyond the moved band on its aggressive side (swept)
    auction_remainder = 15  # IOC/market remainder after an uncross or a batch clearing
    market_settling = 16  # canceled when the instrument entered SETTLING


class MatchingMode(IntEnum):
    """How an ACTIVE instrument matches (``SetMatchingMode``)."""

    CONTINUOUS = 0  # price-time priority book (FastBook)
    BATCH = 1  # frequent batch auctions (batch.py)
    SEALED_BATCH = 2  # batch auctions fed by commit-reveal rounds (commit_reveal.py)
