"""Replay scenarios: TOML files naming the data, venue, agents, oracle and seed of one run.

A scenario is either a bundled name (``src/bastion/scenarios/<name>.toml``) or a path. The schema is
the set of msgspec structs below; unknown keys, wrong types and out-of-range values are refused with
:class:`ScenarioError` naming the field. Two kinds:

* ``kind = "tick"``: a Binance capture directory (REST snapshot + depth diffs + trades) replayed
  through the venue: resting liquidity mirrored by liquidity-provider accounts, real trades as IOC
  taker orders, mark price from a multi-venue index (``bastion.sim.replay.tick``).
* ``kind = "bars"``: 1-minute multi-source bars; a synthetic LP ladder around the path's close,
  taker flow from the bar volume, the index from the USD/USDT/USDC quotes through ``OracleState``
  (``bastion.sim.replay.bars``).

Both add a seeded population of leveraged traders (``bastion.sim.replay.agents``).

Money amounts in scenarios are whole USD (``*_usd``), durations whole seconds (``*_s``), ratios ppm,
leverage in thousandths (``*_milli``). ``[breakers]`` sets the venue's market-integrity controls (price
band, velocity pause, LULD) on the replayed instrument (:class:`BreakerParams`); ``[matching]`` chooses
continuous matching or frequent batch auctions (:class:`MatchingParams`).

Data locations: ``data.source = "bundled"`` reads ``bastion/data/<path>`` (the licensed sample that
ships with the package); ``"shared"`` reads ``<shared data>/<path>``, where the shared data directory
is ``<project root>/../shared/data`` (project root: the directory holding ``pyproject.toml`` above this
package) unless given explicitly.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Literal

import msgspec

from bastion.core.instruments import ConfigError, VenueConfig, venue_config_from_dict
from bastion.feeds.oracle_shell import parse_public_key

__all__ = [
    "BookParams",
    "BreakerParams",
    "DataParams",
    "GuardParams",
    "MatchingParams",
    "OracleParams",
    "OracleSource",
    "QuoteParams",
    "REPLAY_GUARDIAN_ID",
    "Scenario",
    "ScenarioError",
    "TraderParams",
    "bundled_scenarios",
    "default_shared_data",
    "load_scenario",
    "resolve_data_dir",
    "resolve_scenario",
    "scenario_venue_config",
    "venue_config_path",
]

NS_PER_S = 1_000_000_000

DEFAULT_SCENARIO = "binance-tick-sample"
levels_max = 200
"""Most price levels per side an LP book may hold (mirror depth or ladder)."""
accounts_per_group_max = 10_000
"""Most accounts in one agent group (LPs, takers, traders)."""
interval_ms_max = 3_600_000
"""Longest batch interval a scenario may ask for (one hour)."""
REPLAY_GUARDIAN_ID = 9_000_001
"""Guardian id a batch scenario adds to a venue config that has no ``[venue] guardian_ids``."""


class ScenarioError(ValueError):
    """A scenario file is missing, malformed or inconsistent; the message names the file and field."""


_struct = {"forbid_unknown_fields": True, "frozen": True, "kw_only": True}


class ScenarioHeader(msgspec.Struct, **_struct):
    """``[scenario]``: identity, kind, seed and venue configuration."""

    name: str
    kind: Literal["tick", "bars"]
    seed: int
    venue_config: str
    instrument_id: int = 1
    description: str = ""


class DataParams(msgspec.Struct, **_struct):
    """``[data]``: where the input lives and which window of it to replay.

    Attributes:
        source: ``"bundled"`` or ``"shared"`` (see module docstring).
        path: directory name below the data root.
        perp_stream: tick only, capture prefix of the mirrored perpetual (``usdm_btcusdt``).
        duration_s: tick only, replay at most this many seconds of capture time (0: all).
        start / end: bars only, ISO-8601 UTC minute bounds ``[start, end)``.
    """

    source: Literal["bundled", "shared"]
    path: str
    perp_stream: str = "usdm_btcusdt"
    duration_s: int = 0
    start: str = ""
    end: str = ""


class BookParams(msgspec.Struct, **_struct):
    """``[book]``: liquidity providers and takers.

    Attributes:
        levels: price levels per side kept by the LPs (mirror depth N, or ladder size).
        lp_accounts / lp_deposit_usd: number of LP accounts and each one's deposit.
        taker_accounts / taker_deposit_usd: accounts that send the taker flow (real trades or bar volume).
        path_source: bars only, oracle source id whose bars are the perpetual's price path.
        level_step_ppm: bars only, ladder level spacing as a fraction of the start price.
        level_qty_lots: bars only, resting size of each ladder level, best first (the last value repeats).
        volume_scale_ppm: bars only, taker volume = bar volume * this / 10**6.
        takers_per_bar: bars only, taker orders the bar volume is split into.
        fleeting_liquidity: tick only, top up the mirror so every real trade fills its real size at its
            real price (``bastion.sim.replay.tick``).
        index_after_book: bars only, each minute the takers walk and the LPs re-centre the ladder on the
            new close *before* the oracle index of that minute arrives (the oracle lags the book, as a
            spot index lags a crashing perpetual; the default). False: the index first, so the risk
            engine's liquidation orders meet the previous minute's ladder — the stale, pre-move prices,
            which flatters every liquidation in a gap (no bankruptcy at all on the x3 path).
    """

    levels: int = 20
    lp_accounts: int = 4
    lp_deposit_usd: int = 500_000_000
    taker_accounts: int = 8
    taker_deposit_usd: int = 500_000_000
    path_source: str = ""
    level_step_ppm: int = 100
    level_qty_lots: tuple[int, ...] = (1000,)
    volume_scale_ppm: int = 1_000_000
    takers_per_bar: int = 4
    fleeting_liquidity: bool = True
    index_after_book: bool = True


class OracleSource(msgspec.Struct, **_struct):
    """``[[oracle.sources]]``: one index source.

    Attributes:
        id: source id used by the aggregator and in the report.
        quote: currency the source quotes in (``USD`` or a ``[[oracle.quotes]]`` currency).
        stream: tick only, capture prefix (``usdm_btcusdt``, ``spot_btcusdt``, ``cm_btcusd_perp``).
        bar_source / bar_symbol: bars only, e.g. ``binanceus`` / ``BTCUSD``.
        staleness_s: oldest usable report age.
        weight: weight in the weighted median.
        public_key: the Ed25519 public key (64 hex digits, RFC 8032 raw) the venue trusts for this
            source's signed reports (``bastion.feeds.oracle_shell``); empty: the deterministic replay
            key of the source id (``replay_signing_key``), with which the replay signs.
    """

    id: str
    quote: str
    staleness_s: int
    stream: str = ""
    bar_source: str = ""
    bar_symbol: str = ""
    weight: int = 1
    public_key: str = ""


class QuoteParams(msgspec.Struct, **_struct):
    """``[[oracle.quotes]]``: conversion policy of one stablecoin quote (``bastion.core.oracle``)."""

    quote: str
    depeg_deviation_max_ppm: int = 20_000
    cross_deviation_max_ppm: int = 5_000


class GuardParams(msgspec.Struct, **_struct):
    """``[oracle.guard]``: the PriceGuard (TWAP divergence, staleness)."""

    history_max: int = 600
    twap_window_s: int = 300
    far_deviation_max_ppm: int = 100_000
    pause_deviation_max_ppm: int = 500_000
    staleness_max_s: int = 60


class OracleParams(msgspec.Struct, **_struct):
    """``[oracle]``: index construction; the mark price is the index on the instrument's tick grid.

    Attributes:
        interval_s: index tick period in capture time (tick kind; bars tick once per minute).
        price_exponent: index grid, 10**price_exponent USD.
        reference_source: source the index deviation figure is measured against (the traded market's venue).
        rate_ema_span: span (ticks) of the smoothed implied stablecoin rate fed back by OracleState.
    """

    sources: tuple[OracleSource, ...]
    reference_source: str
    interval_s: int = 1
    price_exponent: int = -3
    quorum_min: int = 2
    outlier_deviation_max_ppm: int = 20_000
    dispersion_max_ppm: int = 0
    rate_ema_span: int = 60
    quotes: tuple[QuoteParams, ...] = ()
    guard: GuardParams = GuardParams()


class TraderParams(msgspec.Struct, **_struct):
    """``[traders]``: the seeded leveraged-trader population (``bastion.sim.replay.agents``).

    Attributes:
        count: number of trader accounts.
        calibration: size/leverage distributions (``bastion.sim.replay.calibration``).
        leverage_max_milli: drawn leverage is capped here (thousandths).
        first_open_s: [min, max] delay of a trader's first position after the start.
        hold_s / idle_s: [min, max] uniform holding time and time flat between positions.
        slippage_ppm: IOC limit = best opposite price moved this far.
        retry_s: delay before retrying a close that did not fill completely.
    """

    count: int = 100
    calibration: str = "hyperliquid-2023"
    leverage_max_milli: int = 50_000
    first_open_s: tuple[int, int] = (0, 60)
    hold_s: tuple[int, int] = (10, 60)
    idle_s: tuple[int, int] = (5, 30)
    slippage_ppm: int = 2_000
    retry_s: int = 1


class InsuranceParams(msgspec.Struct, **_struct):
    """``[insurance]``: the insurance fund seeded at the start."""

    fund_usd: int = 1_000_000


class StressParams(msgspec.Struct, **_struct):
    """``[stress]``: bars only; the path close P becomes p0 + move_scale * (P - p0) (p0 its first close)
    and every source of the same minute is scaled by the same factor, keeping cross-venue ratios
    (``bastion.sim.replay.bars``)."""

    move_scale: int = 1


class MatchingParams(msgspec.Struct, **_struct):
    """``[matching]``: the replayed instrument's matching mode.

    ``continuous`` (the default): price-time matching on the order book. ``batch``: frequent batch
    auctions (Budish-Cramton-Shim; docs/integrity-integration.md §6.3): at the start the replay halts the
    market, sends ``SetMatchingMode(BATCH, interval_ms * 10**6)`` as a guardian and reactivates it, so
    every order from then on waits in the batch book and trades only at the uniform clearing price of the
    next boundary (``bastion.sim.replay.exchange``: the shell sends a ``Heartbeat`` at every boundary with
    something to clear). Sealed-bid rounds (commit-reveal) are not replayed.

    Attributes:
        mode: ``continuous`` or ``batch``.
        interval_ms: batch only, the batch interval tau in ms of engine time (1 .. 3,600,000); it should
            divide 60,000 for bars scenarios so every minute starts a batch.
        guardian_id: the guardian that switches the mode; 0: the venue config's smallest
            ``[venue] guardian_ids`` entry, or :data:`REPLAY_GUARDIAN_ID`, added to the venue config of the
            run when it has none (continuous scenarios never touch the venue config).
    """

    mode: Literal["continuous", "batch"] = "continuous"
    interval_ms: int = 0
    guardian_id: int = 0

    @property
    def batch(self) -> bool:
        return self.mode == "batch"

    @property
    def interval_ns(self) -> int:
        return self.interval_ms * 1_000_000


class BreakerParams(msgspec.Struct, **_struct):
    """``[breakers]``: the venue's market-integrity controls on the replayed instrument.

    Mapped one to one onto ``[instrument.integrity]`` of the venue config (``IntegrityConfig``,
    docs/integrity-integration.md), with durations in whole seconds here (ns in the venue config);
    the venue config loader validates the result. Empty (the default): no breaker, the instrument's
    own ``[instrument.integrity]`` (if any) applies; non-empty on a venue config that already has one
    is refused (one place for the parameters).

    Attributes:
        band_ppm: price band half-width, ppm of its reference (0: no band; LULD needs one).
        band_mode: ``aggressive_side`` (CME) or ``both_sides``.
        band_reference: ``mark`` or ``last_trade``.
        band_sweep_orders_max: resting orders canceled per command when the band moves past them.
        velocity_threshold_ticks: a move of this many ticks within ``velocity_lookback_s`` pauses the
            market for ``velocity_pause_s`` (a call auction, then the uncross); 0: off.
        velocity_samples_max: trade samples the velocity window keeps.
        luld_halt_s: Limit Up-Limit Down: the book pinned at a band edge for ``luld_limit_state_s``
            halts trading this long, then a reopening auction of ``luld_auction_s``; 0: off.
        luld_reference_update_ppm: smallest relative move of the band reference applied under LULD.
        auction_allocation: ``time`` or ``pro_rata`` rationing at the clearing price.
    """

    band_ppm: int = 0
    band_mode: Literal["aggressive_side", "both_sides"] = "aggressive_side"
    band_reference: Literal["mark", "last_trade"] = "mark"
    band_sweep_orders_max: int = 64
    velocity_threshold_ticks: int = 0
    velocity_lookback_s: int = 0
    velocity_pause_s: int = 0
    velocity_samples_max: int = 1024
    luld_halt_s: int = 0
    luld_limit_state_s: int = 15
    luld_auction_s: int = 10
    luld_reference_update_ppm: int = 10_000
    auction_allocation: Literal["time", "pro_rata"] = "time"

    def integrity_table(self) -> dict[str, object]:
        """The ``[instrument.integrity]`` table these breakers stand for ({} when none is on)."""
        if self == BreakerParams():
            return {}
        ns = NS_PER_S
        return {
            "band_ppm": self.band_ppm, "band_mode": self.band_mode, "band_reference": self.band_reference,
            "band_sweep_orders_max": self.band_sweep_orders_max,
            "velocity_threshold_ticks": self.velocity_threshold_ticks,
            "velocity_lookback_ns": self.velocity_lookback_s * ns, "velocity_pause_ns": self.velocity_pause_s * ns,
            "velocity_samples_max": self.velocity_samples_max,
            "luld_halt_ns": self.luld_halt_s * ns, "luld_limit_state_ns": self.luld_limit_state_s * ns,
            "luld_auction_ns": self.luld_auction_s * ns, "luld_reference_update_ppm": self.luld_reference_update_ppm,
            "auction_allocation": self.auction_allocation,
        }


class RunParams(msgspec.Struct, **_struct):
    """``[run]``: journal and verification settings."""

    commit_every: int = 1024
    verify_journal: bool = True
    book_check_interval_s: int = 1


class Scenario(msgspec.Struct, **_struct):
    """A whole scenario file (see module docstring). ``origin`` is set by the loader."""

    scenario: ScenarioHeader
    data: DataParams
    book: BookParams
    oracle: OracleParams
    traders: TraderParams = TraderParams()
    insurance: InsuranceParams = InsuranceParams()
    stress: StressParams = StressParams()
    matching: MatchingParams = MatchingParams()
    breakers: BreakerParams = BreakerParams()
    run: RunParams = RunParams()
    origin: str = ""

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def seed(self) -> int:
        return self.scenario.seed


def _check(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise ScenarioError(f"{where}: {message}")


def _validate(s: Scenario, where: str) -> None:
    """Cross-field checks msgspec cannot express (ranges, kind-specific keys, source names)."""
    b, o, t = s.book, s.oracle, s.traders
    _check(1 <= b.levels <= levels_max, where, f"book.levels must be in 1..{levels_max}")
    for name, count in (("lp_accounts", b.lp_accounts), ("taker_accounts", b.taker_accounts)):
        _check(1 <= count <= accounts_per_group_max, where, f"book.{name} out of range")
    _check(0 <= t.count <= accounts_per_group_max, where, "traders.count out of range")
    _check(b.lp_deposit_usd > 0 and b.taker_deposit_usd > 0, where, "deposits must be positive")
    for name, pair in (("first_open_s", t.first_open_s), ("hold_s", t.hold_s), ("idle_s", t.idle_s)):
        _check(0 <= pair[0] <= pair[1], where, f"traders.{name} must be [min, max] with 0 <= min <= max")
    _check(t.retry_s >= 1 and 0 <= t.slippage_ppm <= 100_000, where, "traders.retry_s / slippage_ppm range")
    _check(1_000 <= t.leverage_max_milli <= 1_000_000, where, "traders.leverage_max_milli in 1000..1000000")
    _check(o.interval_s >= 1 and -9 <= o.price_exponent <= 0, where, "oracle.interval_s / price_exponent range")
    _check(o.rate_ema_span >= 1, where, "oracle.rate_ema_span must be >= 1")
    ids = [src.id for src in o.sources]
    _check(len(set(ids)) == len(ids) and bool(ids), where, "oracle.sources: need unique ids")
    _check(o.reference_source in ids, where, f"oracle.reference_source {o.reference_source!r} is not a source")
    for src in o.sources:
        if src.public_key:
            try:
                parse_public_key(src.public_key)
            except ValueError as exc:
                raise ScenarioError(f"{where}: oracle source {src.id}: {exc}") from None
    _check(s.stress.move_scale >= 1, where, "stress.move_scale must be a positive integer")
    mt = s.matching
    if mt.batch:
        _check(1 <= mt.interval_ms <= interval_ms_max, where, f"matching.interval_ms must be in 1..{interval_ms_max}")
    else:
        _check(mt.interval_ms == 0, where, "matching.interval_ms applies to mode = \"batch\" only")
    _check(0 <= mt.guardian_id <= 2**63 - 1, where, "matching.guardian_id must be a non-negative integer")
    _check(s.run.commit_every >= 1 and s.run.book_check_interval_s >= 1, where, "run.* must be positive")
    br = s.breakers
    for name in ("velocity_lookback_s", "velocity_pause_s", "luld_halt_s", "luld_limit_state_s", "luld_auction_s"):
        _check(0 <= getattr(br, name) <= 10 * 86_400, where, f"breakers.{name} must be in 0..864000 s")
    if s.scenario.kind == "tick":
        _check(all(src.stream for src in o.sources), where, "tick sources need `stream`")
        _check(s.stress.move_scale == 1, where, "stress.move_scale applies to bars scenarios only")
        _check(s.data.duration_s >= 0, where, "data.duration_s must be >= 0")
    else:
        _check(all(src.bar_source and src.bar_symbol for src in o.sources), where,
               "bars sources need `bar_source` and `bar_symbol`")
        _check(b.path_source in ids, where, "book.path_source must name an oracle source")
        _check(bool(s.data.start and s.data.end), where, "bars scenarios need data.start and data.end")
        _check(all(q > 0 for q in b.level_qty_lots) and bool(b.level_qty_lots), where, "book.level_qty_lots")
        _check(1 <= b.level_step_ppm <= 100_000 and b.takers_per_bar >= 1, where, "ladder parameters range")
        start_ns, end_ns = minute_ns(s.data.start, where), minute_ns(s.data.end, where)
        _check(start_ns < end_ns, where, "data.start must precede data.end")


def minute_ns(text: str, where: str = "scenario") -> int:
    """Parse an ISO-8601 UTC time on a whole minute into Unix ns (``2023-03-01T00:00:00Z``)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ScenarioError(f"{where}: bad time {text!r}") from exc
    _check(moment.utcoffset() == timedelta(0), where, f"time {text!r} must be UTC")
    ns = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1_000
    _check(ns % 60_000_000_000 == 0, where, f"time {text!r} must be on a whole minute")
    return ns


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate one scenario file.

    Raises:
        ScenarioError: unreadable file, bad TOML, unknown key, wrong type or inconsistent values.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    try:
        scenario = msgspec.convert(raw, Scenario)
    except msgspec.ValidationError as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    _validate(scenario, str(path))
    return msgspec.structs.replace(scenario, origin=str(path))


def _scenario_dir() -> Path:
    return Path(str(resources.files("bastion") / "scenarios"))


def bundled_scenarios() -> list[str]:
    """Names of the scenarios shipped in ``bastion/scenarios``, sorted."""
    return sorted(p.stem for p in _scenario_dir().glob("*.toml"))


def resolve_scenario(arg: str | None) -> Scenario:
    """A scenario from a CLI argument: None (the default sample), a file path, or a bundled name.

    Raises:
        ScenarioError: neither an existing file nor a bundled name (the message lists the names).
    """
    name = DEFAULT_SCENARIO if arg is None else arg
    candidate = Path(name)
    if candidate.suffix == ".toml" or candidate.is_file():
        if not candidate.is_file():
            raise ScenarioError(f"scenario file not found: {candidate}")
        return load_scenario(candidate)
    bundled = _scenario_dir() / f"{name}.toml"
    if not bundled.is_file():
        raise ScenarioError(f"unknown scenario {name!r}; bundled: {', '.join(bundled_scenarios())}")
    return load_scenario(bundled)


def project_root() -> Path | None:
    """The directory holding ``pyproject.toml`` above this package (a source checkout), or None."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    return None


def default_shared_data() -> Path | None:
    """``<project root>/../shared/data`` if that directory exists, else None."""
    root = project_root()
    if root is None:
        return None
    shared = root.parent / "shared" / "data"
    return shared if shared.is_dir() else None


def resolve_data_dir(scenario: Scenario, shared_data: Path | None) -> Path:
    """The input directory of ``scenario``.

    Raises:
        ScenarioError: the directory does not exist (shared data absent, or a wrong path).
    """
    if scenario.data.source == "bundled":
        directory = Path(str(resources.files("bastion") / "data" / scenario.data.path))
    else:
        if shared_data is None:
            raise ScenarioError(f"{scenario.name}: needs ../shared/data/{scenario.data.path}, and no shared "
                                "data directory was found (pass --shared-data)")
        directory = shared_data / scenario.data.path
    if not directory.is_dir():
        raise ScenarioError(f"{scenario.name}: data directory absent: {directory}")
    return directory


def scenario_venue_config(scenario: Scenario) -> VenueConfig:
    """The venue configuration of ``scenario``: its venue config file, with the ``[breakers]`` table as the
    replayed instrument's ``[instrument.integrity]`` (:class:`BreakerParams`) and, for a batch scenario
    whose venue config names no guardian, ``[venue] guardian_ids = [REPLAY_GUARDIAN_ID]`` (or its
    ``matching.guardian_id``) so that the replay may switch the matching mode (:class:`MatchingParams`).

    Raises:
        ScenarioError: the file is missing or invalid, the instrument is not in it, it already has an
            ``[instrument.integrity]`` table while ``[breakers]`` is set, ``matching.guardian_id`` is not one
            of its guardians, or the breakers are invalid
            (the venue config loader's message, naming the field).
    """
    path = venue_config_path(scenario)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    if scenario.matching.batch:
        venue = raw.setdefault("venue", {})
        guardians = venue.get("guardian_ids")
        wanted = scenario.matching.guardian_id
        if not guardians:
            venue["guardian_ids"] = [wanted or REPLAY_GUARDIAN_ID]
        elif wanted and isinstance(guardians, list) and wanted not in guardians:
            raise ScenarioError(f"{scenario.name}: matching.guardian_id {wanted} is not in [venue] guardian_ids "
                                f"of {path.name}")
    table = scenario.breakers.integrity_table()
    if table:
        iid = scenario.scenario.instrument_id
        found = [i for i in raw.get("instrument", []) if isinstance(i, dict) and i.get("instrument_id") == iid]
        if not found:
            raise ScenarioError(f"{scenario.name}: instrument {iid} not in the venue config {path.name}")
        if "integrity" in found[0]:
            raise ScenarioError(f"{scenario.name}: [breakers] is set and {path.name} already has an "
                                f"[instrument.integrity] table for instrument {iid}; keep one")
        found[0]["integrity"] = table
    try:
        return venue_config_from_dict(raw)
    except ConfigError as exc:
        raise ScenarioError(f"{scenario.name}: venue config {path.name} with [breakers]: {exc}") from exc


def venue_config_path(scenario: Scenario) -> Path:
    """The venue config file: a bundled ``bastion/configs/<name>`` or a path relative to the scenario.

    Raises:
        ScenarioError: no such file.
    """
    name = scenario.scenario.venue_config
    bundled = Path(str(resources.files("bastion") / "configs" / name))
    if bundled.is_file():
        return bundled
    relative = Path(scenario.origin).parent / name if scenario.origin else Path(name)
    if relative.is_file():
        return relative
    raise ScenarioError(f"{scenario.name}: venue config {name!r} not found (bundled or next to the scenario)")
