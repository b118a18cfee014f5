"""Adapter from a Binance capture directory to time-ordered, book-ready records of several streams.

Built on ``bastion.feeds`` (parser, U/u/pu book sync, ``LocalBook``) with one addition the feeds package
does not offer: *reject and continue*. ``bastion.feeds.binance.iter_records`` raises ``OffGridError``
on the first price or size that is not on the instrument's grid, which ends the stream; a replay must
instead refuse that one record, count it and go on. :func:`iter_records_rejecting` parses line by line
with ``parse_line`` and drops (and counts) off-grid lines — nothing is ever rounded. A dropped depth
diff breaks the update-id chain, so the sequencer reports a gap and the book stays invalid until the
next snapshot: the safe outcome for a book we can no longer trust.

The traded perpetual's stream is parsed directly onto the venue instrument's grid (tick and lot from the
venue config), so a quote that is off *our* grid is rejected by the feed, not by the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from bastion.core.oracle import SourcePrice
from bastion.feeds.binance import (
    AnyRecord,
    BookDelta,
    BookSequencer,
    BookSnapshot,
    Grid,
    Instrument,
    Market,
    RawRecord,
    Resynced,
    SequenceGap,
    capture_files,
    iter_lines,
    iter_synced,
    parse_line,
)
from bastion.feeds.book import LocalBook
from bastion.feeds.errors import FeedError, FeedOrderError, OffGridError
from bastion.feeds.inverse import INDEX_PRICE_EXPONENT, mid_price_usd_cents_from_book

__all__ = ["CaptureFeed", "StreamReader", "capture_window_ns", "iter_records_rejecting"]

_BOOK_RECORDS = (BookSnapshot, BookDelta, SequenceGap, Resynced)


def iter_records_rejecting(paths: list[Path], instrument: Instrument, rejected: list[int]) -> Iterator[RawRecord]:
    """Like ``bastion.feeds.binance.iter_records``, but an off-grid line is dropped, not fatal.

    Args:
        paths: the stream's files in order.
        instrument: symbol and grid.
        rejected: a one-element counter, incremented per dropped line.

    Raises:
        FeedError: any other data fault (malformed line, wrong symbol, time going backwards).
    """
    last_ns = 0
    for line in iter_lines(paths):
        try:
            record = parse_line(line, instrument)
        except OffGridError:
            rejected[0] += 1
            continue
        if record.recv_time_ns < last_ns:
            raise FeedOrderError(f"recv_time_ns {record.recv_time_ns} < previous {last_ns}")
        last_ns = record.recv_time_ns
        yield record


def _mid_parts(bid_ticks: int, ask_ticks: int, tick: Decimal) -> tuple[int, int]:
    """Exact mid ``(bid + ask) * tick / 2`` as (mantissa, base-10 exponent)."""
    mid = Decimal(bid_ticks + ask_ticks) * tick / 2  # exact: halving a decimal never rounds here
    sign, digits, exponent = mid.as_tuple()
    assert isinstance(exponent, int) and sign == 0
    return int("".join(map(str, digits))), exponent


class StreamReader:
    """One capture stream: rejecting parser -> book sequencer -> ``LocalBook``.

    Attributes:
        prefix: capture prefix, e.g. ``"usdm_btcusdt"``.
        instrument: symbol and grid the stream is parsed onto.
        book: the stream's local book (updated by :meth:`apply`).
        rejected_off_grid: lines dropped as off-grid.
        last_book_ns: receive time of the last book record applied.
    """

    def __init__(self, prefix: str, instrument: Instrument, paths: list[Path]) -> None:
        assert paths
        self.prefix = prefix
        self.instrument = instrument
        self.sequencer = BookSequencer(instrument)
        self.book = LocalBook(instrument.venue, instrument.symbol)
        self._rejected = [0]
        self.last_book_ns = 0
        self.records: Iterator[AnyRecord] = iter_synced(
            [], instrument, sequencer=self.sequencer, records=iter_records_rejecting(paths, instrument, self._rejected))

    @property
    def rejected_off_grid(self) -> int:
        return self._rejected[0]

    def apply(self, record: AnyRecord) -> bool:
        """Apply a book record to the local book; False for other records (trades, tickers)."""
        if not isinstance(record, _BOOK_RECORDS):
            return False
        self.book.apply(record)
        self.last_book_ns = record.recv_time_ns
        return True

    def report(self, source_id: str, quote: str) -> SourcePrice | None:
        """The book's mid as an index report (COIN-M: USD per BTC via ``feeds.inverse``), or None."""
        book = self.book
        bid, ask = book.best_bid(), book.best_ask()
        if not book.is_valid or bid is None or ask is None:
            return None
        if self.instrument.market is Market.COINM:
            cents = mid_price_usd_cents_from_book(book, self.instrument)
            assert cents is not None
            return SourcePrice(source_id, "BTC", quote, cents, INDEX_PRICE_EXPONENT, self.last_book_ns)
        mantissa, exponent = _mid_parts(bid[0], ask[0], self.instrument.grid.tick_size)
        return SourcePrice(source_id, "BTC", quote, mantissa, exponent, self.last_book_ns)


class CaptureFeed:
    """Several streams of one capture directory merged by receive time.

    Args:
        directory: capture directory (``<prefix>_<yyyymmdd>.gz`` files).
        prefixes: streams to read; the first is the traded perpetual.
        perp_grid: the venue instrument's grid, used for the perpetual stream.

    Raises:
        FeedError: a requested stream has no file in ``directory``.
    """

    def __init__(self, directory: Path, prefixes: list[str], perp_grid: Grid) -> None:
        found = capture_files(directory)
        self.readers: dict[str, StreamReader] = {}
        for index, prefix in enumerate(dict.fromkeys(prefixes)):
            if prefix not in found:
                raise FeedError(f"{directory}: no capture files for stream {prefix!r}")
            instrument, paths = found[prefix]
            if index == 0:
                instrument = Instrument(instrument.market, instrument.symbol, perp_grid, instrument.contract_size_usd)
            self.readers[prefix] = StreamReader(prefix, instrument, paths)
        self.perp = next(iter(self.readers.values()))
        self.perp_exhausted = False

    def __iter__(self) -> Iterator[tuple[StreamReader, AnyRecord]]:
        """Records of every stream in (receive time, stream order); stops when the perpetual ends."""
        readers = list(self.readers.values())
        heads: list[AnyRecord | None] = [next(r.records, None) for r in readers]
        while heads[0] is not None:  # the perpetual drives the replay
            best = 0
            best_ns = heads[0].recv_time_ns
            for i in range(1, len(heads)):  # a handful of streams
                head = heads[i]
                if head is not None and head.recv_time_ns < best_ns:
                    best, best_ns = i, head.recv_time_ns
            record = heads[best]
            assert record is not None
            heads[best] = next(readers[best].records, None)
            yield readers[best], record
        self.perp_exhausted = True


def capture_window_ns(directory: Path, prefix: str) -> tuple[int, int]:
    """First and last receive time of a stream (a cheap pass over line prefixes, no JSON parsing).

    Raises:
        FeedError: no files, or an empty stream.
    """
    found = capture_files(directory)
    if prefix not in found:
        raise FeedError(f"{directory}: no capture files for stream {prefix!r}")
    first = last = None
    for line in iter_lines(found[prefix][1]):
        stamp = int(line.partition(b" ")[0])
        first = stamp if first is None else first
        last = stamp
    if first is None or last is None:
        raise FeedError(f"{directory}: stream {prefix!r} is empty")
    return first, last
