"""The risk engine: index and mark price, funding, liquidation, insurance fund, ADL, socialized loss.

A component of :class:`bastion.core.engine.Engine` (``engine.risk``), called at fixed points of
``Engine.apply`` (docs/risk-integration.md §4):

* before the handler — :meth:`RiskEngine.before_command`: funding premium samples (one a minute) and
  funding settlement (hourly at F/8) by engine time;
* the ``SetOraclePrice`` handler — :meth:`RiskEngine.set_oracle_price`: index, mark (Binance
  ``median(price1, price2, last)``), and a liquidation sweep of that instrument;
* during matching — :meth:`touch` (an account's balance or position changed), :meth:`on_fill`
  (last trade price) and :meth:`liquidation_fill` (fee of a liquidation IOC fill, to the fund);
* after the handler — :meth:`after_command`: exact health of every touched account, trigger-index sweeps
  for instruments whose mark moved, then up to ``liquidations_per_command_max`` liquidations: cancel the
  account's orders, send a reduce-only IOC at the fillable price (liquidation.py), and if the account is
  left bankrupt run the loss waterfall (insurance fund → backstop/ADL at the bankruptcy price →
  socialized loss → bad debt; waterfall.py), each step an event.

All state that changes outcomes is in :meth:`canonical` (hashed, snapshotted); the trigger index is
derived and rebuilt on restore. Integers only; every loop is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
from bastion.core.risk.mark import MarkConfig, MarkMethod, MarkPriceState
from bastion.core.risk.oi_caps import opening_lots
from bastion.core.risk.vol_margin import (
    VolMarginConfig,
    ewma_variance_next,
    log_return_ppm,
    scaled_spec,
    vol_multiplier_ppm,
    volatility_ppm,
)
from bastion.core.risk.waterfall import WaterfallConfig, WaterfallPlan, backstop_capacity_lots, plan_waterfall
from bastion.core.risk_messages import (
    AutoDeleveraged,
    BadDebtRecorded,
    FundingPaid,
    FundingRateSet,
    IndexPriceSet,
    InsuranceFundUsed,
    PositionLiquidated,
    SocializedLoss,
    VolMultiplierSet,
)

_LIQUIDATION_STATES = (MarketState.ACTIVE, MarketState.POST_ONLY)
"""Market states in which a liquidation IOC is sent (POST_ONLY exempts it like a reduce-only close)."""

if TYPE_CHECKING:
    from bastion.core.engine import Engine

__all__ = ["FUNDING_PERIOD_NS", "RiskConfig", "RiskEngine"]

FUNDING_PERIOD_NS = 8 * 3600 * 10**9
"""The funding rate is quoted per 8 hours (Binance, dYdX)."""

IMPACT_LEVELS_MAX = 64
"""Price levels read per side to find the impact bid/ask."""

FUNDING_HOLDERS_MAX = 1_000_000
"""Most positions one eager funding settlement pays (bounds the settlement loop)."""


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Parameters of the risk engine (defaults from the anchors; shared/reference/risk-engines.md).

    Attributes:
        liquidation: partial-liquidation sizing, fee and throttle (liquidation.py).
        waterfall: insurance-fund cap per account, ADL candidates, socialized-loss limits (waterfall.py).
        funding: premium sampling, settlement interval, interest, clamp, cap (funding.py).
        mark: mark-price rule (mark.py).
        impact_margin_atoms: Binance impact margin notional, 200 USDT (impact price = the price of
            ``impact_margin / IMR`` of book depth).
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
             mc.index_band_ppm],
            self.impact_margin_atoms,
            self.backstop_account_id,
        ] + self.extras()


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
        self.bad_debt_atoms = 0
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
        book = engine.books[iid]
        last = self.last_trade_ticks.get(iid)
        state = self.mark_states[iid]
        state.observe(price, book.best_bid(), book.best_ask(), last)
        if self.next_funding_ns[iid] == 0:
            self._start_funding(iid)
        method = self.config.mark.method
        if method == MarkMethod.INDEX:
            mark = price
        elif method == MarkMethod.HYPERLIQUID:
            mark = state.hyperliquid_mark_ticks(price, book.best_bid(), book.best_ask(), last)
        else:
            until = max(0, self.next_funding_ns[iid] - engine.now_ns)
            mark = state.binance_mark_ticks(price, self.last_funding_rate_ppb[iid], until, FUNDING_PERIOD_NS, last)
        mark = min(max(mark, 1), spec.price_ticks_max)
        if iid in self.vol_configs and engine.now_ns >= self.vol_next_sample_ns[iid]:
            self._vol_sample(iid, price)
        if mark != engine.marks[iid]:
            engine._mark_moved(iid, mark)

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
        holders = [a for a in engine.accounts.values() if iid in a.positions and a.positions[iid].size_lots]
        for account in holders:
            self.index.update(account, engine.marks)
        self.marks_changed.add(iid)

    def _apply_multiplier(self, iid: int, multiplier: int) -> None:
        base = self.base_specs[iid]
        self.engine.specs[iid] = base if multiplier == 1_000_000 else scaled_spec(base, multiplier)

    # ------------------------------------------------------------------ pre-trade and withdrawal gates

    def pre_trade_code(self, account_id: int, iid: int, position_lots: int, side: int, qty_lots: int) -> RejectCode | None:
        """Risk gates of an order that may increase risk (not reduce-only): 305, 308, 304; None passes."""
        if self.queue and account_id in self.queue:
            return RejectCode.account_in_liquidation
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
                imn = impact_notional_atoms(self.config.impact_margin_atoms, spec.margin_tiers[-1].imf_ppm)
                k = spec.atoms_per_tick_lot
                acc.observe(now, impact_price_ticks(bids, imn, k, -1), impact_price_ticks(asks, imn, k, 1), index)
            if now >= self.next_funding_ns[iid] > 0:
                self._settle_funding(iid)
                self.next_funding_ns[iid] += self.config.funding.settlement_interval_ns

    def _settle_funding(self, iid: int) -> None:
        """Eager settlement: every holder pays/receives size * mark * k * rate; remainder to the fund."""
        engine = self.engine
        premium = self.premium[iid].close()
        rate_8h = funding_rate_ppb(premium, self.config.funding)
        rate = settlement_rate_ppb(rate_8h, self.config.funding.settlement_interval_ns)
        self.last_funding_rate_ppb[iid] = rate_8h
        holders = [(aid, acc.positions[iid].size_lots) for aid, acc in sorted(engine.accounts.items())
                   if iid in acc.positions and acc.positions[iid].size_lots]
        assert len(holders) <= FUNDING_HOLDERS_MAX
        mark = engine.marks[iid]
        settlement = funding_payments(iid, holders, mark, engine.specs[iid].atoms_per_tick_lot, rate, 0)
        engine._events.append(FundingRateSet(iid, premium, rate_8h, rate, mark, settlement.remainder_atoms))
        for payment in settlement.payments:
            engine.accounts[payment.account_id].balance_atoms += payment.amount_atoms
            engine._events.append(FundingPaid(iid, payment.account_id, payment.amount_atoms))
            self.touch(payment.account_id)
        engine.insurance_fund_atoms += settlement.remainder_atoms
        engine.mark_epoch += 1  # balances moved without a margin check: re-check every maker's fills

    # ------------------------------------------------------------------ liquidation (after the handler)

    def after_command(self) -> None:
        """Health of touched accounts, sweeps of moved marks, then the bounded liquidation queue."""
        engine = self.engine
        if self.touched:
            for aid in sorted(self.touched):
                self.stale.add(aid)
                account = engine.accounts[aid]
                if account_health(account, engine.specs, engine.marks).liquidatable:
                    self._enqueue(aid)
            self.touched.clear()
        if self.marks_changed:
            self._refresh_stale()
            for iid in sorted(self.marks_changed):
                found = self.index.liquidatable(iid, engine.marks[iid], engine.accounts, engine.marks)
                for aid in sorted(found):
                    self._enqueue(aid)
            self.marks_changed.clear()
            self.index.refresh_pending(engine.marks)
        if self.queue:
            self._process_queue()

    def _refresh_stale(self) -> None:
        engine = self.engine
        for aid in sorted(self.stale):
            account = engine.accounts[aid]
            if any(p.size_lots for p in account.positions.values()):
                self.index.update(account, engine.marks)
            else:
                self.index.remove(aid)
        self.stale.clear()

    def _enqueue(self, account_id: int) -> None:
        if account_id not in self.queue:
            self.queue.append(account_id)

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

    def _process_queue(self) -> None:
        """Liquidation steps for queued accounts, at most ``liquidations_per_command_max`` per command.

        A liquidation can push its counterparties under maintenance (a resting bid filled far above the
        mark, an ADL charge): those are re-checked at once and, while the budget lasts, liquidated in the
        same command rather than left for the next one. Each account gets at most one step per command
        (a partial liquidation's next step waits for the next command, as the per-interval throttle
        intends). Accounts left queued (budget spent, oracle pause) are retried on the next command.
        """
        engine = self.engine
        budget = self.config.liquidation.liquidations_per_command_max
        attempted: set[int] = set()
        while True:
            keep: list[int] = []
            stepped = False
            for aid in self.queue:
                account = engine.accounts[aid]
                if budget == 0 or aid in attempted or self._paused(account):
                    keep.append(aid)
                    continue
                budget -= 1
                attempted.add(aid)
                stepped = True
                if self._liquidate(account):
                    keep.append(aid)
            self.queue = keep
            fresh = False
            if self.touched:  # counterparties and the liquidated accounts: re-check at once
                for aid in sorted(self.touched):
                    self.stale.add(aid)
                    if aid not in self.queue and account_health(engine.accounts[aid], engine.specs,
                                                                engine.marks).liquidatable:
                        self.queue.append(aid)
                        fresh = fresh or aid not in attempted
                self.touched.clear()
            if not (stepped and fresh and budget > 0):
                return

    def _liquidate(self, account: Account) -> bool:
        """One liquidation step; returns True while the account still needs liquidating."""
        engine = self.engine
        for order in list(account.orders.values()):
            engine._cancel_resting(order, CancelReason.liquidation)
        cfg = self.config.liquidation
        allowance = liquidation_allowance_atoms(self.throttle.get(account.account_id), engine.now_ns, cfg)
        plan = plan_liquidation(account, engine.specs, engine.marks, cfg, allowance)
        if plan is not None:
            self._send_ioc(account, plan)
        health = account_health(account, engine.specs, engine.marks)
        has_positions = any(p.size_lots for p in account.positions.values())
        if (has_positions and health.equity_atoms <= 0) or account.balance_atoms < 0:
            # Bankrupt with positions left, or closed out flat below zero (the book filled the IOC at
            # its bankruptcy price, rounded against the account): the fund covers the deficit first.
            self._waterfall(account)
            health = account_health(account, engine.specs, engine.marks)
            has_positions = any(p.size_lots for p in account.positions.values())
        self.touch(account.account_id)
        return has_positions and health.liquidatable

    def _send_ioc(self, account: Account, plan: LiquidationOrder) -> None:
        engine = self.engine
        spec = engine.specs[plan.instrument_id]
        order = Order(engine.next_order_id, account.account_id, plan.instrument_id, 0, plan.side,
                      plan.limit_price_ticks, plan.qty_lots, int(TimeInForce.IOC), False, True,
                      int(STP.EXPIRE_MAKER), 0)
        engine.next_order_id += 1
        engine._track(account, order)
        engine._events.append(OrderAccepted(order.order_id, account.account_id, plan.instrument_id, 0, plan.side,
                                            plan.limit_price_ticks, plan.qty_lots, int(TimeInForce.IOC)))
        self.active_order_id, self.active_plan = order.order_id, plan
        self._filled_notional = 0
        engine._execute(order, spec)
        self.active_order_id, self.active_plan = 0, None
        self.throttle[account.account_id] = throttle_record(self.throttle.get(account.account_id), engine.now_ns,
                                                            self._filled_notional, self.config.liquidation)

    def liquidation_fill(self, taker: Order, qty_lots: int, price_ticks: int) -> None:
        """Called by ``Engine.on_trade`` for fills of the active liquidation IOC: fee to the fund."""
        plan = self.active_plan
        assert plan is not None and taker.order_id == self.active_order_id
        engine = self.engine
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

    def _waterfall(self, account: Account) -> None:
        engine = self.engine
        iids = [iid for iid, p in account.positions.items() if p.size_lots]
        counterparties = {
            iid: [a for a in engine.accounts.values()
                  if a is not account and iid in a.positions and a.positions[iid].size_lots]
            for iid in iids
        }
        pool_ids = sorted({a.account_id for accs in counterparties.values() for a in accs})
        pool = [engine.accounts[a] for a in pool_ids[: self.config.waterfall.socialized_accounts_max]]
        backstop = engine.accounts.get(self.config.backstop_account_id) if self.config.backstop_account_id else None
        capacity: dict[int, int] | None = None
        if backstop is not None and backstop is not account:
            capacity = {iid: backstop_capacity_lots(backstop, iid, account.positions[iid].size_lots, engine.specs,
                                                    engine.marks, self.config.liquidation.buffer_ppm)
                        for iid in iids}
        if account_health(account, engine.specs, engine.marks).equity_atoms < 0:
            self.negative_equity_seen_ns = engine.now_ns
        plan = plan_waterfall(account, engine.specs, engine.marks, engine.insurance_fund_atoms, counterparties, pool,
                              self.config.waterfall, backstop if capacity is not None else None, capacity)
        self._apply_waterfall(account, plan)

    def _apply_waterfall(self, account: Account, plan: WaterfallPlan) -> None:
        """Apply a waterfall plan with the engine's settlement arithmetic, OI bookkeeping and events."""
        engine = self.engine
        events = engine._events
        for close in plan.closes:
            iid = close.instrument_id
            k = engine.specs[iid].atoms_per_tick_lot
            other = engine.accounts[close.counterparty_id]
            mine = account.positions[iid]
            theirs = other.positions.get(iid)
            if theirs is None:
                theirs = other.positions[iid] = Position()
            oi_before = max(mine.size_lots, 0) + max(theirs.size_lots, 0)
            settle_fill(account, mine, -close.account_side * close.qty_lots, close.price_ticks, k)
            pnl = settle_fill(other, theirs, close.account_side * close.qty_lots, close.price_ticks, k)
            engine.open_interest_lots[iid] += max(mine.size_lots, 0) + max(theirs.size_lots, 0) - oi_before
            other.balance_atoms -= close.charge_atoms
            account.balance_atoms += close.charge_atoms
            events.append(AutoDeleveraged(iid, account.account_id, other.account_id, close.qty_lots, close.price_ticks,
                                          int(close.via), close.charge_atoms, pnl))
            self.touch(other.account_id)
            if theirs.reduce_only_count:
                engine._touched.append((other, iid))
        if plan.insurance_delta_atoms:
            account.balance_atoms -= plan.insurance_delta_atoms
            engine.insurance_fund_atoms += plan.insurance_delta_atoms
            events.append(InsuranceFundUsed(account.account_id, -plan.insurance_delta_atoms,
                                            engine.insurance_fund_atoms))
        for charge in plan.socialized:
            engine.accounts[charge.account_id].balance_atoms -= charge.amount_atoms
            account.balance_atoms += charge.amount_atoms
            events.append(SocializedLoss(charge.account_id, account.account_id, charge.amount_atoms))
            self.touch(charge.account_id)
        if plan.bad_debt_atoms:
            self.bad_debt_atoms += plan.bad_debt_atoms
            events.append(BadDebtRecorded(account.account_id, plan.bad_debt_atoms))
        if engine._touched:
            engine._resize_reduce_only()
        engine.mark_epoch += 1  # ADL charges and socialized losses moved cash without a margin check

    # ------------------------------------------------------------------ state

    def canonical(self) -> list[Any]:
        """Everything that changes outcomes, as plain data in a fixed order."""
        return [
            sorted(self.index_prices.items()),
            sorted(self.index_times_ns.items()),
            sorted((iid, int(p)) for iid, p in self.liquidations_paused.items()),
            sorted(self.last_trade_ticks.items()),
            [[iid, list(s.basis_half_ticks), s.basis_sum, s.ema_basis_half_ticks, s.ema_fallback_half_ticks]
             for iid, s in sorted(self.mark_states.items())],
            [[iid, a.next_sample_ns, list(a.samples)] for iid, a in sorted(self.premium.items())],
            sorted(self.next_funding_ns.items()),
            sorted(self.last_funding_rate_ppb.items()),
            sorted((aid, w.window_start_ns, w.used_atoms) for aid, w in self.throttle.items()),
            list(self.queue),
            self.bad_debt_atoms,
        ] + self._extra_state()

    def _extra_state(self) -> list[Any]:
        """Volatility and withdrawal-gate state: present only when configured (hashes of venues without
        them are unchanged)."""
        if not self.vol_configs and not self.config.withdrawal_gate_ns:
            return []
        vol = [[iid, self.vol_variance[iid], self.vol_last_index[iid], self.vol_next_sample_ns[iid],
                self.vol_multiplier_ppm[iid]] for iid in sorted(self.vol_configs)]
        return [[vol, self.negative_equity_seen_ns]]

    def restore(self, data: list[Any]) -> None:
        """Inverse of :meth:`canonical` (after the engine's accounts were restored); rebuilds the index."""
        (index_prices, index_times, paused, last_trade, marks, premium, next_funding, last_rate, throttle, queue,
         bad_debt) = data[:11]
        if len(data) > 11:
            vol, self.negative_equity_seen_ns = data[11]
            for iid, variance, last_index, next_sample, multiplier in vol:
                self.vol_variance[iid], self.vol_last_index[iid] = variance, last_index
                self.vol_next_sample_ns[iid], self.vol_multiplier_ppm[iid] = next_sample, multiplier
                self._apply_multiplier(iid, multiplier)
        self.index_prices = dict(index_prices)
        self.index_times_ns = dict(index_times)
        self.liquidations_paused = {iid: bool(p) for iid, p in paused}
        self.last_trade_ticks = dict(last_trade)
        for iid, basis, basis_sum, ema_basis, ema_fallback in marks:
            state = self.mark_states[iid]
            state.basis_half_ticks.clear()
            state.basis_half_ticks.extend(basis)
            state.basis_sum, state.ema_basis_half_ticks, state.ema_fallback_half_ticks = basis_sum, ema_basis, ema_fallback
        for iid, next_sample, samples in premium:
            self.premium[iid].next_sample_ns = next_sample
            self.premium[iid].samples = list(samples)
        self.next_funding_ns = dict(next_funding)
        self.last_funding_rate_ppb = dict(last_rate)
        self.throttle = {aid: ThrottleWindow(start, used) for aid, start, used in throttle}
        self.queue = list(queue)
        self.bad_debt_atoms = bad_debt
        engine = self.engine
        self.index.bulk_load([a for a in engine.accounts.values() if any(p.size_lots for p in a.positions.values())],
                             engine.marks)

    def check(self) -> list[str]:
        """Risk invariants (tests, verifier): returns the broken ones, empty when all hold."""
        engine = self.engine
        broken: list[str] = []
        if engine.insurance_fund_atoms < 0:
            broken.append("insurance fund negative")
        negative = sum(-a.balance_atoms for a in engine.accounts.values() if a.balance_atoms < 0)
        if negative > self.bad_debt_atoms:
            broken.append(f"negative balances {negative} exceed recorded bad debt {self.bad_debt_atoms}")
        queued = set(self.queue)
        for aid, account in engine.accounts.items():
            if aid in queued or self._paused(account):
                continue
            if account_health(account, engine.specs, engine.marks).liquidatable:
                broken.append(f"account {aid} below maintenance margin without a pending liquidation")
                break
        return broken
