"""Binance order-book sync rules (BookSequencer) and LocalBook, on small hand-made streams.

Rules from Binance "How to manage a local order book correctly" (USD-M / COIN-M: drop
u < lastUpdateId, first event U <= lastUpdateId <= u, then pu == previous u; Spot: drop
u <= lastUpdateId, first event U <= lastUpdateId+1 <= u, then U == previous u + 1).
"""

from __future__ import annotations

import pytest

from bastion.feeds.binance import (
    BINANCE_SPOT_BTCUSDT,
    BINANCE_USDM_BTCUSDT,
    BookDelta,
    BookSequencer,
    BookSnapshot,
    GapReason,
    Instrument,
    Level,
    Resynced,
    SequenceGap,
    SyncState,
)
from bastion.feeds.book import BookCrossedError, LocalBook
from bastion.feeds.errors import FeedError

FUT = BINANCE_USDM_BTCUSDT
SPOT = BINANCE_SPOT_BTCUSDT


def snap(
    inst: Instrument,
    last_update_id: int,
    bids: tuple[Level, ...] = ((100, 1),),
    asks: tuple[Level, ...] = ((101, 1),),
) -> BookSnapshot:
    return BookSnapshot(
        venue=inst.venue, symbol=inst.symbol, recv_time_ns=0, last_update_id=last_update_id, bids=bids, asks=asks
    )


def diff(
    inst: Instrument,
    first: int,
    final: int,
    prev: int | None = None,
    bids: tuple[Level, ...] = (),
    asks: tuple[Level, ...] = (),
) -> BookDelta:
    return BookDelta(
        venue=inst.venue,
        symbol=inst.symbol,
        recv_time_ns=0,
        first_update_id=first,
        final_update_id=final,
        prev_final_update_id=prev,
        bids=bids,
        asks=asks,
    )


def resynced(final_update_id: int) -> Resynced:
    return Resynced(
        venue=FUT.venue,
        symbol=FUT.symbol,
        recv_time_ns=0,
        snapshot_update_id=30,
        final_update_id=final_update_id,
        gaps_before=0,
    )


def kinds(records: list[object]) -> list[str]:
    return [type(r).__name__ for r in records]


def test_futures_buffer_then_bridge_then_live() -> None:
    seq = BookSequencer(FUT)
    stale = diff(FUT, 10, 19, 9)
    bridge = diff(FUT, 20, 35, 19)
    assert seq.on_delta(stale) == [] and seq.on_delta(bridge) == []  # buffered before any snapshot
    out = seq.on_snapshot(snap(FUT, 30))
    assert kinds(out) == ["BookSnapshot", "BookDelta", "Resynced"]
    assert out[1] is bridge and seq.state is SyncState.LIVE and seq.update_id == 35
    resynced = out[2]
    assert isinstance(resynced, Resynced) and resynced.snapshot_update_id == 30 and resynced.gaps_before == 0
    assert seq.stats.deltas_stale_dropped == 1
    assert seq.on_delta(diff(FUT, 40, 44, 35)) == [diff(FUT, 40, 44, 35)]  # pu == previous u


def test_futures_bridge_boundaries() -> None:
    # u == lastUpdateId is a valid first event (seen in the real ETHUSDT capture).
    seq = BookSequencer(FUT)
    seq.on_snapshot(snap(FUT, 30))
    assert kinds(seq.on_delta(diff(FUT, 25, 29, 24))) == []  # u < L: dropped
    assert kinds(seq.on_delta(diff(FUT, 26, 30, 29))) == ["BookDelta", "Resynced"]
    # U == L also bridges.
    seq = BookSequencer(FUT)
    seq.on_snapshot(snap(FUT, 30))
    assert kinds(seq.on_delta(diff(FUT, 30, 31, 29))) == ["BookDelta", "Resynced"]


def test_futures_pu_mismatch_is_a_gap_until_next_snapshot() -> None:
    seq = BookSequencer(FUT)
    seq.on_snapshot(snap(FUT, 30))
    seq.on_delta(diff(FUT, 28, 32, 27))
    out = seq.on_delta(diff(FUT, 40, 45, 38))  # pu 38 != previous u 32
    assert kinds(out) == ["SequenceGap"]
    gap = out[0]
    assert isinstance(gap, SequenceGap)
    assert (gap.reason, gap.last_update_id, gap.first_update_id, gap.prev_final_update_id) == (GapReason.PU_MISMATCH, 32, 40, 38)
    assert seq.state is SyncState.AWAITING_SNAPSHOT
    assert seq.on_delta(diff(FUT, 46, 50, 45)) == []  # book invalid: buffered, not emitted
    out = seq.on_snapshot(snap(FUT, 47))
    assert kinds(out) == ["BookSnapshot", "BookDelta", "Resynced"]  # 40-45 stale, 46-50 bridges 47
    assert out[1] == diff(FUT, 46, 50, 45)
    resynced = out[2]
    assert isinstance(resynced, Resynced) and resynced.gaps_before == 1
    assert (seq.stats.gaps, seq.stats.resyncs, seq.stats.snapshots_applied) == (1, 2, 2)


def test_snapshot_older_than_stream_is_a_gap() -> None:
    seq = BookSequencer(FUT)
    seq.on_snapshot(snap(FUT, 30))
    out = seq.on_delta(diff(FUT, 35, 40, 34))  # first event starts after L: updates 31..34 missed
    assert len(out) == 1 and isinstance(out[0], SequenceGap) and out[0].reason is GapReason.SNAPSHOT_NOT_BRIDGED


def test_snapshot_while_live_used_only_if_newer() -> None:
    seq = BookSequencer(FUT)
    seq.on_snapshot(snap(FUT, 30))
    seq.on_delta(diff(FUT, 28, 32, 27))
    assert seq.on_snapshot(snap(FUT, 31)) == [] and seq.stats.snapshots_skipped == 1
    assert kinds(seq.on_snapshot(snap(FUT, 50))) == ["BookSnapshot"]
    assert seq.state is SyncState.AWAITING_BRIDGE


def test_spot_rules() -> None:
    seq = BookSequencer(SPOT)
    seq.on_delta(diff(SPOT, 20, 30))  # u == L: stale on spot (u <= L)
    seq.on_delta(diff(SPOT, 31, 33))  # U <= L+1 <= u: bridges
    out = seq.on_snapshot(snap(SPOT, 30))
    assert kinds(out) == ["BookSnapshot", "BookDelta", "Resynced"] and seq.stats.deltas_stale_dropped == 1
    assert kinds(seq.on_delta(diff(SPOT, 34, 40))) == ["BookDelta"]  # U == previous u + 1
    out = seq.on_delta(diff(SPOT, 42, 45))
    assert len(out) == 1 and isinstance(out[0], SequenceGap) and out[0].reason is GapReason.U_NOT_CONTIGUOUS
    assert out[0].prev_final_update_id is None


def test_buffer_is_bounded() -> None:
    seq = BookSequencer(FUT, deltas_buffered_max=3)
    for index in range(10):
        seq.on_delta(diff(FUT, 10 * index, 10 * index + 9, 10 * index - 1))
    assert seq.stats.deltas_buffer_overflow_dropped == 7
    out = seq.on_snapshot(snap(FUT, 75))  # buffer holds 70-79, 80-89, 90-99
    assert kinds(out) == ["BookSnapshot", "BookDelta", "Resynced", "BookDelta", "BookDelta"]


# ---- LocalBook ---------------------------------------------------------------------------


def test_local_book_apply_depth_and_removal() -> None:
    book = LocalBook(FUT.venue, FUT.symbol)
    book.apply(snap(FUT, 30, bids=((100, 5), (99, 2), (98, 1)), asks=((101, 3), (102, 4))))
    assert not book.is_valid  # not valid until a diff bridges the snapshot
    bridge = diff(FUT, 29, 31, 28, bids=((100, 0), (97, 9)), asks=((101, 1), (150, 0)))  # 150: unknown level, ignored
    book.apply(bridge)
    book.apply(resynced(31))
    assert book.is_valid and book.update_id == 31
    assert book.best_bid() == (99, 2) and book.best_ask() == (101, 1)
    assert book.depth(2) == ([(99, 2), (98, 1)], [(101, 1), (102, 4)])
    assert book.depth(10) == ([(99, 2), (98, 1), (97, 9)], [(101, 1), (102, 4)])
    gap = SequenceGap(
        venue=FUT.venue,
        symbol=FUT.symbol,
        recv_time_ns=0,
        reason=GapReason.PU_MISMATCH,
        last_update_id=31,
        first_update_id=40,
        prev_final_update_id=39,
    )
    book.apply(gap)
    assert not book.is_valid


def _valid_book(policy: str) -> LocalBook:
    book = LocalBook(FUT.venue, FUT.symbol, crossed_policy=policy)  # type: ignore[arg-type]
    book.apply(snap(FUT, 30))
    book.apply(diff(FUT, 30, 30, 29))
    book.apply(resynced(30))
    assert book.is_valid
    return book


def test_crossed_book_invalidated_or_raised() -> None:
    crossing = diff(FUT, 31, 31, 30, bids=((101, 1),))  # bid at the ask
    book = _valid_book("invalidate")
    book.apply(crossing)
    assert not book.is_valid and book.crossed_count == 1
    book = _valid_book("raise")
    with pytest.raises(BookCrossedError):
        book.apply(crossing)


def test_level_bound_enforced() -> None:
    book = LocalBook(FUT.venue, FUT.symbol, levels_per_side_max=2)
    with pytest.raises(FeedError):
        book.apply(snap(FUT, 1, bids=((3, 1), (2, 1), (1, 1))))


def test_state_hash_tracks_content() -> None:
    first, second = _valid_book("invalidate"), _valid_book("invalidate")
    assert first.state_hash() == second.state_hash()
    second.apply(diff(FUT, 31, 31, 30, bids=((100, 2),)))
    assert first.state_hash() != second.state_hash()
