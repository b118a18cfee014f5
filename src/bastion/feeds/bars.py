"""1-minute OHLCV bars from several venues' CSV files -> one merged, time-ordered stream.

Reads the files of ``shared/data/btc-1m-binanceus-kraken-2023-03-usdc-depeg``:

* Binance.US (``binance_<SYMBOL>_1m_*.csv``): header ``open_time,open,high,low,close,volume``,
  ``open_time`` like ``2023-03-01 00:00:00+00:00``; one row per minute, including
  zero-volume minutes.
* Kraken (``kraken_<SYMBOL>_1m_*.csv``): no header,
  ``unix_seconds,open,high,low,close,volume,count``; minutes without trades are absent.

Fixed point. Prices are integers in 1e-2 quote-currency units (`PRICE_EXPONENT` = -2:
``23143.82 USDT -> 2314382``); every price in the data set has at most 2 decimals and an
off-grid price raises `OffGridError` rather than being rounded. Volumes are integers in
1e-8 base units (`VOLUME_EXPONENT` = -8, satoshis; Kraken reports 8 decimals). Values may
be written in scientific notation (pandas writes ``5.4e-05``); they are parsed exactly.

Gaps. Each file's bars are checked against the 1-minute grid. Missing minutes produce a
`BarGap` (always), and with ``fill_gaps=True`` also synthetic flat bars (open = high =
low = close = previous close, volume 0, ``is_filled=True``) for gaps up to
`gap_fill_minutes_max`. With ``start_ns`` / ``end_ns`` given, minutes missing at the start
or end of the window are gaps too.

Merging. `iter_bars` merges the per-file streams with `heapq.merge` on
``(open_time_ns, source, symbol, gap-before-bar)``, so output is deterministic.
"""

from __future__ import annotations

import csv
import heapq
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Final, Literal, TypeAlias

import msgspec

from bastion.feeds._decimal import UnitsParser, units_from_text
from bastion.feeds.errors import FeedFormatError, FeedOrderError

__all__ = [
    "MINUTE_NS",
    "PRICE_EXPONENT",
    "VOLUME_EXPONENT",
    "Bar",
    "BarFile",
    "BarGap",
    "bar_file",
    "bar_files",
    "iter_bar_file",
    "iter_bars",
]

PRICE_EXPONENT: Final = -2
VOLUME_EXPONENT: Final = -8
MINUTE_NS: Final = 60 * 1_000_000_000
gap_fill_minutes_max: Final = 1_440
"""Longest gap (minutes) that ``fill_gaps`` fills with synthetic bars; longer ones are only marked."""
rows_per_file_max: Final = 10_000_000

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_BINANCE_HEADER: Final = ["open_time", "open", "high", "low", "close", "volume"]
_FILE_NAME_RE: Final = re.compile(r"(binance|kraken)_([A-Z0-9]+)_1m_.*\.csv")
_SOURCE_LABELS: Final = {"binance": "binanceus", "kraken": "kraken"}  # README: Binance.US
_QUOTES: Final = ("USDT", "USDC", "USD", "EUR")  # longest match first where prefixes overlap

Layout = Literal["binance", "kraken"]


class BarFile(msgspec.Struct, frozen=True, kw_only=True):
    """One bar CSV and what it contains (derived from its name)."""

    path: Path
    layout: Layout
    source: str
    symbol: str
    quote_currency: str


class Bar(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """One 1-minute OHLCV bar in fixed point.

    Attributes:
        source: ``"binanceus"`` or ``"kraken"``.
        symbol: e.g. ``"BTCUSDC"``.
        quote_currency: e.g. ``"USDC"`` (prices are in this currency, not USD).
        open_time_ns: bar start, Unix ns, a multiple of one minute.
        open_e2, high_e2, low_e2, close_e2: prices in 1e-2 quote units.
        volume_e8: base-asset volume in 1e-8 units.
        trade_count: trades in the bar (Kraken only; ``None`` for Binance.US).
        is_filled: synthetic bar inserted by ``fill_gaps``.
    """

    source: str
    symbol: str
    quote_currency: str
    open_time_ns: int
    open_e2: int
    high_e2: int
    low_e2: int
    close_e2: int
    volume_e8: int
    trade_count: int | None = None
    is_filled: bool = False


class BarGap(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """``minutes_missing`` consecutive minutes without a bar, starting at ``open_time_ns``."""

    source: str
    symbol: str
    quote_currency: str
    open_time_ns: int
    minutes_missing: int


BarRecord: TypeAlias = Bar | BarGap


def bar_file(path: Path) -> BarFile:
    """Describe a bar CSV from its name ``<binance|kraken>_<SYMBOL>_1m_*.csv``.

    Raises:
        FeedFormatError: the name does not follow the pattern or has no known quote.
    """
    match = _FILE_NAME_RE.fullmatch(path.name)
    if match is None:
        raise FeedFormatError(f"{path.name}: not a <venue>_<SYMBOL>_1m_*.csv bar file")
    venue, symbol = match.group(1), match.group(2)
    quote = next((q for q in _QUOTES if symbol.endswith(q) and len(symbol) > len(q)), None)
    if quote is None:
        raise FeedFormatError(f"{path.name}: unknown quote currency in {symbol}")
    layout: Layout = "binance" if venue == "binance" else "kraken"
    return BarFile(path=path, layout=layout, source=_SOURCE_LABELS[venue], symbol=symbol, quote_currency=quote)


def bar_files(directory: Path) -> list[BarFile]:
    """All bar CSVs in ``directory`` (``*_1m_*.csv`` minus metadata files), sorted by name."""
    paths = sorted(p for p in directory.glob("*_1m_*.csv") if "metadata" not in p.name)
    return [bar_file(path) for path in paths]


_PRICE = UnitsParser(Decimal(1).scaleb(PRICE_EXPONENT), "price", positive=True)
_VOLUME_STEP: Final = Decimal(1).scaleb(VOLUME_EXPONENT)


def _volume(text: str) -> int:
    return units_from_text(text, _VOLUME_STEP, "volume", allow_exponent=True)


def _price(text: str) -> int:
    # Plain decimals hit the memo; only exponent forms (never seen for prices) go the slow path.
    if "e" in text or "E" in text:
        return units_from_text(text, _PRICE.step, "price", allow_exponent=True)
    return _PRICE(text)


def _time_ns(text: str, layout: Layout) -> int:
    if layout == "kraken":
        if not text.isdigit():
            raise FeedFormatError(f"bad unix time {text!r}")
        time_ns = int(text) * 1_000_000_000
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise FeedFormatError(f"bad open_time {text!r}") from exc
        if moment.utcoffset() != timedelta(0):
            raise FeedFormatError(f"open_time {text!r} is not UTC")
        time_ns = (moment - _EPOCH) // timedelta(microseconds=1) * 1_000
    if time_ns % MINUTE_NS != 0:
        raise FeedFormatError(f"open_time {text!r} is not on a minute boundary")
    return time_ns


def _parse_row(row: list[str], meta: BarFile) -> Bar:
    width = 6 if meta.layout == "binance" else 7
    if len(row) != width:
        raise FeedFormatError(f"{meta.path.name}: expected {width} columns, got {row!r}")
    open_e2, high_e2, low_e2, close_e2 = (_price(text) for text in row[1:5])
    if not (low_e2 <= min(open_e2, close_e2) and max(open_e2, close_e2) <= high_e2):
        raise FeedFormatError(f"{meta.path.name}: inconsistent OHLC {row!r}")
    trade_count: int | None = None
    if meta.layout == "kraken":
        if not row[6].isdigit():
            raise FeedFormatError(f"{meta.path.name}: bad trade count {row[6]!r}")
        trade_count = int(row[6])
    return Bar(
        source=meta.source,
        symbol=meta.symbol,
        quote_currency=meta.quote_currency,
        open_time_ns=_time_ns(row[0], meta.layout),
        open_e2=open_e2,
        high_e2=high_e2,
        low_e2=low_e2,
        close_e2=close_e2,
        volume_e8=_volume(row[5]),
        trade_count=trade_count,
    )


def _iter_rows(meta: BarFile) -> Iterator[Bar]:
    with meta.path.open(newline="") as handle:
        for index, row in enumerate(csv.reader(handle)):
            assert index < rows_per_file_max, meta.path
            if index == 0 and meta.layout == "binance":
                if row != _BINANCE_HEADER:
                    raise FeedFormatError(f"{meta.path.name}: unexpected header {row!r}")
                continue
            if row:
                yield _parse_row(row, meta)


def _gap_records(
    meta: BarFile, first_missing_ns: int, next_ns: int, prev: Bar | None, fill: bool
) -> Iterator[BarRecord]:
    """A `BarGap`, then (if ``fill``) flat bars at ``prev``'s close -- the last traded price."""
    minutes_missing = (next_ns - first_missing_ns) // MINUTE_NS
    assert minutes_missing > 0
    yield BarGap(
        source=meta.source,
        symbol=meta.symbol,
        quote_currency=meta.quote_currency,
        open_time_ns=first_missing_ns,
        minutes_missing=minutes_missing,
    )
    if not fill or prev is None or minutes_missing > gap_fill_minutes_max:
        return
    close_e2 = prev.close_e2
    for minute in range(minutes_missing):  # bounded by gap_fill_minutes_max
        yield msgspec.structs.replace(
            prev,
            open_time_ns=first_missing_ns + minute * MINUTE_NS,
            open_e2=close_e2,
            high_e2=close_e2,
            low_e2=close_e2,
            volume_e8=0,
            trade_count=None if prev.trade_count is None else 0,
            is_filled=True,
        )


def iter_bar_file(
    meta: BarFile, *, start_ns: int | None = None, end_ns: int | None = None, fill_gaps: bool = False
) -> Iterator[BarRecord]:
    """Bars of one file within ``[start_ns, end_ns)``, with gaps marked (and optionally filled).

    Args:
        meta: from `bar_file` / `bar_files`.
        start_ns, end_ns: optional window (minute-aligned Unix ns); minutes missing at its
            edges are reported as gaps.
        fill_gaps: also emit synthetic flat bars for gaps (see module docstring).

    Raises:
        FeedFormatError: malformed row. OffGridError: price with more than 2 decimals or
        volume with more than 8. FeedOrderError: time not strictly increasing.
    """
    assert start_ns is None or start_ns % MINUTE_NS == 0
    assert end_ns is None or end_ns % MINUTE_NS == 0
    expected_ns = start_ns
    prev: Bar | None = None
    for bar in _iter_rows(meta):
        if prev is not None and bar.open_time_ns <= prev.open_time_ns:
            raise FeedOrderError(f"{meta.path.name}: {bar.open_time_ns} not after {prev.open_time_ns}")
        if start_ns is not None and bar.open_time_ns < start_ns:
            prev = bar
            continue
        if end_ns is not None and bar.open_time_ns >= end_ns:
            break
        if expected_ns is not None and bar.open_time_ns > expected_ns:
            yield from _gap_records(meta, expected_ns, bar.open_time_ns, prev, fill_gaps)
        yield bar
        prev = bar
        expected_ns = bar.open_time_ns + MINUTE_NS
    if end_ns is not None and expected_ns is not None and expected_ns < end_ns:
        yield from _gap_records(meta, expected_ns, end_ns, prev, fill_gaps)


def _merge_key(record: BarRecord) -> tuple[int, str, str, int]:
    return (record.open_time_ns, record.source, record.symbol, 0 if isinstance(record, BarGap) else 1)


def iter_bars(
    files: Iterable[BarFile], *, start_ns: int | None = None, end_ns: int | None = None, fill_gaps: bool = False
) -> Iterator[BarRecord]:
    """Merge several bar files into one stream ordered by ``(open_time_ns, source, symbol)``.

    Same arguments as `iter_bar_file`, applied to every file. Memory is one pending
    record per file.
    """
    streams = [iter_bar_file(meta, start_ns=start_ns, end_ns=end_ns, fill_gaps=fill_gaps) for meta in files]
    return heapq.merge(*streams, key=_merge_key)
