"""Replays on a frequent-batch-auction market (``[matching] mode = "batch"``), without ../shared/data.

Two runs: the bundled Binance tick sample with 1 s batches, and a synthetic six-hour bars path with a
26 % crash (written here as Binance.US-style CSV files) on which the seeded traders' leveraged longs
are liquidated through the batch book. Each is checked against its own journal, re-executed on a fresh
engine: the replay switched the market once (halt, ``SetMatchingMode``, reactivate) before any order,
every clearing happened on its boundary (the ``AuctionCleared`` of a boundary is produced by a command
stamped exactly there: the shell's heartbeat), every fill is at that command's clearing price with no
aggressor (``taker_side`` 0), and ``bastion verify`` exits 0 on the output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.audit.verify import EXIT_OK, verify_directory
from bastion.config import load_venue_config
from bastion.core.commands import Heartbeat, SetMarketState, SetMatchingMode, decode_sequenced
from bastion.core.engine import Engine
from bastion.core.events import AuctionCleared, MatchingModeSet, OrderAccepted, TradeExecuted
from bastion.journal.file import JournalReader
from bastion.sim.replay.runner import ReplayResult, run_replay
from bastion.sim.replay.scenario import REPLAY_GUARDIAN_ID, ScenarioError, load_scenario, resolve_scenario

TAU_NS = 10**9


def _batch_sample(tmp_path: Path) -> Path:
    text = Path(resolve_scenario(None).origin).read_text()
    assert 'mode = "continuous"' in text
    text = text.replace('mode = "continuous"', 'mode = "batch"\ninterval_ms = 1_000', 1)
    text = text.replace('name = "binance-tick-sample"', 'name = "binance-tick-sample-batch"', 1)
    path = tmp_path / "tick-batch.toml"
    path.write_text(text)
    return path


def _journal_facts(out: Path) -> dict[str, object]:
    """Re-execute ``out``'s journal on a fresh engine (the venue.toml of the run) and collect, per command,
    what the batch rules say must hold."""
    config = load_venue_config(out / "venue.toml")
    engine = Engine(config)
    facts: dict[str, object] = {"switch_seq": None, "first_order_seq": None, "clearings": 0, "fills": 0,
                                "off_boundary": [], "aggressor_fills": 0, "off_price_fills": 0,
                                "heartbeat_clearings": 0, "guardian_commands": []}
    origin = None
    with JournalReader(out / "journal.bin") as reader:
        for record in reader.records():
            item = decode_sequenced(record.payload)
            events = engine.apply(item)
            command = item.command
            if isinstance(command, (SetMarketState, SetMatchingMode)):
                facts["guardian_commands"].append((type(command).__name__, command.guardian_id))  # type: ignore[union-attr]
            price = None
            for event in events:
                if isinstance(event, MatchingModeSet):
                    facts["switch_seq"], origin = item.seq, item.timestamp_ns
                elif isinstance(event, OrderAccepted) and facts["first_order_seq"] is None:
                    facts["first_order_seq"] = item.seq
                elif isinstance(event, AuctionCleared):
                    facts["clearings"] = int(facts["clearings"]) + 1  # type: ignore[call-overload]
                    price = event.price_ticks
                    assert origin is not None
                    if event.at_ns != item.timestamp_ns or (event.at_ns - origin) % TAU_NS:
                        facts["off_boundary"].append((item.seq, event.at_ns, item.timestamp_ns))  # type: ignore[union-attr]
                    facts["heartbeat_clearings"] = int(facts["heartbeat_clearings"]) + isinstance(command, Heartbeat)  # type: ignore[call-overload]
                elif isinstance(event, TradeExecuted):
                    facts["fills"] = int(facts["fills"]) + 1  # type: ignore[call-overload]
                    facts["aggressor_fills"] = int(facts["aggressor_fills"]) + (event.taker_side != 0)  # type: ignore[call-overload]
                    facts["off_price_fills"] = int(facts["off_price_fills"]) + (event.price_ticks != price)  # type: ignore[call-overload]
    facts["state_hash"] = engine.state_hash().hex()
    return facts


def _assert_batch_run(result: ReplayResult) -> dict[str, object]:
    summary = result.summary
    facts = _journal_facts(result.out)
    assert facts["state_hash"] == summary["state_hash"] == summary["journal_replay_state_hash"]
    # One switch, as the replay's guardian (added to the run's venue config), before any order.
    assert facts["guardian_commands"] == [("SetMarketState", REPLAY_GUARDIAN_ID),
                                          ("SetMatchingMode", REPLAY_GUARDIAN_ID),
                                          ("SetMarketState", REPLAY_GUARDIAN_ID)]
    assert facts["switch_seq"] is not None and facts["first_order_seq"] > facts["switch_seq"]  # type: ignore[operator]
    # Clearings on time, fills only at the clearing price.
    assert facts["clearings"] == summary["matching"]["clearings"] == summary["events_by_type"]["AuctionCleared"]
    assert facts["off_boundary"] == []
    assert facts["heartbeat_clearings"] > 0
    assert facts["fills"] == summary["fills"] == summary["matching"]["fills_without_aggressor"] > 0
    assert facts["aggressor_fills"] == 0 and facts["off_price_fills"] == 0
    # The LPs quote plain limit orders (post-only would be refused in a batch: 503) and the ladder is in
    # the batch book as placed.
    assert summary["book"]["lp_rejected"] == 0 and summary["book"]["mismatches"] == 0
    assert summary["book"]["checks"] > 0
    assert summary["rejects_by_code"].get("market_auction_forbids_order_kind", 0) == 0
    assert summary["matching"]["mode"] == "batch" and summary["matching"]["interval_ns"] == TAU_NS
    assert summary["matching"]["seconds_by_mode"] == {"BATCH": pytest.approx(summary["duration_s"], abs=1e-3)}
    assert summary["traders"]["opens"] > 0 and summary["traders"].get("open_orders_rejected", 0) == 0
    report = verify_directory(result.out)
    assert report.status == EXIT_OK, report.finding
    assert report.fills == summary["fills"] and report.commands == summary["commands"]
    return facts


def test_the_tick_sample_replays_in_batch_mode(tmp_path: Path) -> None:
    """The bundled real sample, 1 s batches, engine invariants after every command: real trades clear at
    boundaries against the mirrored book, and the same scenario gives the same state hash again."""
    path = _batch_sample(tmp_path)
    result = run_replay(load_scenario(path), tmp_path / "out", check_invariants=True)
    _assert_batch_run(result)
    summary = result.summary
    assert summary["matching"]["clearings"] >= 40  # ~one a second with trades in it (59 s of capture)
    assert summary["taker_flow"]["real_trades_replayed"] > 2_000 and summary["taker_flow"]["lots_filled"] > 0
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["matching"] == summary["matching"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "matching mode: BATCH τ = 1 s from 0 s" in html and "Mark and last price, batch clearing prices" in html
    again = run_replay(load_scenario(path), tmp_path / "again", write_report=False)
    assert again.summary["state_hash"] == summary["state_hash"]


def _write_bars(directory: Path) -> None:
    """Six hours of Binance.US-style 1-minute bars from 2023-03-01 00:00 UTC: BTC/USD at 23,000 for an
    hour, down 26 % to 17,000 over the next hour, flat, then back up to 24,000; BTC/USDT 0.05 % above."""
    directory.mkdir(parents=True)
    closes = []
    for minute in range(360):
        if minute < 60:
            price = 23_000.0
        elif minute < 120:
            price = 23_000.0 - 6_000.0 * (minute - 60) / 60
        elif minute < 200:
            price = 17_000.0
        else:
            price = 17_000.0 + 7_000.0 * min(minute - 200, 100) / 100
        closes.append(round(price, 2))
    for symbol, factor in (("BTCUSD", 1.0), ("BTCUSDT", 1.0005)):
        rows = ["open_time,open,high,low,close,volume"]
        for minute, close in enumerate(closes):
            stamp = f"2023-03-01 {minute // 60:02d}:{minute % 60:02d}:00+00:00"
            price = f"{close * factor:.2f}"
            rows.append(f"{stamp},{price},{price},{price},{price},4.5")
        (directory / f"binance_{symbol}_1m_20230301_20230301.csv").write_text("\n".join(rows) + "\n")


_BARS_SCENARIO = """
[scenario]
name = "synthetic-crash-batch"
kind = "bars"
seed = 11
venue_config = "replay-btcusdt.toml"

[data]
source = "shared"
path = "bars"
start = "2023-03-01T00:00:00Z"
end = "2023-03-01T06:00:00Z"

[book]
levels = 10
path_source = "usd"
level_step_ppm = 100
level_qty_lots = [500, 1000, 2000]
takers_per_bar = 4

[oracle]
price_exponent = -2
quorum_min = 2
reference_source = "usd"
sources = [
  { id = "usd", bar_source = "binanceus", bar_symbol = "BTCUSD", quote = "USD", staleness_s = 300 },
  { id = "usdt", bar_source = "binanceus", bar_symbol = "BTCUSDT", quote = "USDT", staleness_s = 300 },
]
quotes = [{ quote = "USDT" }]
guard = { history_max = 16, staleness_max_s = 300 }

[traders]
count = 80
leverage_max_milli = 50_000
first_open_s = [0, 1_800]
hold_s = [7_200, 14_400]
idle_s = [600, 1_200]
retry_s = 60

[insurance]
fund_usd = 1_000_000

[matching]
mode = "batch"
interval_ms = 1_000

[run]
commit_every = 512
book_check_interval_s = 600
"""


def test_a_crash_liquidates_through_the_batch_book(tmp_path: Path) -> None:
    """Synthetic bars, 1 s batches: the crash takes leveraged longs below maintenance; the risk engine's
    liquidation orders wait in the batch book and fill at clearing prices (PositionLiquidated, with
    taker_side 0 fills), the run verifies, and the report shows the mode and the clearings."""
    _write_bars(tmp_path / "data" / "bars")
    path = tmp_path / "crash.toml"
    path.write_text(_BARS_SCENARIO)
    result = run_replay(load_scenario(path), tmp_path / "out", shared_data=tmp_path / "data")
    _assert_batch_run(result)
    summary = result.summary
    assert summary["liquidations"] > 0 and summary["accounts_liquidated"] > 0
    assert summary["bars"]["path_minutes"] >= 355
    # One clearing per minute at least: the takers' batch of each minute.
    assert summary["matching"]["clearings"] >= summary["bars"]["path_minutes"]
    low, high = summary["matching"]["clearing_price_min_ticks"], summary["matching"]["clearing_price_max_ticks"]
    assert 169_000 <= low <= 171_000 and 239_000 <= high <= 241_000  # the path's 17,000 .. 24,000 (0.1 ticks)


@pytest.mark.parametrize("matching, message", [
    ('mode = "batch"', "matching.interval_ms must be in 1..3600000"),
    ('mode = "batch"\ninterval_ms = 3_600_001', "matching.interval_ms must be in"),
    ('mode = "continuous"\ninterval_ms = 100', "applies to mode"),
    ('mode = "sealed"', "mode"),
])
def test_bad_matching_tables_are_refused(tmp_path: Path, matching: str, message: str) -> None:
    text = Path(resolve_scenario(None).origin).read_text().replace('mode = "continuous"', matching, 1)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message):
        load_scenario(path)


def test_batch_scenarios_get_a_guardian_and_continuous_ones_keep_their_config(tmp_path: Path) -> None:
    """A batch scenario on a venue config without guardians adds REPLAY_GUARDIAN_ID (or its
    matching.guardian_id); one whose config has guardians uses them and refuses a guardian_id not among
    them; a continuous scenario's venue config is the file as it is (no guardian: same config hash)."""
    from bastion.sim.replay.scenario import scenario_venue_config, venue_config_path

    assert scenario_venue_config(resolve_scenario(None)).guardian_ids == ()
    batch = load_scenario(_batch_sample(tmp_path))
    assert scenario_venue_config(batch).guardian_ids == (REPLAY_GUARDIAN_ID,)
    batch_text = Path(batch.origin).read_text()
    (tmp_path / "own.toml").write_text(batch_text.replace("interval_ms = 1_000", "interval_ms = 1_000\nguardian_id = 42"))
    assert scenario_venue_config(load_scenario(tmp_path / "own.toml")).guardian_ids == (42,)
    venue = venue_config_path(batch).read_text().replace("[venue]", "[venue]\nguardian_ids = [5, 6]", 1)
    (tmp_path / "guarded.toml").write_text(venue)
    text = batch_text.replace('venue_config = "replay-btcusdt.toml"', 'venue_config = "guarded.toml"')
    (tmp_path / "g.toml").write_text(text)
    assert scenario_venue_config(load_scenario(tmp_path / "g.toml")).guardian_ids == (5, 6)
    (tmp_path / "g42.toml").write_text(text.replace("interval_ms = 1_000", "interval_ms = 1_000\nguardian_id = 42"))
    with pytest.raises(ScenarioError, match="guardian_id 42 is not in"):
        scenario_venue_config(load_scenario(tmp_path / "g42.toml"))
