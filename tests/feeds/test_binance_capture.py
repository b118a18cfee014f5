"""Full hftbacktest Binance capture (~367k events): grids hold, books sync with no gaps,
never cross, and agree with Binance's own bookTicker. Skipped when ../shared/data is absent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from bastion.feeds.binance import (
    BINANCE_COINM_BTCUSD_PERP,
    BINANCE_SPOT_BTCUSDT,
    BookSequencer,
    Grid,
    Instrument,
    RawRecord,
    capture_files,
    iter_records,
    iter_synced,
)
from bastion.feeds.errors import OffGridError
from bastion.feeds.replay import replay_book

PROJECT_ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
CAPTURE = PROJECT_ROOT.parent / "shared" / "data" / "hftbacktest-binance-btc-20240808"

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not CAPTURE.is_dir(), reason=f"{CAPTURE} absent"),
]

# Line counts from the capture's README.txt; per-type split measured on the data.
EXPECTED_RAW = {
    "usdm_btcusdt": {"BookDelta": 6551, "BookSnapshot": 1, "BookTicker": 66089, "Trade": 21313},  # 93,954 lines
    "usdm_ethusdt": {"BookDelta": 6586, "BookSnapshot": 1, "BookTicker": 53992, "Trade": 14076},  # 74,655
    "spot_btcusdt": {"BookDelta": 6495, "BookSnapshot": 1, "BookTicker": 73174, "Trade": 19904},  # 41,249 + 58,325
    "cm_btcusd_perp": {"BookDelta": 44795, "BookSnapshot": 1, "BookTicker": 48355, "Trade": 5235},  # 48,270 + 50,116
}


def counting(records: Iterator[RawRecord], counts: Counter[str]) -> Iterator[RawRecord]:
    for record in records:
        counts[type(record).__name__] += 1
        yield record


@pytest.mark.parametrize("prefix", sorted(EXPECTED_RAW))
def test_full_stream_replays_without_gaps_or_crosses(prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
    instrument, paths = capture_files(CAPTURE)[prefix]
    raw_counts: Counter[str] = Counter()
    sequencer = BookSequencer(instrument)
    synced = iter_synced([], instrument, sequencer=sequencer, records=counting(iter_records(paths, instrument), raw_counts))
    # Every price and size of the stream lands on the default grid, or parsing raises OffGridError.
    report, book = replay_book(synced, instrument, crossed_policy="raise")
    assert dict(raw_counts) == EXPECTED_RAW[prefix]
    assert report.gaps == 0 and report.resyncs == 1 and report.crossed == 0
    assert sequencer.stats.deltas_applied + sequencer.stats.deltas_stale_dropped == raw_counts["BookDelta"]
    assert book.is_valid and report.best_bid is not None and report.best_ask is not None
    assert report.best_bid[0] < report.best_ask[0]
    assert report.ticker_checks > 500 and report.ticker_mismatches == 0
    with capsys.disabled():
        print(
            f"\n{prefix}: raw {dict(sorted(raw_counts.items()))}; stale dropped {sequencer.stats.deltas_stale_dropped}; "
            f"gaps {report.gaps}; crossed {report.crossed}; valid applies {report.valid_applies}; "
            f"ticker checks {report.ticker_checks} (mismatches {report.ticker_mismatches}); levels max {report.levels_max}"
        )


def test_spot_needs_lot_1e6_not_1e5() -> None:
    """Binance Spot BTCUSDT stepSize is 0.00001 today, but the depth stream still carries
    legacy resting orders with 6 decimals (e.g. 25.426189 BTC at 200000.00): a 1e-5 lot
    must reject them, not round them."""
    instrument, paths = capture_files(CAPTURE)["spot_btcusdt"]
    coarse = Instrument(instrument.market, instrument.symbol, Grid(Decimal("0.01"), Decimal("0.00001")))
    with pytest.raises(OffGridError) as info:
        for _ in iter_records(paths, coarse):
            pass
    assert info.value.field == "qty" and len(info.value.text.rstrip("0").split(".")[1]) == 6


def test_continuation_file_alone_never_becomes_valid() -> None:
    """The *_20240809 files carry no snapshot: read alone, the book must stay invalid
    (diffs buffered, bounded), never guessed."""
    paths = [CAPTURE / "cm_btcusd_perp_20240809.gz"]
    sequencer = BookSequencer(BINANCE_COINM_BTCUSD_PERP)
    report, book = replay_book(iter_synced(paths, BINANCE_COINM_BTCUSD_PERP, sequencer=sequencer), BINANCE_COINM_BTCUSD_PERP)
    assert report.resyncs == 0 and report.valid_applies == 0 and not book.is_valid
    assert report.records_by_type.get("BookDelta", 0) == 0
    assert sequencer.stats.deltas_buffer_overflow_dropped == 17_948 - 10_000


def test_spot_and_coinm_files_chain_across_midnight() -> None:
    for instrument in (BINANCE_SPOT_BTCUSDT, BINANCE_COINM_BTCUSD_PERP):
        paths = [p for _, (inst, ps) in capture_files(CAPTURE).items() if inst == instrument for p in ps]
        assert [p.name[-11:] for p in paths] == ["20240808.gz", "20240809.gz"]
