"""The full data sets from ../shared/data (skipped cleanly when absent).

Every run's output directory is then checked by ``bastion verify`` (re-execution on the reference
engine, the output log, checkpoints, snapshots, every fill's limits, price-time priority and band),
which must exit 0. Durations on the 2-core CI-like machine (shared with other jobs, so noisy):
binance-tick-full ~25 s; the three-week bars runs ~2-4 min each with the verifier, hence ``slow``
(march-2023-batch ~2 min run + ~1.5 min verify + ~1.5 min for its own journal re-execution).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bastion.audit.verify import EXIT_OK, verify_directory
from bastion.sim.replay.runner import ReplayResult, run_replay
from bastion.sim.replay.scenario import resolve_scenario
from tests.replay._helpers import shared_data_or_skip

pytestmark = pytest.mark.shared_data

TICK = "hftbacktest-binance-btc-20240808"
BARS = "btc-1m-binanceus-kraken-2023-03-usdc-depeg"


def _run(name: str, dataset: str, out: Path) -> ReplayResult:
    shared = shared_data_or_skip(dataset)
    started = time.perf_counter()
    result = run_replay(resolve_scenario(name), out, shared_data=shared)
    print(f"\n{name}: {time.perf_counter() - started:.1f} s wall; {result.summary['commands']:,} commands, "
          f"{result.summary['events']:,} events, timing {result.summary['timing']}")
    report = verify_directory(out)
    assert report.status == EXIT_OK, f"bastion verify on {name}: {report.finding}"
    assert (report.commands, report.events, report.fills) == (
        result.summary["commands"], result.summary["events"], result.summary["fills"])
    print(f"{name}: bastion verify OK in {report.elapsed_s:.1f} s ({report.fills:,} fills, {report.band_fills:,} "
          f"inside a band, {report.snapshots} snapshots, {report.checkpoints} checkpoints)")
    return result


def _journal_verified(summary: dict[str, object]) -> bool:
    return summary["journal_replay_state_hash"] == summary["recovered_state_hash"] == summary["state_hash"]


def test_full_tick_window(tmp_path: Path) -> None:
    summary = _run("binance-tick-full", TICK, tmp_path / "full").summary
    assert _journal_verified(summary)
    assert summary["duration_s"] > 340  # the USD-M stream covers ~345 s
    assert summary["taker_flow"]["real_trades_replayed"] > 21_000
    assert summary["taker_flow"]["fill_ratio_ppm"] > 950_000
    assert summary["book"]["checks"] > 300 and summary["book"]["mismatches"] == 0
    assert summary["feed"]["sync"]["usdm_btcusdt"]["gaps"] == 0
    assert summary["index"]["priced_ticks"] >= summary["index"]["ticks"] - 3
    assert summary["max_index_deviation_ppm"] < 2_000  # USD index vs the USDT-quoted perp: basis only
    assert (tmp_path / "full" / "report.html").is_file()


@pytest.mark.slow
def test_march_2023_depeg_does_not_drag_the_index(tmp_path: Path) -> None:
    """Bound as in tests/oracle/test_depeg_real_data.py: the index stays within 0.5 % of Binance.US
    BTC/USD while raw USDC quotes are >= 10 % off it, and USDC quotes are dropped as depegged."""
    summary = _run("march-2023", BARS, tmp_path / "march").summary
    assert _journal_verified(summary)
    index = summary["index"]
    assert index["source_deviation_max_ppm"]["binanceus-usdc"] >= 100_000
    assert summary["max_index_deviation_ppm"] <= 5_000
    assert index["rejected_reports"].get("binanceus-usdc:quote_depegged", 0) > 0
    assert index["priced_ticks"] >= index["ticks"] * 99 // 100
    assert summary["book"]["mismatches"] == 0 and summary["book"]["lp_rejected"] == 0
    assert summary["bars"]["minutes"] == 30_240
    assert summary["traders"]["opens"] > 1_000


@pytest.mark.slow
def test_march_2023_stress_losses_exceed_margins(tmp_path: Path) -> None:
    """x3 moves: losses exceed margins, and the risk engine answers. Many traders are liquidated into
    the book, the loss waterfall runs, funding is paid, and no account is left lingering below
    maintenance at a sample (the engine liquidates within the command).

    The waterfall runs in its order: the ladder moves before each minute's index arrives, so liquidation
    orders meet the post-gap book and accounts go bankrupt; the insurance fund (500 USD, deliberately
    small) takes their positions at the bankruptcy price (``PositionTakenOver``), pays deficits
    (``InsuranceFundUsed``) and unwinds its inventory into the book later (``InsuranceFundUnwound``);
    once its capacity is spent, ADL closes opposite positions at the bankruptcy price, so nothing is
    socialized or left as bad debt.

    Partial liquidation at the fillable price leaves most liquidated traders with some equity, so the
    figure asserted is distinct accounts liquidated, not traders wiped out (a trader whose balance is
    <= 0 when it closes), which a working liquidation engine keeps rare."""
    summary = _run("march-2023-stress", BARS, tmp_path / "stress").summary
    assert _journal_verified(summary)
    risk = summary["risk"]
    other = risk["other_events_by_type"]
    assert summary["accounts_liquidated"] > 50
    assert summary["liquidations"] > 100
    assert other.get("PositionTakenOver", 0) > 50 and other.get("InsuranceFundUnwound", 0) > 0
    assert other.get("InsuranceFundUsed", 0) > 0 and summary["insurance_fund_drawdown_atoms"] > 0
    assert summary["adl_count"] > 10 and summary["adl_lots"] > 0  # the fund's capacity ran out
    assert other.get("SocializedLoss", 0) == 0 and risk["insurance_fund_end_atoms"] >= 0
    assert summary["adl_count"] == other.get("AutoDeleveraged", 0) and (summary["adl_lots"] > 0) == (summary["adl_count"] > 0)
    assert (summary["insurance_fund_used_atoms"] > 0) == (other.get("InsuranceFundUsed", 0) > 0)
    assert summary["bad_debt_atoms"] == 0 and risk["accounts_bankrupt_end"] == 0
    assert risk["funding_events"] > 0 and other.get("FundingRateSet", 0) > 100
    assert risk["accounts_under_maintenance_max"] <= 5
    assert summary["max_index_deviation_ppm"] <= 5_000
    print(f"stress: liquidations {summary['liquidations']}, ADL {summary['adl_count']}, "
          f"accounts liquidated {summary['accounts_liquidated']}, "
          f"fund takeovers {other.get('PositionTakenOver', 0)}, fund unwind fills {other.get('InsuranceFundUnwound', 0)}, "
          f"insurance fund used {other.get('InsuranceFundUsed', 0)} times ({summary['insurance_fund_used_atoms']} atoms), "
          f"fund end {risk['insurance_fund_end_atoms']} atoms, bad debt {summary['bad_debt_atoms']} atoms")


@pytest.mark.slow
def test_march_2023_breakers_engage_and_verify(tmp_path: Path) -> None:
    """The x3 stress path with a 1 % band, a velocity pause and LULD (march-2023-breakers.toml): both
    breakers engage (MarketStateChanged: velocity pauses into a call auction, LULD halts, then the
    scheduled reopening auctions, each uncrossed), the band refuses orders beyond it and holds every fill
    (the verifier's band check passes on all of them, in ``_run``), and the risk engine still liquidates."""
    summary = _run("march-2023-breakers", BARS, tmp_path / "breakers").summary
    assert _journal_verified(summary)
    breakers = summary["breakers"]
    assert breakers["integrity"]["band_ppm"] == 10_000 and breakers["integrity"]["luld_halt_ns"] == 300 * 10**9
    transitions = breakers["transitions"]
    assert transitions.get("ACTIVE->AUCTION:velocity", 0) >= 3
    assert transitions.get("ACTIVE->HALTED:luld_limit_state", 0) >= 2
    assert transitions.get("HALTED->AUCTION:scheduled", 0) == transitions["ACTIVE->HALTED:luld_limit_state"]
    assert transitions.get("AUCTION->ACTIVE:auction_uncrossed", 0) == (
        transitions["ACTIVE->AUCTION:velocity"] + transitions["HALTED->AUCTION:scheduled"])
    assert summary["events_by_type"]["MarketStateChanged"] == breakers["market_state_changes"]
    assert breakers["seconds_by_state"]["HALTED"] >= 300 * transitions["ACTIVE->HALTED:luld_limit_state"] - 1
    assert summary["rejects_by_code"].get("price_ticks_outside_band", 0) > 0
    assert summary["rejects_by_code"].get("market_halted", 0) > 0
    assert summary["liquidations"] > 50 and summary["bad_debt_atoms"] == 0
    print(f"breakers: {transitions}, time by state {breakers['seconds_by_state']}, "
          f"rejects {summary['rejects_by_code']}, liquidations {summary['liquidations']}")


@pytest.mark.slow
def test_march_2023_batch_clears_at_boundaries_and_verifies(tmp_path: Path) -> None:
    """The x3 stress path on a frequent-batch-auction market (march-2023-batch.toml, 1 s batches): the
    replay switches the market once, before any order; from then on every fill is at a clearing price
    with no aggressor, every clearing is made by a command stamped on its boundary, the risk engine still
    liquidates (its orders fill in the batch book) and the waterfall still runs; the journal replays to
    the same state hash and ``bastion verify`` exits 0 (in ``_run``)."""
    from tests.replay.test_batch import _journal_facts

    result = _run("march-2023-batch", BARS, tmp_path / "batch")
    summary = result.summary
    assert _journal_verified(summary)
    matching = summary["matching"]
    assert matching["mode"] == "batch" and matching["interval_ns"] == 10**9
    assert matching["clearings"] >= summary["bars"]["path_minutes"] >= 30_000  # the takers' batch of each minute
    assert summary["events_by_type"]["AuctionCleared"] == matching["clearings"]
    assert summary["fills"] == matching["fills_without_aggressor"] > 100_000
    assert summary["events_by_type"]["MatchingModeSet"] == 1
    facts = _journal_facts(tmp_path / "batch")
    assert facts["state_hash"] == summary["state_hash"]
    assert facts["first_order_seq"] > facts["switch_seq"]  # type: ignore[operator]
    assert facts["aggressor_fills"] == 0 and facts["off_price_fills"] == 0 and facts["off_boundary"] == []
    assert facts["fills"] == summary["fills"] and facts["clearings"] == matching["clearings"]
    assert summary["liquidations"] > 100 and summary["accounts_liquidated"] > 50
    assert summary["book"]["mismatches"] == 0 and summary["book"]["lp_rejected"] == 0
    assert summary["rejects_by_code"].get("market_auction_forbids_order_kind", 0) == 0
    assert summary["bad_debt_atoms"] == 0 and summary["risk"]["accounts_bankrupt_end"] == 0
    print(f"batch: {matching['clearings']:,} clearings, {summary['fills']:,} fills, "
          f"{summary['liquidations']} liquidations ({summary['accounts_liquidated']} accounts), ADL "
          f"{summary['adl_count']}, {matching['boundary_heartbeats']:,} boundary heartbeats, "
          f"timing {summary['timing']}")
