"""Venue config validation (core/instruments.py): one case per rule, each asserting that the ConfigError
names the offending field. The base is the bundled default venue, changed in exactly one place.

Rules follow the module docstring: whole atoms per tick-lot (tick_size * lot_size * multiplier *
10**atom_decimals is an integer >= 1), margin tiers increasing in notional and never lowering a rate,
IMF >= MMF per tier, a maker rebate no larger than the taker fee, and every integer inside its range.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from typing import Any

import pytest

from bastion.config import default_config_path, load_venue_config
from bastion.core.instruments import NOTIONAL_ATOMS_MAX, ConfigError, venue_config_from_dict, venue_config_from_toml

BASE: dict[str, Any] = tomllib.loads(default_config_path().read_text(encoding="utf-8"))


def _inst(**changes: Any) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        raw["instrument"][0].update(changes)
    return change


def _tier(index: int, **changes: Any) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        raw["instrument"][0]["margin_tiers"][index].update(changes)
    return change


def _set(table: str, **changes: Any) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        raw.setdefault(table, {}).update(changes)
    return change


def _raw(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    change(raw)
    return raw


RULES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    # grid: whole atoms per tick-lot (BTC: 0.1 * 0.001 * 1 * 1e6 = 100 atoms)
    ("tick_lot_not_whole_atoms", _inst(tick_size="0.1", lot_size="0.0000001"), "tick_size * lot_size * contract_multiplier"),
    ("multiplier_not_whole_atoms", _inst(contract_multiplier="0.0001"), "contract_multiplier"),
    ("tick_size_not_positive", _inst(tick_size="0"), "instrument[0].tick_size"),
    ("tick_size_not_decimal", _inst(tick_size="1e-1"), "instrument[0].tick_size"),
    ("lot_size_not_a_string", _inst(lot_size=0.001), "instrument[0].lot_size"),
    ("reference_price_off_grid", _inst(reference_price="60000.05"), "instrument[0].reference_price"),
    ("reference_price_above_max", _inst(reference_price="60000", price_ticks_max=100), "instrument[0].reference_price"),
    # margin tiers
    ("tiers_missing", _inst(margin_tiers=[]), "instrument[0].margin_tiers"),
    ("tier_not_a_table", _inst(margin_tiers=[1]), "instrument[0].margin_tiers[0]"),
    ("tier_notional_not_increasing", _tier(1, notional_max="50000"), "margin_tiers[1].notional_max"),
    ("tier_imf_lowered", _tier(1, imf_ppm=7000, mmf_ppm=5000), "margin_tiers[1].imf_ppm"),
    ("tier_mmf_lowered", _tier(1, mmf_ppm=3000), "margin_tiers[1].mmf_ppm"),
    ("tier_mmf_above_imf", _tier(0, mmf_ppm=9000), "margin_tiers[0].mmf_ppm"),
    ("tier_imf_zero", _tier(0, imf_ppm=0), "margin_tiers[0].imf_ppm"),
    ("tier_imf_above_one", _tier(0, imf_ppm=1_000_001), "margin_tiers[0].imf_ppm"),
    ("tier_mmf_zero", _tier(0, mmf_ppm=0), "margin_tiers[0].mmf_ppm"),
    ("tier_notional_off_atom_grid", _tier(0, notional_max="50000.0000001"), "margin_tiers[0].notional_max"),
    ("tier_notional_too_large", _tier(8, notional_max=str(NOTIONAL_ATOMS_MAX // 10**6 + 1)), "margin_tiers[8].notional_max"),
    # fees
    ("maker_rebate_above_taker_fee", _inst(maker_fee_ppm=-600, taker_fee_ppm=500), "maker_fee_ppm"),
    ("maker_fee_out_of_range", _inst(maker_fee_ppm=100_001), "instrument[0].maker_fee_ppm"),
    ("taker_fee_negative", _inst(taker_fee_ppm=-1), "instrument[0].taker_fee_ppm"),
    ("taker_fee_above_ten_percent", _inst(taker_fee_ppm=100_001), "instrument[0].taker_fee_ppm"),
    # ranges and types of the instrument's integers
    ("instrument_id_zero", _inst(instrument_id=0), "instrument[0].instrument_id"),
    ("instrument_id_huge", _inst(instrument_id=2**31), "instrument[0].instrument_id"),
    ("instrument_id_not_int", _inst(instrument_id="1"), "instrument[0].instrument_id"),
    ("price_ticks_max_zero", _inst(price_ticks_max=0), "instrument[0].price_ticks_max"),
    ("price_ticks_max_huge", _inst(price_ticks_max=10**15 + 1), "instrument[0].price_ticks_max"),
    ("min_order_lots_zero", _inst(min_order_lots=0), "instrument[0].min_order_lots"),
    ("max_order_lots_below_min", _inst(min_order_lots=10, max_order_lots=9), "instrument[0].max_order_lots"),
    ("max_order_lots_huge", _inst(max_order_lots=10**15 + 1), "instrument[0].max_order_lots"),
    ("market_protection_zero", _inst(market_protection_ppm=0), "instrument[0].market_protection_ppm"),
    ("market_protection_above_half", _inst(market_protection_ppm=500_001), "instrument[0].market_protection_ppm"),
    ("bool_is_not_an_int", _inst(min_order_lots=True), "instrument[0].min_order_lots"),
    ("symbol_empty", _inst(symbol=""), "instrument[0].symbol"),
    ("kind_not_perpetual", _inst(kind="option"), "instrument[0].kind"),
    # the instrument list
    ("duplicate_instrument_id", lambda raw: raw["instrument"][1].update(instrument_id=1), "instrument[1]: duplicate instrument_id"),
    ("duplicate_symbol", lambda raw: raw["instrument"][1].update(symbol="BTC-USD-PERP"), "instrument[1].symbol"),
    ("no_instruments", lambda raw: raw.update(instrument=[]), "instrument"),
    # venue and limits
    ("atom_decimals_negative", _set("venue", atom_decimals=-1), "venue.atom_decimals"),
    ("atom_decimals_above_18", _set("venue", atom_decimals=19), "venue.atom_decimals"),
    ("venue_name_not_string", _set("venue", name=5), "venue.name"),
    ("settlement_asset_not_string", _set("venue", settlement_asset=["USDC"]), "venue.settlement_asset"),
    ("guardian_ids_not_positive", _set("venue", guardian_ids=[0]), "venue.guardian_ids"),
    ("guardian_ids_duplicate", _set("venue", guardian_ids=[3, 3]), "venue.guardian_ids"),
    ("limit_zero", _set("limits", orders_open_max=0), "limits.orders_open_max"),
    ("limit_huge", _set("limits", amount_atoms_max=10**18 + 1), "limits.amount_atoms_max"),
    ("limit_unknown_key", _set("limits", orders_max=5), "limits: unknown keys ['orders_max']"),
    ("unknown_top_level_table", lambda raw: raw.update(extra={}), "unknown top-level tables ['extra']"),
    # market integrity table (issue 4)
    ("integrity_unknown_key", _inst(integrity={"band": 1}), "instrument[0].integrity: unknown keys"),
    ("integrity_luld_without_band", _inst(integrity={"luld_halt_ns": 10**9}), "instrument[0].integrity.luld_halt_ns"),
    ("integrity_band_mode_choice", _inst(integrity={"band_ppm": 1000, "band_mode": "sideways"}), "instrument[0].integrity.band_mode"),
]


@pytest.mark.parametrize(("rule", "change", "field"), RULES, ids=[r[0] for r in RULES])
def test_each_rule_rejects_and_names_the_field(rule: str, change: Callable[[dict[str, Any]], None], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        venue_config_from_dict(_raw(change))
    assert field in str(info.value), f"{rule}: {info.value}"


def test_the_base_is_valid_and_its_atoms_per_tick_lot_are_exact() -> None:
    """The cases above fail for their one change only: the unchanged base loads (BTC: 100 atoms per
    tick-lot, ETH: 0.01 * 0.001 * 1e6 = 10)."""
    config = venue_config_from_dict(copy.deepcopy(BASE))
    assert [config.instruments[i].atoms_per_tick_lot for i in (1, 2)] == [100, 10]


def test_the_default_tiers_carry_continuity_deductions() -> None:
    """Binance-style cumulative deduction: tier 2 (IMF 1 %) at its lower bound 50,000 USDC charges what
    tier 1 (0.8 %) charges there: deduction = 5e10 atoms * (10,000 - 8,000) ppm."""
    tiers = venue_config_from_dict(copy.deepcopy(BASE)).instruments[1].margin_tiers
    assert tiers[1].im_deduction_atom_ppm == 50_000 * 10**6 * 2_000
    assert tiers[1].mm_deduction_atom_ppm == 50_000 * 10**6 * 1_000


def test_toml_bytes_and_file_loading(tmp_path) -> None:
    """The core parses bytes; the shell (bastion.config) reads files and names the path in its errors."""
    data = default_config_path().read_bytes()
    assert venue_config_from_toml(data).canonical() == load_venue_config(default_config_path()).canonical()
    with pytest.raises(ConfigError, match="not valid UTF-8 TOML"):
        venue_config_from_toml(b"[venue\n")
    with pytest.raises(ConfigError, match="not valid UTF-8 TOML"):
        venue_config_from_toml(b"\xff\xfe")
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match="missing.toml"):
        load_venue_config(missing)
    bad = tmp_path / "bad.toml"
    bad.write_bytes(data.replace(b'tick_size = "0.1"', b'tick_size = "0"', 1))
    with pytest.raises(ConfigError, match=r"bad\.toml: instrument\[0\]\.tick_size"):
        load_venue_config(bad)
