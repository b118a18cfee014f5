"""The risk engine: index and mark price, funding, liquidation, insurance fund, ADL, socialized loss.

A component of :class:`bastion.core.engine.Engine` (``engine.risk``), called at fixed points of
``Engine.apply`` (docs/risk-integration.md §4):

* before the handler — :meth:`RiskEngine.before_command`: funding premium samples (one a minute) and
  funding settlement (hourly at F/8) by engine time;
* the ``SetOraclePrice`` handler — :meth:`RiskEngine.set_oracle_price`: index, mark (Binance
  ``median(price1, price2, contract price)`` by default, the book read at impact depth and the result
  banded around the index: core/risk/mark.py), and a liquidation sweep of that instrument;
* during matching — :meth:`touch` (an account's balance or position changed), :meth:`on_fill`
  (last trade price) and :meth:`liquidation_fill` (fee of a liquidation IOC fill, to the fund);
* after the handler — :meth:`after_command`: the insurance fund's inventory (one unwind IOC per
  instrument and interval, or the fund's own waterfall if a move took its equity below zero), exact
  health of every touched account, trigger-index sweeps for instruments whose mark moved, then up to
  ``liquidations_per_command_max`` liquidations: cancel the account's orders, send a reduce-only IOC at
  the fillable price (liquidation.py), and if the account is left bankrupt run the loss waterfall
  (insurance fund takeover at the bankruptcy price within its capacity → fund cash → backstop → ADL at
  the bankruptcy price → ADL at the mark → fund over capacity → socialized loss → venue bad debt;
  waterfall.py), each step an event.

The insurance fund's positions live on the reserved account :data:`INSURANCE_FUND_ACCOUNT_ID` (0; no
client command may address it, ``Engine._account``) whose balance is swept into
``Engine.insurance_fund_atoms`` after every operation, so the fund's equity is that cash plus the
account's unrealized PnL. The account exists only while the fund holds inventory. Bad debt is a venue
account with balance ``-bad_debt_atoms``: it enters the conservation identity
``sum(balance - cost) + fee pool + fund + bonds - bad_debt = deposits - withdrawals``.

**Throttled accounts are parked.** An account below maintenance whose next step the per-interval
liquidation throttle withholds (its allowance buys no lot, and it is not bankrupt) leaves the queue for
:attr:`RiskEngine.parked` (account id -> the end of its throttle window, engine ns) and its index
entries become wake entries (liquidation_index.py, "Parked accounts"). It comes back to the queue,
checked exactly, at the first command at or after its window end, when its account changes (a fill,
deposit, funding, ...: any :meth:`touch`), or when a mark move fires a wake entry (it could go bankrupt
or afford a lot). So a throttled backlog costs nothing per command or per mark update, instead of one
health check per queued account per command; :meth:`check` asserts that a parked account below
maintenance indeed has no step (``plan_liquidation`` is None with its allowance). A parked account
below maintenance may still only reduce risk (305), like a queued one.

**Index refreshes are deferred, boundedly.** An account that changed is checked exactly at the end of
its command, but its index entries are recomputed only before the next sweep (so a market maker
filled a thousand times between two mark moves is re-indexed once), or at the end of a command once
more than :data:`STALE_REFRESH_MAX` accounts wait: a mark move then re-indexes at most that many, and a
cascade's re-indexing is spread over the commands that liquidate it rather than landing on the next
price update. The index is derived, so when it is refreshed changes no outcome.

All state that changes outcomes is in :meth:`canonical` (hashed, snapshotted); the trigger index and the
per-instrument holders index (:attr:`holders`, accounts with a non-zero position, maintained by
:meth:`holding_changed` on every position change and used by funding and ADL) are derived and rebuilt on
restore. Integers only; every loop is bounded.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from bastion.core.accounts import Account, Position, settle_fill
from bastion.core.book.base import Order
from bastion.core.commands import STP, TimeInForce
from bastion.core.events import CommandRejected, OrderAccepted
from bastion.core.integrity.states import MarketState
from bastion.core.rejects import CancelReason, RejectCode
from bastion.core.risk.funding import (
    FundingConfig,
    PremiumAccumulator,
    funding_payments,
    funding_rate_ppb,
    impact_notional_atoms,
    impact_price_ticks,
    settlement_rate_ppb,
)
from bastion.core.risk.liquidation import (
    LiquidationConfig,
    LiquidationOrder,
    ThrottleWindow,
    liquidation_allowance_atoms,
    liquidation_fee_atoms,
    plan_liquidation,
    throttle_record,
)
from bastion.core.risk.liquidation_index import LiquidationIndex
from bastion.core.risk.margin_math import account_health
from bastion.core.risk.mark import MarkConfig, MarkMethod, MarkPriceState, depth_price_ticks, impact_lots
from bastion.core.risk.oi_caps import opening_lots
from bastion.core.risk.vol_margin import (
    VolMarginConfig,
    ewma_variance_next,
    log_return_ppm,
    scaled_spec,
    vol_multiplier_ppm,
    volatility_ppm,
)
from bastion.core.risk.waterfall import (
    INSURANCE_FUND_ACCOUNT_ID,
    BadDebtBooked,
    CloseVia,
    ForcedClose,
    FundPayment,
    SocializedCharge,
    WaterfallConfig,
    WaterfallPlan,
    cash_safe_close_lots,
    plan_waterfall,
)
from bastion.core.risk_messages import (
    AutoDeleveraged,
    BadDebtRecorded,
    FundingPaid,
    FundingRateSet,
    IndexPriceSet,
    InsuranceFundUnwound,
    InsuranceFundUsed,
    PositionLiquidated,
    PositionTakenOver,
    SocializedLoss,
    VolMultiplierSet,
)

_LIQUIDATION_STATES = (MarketState.ACTIVE, MarketState.POST_ONLY)
"""Market states in which a liquidation IOC is sent (POST_ONLY exempts it like a reduce-only close)."""

if TYPE_CHECKING:
    from bastion.core.engine import Engine

__all__ = ["FUNDING_PERIOD_NS", "INSURANCE_FUND_ACCOUNT_ID", "RiskConfig", "RiskEngine"]

FUND = INSURANCE_FUND_ACCOUNT_ID

FUNDING_PERIOD_NS = 8 * 3600 * 10**9
"""The funding rate is quoted per 8 hours (Binance, dYdX)."""

IMPACT_LEVELS_MAX = 64
"""Price levels read per side to find the impact bid/ask."""

FUNDING_HOLDERS_MAX = 1_000_000
"""Most positions one eager funding settlement pays (bounds the settlement loop)."""

QUEUE_CHECKS_PER_COMMAND_MAX = 1024
"""Queued accounts examined per command (the step budget is ``liquidations_per_command_max``): after a
price reversal a long backlog may have recovered; dropping it is spread over commands (module docstring)."""

STALE_REFRESH_MAX = 256
"""Accounts changed since the last mark move whose index entries are refreshed lazily (module docstring)."""

NEVER_NS = 2**63 - 1
"""No parked account: :attr:`RiskEngine.next_wake_ns` when :attr:`RiskEngine.parked` is empty."""


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Parameters of the risk engine (defaults from the anchors; shared/reference/risk-engines.md).

    Attributes:
        liquidation: partial-liquidation sizing, fee and throttle (liquidation.py).
        waterfall: insurance-fund cap per account, ADL candidates, socialized-loss limits (waterfall.py).
        funding: premium sampling, settlement interval, interest, clamp, cap (funding.py).
        mark: mark-price rule (mark.py).
        impact_margin_atoms: Binance impact margin, 200 USDT: the impact notional is
            ``impact_margin / IMR of the first margin tier`` (the IMR at max leverage). Funding premiums
            read the book to that notional; the mark reads it to that notional's worth of lots at the
            index (mark.py).
        backstop_account_id: an account that takes bankrupt positions before ADL (0 = none).
        open_interest_caps: ``(instrument_id, oi_lots_max)`` pairs: an order whose opening part would
            lift the market's long open interest above the cap is refused (reject 304; dYdX v4 OI caps,
            checked at entry against the order's full opening size).
        vol_margin: ``(instrument_id, VolMarginConfig)`` pairs: volatility-scaled margin for those
            instruments (vol_margin.py): an EWMA of index log-returns sampled every
            ``vol_sample_interval_ns`` scales every margin fraction by a bounded multiplier.
        vol_sample_interval_ns: cadence of the volatility samples (engine time).
        vol_multiplier_step_ppm: the multiplier is rounded up to this step, so requirements (and the
            liquidation index, rebuilt for the instrument on each change) move in steps, not per sample.
        index_max_age_ns: > 0: risk-increasing orders are refused (308) on an instrument whose index is
            missing, older than this, or whose oracle paused liquidations. 0 = off.
        withdrawal_gate_ns: > 0: after an account is seen with negative equity (the loss waterfall
            ran), withdrawals and transfers are refused (306) for this long (dYdX v4 blocks them for
            50 blocks). 0 = off.
    """

    liquidation: LiquidationConfig = field(default_factory=LiquidationConfig)
    waterfall: WaterfallConfig = field(default_factory=WaterfallConfig)
    funding: FundingConfig = field(default_factory=FundingConfig)
    mark: MarkConfig = field(default_factory=MarkConfig)
    impact_margin_atoms: int = 200 * 10**6
    backstop_account_id: int = 0
    open_interest_caps: tuple[tuple[int, int], ...] = ()
    vol_margin: tuple[tuple[int, VolMarginConfig], ...] = ()
    vol_sample_interval_ns: int = 60 * 10**9
    vol_multiplier_step_ppm: int = 50_000
    index_max_age_ns: int = 0
    withdrawal_gate_ns: int = 0

    def __post_init__(self) -> None:
        ids = [iid for iid, _ in self.open_interest_caps]
        assert len(set(ids)) == len(ids) and all(cap > 0 for _, cap in self.open_interest_caps)
        ids = [iid for iid, _ in self.vol_margin]
        assert len(set(ids)) == len(ids)
        assert self.vol_sample_interval_ns > 0 and 0 < self.vol_multiplier_step_ppm <= 1_000_000
        assert self.index_max_age_ns >= 0 and self.withdrawal_gate_ns >= 0

    def extras(self) -> list[Any]:
        """Canonical form of the settings added after the first release (empty when all default)."""
        out: list[Any] = []
        if self.open_interest_caps:
            out.append(["oi_caps", sorted(list(c) for c in self.open_interest_caps)])
        if self.vol_margin:
            out.append(["vol_margin", self.vol_sample_interval_ns, self.vol_multiplier_step_ppm,
                        sorted([iid, v.lambda_ppm, v.baseline_vol_ppm, v.multiplier_min_ppm, v.multiplier_max_ppm]
                               for iid, v in self.vol_margin)])
        if self.index_max_age_ns:
            out.append(["index_max_age_ns", self.index_max_age_ns])
        if self.withdrawal_gate_ns:
            out.append(["withdrawal_gate_ns", self.withdrawal_gate_ns])
        out.extend(self.waterfall.extras())
        return out

    def canonical(self) -> list[Any]:
        """Plain-data form for the config hash."""
        lc, wc, fc, mc = self.liquidation, self.waterfall, self.funding, self.mark
        return [
            [lc.buffer_ppm, lc.fee_ppm, lc.bankruptcy_adjustment_ppm, lc.spread_to_maintenance_ppm,
             lc.min_notional_atoms, lc.max_notional_per_interval_atoms, lc.interval_ns,
             lc.liquidations_per_command_max],
            [wc.insurance_loss_max_atoms, wc.adl_candidates_max, wc.socialized_accounts_max,
             wc.remainder_account_id],
            [fc.interest_rate_ppb, fc.clamp_ppb, fc.cap_ppb, fc.settlement_interval_ns, fc.sample_interval_ns,
             int(fc.weighting)],
            [int(mc.method), mc.basis_samples_max, mc.basis_ema_alpha_ppm, mc.fallback_ema_alpha_ppm,
             mc.index_band_ppm, mc.basis_sample_interval_ns],
            self.impact_margin_atoms,
            self.backstop_account_id,
        ] + self.extras()


class _FundView:
    """The insurance fund as an account for the planner: its cash as the balance, its inventory."""

    __slots__ = ("account_id", "balance_atoms", "positions")

    def __init__(self, balance_atoms: int, positions: dict[int, Position]) -> None:
        self.account_id = FUND
        self.balance_atoms = balance_atoms
        self.positions = positions


class RiskEngine:
    """Per-venue risk state and the steps above (module docstring)."""

    def __init__(self, engine: Engine, config: RiskConfig) -> None:
        self.engine = engine
        self.config = config
        iids = sorted(engine.specs)
        self.index_prices: dict[int, int] = {}
        self.index_times_ns: dict[int, int] = {}
        self.liquidations_paused: dict[int, bool] = dict.fromkeys(iids, False)
        self.last_trade_ticks: dict[int, int] = {}
        self.mark_states = {iid: MarkPriceState(config.mark) for iid in iids}
        self.premium = {iid: PremiumAccumulator(config.funding, 0) for iid in iids}
        self.next_funding_ns: dict[int, int] = dict.fromkeys(iids, 0)
        self.last_funding_rate_ppb: dict[int, int] = dict.fromkeys(iids, 0)
        self.throttle: dict[int, ThrottleWindow] = {}
        self.queue: list[int] = []
        self.queued: set[int] = set()
        """The accounts in :attr:`queue` (derived: O(1) membership for enqueue and the pre-trade gate)."""
        self.parked: dict[int, int] = {}
        """Throttled accounts taken out of the queue: account id -> end of its throttle window (engine ns;
        module docstring). State: hashed and snapshotted."""
        self.wake_heap: list[tuple[int, int]] = []
        """``(wake_ns, account_id)`` of :attr:`parked`, a heap with stale entries skipped (derived)."""
        self.next_wake_ns = NEVER_NS
        """No parked account wakes before this (derived; the engine calls :meth:`after_command` when due)."""
        self.bad_debt_atoms = 0
        """The venue's bad-debt account: deficits nobody could absorb (its balance is minus this)."""
        self.fund_unwind_ns: dict[int, int] = {}
        """Per instrument the fund holds: engine time of its next unwind IOC."""
        # Volatility-scaled margin and the withdrawal gate (state only when configured).
        self.oi_caps: dict[int, int] = dict(config.open_interest_caps)
        self.vol_configs: dict[int, VolMarginConfig] = {iid: v for iid, v in config.vol_margin if iid in engine.specs}
        self.base_specs = dict(engine.specs)
        self.vol_variance: dict[int, int] = dict.fromkeys(sorted(self.vol_configs), 0)
        self.vol_last_index: dict[int, int] = dict.fromkeys(sorted(self.vol_configs), 0)
        self.vol_next_sample_ns: dict[int, int] = dict.fromkeys(sorted(self.vol_configs), 0)
        self.vol_multiplier_ppm: dict[int, int] = dict.fromkeys(sorted(self.vol_configs), 1_000_000)
        self.negative_equity_seen_ns = -1
        self.pre_trade = bool(self.oi_caps) or config.index_max_age_ns > 0
        """True when :meth:`pre_trade_code` has something to check besides the liquidation queue."""
        # Derived / per-command scratch (not state).
        self.index = LiquidationIndex(engine.specs)
        self.holders: dict[int, set[int]] = {iid: set() for iid in iids}
        """Accounts with a non-zero position, per instrument (derived; :meth:`holding_changed`)."""
        self.fund_open = False
        """The fund holds inventory: :meth:`after_command` must run every command (derived)."""
        self.stale: set[int] = set()  # accounts whose trigger entries are out of date
        self.touched: set[int] = set()
        self.marks_changed: set[int] = set()
        self.active_order_id = 0
        self.active_plan: LiquidationOrder | None = None
        self._filled_notional = 0

    # ------------------------------------------------------------------ hooks on the hot path

    def touch(self, account_id: int) -> None:
        """An account's balance or positions changed in this command."""
        self.touched.add(account_id)

    def holding_changed(self, instrument_id: int, account_id: int, size_lots: int) -> None:
        """An account's position on ``instrument_id`` became ``size_lots`` (call whenever it may have
        crossed zero: every path that changes a position size calls it; ``check`` verifies)."""
        if size_lots:
            self.holders[instrument_id].add(account_id)
        else:
            self.holders[instrument_id].discard(account_id)

    def on_fill(self, instrument_id: int, price_ticks: int) -> None:
        """The instrument's last trade price (a mark input)."""
        self.last_trade_ticks[instrument_id] = price_ticks

    def mark_changed(self, instrument_id: int) -> None:
        """The mark moved (oracle or operator): sweep this instrument at the end of the command."""
        self.marks_changed.add(instrument_id)

    # ------------------------------------------------------------------ oracle and mark

    def set_oracle_price(self, cmd: Any) -> None:
        """Handler of :class:`~bastion.core.risk_messages.SetOraclePrice` (validated here)."""
        engine = self.engine
        iid, price, ts, paused = cmd.instrument_id, cmd.index_price_ticks, cmd.oracle_timestamp_ns, cmd.liquidations_paused
        if type(iid) is not int or type(price) is not int or type(ts) is not int or type(paused) is not bool:
            return self._reject(cmd, RejectCode.field_type_invalid)
        spec = engine.specs.get(iid)
        if spec is None:
            return self._reject(cmd, RejectCode.instrument_unknown)
        if price <= 0:
            return self._reject(cmd, RejectCode.price_ticks_not_positive)
        if price > spec.price_ticks_max:
            return self._reject(cmd, RejectCode.price_ticks_above_max)
        if not 0 < ts <= engine.now_ns or ts < self.index_times_ns.get(iid, 0):
            return self._reject(cmd, RejectCode.field_value_out_of_range)
        self.index_prices[iid] = price
        self.index_times_ns[iid] = ts
        self.liquidations_paused[iid] = paused
        engine._events.append(IndexPriceSet(iid, price, ts, paused))
        bid, ask = self._mark_depth_prices(iid, price)
        last = self.last_trade_ticks.get(iid)
        state = self.mark_states[iid]
        state.observe(price, bid, ask, last, engine.now_ns)
        if self.next_funding_ns[iid] == 0:
            self._start_funding(iid)
        method = self.config.mark.method
        if method == MarkMethod.INDEX:
            mark = price
        elif method == MarkMethod.HYPERLIQUID:
            mark = state.hyperliquid_mark_ticks(price, bid, ask, last)
        else:
            until = max(0, self.next_funding_ns[iid] - engine.now_ns)
            mark = state.binance_mark_ticks(price, self.last_funding_rate_ppb[iid], until, FUNDING_PERIOD_NS, last,
                                            bid, ask)
        mark = min(max(mark, 1), spec.price_ticks_max)
        if iid in self.vol_configs and engine.now_ns >= self.vol_next_sample_ns[iid]:
            self._vol_sample(iid, price)
        if mark != engine.marks[iid]:
            engine._mark_moved(iid, mark)

    def impact_notional_atoms(self, iid: int) -> int:
        """Binance impact margin notional of ``iid``: ``impact_margin_atoms / IMR at max leverage``, the IMR
        of the *first* margin tier of the configured (not volatility-scaled) spec (200 USDT / 0.8 % =
        25,000 USDC on the default BTC market)."""
        return impact_notional_atoms(self.config.impact_margin_atoms, self.base_specs[iid].margin_tiers[0].imf_ppm)

    def _mark_depth_prices(self, iid: int, index_ticks: int) -> tuple[int | None, int | None]:
        """Impact bid and ask the mark reads: average price of the impact notional's worth of lots at the
        index on each side (mark.py, point 1); None for a side with less depth in IMPACT_LEVELS_MAX levels."""
        bids, asks = self.engine.books[iid].depth(IMPACT_LEVELS_MAX)
        lots = impact_lots(self.impact_notional_atoms(iid), index_ticks, self.base_specs[iid].atoms_per_tick_lot)
        return depth_price_ticks(bids, lots, -1), depth_price_ticks(asks, lots, 1)

    def _vol_sample(self, iid: int, index_ticks: int) -> None:
        """One volatility sample (vol_margin.py): EWMA variance of index log-returns -> multiplier.

        A changed multiplier replaces the engine's effective spec of the instrument (every margin check
        and the liquidation index read ``engine.specs``), invalidates earlier margin checks (mark epoch)
        and re-indexes the instrument's holders, then sweeps it like a mark move. O(accounts with
        positions) per change; the multiplier moves in ``vol_multiplier_step_ppm`` steps.
        """
        engine = self.engine
        cfg = self.vol_configs[iid]
        interval = self.config.vol_sample_interval_ns
        now = engine.now_ns
        self.vol_next_sample_ns[iid] = now - now % interval + interval
        previous = self.vol_last_index[iid]
        self.vol_last_index[iid] = index_ticks
        if previous <= 0:
            return
        variance = ewma_variance_next(self.vol_variance[iid], log_return_ppm(previous, index_ticks), cfg.lambda_ppm)
        self.vol_variance[iid] = variance
        step = self.config.vol_multiplier_step_ppm
        multiplier = -(-vol_multiplier_ppm(variance, cfg) // step) * step
        multiplier = min(max(multiplier, cfg.multiplier_min_ppm), cfg.multiplier_max_ppm)
        if multiplier == self.vol_multiplier_ppm[iid]:
            return
        self.vol_multiplier_ppm[iid] = multiplier
        self._apply_multiplier(iid, multiplier)
        engine._events.append(VolMultiplierSet(iid, multiplier, volatility_ppm(variance)))
        engine.mark_epoch += 1
        for aid in sorted(self.holders[iid]):
            if aid != FUND:
                self.index.update(engine.accounts[aid], engine.marks)
        self.marks_changed.add(iid)

    def _apply_multiplier(self, iid: int, multiplier: int) -> None:
        base = self.base_specs[iid]
        self.engine.specs[iid] = base if multiplier == 1_000_000 else scaled_spec(base, multiplier)

    # ------------------------------------------------------------------ pre-trade and withdrawal gates

    def pre_trade_code(self, account_id: int, iid: int, position_lots: int, side: int, qty_lots: int) -> RejectCode | None:
        """Risk gates of an order that may increase risk (not reduce-only): 305, 308, 304; None passes."""
        if self.queue and account_id in self.queued:
            return RejectCode.account_in_liquidation
        if self.parked and account_id in self.parked:
            engine = self.engine
            if account_health(engine.accounts[account_id], engine.specs, engine.marks).liquidatable:
                return RejectCode.account_in_liquidation  # throttled, still below maintenance
        max_age = self.config.index_max_age_ns
        if max_age:
            seen = self.index_times_ns.get(iid)
            if seen is None or self.engine.now_ns - seen > max_age or self.liquidations_paused[iid]:
                return RejectCode.index_price_unavailable
        cap = self.oi_caps.get(iid)
        if cap is not None and self.engine.open_interest_lots[iid] + opening_lots(position_lots, side, qty_lots) > cap:
            return RejectCode.open_interest_cap_exceeded
        return None

    def withdrawal_code(self) -> RejectCode | None:
        """306 inside the gate after a negative-equity account was seen; None otherwise."""
        gate = self.config.withdrawal_gate_ns
        seen = self.negative_equity_seen_ns
        if gate and seen >= 0 and self.engine.now_ns < seen + gate:
            return RejectCode.withdrawal_blocked_negative_equity_seen
        return None

    def _reject(self, cmd: Any, code: RejectCode) -> None:
        self.engine._events.append(CommandRejected("set_oracle_price", 0, 0, code))

    def _start_funding(self, iid: int) -> None:
        interval = self.config.funding.settlement_interval_ns
        now = self.engine.now_ns
        self.next_funding_ns[iid] = now - now % interval + interval
        self.premium[iid].next_sample_ns = now

    # ------------------------------------------------------------------ funding (time-driven)

    def before_command(self) -> None:
        """Premium sampling and funding settlement due at the engine's current time (bounded)."""
        engine = self.engine
        now = engine.now_ns
        for iid, index in sorted(self.index_prices.items()):
            acc = self.premium[iid]
            if now >= acc.next_sample_ns:
                spec = engine.specs[iid]
                bids, asks = engine.books[iid].depth(IMPACT_LEVELS_MAX)
                imn = self.impact_notional_atoms(iid)
                k = spec.atoms_per_tick_lot
                acc.observe(now, impact_price_ticks(bids, imn, k, -1), impact_price_ticks(asks, imn, k, 1), index)
            if now >= self.next_funding_ns[iid] > 0:
                self._settle_funding(iid)
                self.next_funding_ns[iid] += self.config.funding.settlement_interval_ns

    def _settle_funding(self, iid: int) -> None:
        """Eager settlement: every holder pays/receives size * mark * k * rate; remainder to the fund.

        The holders come from :attr:`holders` (O(holders log holders), not O(accounts)); the fund's own
        inventory pays or receives like any position, into its cash.
        """
        engine = self.engine
        premium = self.premium[iid].close()
        rate_8h = funding_rate_ppb(premium, self.config.funding)
        rate = settlement_rate_ppb(rate_8h, self.config.funding.settlement_interval_ns)
        self.last_funding_rate_ppb[iid] = rate_8h
        accounts = engine.accounts
        holders = [(aid, accounts[aid].positions[iid].size_lots) for aid in sorted(self.holders[iid])]
        assert len(holders) <= FUNDING_HOLDERS_MAX
        mark = engine.marks[iid]
        settlement = funding_payments(iid, holders, mark, engine.specs[iid].atoms_per_tick_lot, rate, FUND)
        engine._events.append(FundingRateSet(iid, premium, rate_8h, rate, mark, settlement.remainder_atoms))
        for payment in settlement.payments:
            accounts[payment.account_id].balance_atoms += payment.amount_atoms
            engine._events.append(FundingPaid(iid, payment.account_id, payment.amount_atoms))
            self.touch(payment.account_id)
        engine.insurance_fund_atoms += settlement.remainder_atoms
        self._sweep_fund()
        engine.mark_epoch += 1  # balances moved without a margin check: re-check every maker's fills

    # ------------------------------------------------------------------ liquidation (after the handler)

    def after_command(self) -> None:
        """The fund's inventory, health of touched accounts, sweeps of moved marks, then the bounded
        liquidation queue; finally the fund account is pruned when flat."""
        engine = self.engine
        if self.fund_open:
            self._manage_fund()
        if self.next_wake_ns <= engine.now_ns:
            self._wake_due()
        if self.touched:
            for aid in sorted(self.touched):
                if aid == FUND:
                    continue
                if self.parked and aid in self.parked:
                    self._unpark(aid)
                self.stale.add(aid)
                if self._needs_liquidation(engine.accounts[aid]):
                    self._enqueue(aid)
            self.touched.clear()
        if self.marks_changed:
            self._refresh_stale()
            for iid in sorted(self.marks_changed):
                found = self.index.liquidatable(iid, engine.marks[iid], engine.accounts, engine.marks)
                for aid in sorted(found):
                    self._enqueue(aid)
                if self.index.woken:
                    self._wake_fired()
            self.marks_changed.clear()
            self.index.refresh_pending(engine.marks)
            if self.index.woken:  # a re-snapshot can never fire a parked account's entries, but be exact
                self._wake_fired()
        if self.queue:
            self._process_queue()
        if len(self.stale) > STALE_REFRESH_MAX:
            self._refresh_stale()  # bounded deferral: a mark move never re-indexes more than this
        if self.fund_open or FUND in engine.accounts:
            self._prune_fund()

    def _park(self, account: Account, allowance_atoms: int) -> bool:
        """Take a throttled account out of the queue until its throttle window ends (module docstring);
        False (nothing changed) when it has no open window or its wake conditions hold already."""
        engine = self.engine
        aid = account.account_id
        window = self.throttle.get(aid)
        if window is None:
            return False
        wake_ns = window.window_start_ns + self.config.liquidation.interval_ns
        if wake_ns <= engine.now_ns or not self.index.park(account, engine.marks, allowance_atoms):
            return False
        self.parked[aid] = wake_ns
        heapq.heappush(self.wake_heap, (wake_ns, aid))
        if wake_ns < self.next_wake_ns:
            self.next_wake_ns = wake_ns
        return True

    def _unpark(self, account_id: int) -> None:
        """End a park: ordinary index entries again (the caller re-checks the account)."""
        del self.parked[account_id]
        engine = self.engine
        self.index.unpark(engine.accounts[account_id], engine.marks)

    def _wake_due(self) -> None:
        """Parked accounts whose throttle window has ended: back to the queue if still liquidatable, in
        ``(window end, account id)`` order. Stale heap entries (unparked earlier) are skipped."""
        engine = self.engine
        heap = self.wake_heap
        now = engine.now_ns
        while heap and heap[0][0] <= now:
            wake_ns, aid = heapq.heappop(heap)
            if self.parked.get(aid) != wake_ns:
                continue
            self._unpark(aid)
            if self._needs_liquidation(engine.accounts[aid]):
                self._enqueue(aid)
        self.next_wake_ns = heap[0][0] if heap else NEVER_NS

    def _wake_fired(self) -> None:
        """Parked accounts whose wake entries a mark move fired: unparked and checked exactly."""
        engine = self.engine
        woken = sorted(set(self.index.woken))
        self.index.woken.clear()
        for aid in woken:
            if aid in self.parked:
                self._unpark(aid)
                if self._needs_liquidation(engine.accounts[aid]):
                    self._enqueue(aid)

    def _needs_liquidation(self, account: Account) -> bool:
        """Below maintenance, or flat with a negative balance (a loss the waterfall must absorb)."""
        engine = self.engine
        if account_health(account, engine.specs, engine.marks).liquidatable:
            return True
        return account.balance_atoms < 0 and not any(p.size_lots for p in account.positions.values())

    def _refresh_stale(self) -> None:
        engine = self.engine
        for aid in sorted(self.stale):
            if aid == FUND:
                continue
            account = engine.accounts[aid]
            if any(p.size_lots for p in account.positions.values()):
                self.index.update(account, engine.marks)
            else:
                self.index.remove(aid)
        self.stale.clear()

    def _enqueue(self, account_id: int) -> None:
        if account_id not in self.queued and account_id != FUND:
            self.queue.append(account_id)
            self.queued.add(account_id)

    def _paused(self, account: Account) -> bool:
        """The account waits in the queue: an oracle pause, or a market not trading continuously (halted,
        cancel-only, in an auction, settling): docs/risk-integration.md §4.3, "the IOC waits"; an IOC sent
        into an auction's market would match the continuous book unguarded."""
        engine = self.engine
        for iid, p in account.positions.items():
            if p.size_lots and (self.liquidations_paused.get(iid, False) or (
                    not engine._integrity_idle and engine.integ[iid].status.state not in _LIQUIDATION_STATES)):
                return True
        return False

    def oracle_paused_for(self, account: Account) -> bool:
        """True when the account holds a position on an instrument whose oracle paused liquidations: its
        withdrawals and transfers out are refused (320) until the oracle is trusted again."""
        return self._paused(account)

    def _process_queue(self) -> None:
        """Liquidation steps for queued accounts, at most ``liquidations_per_command_max`` per command.

        A liquidation can push its counterparties under maintenance (a resting bid filled far above the
        mark, an ADL charge): those are re-checked at once and, while the budget lasts, liquidated in the
        same command rather than left for the next one. Each account gets at most one step per command
        (a partial liquidation's next step waits for the next command, as the per-interval throttle
        intends). Accounts left queued (budget spent, oracle pause, throttle) are retried on the next
        command. The budget counts steps that did something (an IOC or the waterfall): an account the
        per-interval throttle holds back costs one cheap check, not a budget slot, so it cannot starve
        the accounts behind it; an account the throttle holds back is parked (module docstring) and costs
        nothing more until it wakes. An account that recovered while queued (the price came back) is
        dropped after one exact check, its orders untouched. Once the budget is spent, or
        :data:`QUEUE_CHECKS_PER_COMMAND_MAX` accounts were examined, the rest of the queue is kept as it
        is (in order) for the next command.
        """
        engine = self.engine
        budget = self.config.liquidation.liquidations_per_command_max
        checks = QUEUE_CHECKS_PER_COMMAND_MAX
        attempted: set[int] = set()
        while True:
            keep: list[int] = []
            stepped = False
            queue = self.queue
            queued = self.queued
            for position, aid in enumerate(queue):
                if budget == 0 or checks == 0:
                    keep.extend(queue[position:])
                    break
                account = engine.accounts[aid]
                if aid in attempted or self._paused(account):
                    keep.append(aid)
                    continue
                attempted.add(aid)
                checks -= 1
                if not engine.liquidation_pending(aid) and not self._needs_liquidation(account):
                    queued.discard(aid)  # recovered before its turn: nothing to do, nothing canceled
                    continue
                stepped = True
                needs_more, worked, allowance = self._liquidate(account)
                if worked:
                    budget -= 1
                if needs_more and not (allowance >= 0 and self._park(account, allowance)):
                    keep.append(aid)
                else:
                    queued.discard(aid)
            self.queue = keep
            fresh = False
            if self.touched:  # counterparties and the liquidated accounts: re-check at once
                for aid in sorted(self.touched):
                    if aid == FUND:
                        continue
                    if self.parked and aid in self.parked:
                        self._unpark(aid)
                    self.stale.add(aid)
                    if aid not in self.queued and self._needs_liquidation(engine.accounts[aid]):
                        self.queue.append(aid)
                        self.queued.add(aid)
                        fresh = fresh or aid not in attempted
                self.touched.clear()
            if not (stepped and fresh and budget > 0):
                return

    def _liquidate(self, account: Account) -> tuple[bool, bool, int]:
        """One liquidation step; returns (the account still needs liquidating, an IOC was sent or the
        waterfall ran, the interval allowance when the throttle withheld the step else -1)."""
        engine = self.engine
        if engine.liquidation_pending(account.account_id):
            return True, False, -1  # batch market: the step's IOC waits for its clearing (Engine._execute_liquidation)
        cfg = self.config.liquidation
        allowance = liquidation_allowance_atoms(self.throttle.get(account.account_id), engine.now_ns, cfg)
        if allowance == 0:  # throttled this interval: only a bankrupt account (never throttled) has a step
            held = account_health(account, engine.specs, engine.marks)
            if held.equity_atoms > 0:
                return held.liquidatable, False, 0
        for order in list(account.orders.values()):
            engine._cancel_resting(order, CancelReason.liquidation)
        engine._cancel_triggers(account.account_id, 0, CancelReason.liquidation)  # its stops go too
        plan = plan_liquidation(account, engine.specs, engine.marks, cfg, allowance)
        worked = plan is not None
        if plan is not None:
            self._send_ioc(account, plan)
        health = account_health(account, engine.specs, engine.marks)
        has_positions = any(p.size_lots for p in account.positions.values())
        if (health.equity_atoms <= 0) if has_positions else (account.balance_atoms < 0):
            # Bankrupt with positions left (the book could not absorb them), or closed out flat below zero
            # (a fill at the bankruptcy price rounded against the account): the loss waterfall.
            self._waterfall(account)
            worked = True
            health = account_health(account, engine.specs, engine.marks)
            has_positions = any(p.size_lots for p in account.positions.values())
        if worked:  # a throttled account changed nothing: no re-check, no re-index
            self.touch(account.account_id)
            return has_positions and health.liquidatable, True, -1
        # No plan and no waterfall: healthy, or the allowance buys no lot (throttled; equity > 0 here).
        throttled = has_positions and health.liquidatable and allowance < cfg.max_notional_per_interval_atoms
        return has_positions and health.liquidatable, False, allowance if throttled else -1

    def _send_ioc(self, account: Account, plan: LiquidationOrder) -> None:
        engine = self.engine
        spec = engine.specs[plan.instrument_id]
        limit = engine.band_limit(plan.instrument_id, plan.side, plan.limit_price_ticks)
        if limit != plan.limit_price_ticks:  # inside the band; what it cannot fill goes on as usual
            plan = msgspec.structs.replace(plan, limit_price_ticks=limit)
        order = Order(engine.next_order_id, account.account_id, plan.instrument_id, 0, plan.side,
                      plan.limit_price_ticks, plan.qty_lots, int(TimeInForce.IOC), False, True,
                      int(STP.EXPIRE_MAKER), 0)
        engine.next_order_id += 1
        engine._track(account, order)
        engine._events.append(OrderAccepted(order.order_id, account.account_id, plan.instrument_id, 0, plan.side,
                                            plan.limit_price_ticks, plan.qty_lots, int(TimeInForce.IOC)))
        self.active_order_id, self.active_plan = order.order_id, plan
        self._filled_notional = 0
        engine._execute_liquidation(order, spec)  # matched now, or in the next batch clearing
        self.active_order_id, self.active_plan = 0, None
        self.throttle[account.account_id] = throttle_record(self.throttle.get(account.account_id), engine.now_ns,
                                                            self._filled_notional, self.config.liquidation)

    def liquidation_fill(self, taker: Order, qty_lots: int, price_ticks: int) -> None:
        """Called by ``Engine.on_trade`` for fills of the active internal IOC: a liquidation IOC pays its
        fee to the fund; a fill of the fund's unwind IOC moves its realized PnL into the fund's cash."""
        engine = self.engine
        plan = self.active_plan
        assert taker.order_id == self.active_order_id
        if plan is None:
            assert taker.account_id == FUND
            fund = engine.accounts[FUND]
            realized = fund.balance_atoms
            self._sweep_fund()
            engine._events.append(InsuranceFundUnwound(taker.instrument_id, qty_lots, price_ticks, realized,
                                                       engine.insurance_fund_atoms,
                                                       fund.positions[taker.instrument_id].size_lots))
            return
        k = engine.specs[plan.instrument_id].atoms_per_tick_lot
        fee, payout = liquidation_fee_atoms(plan, qty_lots, price_ticks, k, self.config.liquidation.fee_ppm)
        assert payout == 0, "a liquidation IOC never fills beyond its bankruptcy price"
        account = engine.accounts[taker.account_id]
        account.balance_atoms -= fee
        engine.insurance_fund_atoms += fee
        self._filled_notional += qty_lots * price_ticks * k
        engine._events.append(PositionLiquidated(
            taker.account_id, plan.instrument_id, plan.side, qty_lots, price_ticks, plan.limit_price_ticks,
            plan.bankruptcy_price_ticks, fee, plan.equity_atoms, plan.maintenance_atoms))

    # ------------------------------------------------------------------ the loss waterfall

    def _fund_view(self) -> _FundView:
        """The fund as the waterfall planner sees it: cash = ``insurance_fund_atoms``, its inventory."""
        fund = self.engine.accounts.get(FUND)
        assert fund is None or fund.balance_atoms == 0, "fund account cash is swept after every operation"
        return _FundView(self.engine.insurance_fund_atoms, {} if fund is None else fund.positions)

    def _holders_list(self, iid: int, exclude: int) -> list[Account]:
        """Accounts holding ``iid`` (from the holders index), ``exclude`` and the fund left out. In set order,
        not sorted: the ADL ranking is a total order by (rank, account id) that does not depend on the
        order it is given the holders in (waterfall.adl_queue; a differential test shuffles them), so a
        million ids are not sorted first for nothing."""
        accounts = self.engine.accounts
        return [accounts[a] for a in self.holders[iid] if a != exclude and a != FUND]

    def _pool(self, iids: list[int], exclude: int) -> list[Account]:
        """The socialization pool: holders of ``iids``, lowest ids first, at most ``socialized_accounts_max``."""
        ids: set[int] = set()
        for iid in iids:
            ids |= self.holders[iid]
        ids.discard(exclude)
        ids.discard(FUND)
        accounts = self.engine.accounts
        return [accounts[a] for a in sorted(ids)[: self.config.waterfall.socialized_accounts_max]]

    def _waterfall(self, account: Account) -> None:
        """Plan and apply the loss waterfall of a bankrupt account (waterfall.py). The holders index is
        read only if ADL or socialization is reached: O(holders of its instruments) then, O(1) when the
        fund takes everything."""
        engine = self.engine
        aid = account.account_id
        iids = sorted(iid for iid, p in account.positions.items() if p.size_lots)
        backstop_id = self.config.backstop_account_id
        backstop = engine.accounts.get(backstop_id) if backstop_id and backstop_id != FUND else None
        if account_health(account, engine.specs, engine.marks).equity_atoms < 0:
            self.negative_equity_seen_ns = engine.now_ns
        plan = plan_waterfall(account, engine.specs, engine.marks, self._fund_view(),
                              lambda iid: self._holders_list(iid, aid), lambda: self._pool(iids, aid),
                              self.config.waterfall, backstop)
        self._apply_plan(plan)

    def _fund_waterfall(self) -> None:
        """The fund's equity (cash + uPnL) fell below zero: its inventory goes through ADL at the fund's
        bankruptcy price, socialized loss and bad debt (waterfall.py, steps 3-8)."""
        engine = self.engine
        view = self._fund_view()
        iids = sorted(iid for iid, p in view.positions.items() if p.size_lots)
        backstop_id = self.config.backstop_account_id
        backstop = engine.accounts.get(backstop_id) if backstop_id and backstop_id != FUND else None
        self.negative_equity_seen_ns = engine.now_ns
        plan = plan_waterfall(view, engine.specs, engine.marks, view, lambda iid: self._holders_list(iid, FUND),
                              lambda: self._pool(iids, FUND), self.config.waterfall, backstop)
        self._apply_plan(plan)

    def _credit(self, account_id: int, amount_atoms: int) -> None:
        """Cash to an account (negative: from it); the fund's cash is ``insurance_fund_atoms``."""
        if account_id == FUND:
            self.engine.insurance_fund_atoms += amount_atoms
        else:
            self.engine.accounts[account_id].balance_atoms += amount_atoms

    def _fund_account(self) -> Account:
        """The fund's position account, created on its first takeover (client ids start at 1)."""
        engine = self.engine
        fund = engine.accounts.get(FUND)
        if fund is None:
            fund = engine.accounts[FUND] = Account(FUND, 0)
        return fund

    def _apply_plan(self, plan: WaterfallPlan) -> None:
        """Apply a waterfall plan with the engine's settlement arithmetic, OI bookkeeping and events."""
        engine = self.engine
        events = engine._events
        aid = plan.account_id
        for step in plan.steps:
            if isinstance(step, ForcedClose):
                self._apply_close(step)
            elif isinstance(step, FundPayment):
                self._credit(FUND, -step.amount_atoms)
                self._credit(aid, step.amount_atoms)
                events.append(InsuranceFundUsed(aid, step.amount_atoms, engine.insurance_fund_atoms))
            elif isinstance(step, SocializedCharge):
                self._credit(step.account_id, -step.amount_atoms)
                self._credit(aid, step.amount_atoms)
                events.append(SocializedLoss(step.account_id, aid, step.amount_atoms))
                self.touch(step.account_id)
            else:
                assert isinstance(step, BadDebtBooked)
                self._sweep_fund(book_shortfall=False)  # the fund's realized PnL first: the booking is of its cash
                self._credit(step.account_id, step.amount_atoms)
                self.bad_debt_atoms += step.amount_atoms
                events.append(BadDebtRecorded(step.account_id, step.amount_atoms, self.bad_debt_atoms))
        self._sweep_fund()
        if engine._touched:
            engine._resize_reduce_only()
        engine.mark_epoch += 1  # charges and socialized losses moved cash without a margin check

    def _apply_close(self, close: ForcedClose) -> None:
        """One forced close at the mark (settle_fill on both sides) plus its charge, and its events."""
        engine = self.engine
        iid = close.instrument_id
        k = engine.specs[iid].atoms_per_tick_lot
        me = engine.accounts[close.account_id]
        other = self._fund_account() if close.counterparty_id == FUND else engine.accounts[close.counterparty_id]
        mine = me.positions[iid]
        theirs = engine._position(other, iid)  # created in instrument-id order (Engine._position)
        oi_before = max(mine.size_lots, 0) + max(theirs.size_lots, 0)
        settle_fill(me, mine, -close.account_side * close.qty_lots, close.price_ticks, k)
        pnl = settle_fill(other, theirs, close.account_side * close.qty_lots, close.price_ticks, k)
        engine.open_interest_lots[iid] += max(mine.size_lots, 0) + max(theirs.size_lots, 0) - oi_before
        self.holding_changed(iid, me.account_id, mine.size_lots)
        self.holding_changed(iid, other.account_id, theirs.size_lots)
        if other.account_id == FUND or me.account_id == FUND:
            self._sweep_fund(book_shortfall=False)  # realized PnL of its inventory into its cash (plan-checked)
        self._credit(other.account_id, -close.charge_atoms)
        self._credit(me.account_id, close.charge_atoms)
        if close.via == CloseVia.INSURANCE_FUND or close.via == CloseVia.BACKSTOP:
            engine._events.append(PositionTakenOver(iid, me.account_id, other.account_id, close.qty_lots,
                                                    close.price_ticks, close.charge_atoms, int(close.via),
                                                    close.over_capacity))
            if close.via == CloseVia.INSURANCE_FUND and close.charge_atoms:
                engine._events.append(InsuranceFundUsed(me.account_id, close.charge_atoms, engine.insurance_fund_atoms))
        else:
            engine._events.append(AutoDeleveraged(iid, me.account_id, other.account_id, close.qty_lots,
                                                  close.price_ticks, int(close.via), close.charge_atoms, pnl))
        if other.account_id == FUND:
            if iid not in self.fund_unwind_ns:
                self.fund_unwind_ns[iid] = engine.now_ns + self.config.waterfall.fund_unwind_interval_ns
            self.fund_open = True
        else:
            self.touch(other.account_id)
            if theirs.reduce_only_count or (other.account_id, iid) in engine.triggers.position_keys:
                engine._touched.append((other, iid))

    # ------------------------------------------------------------------ the insurance fund's inventory

    def _sweep_fund(self, book_shortfall: bool = True) -> None:
        """Move the fund account's realized PnL into the fund's cash; a shortfall below zero (only a price
        gap beyond everything the waterfall could place) goes to the venue's bad-debt account, unless the
        caller books it itself (``book_shortfall`` False: a plan's ``BadDebtBooked`` step follows)."""
        engine = self.engine
        fund = engine.accounts.get(FUND)
        if fund is None or fund.balance_atoms == 0:
            return
        engine.insurance_fund_atoms += fund.balance_atoms
        fund.balance_atoms = 0
        if book_shortfall and engine.insurance_fund_atoms < 0:
            debt = -engine.insurance_fund_atoms
            engine.insurance_fund_atoms = 0
            self.bad_debt_atoms += debt
            engine._events.append(BadDebtRecorded(FUND, debt, self.bad_debt_atoms))

    def _manage_fund(self) -> None:
        """Once per command while the fund holds inventory: its own waterfall if its equity is below zero
        (unless an instrument it holds has liquidations paused), else one unwind IOC per instrument whose
        interval has passed (bounded by the instrument count)."""
        engine = self.engine
        fund = engine.accounts.get(FUND)
        if fund is None:
            return
        if account_health(self._fund_view(), engine.specs, engine.marks).equity_atoms < 0:
            if not self._paused(fund):  # an oracle pause holds the fund's waterfall like any liquidation
                self._fund_waterfall()
            return
        for iid in sorted(self.fund_unwind_ns):
            pos = fund.positions.get(iid)
            if pos is None or pos.size_lots == 0 or engine.now_ns < self.fund_unwind_ns[iid]:
                continue
            if self.liquidations_paused.get(iid, False):
                continue
            if not engine._integrity_idle and engine.integ[iid].status.state != MarketState.ACTIVE:
                continue
            if self._unwind(fund, iid, pos):
                self.fund_unwind_ns[iid] = engine.now_ns + self.config.waterfall.fund_unwind_interval_ns

    def _unwind(self, fund: Account, iid: int, pos: Position) -> bool:
        """A reduce-only IOC of the fund: ``fund_unwind_fraction_ppm`` of its inventory (>= 1 lot) at a
        limit ``fund_unwind_slippage_ppm`` through the mark, no more lots than its cash can lose there;
        skipped (no order, no state change) when the book has nothing within the limit. Taker fee 0 (like
        a liquidation IOC). Returns whether an order was sent."""
        engine = self.engine
        cfg = self.config.waterfall
        spec = engine.specs[iid]
        mark = engine.marks[iid]
        size = pos.size_lots
        side = -1 if size > 0 else 1
        want = min(abs(size), max(1, -(-abs(size) * cfg.fund_unwind_fraction_ppm // 1_000_000)), spec.max_order_lots)
        if side < 0:
            limit = max(1, -(-mark * (1_000_000 - cfg.fund_unwind_slippage_ppm) // 1_000_000))
        else:
            limit = min(spec.price_ticks_max, mark * (1_000_000 + cfg.fund_unwind_slippage_ppm) // 1_000_000)
        limit = engine.band_limit(iid, side, limit)  # never outside a price band
        book = engine.books[iid]
        best = book.best_bid() if side < 0 else book.best_ask()
        if best is None or (best < limit if side < 0 else best > limit):
            return False  # nothing fillable within the limit: no order, no events
        qty = cash_safe_close_lots(engine.insurance_fund_atoms, size, pos.cost_atoms, limit,
                                   spec.atoms_per_tick_lot, want)
        if qty <= 0:
            return False
        order = Order(engine.next_order_id, FUND, iid, 0, side, limit, qty, int(TimeInForce.IOC), False, True,
                      int(STP.EXPIRE_MAKER), 0)
        engine.next_order_id += 1
        engine._track(fund, order)
        engine._events.append(OrderAccepted(order.order_id, FUND, iid, 0, side, limit, qty, int(TimeInForce.IOC)))
        self.active_order_id, self.active_plan = order.order_id, None
        engine._execute(order, spec)
        self.active_order_id = 0
        return True

    def _prune_fund(self) -> None:
        """Drop the fund's flat positions, their unwind timers and, when it holds nothing, its account."""
        engine = self.engine
        fund = engine.accounts.get(FUND)
        for iid in sorted(self.fund_unwind_ns):
            held = None if fund is None else fund.positions.get(iid)
            if held is None or held.size_lots == 0:
                del self.fund_unwind_ns[iid]
        if fund is None:
            self.fund_open = False
            return
        for iid in sorted(fund.positions):
            if fund.positions[iid].is_idle():
                del fund.positions[iid]
        if not fund.positions and not fund.orders:
            assert fund.balance_atoms == 0
            del engine.accounts[FUND]
        self.fund_open = any(p.size_lots for p in fund.positions.values())

    # ------------------------------------------------------------------ state

    def canonical(self) -> list[Any]:
        """Everything that changes outcomes, as plain data in a fixed order."""
        return [
            sorted(self.index_prices.items()),
            sorted(self.index_times_ns.items()),
            sorted((iid, int(p)) for iid, p in self.liquidations_paused.items()),
            sorted(self.last_trade_ticks.items()),
            [[iid, list(s.basis_half_ticks), s.basis_sum, s.next_basis_sample_ns, s.ema_basis_half_ticks,
              s.ema_fallback_half_ticks] for iid, s in sorted(self.mark_states.items())],
            [[iid, a.next_sample_ns, list(a.samples)] for iid, a in sorted(self.premium.items())],
            sorted(self.next_funding_ns.items()),
            sorted(self.last_funding_rate_ppb.items()),
            sorted((aid, w.window_start_ns, w.used_atoms) for aid, w in self.throttle.items()),
            list(self.queue),
            self.bad_debt_atoms,
        ] + self._extra_state()

    def _extra_state(self) -> list[Any]:
        """Volatility and withdrawal-gate state, and the fund's unwind timers: present only when
        configured / non-empty (hashes of venues without them are unchanged)."""
        out: list[Any] = []
        if self.vol_configs or self.config.withdrawal_gate_ns:
            vol = [[iid, self.vol_variance[iid], self.vol_last_index[iid], self.vol_next_sample_ns[iid],
                    self.vol_multiplier_ppm[iid]] for iid in sorted(self.vol_configs)]
            out.append([vol, self.negative_equity_seen_ns])
        if self.fund_unwind_ns:
            out.append(["fund_unwind_ns", [[iid, t] for iid, t in sorted(self.fund_unwind_ns.items())]])
        if self.parked:
            out.append(["parked", [[aid, t] for aid, t in sorted(self.parked.items())]])
        return out

    def restore(self, data: list[Any]) -> None:
        """Inverse of :meth:`canonical` (after the engine's accounts were restored); rebuilds the trigger
        index and the holders index."""
        (index_prices, index_times, paused, last_trade, marks, premium, next_funding, last_rate, throttle, queue,
         bad_debt) = data[:11]
        parked: dict[int, int] = {}
        for extra in data[11:]:
            if extra and extra[0] == "fund_unwind_ns":
                self.fund_unwind_ns = {iid: t for iid, t in extra[1]}
                continue
            if extra and extra[0] == "parked":
                parked = {aid: t for aid, t in extra[1]}
                continue
            vol, self.negative_equity_seen_ns = extra
            for iid, variance, last_index, next_sample, multiplier in vol:
                self.vol_variance[iid], self.vol_last_index[iid] = variance, last_index
                self.vol_next_sample_ns[iid], self.vol_multiplier_ppm[iid] = next_sample, multiplier
                self._apply_multiplier(iid, multiplier)
        self.index_prices = dict(index_prices)
        self.index_times_ns = dict(index_times)
        self.liquidations_paused = {iid: bool(p) for iid, p in paused}
        self.last_trade_ticks = dict(last_trade)
        for iid, basis, basis_sum, next_sample, ema_basis, ema_fallback in marks:
            state = self.mark_states[iid]
            state.basis_half_ticks.clear()
            state.basis_half_ticks.extend(basis)
            state.basis_sum, state.next_basis_sample_ns = basis_sum, next_sample
            state.ema_basis_half_ticks, state.ema_fallback_half_ticks = ema_basis, ema_fallback
        for iid, next_sample, samples in premium:
            self.premium[iid].next_sample_ns = next_sample
            self.premium[iid].samples = list(samples)
        self.next_funding_ns = dict(next_funding)
        self.last_funding_rate_ppb = dict(last_rate)
        self.throttle = {aid: ThrottleWindow(start, used) for aid, start, used in throttle}
        self.queue = list(queue)
        self.queued = set(self.queue)
        self.bad_debt_atoms = bad_debt
        engine = self.engine
        self.parked = parked
        self.wake_heap = sorted((t, aid) for aid, t in parked.items())  # a sorted list is a heap
        self.next_wake_ns = self.wake_heap[0][0] if self.wake_heap else NEVER_NS
        allowances = {aid: liquidation_allowance_atoms(self.throttle.get(aid), engine.now_ns, self.config.liquidation)
                      for aid in sorted(parked)}
        self.holders = self._holders_from_accounts()
        fund = engine.accounts.get(FUND)
        self.fund_open = fund is not None and any(p.size_lots for p in fund.positions.values())
        self.index.bulk_load([a for aid, a in engine.accounts.items()
                              if aid != FUND and any(p.size_lots for p in a.positions.values())], engine.marks,
                             allowances)

    def _holders_from_accounts(self) -> dict[int, set[int]]:
        """The holders index recomputed from the accounts (restore; the invariant check compares)."""
        holders: dict[int, set[int]] = {iid: set() for iid in self.engine.specs}
        for aid, account in self.engine.accounts.items():
            for iid, pos in account.positions.items():
                if pos.size_lots:
                    holders[iid].add(aid)
        return holders

    def check(self) -> list[str]:
        """Risk invariants (tests, verifier): returns the broken ones, empty when all hold. O(accounts).

        The fund's cash and the bad-debt account are >= 0; the fund account holds no unswept cash and
        exists only with inventory; no flat account has a negative balance (every loss was absorbed by
        the waterfall); no account is below maintenance without a pending liquidation (queued, held by a
        pause, or parked by the throttle with no step possible now: ``plan_liquidation`` is None with its
        allowance, its window not yet over); parked accounts are exactly the index's, each with a heap
        entry; the holders index equals the accounts' positions.
        """
        engine = self.engine
        broken: list[str] = []
        if engine.insurance_fund_atoms < 0:
            broken.append("insurance fund negative")
        if self.bad_debt_atoms < 0:
            broken.append("bad debt negative")
        fund = engine.accounts.get(FUND)
        if fund is not None:
            has_inventory = any(p.size_lots for p in fund.positions.values())
            if fund.balance_atoms != 0:
                broken.append(f"fund account holds {fund.balance_atoms} unswept atoms")
            if not has_inventory and not fund.orders:
                broken.append("idle fund account not pruned")
            if FUND in self.queue or FUND in self.index:
                broken.append("fund account in the liquidation queue or index")
        inventory = set() if fund is None else {iid for iid, p in fund.positions.items() if p.size_lots}
        if self.fund_open != bool(inventory):
            broken.append("fund_open flag disagrees with the fund's inventory")
        if not set(self.fund_unwind_ns) <= inventory:
            broken.append("fund unwind timer for an instrument the fund does not hold")
        queued = set(self.queue)
        if queued != self.queued or len(queued) != len(self.queue):
            broken.append("liquidation queue and its membership set disagree (or hold duplicates)")
        cfg = self.config.liquidation
        allowances = self.index.parked_allowances()
        if set(allowances) != set(self.parked) or queued & set(self.parked):
            broken.append("parked accounts disagree with the index's (or are queued too)")
        if not set((t, aid) for aid, t in self.parked.items()) <= set(self.wake_heap):
            broken.append("parked account without a wake-heap entry")
        for aid, wake_ns in sorted(self.parked.items()):
            window = self.throttle.get(aid)
            if wake_ns <= engine.now_ns or wake_ns < self.next_wake_ns or window is None or \
                    wake_ns != window.window_start_ns + cfg.interval_ns:
                broken.append(f"account {aid} parked past or beside its throttle window")
                break
            if allowances.get(aid) != liquidation_allowance_atoms(window, engine.now_ns, cfg):
                broken.append(f"account {aid} parked with a stale allowance")
                break
        for aid, account in engine.accounts.items():
            if aid == FUND:
                continue
            if account.balance_atoms < 0 and not any(p.size_lots for p in account.positions.values()):
                broken.append(f"account {aid} is flat with a negative balance {account.balance_atoms}")
                break
            if aid in queued or self._paused(account):
                continue
            if account_health(account, engine.specs, engine.marks).liquidatable:
                if aid in self.parked:
                    allowance = liquidation_allowance_atoms(self.throttle.get(aid), engine.now_ns, cfg)
                    if plan_liquidation(account, engine.specs, engine.marks, cfg, allowance) is None:
                        continue  # the documented throttle carry-over: nothing can be done before it wakes
                    broken.append(f"parked account {aid} has a liquidation step it is not given")
                    break
                broken.append(f"account {aid} below maintenance margin without a pending liquidation")
                break
        if self.holders != self._holders_from_accounts():
            broken.append("holders index disagrees with the positions")
        return broken
