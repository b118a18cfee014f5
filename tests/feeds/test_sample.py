"""The bundled 60-second Binance sample: parses, syncs, never crosses, detects injected gaps.

Always runs (no shared data needed): this is what a fresh clone exercises.
"""

from __future__ import annotations

import gzip
import hashlib
from collections import Counter
from pathlib import Path

import pytest

from bastion.feeds.binance import (
    BINANCE_USDM_BTCUSDT,
    BookDelta,
    BookSnapshot,
    GapReason,
    Instrument,
    RawRecord,
    Resynced,
    SequenceGap,
    capture_files,
    iter_records,
    iter_synced,
)
from bastion.feeds.book import LocalBook
from bastion.feeds.replay import replay_book
from bastion.feeds.sample import SAMPLE_SECONDS, make_sample, sample_dir

PROJECT_ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
SHARED_CAPTURE = PROJECT_ROOT.parent / "shared" / "data" / "hftbacktest-binance-btc-20240808"

# prefix -> (lines, {record type: count} as parsed, book diffs applied after sync)
EXPECTED = {
    "usdm_btcusdt": (15558, {"BookDelta": 1127, "BookSnapshot": 1, "BookTicker": 11967, "Trade": 2463}, 1123),
    "usdm_ethusdt": (13262, {"BookDelta": 1131, "BookSnapshot": 1, "BookTicker": 10062, "Trade": 2068}, 1126),
    "spot_btcusdt": (7341, {"BookDelta": 599, "BookSnapshot": 1, "BookTicker": 5360, "Trade": 1381}, 597),
    "cm_btcusd_perp": (8091, {"BookDelta": 4268, "BookSnapshot": 1, "BookTicker": 3584, "Trade": 238}, 4245),
}
CONTENT_SHA256 = {
    "cm_btcusd_perp_20240808.gz": "8b97c64c33ce5dcf85f85be4b9eb2c66efff2a4308d89f11609be7993d800cb9",
    "spot_btcusdt_20240808.gz": "24713ccd0665cb4a5cc859df66d0077a817cf94cc65b62b33381f6f65b706aec",
    "usdm_btcusdt_20240808.gz": "c83a3fd9b530b80e7265fa3a49e9e2187562ca2ea0e8fbed0b5f51425b5865eb",
    "usdm_ethusdt_20240808.gz": "265053ed9c26ea8c06975dbd33488a449e74d4814ff71f262a00eb3b949736a6",
}


def test_sample_files_present_licensed_and_small() -> None:
    directory = sample_dir()
    names = sorted(p.name for p in directory.glob("*.gz"))
    assert names == sorted(CONTENT_SHA256)
    total_bytes = sum((directory / name).stat().st_size for name in names)
    assert total_bytes < 3_000_000
    licence = (directory / "LICENSE").read_text()
    assert "MIT License" in licence and "Copyright (c) 2022 nkaz001" in licence
    attribution = (directory / "ATTRIBUTION.md").read_text()
    assert "github.com/nkaz001/hftbacktest" in attribution and "make_sample" in attribution
    for name, digest in CONTENT_SHA256.items():
        assert hashlib.sha256(gzip.decompress((directory / name).read_bytes())).hexdigest() == digest


def test_sample_parses_syncs_and_never_crosses(capsys: pytest.CaptureFixture[str]) -> None:
    streams = capture_files(sample_dir())
    assert sorted(streams) == sorted(EXPECTED)
    lines_report = []
    for prefix, (instrument, paths) in streams.items():
        lines, parsed_counts, applied = EXPECTED[prefix]
        parsed = Counter(type(r).__name__ for r in iter_records(paths, instrument))
        assert dict(parsed) == parsed_counts and sum(parsed.values()) == lines
        # crossed_policy="raise": a crossed valid book fails the test instead of being invalidated.
        report, book = replay_book(iter_synced(paths, instrument), instrument, crossed_policy="raise")
        assert report.gaps == 0 and report.resyncs == 1 and report.crossed == 0
        assert report.records_by_type["BookDelta"] == applied
        assert book.is_valid and report.best_bid is not None and report.best_ask is not None
        assert report.best_bid[0] < report.best_ask[0]
        assert report.ticker_checks > 50 and report.ticker_mismatches == 0
        lines_report.append(f"  {prefix:15s} {report.records_by_type} checks={report.ticker_checks}")
    with capsys.disabled():
        print("\nbundled sample (synced records per type):", *lines_report, sep="\n")


def _clean_tops(records: list[RawRecord], instrument: Instrument) -> tuple[dict[int, BookSnapshot], str]:
    """Replay without faults; return the full book after every applied diff (as a snapshot) and the final hash."""
    book = LocalBook(instrument.venue, instrument.symbol, crossed_policy="raise")
    states: dict[int, BookSnapshot] = {}
    for record in iter_synced([], instrument, records=records):
        if isinstance(record, (BookSnapshot, BookDelta, SequenceGap, Resynced)):
            book.apply(record)
        if isinstance(record, BookDelta) and book.is_valid and len(states) < 400:
            bids, asks = book.depth(10_000)
            states[record.final_update_id] = BookSnapshot(
                venue=instrument.venue,
                symbol=instrument.symbol,
                recv_time_ns=record.recv_time_ns,
                last_update_id=record.final_update_id,
                bids=tuple(bids),
                asks=tuple(asks),
            )
    return states, book.state_hash()


def test_injected_gap_detected_and_resynced_from_next_snapshot() -> None:
    instrument = BINANCE_USDM_BTCUSDT
    paths = capture_files(sample_dir())["usdm_btcusdt"][1]
    records = list(iter_records(paths, instrument))
    states, clean_hash = _clean_tops(records, instrument)
    delta_indexes = [i for i, r in enumerate(records) if isinstance(r, BookDelta)]
    snapshot_index = next(i for i, r in enumerate(records) if isinstance(r, BookSnapshot))
    after_sync = [i for i in delta_indexes if i > snapshot_index]
    dropped_index, resume_index = after_sync[100], after_sync[110]
    before, dropped, after = records[after_sync[99]], records[dropped_index], records[after_sync[101]]
    assert isinstance(before, BookDelta) and isinstance(dropped, BookDelta) and isinstance(after, BookDelta)
    resume = records[resume_index]
    assert isinstance(resume, BookDelta)

    # 1. Drop one diff: a pu mismatch, and the book stays invalid (no later snapshot in the stream).
    gapped = records[:dropped_index] + records[dropped_index + 1 :]
    report, book = replay_book(iter_synced([], instrument, records=gapped), instrument, crossed_policy="raise")
    assert report.gaps == 1 and report.resyncs == 1 and not book.is_valid
    gap = next(r for r in iter_synced([], instrument, records=gapped) if isinstance(r, SequenceGap))
    assert gap.reason is GapReason.PU_MISMATCH
    assert gap.last_update_id == before.final_update_id
    assert gap.first_update_id == after.first_update_id and gap.prev_final_update_id == dropped.final_update_id

    # 2. Add a later snapshot (the true book at diff #110, as a REST call would return it),
    #    arriving after two more diffs: resync through the buffer, then identical to the clean replay.
    late_snapshot = states[resume.final_update_id]
    insert_at = after_sync[112]
    healed = gapped[: insert_at - 1] + [late_snapshot] + gapped[insert_at - 1 :]
    synced = list(iter_synced([], instrument, records=healed))
    markers = [r for r in synced if isinstance(r, (SequenceGap, Resynced))]
    assert [type(m).__name__ for m in markers] == ["Resynced", "SequenceGap", "Resynced"]
    resynced = markers[2]
    assert isinstance(resynced, Resynced)
    assert resynced.snapshot_update_id == resume.final_update_id and resynced.gaps_before == 1
    report, book = replay_book(synced, instrument, crossed_policy="raise")
    assert book.is_valid and report.crossed == 0
    assert book.state_hash() == clean_hash


def test_make_sample_is_reproducible(tmp_path: Path) -> None:
    # Re-slicing the sample with the same window keeps everything: same content hashes.
    written = make_sample(sample_dir(), tmp_path / "resliced", SAMPLE_SECONDS)
    assert {f.name: f.content_sha256 for f in written} == CONTENT_SHA256
    shorter = make_sample(sample_dir(), tmp_path / "short", 5)
    assert all(f.lines < 2000 for f in shorter)


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_CAPTURE.is_dir(), reason=f"{SHARED_CAPTURE} absent")
def test_make_sample_rebuilds_bundled_sample_from_upstream(tmp_path: Path) -> None:
    rebuilt = make_sample(SHARED_CAPTURE, tmp_path / "rebuilt", SAMPLE_SECONDS)
    assert {f.name: f.content_sha256 for f in rebuilt} == CONTENT_SHA256
