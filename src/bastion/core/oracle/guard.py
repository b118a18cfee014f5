"""Streaming oracle guard rails: bounded price history, TWAP divergence, clamps, validity.

A PriceGuard consumes the aggregated index price once per engine tick and says whether the
price can be trusted for each use. Modelled on Drift v2's oracle guard rails
(reference/risk-engines.md section 2.2, ``programs/drift/src/math/oracle.rs`` and
``state/state.rs``):

* an update whose deviation from the oracle TWAP exceeds ``far_deviation_max_ppm`` is flagged
  ``far_from_twap`` (Drift: mark/oracle divergence 10 %);
* an update whose deviation from the TWAP exceeds ``pause_deviation_max_ppm`` makes the oracle
  ``too_volatile`` and pauses liquidations (Drift: liquidation blocked if the oracle deviates
  >= 50 % from its 5-min TWAP; ``too_volatile_ratio = 5`` is 400 % up / 80 % down);
* a price older than ``staleness_max_ns`` is ``stale`` and pauses liquidations too (Drift
  blocks margin calculations when ``StaleForMargin``, ~60 s; we are stricter than Drift's
  liquidation gate here: with no fresh price there is nothing safe to liquidate at);
* optional output clamp: an update may move the price at most ``change_per_update_max_ppm``
  from the previous output price (a circuit-breaker style band, cf. CME price limits, section
  2.8);
* optional TWAP sample sanitisation: the sample stored for the TWAP is clamped to within
  ``twap_sample_clamp_ppm`` of the current TWAP (Drift sanitises new TWAP samples to within
  10/20/50 % of the last TWAP by tier), so a single spike cannot drag the TWAP.

Validity precedence (as Drift's): no_price, stale, too_volatile, insufficient_history,
far_from_twap, valid. ``insufficient_history`` (fewer than ``samples_min`` samples in the window)
does not pause liquidations, as Drift's ``InsufficientDataPoints`` does not block ``Liquidate``.

The guard is deterministic: time is an argument and must not go backwards.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bastion.core.oracle.median import deviation_exceeds_ppm, deviation_ppm_ceil
from bastion.core.oracle.twap import twap as twap_of
from bastion.core.oracle.types import (
    DEVIATION_PPM_MAX,
    PPM,
    PRICE_UNITS_MAX,
    TIMESTAMP_NS_MAX,
    OracleConfigError,
)

HISTORY_MAX = 4_096
"""Largest ring buffer a PriceGuard may keep (e.g. 5 min of 100 ms ticks is 3,000)."""


class OracleValidity(enum.IntEnum):
    """Validity class of the oracle price, in Drift's precedence order (stable numbers)."""

    valid = 0
    far_from_twap = 1
    insufficient_history = 2
    too_volatile = 3
    stale = 4
    no_price = 5


_PAUSING = frozenset({OracleValidity.too_volatile, OracleValidity.stale, OracleValidity.no_price})


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """Parameters of a PriceGuard.

    Attributes:
        history_max: ring buffer capacity in samples, 1..HISTORY_MAX. If it holds less than
            the TWAP window, the TWAP covers only the retained samples.
        twap_window_ns: TWAP window length (Drift: 5 min = 300 * 10**9 ns).
        far_deviation_max_ppm: flag threshold for |price - twap| / twap.
        pause_deviation_max_ppm: liquidation-pause threshold for |price - twap| / twap
            (Drift: 500,000 = 50 %).
        staleness_max_ns: age beyond which the last price is stale (Drift margin: ~60 s).
        change_per_update_max_ppm: output clamp per update (0 disables).
        twap_sample_clamp_ppm: TWAP sample sanitisation band (0 disables).
        samples_min: samples within the window needed for a judged TWAP (>= 1).

    Raises:
        OracleConfigError: a field is out of range.
    """

    history_max: int
    twap_window_ns: int
    far_deviation_max_ppm: int
    pause_deviation_max_ppm: int
    staleness_max_ns: int
    change_per_update_max_ppm: int = 0
    twap_sample_clamp_ppm: int = 0
    samples_min: int = 1

    def __post_init__(self) -> None:
        checks = (
            (1 <= self.history_max <= HISTORY_MAX, "history_max out of range"),
            (0 < self.twap_window_ns <= TIMESTAMP_NS_MAX, "twap_window_ns out of range"),
            (0 <= self.staleness_max_ns <= TIMESTAMP_NS_MAX, "staleness_max_ns out of range"),
            (1 <= self.samples_min <= self.history_max, "samples_min in 1..history_max"),
            (self.far_deviation_max_ppm <= self.pause_deviation_max_ppm, "far <= pause"),
        )
        for ok, message in checks:
            if not ok:
                raise OracleConfigError(message)
        for value in (
            self.far_deviation_max_ppm,
            self.pause_deviation_max_ppm,
            self.change_per_update_max_ppm,
            self.twap_sample_clamp_ppm,
        ):
            if not 0 <= value <= DEVIATION_PPM_MAX:
                raise OracleConfigError("deviation threshold out of range")


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """What the guard made of one price update.

    Attributes:
        time_ns: update time.
        price_raw: the price offered (index units).
        price: the price to use after the optional per-update clamp (index units).
        twap: TWAP of the history before this update over the window ending at time_ns, or
            None if there was no history.
        deviation_ppm: |price_raw - twap| / twap rounded up, or None without a TWAP.
        clamped: whether the output clamp changed the price.
        validity: the validity class (see OracleValidity).
        liquidations_paused: validity is too_volatile, stale or no_price.
    """

    time_ns: int
    price_raw: int
    price: int
    twap: int | None
    deviation_ppm: int | None
    clamped: bool
    validity: OracleValidity
    liquidations_paused: bool


@dataclass(frozen=True, slots=True)
class GuardStatus:
    """The guard's view at an arbitrary time (e.g. a tick with no new price).

    Attributes:
        now_ns: the time asked about.
        price: the last output price (after clamping), or None.
        price_time_ns: time of that price, or None.
        twap: TWAP of stored samples over the window ending at now_ns, or None.
        validity: no_price, stale, or the validity of the last update.
        liquidations_paused: validity is too_volatile, stale or no_price.
    """

    now_ns: int
    price: int | None
    price_time_ns: int | None
    twap: int | None
    validity: OracleValidity
    liquidations_paused: bool


def _clamp_around(value: int, centre: int, band_ppm: int) -> int:
    """Clamp ``value`` to ``centre +- floor(centre * band_ppm / 10**6)``, never below 1."""
    bound = centre * band_ppm // PPM
    result = min(max(value, centre - bound), centre + bound)
    return max(result, 1)


class PriceGuard:
    """Bounded-history oracle guard (ring buffer of ``history_max`` (time_ns, price) samples)."""

    __slots__ = ("_config", "_times", "_prices", "_head", "_count", "_last_validity", "_output")

    def __init__(self, config: GuardConfig) -> None:
        self._config = config
        self._times = [0] * config.history_max
        self._prices = [0] * config.history_max
        self._head = 0  # index of the next slot to write
        self._count = 0
        self._last_validity = OracleValidity.no_price
        self._output: tuple[int, int] | None = None  # last (time_ns, output price)

    @property
    def config(self) -> GuardConfig:
        return self._config

    def samples(self) -> tuple[tuple[int, int], ...]:
        """Stored (time_ns, price) samples, oldest first (at most history_max)."""
        capacity = self._config.history_max
        start = (self._head - self._count) % capacity
        return tuple(
            (self._times[(start + i) % capacity], self._prices[(start + i) % capacity])
            for i in range(self._count)
        )

    def last(self) -> tuple[int, int] | None:
        """The newest stored TWAP sample (time_ns, price), or None (may be sanitised)."""
        if self._count == 0:
            return None
        index = (self._head - 1) % self._config.history_max
        return (self._times[index], self._prices[index])

    def twap(self, now_ns: int) -> int | None:
        """TWAP of stored samples over ``[now_ns - twap_window_ns, now_ns)`` (floor), or None."""
        start_ns = max(now_ns - self._config.twap_window_ns, 0)
        return twap_of(self.samples(), start_ns, now_ns)

    def _samples_in_window(self, now_ns: int) -> int:
        start_ns = now_ns - self._config.twap_window_ns
        return sum(1 for time_ns, _ in self.samples() if time_ns >= start_ns)

    def update(self, time_ns: int, price: int) -> GuardVerdict:
        """Feed one aggregated price; store it (clamped/sanitised) and judge it.

        Args:
            time_ns: engine time of the price, ns; must not be before the last update.
            price: the index price, 1..PRICE_UNITS_MAX index units.

        Returns:
            GuardVerdict; ``price`` is what the engine should use as the oracle price.

        Raises:
            AssertionError: time went backwards or the price is out of range (caller bug).
        """
        assert 1 <= price <= PRICE_UNITS_MAX
        last = self.last()
        assert last is None or last[0] <= time_ns
        config = self._config
        twap = self.twap(time_ns)
        output = price
        if config.change_per_update_max_ppm > 0 and self._output is not None:
            output = _clamp_around(price, self._output[1], config.change_per_update_max_ppm)
        deviation_ppm = None if twap is None else deviation_ppm_ceil(price, twap)
        validity = self._judge(time_ns, price, twap)
        sample = output
        if config.twap_sample_clamp_ppm > 0 and twap is not None:
            sample = _clamp_around(output, twap, config.twap_sample_clamp_ppm)
        self._push(time_ns, sample)
        self._last_validity = validity
        self._output = (time_ns, output)
        verdict = GuardVerdict(
            time_ns=time_ns,
            price_raw=price,
            price=output,
            twap=twap,
            deviation_ppm=deviation_ppm,
            clamped=output != price,
            validity=validity,
            liquidations_paused=validity in _PAUSING,
        )
        assert verdict.liquidations_paused == (validity >= OracleValidity.too_volatile)
        return verdict

    def _judge(self, time_ns: int, price: int, twap: int | None) -> OracleValidity:
        config = self._config
        if twap is not None and deviation_exceeds_ppm(
            price, twap, config.pause_deviation_max_ppm
        ):
            return OracleValidity.too_volatile
        if twap is None or self._samples_in_window(time_ns) < config.samples_min:
            return OracleValidity.insufficient_history
        if deviation_exceeds_ppm(price, twap, config.far_deviation_max_ppm):
            return OracleValidity.far_from_twap
        return OracleValidity.valid

    def _push(self, time_ns: int, price: int) -> None:
        capacity = self._config.history_max
        self._times[self._head] = time_ns
        self._prices[self._head] = price
        self._head = (self._head + 1) % capacity
        self._count = min(self._count + 1, capacity)
        assert 1 <= self._count <= capacity

    def status(self, now_ns: int) -> GuardStatus:
        """Validity at ``now_ns`` without a new price: no_price, stale, or the last verdict's.

        Args:
            now_ns: engine time, not before the last update.
        """
        last = self._output
        if last is None:
            validity = OracleValidity.no_price
        else:
            assert last[0] <= now_ns
            stale = now_ns - last[0] > self._config.staleness_max_ns
            validity = OracleValidity.stale if stale else self._last_validity
        return GuardStatus(
            now_ns=now_ns,
            price=None if last is None else last[1],
            price_time_ns=None if last is None else last[0],
            twap=self.twap(now_ns),
            validity=validity,
            liquidations_paused=validity in _PAUSING,
        )
