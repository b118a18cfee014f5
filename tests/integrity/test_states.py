"""Market states: the allowed-command table, transition tables, scheduled plans and the kill switch."""

from __future__ import annotations

import pytest

from bastion.core.integrity.codes import IntegrityCancelReason
from bastion.core.integrity.codes import IntegrityRejectCode as C
from bastion.core.integrity.codes import TransitionReason
from bastion.core.integrity.states import (
    ALLOWED,
    GUARDIAN_TRANSITIONS,
    CommandKind,
    MarketState,
    MarketStatus,
    advance,
    check_command,
    classify_place,
    guardian_set,
    luld_halt,
    transition_allowed,
    velocity_pause,
)
from bastion.core.rejects import CancelReason, RejectCode

S = MarketState
K = CommandKind


def test_codes_fit_the_reserved_band_without_collisions() -> None:
    """Before integration the codes are new; after it, RejectCode carries them with the same numbers."""
    for code in C:
        assert 500 <= code.value < 600
        if code.name in RejectCode.__members__:
            assert RejectCode[code.name].value == code.value
        else:
            assert code.value not in {c.value for c in RejectCode}
    for reason in IntegrityCancelReason:
        if reason.name in CancelReason.__members__:
            assert CancelReason[reason.name].value == reason.value
        else:
            assert reason.value not in {c.value for c in CancelReason}


@pytest.mark.parametrize(
    ("state", "kind", "expected"),
    [
        (S.ACTIVE, K.PLACE_IOC, None),
        (S.ACTIVE, K.COMMIT, None),
        (S.POST_ONLY, K.PLACE_POST_ONLY, None),
        (S.POST_ONLY, K.PLACE_LIMIT, C.market_post_only_requires_post_only_order),
        (S.POST_ONLY, K.PLACE_MARKET, C.market_post_only_requires_post_only_order),
        (S.CANCEL_ONLY, K.CANCEL, None),
        (S.CANCEL_ONLY, K.AMEND, C.market_cancel_only),
        (S.HALTED, K.PLACE_LIMIT, C.market_halted),
        (S.HALTED, K.CANCEL, None),
        (S.HALTED, K.REVEAL, None),
        (S.AUCTION, K.PLACE_LIMIT, None),
        (S.AUCTION, K.PLACE_MARKET, None),
        (S.AUCTION, K.PLACE_IOC, C.market_auction_forbids_order_kind),
        (S.AUCTION, K.PLACE_POST_ONLY, C.market_auction_forbids_order_kind),
        (S.SETTLING, K.CANCEL, C.market_settling),
        (S.SETTLING, K.WITHDRAW, None),  # account kinds ignore market state
    ],
)
def test_allowed_table(state: MarketState, kind: CommandKind, expected: C | None) -> None:
    assert check_command(state, kind, kill_switch_engaged=False) == expected


def test_every_state_has_a_row_and_cancel_is_allowed_wherever_orders_can_rest() -> None:
    assert set(ALLOWED) == set(S) == set(GUARDIAN_TRANSITIONS)
    for state in (S.ACTIVE, S.POST_ONLY, S.CANCEL_ONLY, S.HALTED, S.AUCTION):
        assert K.CANCEL in ALLOWED[state]


def test_kill_switch_blocks_entry_and_outflows_everywhere() -> None:
    for state in S:
        for kind in (K.PLACE_LIMIT, K.PLACE_POST_ONLY, K.AMEND, K.COMMIT, K.WITHDRAW, K.TRANSFER):
            assert check_command(state, kind, kill_switch_engaged=True) == C.venue_kill_switch_engaged
    assert check_command(S.ACTIVE, K.CANCEL, kill_switch_engaged=True) is None
    assert check_command(S.ACTIVE, K.DEPOSIT, kill_switch_engaged=True) is None
    assert check_command(S.ACTIVE, K.ORACLE, kill_switch_engaged=True) is None


def test_classify_place() -> None:
    assert classify_place(1, 1, False) == K.PLACE_MARKET
    assert classify_place(0, 0, True) == K.PLACE_POST_ONLY
    assert classify_place(0, 2, False) == K.PLACE_IOC
    assert classify_place(0, 3, False) == K.PLACE_LIMIT


def test_guardian_transition_table() -> None:
    g = TransitionReason.guardian
    assert not transition_allowed(S.HALTED, S.ACTIVE, g)  # reopen only through an auction
    assert transition_allowed(S.HALTED, S.AUCTION, g)
    assert not transition_allowed(S.AUCTION, S.POST_ONLY, g)
    assert not any(transition_allowed(S.SETTLING, to, g) for to in S)
    assert not any(transition_allowed(s, s, g) for s in S)
    status = MarketStatus(S.HALTED, g, 10)
    assert guardian_set(status, S.ACTIVE, 20) == C.market_state_transition_invalid
    assert guardian_set(status, S.CANCEL_ONLY, 20, auction_ns=5) == C.market_state_transition_invalid
    timed = guardian_set(status, S.AUCTION, 20, auction_ns=5)
    assert isinstance(timed, MarketStatus) and timed.plan[0].at_ns == 25


def test_rule_transitions_only_from_active() -> None:
    halted = MarketStatus(S.HALTED, TransitionReason.guardian, 0)
    assert velocity_pause(halted, 5, 10) is None
    assert luld_halt(halted, 5, 10, 10) is None
    assert not transition_allowed(S.POST_ONLY, S.AUCTION, TransitionReason.velocity)


def test_velocity_pause_reopens_exactly_at_pause_end() -> None:
    paused = velocity_pause(MarketStatus(), now_ns=1_000, pause_ns=500)
    assert paused is not None and paused.state == S.AUCTION
    same, moves = advance(paused, 1_499)
    assert same == paused and moves == ()
    opened, moves = advance(paused, 1_500)
    assert opened.state == S.ACTIVE and opened.plan == ()
    assert [(t.from_state, t.to_state, t.reason) for t in moves] == [(S.AUCTION, S.ACTIVE, TransitionReason.auction_uncrossed)]
    assert advance(paused, 1_501)[0].state == S.ACTIVE


def test_luld_plan_runs_both_steps_in_one_late_command() -> None:
    halted = luld_halt(MarketStatus(), now_ns=0, halt_ns=300, auction_ns=10)
    assert halted is not None and halted.state == S.HALTED
    assert advance(halted, 299)[0].state == S.HALTED
    auction, moves = advance(halted, 300)
    assert auction.state == S.AUCTION and len(moves) == 1
    assert advance(auction, 309)[0].state == S.AUCTION
    final, moves = advance(halted, 10_000)  # nothing arrived for a long time: both steps at once, in order
    assert final.state == S.ACTIVE
    assert [(t.from_state, t.to_state) for t in moves] == [(S.HALTED, S.AUCTION), (S.AUCTION, S.ACTIVE)]


def test_status_round_trips_through_canonical() -> None:
    halted = luld_halt(MarketStatus(), now_ns=7, halt_ns=3, auction_ns=4)
    assert halted is not None
    assert MarketStatus.from_canonical(halted.canonical()) == halted
