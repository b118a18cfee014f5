"""1-minute bar CSVs -> merged fixed-point stream with gap marking/filling."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bastion.feeds.bars import MINUTE_NS, Bar, BarGap, bar_file, bar_files, iter_bar_file, iter_bars
from bastion.feeds.errors import FeedFormatError, FeedOrderError, OffGridError

PROJECT_ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
BARS_DIR = PROJECT_ROOT.parent / "shared" / "data" / "btc-1m-binanceus-kraken-2023-03-usdc-depeg"
T0 = 1677628800  # 2023-03-01 00:00:00 UTC
T0_NS = T0 * 1_000_000_000
BINANCE_HEADER = "open_time,open,high,low,close,volume\n"


def ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * 1_000_000_000


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---- synthetic files (always run) -------------------------------------------------------


@pytest.fixture
def two_sources(tmp_path: Path) -> list[Path]:
    binance = write(
        tmp_path / "binance_BTCUSDT_1m_x.csv",
        BINANCE_HEADER
        + "2023-03-01 00:00:00+00:00,100.00,101.5,99.25,100.5,1.5\n"
        + "2023-03-01 00:01:00+00:00,100.5,100.5,100.5,100.5,0.0\n"
        + "2023-03-01 00:02:00+00:00,100.5,102,100,101,5.4e-05\n",
    )
    kraken = write(
        tmp_path / "kraken_BTCUSDC_1m_x.csv",
        f"{T0},99.9,99.9,99.9,99.9,0.01429883,2\n" + f"{T0 + 180},100.1,100.2,100.0,100.2,1,5\n",  # 00:01, 00:02 missing
    )
    return [binance, kraken]


def test_bar_file_metadata(two_sources: list[Path]) -> None:
    binance, kraken = (bar_file(p) for p in two_sources)
    assert (binance.source, binance.symbol, binance.quote_currency, binance.layout) == ("binanceus", "BTCUSDT", "USDT", "binance")
    assert (kraken.source, kraken.symbol, kraken.quote_currency, kraken.layout) == ("kraken", "BTCUSDC", "USDC", "kraken")
    with pytest.raises(FeedFormatError):
        bar_file(Path("coinbase_BTCUSD_5m.csv"))


def test_merged_order_gaps_and_fixed_point(two_sources: list[Path]) -> None:
    records = list(iter_bars([bar_file(p) for p in two_sources]))
    keys = [(r.open_time_ns, r.source) for r in records]
    assert keys == sorted(keys)
    first = records[0]
    assert isinstance(first, Bar) and first.source == "binanceus"
    assert (first.open_e2, first.high_e2, first.low_e2, first.close_e2, first.volume_e8) == (10000, 10150, 9925, 10050, 150_000_000)
    assert first.trade_count is None and first.open_time_ns == T0_NS
    gaps = [r for r in records if isinstance(r, BarGap)]
    assert len(gaps) == 1 and gaps[0].source == "kraken"
    assert (gaps[0].open_time_ns, gaps[0].minutes_missing) == (T0_NS + MINUTE_NS, 2)
    scientific = next(r for r in records if isinstance(r, Bar) and r.source == "binanceus" and r.open_time_ns == T0_NS + 2 * MINUTE_NS)
    assert scientific.volume_e8 == 5400  # 5.4e-05 BTC, exact
    kraken_last = records[-1]
    assert isinstance(kraken_last, Bar) and kraken_last.trade_count == 5 and kraken_last.volume_e8 == 100_000_000


def test_fill_gaps_uses_last_close(two_sources: list[Path]) -> None:
    kraken = bar_file(two_sources[1])
    records = list(iter_bar_file(kraken, fill_gaps=True))
    assert [type(r).__name__ for r in records] == ["Bar", "BarGap", "Bar", "Bar", "Bar"]
    filled = [r for r in records if isinstance(r, Bar) and r.is_filled]
    assert [f.open_time_ns for f in filled] == [T0_NS + MINUTE_NS, T0_NS + 2 * MINUTE_NS]
    assert all((f.open_e2, f.high_e2, f.low_e2, f.close_e2, f.volume_e8, f.trade_count) == (9990, 9990, 9990, 9990, 0, 0) for f in filled)


def test_window_edges_are_gaps(two_sources: list[Path]) -> None:
    kraken = bar_file(two_sources[1])
    records = list(iter_bar_file(kraken, start_ns=T0_NS + MINUTE_NS, end_ns=T0_NS + 6 * MINUTE_NS))
    assert [(type(r).__name__, (r.open_time_ns - T0_NS) // MINUTE_NS) for r in records] == [
        ("BarGap", 1),  # 00:01-00:02 missing at the window start
        ("Bar", 3),
        ("BarGap", 4),  # 00:04-00:05 missing at the window end
    ]
    assert [r.minutes_missing for r in records if isinstance(r, BarGap)] == [2, 2]


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        ("binance_BTCUSDT_1m_a.csv", BINANCE_HEADER + "2023-03-01 00:00:00+00:00,100.001,101,99,100,1\n", OffGridError),
        ("binance_BTCUSDT_1m_b.csv", BINANCE_HEADER + "2023-03-01 00:00:00+00:00,100,101,99,100,0.000000001\n", OffGridError),
        ("binance_BTCUSDT_1m_c.csv", BINANCE_HEADER + "2023-03-01 00:00:30+00:00,100,101,99,100,1\n", FeedFormatError),
        ("binance_BTCUSDT_1m_d.csv", BINANCE_HEADER + "2023-03-01 00:00:00+01:00,100,101,99,100,1\n", FeedFormatError),
        ("binance_BTCUSDT_1m_e.csv", "time,o,h,l,c,v\n", FeedFormatError),
        ("binance_BTCUSDT_1m_f.csv", BINANCE_HEADER + "2023-03-01 00:00:00+00:00,100,99,98,100,1\n", FeedFormatError),
        ("binance_BTCUSDT_1m_g.csv", BINANCE_HEADER + "2023-03-01 00:00:00+00:00,nan,101,99,100,1\n", FeedFormatError),
        ("kraken_BTCUSDC_1m_h.csv", f"{T0 + 60},1,1,1,1,1,1\n{T0},1,1,1,1,1,1\n", FeedOrderError),
        ("kraken_BTCUSDC_1m_i.csv", f"{T0},1,1,1,1,1,1\n{T0},1,1,1,1,1,1\n", FeedOrderError),
        ("kraken_BTCUSDC_1m_j.csv", f"{T0},1,1,1,1,1\n", FeedFormatError),
    ],
)
def test_bad_rows_rejected(tmp_path: Path, name: str, text: str, error: type[Exception]) -> None:
    meta = bar_file(write(tmp_path / name, text))
    with pytest.raises(error):
        list(iter_bar_file(meta))


# ---- the real data set ------------------------------------------------------------------

needs_bars = pytest.mark.skipif(not BARS_DIR.is_dir(), reason=f"{BARS_DIR} absent")


@needs_bars
@pytest.mark.shared_data
def test_real_bars_merged_window(capsys: pytest.CaptureFixture[str]) -> None:
    files = bar_files(BARS_DIR)
    assert [(f.source, f.symbol) for f in files] == [
        ("binanceus", "BTCUSDC"),
        ("binanceus", "BTCUSDT"),
        ("binanceus", "BTCUSD"),
        ("kraken", "BTCUSDC"),
    ]
    start_ns, end_ns = T0_NS, ns("2023-03-22 00:00:00")
    counts: Counter[tuple[str, str, str]] = Counter()
    gap_minutes = 0
    key_last = (0, "", "")
    closes_0750: dict[str, int] = {}
    for record in iter_bars(files, start_ns=start_ns, end_ns=end_ns):
        key = (record.open_time_ns, record.source, record.symbol)
        assert key >= key_last
        key_last = key
        counts[(type(record).__name__, record.source, record.symbol)] += 1
        if isinstance(record, BarGap):
            gap_minutes += record.minutes_missing
        elif record.open_time_ns == ns("2023-03-11 07:50:00") and record.source == "binanceus":
            closes_0750[record.symbol] = record.close_e2
    assert counts[("Bar", "binanceus", "BTCUSDC")] == counts[("Bar", "binanceus", "BTCUSD")] == 30_240
    assert counts[("Bar", "binanceus", "BTCUSDT")] == 30_240
    assert counts[("Bar", "kraken", "BTCUSDC")] == 15_719
    assert counts[("BarGap", "kraken", "BTCUSDC")] == 5_917 and gap_minutes == 14_521
    assert 15_719 + gap_minutes == 30_240
    # README: implied USDC/USD = BTCUSD / BTCUSDC close hits 0.8748 at 2023-03-11 07:50 UTC.
    assert closes_0750 == {"BTCUSD": 2_008_685, "BTCUSDC": 2_296_078, "BTCUSDT": closes_0750["BTCUSDT"]}
    assert closes_0750["BTCUSD"] * 10_000 // closes_0750["BTCUSDC"] == 8748
    with capsys.disabled():
        print(f"\nbars 2023-03-01..21: {dict(counts)}, kraken minutes missing {gap_minutes}")


@needs_bars
@pytest.mark.shared_data
def test_real_bars_known_rows_and_fill() -> None:
    files = {(f.source, f.symbol): f for f in bar_files(BARS_DIR)}
    first = next(iter_bar_file(files[("binanceus", "BTCUSDC")]))
    # 2023-03-01 00:00:00+00:00,23143.82,23152.65,23140.02,23152.65,0.26395
    assert first == Bar(
        source="binanceus",
        symbol="BTCUSDC",
        quote_currency="USDC",
        open_time_ns=T0_NS,
        open_e2=2_314_382,
        high_e2=2_315_265,
        low_e2=2_314_002,
        close_e2=2_315_265,
        volume_e8=26_395_000,
    )
    kraken_all = list(iter_bar_file(files[("kraken", "BTCUSDC")]))
    kraken_first = kraken_all[0]
    # 1672531200,16535.97,16535.97,16522.66,16522.66,0.01429883,2  (file really starts 2023-01-01)
    assert isinstance(kraken_first, Bar)
    assert (kraken_first.open_e2, kraken_first.close_e2, kraken_first.volume_e8, kraken_first.trade_count) == (1_653_597, 1_652_266, 1_429_883, 2)
    assert sum(isinstance(r, Bar) for r in kraken_all) == 56_717
    filled = list(iter_bar_file(files[("kraken", "BTCUSDC")], start_ns=T0_NS, end_ns=ns("2023-03-22 00:00:00"), fill_gaps=True))
    bars = [r for r in filled if isinstance(r, Bar)]
    assert len(bars) == 30_240 and sum(b.is_filled for b in bars) == 14_521
    assert [b.open_time_ns for b in bars] == list(range(T0_NS, ns("2023-03-22 00:00:00"), MINUTE_NS))
