"""The brute-force twin of :mod:`auction`: obviously correct, slow (O(n * candidates + lots)).

Same rule, independent code: for every candidate price it recomputes demand and supply by scanning all
orders, applies the four criteria as successive filters, and allocates lot by lot (time priority) or by
exact rational quotas (:class:`fractions.Fraction`, exact — no floating point) for pro-rata. The
differential tests feed both the same random order sets and require identical results. Never used by
the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from bastion.core.integrity.auction import (
    Allocation,
    AuctionFill,
    AuctionOrder,
    AuctionResult,
    Indicative,
)

__all__ = ["clear_auction_naive", "volume_at_naive"]


def volume_at_naive(orders: Sequence[AuctionOrder], price_ticks: int) -> tuple[int, int]:
    """``(D(p), S(p))`` by a full scan."""
    demand = sum(o.qty_lots for o in orders if o.side > 0 and (o.is_market or o.price_ticks >= price_ticks))
    supply = sum(o.qty_lots for o in orders if o.side < 0 and (o.is_market or o.price_ticks <= price_ticks))
    return demand, supply


def _choose(orders: Sequence[AuctionOrder], candidates: list[int], reference_ticks: int) -> int | None:
    table = []
    for p in candidates:
        d, s = volume_at_naive(orders, p)
        table.append((p, min(d, s), abs(d - s)))
    best_volume = max(v for _, v, _ in table)
    if best_volume == 0:
        return None
    rows = [r for r in table if r[1] == best_volume]
    least_imbalance = min(r[2] for r in rows)
    rows = [r for r in rows if r[2] == least_imbalance]
    nearest = min(abs(r[0] - reference_ticks) for r in rows)
    rows = [r for r in rows if abs(r[0] - reference_ticks) == nearest]
    return min(r[0] for r in rows)


def _ration_naive(level: list[AuctionOrder], amount: int, allocation: Allocation) -> dict[int, int]:
    got = {o.order_id: 0 for o in level}
    if allocation == Allocation.TIME:
        for o in sorted(level, key=lambda o: (o.priority, o.order_id)):
            while got[o.order_id] < o.qty_lots and amount > 0:
                got[o.order_id] += 1
                amount -= 1
        return got
    total = sum(o.qty_lots for o in level)
    quotas = {o.order_id: Fraction(amount * o.qty_lots, total) for o in level}
    for oid, quota in quotas.items():
        got[oid] = int(quota)  # floor: quotas are non-negative
    leftover = amount - sum(got.values())
    ranked = sorted(level, key=lambda o: (-(quotas[o.order_id] - int(quotas[o.order_id])), o.priority, o.order_id))
    for o in ranked[:leftover]:
        got[o.order_id] += 1
    return got


def _allocate_naive(side_orders: list[AuctionOrder], volume: int, allocation: Allocation) -> list[AuctionFill]:
    def rank(o: AuctionOrder) -> tuple[int, int]:
        return (0, 0) if o.is_market else (1, -o.price_ticks * o.side)

    got: dict[int, int] = {}
    left = volume
    for key in sorted({rank(o) for o in side_orders}):
        level = [o for o in side_orders if rank(o) == key]
        wanted = sum(o.qty_lots for o in level)
        if wanted <= left:
            got.update({o.order_id: o.qty_lots for o in level})
            left -= wanted
        else:
            got.update(_ration_naive(level, left, allocation))
            left = 0
    order = sorted(side_orders, key=lambda o: (rank(o), o.priority, o.order_id))
    return [AuctionFill(o.order_id, o.side, got[o.order_id]) for o in order if got.get(o.order_id)]


def clear_auction_naive(orders: Sequence[AuctionOrder], reference_ticks: int,
                        allocation: Allocation = Allocation.TIME, price_min_ticks: int | None = None,
                        price_max_ticks: int | None = None) -> AuctionResult:
    """Reference implementation of :func:`bastion.core.integrity.auction.clear_auction`."""
    low = price_min_ticks or 1
    limits = sorted({o.price_ticks for o in orders if not o.is_market})
    candidates = [p for p in limits if p >= low and (price_max_ticks is None or p <= price_max_ticks)]
    candidates += [p for p in (price_min_ticks, price_max_ticks) if p is not None]
    if not candidates:
        candidates = [reference_ticks]
    candidates = sorted(set(candidates))
    price = _choose(orders, candidates, reference_ticks)
    if price is None:
        mb = sum(o.qty_lots for o in orders if o.is_market and o.side > 0)
        ms = sum(o.qty_lots for o in orders if o.is_market and o.side < 0)
        return AuctionResult(Indicative(None, 0, mb - ms, mb, ms), ())
    d, s = volume_at_naive(orders, price)
    volume = min(d, s)
    buys = [o for o in orders if o.side > 0 and (o.is_market or o.price_ticks >= price)]
    sells = [o for o in orders if o.side < 0 and (o.is_market or o.price_ticks <= price)]
    fills = _allocate_naive(buys, volume, allocation) + _allocate_naive(sells, volume, allocation)
    return AuctionResult(Indicative(price, volume, d - s, d, s), tuple(fills))
