"""Price bands: exact rounding and inclusive edges, protection prices, and no fill outside the band when
the band rules are composed with the real engine (admission check, protection price, sweep on move)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from bastion.core.commands import CancelOrder, CreateAccount, Deposit, PlaceOrder, Sequenced, SetMarkPrice
from bastion.core.engine import Engine
from bastion.core.events import OrderAccepted, OrderCanceled, TradeExecuted
from bastion.core.instruments import VenueConfig
from bastion.core.integrity.bands import (
    Band,
    BandMode,
    BandSpec,
    band_around,
    band_width_ticks,
    check_limit_price,
    clamp_taker_limit,
    fill_within_band,
    protection_price,
    resting_violates,
)
from bastion.core.integrity.codes import IntegrityRejectCode

OUT = IntegrityRejectCode.price_ticks_outside_band


def test_width_rounds_down() -> None:
    assert band_width_ticks(60_000, 50_000) == 3_000  # exact
    assert band_width_ticks(12_345, 10_000) == 123  # 123.45 -> 123
    assert band_width_ticks(99, 10_000) == 0  # 0.99 -> 0: the band collapses onto the reference
    band = band_around(12_345, 10_000, price_ticks_max=1_000_000)
    assert (band.low_ticks, band.high_ticks) == (12_222, 12_468)
    assert band_around(10, 1_000_000, price_ticks_max=15) == Band(10, 1, 15)  # clamped to the grid


def test_edges_are_inclusive_exactly_at_the_threshold() -> None:
    band = band_around(12_345, 10_000, price_ticks_max=1_000_000)
    assert check_limit_price(band, 1, 12_467) is None
    assert check_limit_price(band, 1, 12_468) is None  # == high: inside
    assert check_limit_price(band, 1, 12_469) == OUT  # high + 1
    assert check_limit_price(band, -1, 12_223) is None
    assert check_limit_price(band, -1, 12_222) is None  # == low: inside
    assert check_limit_price(band, -1, 12_221) == OUT  # low - 1


def test_aggressive_side_vs_both_sides() -> None:
    band = band_around(1_000, 100_000, price_ticks_max=10_000)  # [900, 1100]
    assert check_limit_price(band, 1, 500) is None  # passive bid far below: fine (CME)
    assert check_limit_price(band, -1, 5_000) is None
    assert check_limit_price(band, 1, 500, BandMode.BOTH_SIDES) == OUT
    assert check_limit_price(band, -1, 5_000, BandMode.BOTH_SIDES) == OUT
    assert check_limit_price(band, 1, 1_100, BandMode.BOTH_SIDES) is None
    assert resting_violates(band, 1, 1_101) and not resting_violates(band, 1, 1_100)
    assert resting_violates(band, -1, 899) and not resting_violates(band, -1, 900)
    assert clamp_taker_limit(band, 1, 2_000) == 1_100 and clamp_taker_limit(band, -1, 1) == 900
    assert fill_within_band(band, 900) and fill_within_band(band, 1_100) and not fill_within_band(band, 1_101)


def test_protection_price_matches_engine_rounding_and_stays_in_band() -> None:
    band = band_around(600_000, 100_000, price_ticks_max=100_000_000)  # [540000, 660000]
    # Engine rule today: buy floor(best*(PPM+ppm)/PPM), sell ceil(best*(PPM-ppm)/PPM).
    best = 600_007
    assert protection_price(band, 1, best, 50_000) == best * 1_050_000 // 1_000_000 == 630_007
    assert protection_price(band, -1, best, 50_000) == -((-best * 950_000) // 1_000_000) == 570_007
    assert protection_price(band, 1, 650_000, 50_000) == 660_000  # clamped to high
    assert protection_price(band, -1, 560_000, 50_000) == 540_000  # clamped to low


def test_spec_validates() -> None:
    assert BandSpec(band_ppm=50_000, protection_ppm=20_000).mode == BandMode.AGGRESSIVE_SIDE
    with pytest.raises(AssertionError):
        BandSpec(band_ppm=0, protection_ppm=1)


# ---------------------------------------------------------------- composition with the real engine

def _run_banded_session(config: VenueConfig, seed: int, commands: int = 1_500,
                        sweep: bool = True) -> tuple[int, int, int]:
    """Drive the real engine through the band rules as the integration will (docs/integrity-integration.md):
    admission check, market orders at the protection price, sweep of violating resting orders when the
    reference moves. Returns (trades, rejected_by_band, fills_outside_band)."""
    rng = random.Random(seed)
    engine = Engine(config, check_invariants=False)
    iid, band_ppm, protection_ppm = 2, 20_000, 10_000
    seq = [0]
    now = [1_000_000_000]

    def send(cmd: Any) -> list[Any]:
        seq[0] += 1
        now[0] += 1_000
        return list(engine.apply(Sequenced(seq[0], now[0], cmd)))

    for account in (1, 2, 3, 4):
        send(CreateAccount(account, account))
        send(Deposit(account, 10**13))
    reference = 300_000
    band = band_around(reference, band_ppm, 100_000_000)
    live: dict[int, list[int]] = {}  # order_id -> [account, side, price, qty]
    trades = rejected = outside = 0
    for i in range(commands):
        roll = rng.random()
        if roll < 0.05:
            reference = max(1_000, reference + rng.randint(-9_000, 9_000))
            send(SetMarkPrice(iid, reference))
            band = band_around(reference, band_ppm, 100_000_000)
            for oid, (account, side, price, _) in sorted(live.items()):
                if sweep and resting_violates(band, side, price):
                    send(CancelOrder(account, oid))
            events: list[Any] = []
        elif roll < 0.15:
            side = rng.choice((1, -1))
            bids = [p for _, s, p, _ in live.values() if s > 0]
            asks = [p for _, s, p, _ in live.values() if s < 0]
            opposite = (min(asks) if asks else None) if side > 0 else (max(bids) if bids else None)
            price = protection_price(band, side, opposite or reference, protection_ppm)
            events = send(PlaceOrder(rng.randint(1, 4), iid, 10_000 + i, side, price, rng.randint(1, 5),
                                     time_in_force=1))
        else:
            side = rng.choice((1, -1))
            price = reference + rng.randint(-8_000, 8_000)
            if check_limit_price(band, side, price) is not None:
                rejected += 1
                continue
            events = send(PlaceOrder(rng.randint(1, 4), iid, 10_000 + i, side, price, rng.randint(1, 5)))
        for ev in events:
            if type(ev) is OrderAccepted:
                live[ev.order_id] = [ev.account_id, ev.side, ev.price_ticks, ev.qty_lots]
            elif type(ev) is OrderCanceled:
                live.pop(ev.order_id, None)
            elif type(ev) is TradeExecuted:
                trades += 1
                outside += not fill_within_band(band, ev.price_ticks)
                for oid in (ev.maker_order_id, ev.taker_order_id):
                    live[oid][3] -= ev.qty_lots
                    if live[oid][3] == 0:
                        del live[oid]
    return trades, rejected, outside


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_fill_outside_the_band(config: VenueConfig, seed: int) -> None:
    trades, rejected, outside = _run_banded_session(config, seed)
    assert outside == 0, f"fills outside the band, seed {seed}"
    assert trades > 50 and rejected > 50, (seed, trades, rejected)


def test_without_the_sweep_stale_orders_fill_outside_the_band(config: VenueConfig) -> None:
    """Negative control: the admission check alone is not enough once the reference moves."""
    assert sum(_run_banded_session(config, seed, sweep=False)[2] for seed in (1, 2, 3)) > 0
