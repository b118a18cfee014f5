"""Replay a synchronised Binance stream through a `LocalBook` and report what happened.

Used by the tests, the benchmark and the data report: counts records per type, gaps and
resyncs, crossed states, and cross-checks the rebuilt book against the venue's own
``@bookTicker``: whenever a ticker and a book state carry the same update id, best bid and
best ask must be identical (Binance uses one id space for both streams of a symbol).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Final

import msgspec

from bastion.feeds.binance import (
    AnyRecord,
    BookDelta,
    BookSnapshot,
    BookTicker,
    Instrument,
    Resynced,
    SequenceGap,
)
from bastion.feeds.book import CrossedPolicy, LocalBook

__all__ = ["ReplayReport", "replay_book"]

tops_remembered_max: Final = 4096
"""Recent (update id -> top of book) pairs kept per side for the ticker cross-check."""


class ReplayReport(msgspec.Struct, kw_only=True):
    """Outcome of `replay_book`.

    Attributes:
        records_by_type: record class name -> count, as yielded by the synchronised stream.
        gaps: `SequenceGap` records seen. resyncs: `Resynced` records (incl. the first sync).
        valid_applies: book records applied while the book was (and stayed) valid.
        crossed: valid applies that left the book crossed (book then invalidated).
        ticker_checks: ticker/book pairs with the same update id; ticker_mismatches: of
            those, how many disagreed on best bid or ask price.
        levels_max: most (bid, ask) levels held at once.
        best_bid, best_ask: final top of book (``None`` if invalid/empty).
        book_hash: `LocalBook.state_hash` at the end.
    """

    records_by_type: dict[str, int]
    gaps: int = 0
    resyncs: int = 0
    valid_applies: int = 0
    crossed: int = 0
    ticker_checks: int = 0
    ticker_mismatches: int = 0
    levels_max: tuple[int, int] = (0, 0)
    best_bid: tuple[int, int] | None = None
    best_ask: tuple[int, int] | None = None
    book_valid_at_end: bool = False
    book_hash: str = ""


def _remember(store: dict[int, tuple[int, int]], key: int, value: tuple[int, int]) -> None:
    if len(store) >= tops_remembered_max:
        del store[next(iter(store))]  # dicts keep insertion order: drop the oldest
    store[key] = value


def replay_book(
    records: Iterable[AnyRecord], instrument: Instrument, *, crossed_policy: CrossedPolicy = "invalidate"
) -> tuple[ReplayReport, LocalBook]:
    """Apply a synchronised stream (`iter_synced` output) to a fresh `LocalBook`.

    Returns:
        ``(report, book)`` with the book in its final state.
    """
    book = LocalBook(instrument.venue, instrument.symbol, crossed_policy=crossed_policy)
    report = ReplayReport(records_by_type={})
    counts: Counter[str] = Counter()
    book_tops: dict[int, tuple[int, int]] = {}
    ticker_tops: dict[int, tuple[int, int]] = {}
    for record in records:
        counts[type(record).__name__] += 1
        if isinstance(record, BookTicker):
            top = (record.bid_price_ticks, record.ask_price_ticks)
            _check_top(report, book_tops.get(record.update_id), top)
            _remember(ticker_tops, record.update_id, top)
            continue
        if not isinstance(record, (BookSnapshot, BookDelta, SequenceGap, Resynced)):
            continue
        crossed_before = book.crossed_count
        book.apply(record)
        report.crossed += book.crossed_count - crossed_before
        bids_count, asks_count = book.level_counts()
        report.levels_max = (max(report.levels_max[0], bids_count), max(report.levels_max[1], asks_count))
        if not book.is_valid:
            continue
        report.valid_applies += 1
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None and book.update_id is not None:
            top = (bid[0], ask[0])
            _check_top(report, ticker_tops.get(book.update_id), top)
            _remember(book_tops, book.update_id, top)
    report.records_by_type = dict(sorted(counts.items()))
    report.gaps = counts["SequenceGap"]
    report.resyncs = counts["Resynced"]
    report.book_valid_at_end = book.is_valid
    report.best_bid = book.best_bid() if book.is_valid else None
    report.best_ask = book.best_ask() if book.is_valid else None
    report.book_hash = book.state_hash()
    return report, book


def _check_top(report: ReplayReport, other: tuple[int, int] | None, top: tuple[int, int]) -> None:
    if other is None:
        return
    report.ticker_checks += 1
    if other != top:
        report.ticker_mismatches += 1


def main(argv: list[str] | None = None) -> int:
    """Print a replay report and parse throughput for every stream of a capture directory.

    Usage: ``python -m bastion.feeds.replay [capture_dir]`` (default: the bundled sample).
    This is shell code: it reads files and the wall clock, for the printed figures only.
    """
    import sys
    import time
    from pathlib import Path

    from bastion.feeds.binance import BookSequencer, capture_files, iter_records, iter_synced
    from bastion.feeds.sample import sample_dir

    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else sample_dir()
    records_total, seconds_total = 0, 0.0
    for prefix, (instrument, paths) in capture_files(directory).items():
        started = time.perf_counter()
        parsed = sum(1 for _ in iter_records(paths, instrument))
        parse_seconds = time.perf_counter() - started
        sequencer = BookSequencer(instrument)
        started = time.perf_counter()
        report, _ = replay_book(iter_synced(paths, instrument, sequencer=sequencer), instrument)
        replay_seconds = time.perf_counter() - started
        records_total += parsed
        seconds_total += parse_seconds
        print(f"{prefix}: {parsed} records, parse {parsed / parse_seconds:,.0f} rec/s, "
              f"parse+sync+book {parsed / replay_seconds:,.0f} rec/s")
        print(f"  {report.records_by_type} gaps={report.gaps} resyncs={report.resyncs} crossed={report.crossed}")
        print(
            f"  ticker_checks={report.ticker_checks} mismatches={report.ticker_mismatches} "
            f"levels_max={report.levels_max}"
        )
        print(f"  {sequencer.stats}")
    print(f"total: {records_total} records, parse {records_total / seconds_total:,.0f} rec/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
