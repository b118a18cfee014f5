"""Binance market-data adapter: raw websocket captures -> typed integer records.

Input format (hftbacktest's Binance recorder, one event per line, optionally gzip)::

    <local_receive_timestamp_ns> <json>

where ``<json>`` is either a combined-stream message ``{"stream": "btcusdt@depth@0ms",
"data": {...}}`` (streams ``@depth[@0ms|@100ms]``, ``@trade``, ``@bookTicker``) or a REST
depth snapshot ``{"lastUpdateId": ..., "bids": [...], "asks": [...]}``.

Every price and size is converted at this edge from its decimal string into an integer on
the instrument's grid (`Grid`): ``price_ticks = price / tick_size``, ``qty_lots = qty /
lot_size``. A value off the grid raises `OffGridError`; nothing is ever rounded and no
float is ever created.

Pipeline (all generators, constant memory apart from the bounded resync buffer)::

    iter_records(paths, instrument)        raw typed records, file order
      -> BookSequencer / iter_synced(...)  Binance order-book sync; drops stale diffs,
                                           emits SequenceGap / Resynced
        -> LocalBook (bastion.feeds.book)  price levels, best bid/ask, top-N

Order-book sync follows Binance "How to manage a local order book correctly":
USD-M https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly
COIN-M https://developers.binance.com/docs/derivatives/coin-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly
Spot https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams
(section "How to manage a local order book correctly", 2024 revision).
"""

from __future__ import annotations

import enum
import functools
import gzip
import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import IO, Final, TypeAlias, cast

import msgspec

from bastion.feeds._decimal import UnitsParser
from bastion.feeds.errors import FeedFormatError, FeedOrderError, SymbolMismatchError

__all__ = [
    "BINANCE_COINM_BTCUSD_PERP",
    "BINANCE_SPOT_BTCUSDT",
    "BINANCE_USDM_BTCUSDT",
    "BINANCE_USDM_ETHUSDT",
    "CAPTURE_STREAMS",
    "AnyRecord",
    "BookDelta",
    "BookRecord",
    "BookSequencer",
    "BookSnapshot",
    "BookTicker",
    "FeedRecord",
    "GapReason",
    "Grid",
    "Instrument",
    "Level",
    "Market",
    "RawRecord",
    "Resynced",
    "SequenceGap",
    "Side",
    "SyncState",
    "SyncStats",
    "Trade",
    "capture_files",
    "iter_lines",
    "iter_records",
    "iter_synced",
    "parse_line",
]

NS_PER_MS: Final = 1_000_000

line_bytes_max: Final = 1 << 22
"""Longest accepted input line (4 MiB). A 1000-level REST snapshot is ~60 KB."""

deltas_buffered_max_default: Final = 10_000
"""Depth diffs held while waiting for a snapshot; the oldest are dropped beyond this."""


# --------------------------------------------------------------------------------------
# Instruments and grids
# --------------------------------------------------------------------------------------


class Market(enum.Enum):
    """Binance market family; decides the venue label and the diff sequencing rule."""

    USDM = "usdm"  # USD-M futures: diffs carry pu (previous final update id)
    COINM = "coinm"  # COIN-M (inverse) futures: same sequencing as USD-M
    SPOT = "spot"  # Spot: no pu; each diff's U must be previous u + 1

    @property
    def venue(self) -> str:
        """Venue label used in every record, e.g. ``"binance-usdm"``."""
        return f"binance-{self.value}"


class Grid(msgspec.Struct, frozen=True):
    """Price and size grid of one instrument.

    Attributes:
        tick_size: price step in quote currency (USD-M/Spot) or USD (COIN-M).
        lot_size: size step in base asset (USD-M/Spot) or contracts (COIN-M, lot = 1).
    """

    tick_size: Decimal
    lot_size: Decimal

    def __post_init__(self) -> None:
        assert self.tick_size > 0, self.tick_size
        assert self.lot_size > 0, self.lot_size


class Instrument(msgspec.Struct, frozen=True):
    """One Binance symbol with the grid its prices and sizes are converted onto.

    Attributes:
        market: market family (sequencing rule, venue label).
        symbol: exchange symbol exactly as in the ``s`` field, e.g. ``"BTCUSD_PERP"``.
        grid: the tick and lot the records are expressed in.
        contract_size_usd: COIN-M only, USD face value of one contract (0 elsewhere).
    """

    market: Market
    symbol: str
    grid: Grid
    contract_size_usd: int = 0

    def __post_init__(self) -> None:
        assert self.symbol == self.symbol.upper() and self.symbol, self.symbol
        assert (self.market is Market.COINM) == (self.contract_size_usd > 0), self

    @property
    def venue(self) -> str:
        """Venue label, e.g. ``"binance-coinm"``."""
        return self.market.venue


# Default grids for the symbols in the hftbacktest 2024-08-08 capture. Each was checked
# against every price and size in the capture (tests/feeds/test_binance_capture.py):
# - USD-M BTCUSDT: tick 0.1, lot 0.001 (exchangeInfo PRICE_FILTER / LOT_SIZE).
# - USD-M ETHUSDT: tick 0.01, lot 0.001.
# - COIN-M BTCUSD_PERP: tick 0.1 USD, lot 1 contract of 100 USD.
# - Spot BTCUSDT: tick 0.01, lot 0.000001 -- NOT the current exchangeInfo stepSize of
#   0.00001. The depth stream carries 7 resting far-away orders with 6 decimals
#   (e.g. 25.426189 BTC at 200000.00, placed before Binance coarsened the BTC step), so
#   a 1e-5 lot would reject real book levels. Trades and top-of-book all fit 1e-5.
BINANCE_USDM_BTCUSDT: Final = Instrument(Market.USDM, "BTCUSDT", Grid(Decimal("0.1"), Decimal("0.001")))
BINANCE_USDM_ETHUSDT: Final = Instrument(Market.USDM, "ETHUSDT", Grid(Decimal("0.01"), Decimal("0.001")))
BINANCE_SPOT_BTCUSDT: Final = Instrument(Market.SPOT, "BTCUSDT", Grid(Decimal("0.01"), Decimal("0.000001")))
BINANCE_COINM_BTCUSD_PERP: Final = Instrument(
    Market.COINM, "BTCUSD_PERP", Grid(Decimal("0.1"), Decimal("1")), contract_size_usd=100
)

CAPTURE_STREAMS: Final[Mapping[str, Instrument]] = {
    "usdm_btcusdt": BINANCE_USDM_BTCUSDT,
    "usdm_ethusdt": BINANCE_USDM_ETHUSDT,
    "spot_btcusdt": BINANCE_SPOT_BTCUSDT,
    "cm_btcusd_perp": BINANCE_COINM_BTCUSD_PERP,
}
"""File-name prefix in the hftbacktest capture directory -> instrument."""


def capture_files(directory: Path) -> dict[str, tuple[Instrument, list[Path]]]:
    """Group the capture's ``<prefix>_<yyyymmdd>.gz`` files by stream.

    Args:
        directory: a directory laid out like ``shared/data/hftbacktest-binance-btc-20240808``.

    Returns:
        ``{prefix: (instrument, [paths in date order])}`` for every prefix of
        `CAPTURE_STREAMS` with at least one file. Files of one prefix continue each other
        (the ``_20240809`` files carry on the update-id chain and have no snapshot), so
        they must be read in this order as one stream.
    """
    found: dict[str, tuple[Instrument, list[Path]]] = {}
    for prefix, instrument in CAPTURE_STREAMS.items():
        paths = sorted(directory.glob(f"{prefix}_[0-9]*.gz"))
        if paths:
            found[prefix] = (instrument, paths)
    return found


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------

Level: TypeAlias = tuple[int, int]
"""One price level: ``(price_ticks, qty_lots)``; ``qty_lots == 0`` in a diff removes it."""


class Side(enum.Enum):
    """Aggressor (taker) side of a trade."""

    BUY = "buy"
    SELL = "sell"


class FeedRecord(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Common header of every record.

    Attributes:
        venue: e.g. ``"binance-usdm"``.
        symbol: exchange symbol, e.g. ``"BTCUSDT"``.
        recv_time_ns: local receive time (capture clock, Unix ns). Binance's own
            timestamps are in ``exchange_time_ns`` where the message has one.
    """

    venue: str
    symbol: str
    recv_time_ns: int


class BookSnapshot(FeedRecord, frozen=True, kw_only=True, tag=True):
    """REST depth snapshot. Levels best first: bids descending, asks ascending."""

    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    exchange_time_ns: int | None = None


class BookDelta(FeedRecord, frozen=True, kw_only=True, tag=True):
    """Depth diff ``depthUpdate``: absolute quantities; qty 0 removes the level.

    Attributes:
        first_update_id: ``U``.
        final_update_id: ``u``.
        prev_final_update_id: ``pu`` (futures only; ``None`` on Spot).
    """

    first_update_id: int
    final_update_id: int
    prev_final_update_id: int | None
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    exchange_time_ns: int | None = None


class Trade(FeedRecord, frozen=True, kw_only=True, tag=True):
    """One public trade. ``taker_side`` is SELL when Binance's ``m`` (buyer is maker) is true.

    Attributes:
        trade_kind: futures ``X`` field (``"MARKET"``, ``"INSURANCE_FUND"``, ``"ADL"``,
            ``"NA"``); ``"MARKET"`` on Spot, which has no such field.
        exchange_time_ns: trade time ``T``.
    """

    trade_id: int
    price_ticks: int
    qty_lots: int
    taker_side: Side
    exchange_time_ns: int
    trade_kind: str = "MARKET"


class BookTicker(FeedRecord, frozen=True, kw_only=True, tag=True):
    """Best bid/offer update; ``update_id`` shares the depth stream's id space."""

    update_id: int
    bid_price_ticks: int
    bid_qty_lots: int
    ask_price_ticks: int
    ask_qty_lots: int
    exchange_time_ns: int | None = None


class GapReason(enum.Enum):
    """Why the diff chain broke."""

    PU_MISMATCH = "pu_mismatch"  # futures: pu != previous u
    U_NOT_CONTIGUOUS = "u_not_contiguous"  # spot: U != previous u + 1
    SNAPSHOT_NOT_BRIDGED = "snapshot_not_bridged"  # first diff after snapshot starts beyond it


class SequenceGap(FeedRecord, frozen=True, kw_only=True, tag=True):
    """The book became invalid: a diff did not continue the chain.

    Attributes:
        last_update_id: last id the book was consistent with (previous ``u``, or the
            snapshot's ``lastUpdateId`` when the gap is right after a snapshot).
        first_update_id: ``U`` of the offending diff.
        prev_final_update_id: its ``pu`` (``None`` on Spot).
    """

    reason: GapReason
    last_update_id: int
    first_update_id: int
    prev_final_update_id: int | None


class Resynced(FeedRecord, frozen=True, kw_only=True, tag=True):
    """The book became valid: a snapshot was bridged by a diff (also the initial sync).

    Attributes:
        snapshot_update_id: ``lastUpdateId`` of the snapshot used.
        final_update_id: ``u`` of the bridging diff; the book is now at this id.
        gaps_before: number of `SequenceGap` emitted before this sync (0 = first sync).
    """

    snapshot_update_id: int
    final_update_id: int
    gaps_before: int


RawRecord: TypeAlias = BookSnapshot | BookDelta | Trade | BookTicker
BookRecord: TypeAlias = BookSnapshot | BookDelta | SequenceGap | Resynced
AnyRecord: TypeAlias = BookSnapshot | BookDelta | Trade | BookTicker | SequenceGap | Resynced


# --------------------------------------------------------------------------------------
# Wire format (msgspec decodes straight into these; unknown fields are ignored)
# --------------------------------------------------------------------------------------

_WireLevels: TypeAlias = list[tuple[str, str]]


class _WireEnvelope(msgspec.Struct):
    stream: str
    data: msgspec.Raw


class _WireSnapshot(msgspec.Struct):
    lastUpdateId: int
    bids: _WireLevels
    asks: _WireLevels
    E: int | None = None
    symbol: str | None = None


class _WireDepth(msgspec.Struct):
    s: str
    U: int
    u: int
    b: _WireLevels
    a: _WireLevels
    E: int | None = None
    pu: int | None = None


class _WireTrade(msgspec.Struct):
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool
    X: str = "MARKET"


class _WireBookTicker(msgspec.Struct):
    s: str
    u: int
    b: str
    B: str
    a: str
    A: str
    E: int | None = None


_DECODE_ENVELOPE = msgspec.json.Decoder(_WireEnvelope)
_DECODE_SNAPSHOT = msgspec.json.Decoder(_WireSnapshot)
_DECODE_DEPTH = msgspec.json.Decoder(_WireDepth)
_DECODE_TRADE = msgspec.json.Decoder(_WireTrade)
_DECODE_BOOK_TICKER = msgspec.json.Decoder(_WireBookTicker)
_SNAPSHOT_PREFIX: Final = b'{"lastUpdateId"'


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------


class _Codec:
    """Memoised decimal-text -> units parsers for one instrument's grid."""

    __slots__ = ("instrument", "price", "qty", "trade_qty")

    def __init__(self, instrument: Instrument) -> None:
        grid = instrument.grid
        self.instrument = instrument
        self.price = UnitsParser(grid.tick_size, "price", positive=True)
        self.qty = UnitsParser(grid.lot_size, "qty", positive=False)
        self.trade_qty = UnitsParser(grid.lot_size, "qty", positive=True)


@functools.lru_cache(maxsize=64)
def _codec(instrument: Instrument) -> _Codec:
    return _Codec(instrument)


def _levels(pairs: _WireLevels, codec: _Codec, *, qty_zero_allowed: bool) -> tuple[Level, ...]:
    price, qty = codec.price, codec.qty
    levels = tuple((price(price_text), qty(qty_text)) for price_text, qty_text in pairs)
    if not qty_zero_allowed and any(qty_lots == 0 for _, qty_lots in levels):
        raise FeedFormatError("snapshot level with zero quantity")
    return levels


def _ms_to_ns(ms: int | None) -> int | None:
    return None if ms is None else ms * NS_PER_MS


def _check_symbol(symbol: str, instrument: Instrument) -> None:
    if symbol != instrument.symbol:
        raise SymbolMismatchError(f"record for {symbol!r}, reader configured for {instrument.symbol!r}")


def _parse_snapshot(payload: bytes, recv_time_ns: int, codec: _Codec) -> BookSnapshot:
    instrument = codec.instrument
    wire = _DECODE_SNAPSHOT.decode(payload)
    if wire.symbol is not None:  # COIN-M snapshots name the symbol; USD-M and Spot do not
        _check_symbol(wire.symbol, instrument)
    return BookSnapshot(
        venue=instrument.venue,
        symbol=instrument.symbol,
        recv_time_ns=recv_time_ns,
        last_update_id=wire.lastUpdateId,
        bids=_levels(wire.bids, codec, qty_zero_allowed=False),
        asks=_levels(wire.asks, codec, qty_zero_allowed=False),
        exchange_time_ns=_ms_to_ns(wire.E),
    )


def _parse_depth(data: bytes, recv_time_ns: int, codec: _Codec) -> BookDelta:
    instrument = codec.instrument
    wire = _DECODE_DEPTH.decode(data)
    _check_symbol(wire.s, instrument)
    if wire.U > wire.u:
        raise FeedFormatError(f"depth diff with U={wire.U} > u={wire.u}")
    has_pu = instrument.market is not Market.SPOT
    if (wire.pu is not None) != has_pu:
        raise FeedFormatError(f"depth diff pu={wire.pu} unexpected for {instrument.market.value}")
    return BookDelta(
        venue=instrument.venue,
        symbol=instrument.symbol,
        recv_time_ns=recv_time_ns,
        first_update_id=wire.U,
        final_update_id=wire.u,
        prev_final_update_id=wire.pu,
        bids=_levels(wire.b, codec, qty_zero_allowed=True),
        asks=_levels(wire.a, codec, qty_zero_allowed=True),
        exchange_time_ns=_ms_to_ns(wire.E),
    )


def _parse_trade(data: bytes, recv_time_ns: int, codec: _Codec) -> Trade:
    instrument = codec.instrument
    wire = _DECODE_TRADE.decode(data)
    _check_symbol(wire.s, instrument)
    return Trade(
        venue=instrument.venue,
        symbol=instrument.symbol,
        recv_time_ns=recv_time_ns,
        trade_id=wire.t,
        price_ticks=codec.price(wire.p),
        qty_lots=codec.trade_qty(wire.q),
        taker_side=Side.SELL if wire.m else Side.BUY,
        exchange_time_ns=wire.T * NS_PER_MS,
        trade_kind=wire.X,
    )


def _parse_book_ticker(data: bytes, recv_time_ns: int, codec: _Codec) -> BookTicker:
    instrument = codec.instrument
    wire = _DECODE_BOOK_TICKER.decode(data)
    _check_symbol(wire.s, instrument)
    return BookTicker(
        venue=instrument.venue,
        symbol=instrument.symbol,
        recv_time_ns=recv_time_ns,
        update_id=wire.u,
        bid_price_ticks=codec.price(wire.b),
        bid_qty_lots=codec.qty(wire.B),
        ask_price_ticks=codec.price(wire.a),
        ask_qty_lots=codec.qty(wire.A),
        exchange_time_ns=_ms_to_ns(wire.E),
    )


def _parse_stream_message(payload: bytes, recv_time_ns: int, codec: _Codec) -> RawRecord:
    instrument = codec.instrument
    envelope = _DECODE_ENVELOPE.decode(payload)
    stream_symbol, _, channel = envelope.stream.partition("@")
    if stream_symbol != instrument.symbol.lower():
        raise SymbolMismatchError(f"stream {envelope.stream!r}, reader configured for {instrument.symbol!r}")
    data = bytes(envelope.data)
    if channel == "depth" or channel.startswith("depth@"):
        return _parse_depth(data, recv_time_ns, codec)
    if channel == "trade":
        return _parse_trade(data, recv_time_ns, codec)
    if channel == "bookTicker":
        return _parse_book_ticker(data, recv_time_ns, codec)
    raise FeedFormatError(f"unsupported stream {envelope.stream!r}")


def parse_line(line: bytes, instrument: Instrument) -> RawRecord:
    """Parse one capture line ``b"<recv_ns> <json>"`` into a typed record.

    Args:
        line: one line without its trailing newline.
        instrument: symbol and grid the line must belong to.

    Returns:
        `BookSnapshot`, `BookDelta`, `Trade` or `BookTicker`.

    Raises:
        FeedFormatError: malformed line/JSON, unsupported stream, bad number text.
        SymbolMismatchError: the line is for another symbol.
        OffGridError: a price or size off the instrument's grid.
    """
    timestamp, separator, payload = line.partition(b" ")
    if not separator or not timestamp.isdigit() or len(timestamp) > 19:
        raise FeedFormatError(f"line does not start with '<recv_ns> ': {line[:40]!r}")
    recv_time_ns = int(timestamp)
    codec = _codec(instrument)
    try:
        if payload.startswith(_SNAPSHOT_PREFIX):
            return _parse_snapshot(payload, recv_time_ns, codec)
        return _parse_stream_message(payload, recv_time_ns, codec)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FeedFormatError(f"bad JSON at recv_time_ns={recv_time_ns}: {exc}") from exc


def _read_lines(stream: IO[bytes], path: Path) -> Iterator[bytes]:
    while True:
        line = stream.readline(line_bytes_max + 1)  # bounded read, even on a runaway line
        if not line:
            return
        if len(line) > line_bytes_max:
            raise FeedFormatError(f"{path}: line longer than {line_bytes_max} bytes")
        line = line.rstrip(b"\r\n")
        if line:
            yield line


def iter_lines(paths: Iterable[Path]) -> Iterator[bytes]:
    """Yield the non-empty lines of each file in turn (gzip detected by magic bytes).

    Raises:
        FeedFormatError: corrupt/truncated gzip, or a line longer than `line_bytes_max`.
    """
    for path in paths:
        with path.open("rb") as raw:
            is_gzip = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            try:
                if is_gzip:
                    with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                        yield from _read_lines(cast(IO[bytes], unzipped), path)
                else:
                    yield from _read_lines(raw, path)
            except (OSError, EOFError, zlib.error) as exc:
                raise FeedFormatError(f"{path}: unreadable input: {exc}") from exc


def iter_records(paths: Iterable[Path], instrument: Instrument) -> Iterator[RawRecord]:
    """Stream the typed records of one symbol's capture files, in file order.

    Args:
        paths: files of ONE stream, in order (see `capture_files`); later files continue
            earlier ones.
        instrument: symbol and grid of every line.

    Yields:
        `BookSnapshot` | `BookDelta` | `Trade` | `BookTicker`, unsynchronised (use
        `iter_synced` for book-ready output).

    Raises:
        FeedError subclasses from `parse_line`; FeedOrderError if the receive clock goes
        backwards (the capture is single-writer, so that means corrupt or spliced input).
    """
    recv_time_ns_last = 0
    for line in iter_lines(paths):
        record = parse_line(line, instrument)
        if record.recv_time_ns < recv_time_ns_last:
            raise FeedOrderError(f"recv_time_ns {record.recv_time_ns} < previous {recv_time_ns_last}")
        recv_time_ns_last = record.recv_time_ns
        yield record


# --------------------------------------------------------------------------------------
# Order-book synchronisation
# --------------------------------------------------------------------------------------


class SyncState(enum.Enum):
    """Sequencer state; the book is valid only in LIVE."""

    AWAITING_SNAPSHOT = "awaiting_snapshot"  # buffering diffs until a snapshot arrives
    AWAITING_BRIDGE = "awaiting_bridge"  # snapshot applied; waiting for the bridging diff
    LIVE = "live"  # every diff continues the chain


class SyncStats(msgspec.Struct, kw_only=True):
    """Counters kept by `BookSequencer` (for reports and tests)."""

    snapshots_applied: int = 0
    snapshots_skipped: int = 0  # arrived while LIVE and not newer than the book
    deltas_applied: int = 0
    deltas_stale_dropped: int = 0  # u below the snapshot (rule 4)
    deltas_buffer_overflow_dropped: int = 0
    gaps: int = 0
    resyncs: int = 0  # Resynced records emitted, including the first sync


class BookSequencer:
    """Binance order-book sync state machine for one symbol.

    Feed it the stream's `BookSnapshot` and `BookDelta` records in arrival order; it
    returns the records a `LocalBook` must apply, in order, plus `SequenceGap` and
    `Resynced` markers. Rules (Binance "How to manage a local order book correctly"):

    * Diffs that arrive before any usable snapshot are buffered (at most
      ``deltas_buffered_max``; oldest dropped first).
    * On a snapshot with ``lastUpdateId = L``: drop diffs with ``u < L`` (Spot:
      ``u <= L``); the first processed diff must have ``U <= L <= u`` (Spot:
      ``U <= L+1 <= u``). A diff starting beyond that means the snapshot is too old:
      `SequenceGap` (SNAPSHOT_NOT_BRIDGED), wait for the next snapshot.
    * When live, each diff must have ``pu == previous u`` (Spot: ``U == previous u + 1``),
      otherwise `SequenceGap` and the book is invalid until the next snapshot in the
      stream (the offending diff is kept in the buffer for it).
    * A snapshot arriving while live is used only if it is newer than the book.

    Buffered diffs are emitted right after their snapshot, so in the output they follow a
    record with a later ``recv_time_ns``; everything else keeps arrival order. The buffer
    matters for replay: in all four hftbacktest streams the REST snapshot line is received
    *after* the diff that bridges it (USD-M BTCUSDT: snapshot 5123107852948 is bridged by
    diff [5123107850310, 5123107853551], received two diffs earlier).
    """

    def __init__(self, instrument: Instrument, *, deltas_buffered_max: int = deltas_buffered_max_default) -> None:
        assert deltas_buffered_max > 0
        self.instrument = instrument
        self.state = SyncState.AWAITING_SNAPSHOT
        self.stats = SyncStats()
        self.update_id: int | None = None  # snapshot L while bridging; last u while live
        self.snapshot_update_id: int | None = None
        self._spot = instrument.market is Market.SPOT
        self._buffer: deque[BookDelta] = deque()
        self._buffer_max = deltas_buffered_max

    def on_snapshot(self, snapshot: BookSnapshot) -> list[BookRecord]:
        """Process a snapshot; returns it (if used) followed by any drained buffered diffs."""
        assert snapshot.symbol == self.instrument.symbol
        if self.state is SyncState.LIVE:
            assert self.update_id is not None
            if snapshot.last_update_id <= self.update_id:
                self.stats.snapshots_skipped += 1
                return []
        self.state = SyncState.AWAITING_BRIDGE
        self.update_id = snapshot.last_update_id
        self.snapshot_update_id = snapshot.last_update_id
        self.stats.snapshots_applied += 1
        out: list[BookRecord] = [snapshot]
        pending = list(self._buffer)
        self._buffer.clear()
        for delta in pending:  # bounded by deltas_buffered_max
            out.extend(self.on_delta(delta))
        return out

    def on_delta(self, delta: BookDelta) -> list[BookRecord]:
        """Process one diff; returns ``[]`` (buffered/stale), ``[delta]``,
        ``[delta, Resynced]`` or ``[SequenceGap]``."""
        assert delta.symbol == self.instrument.symbol
        if self.state is SyncState.AWAITING_SNAPSHOT:
            self._buffer_append(delta)
            return []
        assert self.update_id is not None
        if self.state is SyncState.AWAITING_BRIDGE:
            return self._on_delta_bridging(delta, self.update_id)
        if self._continues_chain(delta, self.update_id):
            self.update_id = delta.final_update_id
            self.stats.deltas_applied += 1
            return [delta]
        reason = GapReason.U_NOT_CONTIGUOUS if self._spot else GapReason.PU_MISMATCH
        return [self._gap(delta, reason)]

    def _on_delta_bridging(self, delta: BookDelta, snapshot_update_id: int) -> list[BookRecord]:
        # Spot counts the snapshot as already containing L, so the bridge must cover L+1.
        bridge_id = snapshot_update_id + 1 if self._spot else snapshot_update_id
        if delta.final_update_id < bridge_id:
            self.stats.deltas_stale_dropped += 1
            return []
        if delta.first_update_id > bridge_id:
            return [self._gap(delta, GapReason.SNAPSHOT_NOT_BRIDGED)]
        assert delta.first_update_id <= bridge_id <= delta.final_update_id
        self.state = SyncState.LIVE
        self.update_id = delta.final_update_id
        self.stats.deltas_applied += 1
        self.stats.resyncs += 1
        resynced = Resynced(
            venue=delta.venue,
            symbol=delta.symbol,
            recv_time_ns=delta.recv_time_ns,
            snapshot_update_id=snapshot_update_id,
            final_update_id=delta.final_update_id,
            gaps_before=self.stats.gaps,
        )
        return [delta, resynced]

    def _continues_chain(self, delta: BookDelta, update_id: int) -> bool:
        if self._spot:
            return delta.first_update_id == update_id + 1
        return delta.prev_final_update_id == update_id

    def _gap(self, delta: BookDelta, reason: GapReason) -> SequenceGap:
        assert self.update_id is not None
        gap = SequenceGap(
            venue=delta.venue,
            symbol=delta.symbol,
            recv_time_ns=delta.recv_time_ns,
            reason=reason,
            last_update_id=self.update_id,
            first_update_id=delta.first_update_id,
            prev_final_update_id=delta.prev_final_update_id,
        )
        self.stats.gaps += 1
        self.state = SyncState.AWAITING_SNAPSHOT
        self.update_id = None
        self._buffer.clear()
        self._buffer_append(delta)  # may bridge the next snapshot
        return gap

    def _buffer_append(self, delta: BookDelta) -> None:
        if len(self._buffer) >= self._buffer_max:
            self._buffer.popleft()
            self.stats.deltas_buffer_overflow_dropped += 1
        self._buffer.append(delta)
        assert len(self._buffer) <= self._buffer_max


def iter_synced(
    paths: Iterable[Path],
    instrument: Instrument,
    *,
    sequencer: BookSequencer | None = None,
    records: Iterable[RawRecord] | None = None,
) -> Iterator[AnyRecord]:
    """Stream book-ready records: raw records passed through `BookSequencer`.

    Args:
        paths: the stream's files in order (ignored when ``records`` is given).
        instrument: symbol and grid.
        sequencer: pass one to read its `SyncStats` afterwards; a fresh one otherwise.
        records: an already-parsed record stream to synchronise instead of ``paths``
            (tests use this to drop or inject records).

    Yields:
        Trades and tickers as they arrive; `BookSnapshot` / `BookDelta` only when they
        are to be applied to a `LocalBook`; `SequenceGap` and `Resynced` markers.
    """
    seq = sequencer if sequencer is not None else BookSequencer(instrument)
    assert seq.instrument == instrument
    source = records if records is not None else iter_records(paths, instrument)
    for record in source:
        if isinstance(record, BookDelta):
            yield from seq.on_delta(record)
        elif isinstance(record, BookSnapshot):
            yield from seq.on_snapshot(record)
        else:
            yield record
