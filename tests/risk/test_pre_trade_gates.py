"""Risk gates through Engine.apply: open-interest caps (304), account in liquidation (305), the
withdrawal gate after negative equity (306), index freshness (308), volatility-scaled margin, and the
configurable mark rule. Every refused command leaves the state hash unchanged.

Default venue (configs/default.toml): BTC-USD-PERP, tick 0.1 (60,000.0 = 600,000 ticks), lot 0.001,
k = 100 atoms per tick-lot; initial 2 % / maintenance 1 % up to 500k notional.
"""

from __future__ import annotations

import tomllib
from importlib import resources

from bastion.audit.layout import venue_config_to_toml
from bastion.core.commands import (
    CreateAccount,
    Deposit,
    DepositInsuranceFund,
    PlaceOrder,
    SetMarkPrice,
    Withdraw,
)
from bastion.core.engine import Engine
from bastion.core.events import CommandRejected, OrderAccepted
from bastion.core.instruments import VenueConfig, venue_config_from_dict
from bastion.core.rejects import RejectCode
from bastion.core.risk_messages import PositionLiquidated, SetOraclePrice, VolMultiplierSet
from tests.conftest import Driver

P = 600_000
LP, LONG, SHORT = 1, 2, 3
SEC = 10**9


def _config(risk: dict) -> VenueConfig:
    raw = tomllib.loads((resources.files("bastion") / "configs" / "default.toml").read_text())
    raw["risk"] = risk
    config = venue_config_from_dict(raw)
    assert venue_config_from_dict(tomllib.loads(venue_config_to_toml(config))).canonical() == config.canonical()
    return config


def _venue(risk: dict, long_atoms: int = 10**11) -> tuple[Engine, Driver]:
    engine = Engine(_config(risk), check_invariants=True)
    drive = Driver(engine)
    for account, atoms in ((LP, 10**13), (LONG, long_atoms), (SHORT, 10**11)):
        drive(CreateAccount(account, account))
        drive(Deposit(account, atoms))
    return engine, drive


def _rejected(engine: Engine, drive: Driver, cmd: object, code: RejectCode, *, same_state: bool = True) -> None:
    before = engine.state_hash()
    events = drive(cmd)
    assert isinstance(events[0], CommandRejected) and events[0].code == code, events
    if same_state:  # (a queued liquidation is retried after every command, whatever the command did)
        assert len(events) == 1 and engine.state_hash() == before


def _accepted(events: list) -> bool:
    return any(isinstance(e, OrderAccepted) for e in events)


def test_open_interest_cap_refuses_the_opening_part_beyond_the_cap() -> None:
    engine, drive = _venue({"open_interest_caps": [{"instrument_id": 1, "oi_lots_max": 1_500}]})
    # A resting order's opening part counts at entry too (it may fill later): 5,000 would not fit.
    _rejected(engine, drive, PlaceOrder(LP, 1, 1, -1, P, 5_000), RejectCode.open_interest_cap_exceeded)
    drive(PlaceOrder(LP, 1, 2, -1, P, 1_000))
    assert _accepted(drive(PlaceOrder(LONG, 1, 1, 1, P, 1_000)))
    assert engine.open_interest_lots[1] == 1_000
    _rejected(engine, drive, PlaceOrder(SHORT, 1, 1, 1, P, 501), RejectCode.open_interest_cap_exceeded)
    drive(PlaceOrder(LP, 1, 3, -1, P, 500))
    assert _accepted(drive(PlaceOrder(SHORT, 1, 2, 1, P, 500)))  # exactly at the cap
    assert engine.open_interest_lots[1] == 1_500
    _rejected(engine, drive, PlaceOrder(LONG, 1, 3, 1, P, 1), RejectCode.open_interest_cap_exceeded)
    # Closing is always allowed: the LP (short 1,500) bids 400 and LONG sells 400 into it.
    assert _accepted(drive(PlaceOrder(LP, 1, 4, 1, P - 10, 400)))
    assert _accepted(drive(PlaceOrder(LONG, 1, 5, -1, P - 10, 400)))
    assert engine.open_interest_lots[1] == 1_100


def test_account_in_liquidation_may_only_reduce() -> None:
    """LONG holds 1 BTC with 1,000 USDC; the mark falls to 59,200.0 (under maintenance) and no bids rest,
    so the liquidation IOC finds nothing and the account stays queued."""
    engine, drive = _venue({}, long_atoms=1_000_000_000)
    drive(PlaceOrder(LP, 1, 1, -1, P, 1000))
    drive(PlaceOrder(LONG, 1, 1, 1, P, 1000))
    events = drive(SetMarkPrice(1, 592_000))
    assert LONG in engine.risk.queue and any(isinstance(e, OrderAccepted) and e.client_order_id == 0 for e in events)
    _rejected(engine, drive, PlaceOrder(LONG, 1, 2, 1, 591_000, 1), RejectCode.account_in_liquidation,
              same_state=False)
    _rejected(engine, drive, PlaceOrder(LONG, 1, 3, -1, 600_100, 100), RejectCode.account_in_liquidation,
              same_state=False)
    assert _accepted(drive(PlaceOrder(LONG, 1, 4, -1, 600_100, 100, reduce_only=True)))


def test_withdrawals_wait_out_the_gate_after_negative_equity() -> None:
    """A crash through the bankruptcy price runs the waterfall (negative equity seen): withdrawals and
    transfers are refused for withdrawal_gate_ns, then allowed again (dYdX v4: 50 blocks)."""
    engine, drive = _venue({"withdrawal_gate_ns": 60 * SEC}, long_atoms=1_000_000_000)
    drive(DepositInsuranceFund(10**10))
    drive(PlaceOrder(LP, 1, 1, -1, P, 1000))
    drive(PlaceOrder(LONG, 1, 1, 1, P, 1000))
    drive(Withdraw(SHORT, 1))  # before: allowed
    crash_at = drive.now_ns + 1_000
    drive(SetMarkPrice(1, 580_000), at_ns=crash_at)
    assert engine.risk.negative_equity_seen_ns == crash_at
    _rejected(engine, drive, Withdraw(SHORT, 1), RejectCode.withdrawal_blocked_negative_equity_seen)
    drive.now_ns = crash_at + 60 * SEC - 1_001
    _rejected(engine, drive, Withdraw(SHORT, 1), RejectCode.withdrawal_blocked_negative_equity_seen)
    events = drive(Withdraw(SHORT, 1), at_ns=crash_at + 60 * SEC)
    assert not any(isinstance(e, CommandRejected) for e in events)


def test_no_fresh_index_refuses_risk_increasing_orders() -> None:
    engine, drive = _venue({"index_max_age_ns": 60 * SEC})
    _rejected(engine, drive, PlaceOrder(LP, 1, 1, -1, P, 1000), RejectCode.index_price_unavailable)
    t = drive.now_ns + 1_000
    drive(SetOraclePrice(1, P, t, False), at_ns=t)
    assert _accepted(drive(PlaceOrder(LP, 1, 2, -1, P, 1000)))
    assert _accepted(drive(PlaceOrder(LONG, 1, 1, 1, P, 500)))
    drive.now_ns = t + 60 * SEC - 1_000
    assert _accepted(drive(PlaceOrder(LONG, 1, 2, 1, P - 100, 1)))  # exactly 60 s old: still fresh
    _rejected(engine, drive, PlaceOrder(LONG, 1, 3, 1, P - 100, 1), RejectCode.index_price_unavailable)
    assert _accepted(drive(PlaceOrder(LONG, 1, 4, -1, P + 100, 100, reduce_only=True)))
    u = drive.now_ns + 1_000
    drive(SetOraclePrice(1, P, u, True), at_ns=u)  # the oracle guard paused liquidations
    _rejected(engine, drive, PlaceOrder(LONG, 1, 5, 1, P - 100, 1), RejectCode.index_price_unavailable)


def test_mark_rule_index_marks_to_the_oracle() -> None:
    engine, drive = _venue({"mark": {"method": "index"}})
    drive(PlaceOrder(LP, 1, 1, -1, 610_000, 10))
    drive(PlaceOrder(LONG, 1, 1, 1, 590_000, 10))
    t = drive.now_ns + 1_000
    drive(SetOraclePrice(1, 601_234, t, False), at_ns=t)
    assert engine.marks[1] == 601_234  # the Binance rule would give the median with the book's basis


VOL = {"vol_margin": [{"instrument_id": 1, "lambda_ppm": 900_000, "baseline_vol_ppm": 1_000,
                       "multiplier_min_ppm": 1_000_000, "multiplier_max_ppm": 3_000_000}],
       "vol_sample_interval_ns": 60 * SEC, "vol_multiplier_step_ppm": 100_000}


def test_volatility_raises_margins_and_can_liquidate_a_quiet_position() -> None:
    """Index swings of ±1 % a minute (sigma ≈ 1 % per sample against a 0.1 % baseline) push the
    multiplier to its 3.0 cap: every fraction triples (60k notional: maintenance 0.5 % - 50 = 250 USDC
    becomes 1.5 % - 150 = 750 USDC). LONG, 1 BTC with 600 USDC (570 after the 30 USDC taker fee; initial
    1 % - 100 = 500 USDC at entry) and no price loss, becomes liquidatable from volatility alone."""
    engine, drive = _venue(VOL, long_atoms=600_000_000)
    base_tiers = engine.specs[1].margin_tiers
    drive(PlaceOrder(LP, 1, 1, -1, P, 1000))
    drive(PlaceOrder(LP, 1, 2, 1, P - 10, 5000))
    assert _accepted(drive(PlaceOrder(LONG, 1, 1, 1, P, 1000)))
    multipliers: list[int] = []
    liquidated = False
    t = drive.now_ns
    for minute in range(1, 30):
        t = (t // (60 * SEC) + 1) * 60 * SEC
        index = P + (6_000 if minute % 2 else -6_000)
        events = drive(SetOraclePrice(1, index, t, False), at_ns=t)
        multipliers += [e.multiplier_ppm for e in events if isinstance(e, VolMultiplierSet)]
        liquidated = liquidated or any(isinstance(e, PositionLiquidated) and e.account_id == LONG for e in events)
        drive(SetOraclePrice(1, P, t + 1, False), at_ns=t + 1)  # the mark returns to 60,000.0
    assert multipliers and multipliers == sorted(multipliers) and multipliers[-1] == 3_000_000
    assert all(m % 100_000 == 0 for m in multipliers)
    scaled = engine.specs[1].margin_tiers[0]
    assert (scaled.imf_ppm, scaled.mmf_ppm) == (3 * base_tiers[0].imf_ppm, 3 * base_tiers[0].mmf_ppm)
    assert engine.config.instruments[1].margin_tiers == base_tiers  # the configured spec is untouched
    assert liquidated
    # Snapshot and restore carry the multiplier (and so the scaled spec) exactly.
    again = Engine.restore(engine.config, engine.snapshot())
    assert again.state_hash() == engine.state_hash()
    assert again.specs[1].margin_tiers == engine.specs[1].margin_tiers


def test_volatility_state_replays_to_the_same_hash() -> None:
    engine, drive = _venue(VOL)
    t = drive.now_ns
    for minute in range(12):
        t = (t // (60 * SEC) + 1) * 60 * SEC
        drive(SetOraclePrice(1, P + (3_000 if minute % 3 else -4_000), t, False), at_ns=t)
    replayed = Engine(engine.config, check_invariants=True)
    for item in drive.log:
        replayed.apply(item)
    assert replayed.state_hash() == engine.state_hash()
    assert replayed.risk.vol_multiplier_ppm == engine.risk.vol_multiplier_ppm != {1: 1_000_000}
