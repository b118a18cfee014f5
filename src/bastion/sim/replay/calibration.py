"""Size and leverage distributions of the leveraged-trader population, fitted from real data.

Source: ``shared/data/hyperliquid-historical-2023`` (Hyperliquid's own published records,
2023-02-27 .. 2023-05-02; see its README.txt). Two empirical distributions are fitted:

* **Position notional** (USD cents): ``px * sz`` of every BTC row of ``non_mm_trades.csv`` (1,443
  trades in which at least one side was not a market maker).
* **Effective leverage** (thousandths): for every trade that *increases* a user's position
  (``non_mm_trades.csv``, all coins), the user's gross position notional after the trade, marked at
  the last traded price of each coin, divided by the user's cumulative net deposits so far
  (``non_mm_ledger_updates.csv``); users with no positive net deposit yet are skipped. This is what a
  trader actually ran, not the venue's maximum: median ~1.3x, 90th percentile ~8.9x, 99th ~35x.

A distribution is stored as a quantile table: ``(probability_ppm, value)`` pairs at fixed
probabilities, nearest-rank on the exactly sorted values (``decimal.Decimal`` arithmetic only, so
the fit gives the same integers on every machine). Sampling draws ``u`` uniformly from
``[0, 10**6)`` and interpolates linearly, in integers, between the two neighbouring points; below
the first or above the last probability the end value is used, so the tails are clamped at the
0.5 % / 99.5 % quantiles (the raw extremes are single accounts with near-zero deposits).

Fallback: the licence of the Hyperliquid data does not allow bundling it, so a fresh clone cannot
fit. :data:`HYPERLIQUID_2023` holds the tables this fit produces on that data, and the test suite
checks that fitting the shared file reproduces them exactly (``tests/replay``). A run therefore
uses the same numbers, and gives the same state hash, with or without the shared data.
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Final

__all__ = [
    "HYPERLIQUID_2023",
    "PROBABILITIES_PPM",
    "Calibration",
    "QuantileTable",
    "fit_hyperliquid_2023",
    "load_calibration",
]

PPM: Final = 1_000_000
PROBABILITIES_PPM: Final = (5_000, 10_000, 50_000, 100_000, 200_000, 300_000, 400_000, 500_000, 600_000,
                            700_000, 800_000, 900_000, 950_000, 990_000, 995_000)
"""Probabilities of the stored quantiles (ppm)."""

rows_max: Final = 1_000_000
"""Bound on the rows read from one calibration CSV."""


@dataclass(frozen=True, slots=True)
class QuantileTable:
    """An empirical distribution as quantiles: ``values[i]`` is the ``probabilities_ppm[i]`` quantile.

    Attributes:
        probabilities_ppm: strictly increasing probabilities in (0, 10**6).
        values: non-decreasing integer values (units named by the owner field).
    """

    probabilities_ppm: tuple[int, ...]
    values: tuple[int, ...]

    def __post_init__(self) -> None:
        assert len(self.probabilities_ppm) == len(self.values) >= 2
        assert all(0 < a < b < PPM for a, b in zip(self.probabilities_ppm, self.probabilities_ppm[1:]))
        assert all(a <= b for a, b in zip(self.values, self.values[1:]))

    def sample(self, rng: random.Random) -> int:
        """Draw one value (integer interpolation between quantiles; tails clamped, see module doc)."""
        u = rng.randrange(PPM)
        probs, values = self.probabilities_ppm, self.values
        if u <= probs[0]:
            return values[0]
        for i in range(1, len(probs)):  # bounded by the table length
            if u <= probs[i]:
                lo_p, hi_p = probs[i - 1], probs[i]
                lo_v, hi_v = values[i - 1], values[i]
                return lo_v + (hi_v - lo_v) * (u - lo_p) // (hi_p - lo_p)
        return values[-1]


@dataclass(frozen=True, slots=True)
class Calibration:
    """The trader population's distributions and where they came from.

    Attributes:
        notional_usd_cents: position notional per opening order, USD cents.
        leverage_milli: effective leverage (position notional / collateral) in thousandths.
        source: ``"fitted:<path>"`` or ``"fallback:<name>"``.
    """

    notional_usd_cents: QuantileTable
    leverage_milli: QuantileTable
    source: str


HYPERLIQUID_2023: Final = Calibration(
    notional_usd_cents=QuantileTable(
        PROBABILITIES_PPM,
        (1116, 1369, 5544, 5604, 9991, 13572, 16713, 19638, 27369, 59583, 142968, 265988, 386899,
         638144, 837697),
    ),
    leverage_milli=QuantileTable(
        PROBABILITIES_PPM,
        (27, 53, 188, 239, 533, 670, 876, 1349, 2223, 3638, 5350, 8902, 14550, 34825, 42603),
    ),
    source="fallback:hyperliquid-2023 (tables in bastion/sim/replay/calibration.py)",
)
"""The fit of :func:`fit_hyperliquid_2023` on the shared data set (see module docstring)."""

DATASET: Final = "hyperliquid-historical-2023"


def _quantiles(values: list[int]) -> QuantileTable:
    """Nearest-rank quantiles of ``values`` at :data:`PROBABILITIES_PPM`."""
    assert values, "no values to fit"
    ordered = sorted(values)
    n = len(ordered)
    picked = tuple(ordered[max(0, -(-p * n // PPM) - 1)] for p in PROBABILITIES_PPM)
    return QuantileTable(PROBABILITIES_PPM, picked)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        rows = []
        for index, row in enumerate(csv.DictReader(handle)):
            assert index < rows_max, path
            rows.append(row)
    return rows


def _notionals_cents(trades: list[dict[str, str]]) -> list[int]:
    return [int(Decimal(r["px"]) * Decimal(r["sz"]) * 100) for r in trades if r["coin"] == "BTC"]


def _leverages_milli(trades: list[dict[str, str]], ledger: list[dict[str, str]]) -> list[int]:
    """Effective leverage at every position-increasing trade (module docstring), in thousandths."""
    timeline = sorted([(r["time"], 0, i) for i, r in enumerate(ledger)]
                      + [(r["time"], 1, i) for i, r in enumerate(trades)])
    deposits: dict[str, Decimal] = defaultdict(Decimal)
    positions: dict[str, dict[str, Decimal]] = defaultdict(dict)
    last_price: dict[str, Decimal] = {}
    out: list[int] = []
    for _, kind, index in timeline:  # bounded by rows_max per file
        if kind == 0:
            deposits[ledger[index]["user"]] += Decimal(ledger[index]["delta_usd"])
            continue
        row = trades[index]
        user, coin, price = row["user"], row["coin"], Decimal(row["px"])
        size = Decimal(row["sz"]) if row["side"] == "Bid" else -Decimal(row["sz"])
        last_price[coin] = price
        held = positions[user].get(coin, Decimal(0))
        positions[user][coin] = held + size
        if abs(held + size) > abs(held) and deposits[user] > 0:
            gross = sum((abs(q) * last_price[c] for c, q in positions[user].items()), Decimal(0))
            out.append(int(gross * 1000 / deposits[user]))
    return out


def fit_hyperliquid_2023(directory: Path) -> Calibration:
    """Fit both tables from the Hyperliquid CSVs in ``directory`` (see module docstring).

    Raises:
        OSError / KeyError / decimal.InvalidOperation: missing or malformed files.
    """
    trades = _rows(directory / "non_mm_trades.csv")
    ledger = _rows(directory / "non_mm_ledger_updates.csv")
    return Calibration(
        notional_usd_cents=_quantiles(_notionals_cents(trades)),
        leverage_milli=_quantiles(_leverages_milli(trades, ledger)),
        source=f"fitted:{directory}",
    )


def load_calibration(name: str, shared_data: Path | None) -> Calibration:
    """The calibration named in a scenario: fitted from the shared data when present, else the fallback.

    Args:
        name: calibration name; only ``"hyperliquid-2023"`` exists.
        shared_data: the ``shared/data`` directory, or None when it is unknown/absent.

    Raises:
        ValueError: unknown calibration name.
    """
    if name != "hyperliquid-2023":
        raise ValueError(f"unknown trader calibration {name!r} (known: 'hyperliquid-2023')")
    if shared_data is not None and (shared_data / DATASET / "non_mm_trades.csv").is_file():
        return fit_hyperliquid_2023(shared_data / DATASET)
    return HYPERLIQUID_2023
