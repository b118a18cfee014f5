"""Frequent batch auctions: boundary timing, resting vs IOC remainders, idle boundaries, determinism, and
every clearing equal to the brute-force auction over the live orders."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.core.integrity.auction import Allocation
from bastion.core.integrity.auction_reference import clear_auction_naive
from bastion.core.integrity.auction import indicative
from bastion.core.integrity.batch import CALL_AUCTION_SPEC, BatchBook, BatchSpec
from bastion.core.integrity.codes import IntegrityRejectCode

TAU = 1_000


def test_boundary_timing_is_exact() -> None:
    book = BatchBook(BatchSpec(interval_ns=TAU, origin_ns=0))
    assert book.run_due(999, 100) is None
    book.submit(1, 1, 101, 5, 999)  # last ns of batch 0
    assert book.run_due(999, 100) is None
    first = book.run_due(1_000, 100)  # the boundary itself closes batch 0 ...
    assert first is not None and first.batch_index == 0 and first.boundary_ns == 1_000
    assert first.result.price_ticks is None  # nothing to trade against yet
    book.submit(2, -1, 99, 3, 1_000)  # ... and an order stamped on it joins batch 1
    assert book.batch_index(1_000) == 1
    assert book.run_due(1_999, 100) is None
    second = book.run_due(2_000, 100)
    assert second is not None and second.batch_index == 1
    assert (second.result.price_ticks, second.result.volume_lots) == (99, 3)  # tie at 99|101; equidistant: lower
    assert [(t.buy_order_id, t.sell_order_id, t.qty_lots) for t in second.trades] == [(1, 2, 3)]
    assert second.filled == (2,)
    assert book.orders[1].qty_lots == 2 and book.orders[1].priority == 1  # GTC rest keeps its priority


def test_ioc_and_market_remainders_die_after_their_batch() -> None:
    book = BatchBook(BatchSpec(interval_ns=TAU))
    book.submit(1, -1, 100, 4, 10)
    book.submit(2, 1, 100, 10, 20, ioc=True)
    book.submit(3, 1, 0, 7, 30, is_market=True)
    clearing = book.run_due(TAU, 100)
    assert clearing is not None
    # Market buy has priority over the limit: it takes all 4 lots.
    assert {f.order_id: f.qty_lots for f in clearing.result.fills} == {3: 4, 1: 4}
    assert sorted(clearing.canceled) == [(2, 10), (3, 3)]
    assert book.orders == {}


def test_idle_boundaries_cost_nothing_and_many_passed_boundaries_clear_once() -> None:
    book = BatchBook(BatchSpec(interval_ns=TAU))
    book.submit(1, 1, 100, 1, 5)
    book.submit(2, -1, 100, 1, 6)
    clearing = book.run_due(50 * TAU + 7, 100)
    assert clearing is not None and clearing.batch_index == 0 and clearing.result.volume_lots == 1
    assert book.open_index == 50
    book.submit(3, 1, 90, 1, 50 * TAU + 8)
    book.submit(4, -1, 110, 1, 50 * TAU + 9)
    assert book.run_due(51 * TAU, 100) is not None  # dirty: clears (nothing crosses)
    assert book.run_due(52 * TAU, 100) is None  # idle: no work


def test_orders_max_and_cancel() -> None:
    book = BatchBook(BatchSpec(interval_ns=TAU, orders_max=2))
    assert book.submit(1, 1, 100, 1, 0) is None
    assert book.submit(2, 1, 100, 1, 0) is None
    assert book.submit(3, 1, 100, 1, 0) == IntegrityRejectCode.auction_orders_max_reached
    assert book.cancel(1) == 1
    assert book.cancel(1) == IntegrityRejectCode.auction_order_unknown
    clone = BatchBook.from_canonical(book.spec, book.canonical())
    assert clone.canonical() == book.canonical()


ops = st.lists(
    st.tuples(st.integers(0, 700), st.sampled_from(["buy", "sell", "mbuy", "msell", "ioc", "cancel"]),
              st.integers(90, 110), st.integers(1, 20)),
    min_size=1, max_size=80,
)


def _drive(steps: list[tuple[int, str, int, int]], allocation: Allocation) -> list[object]:
    book = BatchBook(BatchSpec(interval_ns=TAU, allocation=allocation))
    now, next_id, reference, log = 0, 1, 100, []
    for dt, kind, price, qty in steps:
        now += dt
        live_before = book.auction_orders()
        clearing = book.run_due(now, reference)
        if clearing is not None:
            assert clearing.result == clear_auction_naive(live_before, reference, allocation)
            assert not book.crossed()
            if clearing.result.price_ticks is not None:
                reference = clearing.result.price_ticks
            log.append(clearing)
        if kind == "cancel":
            if book.orders:
                book.cancel(sorted(book.orders)[qty % len(book.orders)])
            continue
        side = 1 if kind in ("buy", "mbuy", "ioc") else -1
        market = kind in ("mbuy", "msell")
        assert book.submit(next_id, side, 0 if market else price, qty, now, is_market=market, ioc=kind == "ioc") is None
        next_id += 1
    log.append(book.canonical())
    return log


@settings(max_examples=150, deadline=None)
@given(ops, st.sampled_from([Allocation.TIME, Allocation.PRO_RATA]))
def test_batches_clear_like_the_reference_and_replay_identically(
        steps: list[tuple[int, str, int, int]], allocation: Allocation) -> None:
    assert _drive(steps, allocation) == _drive(steps, allocation)


def test_call_auction_book_publishes_indicative_and_uncrosses_once() -> None:
    """The reopening auction: orders collect (crossed is fine), indicative figures move, one uncross."""
    book = BatchBook(CALL_AUCTION_SPEC, now_ns=5_000)
    book.submit(1, 1, 105, 10, 5_001)
    book.submit(2, -1, 100, 4, 5_002)
    first = indicative(book.auction_orders(), reference_ticks=102)
    assert (first.price_ticks, first.matched_lots, first.imbalance_lots) == (100, 4, 6)
    book.submit(3, -1, 104, 10, 5_003)
    book.submit(4, 1, 0, 3, 5_004, is_market=True)
    assert book.run_due(10**15, 102) is None  # no boundary ever passes in a call auction
    assert book.reduce(3, 8) is None and book.orders[3].priority == 3  # size-down keeps priority
    ind = indicative(book.auction_orders(), reference_ticks=102, price_min_ticks=95, price_max_ticks=105)
    uncross = book.clear_now(10**15 + 1, 102, 95, 105)
    assert uncross.result.indicative == ind
    assert (uncross.result.price_ticks, uncross.result.volume_lots) == (104, 12)
    assert {f.order_id: f.qty_lots for f in uncross.result.fills} == {4: 3, 1: 9, 2: 4, 3: 8}
    assert uncross.canceled == () and not book.crossed()
    assert [(o.order_id, o.qty_lots) for o in book.orders.values()] == [(1, 1)]


def test_advance_skips_clearing_but_keeps_pending_orders() -> None:
    book = BatchBook(BatchSpec(interval_ns=TAU))
    book.submit(1, 1, 100, 2, 10)
    book.submit(2, -1, 100, 2, 20)
    book.advance(5 * TAU)  # halted: boundaries pass without clearing
    assert book.open_index == 5 and len(book.orders) == 2
    clearing = book.run_due(6 * TAU, 100)
    assert clearing is not None and clearing.batch_index == 5 and clearing.result.volume_lots == 2
