"""The ``[risk]`` table of a venue config: risk-engine parameters, validated at load.

Shape (every key optional; an absent key keeps the default of the dataclass that owns it, and the
defaults come from the anchors in shared/reference/risk-engines.md)::

    [risk]
    backstop_account_id = 7          # account that takes bankrupt positions before ADL (0 = none)
    impact_margin_atoms = 200000000  # Binance impact margin notional (200 USDT at 6 decimals)

    [risk.liquidation]               # bastion.core.risk.liquidation.LiquidationConfig
    buffer_ppm = 20000
    fee_ppm = 5000
    ...
    [risk.waterfall]                 # bastion.core.risk.waterfall.WaterfallConfig
    [risk.funding]                   # bastion.core.risk.funding.FundingConfig; weighting = "arithmetic" | "linear"
    [risk.mark]                      # bastion.core.risk.mark.MarkConfig; method = "binance" | "hyperliquid" | "index"
    index_band_ppm = 30000           # mark (and each basis sample) within index +- 3 % (0 = off)
    basis_samples_max = 30           # price2 = index + sum of the kept samples / 30
    basis_sample_interval_ns = 60000000000   # one basis sample a minute

    # per market (instrument ids must exist):
    open_interest_caps = [{ instrument_id = 1, oi_lots_max = 5000000 }]
    [[risk.vol_margin]]              # bastion.core.risk.vol_margin.VolMarginConfig + instrument_id
    instrument_id = 1
    lambda_ppm = 999000
    baseline_vol_ppm = 1000
    multiplier_max_ppm = 3000000
    # (top level) vol_sample_interval_ns, vol_multiplier_step_ppm, index_max_age_ns, withdrawal_gate_ns

All values are integers in the unit their name carries (ppm, ppb, atoms, ns, a count) except the two
enumerations, given by name. Unknown keys, wrong types and values the owning dataclass refuses are
:class:`~bastion.core.instruments.ConfigError` naming the key: a typo must not silently run a venue on
defaults. :func:`risk_config_to_toml` writes the table back (only what differs from the defaults), so a
venue directory's ``venue.toml`` reproduces the engine's configuration exactly.
"""

from __future__ import annotations

import dataclasses
from enum import IntEnum
from typing import Any

from bastion.core.instruments import ConfigError
from bastion.core.risk.funding import FundingConfig, PremiumWeighting
from bastion.core.risk.liquidation import LiquidationConfig
from bastion.core.risk.mark import MarkConfig, MarkMethod
from bastion.core.risk.vol_margin import VolMarginConfig
from bastion.core.risk.waterfall import WaterfallConfig
from bastion.core.risk_engine import RiskConfig

__all__ = ["risk_config_from_dict", "risk_config_to_toml"]

_SECTIONS: dict[str, type[Any]] = {
    "liquidation": LiquidationConfig,
    "waterfall": WaterfallConfig,
    "funding": FundingConfig,
    "mark": MarkConfig,
}
_ENUMS: dict[str, type[IntEnum]] = {"weighting": PremiumWeighting, "method": MarkMethod}
_TOP_LEVEL = ("backstop_account_id", "impact_margin_atoms", "vol_sample_interval_ns", "vol_multiplier_step_ppm",
              "index_max_age_ns", "withdrawal_gate_ns")
_PER_MARKET = ("open_interest_caps", "vol_margin")
_INT_MAX = 2**63 - 1


def _value(section: str, name: str, raw: Any, default: Any) -> Any:
    where = f"risk.{section}.{name}" if section else f"risk.{name}"
    enum = _ENUMS.get(name)
    if enum is not None:
        if not isinstance(raw, str) or raw.upper() not in enum.__members__:
            choices = ", ".join(repr(m.lower()) for m in enum.__members__)
            raise ConfigError(f"{where}: expected one of {choices}, got {raw!r}")
        return enum[raw.upper()]
    if type(raw) is not int or type(default) is not int:
        raise ConfigError(f"{where}: expected an integer, got {raw!r}")
    if not -_INT_MAX <= raw <= _INT_MAX:
        raise ConfigError(f"{where}: {raw} is outside the 64-bit range")
    return raw


def _section(name: str, raw: Any, cls: type[Any] | None = None) -> Any:
    cls = cls or _SECTIONS[name]
    if not isinstance(raw, dict):
        raise ConfigError(f"risk.{name}: expected a table")
    defaults = cls()
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ConfigError(f"risk.{name}: unknown keys {unknown} (known: {sorted(fields)})")
    values = {k: _value(name, k, v, getattr(defaults, k)) for k, v in raw.items()}
    try:
        return cls(**values)
    except (AssertionError, ValueError) as exc:
        raise ConfigError(f"risk.{name}: values out of range or inconsistent: {values} ({exc})") from None


def _market_ids(name: str, entries: Any, instrument_ids: Any) -> list[tuple[int, dict[str, Any]]]:
    if not isinstance(entries, list):
        raise ConfigError(f"risk.{name}: expected a list of tables")
    out: list[tuple[int, dict[str, Any]]] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"risk.{name}[{i}]: expected a table")
        iid = entry.get("instrument_id")
        if type(iid) is not int or (instrument_ids is not None and iid not in instrument_ids):
            raise ConfigError(f"risk.{name}[{i}].instrument_id: not a configured instrument: {iid!r}")
        if any(iid == seen for seen, _ in out):
            raise ConfigError(f"risk.{name}[{i}]: instrument {iid} appears twice")
        out.append((iid, {k: v for k, v in entry.items() if k != "instrument_id"}))
    return out


def risk_config_from_dict(raw: Any, instrument_ids: Any = None) -> RiskConfig:
    """Validate a parsed ``[risk]`` table (``instrument_ids``: the venue's, to check per-market entries).

    Raises:
        ConfigError: not a table, unknown key or section, wrong type, or a value the owning
            dataclass refuses (the message names the key).
    """
    if not isinstance(raw, dict):
        raise ConfigError("risk: expected a table")
    unknown = sorted(set(raw) - set(_SECTIONS) - set(_TOP_LEVEL) - set(_PER_MARKET))
    if unknown:
        raise ConfigError(f"risk: unknown keys {unknown}")
    defaults = RiskConfig()
    kwargs: dict[str, Any] = {name: _section(name, raw[name]) for name in _SECTIONS if name in raw}
    for name in _TOP_LEVEL:
        if name in raw:
            value = _value("", name, raw[name], getattr(defaults, name))
            if value < 0:
                raise ConfigError(f"risk.{name}: must be >= 0, got {value}")
            kwargs[name] = value
    if "open_interest_caps" in raw:
        caps: list[tuple[int, int]] = []
        for iid, rest in _market_ids("open_interest_caps", raw["open_interest_caps"], instrument_ids):
            cap = rest.pop("oi_lots_max", None)
            if rest or type(cap) is not int or not 0 < cap <= _INT_MAX:
                raise ConfigError(f"risk.open_interest_caps: instrument {iid}: expected exactly oi_lots_max, "
                                  f"a positive integer (lots); got {dict(rest, oi_lots_max=cap)}")
            caps.append((iid, cap))
        kwargs["open_interest_caps"] = tuple(caps)
    if "vol_margin" in raw:
        kwargs["vol_margin"] = tuple((iid, _section(f"vol_margin[{iid}]", rest, VolMarginConfig))
                                     for iid, rest in _market_ids("vol_margin", raw["vol_margin"], instrument_ids))
    try:
        return RiskConfig(**kwargs)
    except (AssertionError, ValueError) as exc:
        raise ConfigError(f"risk: values out of range or inconsistent ({exc})") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, IntEnum):
        return f'"{value.name.lower()}"'
    return str(value)


def risk_config_to_toml(config: RiskConfig) -> list[str]:
    """TOML lines of the ``[risk]`` table (what differs from the defaults; empty when nothing does)."""
    defaults = RiskConfig()
    if config == defaults:
        return []
    lines = ["", "[risk]"]
    lines += [f"{name} = {getattr(config, name)}" for name in _TOP_LEVEL
              if getattr(config, name) != getattr(defaults, name)]
    if config.open_interest_caps:
        caps = ", ".join(f"{{ instrument_id = {iid}, oi_lots_max = {cap} }}" for iid, cap in config.open_interest_caps)
        lines.append(f"open_interest_caps = [{caps}]")
    for name in _SECTIONS:
        section, base = getattr(config, name), getattr(defaults, name)
        changed = [f.name for f in dataclasses.fields(section) if getattr(section, f.name) != getattr(base, f.name)]
        if changed:
            lines += ["", f"[risk.{name}]"] + [f"{k} = {_toml_value(getattr(section, k))}" for k in changed]
    for iid, vol in config.vol_margin:
        lines += ["", "[[risk.vol_margin]]", f"instrument_id = {iid}"]
        lines += [f"{f.name} = {getattr(vol, f.name)}" for f in dataclasses.fields(vol)]
    return lines
