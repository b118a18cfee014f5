"""The main job on the bundled real sample: end to end, determinism, book mirror, report, feed grid.

The sample is the 60-second slice of the hftbacktest Binance capture bundled with the package, so these
tests run on a fresh clone without ../shared/data (the trader calibration then uses its fallback tables,
which equal the fit of the shared data set: see test_calibration.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.core.engine import Engine
from bastion.core.commands import decode_sequenced
from bastion.config import load_venue_config
from bastion.feeds.binance import BINANCE_USDM_BTCUSDT, capture_files, iter_synced
from bastion.feeds.book import LocalBook
from bastion.feeds.sample import sample_dir
from bastion.journal.file import JournalReader
from bastion.sim.replay.runner import ReplayResult, run_replay
from bastion.sim.replay.scenario import resolve_scenario, venue_config_path

REQUIRED_FIGURES = ("events", "fills", "liquidations", "bad_debt_atoms", "insurance_fund_drawdown_atoms",
                    "adl_count", "max_index_deviation_ppm", "commands", "state_hash", "duration_s")


def _figures(summary: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in summary.items() if k != "timing"}


def test_sample_replays_end_to_end(sample_run: ReplayResult) -> None:
    out = sample_run.out
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(json.dumps(sample_run.summary))
    for name in REQUIRED_FIGURES:
        assert name in summary, name
    assert {"wall_s", "events_per_s", "commands_per_s"} <= set(summary["timing"])
    assert (out / "journal.bin").stat().st_size > 0
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("data:image/png;base64,") >= 9
    assert "until the risk engine" not in html and "not yet available" not in html and "reserved" not in html
    assert "http://" not in html and "https://" not in html  # self-contained
    # The journal reproduces the run: reopened (snapshot) and replayed from seq 1 on a fresh engine.
    assert summary["journal_replay_state_hash"] == summary["recovered_state_hash"] == summary["state_hash"]
    # Real order flow went through: every real trade became an order and they filled.
    flow = summary["taker_flow"]
    assert flow["real_trades_replayed"] > 2_000 and summary["fills"] > 2_000
    assert flow["fill_ratio_ppm"] > 950_000
    assert summary["book"]["checks"] >= 50 and summary["book"]["mismatches"] == 0
    assert summary["book"]["lp_rejected"] == 0
    assert summary["index"]["priced_ticks"] >= 55 and summary["index"]["mark_updates"] > 0
    assert summary["traders"]["opens"] > 0 and summary["traders"].get("open_orders_rejected", 0) == 0
    # 60 s of a calm market at 1x: nobody gets near maintenance, so the risk engine has nothing to do.
    assert summary["liquidations"] == 0 and summary["adl_count"] == 0 and summary["risk"]["accounts_bankrupt_max"] == 0
    assert summary["oracle_reports"]["reports_rejected"] == 0 and summary["oracle_reports"]["reports_accepted"] > 150
    assert summary["breakers"]["market_state_changes"] == 0 and summary["breakers"]["integrity"] == {}
    assert summary["feed"]["records_rejected_off_grid"]["usdm_btcusdt"] == 0


def test_bastion_verify_passes_on_the_replay_output(sample_run: ReplayResult) -> None:
    """Issue 6: ``bastion verify`` on the main job's output exits 0 (re-execution on the reference engine,
    every fill's limits and price-time priority, the output log, checkpoints, snapshot), by the API and by
    the command line."""
    from typer.testing import CliRunner

    from bastion.audit.verify import EXIT_OK, verify_directory
    from bastion.cli import app

    report = verify_directory(sample_run.out)
    assert report.status == EXIT_OK, report.finding
    assert report.commands == sample_run.summary["commands"] and report.events == sample_run.summary["events"]
    assert report.fills == sample_run.summary["fills"] and report.snapshots >= 1 and report.checkpoints >= 1
    result = CliRunner().invoke(app, ["verify", str(sample_run.out)])
    assert result.exit_code == 0 and result.stdout.startswith("OK"), result.output


def test_same_scenario_and_seed_give_the_same_figures(sample_run: ReplayResult, tmp_path: Path) -> None:
    again = run_replay(resolve_scenario(None), tmp_path / "again", write_report=False)
    assert again.summary["state_hash"] == sample_run.summary["state_hash"]
    assert _figures(again.summary) == _figures(sample_run.summary)


def test_another_seed_changes_the_trader_flow_only(sample_run: ReplayResult, tmp_path: Path) -> None:
    other = run_replay(resolve_scenario(None), tmp_path / "other", seed=7, write_report=False, check_risk=True)
    assert other.summary["state_hash"] != sample_run.summary["state_hash"]
    replayed = other.summary["taker_flow"]["real_trades_replayed"]
    assert replayed == sample_run.summary["taker_flow"]["real_trades_replayed"]
    assert other.summary["book"]["mismatches"] == 0


def _real_depths(update_ids: set[int], levels: int) -> dict[int, tuple[list[tuple[int, int]], list[tuple[int, int]]]]:
    """The real book's top levels at each update id, rebuilt independently with bastion.feeds."""
    instrument, paths = capture_files(sample_dir())["usdm_btcusdt"]
    assert instrument == BINANCE_USDM_BTCUSDT
    book = LocalBook(instrument.venue, instrument.symbol, crossed_policy="raise")
    depths = {}
    for record in iter_synced(paths, instrument):
        if type(record).__name__ in ("BookSnapshot", "BookDelta", "SequenceGap", "Resynced"):
            book.apply(record)  # type: ignore[arg-type]
            if book.is_valid and book.update_id in update_ids:
                depths[book.update_id] = book.depth(levels)
    return depths


def test_engine_book_equals_real_book_at_sampled_points(sample_run: ReplayResult) -> None:
    """At every sampled point (right after a depth update was mirrored), the engine's top 20 levels per
    side, rebuilt by replaying the journal on a fresh engine, equal the real book's top 20 levels rebuilt
    from the capture by the feeds package alone."""
    scenario = resolve_scenario(None)
    levels = scenario.book.levels
    samples = sample_run.book_samples
    assert len(samples) >= 50
    real = _real_depths({s.update_id for s in samples if s.update_id is not None}, levels)
    config = load_venue_config(venue_config_path(scenario))
    engine = Engine(config)
    pending = sorted(samples, key=lambda s: s.seq)
    compared = 0
    with JournalReader(sample_run.out / "journal.bin") as reader:
        for record in reader.records():
            engine.apply(decode_sequenced(record.payload))
            while pending and pending[0].seq == engine.seq:
                sample = pending.pop(0)
                assert sample.update_id is not None
                depth = engine.books[scenario.scenario.instrument_id].depth(levels)
                assert depth == sample.engine == real[sample.update_id], f"book differs at seq {engine.seq}"
                assert len(depth[0]) == len(depth[1]) == levels
                compared += 1
    assert not pending and compared == len(samples)


def test_off_grid_quotes_are_rejected_by_the_feed(tmp_path: Path) -> None:
    """A venue whose tick is 1 USD cannot take the capture's 0.1 prices: the feed drops those records
    (never rounds them); the book never becomes valid, so nothing is mirrored."""
    config = venue_config_path(resolve_scenario(None)).read_text()
    (tmp_path / "coarse.toml").write_text(config.replace('tick_size = "0.1"', 'tick_size = "1"'))
    text = (Path(resolve_scenario(None).origin)).read_text()
    text = text.replace('venue_config = "replay-btcusdt.toml"', 'venue_config = "coarse.toml"')
    text = text.replace("duration_s = 0", "duration_s = 10")
    (tmp_path / "coarse-scenario.toml").write_text(text)
    result = run_replay(resolve_scenario(str(tmp_path / "coarse-scenario.toml")), tmp_path / "out",
                        write_report=False, check_invariants=True)
    feed = result.summary["feed"]
    assert feed["records_rejected_off_grid"]["usdm_btcusdt"] > 100
    assert feed["records_rejected_off_grid"]["spot_btcusdt"] == 0  # other venues keep their own grids
    assert not feed["perp_book_valid_at_end"]
    assert result.summary["book"]["lp_commands"] == {}
    # Every price that did reach the engine is a whole number of 1-USD ticks by construction: the
    # accepted trades were on the coarse grid already.
    assert result.summary["journal_replay_state_hash"] == result.summary["state_hash"]


@pytest.mark.parametrize("text, message", [
    ("[scenario]\nname='x'\nkind='tick'\nseed=1\nvenue_config='replay-btcusdt.toml'\nbogus=1\n", "bogus"),
    ("[scenario]\nname='x'\nkind='fast'\nseed=1\nvenue_config='replay-btcusdt.toml'\n", "kind"),
])
def test_bad_scenarios_are_refused(tmp_path: Path, text: str, message: str) -> None:
    from bastion.sim.replay.scenario import ScenarioError, load_scenario

    path = tmp_path / "bad.toml"
    path.write_text(text + "[data]\nsource='bundled'\npath='x'\n[book]\n[oracle]\nsources=[]\nreference_source='a'\n")
    with pytest.raises(ScenarioError, match=message):
        load_scenario(path)


def test_matching_mode_and_breakers_are_checked(tmp_path: Path) -> None:
    """``[matching] mode`` accepts "continuous" and "batch" only (batch tables: tests/replay/test_batch.py);
    ``[breakers]`` refuses unknown keys, and values the venue config refuses (LULD without a band) name
    the field."""
    from bastion.sim.replay.scenario import ScenarioError, load_scenario, scenario_venue_config

    text = Path(resolve_scenario(None).origin).read_text()
    bad = {"mode": text.replace('mode = "continuous"', 'mode = "auction"', 1),
           "limit_ppm": text.replace("[breakers]", "[breakers]\nlimit_ppm = 1", 1)}
    for what, body in bad.items():
        path = tmp_path / f"{what}.toml"
        path.write_text(body)
        with pytest.raises(ScenarioError, match=what):
            load_scenario(path)
    path = tmp_path / "luld.toml"
    path.write_text(text.replace("[breakers]", "[breakers]\nluld_halt_s = 60", 1))
    with pytest.raises(ScenarioError, match="luld_halt_ns: LULD needs a price band"):
        scenario_venue_config(load_scenario(path))


def test_breakers_become_the_instruments_integrity_table(tmp_path: Path) -> None:
    """[breakers] (seconds) -> [instrument.integrity] (ns) of the replayed instrument, stored in the venue
    directory's venue.toml; a venue config that has its own table as well is refused."""
    from bastion.core.instruments import IntegrityConfig
    from bastion.sim.replay.scenario import ScenarioError, load_scenario, scenario_venue_config

    scenario = resolve_scenario("march-2023-breakers")
    integrity = scenario_venue_config(scenario).instruments[1].integrity
    assert integrity == IntegrityConfig(band_ppm=10_000, velocity_threshold_ticks=3_000,
                                        velocity_lookback_ns=60 * 10**9, velocity_pause_ns=30 * 10**9,
                                        luld_halt_ns=300 * 10**9, luld_limit_state_ns=15 * 10**9,
                                        luld_auction_ns=10 * 10**9, luld_reference_update_ppm=10_000)
    assert scenario_venue_config(resolve_scenario(None)).instruments[1].integrity == IntegrityConfig()
    config = venue_config_path(resolve_scenario(None)).read_text()
    (tmp_path / "venue.toml").write_text(config + "\n[instrument.integrity]\nband_ppm = 500\n")
    text = Path(resolve_scenario(None).origin).read_text().replace('venue_config = "replay-btcusdt.toml"',
                                                                    'venue_config = "venue.toml"')
    (tmp_path / "own.toml").write_text(text)
    assert scenario_venue_config(load_scenario(tmp_path / "own.toml")).instruments[1].integrity.band_ppm == 500
    (tmp_path / "both.toml").write_text(text.replace("[breakers]", "[breakers]\nband_ppm = 100", 1))
    with pytest.raises(ScenarioError, match="already has an"):
        scenario_venue_config(load_scenario(tmp_path / "both.toml"))


def test_bundled_scenarios_load() -> None:
    from bastion.sim.replay.scenario import bundled_scenarios

    names = bundled_scenarios()
    assert {"binance-tick-sample", "binance-tick-full", "march-2023", "march-2023-stress",
            "march-2023-breakers", "march-2023-batch"} <= set(names)
    for name in names:
        scenario = resolve_scenario(name)
        assert scenario.name == name
        assert scenario.matching.batch == (name == "march-2023-batch"), name
    assert resolve_scenario(None).name == "binance-tick-sample"
