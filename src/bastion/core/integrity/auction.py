"""Uniform-price call auction: clearing price, allocation, indicative price and imbalance.

Used for the reopening auction after a halt or velocity pause (states.AUCTION), and at every boundary
of a frequent batch auction (batch.py). Sources: Budish–Cramton–Shim, "The High-Frequency Trading Arms
Race", QJE 130(4), 2015 (uniform-price sealed-bid double auction); Xetra/Euronext auction price rules
(volume, then surplus, then reference price); CME "pro rata then FIFO" allocation
(shared/reference/matching-engines.md §3.8–3.9).

Clearing rule (exact)
---------------------
Orders are limit orders ``(side, price_ticks, qty_lots, priority)`` and market orders (execute at any
price). For a price ``p``:

* demand ``D(p)`` = market buys + buy limits with ``price >= p``;
* supply ``S(p)`` = market sells + sell limits with ``price <= p``;
* executed volume ``V(p) = min(D(p), S(p))``; imbalance ``I(p) = D(p) - S(p)`` (> 0: buyers left over).

Candidates are the distinct limit prices of all orders (both sides) inside the optional collar
``[price_min, price_max]``, plus the collar edges themselves when given; with no limit order and no
collar, the reference price is the only candidate. The clearing price ``p*`` is the candidate that

1. maximizes ``V(p)``;
2. then minimizes ``|I(p)|``;
3. then minimizes ``|p - reference|``;
4. then is the **lower** price (final deterministic tie-break).

If the maximum volume is 0 there is no clearing price (``price_ticks`` is None, nothing trades).
Why candidates suffice: between two consecutive candidates ``a < b``, ``D`` equals ``D(b)`` and ``S``
equals ``S(a)``, so ``V`` there is ``<= V(a)`` and ``<= V(b)``: the maximal volume over *every* tick is
attained at a candidate (tested). Rule 2 is applied among candidates only (as Xetra does among limits);
a tick strictly between two limits can have a smaller ``|I|`` but is never chosen.

Allocation at ``p*`` (volume ``V``): every eligible order of the short side (the side whose total equals
``V``) fills completely. The long side is filled in strict price priority: market orders first, then
the best limit price, level by level; the first level that cannot be filled whole is the *margin* and
is rationed by time priority (``Allocation.TIME``: ascending ``priority``, then ``order_id``) or
pro-rata (``Allocation.PRO_RATA``: ``floor(R*q_i/Q)``, then the leftover lots one each to the largest
remainders ``R*q_i mod Q``, ties to the earlier priority — Hamilton's largest-remainder method). The
margin level may be *better* than ``p*`` (example A). All fills are at ``p*``.

Worked examples (the tests check every number)
----------------------------------------------
A. Volume, then reference. Buys B1 10@103, B2 15@102, B3 20@100; sells S1 12@99, S2 8@101, S3 25@103.
   ``V``: 99→12, 100→12, 101→20, 102→20, 103→10; ``I`` at 101 and 102 is +5 for both. Reference 100
   picks 101 (distance 1 < 2); reference 105 picks 102. At 101: sells S1 12 + S2 8 fill (short side);
   buys B1 10 (level 103 whole) and B2 10 of 15 (margin at 102, better than ``p*``); B3 not eligible.
B. Final tie-break. Buys B1 10@104, B2 3@100; sells S1 10@100, S2 3@104. ``V`` = 10 at both 100
   (``I`` = +3) and 104 (``I`` = -3). Reference 102 is equidistant: the lower price 100 wins; fills
   B1 10, S1 10. Reference 103 picks 104: fills B1 10, S1 10 (S2 is the rationed margin, gets 0).
C. Imbalance beats reference. Buys 10@102, 10@100; sells 10@100, 5@102. ``V`` = 10 at both; ``I`` is
   +10 at 100 and -5 at 102, so 102 wins even with reference 100.
D. Margin rationing. Sell S1 20@100; buys M1 market 4, B1 10@101, B2 10@100 (priority 3), B3 5@100
   (4), B4 9@100 (6). ``p*`` = 100 (V 20 vs 14 at 101). Buys: M1 4, B1 10, then 6 lots at the 100
   level (24 wanted). Time: B2 6, B3 0, B4 0. Pro-rata: quotas 2.5/1.25/2.25 -> floors 2/1/2, the one
   leftover lot to B2 (remainder 12/24 is largest): B2 3, B3 1, B4 2.
E. Pro-rata ties. 5 lots over three orders of 4: floors 1/1/1, remainders equal, the two leftover lots
   go to the two earliest: 2, 2, 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "AUCTION_ORDERS_MAX",
    "Allocation",
    "AuctionFill",
    "AuctionOrder",
    "AuctionResult",
    "AuctionTrade",
    "Indicative",
    "candidate_prices",
    "clear_auction",
    "indicative",
    "largest_remainder",
    "pair_fills",
]

AUCTION_ORDERS_MAX = 200_000
"""Orders one clearing may take (the engine caps auction/batch books below this)."""


class Allocation(IntEnum):
    """How the marginal price level of the long side is rationed."""

    TIME = 0
    PRO_RATA = 1


@dataclass(frozen=True, slots=True)
class AuctionOrder:
    """One order in an auction.

    Attributes:
        order_id: unique within the auction.
        side: +1 buy, -1 sell.
        price_ticks: limit price (> 0); must be 0 for market orders.
        qty_lots: remaining quantity (> 0).
        priority: arrival rank; smaller is earlier (ties broken by ``order_id``).
        is_market: executes at any price.
    """

    order_id: int
    side: int
    price_ticks: int
    qty_lots: int
    priority: int
    is_market: bool = False


@dataclass(frozen=True, slots=True)
class Indicative:
    """What the auction would do now (published as ``AuctionIndicative`` while it runs).

    ``price_ticks`` None means no cross: then ``matched_lots`` is 0 and demand/supply/imbalance count
    only market orders (what executes at any price).
    """

    price_ticks: int | None
    matched_lots: int
    imbalance_lots: int  # D - S at the price: > 0 buyers left over, < 0 sellers left over
    demand_lots: int
    supply_lots: int


@dataclass(frozen=True, slots=True)
class AuctionFill:
    """An order's executed quantity at the clearing price."""

    order_id: int
    side: int
    qty_lots: int


@dataclass(frozen=True, slots=True)
class AuctionTrade:
    """One buyer-seller pair of the clearing, for settlement and ``TradeExecuted`` events."""

    buy_order_id: int
    sell_order_id: int
    qty_lots: int


@dataclass(frozen=True, slots=True)
class AuctionResult:
    """The clearing: indicative figures at ``p*`` and the fills (buys in allocation order, then sells)."""

    indicative: Indicative
    fills: tuple[AuctionFill, ...]

    @property
    def price_ticks(self) -> int | None:
        return self.indicative.price_ticks

    @property
    def volume_lots(self) -> int:
        return self.indicative.matched_lots


def _check_orders(orders: Sequence[AuctionOrder], orders_max: int) -> None:
    assert len(orders) <= orders_max, "auction orders_max exceeded"
    seen: set[int] = set()
    for order in orders:
        assert order.side in (1, -1) and order.qty_lots > 0, "bad auction order"
        assert (order.price_ticks == 0) if order.is_market else (order.price_ticks > 0), "bad auction price"
        assert order.order_id not in seen, "duplicate order_id"
        seen.add(order.order_id)


def candidate_prices(orders: Sequence[AuctionOrder], reference_ticks: int,
                     price_min_ticks: int | None = None, price_max_ticks: int | None = None) -> list[int]:
    """Candidate clearing prices, ascending (rule in the module docstring)."""
    low = price_min_ticks if price_min_ticks is not None else 1
    high = price_max_ticks if price_max_ticks is not None else None
    assert low >= 1 and (high is None or high >= low)
    prices = {o.price_ticks for o in orders if not o.is_market and o.price_ticks >= low
              and (high is None or o.price_ticks <= high)}
    if price_min_ticks is not None:
        prices.add(price_min_ticks)
    if price_max_ticks is not None:
        prices.add(price_max_ticks)
    if not prices:
        prices.add(reference_ticks)
    return sorted(prices)


def _curves(orders: Sequence[AuctionOrder], candidates: list[int]) -> tuple[list[int], list[int]]:
    """``D`` and ``S`` at every candidate: one pass over price-aggregated orders (O(n + c log c))."""
    bid_qty: dict[int, int] = {}
    ask_qty: dict[int, int] = {}
    market_buy = market_sell = 0
    for o in orders:
        if o.is_market:
            if o.side > 0:
                market_buy += o.qty_lots
            else:
                market_sell += o.qty_lots
        elif o.side > 0:
            bid_qty[o.price_ticks] = bid_qty.get(o.price_ticks, 0) + o.qty_lots
        else:
            ask_qty[o.price_ticks] = ask_qty.get(o.price_ticks, 0) + o.qty_lots
    asks = sorted(ask_qty.items())
    bids = sorted(bid_qty.items(), reverse=True)
    count = len(candidates)
    supply = [0] * count
    demand = [0] * count
    cum, k = market_sell, 0
    for j in range(count):  # ascending: asks with price <= candidate
        while k < len(asks) and asks[k][0] <= candidates[j]:
            cum += asks[k][1]
            k += 1
        supply[j] = cum
    cum, k = market_buy, 0
    for j in range(count - 1, -1, -1):  # descending: bids with price >= candidate
        while k < len(bids) and bids[k][0] >= candidates[j]:
            cum += bids[k][1]
            k += 1
        demand[j] = cum
    return demand, supply


def indicative(orders: Sequence[AuctionOrder], reference_ticks: int, price_min_ticks: int | None = None,
               price_max_ticks: int | None = None, orders_max: int = AUCTION_ORDERS_MAX) -> Indicative:
    """The clearing price, matched volume and imbalance the auction would produce now.

    Args:
        orders: the auction's orders (see :class:`AuctionOrder`), any order.
        reference_ticks: tie-break reference (> 0): last trade / mark / previous clearing price.
        price_min_ticks, price_max_ticks: optional collar (e.g. the price band); inclusive.
        orders_max: named bound on ``len(orders)``.

    Returns:
        :class:`Indicative`. O(n log n).
    """
    assert reference_ticks > 0
    _check_orders(orders, orders_max)
    candidates = candidate_prices(orders, reference_ticks, price_min_ticks, price_max_ticks)
    demand, supply = _curves(orders, candidates)
    best_j = -1
    best_key = (0, 0, 0, 0)
    for j, price in enumerate(candidates):
        volume = min(demand[j], supply[j])
        key = (volume, -abs(demand[j] - supply[j]), -abs(price - reference_ticks), -price)
        if best_j < 0 or key > best_key:
            best_j, best_key = j, key
    if best_key[0] == 0:
        market_buy = sum(o.qty_lots for o in orders if o.is_market and o.side > 0)
        market_sell = sum(o.qty_lots for o in orders if o.is_market and o.side < 0)
        return Indicative(None, 0, market_buy - market_sell, market_buy, market_sell)
    d, s = demand[best_j], supply[best_j]
    return Indicative(candidates[best_j], min(d, s), d - s, d, s)


def largest_remainder(quantities: Sequence[int], amount: int) -> list[int]:
    """Split ``amount`` lots pro-rata over ``quantities`` (in priority order), integers only.

    ``base_i = floor(amount*q_i/Q)``; the ``amount - sum(base)`` leftover lots go one each to the
    largest remainders ``amount*q_i mod Q``, ties to the earlier index. Requires ``0 <= amount <= Q``.
    Every share is ``<= q_i`` and the shares sum to ``amount`` exactly (both asserted).
    """
    total = sum(quantities)
    assert 0 <= amount <= total and all(q > 0 for q in quantities)
    shares = [amount * q // total for q in quantities]
    leftover = amount - sum(shares)
    ranked = sorted(range(len(quantities)), key=lambda i: (-(amount * quantities[i] % total), i))
    for i in ranked[:leftover]:
        shares[i] += 1
    assert sum(shares) == amount and all(s <= q for s, q in zip(shares, quantities))
    return shares


def _allocate_side(eligible: list[AuctionOrder], volume: int, allocation: Allocation) -> list[AuctionFill]:
    """Fill ``volume`` lots over ``eligible`` (already in price-then-time priority), level by level."""
    fills: list[AuctionFill] = []
    remaining = volume
    i, count = 0, len(eligible)
    while i < count and remaining > 0:  # each pass consumes >= 1 order: bounded by len(eligible)
        head = eligible[i]
        j, level_lots = i, 0
        while j < count and eligible[j].is_market == head.is_market and eligible[j].price_ticks == head.price_ticks:
            level_lots += eligible[j].qty_lots
            j += 1
        level = eligible[i:j]
        if level_lots <= remaining:
            shares = [o.qty_lots for o in level]
        elif allocation == Allocation.PRO_RATA:
            shares = largest_remainder([o.qty_lots for o in level], remaining)
        else:
            shares, left = [], remaining
            for o in level:
                take = min(o.qty_lots, left)
                shares.append(take)
                left -= take
        for o, share in zip(level, shares):
            if share:
                fills.append(AuctionFill(o.order_id, o.side, share))
        remaining -= sum(shares)
        i = j
    assert remaining == 0, "eligible quantity below the clearing volume"
    return fills


def clear_auction(orders: Sequence[AuctionOrder], reference_ticks: int, allocation: Allocation = Allocation.TIME,
                  price_min_ticks: int | None = None, price_max_ticks: int | None = None,
                  orders_max: int = AUCTION_ORDERS_MAX) -> AuctionResult:
    """Clear the auction: price by :func:`indicative`, then allocate (rules in the module docstring).

    Returns:
        :class:`AuctionResult`; ``fills`` lists buys (allocation order) then sells. Invariants
        (asserted): total buy fills = total sell fills = volume; every fill <= its order's quantity.
        O(n log n).
    """
    ind = indicative(orders, reference_ticks, price_min_ticks, price_max_ticks, orders_max)
    price = ind.price_ticks
    if price is None:
        return AuctionResult(ind, ())
    buys = [o for o in orders if o.side > 0 and (o.is_market or o.price_ticks >= price)]
    sells = [o for o in orders if o.side < 0 and (o.is_market or o.price_ticks <= price)]
    buys.sort(key=lambda o: (not o.is_market, -o.price_ticks, o.priority, o.order_id))
    sells.sort(key=lambda o: (not o.is_market, o.price_ticks, o.priority, o.order_id))
    fills = _allocate_side(buys, ind.matched_lots, allocation) + _allocate_side(sells, ind.matched_lots, allocation)
    assert sum(f.qty_lots for f in fills if f.side > 0) == ind.matched_lots
    assert sum(f.qty_lots for f in fills if f.side < 0) == ind.matched_lots
    return AuctionResult(ind, tuple(fills))


def pair_fills(fills: Sequence[AuctionFill]) -> tuple[AuctionTrade, ...]:
    """Pair buy fills with sell fills in allocation order (two pointers): at most ``buys + sells - 1``
    trades, each at the clearing price. Deterministic; used to emit ``TradeExecuted`` events."""
    buys = [[f.order_id, f.qty_lots] for f in fills if f.side > 0]
    sells = [[f.order_id, f.qty_lots] for f in fills if f.side < 0]
    trades: list[AuctionTrade] = []
    i = j = 0
    while i < len(buys) and j < len(sells):  # each pass exhausts a buy or a sell
        qty = min(buys[i][1], sells[j][1])
        trades.append(AuctionTrade(buys[i][0], sells[j][0], qty))
        buys[i][1] -= qty
        sells[j][1] -= qty
        if buys[i][1] == 0:
            i += 1
        if sells[j][1] == 0:
            j += 1
    assert i == len(buys) and j == len(sells), "buy and sell fills do not balance"
    return tuple(trades)
