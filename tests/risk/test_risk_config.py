"""The venue config's ``[risk]`` table: validation, round trip through venue.toml, and its effect.

The backstop cases follow the issue's waterfall: when the book cannot absorb a liquidation the insurance
fund takes the position at the bankruptcy price within its capacity, then the backstop liquidator account
(Hyperliquid's liquidator vault; reference/risk-engines.md "Insurance fund" row) does, paying the lots'
deficit share; ADL only for what neither can take.
"""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest

from bastion.audit.layout import venue_config_to_toml
from bastion.core.commands import CreateAccount, Deposit, DepositInsuranceFund, PlaceOrder, SetMarkPrice
from bastion.core.engine import Engine
from bastion.core.instruments import ConfigError, venue_config_from_dict
from bastion.core.risk.funding import PremiumWeighting
from bastion.core.risk.mark import MarkMethod
from bastion.core.risk_engine import RiskConfig
from bastion.core.risk_messages import AutoDeleveraged, InsuranceFundUsed, PositionTakenOver
from tests.conftest import Driver

P = 600_000
BACKSTOP = 9


def _raw(risk: object | None = None) -> dict:
    raw = tomllib.loads((resources.files("bastion") / "configs" / "default.toml").read_text())
    if risk is not None:
        raw["risk"] = risk
    return raw


def test_no_table_and_an_all_default_table_are_the_same_venue() -> None:
    plain = venue_config_from_dict(_raw())
    explicit = venue_config_from_dict(_raw({"liquidation": {"fee_ppm": RiskConfig().liquidation.fee_ppm}}))
    assert plain.risk is None and explicit.risk is None
    assert plain.canonical() == explicit.canonical()


def test_values_are_read_and_round_trip_through_venue_toml() -> None:
    config = venue_config_from_dict(_raw({
        "backstop_account_id": BACKSTOP, "impact_margin_atoms": 500_000_000,
        "liquidation": {"fee_ppm": 7_000, "liquidations_per_command_max": 3},
        "waterfall": {"adl_candidates_max": 20, "fund_margin_ppm": 200_000}, "funding": {"weighting": "linear", "clamp_ppb": 400_000},
        "mark": {"method": "hyperliquid", "index_band_ppm": 50_000},
        "open_interest_caps": [{"instrument_id": 1, "oi_lots_max": 10**6}], "withdrawal_gate_ns": 5 * 10**9,
        "vol_margin": [{"instrument_id": 1, "lambda_ppm": 990_000}], "index_max_age_ns": 30 * 10**9}))
    risk = config.risk
    assert (risk.backstop_account_id, risk.impact_margin_atoms) == (BACKSTOP, 500_000_000)
    assert (risk.liquidation.fee_ppm, risk.liquidation.liquidations_per_command_max) == (7_000, 3)
    assert risk.liquidation.buffer_ppm == RiskConfig().liquidation.buffer_ppm  # untouched key keeps its default
    assert risk.funding.weighting is PremiumWeighting.LINEAR and risk.mark.method is MarkMethod.HYPERLIQUID
    assert risk.open_interest_caps == ((1, 10**6),) and risk.vol_margin[0][1].lambda_ppm == 990_000
    assert (risk.withdrawal_gate_ns, risk.index_max_age_ns) == (5 * 10**9, 30 * 10**9)
    assert risk.waterfall.fund_margin_ppm == 200_000 and risk.waterfall.adl_candidates_max == 20
    again = venue_config_from_dict(tomllib.loads(venue_config_to_toml(config)))
    assert again.canonical() == config.canonical() and again.risk == risk
    other = venue_config_from_dict(_raw({"waterfall": {"fund_margin_ppm": 150_000}}))
    assert Engine(other)._config_hash != Engine(venue_config_from_dict(_raw()))._config_hash
    assert Engine(config).risk_config == risk
    assert Engine(config).state_hash() != Engine(venue_config_from_dict(_raw())).state_hash()


@pytest.mark.parametrize("risk, needle", [
    ([], "risk: expected a table"),
    ({"liquidaton": {}}, "unknown keys ['liquidaton']"),
    ({"liquidation": {"fee_pm": 1}}, "risk.liquidation: unknown keys ['fee_pm']"),
    ({"liquidation": {"fee_ppm": "5000"}}, "risk.liquidation.fee_ppm: expected an integer"),
    ({"liquidation": {"fee_ppm": 1.5}}, "risk.liquidation.fee_ppm: expected an integer"),
    ({"liquidation": {"fee_ppm": True}}, "risk.liquidation.fee_ppm: expected an integer"),
    ({"liquidation": {"fee_ppm": 200_000}}, "risk.liquidation: values out of range"),
    ({"funding": {"settlement_interval_ns": 7 * 10**9}}, "risk.funding: values out of range"),
    ({"funding": {"weighting": "geometric"}}, "risk.funding.weighting: expected one of"),
    ({"mark": {"method": 1}}, "risk.mark.method: expected one of"),
    ({"backstop_account_id": -1}, "risk.backstop_account_id: must be >= 0"),
    ({"liquidation": 5}, "risk.liquidation: expected a table"),
    ({"open_interest_caps": {"instrument_id": 1}}, "risk.open_interest_caps: expected a list of tables"),
    ({"open_interest_caps": [{"instrument_id": 7, "oi_lots_max": 5}]}, "not a configured instrument: 7"),
    ({"open_interest_caps": [{"instrument_id": 1, "oi_lots_max": 0}]}, "a positive integer"),
    ({"open_interest_caps": [{"instrument_id": 1, "oi_lots_max": 5, "x": 1}]}, "expected exactly oi_lots_max"),
    ({"open_interest_caps": [{"instrument_id": 1, "oi_lots_max": 5}, {"instrument_id": 1, "oi_lots_max": 6}]},
     "instrument 1 appears twice"),
    ({"vol_margin": [{"instrument_id": 1, "lambda_ppm": 1_000_000}]}, "risk.vol_margin[1]: values out of range"),
    ({"vol_margin": [{"instrument_id": 1, "lamda_ppm": 900_000}]}, "risk.vol_margin[1]: unknown keys ['lamda_ppm']"),
    ({"vol_multiplier_step_ppm": 0}, "risk: values out of range"),
    ({"index_max_age_ns": "60s"}, "risk.index_max_age_ns: expected an integer"),
])
def test_bad_tables_name_the_key(risk: object, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        venue_config_from_dict(_raw(risk))
    assert needle in str(info.value)


def test_unknown_top_level_table_is_refused() -> None:
    raw = _raw()
    raw["rsik"] = {}
    with pytest.raises(ConfigError, match="unknown top-level tables"):
        venue_config_from_dict(raw)


def _crash(backstop_atoms: int, fund_atoms: int = 0) -> tuple[Engine, list]:
    """LONG (2) buys 1 BTC at 60,000.0 from the LP (1) with 1,000 USDC (970 after the 30 USDC taker fee);
    the mark falls to 58,000.0 with no bids: equity -1,030 USDC, bankruptcy price 59,030.0."""
    config = venue_config_from_dict(_raw({"backstop_account_id": BACKSTOP}))
    engine = Engine(config, check_invariants=True)
    drive = Driver(engine)
    for account, atoms in ((1, 10**13), (2, 1_000_000_000), (BACKSTOP, backstop_atoms)):
        drive(CreateAccount(account, account))
        drive(Deposit(account, atoms))
    if fund_atoms:
        drive(DepositInsuranceFund(fund_atoms))
    drive(PlaceOrder(1, 1, 1, -1, P, 1000))
    drive(PlaceOrder(2, 1, 1, 1, P, 1000))
    return engine, drive(SetMarkPrice(1, 580_000))


def test_an_empty_fund_leaves_the_position_to_the_backstop_at_the_bankruptcy_price() -> None:
    engine, events = _crash(backstop_atoms=10**12)
    takeovers = [e for e in events if isinstance(e, PositionTakenOver)]
    assert takeovers == [PositionTakenOver(1, 2, BACKSTOP, 1000, 580_000, 1_030_000_000, 1, False)]
    assert not [e for e in events if isinstance(e, (AutoDeleveraged, InsuranceFundUsed))]
    assert engine.accounts[BACKSTOP].positions[1].size_lots == 1000
    assert engine.accounts[BACKSTOP].balance_atoms == 10**12 - 1_030_000_000
    assert engine.accounts[1].positions[1].size_lots == -1000  # the LP was not deleveraged
    assert engine.accounts[2].balance_atoms == 0


def test_the_fund_comes_before_the_backstop() -> None:
    engine, events = _crash(backstop_atoms=10**12, fund_atoms=10**10)
    takeovers = [(e.taker_account_id, e.via, e.qty_lots) for e in events if isinstance(e, PositionTakenOver)]
    assert takeovers == [(0, 3, 1000)] and BACKSTOP not in engine.risk.holders[1]
    assert engine.insurance_fund_atoms == 10**10 - 1_030_000_000


def test_a_backstop_without_capacity_leaves_the_rest_to_adl() -> None:
    """10 USDC of backstop equity: after paying 1.03 USDC per lot it must keep 0.4 % * 58 USDC * 1.02
    = 0.2366 USDC per lot: 7 lots (10 - 7.21 = 2.79 >= 1.66; 8 lots: 1.76 < 1.89). ADL closes the
    other 993 against the LP, which pays their deficit share 1,022.79 USDC."""
    engine, events = _crash(backstop_atoms=10_000_000)
    taken = [(e.taker_account_id, e.via, e.qty_lots) for e in events if isinstance(e, PositionTakenOver)]
    closes = [(e.counterparty_account_id, e.via, e.qty_lots) for e in events if isinstance(e, AutoDeleveraged)]
    assert taken == [(BACKSTOP, 1, 7)] and closes == [(1, 2, 993)]
    assert sum(e.charge_atoms for e in events if isinstance(e, AutoDeleveraged)) == 1_022_790_000
    assert engine.accounts[2].balance_atoms == 0


@pytest.mark.parametrize("name", ["default.toml", "replay-btcusdt.toml"])
def test_shipped_configs_band_the_mark(name: str) -> None:
    """Both shipped venues state the manipulation-resistant mark rule (docs/risk-integration.md,
    "Manipulation resistance"): Binance median, 30 one-minute basis samples averaged over the window,
    mark and samples within index +- 3 %. They are the defaults, so the venue (and its config hash)
    is the same as with no table; a venue may still turn the band off with 0."""
    raw = tomllib.loads((resources.files("bastion") / "configs" / name).read_text())
    mark = raw["risk"]["mark"]
    assert mark == {"method": "binance", "basis_samples_max": 30, "basis_sample_interval_ns": 60 * 10**9,
                    "index_band_ppm": 30_000}
    defaults = RiskConfig().mark
    assert (defaults.method, defaults.basis_samples_max, defaults.basis_sample_interval_ns,
            defaults.index_band_ppm) == (MarkMethod.BINANCE, 30, 60 * 10**9, 30_000)
    assert venue_config_from_dict(raw).risk is None
    raw["risk"]["mark"]["index_band_ppm"] = 0
    assert venue_config_from_dict(raw).risk.mark.index_band_ppm == 0
