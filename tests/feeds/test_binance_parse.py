"""Parsing real Binance capture lines into typed integer records.

Every line below is copied verbatim from the hftbacktest capture
(shared/data/hftbacktest-binance-btc-20240808); the expected values were read off the line.
"""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from bastion.feeds.binance import (
    BINANCE_COINM_BTCUSD_PERP,
    BINANCE_SPOT_BTCUSDT,
    BINANCE_USDM_BTCUSDT,
    BINANCE_USDM_ETHUSDT,
    BookDelta,
    BookSnapshot,
    BookTicker,
    Grid,
    Instrument,
    Market,
    Side,
    Trade,
    iter_lines,
    iter_records,
    parse_line,
)
from bastion.feeds.errors import FeedFormatError, FeedOrderError, OffGridError, SymbolMismatchError
from bastion.feeds.sample import sample_dir

USDM_TRADE = (
    b'1723161255088176367 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256322,'
    b'"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}'
)
USDM_TICKER = (
    b'1723161255088169167 {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,"s":"BTCUSDT",'
    b'"b":"61800.20","B":"2.507","a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256313}}'
)
SPOT_DEPTH = (
    b'1723161254036059768 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255308,"s":"BTCUSDT",'
    b'"U":50093239203,"u":50093239207,"b":[["55653.87000000","0.00000000"]],"a":[["61838.04000000","0.32332000"],'
    b'["61844.30000000","0.40163000"],["61862.50000000","0.05019000"],["61862.51000000","0.00000000"]]}}'
)
SPOT_TRADE = (
    b'1723161254087896568 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",'
    b'"t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}'
)
SPOT_TICKER = (
    b'1723161254087891268 {"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT",'
    b'"b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}'
)
CM_DEPTH = (
    b'1723161600008187784 {"stream":"btcusd_perp@depth@0ms","data":{"e":"depthUpdate","E":1723161601274,'
    b'"T":1723161601265,"s":"BTCUSD_PERP","ps":"BTCUSD","U":1007202248023,"u":1007202248051,"pu":1007202248021,'
    b'"b":[["61635.9","1"],["61641.7","391"],["61651.0","422"],["61655.9","1288"],["61659.2","0"],'
    b'["61660.6","113"],["61668.6","1243"]],"a":[]}}'
)
CM_TRADE = (
    b'1723161256419684465 {"stream":"btcusd_perp@trade","data":{"e":"trade","E":1723161257687,"T":1723161257679,'
    b'"s":"BTCUSD_PERP","t":849714402,"p":"61804.8","q":"4","X":"MARKET","m":false}}'
)
ETH_TRADE = (
    b'1723161255290656866 {"stream":"ethusdt@trade","data":{"e":"trade","E":1723161256560,"T":1723161256560,'
    b'"s":"ETHUSDT","t":4308068523,"p":"2681.62","q":"1.000","X":"MARKET","m":true}}'
)


def test_usdm_trade() -> None:
    record = parse_line(USDM_TRADE, BINANCE_USDM_BTCUSDT)
    assert record == Trade(
        venue="binance-usdm",
        symbol="BTCUSDT",
        recv_time_ns=1723161255088176367,
        trade_id=5266583935,
        price_ticks=618003,  # 61800.30 / 0.1
        qty_lots=6,  # 0.006 / 0.001
        taker_side=Side.BUY,  # m=false: buyer is taker
        exchange_time_ns=1723161256322 * 1_000_000,
        trade_kind="MARKET",
    )


def test_usdm_book_ticker() -> None:
    record = parse_line(USDM_TICKER, BINANCE_USDM_BTCUSDT)
    assert isinstance(record, BookTicker)
    assert (record.update_id, record.bid_price_ticks, record.bid_qty_lots) == (5123107839020, 618002, 2507)
    assert (record.ask_price_ticks, record.ask_qty_lots) == (618003, 2510)
    assert record.exchange_time_ns == 1723161256313_000_000


def test_spot_depth_diff_has_no_pu_and_zero_qty_removes() -> None:
    record = parse_line(SPOT_DEPTH, BINANCE_SPOT_BTCUSDT)
    assert isinstance(record, BookDelta)
    assert (record.first_update_id, record.final_update_id, record.prev_final_update_id) == (50093239203, 50093239207, None)
    assert record.bids == ((5565387, 0),)
    # Spot lot is 1e-6 BTC: 0.32332 BTC -> 323320 lots.
    assert record.asks == ((6183804, 323320), (6184430, 401630), (6186250, 50190), (6186251, 0))
    assert record.venue == "binance-spot" and record.exchange_time_ns == 1723161255308_000_000


def test_spot_trade_and_ticker() -> None:
    trade = parse_line(SPOT_TRADE, BINANCE_SPOT_BTCUSDT)
    assert isinstance(trade, Trade)
    assert (trade.trade_id, trade.price_ticks, trade.qty_lots, trade.taker_side) == (3735683259, 6183763, 20000, Side.SELL)
    ticker = parse_line(SPOT_TICKER, BINANCE_SPOT_BTCUSDT)
    assert isinstance(ticker, BookTicker)
    assert (ticker.bid_price_ticks, ticker.bid_qty_lots, ticker.ask_price_ticks, ticker.ask_qty_lots) == (
        6183763,
        3788260,
        6183764,
        1546980,
    )
    assert ticker.exchange_time_ns is None  # spot bookTicker carries no event time


def test_coinm_depth_and_trade_in_contracts() -> None:
    delta = parse_line(CM_DEPTH, BINANCE_COINM_BTCUSD_PERP)
    assert isinstance(delta, BookDelta)
    assert (delta.first_update_id, delta.final_update_id, delta.prev_final_update_id) == (
        1007202248023,
        1007202248051,
        1007202248021,
    )
    assert delta.bids[0] == (616359, 1) and delta.bids[4] == (616592, 0) and delta.asks == ()
    trade = parse_line(CM_TRADE, BINANCE_COINM_BTCUSD_PERP)
    assert isinstance(trade, Trade)
    assert (trade.price_ticks, trade.qty_lots, trade.taker_side) == (618048, 4, Side.BUY)  # 4 contracts


def test_ethusdt_trade() -> None:
    trade = parse_line(ETH_TRADE, BINANCE_USDM_ETHUSDT)
    assert isinstance(trade, Trade)
    assert (trade.price_ticks, trade.qty_lots, trade.taker_side) == (268162, 1000, Side.SELL)


def test_snapshot_from_bundled_sample() -> None:
    path = sample_dir() / "usdm_btcusdt_20240808.gz"
    snapshot = next(r for r in iter_records([path], BINANCE_USDM_BTCUSDT) if isinstance(r, BookSnapshot))
    assert snapshot.last_update_id == 5123107852948
    assert snapshot.recv_time_ns == 1723161255319702566
    assert snapshot.exchange_time_ns == 1723161256501_000_000
    assert snapshot.bids[:2] == ((618002, 2909), (618001, 696))  # 61800.20 x 2.909, 61800.10 x 0.696
    assert snapshot.asks[0] == (618003, 1072)  # 61800.30 x 1.072
    assert snapshot.asks[-1] == (619762, 2)  # 61976.20 x 0.002
    assert len(snapshot.bids) == len(snapshot.asks) == 1000


def test_records_are_msgspec_round_trippable() -> None:
    record = parse_line(USDM_TRADE, BINANCE_USDM_BTCUSDT)
    encoded = msgspec.msgpack.encode(record)
    assert msgspec.msgpack.decode(encoded, type=Trade) == record


# ---- rejection -------------------------------------------------------------------------


def test_off_grid_price_and_qty_rejected() -> None:
    with pytest.raises(OffGridError) as info:
        parse_line(USDM_TRADE.replace(b'"61800.30"', b'"61800.35"'), BINANCE_USDM_BTCUSDT)
    assert info.value.field == "price"
    with pytest.raises(OffGridError) as info:
        parse_line(USDM_TRADE.replace(b'"0.006"', b'"0.0065"'), BINANCE_USDM_BTCUSDT)
    assert info.value.field == "qty"
    with pytest.raises(OffGridError):
        parse_line(SPOT_DEPTH.replace(b'"0.32332000"', b'"0.32332010"'), BINANCE_SPOT_BTCUSDT)


def test_coarser_grid_rejects_instead_of_rounding() -> None:
    coarse = Instrument(Market.USDM, "BTCUSDT", Grid(Decimal("1"), Decimal("0.001")))
    with pytest.raises(OffGridError):
        parse_line(USDM_TRADE, coarse)


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"notanumber {}",
        b"1723161255088176367",
        b'1723161255088176367 {"stream":"btcusdt@trade"',
        b'1723161255088176367 {"stream":"btcusdt@kline_1m","data":{}}',
        USDM_TRADE.replace(b'"p":"61800.30"', b'"p":61800.3'),  # a JSON float: never accepted
        USDM_TRADE.replace(b'"p":"61800.30"', b'"p":"0.0"'),  # zero price
        USDM_TRADE.replace(b'"q":"0.006"', b'"q":"0.000"'),  # zero-size trade
        USDM_TRADE.replace(b'"p":"61800.30"', b'"p":"6.18003e4"'),  # exponent form
    ],
)
def test_malformed_lines_rejected(line: bytes) -> None:
    with pytest.raises(FeedFormatError):
        parse_line(line, BINANCE_USDM_BTCUSDT)


def test_symbol_mismatch_rejected() -> None:
    with pytest.raises(SymbolMismatchError):
        parse_line(ETH_TRADE, BINANCE_USDM_BTCUSDT)
    with pytest.raises(SymbolMismatchError):  # stream name and payload must both match
        parse_line(USDM_TRADE.replace(b'"s":"BTCUSDT"', b'"s":"ETHUSDT"'), BINANCE_USDM_BTCUSDT)


def test_pu_presence_must_match_market() -> None:
    with pytest.raises(FeedFormatError):
        parse_line(SPOT_DEPTH, Instrument(Market.USDM, "BTCUSDT", BINANCE_SPOT_BTCUSDT.grid))


def test_truncated_gzip_rejected(tmp_path: Path) -> None:
    blob = gzip.compress(USDM_TRADE + b"\n" + USDM_TICKER + b"\n")
    path = tmp_path / "cut.gz"
    path.write_bytes(blob[: len(blob) - 12])
    with pytest.raises(FeedFormatError):
        list(iter_lines([path]))


def test_plain_text_and_order_check(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_bytes(USDM_TICKER + b"\n\n" + USDM_TRADE + b"\n")
    records = list(iter_records([path], BINANCE_USDM_BTCUSDT))
    assert [type(r) for r in records] == [BookTicker, Trade]
    backwards = tmp_path / "backwards.txt"
    backwards.write_bytes(USDM_TRADE + b"\n" + USDM_TICKER + b"\n")  # ticker was received earlier
    with pytest.raises(FeedOrderError):
        list(iter_records([backwards], BINANCE_USDM_BTCUSDT))
