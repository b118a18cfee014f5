"""Call-auction clearing: hand-worked exact cases, and the fast rule vs the brute-force reference."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.core.integrity.auction import (
    Allocation,
    AuctionFill,
    AuctionOrder,
    clear_auction,
    indicative,
    largest_remainder,
    pair_fills,
)
from bastion.core.integrity.auction_reference import clear_auction_naive, volume_at_naive

BUY, SELL = 1, -1


def lim(order_id: int, side: int, price: int, qty: int, priority: int | None = None) -> AuctionOrder:
    return AuctionOrder(order_id, side, price, qty, order_id if priority is None else priority)


def mkt(order_id: int, side: int, qty: int, priority: int | None = None) -> AuctionOrder:
    return AuctionOrder(order_id, side, 0, qty, order_id if priority is None else priority, is_market=True)


def fills_of(result: object) -> dict[int, int]:
    return {f.order_id: f.qty_lots for f in result.fills}  # type: ignore[attr-defined]


# ---------------------------------------------------------------- worked examples (auction.py docstring)

EXAMPLE_A = [lim(1, BUY, 103, 10), lim(2, BUY, 102, 15), lim(3, BUY, 100, 20),
             lim(4, SELL, 99, 12), lim(5, SELL, 101, 8), lim(6, SELL, 103, 25)]


def test_example_a_volume_then_reference() -> None:
    """V: 99->12, 100->12, 101->20, 102->20, 103->10; I = +5 at 101 and 102; the reference decides."""
    for price, want in [(99, (45, 12)), (100, (45, 12)), (101, (25, 20)), (102, (25, 20)), (103, (10, 45))]:
        assert volume_at_naive(EXAMPLE_A, price) == want
    low = clear_auction(EXAMPLE_A, reference_ticks=100)
    assert (low.price_ticks, low.volume_lots, low.indicative.imbalance_lots) == (101, 20, 5)
    # Sells short side fill whole; buys: level 103 whole, margin at 102 (better than p*), 100 not eligible.
    assert low.fills == (AuctionFill(1, BUY, 10), AuctionFill(2, BUY, 10), AuctionFill(4, SELL, 12),
                         AuctionFill(5, SELL, 8))
    high = clear_auction(EXAMPLE_A, reference_ticks=105)
    assert (high.price_ticks, high.volume_lots) == (102, 20)


def test_example_b_equidistant_reference_takes_lower_price() -> None:
    orders = [lim(1, BUY, 104, 10), lim(2, BUY, 100, 3), lim(3, SELL, 100, 10), lim(4, SELL, 104, 3)]
    mid = clear_auction(orders, reference_ticks=102)
    assert (mid.price_ticks, mid.volume_lots, mid.indicative.imbalance_lots) == (100, 10, 3)
    assert fills_of(mid) == {1: 10, 3: 10}
    up = clear_auction(orders, reference_ticks=103)
    assert (up.price_ticks, up.volume_lots, up.indicative.imbalance_lots) == (104, 10, -3)
    assert fills_of(up) == {1: 10, 3: 10}


def test_example_c_imbalance_beats_reference() -> None:
    orders = [lim(1, BUY, 102, 10), lim(2, BUY, 100, 10), lim(3, SELL, 100, 10), lim(4, SELL, 102, 5)]
    result = clear_auction(orders, reference_ticks=100)
    assert (result.price_ticks, result.volume_lots, result.indicative.imbalance_lots) == (102, 10, -5)
    assert fills_of(result) == {1: 10, 3: 10}


EXAMPLE_D = [lim(1, SELL, 100, 20, priority=1), mkt(10, BUY, 4, priority=5), lim(11, BUY, 101, 10, priority=2),
             lim(12, BUY, 100, 10, priority=3), lim(13, BUY, 100, 5, priority=4), lim(14, BUY, 100, 9, priority=6)]


def test_example_d_time_priority_at_the_margin() -> None:
    result = clear_auction(EXAMPLE_D, reference_ticks=100, allocation=Allocation.TIME)
    assert (result.price_ticks, result.volume_lots, result.indicative.imbalance_lots) == (100, 20, 18)
    assert [(f.order_id, f.qty_lots) for f in result.fills] == [(10, 4), (11, 10), (12, 6), (1, 20)]


def test_example_d_pro_rata_at_the_margin() -> None:
    """6 lots over 10/5/9: quotas 2.5/1.25/2.25, floors 2/1/2, the leftover lot to the largest remainder."""
    result = clear_auction(EXAMPLE_D, reference_ticks=100, allocation=Allocation.PRO_RATA)
    assert [(f.order_id, f.qty_lots) for f in result.fills] == [(10, 4), (11, 10), (12, 3), (13, 1), (14, 2), (1, 20)]


def test_example_e_pro_rata_remainder_ties_go_to_time() -> None:
    assert largest_remainder([4, 4, 4], 5) == [2, 2, 1]
    orders = [lim(1, SELL, 50, 5), lim(2, BUY, 50, 4, priority=9), lim(3, BUY, 50, 4, priority=7),
              lim(4, BUY, 50, 4, priority=8)]
    result = clear_auction(orders, reference_ticks=50, allocation=Allocation.PRO_RATA)
    assert fills_of(result) == {3: 2, 4: 2, 2: 1, 1: 5}


def test_cme_pro_rata_example_floors() -> None:
    """CME client-systems wiki "Complex Match Example": 401 lots pro-rata over 900/200/300/400/100 gives
    floors 189/42/63/84/21 (CME then hands the 2 leftover lots out FIFO); largest remainder gives them to
    the largest fractional parts, 0.947 (900) and 0.421 (400)."""
    quantities = [900, 200, 300, 400, 100]
    assert [401 * q // 1900 for q in quantities] == [189, 42, 63, 84, 21]
    assert largest_remainder(quantities, 401) == [190, 42, 63, 85, 21]


def test_market_orders_only_clear_at_reference() -> None:
    orders = [mkt(1, BUY, 7), mkt(2, SELL, 5)]
    result = clear_auction(orders, reference_ticks=777)
    assert (result.price_ticks, result.volume_lots, result.indicative.imbalance_lots) == (777, 5, 2)
    assert fills_of(result) == {1: 5, 2: 5}


def test_no_cross_publishes_market_imbalance_only() -> None:
    orders = [lim(1, BUY, 99, 5), lim(2, SELL, 101, 5), mkt(3, BUY, 2)]
    ind = indicative(orders, reference_ticks=100)
    # The market buy makes D(101) = 2 >= 1, so it crosses the ask at 101.
    assert (ind.price_ticks, ind.matched_lots) == (101, 2)
    ind = indicative([lim(1, BUY, 99, 5), lim(2, SELL, 101, 5)], reference_ticks=100)
    assert (ind.price_ticks, ind.matched_lots, ind.imbalance_lots) == (None, 0, 0)
    assert clear_auction([lim(1, BUY, 99, 5), lim(2, SELL, 101, 5)], 100).fills == ()


def test_collar_restricts_the_price_and_adds_its_edges() -> None:
    orders = [lim(1, BUY, 120, 10), lim(2, SELL, 90, 10)]
    free = clear_auction(orders, reference_ticks=100)
    assert free.price_ticks == 90  # 90 and 120 tie on V, I; 90 is nearer to 100
    collared = clear_auction(orders, reference_ticks=100, price_min_ticks=95, price_max_ticks=105)
    assert (collared.price_ticks, collared.volume_lots) == (95, 10)
    assert clear_auction_naive(orders, 100, Allocation.TIME, 95, 105) == collared


def test_pair_fills_two_pointers() -> None:
    fills = [AuctionFill(1, BUY, 5), AuctionFill(2, BUY, 3), AuctionFill(3, SELL, 4), AuctionFill(4, SELL, 4)]
    trades = pair_fills(fills)
    assert [(t.buy_order_id, t.sell_order_id, t.qty_lots) for t in trades] == [(1, 3, 4), (1, 4, 1), (2, 4, 3)]


# ---------------------------------------------------------------- differential: fast vs brute force

@st.composite
def order_sets(draw: st.DrawFn) -> tuple[list[AuctionOrder], int]:
    count = draw(st.integers(0, 24))
    base = draw(st.integers(20, 1_000))
    spread = draw(st.integers(0, 12))
    priorities = draw(st.permutations(list(range(1, count + 1))))
    orders = []
    for i in range(count):
        side = draw(st.sampled_from([BUY, SELL]))
        qty = draw(st.integers(1, 40))
        if draw(st.integers(0, 9)) == 0:
            orders.append(mkt(i + 1, side, qty, priority=priorities[i]))
        else:
            price = base + draw(st.integers(-spread, spread))
            orders.append(lim(i + 1, side, price, qty, priority=priorities[i]))
    reference = base + draw(st.integers(-spread - 2, spread + 2))
    return orders, reference


@settings(max_examples=400, deadline=None)
@given(order_sets(), st.sampled_from([Allocation.TIME, Allocation.PRO_RATA]))
def test_fast_equals_brute_force(case: tuple[list[AuctionOrder], int], allocation: Allocation) -> None:
    orders, reference = case
    fast = clear_auction(orders, reference, allocation)
    naive = clear_auction_naive(orders, reference, allocation)
    assert fast == naive
    # Conservation and bounds.
    by_id = {o.order_id: o for o in orders}
    assert sum(f.qty_lots for f in fast.fills if f.side > 0) == sum(f.qty_lots for f in fast.fills if f.side < 0)
    for f in fast.fills:
        order = by_id[f.order_id]
        assert 0 < f.qty_lots <= order.qty_lots and f.side == order.side
        if not order.is_market and fast.price_ticks is not None:
            assert order.price_ticks >= fast.price_ticks if f.side > 0 else order.price_ticks <= fast.price_ticks
    assert sum(t.qty_lots for t in pair_fills(fast.fills)) == fast.volume_lots


@settings(max_examples=200, deadline=None)
@given(order_sets(), st.integers(0, 6), st.integers(0, 6))
def test_collared_fast_equals_brute_force(case: tuple[list[AuctionOrder], int], lo: int, width: int) -> None:
    orders, reference = case
    low = max(reference - lo, 1)
    high = low + width
    fast = clear_auction(orders, reference, Allocation.PRO_RATA, low, high)
    assert fast == clear_auction_naive(orders, reference, Allocation.PRO_RATA, low, high)
    if fast.price_ticks is not None:
        assert low <= fast.price_ticks <= high


@settings(max_examples=300, deadline=None)
@given(order_sets())
def test_candidates_attain_the_maximal_volume_over_every_tick(case: tuple[list[AuctionOrder], int]) -> None:
    orders, reference = case
    result = clear_auction(orders, reference)
    limits = [o.price_ticks for o in orders if not o.is_market]
    if not limits:
        return
    best_any_tick = max(min(*volume_at_naive(orders, p)) for p in range(min(limits) - 1, max(limits) + 2))
    assert result.volume_lots == best_any_tick


@settings(max_examples=200, deadline=None)
@given(order_sets())
def test_no_resting_cross_after_clearing(case: tuple[list[AuctionOrder], int]) -> None:
    """Volume maximization leaves no remaining buy limit >= a remaining sell limit."""
    orders, reference = case
    result = clear_auction(orders, reference)
    left = {o.order_id: o.qty_lots for o in orders}
    for f in result.fills:
        left[f.order_id] -= f.qty_lots
    bids = [o.price_ticks for o in orders if o.side > 0 and not o.is_market and left[o.order_id]]
    asks = [o.price_ticks for o in orders if o.side < 0 and not o.is_market and left[o.order_id]]
    assert not (bids and asks and max(bids) >= min(asks))
    # And unfilled market orders only remain on one side, opposite to an exhausted book.
    mb = any(o.is_market and o.side > 0 and left[o.order_id] for o in orders)
    ms = any(o.is_market and o.side < 0 and left[o.order_id] for o in orders)
    assert not (mb and ms)
    assert not (mb and asks) and not (ms and bids)


def test_clearing_is_deterministic_and_order_independent() -> None:
    orders = EXAMPLE_D + EXAMPLE_A[:0]
    a = clear_auction(orders, 100, Allocation.PRO_RATA)
    b = clear_auction(list(reversed(orders)), 100, Allocation.PRO_RATA)
    assert a == b
