"""Streaming oracle: aggregate each tick, smooth implied stablecoin rates, guard the result.

``OracleState.update(reports, now_ns)`` runs one engine tick:

1. For every quote currency whose QuotePolicy lists ``rate_ema_source_id`` among its rate
   sources, the current smoothed implied rate is added to the reports as a direct-rate report
   from that source, timestamped at its last update (so the policy's staleness limit for that
   source applies to it).
2. ``aggregate`` runs on the reports (see the quote-conversion rule in ``aggregate.py``): the
   smoothed rate is the direct rate, the instantaneous implied rate is still checked against
   the peg band and, via ``cross_deviation_max_ppm``, against the smoothed rate.
3. Each quote's instantaneous implied rate (when there is one) updates its EMA
   (``ema_next`` with ``rate_ema_alpha_ppm`` per tick).
4. The index price, if any, is fed to the PriceGuard (TWAP divergence, clamps, validity).

Why a smoothed implied rate: converting stablecoin-quoted prices at the instantaneous implied
rate re-anchors them on the USD-quoted median every tick, so they add no information. Converting
at a slow average of that rate keeps them independent tick to tick, corrects a persistent
premium or discount (USDT at +0.3 % for days), and the cross check rejects them as soon as the
instantaneous rate runs away from the average (the onset of a depeg), before the depeg band is
even reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bastion.core.oracle.aggregate import aggregate
from bastion.core.oracle.guard import GuardConfig, GuardStatus, GuardVerdict, PriceGuard
from bastion.core.oracle.twap import ema_next
from bastion.core.oracle.types import (
    PPM,
    AggregateConfig,
    AggregateResult,
    OracleConfigError,
    SourcePrice,
)


@dataclass(frozen=True, slots=True)
class OracleStateConfig:
    """Parameters of an OracleState.

    Attributes:
        aggregate: the index configuration.
        guard: the guard-rail configuration.
        rate_ema_alpha_ppm: per-tick EMA smoothing of implied stablecoin rates, 0..10**6
            (0 disables the feedback; e.g. ``alpha_ppm_from_span(60)`` at one tick a minute is
            a ~1 h average).
        rate_ema_source_id: source id of the fed-back smoothed rate; it is used only for quote
            policies that list it in ``rate_sources`` (with its staleness limit and weight).

    Raises:
        OracleConfigError: alpha out of range, or the id collides with an index source.
    """

    aggregate: AggregateConfig
    guard: GuardConfig
    rate_ema_alpha_ppm: int = 0
    rate_ema_source_id: str = "bastion.implied-ema"

    def __post_init__(self) -> None:
        if not 0 <= self.rate_ema_alpha_ppm <= PPM:
            raise OracleConfigError("rate_ema_alpha_ppm must be in 0..10**6")
        if self.aggregate.source(self.rate_ema_source_id) is not None:
            raise OracleConfigError("rate_ema_source_id must not be an index source")


@dataclass(frozen=True, slots=True)
class OracleUpdate:
    """Outcome of one OracleState tick.

    Attributes:
        result: the aggregation result (with all verdicts).
        guard: the guard's verdict on the new price, or None if there was no price.
        status: the guard's status after the tick (validity, liquidations_paused).
    """

    result: AggregateResult
    guard: GuardVerdict | None
    status: GuardStatus

    @property
    def price(self) -> int | None:
        """The oracle price to use this tick (guard-clamped), or None."""
        return None if self.guard is None else self.guard.price

    @property
    def liquidations_paused(self) -> bool:
        return self.status.liquidations_paused


class OracleState:
    """Deterministic per-index oracle state machine (time is an argument, never read)."""

    __slots__ = ("_config", "_guard", "_rate_emas", "_now_ns")

    def __init__(self, config: OracleStateConfig) -> None:
        self._config = config
        self._guard = PriceGuard(config.guard)
        self._rate_emas: dict[str, tuple[int, int]] = {}  # quote -> (rate, time_ns)
        self._now_ns = 0

    @property
    def guard(self) -> PriceGuard:
        return self._guard

    def rate_ema(self, quote: str) -> tuple[int, int] | None:
        """Smoothed implied rate of ``quote`` and its last update time, or None."""
        return self._rate_emas.get(quote)

    def _feedback_reports(self) -> tuple[SourcePrice, ...]:
        config = self._config
        if config.rate_ema_alpha_ppm == 0:
            return ()
        reports: list[SourcePrice] = []
        for policy in config.aggregate.quotes:
            held = self._rate_emas.get(policy.quote)
            if held is None or policy.rate_source(config.rate_ema_source_id) is None:
                continue
            reports.append(
                SourcePrice(
                    source_id=config.rate_ema_source_id,
                    symbol=policy.quote,
                    quote=config.aggregate.quote,
                    price=held[0],
                    exponent=config.aggregate.rate_exponent,
                    timestamp_ns=held[1],
                )
            )
        assert len(reports) <= len(config.aggregate.quotes)
        return tuple(reports)

    def update(self, reports: Sequence[SourcePrice], now_ns: int) -> OracleUpdate:
        """Run one tick.

        Args:
            reports: verified source reports (see ``bastion.feeds.oracle_reports``).
            now_ns: engine time, ns; must not go backwards.

        Returns:
            OracleUpdate with the aggregation result, the guard verdict and status.

        Raises:
            AssertionError: time went backwards (a caller bug).
        """
        assert now_ns >= self._now_ns
        self._now_ns = now_ns
        result = aggregate(tuple(reports) + self._feedback_reports(), now_ns,
                           self._config.aggregate)
        alpha_ppm = self._config.rate_ema_alpha_ppm
        for verdict in result.quote_rates:
            if alpha_ppm == 0 or verdict.rate_implied is None or verdict.rate_implied <= 0:
                continue
            held = self._rate_emas.get(verdict.quote)
            rate = verdict.rate_implied
            if held is not None:
                rate = ema_next(held[0], verdict.rate_implied, alpha_ppm)
            self._rate_emas[verdict.quote] = (rate, now_ns)
        guard_verdict = None
        if result.price is not None:
            guard_verdict = self._guard.update(now_ns, result.price)
        status = self._guard.status(now_ns)
        assert (guard_verdict is None) == (result.price is None)
        return OracleUpdate(result, guard_verdict, status)
