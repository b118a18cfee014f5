"""Instrument specifications and the venue configuration (TOML), validated at load.

Pure: configs are parsed from a mapping (:func:`venue_config_from_dict`) or TOML bytes
(:func:`venue_config_from_toml`); reading the file is the shell's job (:mod:`bastion.config`).

A venue config file looks like::

    [venue]
    name = "bastion-dev"
    settlement_asset = "USDC"
    atom_decimals = 6              # 1 atom = 1e-6 USDC

    [limits]
    orders_open_max = 200          # resting orders per account
    levels_walked_max = 64         # price levels one taker may walk
    fills_per_command_max = 256    # maker fills one command may produce

    [[instrument]]
    instrument_id = 1
    symbol = "BTC-USD-PERP"
    kind = "perpetual"
    tick_size = "0.1"              # quote currency per tick
    lot_size = "0.001"             # base units per lot
    contract_multiplier = "1"
    reference_price = "60000"      # initial mark price until the oracle sets one
    min_order_lots = 1
    max_order_lots = 1000000
    price_ticks_max = 100000000
    market_protection_ppm = 50000  # market orders become limits at best +/- 5 %
    maker_fee_ppm = -100           # negative = rebate
    taker_fee_ppm = 500
    margin_tiers = [               # notional_max in settlement units; ppm fractions
      { notional_max = "1000000", imf_ppm = 20000, mmf_ppm = 10000 },
      { notional_max = "5000000", imf_ppm = 50000, mmf_ppm = 25000 },
    ]

Margin tiers follow the Binance USD-M "notional bracket" scheme: a position's whole notional is charged
the rate of the bracket it falls in, minus a cumulative deduction ("maintenance amount") that makes the
requirement continuous across bracket boundaries (Binance, "Leverage and Margin of USDⓈ-M Futures";
see shared/reference/risk-engines.md §2.5). Deductions are kept in atom*ppm so they are exact.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum
from typing import Any

from bastion.core.units import PPM, GridError, ceil_div, decimal_to_grid, exact_product, parse_decimal

__all__ = [
    "ConfigError",
    "InstrumentKind",
    "IntegrityConfig",
    "InstrumentSpec",
    "MarginTier",
    "VenueConfig",
    "NOTIONAL_ATOMS_MAX",
    "VenueLimits",
    "venue_config_from_dict",
    "venue_config_from_toml",
]


class ConfigError(ValueError):
    """The venue configuration is malformed or inconsistent; the message names the field."""


class InstrumentKind(IntEnum):
    """What kind of contract an instrument is. Only perpetuals trade today; the rest are reserved."""

    PERPETUAL = 1
    DATED_FUTURE = 2
    OPTION = 3


@dataclass(frozen=True, slots=True)
class MarginTier:
    """One notional bracket.

    Attributes:
        notional_max_atoms: upper bound (inclusive) of position notional in this bracket, atoms.
        imf_ppm: initial-margin fraction, ppm of notional.
        mmf_ppm: maintenance-margin fraction, ppm of notional (``<= imf_ppm``).
        im_deduction_atom_ppm: cumulative deduction for continuity, in atoms*ppm.
        mm_deduction_atom_ppm: same, for maintenance.
    """

    notional_max_atoms: int
    imf_ppm: int
    mmf_ppm: int
    im_deduction_atom_ppm: int
    mm_deduction_atom_ppm: int


@dataclass(frozen=True, slots=True)
class IntegrityConfig:
    """Market-integrity parameters of one instrument (``[instrument.integrity]``; issue 4).

    Everything is off by default: the table may be absent, and then the instrument behaves exactly as
    before (market states, guardian commands and call auctions still work; they need no parameters).

    Attributes:
        band_ppm: half-width of the static price band, ppm of the reference; 0 = no band.
        band_mode: 0 aggressive side only (CME), 1 both sides (``bands.BandMode``).
        band_reference: 0 mark price, 1 last trade / clearing price (``bands.ReferenceSource``).
        band_sweep_orders_max: resting orders canceled per command when the band moves past them.
        velocity_threshold_ticks: move that pauses the market; 0 = no velocity logic.
        velocity_lookback_ns, velocity_pause_ns, velocity_samples_max: see ``velocity.VelocitySpec``.
        luld_halt_ns: LULD trading pause length; 0 = no LULD (needs a band).
        luld_limit_state_ns, luld_auction_ns, luld_reference_update_ppm: see ``luld.LuldSpec``.
        auction_allocation: 0 time, 1 pro-rata rationing at the margin (``auction.Allocation``).
        auction_fee_ppm: fee both legs of an auction/batch fill pay (>= 0); None = the taker fee.
        auction_orders_max: orders one auction/batch book may hold.
        bond_atoms_min, commitments_per_round_max: sealed-bid commit-reveal limits.
    """

    band_ppm: int = 0
    band_mode: int = 0
    band_reference: int = 0
    band_sweep_orders_max: int = 64
    velocity_threshold_ticks: int = 0
    velocity_lookback_ns: int = 0
    velocity_pause_ns: int = 0
    velocity_samples_max: int = 1024
    luld_halt_ns: int = 0
    luld_limit_state_ns: int = 15_000_000_000
    luld_auction_ns: int = 10_000_000_000
    luld_reference_update_ppm: int = 10_000
    auction_allocation: int = 0
    auction_fee_ppm: int | None = None
    auction_orders_max: int = 10_000
    bond_atoms_min: int = 1
    commitments_per_round_max: int = 10_000

    def canonical(self) -> list[Any]:
        """Plain data for the config hash (field order fixed)."""
        return [getattr(self, f) for f in self.__slots__]


_INTEGRITY_DEFAULT = IntegrityConfig()


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """A tradable contract; all numbers integers on the instrument's grid.

    ``atoms_per_tick_lot`` is the settlement-asset value, in atoms, of one lot at a price of one tick
    (tick_size * lot_size * contract_multiplier * 10**atom_decimals); it must be a positive integer, so
    notional_atoms = price_ticks * qty_lots * atoms_per_tick_lot is exact.
    """

    instrument_id: int
    symbol: str
    kind: InstrumentKind
    tick_size: Decimal
    lot_size: Decimal
    contract_multiplier: Decimal
    atoms_per_tick_lot: int
    reference_price_ticks: int
    min_order_lots: int
    max_order_lots: int
    price_ticks_max: int
    market_protection_ppm: int
    maker_fee_ppm: int
    taker_fee_ppm: int
    margin_tiers: tuple[MarginTier, ...]
    integrity: IntegrityConfig = _INTEGRITY_DEFAULT

    @property
    def auction_fee_ppm(self) -> int:
        """Fee both legs of an auction or batch fill pay (never a rebate: no incentive to self-match)."""
        fee = self.integrity.auction_fee_ppm
        return self.taker_fee_ppm if fee is None else fee

    def notional_atoms(self, price_ticks: int, qty_lots: int) -> int:
        """Notional value in atoms of ``qty_lots`` at ``price_ticks`` (both non-negative)."""
        return price_ticks * qty_lots * self.atoms_per_tick_lot

    def tier_for(self, notional_atoms: int) -> MarginTier | None:
        """The bracket holding ``notional_atoms``, or None above the last bracket."""
        for tier in self.margin_tiers:
            if notional_atoms <= tier.notional_max_atoms:
                return tier
        return None

    def initial_margin_atoms(self, notional_atoms: int) -> int:
        """Initial margin for a position of ``notional_atoms`` (rounded up, in the venue's favour).

        Raises:
            ValueError: notional above the last bracket (callers reject such orders first).
        """
        tier = self.tier_for(notional_atoms)
        if tier is None:
            raise ValueError("notional above the last margin tier")
        return ceil_div(notional_atoms * tier.imf_ppm - tier.im_deduction_atom_ppm, PPM)

    def maintenance_margin_atoms(self, notional_atoms: int) -> int:
        """Maintenance margin for a position of ``notional_atoms`` (rounded up).

        Source: Binance USD-M, maintenance margin = notional * mmr - maintenance amount.
        """
        tier = self.tier_for(notional_atoms)
        if tier is None:
            tier = self.margin_tiers[-1]
        return ceil_div(notional_atoms * tier.mmf_ppm - tier.mm_deduction_atom_ppm, PPM)

    @property
    def notional_max_atoms(self) -> int:
        """Largest position notional any bracket admits."""
        return self.margin_tiers[-1].notional_max_atoms

    def fee_atoms(self, notional_atoms: int, fee_ppm: int) -> int:
        """Fee on a fill: positive fees round up, rebates (negative) round toward zero.

        Both roundings favour the venue, so the fee pool never pays out more than it takes.
        """
        if fee_ppm >= 0:
            return ceil_div(notional_atoms * fee_ppm, PPM)
        return -((notional_atoms * -fee_ppm) // PPM)


@dataclass(frozen=True, slots=True)
class VenueLimits:
    """Named bounds on per-command work (TigerBeetle style: every loop has a limit)."""

    orders_open_max: int = 200
    levels_walked_max: int = 64
    fills_per_command_max: int = 256
    client_order_ids_remembered_max: int = 4096
    expiries_per_command_max: int = 64
    accounts_max: int = 10_000_000
    """Client accounts (the insurance fund's position account 0 does not count)."""
    amount_atoms_max: int = 10**18
    triggers_per_command_max: int = 64
    """Untriggered orders one command may fire; the rest fire on the next commands (core/triggers.py)."""


_LIMITS_DEFAULT = VenueLimits()
_LIMITS_ADDED = ("triggers_per_command_max",)


@dataclass(frozen=True, slots=True)
class VenueConfig:
    """The whole venue: settlement asset, limits, instruments by id."""

    name: str
    settlement_asset: str
    atom_decimals: int
    limits: VenueLimits
    instruments: dict[int, InstrumentSpec]
    guardian_ids: tuple[int, ...] = ()
    risk: Any = None
    """The ``[risk]`` table as a :class:`bastion.core.risk_engine.RiskConfig` (None: the defaults)."""

    def canonical(self) -> list[Any]:
        """A plain-data form used in state snapshots and the state hash.

        Market-integrity settings (guardian ids, ``[instrument.integrity]``) are appended only when
        present, so the hash of a configuration without them is what it was before issue 4.
        """
        out = self._canonical_base()
        for f in _LIMITS_ADDED:  # limits added later: in the hash only when set away from the default
            if getattr(self.limits, f) != getattr(_LIMITS_DEFAULT, f):
                out.append(["limit", f, getattr(self.limits, f)])
        if self.guardian_ids:
            out.append(["guardian_ids", list(self.guardian_ids)])
        for s in sorted(self.instruments.values(), key=lambda s: s.instrument_id):
            if s.integrity != _INTEGRITY_DEFAULT:
                out.append(["integrity", s.instrument_id, s.integrity.canonical()])
        if self.risk is not None:
            out.append(["risk", self.risk.canonical()])
        return out

    def _canonical_base(self) -> list[Any]:
        return [
            self.name,
            self.settlement_asset,
            self.atom_decimals,
            [getattr(self.limits, f) for f in self.limits.__slots__ if f not in _LIMITS_ADDED],
            [
                [
                    s.instrument_id, s.symbol, int(s.kind), str(s.tick_size), str(s.lot_size),
                    str(s.contract_multiplier), s.atoms_per_tick_lot, s.reference_price_ticks,
                    s.min_order_lots, s.max_order_lots, s.price_ticks_max, s.market_protection_ppm,
                    s.maker_fee_ppm, s.taker_fee_ppm,
                    [[t.notional_max_atoms, t.imf_ppm, t.mmf_ppm] for t in s.margin_tiers],
                ]
                for s in sorted(self.instruments.values(), key=lambda s: s.instrument_id)
            ],
        ]


NOTIONAL_ATOMS_MAX = 2**62
"""Largest margin-tier notional (atoms): positions, balances and totals then stay far inside int64."""

def _int_field(table: dict[str, Any], key: str, where: str, *, lo: int, hi: int, default: int | None = None) -> int:
    value = table.get(key, default)
    if type(value) is not int:
        raise ConfigError(f"{where}.{key}: expected an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{where}.{key}: {value} outside [{lo}, {hi}]")
    return value


def _dec_field(table: dict[str, Any], key: str, where: str, default: str | None = None) -> Decimal:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: expected a decimal string, got {value!r}")
    try:
        dec = parse_decimal(value)
    except GridError as exc:
        raise ConfigError(f"{where}.{key}: {exc}") from exc
    if dec <= 0:
        raise ConfigError(f"{where}.{key}: must be positive")
    return dec


def _margin_tiers(raw: Any, where: str, atom_decimals: int) -> tuple[MarginTier, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}.margin_tiers: need a non-empty list")
    tiers: list[MarginTier] = []
    prev_cap, prev_imf, prev_mmf, im_ded, mm_ded = 0, 0, 0, 0, 0
    atom = Decimal(1).scaleb(-atom_decimals)
    for i, entry in enumerate(raw):
        at = f"{where}.margin_tiers[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{at}: expected a table")
        try:
            cap = decimal_to_grid(_dec_field(entry, "notional_max", at), atom)
        except GridError as exc:
            raise ConfigError(f"{at}.notional_max: {exc}") from exc
        if cap > NOTIONAL_ATOMS_MAX:
            raise ConfigError(f"{at}.notional_max: {cap} atoms above {NOTIONAL_ATOMS_MAX} (int64 headroom)")
        imf = _int_field(entry, "imf_ppm", at, lo=1, hi=PPM)
        mmf = _int_field(entry, "mmf_ppm", at, lo=1, hi=PPM)
        if mmf > imf:
            raise ConfigError(f"{at}.mmf_ppm: {mmf} exceeds imf_ppm {imf} (maintenance above initial margin)")
        if cap <= prev_cap:
            raise ConfigError(f"{at}.notional_max: tiers must increase in notional_max "
                              f"({cap} atoms <= previous {prev_cap})")
        if imf < prev_imf:
            raise ConfigError(f"{at}.imf_ppm: {imf} lowers the previous tier's rate {prev_imf}")
        if mmf < prev_mmf:
            raise ConfigError(f"{at}.mmf_ppm: {mmf} lowers the previous tier's rate {prev_mmf}")
        # Continuity at the lower boundary prev_cap: cum_k = cum_{k-1} + prev_cap * (rate_k - rate_{k-1}).
        im_ded += prev_cap * (imf - prev_imf)
        mm_ded += prev_cap * (mmf - prev_mmf)
        tiers.append(MarginTier(cap, imf, mmf, im_ded, mm_ded))
        prev_cap, prev_imf, prev_mmf = cap, imf, mmf
    return tuple(tiers)


_BAND_MODES = {"aggressive_side": 0, "both_sides": 1}
_BAND_REFERENCES = {"mark": 0, "last_trade": 1}
_ALLOCATIONS = {"time": 0, "pro_rata": 1}
_NS_MAX = 10**15  # about 11.5 days
_INTEGRITY_KEYS = frozenset(IntegrityConfig.__slots__)


def _choice(table: dict[str, Any], key: str, where: str, choices: dict[str, int], default: str) -> int:
    value = table.get(key, default)
    if value not in choices:
        raise ConfigError(f"{where}.{key}: expected one of {sorted(choices)}, got {value!r}")
    return choices[value]


def _integrity(raw: Any, where: str, taker_fee_ppm: int) -> IntegrityConfig:
    """Validate an optional ``[instrument.integrity]`` table (absent => everything off)."""
    if raw is None:
        return _INTEGRITY_DEFAULT
    where = f"{where}.integrity"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    extra = set(raw) - _INTEGRITY_KEYS
    if extra:
        raise ConfigError(f"{where}: unknown keys {sorted(extra)}")
    d = _INTEGRITY_DEFAULT
    band_ppm = _int_field(raw, "band_ppm", where, lo=0, hi=PPM, default=0)
    velocity = _int_field(raw, "velocity_threshold_ticks", where, lo=0, hi=10**15, default=0)
    lo_ns = 1 if velocity else 0
    luld_halt = _int_field(raw, "luld_halt_ns", where, lo=0, hi=_NS_MAX, default=0)
    if luld_halt and not band_ppm:
        raise ConfigError(f"{where}.luld_halt_ns: LULD needs a price band (band_ppm > 0)")
    fee = raw.get("auction_fee_ppm")
    if fee is not None:
        fee = _int_field(raw, "auction_fee_ppm", where, lo=0, hi=PPM // 10)
    return IntegrityConfig(
        band_ppm=band_ppm,
        band_mode=_choice(raw, "band_mode", where, _BAND_MODES, "aggressive_side"),
        band_reference=_choice(raw, "band_reference", where, _BAND_REFERENCES, "mark"),
        band_sweep_orders_max=_int_field(raw, "band_sweep_orders_max", where, lo=1, hi=10**6,
                                         default=d.band_sweep_orders_max),
        velocity_threshold_ticks=velocity,
        velocity_lookback_ns=_int_field(raw, "velocity_lookback_ns", where, lo=lo_ns, hi=_NS_MAX, default=0),
        velocity_pause_ns=_int_field(raw, "velocity_pause_ns", where, lo=lo_ns, hi=_NS_MAX, default=0),
        velocity_samples_max=_int_field(raw, "velocity_samples_max", where, lo=2, hi=10**6,
                                        default=d.velocity_samples_max),
        luld_halt_ns=luld_halt,
        luld_limit_state_ns=_int_field(raw, "luld_limit_state_ns", where, lo=0, hi=_NS_MAX,
                                       default=d.luld_limit_state_ns),
        luld_auction_ns=_int_field(raw, "luld_auction_ns", where, lo=1, hi=_NS_MAX, default=d.luld_auction_ns),
        luld_reference_update_ppm=_int_field(raw, "luld_reference_update_ppm", where, lo=0, hi=PPM,
                                             default=d.luld_reference_update_ppm),
        auction_allocation=_choice(raw, "auction_allocation", where, _ALLOCATIONS, "time"),
        auction_fee_ppm=fee,
        auction_orders_max=_int_field(raw, "auction_orders_max", where, lo=1, hi=200_000,
                                      default=d.auction_orders_max),
        bond_atoms_min=_int_field(raw, "bond_atoms_min", where, lo=1, hi=10**18, default=d.bond_atoms_min),
        commitments_per_round_max=_int_field(raw, "commitments_per_round_max", where, lo=1, hi=10**6,
                                             default=d.commitments_per_round_max),
    )


def _instrument(raw: dict[str, Any], index: int, atom_decimals: int) -> InstrumentSpec:
    where = f"instrument[{index}]"
    iid = _int_field(raw, "instrument_id", where, lo=1, hi=2**31 - 1)
    symbol = raw.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise ConfigError(f"{where}.symbol: expected a non-empty string")
    kind_name = raw.get("kind", "perpetual")
    if kind_name != "perpetual":
        raise ConfigError(f"{where}.kind: only 'perpetual' trades in this version, got {kind_name!r}")
    tick, lot = _dec_field(raw, "tick_size", where), _dec_field(raw, "lot_size", where)
    mult = _dec_field(raw, "contract_multiplier", where, "1")
    try:
        per = exact_product(tick, lot, mult, Decimal(1).scaleb(atom_decimals))
    except GridError as exc:
        raise ConfigError(f"{where}: tick_size * lot_size * contract_multiplier: {exc}") from exc
    if per != per.to_integral_value() or per < 1:
        raise ConfigError(
            f"{where}: tick_size * lot_size * contract_multiplier = {exact_product(tick, lot, mult)} is not a whole "
            f"number of atoms (10**-{atom_decimals}) per tick-lot"
        )
    price_max = _int_field(raw, "price_ticks_max", where, lo=1, hi=10**15, default=10**12)
    try:
        ref = decimal_to_grid(_dec_field(raw, "reference_price", where), tick)
    except GridError as exc:
        raise ConfigError(f"{where}.reference_price: {exc}") from exc
    if ref > price_max:
        raise ConfigError(f"{where}.reference_price: {ref} ticks above price_ticks_max {price_max}")
    min_lots = _int_field(raw, "min_order_lots", where, lo=1, hi=10**15, default=1)
    max_lots = _int_field(raw, "max_order_lots", where, lo=min_lots, hi=10**15, default=10**9)
    maker = _int_field(raw, "maker_fee_ppm", where, lo=-PPM // 10, hi=PPM // 10, default=0)
    taker = _int_field(raw, "taker_fee_ppm", where, lo=0, hi=PPM // 10, default=0)
    if maker < 0 and -maker > taker:
        raise ConfigError(f"{where}.maker_fee_ppm: rebate {-maker} ppm exceeds taker_fee_ppm {taker} "
                          "(every fill would pay out more than it takes)")
    return InstrumentSpec(
        instrument_id=iid,
        symbol=symbol,
        kind=InstrumentKind.PERPETUAL,
        tick_size=tick,
        lot_size=lot,
        contract_multiplier=mult,
        atoms_per_tick_lot=int(per),
        reference_price_ticks=ref,
        min_order_lots=min_lots,
        max_order_lots=max_lots,
        price_ticks_max=price_max,
        market_protection_ppm=_int_field(raw, "market_protection_ppm", where, lo=1, hi=PPM // 2, default=50_000),
        maker_fee_ppm=maker,
        taker_fee_ppm=taker,
        margin_tiers=_margin_tiers(raw.get("margin_tiers"), where, atom_decimals),
        integrity=_integrity(raw.get("integrity"), where, taker),
    )


def venue_config_from_dict(raw: Mapping[str, Any]) -> VenueConfig:
    """Validate a parsed venue config (the TOML shape in the module docstring).

    Raises:
        ConfigError: any field missing, mistyped, out of range, off-grid or inconsistent.
    """
    unknown = sorted(set(raw) - {"venue", "limits", "instrument", "risk"})
    if unknown:
        raise ConfigError(f"unknown top-level tables {unknown} (known: venue, limits, instrument, risk)")
    venue = raw.get("venue", {})
    if not isinstance(venue, dict):
        raise ConfigError("venue: expected a table")
    atom_decimals = _int_field(venue, "atom_decimals", "venue", lo=0, hi=18, default=6)
    lim_raw = raw.get("limits", {})
    defaults = VenueLimits()
    limits = VenueLimits(
        **{
            f: _int_field(lim_raw, f, "limits", lo=1, hi=10**18, default=getattr(defaults, f))
            for f in VenueLimits.__slots__
        }
    )
    extra = set(lim_raw) - set(VenueLimits.__slots__)
    if extra:
        raise ConfigError(f"limits: unknown keys {sorted(extra)}")
    raw_instruments = raw.get("instrument", [])
    if not isinstance(raw_instruments, list) or not raw_instruments:
        raise ConfigError("instrument: need at least one [[instrument]] table")
    instruments: dict[int, InstrumentSpec] = {}
    for i, entry in enumerate(raw_instruments):
        if not isinstance(entry, dict):
            raise ConfigError(f"instrument[{i}]: expected a table")
        spec = _instrument(entry, i, atom_decimals)
        if spec.instrument_id in instruments:
            raise ConfigError(f"instrument[{i}]: duplicate instrument_id {spec.instrument_id}")
        instruments[spec.instrument_id] = spec
    seen_symbols: set[str] = set()
    for i, spec in enumerate(instruments.values()):
        if spec.symbol in seen_symbols:
            raise ConfigError(f"instrument[{i}].symbol: duplicate symbol {spec.symbol!r}")
        seen_symbols.add(spec.symbol)
    name = venue.get("name", "bastion")
    asset = venue.get("settlement_asset", "USDC")
    if not isinstance(name, str):
        raise ConfigError(f"venue.name: expected a string, got {name!r}")
    if not isinstance(asset, str):
        raise ConfigError(f"venue.settlement_asset: expected a string, got {asset!r}")
    guardians_raw = venue.get("guardian_ids")
    guardian_ids: tuple[int, ...] = ()
    if guardians_raw is not None:
        if (not isinstance(guardians_raw, list) or not guardians_raw
                or any(type(g) is not int or not 1 <= g <= 2**63 - 1 for g in guardians_raw)
                or len(set(guardians_raw)) != len(guardians_raw)):
            raise ConfigError("venue.guardian_ids: expected a non-empty list of distinct positive integers")
        guardian_ids = tuple(guardians_raw)
    risk: Any = None
    if "risk" in raw:
        from bastion.core.risk_config import risk_config_from_dict  # noqa: PLC0415 - risk modules import this one

        risk = risk_config_from_dict(raw["risk"], set(instruments))
        if risk == type(risk)():
            risk = None  # all defaults: the same venue (and config hash) as no table
    return VenueConfig(name, asset, atom_decimals, limits, instruments, guardian_ids, risk)


def venue_config_from_toml(data: bytes | str) -> VenueConfig:
    """Parse and validate a venue config from TOML text (pure: no file access; the shell's
    :func:`bastion.config.load_venue_config` reads the file).

    Args:
        data: the TOML document, as UTF-8 bytes or text.

    Raises:
        ConfigError: not UTF-8, not TOML, or any validation failure (the message names the field).
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        raw = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"venue config is not valid UTF-8 TOML: {exc}") from exc
    return venue_config_from_dict(raw)


def __getattr__(name: str) -> Any:
    """``load_venue_config`` moved to the shell (:mod:`bastion.config`): the core does no file I/O. The
    old import path keeps working for callers (resolved lazily, so importing the core never pulls in
    the shell)."""
    if name == "load_venue_config":
        from bastion.config import load_venue_config  # noqa: PLC0415 - compatibility shim, see docstring

        return load_venue_config
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
