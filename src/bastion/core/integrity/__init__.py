"""Market integrity (GitHub issue 4): market states, price bands, velocity logic, LULD halts, call and
frequent batch auctions, sealed-bid commit–reveal.

Pure building blocks for the engine: integers only (ticks, lots, atoms, ppm, ns), no clock, randomness,
floats or I/O, bounded loops with named limits, no recursion. How the engine wires them in is described
in docs/integrity-integration.md.
"""

from bastion.core.integrity.auction import (
    AUCTION_ORDERS_MAX,
    Allocation,
    AuctionFill,
    AuctionOrder,
    AuctionResult,
    AuctionTrade,
    Indicative,
    candidate_prices,
    clear_auction,
    indicative,
    largest_remainder,
    pair_fills,
)
from bastion.core.integrity.bands import (
    Band,
    BandMode,
    BandSpec,
    ReferenceSource,
    band_around,
    band_width_ticks,
    check_limit_price,
    clamp_taker_limit,
    fill_within_band,
    protection_price,
    resting_violates,
)
from bastion.core.integrity.batch import CALL_AUCTION_SPEC, BatchBook, BatchClearing, BatchOrder, BatchSpec
from bastion.core.integrity.codes import (
    BondForfeitReason,
    IntegrityCancelReason,
    IntegrityRejectCode,
    MatchingMode,
    TransitionReason,
)
from bastion.core.integrity.commit_reveal import (
    BondForfeit,
    CommitAccepted,
    RevealAccepted,
    RevealedOrder,
    RoundClosed,
    SealedBidBook,
    SealedOrder,
    SealedSpec,
    canonical_order_bytes,
    commitment_of,
)
from bastion.core.integrity.luld import LimitSide, LuldSpec, LuldState, LuldStep, limit_side, luld_reference, luld_step
from bastion.core.integrity.states import (
    ALLOWED,
    GUARDIAN_TRANSITIONS,
    KILL_SWITCH_ALLOWED,
    RULE_TRANSITIONS,
    CommandKind,
    MarketState,
    MarketStatus,
    PlanStep,
    Transition,
    advance,
    check_command,
    classify_place,
    guardian_set,
    luld_halt,
    transition_allowed,
    velocity_pause,
)
from bastion.core.integrity.velocity import VelocityGuard, VelocitySpec

__all__ = [
    "ALLOWED", "AUCTION_ORDERS_MAX", "CALL_AUCTION_SPEC", "GUARDIAN_TRANSITIONS", "KILL_SWITCH_ALLOWED", "RULE_TRANSITIONS",
    "Allocation", "AuctionFill", "AuctionOrder", "AuctionResult", "AuctionTrade", "Band", "BandMode", "BandSpec",
    "BatchBook", "BatchClearing", "BatchOrder", "BatchSpec", "BondForfeit", "BondForfeitReason", "CommandKind",
    "CommitAccepted", "Indicative", "IntegrityCancelReason", "IntegrityRejectCode", "LimitSide", "LuldSpec", "LuldState", "LuldStep",
    "MarketState", "MarketStatus", "MatchingMode", "PlanStep", "ReferenceSource", "RevealAccepted", "RevealedOrder", "RoundClosed",
    "SealedBidBook", "SealedOrder", "SealedSpec", "Transition", "TransitionReason", "VelocityGuard", "VelocitySpec",
    "advance", "band_around", "band_width_ticks", "candidate_prices", "canonical_order_bytes", "check_command",
    "check_limit_price", "clamp_taker_limit", "classify_place", "clear_auction", "commitment_of",
    "fill_within_band", "guardian_set", "indicative", "largest_remainder", "limit_side", "luld_halt",
    "luld_reference", "luld_step", "pair_fills", "protection_price", "resting_violates", "transition_allowed",
    "velocity_pause",
]
