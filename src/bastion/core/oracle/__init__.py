"""Oracle core: pure, deterministic, integer-only index-price aggregation and guard rails.

* ``aggregate(reports, now_ns, config)``: staleness, stablecoin conversion with depeg guard,
  outlier rejection, quorum and (weighted) median -> ``AggregateResult``.
* ``median_floor`` / ``weighted_median_floor``: even count -> floor of the mean of the two
  middle values.
* ``twap``, ``ema_next``: time-weighted average and integer EMA.
* ``PriceGuard``: bounded history, TWAP divergence flags, liquidation pause, clamps (Drift-style).
* ``OracleState``: one tick = aggregate + smoothed implied stablecoin rates + guard.

No floats, no clock, no randomness, no I/O. Prices are integers on a caller-chosen base-10 grid,
times are ns, ratios are ppm.
"""

from bastion.core.oracle.aggregate import aggregate, normalize_price
from bastion.core.oracle.guard import (
    HISTORY_MAX,
    GuardConfig,
    GuardStatus,
    GuardVerdict,
    OracleValidity,
    PriceGuard,
)
from bastion.core.oracle.median import (
    deviation_exceeds_ppm,
    deviation_ppm_ceil,
    median_floor,
    weighted_median_floor,
)
from bastion.core.oracle.state import OracleState, OracleStateConfig, OracleUpdate
from bastion.core.oracle.twap import TWAP_SAMPLES_MAX, alpha_ppm_from_span, ema_next, twap
from bastion.core.oracle.types import (
    EXPONENT_MAX,
    EXPONENT_MIN,
    PPM,
    PRICE_MANTISSA_MAX,
    PRICE_UNITS_MAX,
    QUOTES_MAX,
    REPORTS_MAX,
    SOURCES_MAX,
    WEIGHT_MAX,
    AggregateConfig,
    AggregateResult,
    NoPriceReason,
    OracleConfigError,
    QuotePolicy,
    QuoteRateVerdict,
    RateKind,
    RateStatus,
    RejectReason,
    SourceConfig,
    SourcePrice,
    SourceVerdict,
)

__all__ = [
    "EXPONENT_MAX",
    "EXPONENT_MIN",
    "HISTORY_MAX",
    "PPM",
    "PRICE_MANTISSA_MAX",
    "PRICE_UNITS_MAX",
    "QUOTES_MAX",
    "REPORTS_MAX",
    "SOURCES_MAX",
    "TWAP_SAMPLES_MAX",
    "WEIGHT_MAX",
    "AggregateConfig",
    "AggregateResult",
    "GuardConfig",
    "GuardStatus",
    "GuardVerdict",
    "NoPriceReason",
    "OracleConfigError",
    "OracleState",
    "OracleStateConfig",
    "OracleUpdate",
    "OracleValidity",
    "PriceGuard",
    "QuotePolicy",
    "QuoteRateVerdict",
    "RateKind",
    "RateStatus",
    "RejectReason",
    "SourceConfig",
    "SourcePrice",
    "SourceVerdict",
    "aggregate",
    "alpha_ppm_from_span",
    "deviation_exceeds_ppm",
    "deviation_ppm_ceil",
    "ema_next",
    "median_floor",
    "normalize_price",
    "twap",
    "weighted_median_floor",
]
