"""Market states per instrument, what each state allows, how states change, and the venue kill switch.

Six states (dYdX-style statuses plus CME-style auction/halt phases; see
shared/reference/matching-engines.md §3.9–3.10 and §7 item 2):

========== ===================================================================================
state       meaning
========== ===================================================================================
ACTIVE      normal trading (continuous matching, or batch clearing in batch mode)
POST_ONLY   only orders that cannot take liquidity; the book can only grow passively
CANCEL_ONLY orders may leave the book, none may enter
HALTED      trading pause: cancels only; reopening always goes through AUCTION
AUCTION     call auction (pre-open / reopening): orders collect without matching; indicative
            price published; the market reopens by one uniform-price uncross (auction.py)
SETTLING    terminal: the instrument is being settled or delisted; nothing enters
========== ===================================================================================

:data:`ALLOWED` is the table of command kinds each state accepts; :func:`check_command` applies it
together with the venue-wide kill switch. :data:`GUARDIAN_TRANSITIONS` and :data:`RULE_TRANSITIONS`
are the transition-validity tables. A :class:`MarketStatus` carries a *plan* of scheduled steps (for
example HALTED now, AUCTION at t1, ACTIVE at t2); :func:`advance` executes the steps whose time has
come. Everything is a pure function of its arguments; times are engine ns from ``Sequenced``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum

from bastion.core.integrity.codes import IntegrityRejectCode, TransitionReason

__all__ = [
    "ALLOWED",
    "GUARDIAN_TRANSITIONS",
    "KILL_SWITCH_ALLOWED",
    "PLAN_STEPS_MAX",
    "RULE_TRANSITIONS",
    "CommandKind",
    "MarketState",
    "MarketStatus",
    "PlanStep",
    "Transition",
    "advance",
    "check_command",
    "classify_place",
    "guardian_set",
    "luld_halt",
    "transition_allowed",
    "velocity_pause",
]

PLAN_STEPS_MAX = 4
"""Scheduled steps one status may carry (and :func:`advance` may execute per call)."""


class MarketState(IntEnum):
    """State of one instrument's market (value is stable: it is journaled and hashed)."""

    ACTIVE = 0
    POST_ONLY = 1
    CANCEL_ONLY = 2
    HALTED = 3
    AUCTION = 4
    SETTLING = 5


class CommandKind(IntEnum):
    """What a command does, as far as market state and the kill switch care.

    Instrument-scoped kinds (1–8) are checked against the market state; account and operator kinds
    (9–14) only against the kill switch.
    """

    PLACE_LIMIT = 1  # GTC/GTD limit, not post-only: may take, may rest
    PLACE_POST_ONLY = 2  # limit that must not take
    PLACE_IOC = 3  # IOC or FOK limit: takes or dies
    PLACE_MARKET = 4  # market order (IOC limit at the protection price)
    AMEND = 5  # AmendOrder (in POST_ONLY the engine treats it as post-only)
    CANCEL = 6  # CancelOrder, CancelAll
    COMMIT = 7  # sealed-bid commitment (batch markets)
    REVEAL = 8  # opening of a commitment
    CREATE_ACCOUNT = 9
    DEPOSIT = 10
    WITHDRAW = 11
    TRANSFER = 12
    ORACLE = 13  # SetMarkPrice and other oracle inputs
    OPERATOR = 14  # guardian commands, DepositInsuranceFund, Heartbeat


_K = CommandKind
_ALL_ORDER_KINDS = frozenset({_K.PLACE_LIMIT, _K.PLACE_POST_ONLY, _K.PLACE_IOC, _K.PLACE_MARKET, _K.AMEND,
                              _K.CANCEL, _K.COMMIT, _K.REVEAL})

ALLOWED: dict[MarketState, frozenset[CommandKind]] = {
    MarketState.ACTIVE: _ALL_ORDER_KINDS,
    MarketState.POST_ONLY: frozenset({_K.PLACE_POST_ONLY, _K.AMEND, _K.CANCEL, _K.REVEAL}),
    MarketState.CANCEL_ONLY: frozenset({_K.CANCEL, _K.REVEAL}),
    MarketState.HALTED: frozenset({_K.CANCEL, _K.REVEAL}),
    MarketState.AUCTION: frozenset({_K.PLACE_LIMIT, _K.PLACE_MARKET, _K.AMEND, _K.CANCEL, _K.REVEAL}),
    MarketState.SETTLING: frozenset(),
}
"""Instrument-scoped command kinds each state accepts.

Notes: REVEAL is accepted wherever orders may still leave the book, so a halt never forces a bond
forfeiture (at round close the revealed orders are admitted only if the market is then ACTIVE and the
kill switch is off; otherwise their bonds are returned, see docs/integrity-integration.md §7). In AUCTION, post-only and IOC/FOK orders are refused: an
uncross has no maker and no immediate match. In POST_ONLY, AMEND is allowed only if the amended
order would not take (the engine applies its post-only check to it).
"""

_STATE_REJECT: dict[MarketState, IntegrityRejectCode] = {
    MarketState.POST_ONLY: IntegrityRejectCode.market_post_only_requires_post_only_order,
    MarketState.CANCEL_ONLY: IntegrityRejectCode.market_cancel_only,
    MarketState.HALTED: IntegrityRejectCode.market_halted,
    MarketState.AUCTION: IntegrityRejectCode.market_auction_forbids_order_kind,
    MarketState.SETTLING: IntegrityRejectCode.market_settling,
}

KILL_SWITCH_ALLOWED: frozenset[CommandKind] = frozenset(
    {_K.CANCEL, _K.REVEAL, _K.CREATE_ACCOUNT, _K.DEPOSIT, _K.ORACLE, _K.OPERATOR}
)
"""Kinds accepted on every instrument while the venue kill switch is engaged: risk may only go down
and no value may leave (no order entry, no amend, no commit, no withdrawal, no transfer)."""

GUARDIAN_TRANSITIONS: dict[MarketState, frozenset[MarketState]] = {
    MarketState.ACTIVE: frozenset({MarketState.POST_ONLY, MarketState.CANCEL_ONLY, MarketState.HALTED,
                                   MarketState.AUCTION, MarketState.SETTLING}),
    MarketState.POST_ONLY: frozenset({MarketState.ACTIVE, MarketState.CANCEL_ONLY, MarketState.HALTED,
                                      MarketState.AUCTION, MarketState.SETTLING}),
    MarketState.CANCEL_ONLY: frozenset({MarketState.ACTIVE, MarketState.POST_ONLY, MarketState.HALTED,
                                        MarketState.AUCTION, MarketState.SETTLING}),
    MarketState.HALTED: frozenset({MarketState.POST_ONLY, MarketState.CANCEL_ONLY, MarketState.AUCTION,
                                   MarketState.SETTLING}),
    MarketState.AUCTION: frozenset({MarketState.ACTIVE, MarketState.HALTED, MarketState.SETTLING}),
    MarketState.SETTLING: frozenset(),
}
"""Transitions a guardian (``SetMarketState``) may request.

HALTED never goes straight to ACTIVE: a reopening discovers its price in an auction. AUCTION may only
end in ACTIVE (the engine runs the uncross), go back to HALTED (the auction book is kept) or settle;
moving it to POST_ONLY/CANCEL_ONLY would leave a possibly crossed auction book in a continuous state.
SETTLING is terminal. A transition to the current state is not a transition (rejected).
"""

RULE_TRANSITIONS: frozenset[tuple[MarketState, MarketState, TransitionReason]] = frozenset({
    (MarketState.ACTIVE, MarketState.AUCTION, TransitionReason.velocity),
    (MarketState.ACTIVE, MarketState.HALTED, TransitionReason.luld_limit_state),
    (MarketState.HALTED, MarketState.AUCTION, TransitionReason.scheduled),
    (MarketState.AUCTION, MarketState.ACTIVE, TransitionReason.scheduled),
})
"""Transitions the breakers and the scheduler may make on their own (from, to, reason)."""


@dataclass(frozen=True, slots=True)
class PlanStep:
    """Enter ``state`` at the first command whose engine time is ``>= at_ns``."""

    state: MarketState
    at_ns: int


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change that happened (input of the ``MarketStateChanged`` event).

    ``at_ns`` is the engine time of the command during which it happened (not the scheduled time).
    """

    from_state: MarketState
    to_state: MarketState
    reason: TransitionReason
    at_ns: int


@dataclass(frozen=True, slots=True)
class MarketStatus:
    """One instrument's state, since when and why, and the scheduled steps still to come.

    ``plan`` times strictly increase and are all later than ``since_ns``; at most
    :data:`PLAN_STEPS_MAX` steps.
    """

    state: MarketState = MarketState.ACTIVE
    reason: TransitionReason = TransitionReason.guardian
    since_ns: int = 0
    plan: tuple[PlanStep, ...] = ()

    def __post_init__(self) -> None:
        assert len(self.plan) <= PLAN_STEPS_MAX, "plan too long"
        last = self.since_ns
        for step in self.plan:
            assert step.at_ns > last, "plan steps must be strictly later than since_ns and each other"
            last = step.at_ns

    def canonical(self) -> list[object]:
        """Plain data for the state hash and snapshots."""
        return [int(self.state), int(self.reason), self.since_ns, [[int(s.state), s.at_ns] for s in self.plan]]

    @classmethod
    def from_canonical(cls, data: list[object]) -> MarketStatus:
        """Inverse of :meth:`canonical`."""
        state, reason, since, plan = data
        assert isinstance(state, int) and isinstance(reason, int) and isinstance(since, int)
        assert isinstance(plan, list)
        return cls(MarketState(state), TransitionReason(reason), since,
                   tuple(PlanStep(MarketState(s), t) for s, t in plan))


def classify_place(order_type: int, time_in_force: int, post_only: bool) -> CommandKind:
    """The :class:`CommandKind` of a ``PlaceOrder`` with these (already validated) fields.

    Args:
        order_type: 0 LIMIT, 1 MARKET (``commands.OrderType``).
        time_in_force: 0 GTC, 1 IOC, 2 FOK, 3 GTD (``commands.TimeInForce``).
        post_only: the post-only flag.
    """
    if order_type == 1:
        return CommandKind.PLACE_MARKET
    if post_only:
        return CommandKind.PLACE_POST_ONLY
    if time_in_force in (1, 2):
        return CommandKind.PLACE_IOC
    return CommandKind.PLACE_LIMIT


def check_command(state: MarketState, kind: CommandKind, kill_switch_engaged: bool) -> IntegrityRejectCode | None:
    """None when a command of ``kind`` may run on an instrument in ``state``; else the reject code.

    The kill switch is checked first (venue-wide). Account and operator kinds never depend on the
    market state. Pure; O(1).
    """
    if kill_switch_engaged and kind not in KILL_SWITCH_ALLOWED:
        return IntegrityRejectCode.venue_kill_switch_engaged
    if kind >= CommandKind.CREATE_ACCOUNT:
        return None
    if kind in ALLOWED[state]:
        return None
    return _STATE_REJECT[state]


def transition_allowed(from_state: MarketState, to_state: MarketState, reason: TransitionReason) -> bool:
    """True when ``from_state -> to_state`` is valid for ``reason`` (guardian or rule table)."""
    if reason == TransitionReason.guardian:
        return to_state in GUARDIAN_TRANSITIONS[from_state]
    return (from_state, to_state, reason) in RULE_TRANSITIONS


def guardian_set(status: MarketStatus, to_state: MarketState, now_ns: int,
                 auction_ns: int = 0) -> MarketStatus | IntegrityRejectCode:
    """Apply a guardian ``SetMarketState``: the new status, or why it is refused (nothing changes).

    Args:
        status: the current status.
        to_state: requested state.
        now_ns: engine time.
        auction_ns: only for ``to_state == AUCTION``: if > 0, the auction uncrosses into ACTIVE at
            ``now_ns + auction_ns``; 0 leaves the auction open until the guardian ends it.

    A guardian command replaces any scheduled plan (a guardian halt overrides a breaker's timer).
    """
    if not transition_allowed(status.state, to_state, TransitionReason.guardian):
        return IntegrityRejectCode.market_state_transition_invalid
    if auction_ns < 0 or (auction_ns > 0 and to_state != MarketState.AUCTION):
        return IntegrityRejectCode.market_state_transition_invalid
    plan = (PlanStep(MarketState.ACTIVE, now_ns + auction_ns),) if auction_ns else ()
    return MarketStatus(to_state, TransitionReason.guardian, now_ns, plan)


def velocity_pause(status: MarketStatus, now_ns: int, pause_ns: int) -> MarketStatus | None:
    """Velocity logic engaged: ACTIVE -> AUCTION now, uncross into ACTIVE at ``now_ns + pause_ns``.

    Returns None (no change) unless the market is ACTIVE: a velocity move can only come from trades.
    ``pause_ns`` > 0.
    """
    assert pause_ns > 0
    if status.state != MarketState.ACTIVE:
        return None
    return MarketStatus(MarketState.AUCTION, TransitionReason.velocity, now_ns,
                        (PlanStep(MarketState.ACTIVE, now_ns + pause_ns),))


def luld_halt(status: MarketStatus, now_ns: int, halt_ns: int, auction_ns: int) -> MarketStatus | None:
    """LULD limit state lasted too long: ACTIVE -> HALTED now, AUCTION at +halt_ns, ACTIVE after.

    Returns None unless the market is ACTIVE. ``halt_ns`` and ``auction_ns`` > 0.
    """
    assert halt_ns > 0 and auction_ns > 0
    if status.state != MarketState.ACTIVE:
        return None
    return MarketStatus(MarketState.HALTED, TransitionReason.luld_limit_state, now_ns,
                        (PlanStep(MarketState.AUCTION, now_ns + halt_ns),
                         PlanStep(MarketState.ACTIVE, now_ns + halt_ns + auction_ns)))


def advance(status: MarketStatus, now_ns: int) -> tuple[MarketStatus, tuple[Transition, ...]]:
    """Execute every scheduled step with ``at_ns <= now_ns``, oldest first.

    Returns the new status and the transitions made (empty when nothing was due). A step AUCTION ->
    ACTIVE means: the engine must run the uncross (auction.py) before anything else of this command.
    Bounded by :data:`PLAN_STEPS_MAX` iterations.
    """
    transitions: list[Transition] = []
    current = status
    for _ in range(PLAN_STEPS_MAX):
        if not current.plan or current.plan[0].at_ns > now_ns:
            break
        step = current.plan[0]
        reason = TransitionReason.auction_uncrossed if step.state == MarketState.ACTIVE else TransitionReason.scheduled
        assert transition_allowed(current.state, step.state, TransitionReason.scheduled), "invalid plan step"
        transitions.append(Transition(current.state, step.state, reason, now_ns))
        # since_ns = the scheduled time (not now_ns), so later steps stay strictly after it.
        current = replace(current, state=step.state, reason=reason, since_ns=step.at_ns, plan=current.plan[1:])
    return current, tuple(transitions)
