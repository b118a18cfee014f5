"""Limit Up–Limit Down style volatility halt as a pure step function.

US equities LULD (luldplan.com; shared/reference/matching-engines.md §3.10): the market enters a
*Limit State* when the best bid equals the upper band or the best offer equals the lower band; if it
does not leave the Limit State within 15 s, a 5-minute trading pause follows, and trading resumes
through a reopening auction. Mapping to a perps venue: the band is :mod:`bands` (around mark or last);
orders beyond it are already rejected there, so "at the limit" means *at or beyond* the edge.

Exact rule (:func:`luld_step`), evaluated by the engine after every command that touched the
instrument and on every command while the instrument is in a Limit State (so timers fire on Heartbeat):

* ``side = limit_side(best_bid, best_ask, band)``: UPPER if ``best_bid >= high``, else LOWER if
  ``best_ask <= low``, else NONE (both at once would be a crossed book; UPPER wins, asserted absent).
* NONE: the Limit State (if any) is exited.
* a side different from the current one (including NONE -> side): the Limit State is (re)entered with
  ``since_ns = now_ns``.
* the same side: the timer runs. It **halts** when ``now_ns - since_ns >= limit_state_ns`` — at
  exactly ``limit_state_ns`` it halts, at ``limit_state_ns - 1`` it does not. On halt the state resets
  to NONE and the engine applies :func:`bastion.core.integrity.states.luld_halt` (HALTED for
  ``halt_ns``, then AUCTION for ``auction_ns``, then the uncross into ACTIVE).

Reference price: LULD moves its reference only when the new value differs by 1 % or more from the
current one (:func:`luld_reference`), which keeps the band from chasing a runaway price tick by tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from bastion.core.integrity.bands import Band
from bastion.core.units import PPM

__all__ = ["LimitSide", "LuldSpec", "LuldState", "LuldStep", "limit_side", "luld_reference", "luld_step"]


class LimitSide(IntEnum):
    """Which band edge the book is pinned at."""

    NONE = 0
    UPPER = 1
    LOWER = -1


@dataclass(frozen=True, slots=True)
class LuldSpec:
    """LULD parameters of one instrument (engine ns; ppm).

    Attributes:
        limit_state_ns: time in the Limit State that triggers the halt (LULD: 15 s).
        halt_ns: length of the trading pause (LULD: 5 min).
        auction_ns: length of the reopening call auction.
        reference_update_ppm: smallest relative move of the reference that is applied (LULD: 1 %).
    """

    limit_state_ns: int = 15_000_000_000
    halt_ns: int = 300_000_000_000
    auction_ns: int = 10_000_000_000
    reference_update_ppm: int = 10_000

    def __post_init__(self) -> None:
        assert self.limit_state_ns >= 0 and self.halt_ns > 0 and self.auction_ns > 0
        assert 0 <= self.reference_update_ppm <= PPM


@dataclass(frozen=True, slots=True)
class LuldState:
    """The Limit State of one instrument: which side (NONE when not in it) and since when."""

    side: LimitSide = LimitSide.NONE
    since_ns: int = 0

    def canonical(self) -> list[int]:
        """Plain data for the state hash and snapshots."""
        return [int(self.side), self.since_ns]


@dataclass(frozen=True, slots=True)
class LuldStep:
    """Result of one step: the new state and what happened (``halt`` at most once per entry)."""

    state: LuldState
    entered: bool = False
    exited: bool = False
    halt: bool = False


def limit_side(best_bid_ticks: int | None, best_ask_ticks: int | None, band: Band) -> LimitSide:
    """UPPER when the best bid is at/above the upper band, LOWER when the best ask is at/below the lower."""
    upper = best_bid_ticks is not None and best_bid_ticks >= band.high_ticks
    lower = best_ask_ticks is not None and best_ask_ticks <= band.low_ticks
    assert not (upper and lower), "book crossed through the whole band"
    if upper:
        return LimitSide.UPPER
    if lower:
        return LimitSide.LOWER
    return LimitSide.NONE


def luld_step(state: LuldState, now_ns: int, side: LimitSide, spec: LuldSpec) -> LuldStep:
    """Advance the Limit State machine to ``now_ns`` given the current ``side`` (see module docstring).

    Pure: returns a new state. ``now_ns`` must not be earlier than ``state.since_ns``.
    """
    assert now_ns >= state.since_ns, "engine time went backwards"
    if side == LimitSide.NONE:
        exited = state.side != LimitSide.NONE
        return LuldStep(LuldState(), exited=exited)
    entered = side != state.side
    current = LuldState(side, now_ns) if entered else state
    if now_ns - current.since_ns >= spec.limit_state_ns:
        return LuldStep(LuldState(), entered=entered, halt=True)
    return LuldStep(current, entered=entered)


def luld_reference(current_ticks: int, candidate_ticks: int, update_ppm: int) -> int:
    """The reference price after a new candidate (mean/mark): moved only by ``>= update_ppm``.

    Exact: the candidate replaces the current reference iff
    ``|candidate - current| * PPM >= current * update_ppm``.
    """
    assert current_ticks > 0 and candidate_ticks > 0 and 0 <= update_ppm <= PPM
    if abs(candidate_ticks - current_ticks) * PPM >= current_ticks * update_ppm:
        return candidate_ticks
    return current_ticks
