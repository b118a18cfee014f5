"""A seeded population of leveraged traders that open and close positions through the replayed path.

Each trader repeats a cycle (all times drawn uniformly, in whole ns, from the scenario's ranges):

1. wait ``first_open_s`` (then ``idle_s`` between positions);
2. **open**: draw a notional (USD) and an effective leverage from the calibration's quantile tables
   (``bastion.sim.replay.calibration``; leverage capped at ``leverage_max_milli``), deposit the
   collateral ``notional / leverage`` plus a reserve for two taker fees and the slippage, and send an
   IOC limit order on a random side at the engine's best opposite price moved ``slippage_ppm`` away;
3. hold for ``hold_s``; **close** with a reduce-only IOC the same way (retried every ``retry_s`` while
   anything is left);
4. withdraw whatever cash is left; a trader whose balance is not positive after closing (it lost more
   than its collateral) stops trading — that loss is the shortfall the risk figures report.

The population never reads the clock or global randomness: one ``random.Random(seed)`` drives every
draw and actions run in (time, trader) order, so a scenario and seed give the same command stream.

**Batch markets** (``batch=True``): an IOC waits in the batch book and fills at the next boundary, so
the outcome of an open or a close is read at that boundary instead of right after the order: the order
schedules a check at the boundary of its batch (``Exchange.pass_boundaries`` clears it first), which
then goes on as steps 2-3 would (nothing filled: withdraw and rest; a close not complete: retry after
``retry_s``). Orders are priced by ``touch`` (the LP ladder's best opposite price, else the last
clearing price, else the mark: ``ReplayContext.touch``), the FastBook being empty there.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable
from enum import IntEnum

from bastion.core.commands import Deposit, PlaceOrder, TimeInForce, Withdraw
from bastion.core.events import CommandRejected, Event
from bastion.core.instruments import InstrumentSpec
from bastion.core.units import PPM, ceil_div
from bastion.sim.replay.calibration import Calibration
from bastion.sim.replay.exchange import Exchange
from bastion.sim.replay.scenario import TraderParams

__all__ = ["TraderPopulation"]

NS_PER_S = 1_000_000_000
actions_per_call_max = 100_000
"""Most trader actions one :meth:`TraderPopulation.run_due` call executes."""


class Phase(IntEnum):
    FLAT = 0
    OPEN = 1
    RETIRED = 2


class _Action(IntEnum):
    OPEN = 0
    CLOSE = 1
    OPENED = 2  # batch markets: read the open's outcome at its boundary
    CLOSED = 3  # batch markets: read the close's outcome at its boundary


Touch = Callable[[int], int | None]
"""``touch(side) -> price_ticks``: best opposite price a ``side`` order would meet (None: no liquidity)."""


class TraderPopulation:
    """The traders of one replay (see module docstring).

    Args:
        exchange: the replay's exchange.
        spec: the traded instrument.
        params: the scenario's ``[traders]`` table.
        calibration: size and leverage distributions.
        account_ids: one (already created) account per trader.
        seed: seed of the population's random stream.
        start_ns: time of the first possible action.
        atom_decimals: decimals of the settlement asset (atoms per USD cent follow from it).
        touch: prices the orders (default: the engine's FastBook best opposite price).
        batch: the instrument is a batch market (module docstring).
    """

    def __init__(self, exchange: Exchange, spec: InstrumentSpec, params: TraderParams, calibration: Calibration,
                 account_ids: list[int], seed: int, start_ns: int, atom_decimals: int, touch: Touch | None = None,
                 batch: bool = False) -> None:
        assert atom_decimals >= 2
        self.touch = touch
        self.batch = batch
        self.exchange = exchange
        self.spec = spec
        self.params = params
        self.calibration = calibration
        self.account_ids = account_ids
        self.rng = random.Random(seed)
        self.atoms_per_cent = 10 ** (atom_decimals - 2)
        self.phase = [Phase.FLAT] * len(account_ids)
        self.figures: Counter[str] = Counter()
        self.holding = 0  # traders in Phase.OPEN
        self._queue: list[tuple[int, int, int]] = []  # (time_ns, trader, action)
        for trader in range(len(account_ids)):
            self._schedule(start_ns, params.first_open_s, trader, _Action.OPEN)

    def _schedule(self, base_ns: int, range_s: tuple[int, int], trader: int, action: _Action) -> None:
        delay_ns = self.rng.randint(range_s[0] * NS_PER_S, range_s[1] * NS_PER_S)
        heapq.heappush(self._queue, (base_ns + delay_ns, trader, int(action)))

    def next_time_ns(self) -> int | None:
        """Time of the next due action, or None when every trader has retired."""
        return self._queue[0][0] if self._queue else None

    def run_due(self, now_ns: int) -> None:
        """Run every action due at or before ``now_ns``, each at its own time, in (time, trader) order."""
        for _ in range(actions_per_call_max):
            if not self._queue or self._queue[0][0] > now_ns:
                return
            time_ns, trader, action = heapq.heappop(self._queue)
            if action == _Action.OPEN:
                self._open(time_ns, trader)
            elif action == _Action.CLOSE:
                self._close(time_ns, trader)
            else:
                self.exchange.pass_boundaries(time_ns, inclusive=True)  # the order's batch clears at its boundary
                if action == _Action.OPENED:
                    self._opened(time_ns, trader)
                else:
                    self._closed(time_ns, trader)
        raise AssertionError(f"more than {actions_per_call_max} trader actions due at once")

    # ------------------------------------------------------------------ actions

    def _touch(self, side: int) -> int | None:
        """Best opposite price for a ``side`` order, moved ``slippage_ppm`` through it; None if empty."""
        best: int | None
        if self.touch is not None:
            best = self.touch(side)
        else:
            book = self.exchange.engine.books[self.spec.instrument_id]
            best = book.best_ask() if side > 0 else book.best_bid()
        if best is None:
            return None
        slip = best * self.params.slippage_ppm // PPM
        return best + slip if side > 0 else max(best - slip, 1)

    def _open(self, time_ns: int, trader: int) -> None:
        side = 1 if self.rng.randrange(2) else -1
        notional_cents = self.calibration.notional_usd_cents.sample(self.rng)
        leverage_milli = min(self.calibration.leverage_milli.sample(self.rng), self.params.leverage_max_milli)
        leverage_milli = max(leverage_milli, 1)
        price = self._touch(side)
        if price is None:
            self.figures["opens_skipped_no_liquidity"] += 1
            heapq.heappush(self._queue, (time_ns + self.params.retry_s * NS_PER_S, trader, int(_Action.OPEN)))
            return
        k = self.spec.atoms_per_tick_lot
        qty = max(notional_cents * self.atoms_per_cent // (price * k), self.spec.min_order_lots)
        notional_atoms = qty * price * k
        reserve = 2 * ceil_div(notional_atoms * self.spec.taker_fee_ppm, PPM) + qty
        reserve += ceil_div(notional_atoms * self.params.slippage_ppm, PPM)
        collateral = ceil_div(notional_atoms * 1000, leverage_milli) + reserve
        account_id = self.account_ids[trader]
        self.exchange.submit(time_ns, Deposit(account_id, collateral))
        events = self._order(time_ns, account_id, side, price, qty, reduce_only=False)
        self.figures["opens"] += 1
        self.figures["collateral_deposited_atoms"] += collateral
        if _rejected(events):
            self.figures["open_orders_rejected"] += 1
        elif self.batch:
            self._at_boundary(time_ns, trader, _Action.OPENED)
            return
        self._opened(time_ns, trader)

    def _at_boundary(self, time_ns: int, trader: int, action: _Action) -> None:
        """Batch markets: run ``action`` at the boundary of the batch the order just joined."""
        book = self.exchange.engine.integ[self.spec.instrument_id].batch_book
        assert book is not None, "a batch trader in a continuous market"
        heapq.heappush(self._queue, (book.boundary_ns(book.open_index), trader, int(action)))

    def _opened(self, time_ns: int, trader: int) -> None:
        """After the open order traded (at once, or at its batch's clearing): hold, or rest if nothing filled."""
        if self._position(self.account_ids[trader]) == 0:
            self._withdraw_and_rest(time_ns, trader)  # nothing filled: take the cash back, try later
            return
        self.phase[trader] = Phase.OPEN
        self.holding += 1
        self._schedule(time_ns, self.params.hold_s, trader, _Action.CLOSE)

    def _close(self, time_ns: int, trader: int) -> None:
        account_id = self.account_ids[trader]
        size = self._position(account_id)
        if size != 0:
            side = -1 if size > 0 else 1
            price = self._touch(side)
            if price is not None:
                events = self._order(time_ns, account_id, side, price, abs(size), reduce_only=True)
                self.figures["close_orders"] += 1
                rejected = _rejected(events)
                self.figures["close_orders_rejected"] += int(rejected)
                if self.batch and not rejected:
                    self._at_boundary(time_ns, trader, _Action.CLOSED)
                    return
        self._closed(time_ns, trader)

    def _closed(self, time_ns: int, trader: int) -> None:
        """After the close order traded: done when flat, else retry after ``retry_s``."""
        if self._position(self.account_ids[trader]) != 0:
            heapq.heappush(self._queue, (time_ns + self.params.retry_s * NS_PER_S, trader, int(_Action.CLOSE)))
            return
        self.figures["closes"] += 1
        self._withdraw_and_rest(time_ns, trader)

    def _withdraw_and_rest(self, time_ns: int, trader: int) -> None:
        account_id = self.account_ids[trader]
        balance = self.exchange.engine.accounts[account_id].balance_atoms
        if self.phase[trader] == Phase.OPEN:
            self.holding -= 1
        if balance > 0:
            events = self.exchange.submit(time_ns, Withdraw(account_id, balance))
            self.figures["withdrawals_rejected"] += int(_rejected(events))
        if balance <= 0 and self.phase[trader] == Phase.OPEN:
            self.phase[trader] = Phase.RETIRED
            self.figures["traders_wiped_out"] += 1
            return
        self.phase[trader] = Phase.FLAT
        self._schedule(time_ns, self.params.idle_s, trader, _Action.OPEN)

    def _order(self, time_ns: int, account_id: int, side: int, price: int, qty: int, *,
               reduce_only: bool) -> list[Event]:
        client_id = self.exchange.next_client_order_id(account_id)
        return self.exchange.submit(time_ns, PlaceOrder(account_id, self.spec.instrument_id, client_id, side, price,
                                                        qty, time_in_force=TimeInForce.IOC, reduce_only=reduce_only))

    def _position(self, account_id: int) -> int:
        pos = self.exchange.engine.accounts[account_id].positions.get(self.spec.instrument_id)
        return 0 if pos is None else pos.size_lots

    def open_positions(self) -> int:
        """Traders currently holding a position (opened and not yet fully closed)."""
        assert 0 <= self.holding <= len(self.account_ids)
        return self.holding


def _rejected(events: list[Event]) -> bool:
    return any(type(event) is CommandRejected for event in events)
