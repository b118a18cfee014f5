"""CME-style velocity logic: a price move of ``threshold_ticks`` or more within ``lookback_ns`` pauses
the market for ``pause_ns``, after which it reopens through a call auction.

CME Globex "Velocity Logic" detects "market movement of a predefined number of ticks either up or down
within a predefined time" (shared/reference/matching-engines.md §3.9). Exact rule used here:

* The *window* at engine time ``t`` holds the trade prices recorded at times ``t_i`` with
  ``t - t_i <= lookback_ns`` (age exactly ``lookback_ns`` is still inside; ``lookback_ns + 1`` is out).
* The *move* of a price ``p`` at ``t`` is ``max(p - min(window), max(window) - p, 0)`` ticks.
* The guard **engages** when a move is ``>= threshold_ticks`` (``threshold - 1`` does not engage).
* The pause (states.velocity_pause) **disengages** at the first command with engine time
  ``>= engaged_at + pause_ns`` (``pause_ns - 1`` later the market is still paused).

Bounded memory: the window is kept as two monotonic queues (running max and running min, each entry
``(timestamp_ns, price_ticks)``), each holding at most ``samples_max`` entries — a bounded ring buffer
of the prices that can still be an extreme. Amortized O(1) per sample. When a queue is full, its two
oldest entries are merged into one that keeps the more extreme price with the *later* timestamp: the
extreme then stays in the window slightly longer than ``lookback_ns``, so overflow can make the guard
engage early, never late (``merges`` counts how often this happened; 0 means every answer was exact).

Taker protection (:meth:`VelocityGuard.taker_limit_ticks`): the engine clamps a taker's limit so that no
fill can itself reach the threshold; if liquidity remained beyond the clamp within the taker's own
limit, the taker "would have moved the price too far" and the engine engages the pause instead of
trading through (CME: an aggressor that would trigger is acknowledged and its remainder cancelled).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["VelocityGuard", "VelocitySpec"]


@dataclass(frozen=True, slots=True)
class VelocitySpec:
    """Velocity-logic parameters of one instrument.

    Attributes:
        threshold_ticks: smallest move (ticks, > 0) that engages the pause.
        lookback_ns: window length in engine ns (> 0, inclusive at its old end).
        pause_ns: how long the market stays in the reopening auction (> 0).
        samples_max: capacity of each monotonic queue (>= 2).
    """

    threshold_ticks: int
    lookback_ns: int
    pause_ns: int
    samples_max: int = 1024

    def __post_init__(self) -> None:
        assert self.threshold_ticks > 0 and self.lookback_ns > 0 and self.pause_ns > 0
        assert self.samples_max >= 2


class VelocityGuard:
    """The window of recent trade prices of one instrument (see module docstring).

    Engine time passed to every method must never decrease (the engine's sequencer contract).
    """

    __slots__ = ("spec", "_maxq", "_minq", "last_ns", "merges")

    def __init__(self, spec: VelocitySpec) -> None:
        self.spec = spec
        self._maxq: deque[tuple[int, int]] = deque()  # prices strictly decreasing front -> back
        self._minq: deque[tuple[int, int]] = deque()  # prices strictly increasing front -> back
        self.last_ns = 0
        self.merges = 0

    def _evict(self, now_ns: int) -> None:
        assert now_ns >= self.last_ns, "engine time went backwards"
        self.last_ns = now_ns
        oldest_ns = now_ns - self.spec.lookback_ns
        for queue in (self._maxq, self._minq):
            while queue and queue[0][0] < oldest_ns:  # bounded by samples_max
                queue.popleft()

    def window(self, now_ns: int) -> tuple[int, int] | None:
        """``(min, max)`` of the window at ``now_ns``, or None when it is empty.

        A pure read (the engine calls it for commands that may be rejected, and a rejected command must
        not change the state hash): stale front entries are skipped, not evicted; :meth:`record` evicts.
        Bounded by ``samples_max`` per queue.
        """
        assert now_ns >= self.last_ns, "engine time went backwards"
        oldest_ns = now_ns - self.spec.lookback_ns
        high = next((p for t, p in self._maxq if t >= oldest_ns), None)
        low = next((p for t, p in self._minq if t >= oldest_ns), None)
        if high is None or low is None:
            return None
        return low, high

    def move_ticks(self, now_ns: int, price_ticks: int) -> int:
        """How far ``price_ticks`` at ``now_ns`` lies outside the window's range (0 if inside or empty)."""
        bounds = self.window(now_ns)
        if bounds is None:
            return 0
        low, high = bounds
        return max(price_ticks - low, high - price_ticks, 0)

    def would_engage(self, now_ns: int, price_ticks: int) -> bool:
        """True when a trade at ``price_ticks`` now would move the price ``>= threshold_ticks``."""
        return self.move_ticks(now_ns, price_ticks) >= self.spec.threshold_ticks

    def taker_limit_ticks(self, now_ns: int, side: int, first_fill_ticks: int) -> int:
        """Furthest price a taker on ``side`` may trade at now without engaging the guard.

        Args:
            now_ns: engine time.
            side: +1 buy (fills ascend from ``first_fill_ticks``), -1 sell (fills descend).
            first_fill_ticks: the best opposite price, where the taker's first fill would happen. The
                caller checks ``would_engage(now_ns, first_fill_ticks)`` first.

        Returns:
            Buy: ``min(window_min, first) + threshold - 1``; sell: ``max(window_max, first) -
            threshold + 1``. Every fill in ``[first, limit]`` (buy) then has a move ``< threshold``
            against the window *including* the taker's earlier fills.
        """
        assert side in (1, -1)
        bounds = self.window(now_ns)
        low, high = bounds if bounds is not None else (first_fill_ticks, first_fill_ticks)
        reach = self.spec.threshold_ticks - 1
        if side > 0:
            return min(low, first_fill_ticks) + reach
        return max(high, first_fill_ticks) - reach

    def record(self, now_ns: int, price_ticks: int) -> bool:
        """Record a trade price; return True when it engaged the guard (move ``>= threshold``)."""
        assert price_ticks > 0
        engaged = self.would_engage(now_ns, price_ticks)
        self._evict(now_ns)
        self._push(self._maxq, now_ns, price_ticks, higher=True)
        self._push(self._minq, now_ns, price_ticks, higher=False)
        return engaged

    def _push(self, queue: deque[tuple[int, int]], now_ns: int, price_ticks: int, higher: bool) -> None:
        # Entries the new sample dominates (not more extreme, and older) can never be an extreme again.
        while queue and (queue[-1][1] <= price_ticks if higher else queue[-1][1] >= price_ticks):
            queue.pop()
        if len(queue) == self.spec.samples_max:
            first_ns, first_price = queue.popleft()
            second_ns, _ = queue.popleft()
            assert second_ns >= first_ns
            queue.appendleft((second_ns, first_price))  # keep the extreme, later timestamp: engage early
            self.merges += 1
        queue.append((now_ns, price_ticks))
        assert len(queue) <= self.spec.samples_max

    def reset(self) -> None:
        """Forget the window (the engine calls this when the reopening auction uncrosses)."""
        self._maxq.clear()
        self._minq.clear()

    def canonical(self) -> list[object]:
        """Plain data for the state hash and snapshots."""
        return [self.last_ns, self.merges, [list(e) for e in self._maxq], [list(e) for e in self._minq]]

    @classmethod
    def from_canonical(cls, spec: VelocitySpec, data: list[object]) -> VelocityGuard:
        """Inverse of :meth:`canonical`."""
        last_ns, merges, maxq, minq = data
        assert isinstance(last_ns, int) and isinstance(merges, int)
        assert isinstance(maxq, list) and isinstance(minq, list)
        guard = cls(spec)
        guard.last_ns, guard.merges = last_ns, merges
        guard._maxq.extend((int(t), int(p)) for t, p in maxq)
        guard._minq.extend((int(t), int(p)) for t, p in minq)
        return guard
