"""The engine: a pure, deterministic state machine ``apply(Sequenced) -> list[Event]``.

No clock, randomness, environment, I/O or floats: time arrives as ``Sequenced.timestamp_ns`` and prices
as commands. Every rejection is a :class:`~bastion.core.events.CommandRejected` event with a numbered
:class:`~bastion.core.rejects.RejectCode`, and a rejected command changes no state (validation and the
margin check run before any mutation). The full state can be snapshotted to canonical bytes and hashed
at any point; :meth:`Engine.restore` rebuilds an identical engine from those bytes.

Pipeline per command: expire due GTD orders -> validate -> risk check -> match -> settle -> rest/cancel
-> resize reduce-only orders touched by fills.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import msgspec
from sortedcontainers import SortedList  # type: ignore[import-untyped]

from bastion.core.accounts import Account, Position, settle_fill
from bastion.core.book.base import STOP_NONE, Order
from bastion.core.book.fast import FastBook
from bastion.core.commands import (
    STP,
    AmendOrder,
    CancelAll,
    CancelOrder,
    CommitOrder,
    CreateAccount,
    Deposit,
    DepositInsuranceFund,
    Heartbeat,
    OrderType,
    PlaceOrder,
    RevealOrder,
    Sequenced,
    SetKillSwitch,
    SetMarketState,
    SetMarkPrice,
    SetMatchingMode,
    TimeInForce,
    Transfer,
    TriggerSource,
    Withdraw,
)
from bastion.core.events import (
    AccountCreated,
    BondForfeited,
    BondReturned,
    CommandRejected,
    Deposited,
    Event,
    AuctionCleared,
    AuctionIndicative,
    InsuranceFundDeposited,
    KillSwitchSet,
    MarketStateChanged,
    MarkPriceSet,
    MatchingModeSet,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderCommitted,
    OrderReduced,
    RevealReceived,
    OrderTriggered,
    TradeExecuted,
    Transferred,
    TriggerOrderAccepted,
    TriggerOrderAmended,
    TriggerOrderReduced,
    TriggerOrderRejected,
    Withdrawn,
)
from bastion.core.instruments import InstrumentSpec, VenueConfig
from bastion.core.errors import InvariantViolation
from bastion.core.integrity.auction import AuctionOrder, indicative, pair_fills
from bastion.core.integrity.bands import Band, ReferenceSource, check_limit_price, protection_price
from bastion.core.integrity.batch import BatchBook, BatchClearing, ClearFn, clear_fast
from bastion.core.integrity.codes import BondForfeitReason, MatchingMode, TransitionReason
from bastion.core.integrity.commit_reveal import (
    COMMITMENT_BYTES,
    SALT_BYTES,
    BondForfeit,
    CommitAccepted,
    RevealAccepted,
    RoundClosed,
    SealedBidBook,
    SealedOrder,
)
from bastion.core.integrity.luld import LimitSide, LuldState, limit_side, luld_reference, luld_step
from bastion.core.integrity.market import InstrumentIntegrity
from bastion.core.integrity.states import (
    CommandKind,
    MarketState,
    MarketStatus,
    advance,
    check_command,
    classify_place,
    guardian_set,
    luld_halt,
    velocity_pause,
)
from bastion.core.margin import OVER_MAX_TIER, free_collateral_atoms, withdrawable_atoms
from bastion.core.rejects import CancelReason, RejectCode
from bastion.core.risk.liquidation import LiquidationOrder, throttle_record
from bastion.core.risk_engine import RiskConfig, RiskEngine
from bastion.core.risk_messages import SetOraclePrice
from bastion.core.triggers import TriggerBook, TriggerBookBase, TriggerOrder, is_market_kind, is_trigger_type
from bastion.core.units import PPM, ceil_div

__all__ = ["Engine", "InvariantViolation", "BookFactory"]

BookFactory = Callable[[int], Any]
ID_MAX = 2**63 - 1
TIME_NS_MAX = 2**63 - 1
"""Latest engine time and GTD expiry (int64 ns, year 2262): every time in the state fits an int64."""
BALANCE_ATOMS_MAX = 2**61
"""Largest settled cash a deposit or transfer may leave in one account (2.3e18 atoms: 2.3e12 USDC at
6 decimals), a quarter of int64, leaving headroom for realized PnL."""
DEPOSITS_TOTAL_ATOMS_MAX = 2**62
"""Largest venue-wide total of deposits (trader + insurance fund): bounds every balance and the fund."""
_INT_ENCODABLE_MIN = -(2**63)
_INT_ENCODABLE_MAX = 2**64 - 1
_NEVER = 2**63
DURATION_NS_MAX = 2**62  # longest guardian-scheduled auction (146 years)
_AUCTION_PRIORITY_BASE = 2**62  # orders that arrived during an auction rank after every resting order
# Refusals of a revealed order at admission that the trader neither caused nor could rule out when
# committing: its bond is returned instead of forfeited (docs/integrity-integration.md §7).
_VENUE_SIDE_REFUSALS = frozenset({RejectCode.auction_orders_max_reached, RejectCode.index_price_unavailable})
R = RejectCode
_LAST = int(TriggerSource.LAST)


def _is_int(value: object) -> bool:
    """True for ints and int enums, false for bool and everything else (fast path first)."""
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


class Engine:
    """Deterministic matching + settlement engine for one venue.

    Args:
        config: the validated venue configuration.
        book_factory: builds one order book per instrument id (``FastBook`` by default;
            ``ReferenceBook`` for the reference implementation).
        check_invariants: run the full O(state) invariant check after every command (tests/verifier).
        trigger_factory: builds the trigger-order book from the instrument ids; by default the book
            factory's ``trigger_book_factory`` attribute (``ReferenceBook`` names the naive
            ``ReferenceTriggerBook``, so the verifier's replay checks triggers independently), else the
            fast ``TriggerBook`` (core/triggers.py).
    """

    def __init__(self, config: VenueConfig, book_factory: BookFactory = FastBook, check_invariants: bool = False,
                 risk: RiskConfig | None = None, trigger_factory: Any = None):
        self.config = config
        self.limits = config.limits
        self.specs: dict[int, InstrumentSpec] = dict(config.instruments)
        self.books = {iid: book_factory(iid) for iid in sorted(self.specs)}
        self.marks: dict[int, int] = {iid: s.reference_price_ticks for iid, s in self.specs.items()}
        self.accounts: dict[int, Account] = {}
        self.orders: dict[int, Order] = {}
        self.expiries: SortedList = SortedList()
        self.next_expiry_ns = _NEVER
        self.open_interest_lots: dict[int, int] = {iid: 0 for iid in self.specs}
        self.seq = 0
        self.now_ns = 0
        self.next_order_id = 1
        self.mark_epoch = 0  # counts mark changes; see Order.margin_epoch (derived, not state)
        self._margin_free_ok = False
        self.fee_pool_atoms = 0
        self.insurance_fund_atoms = 0
        self.deposits_total_atoms = 0
        self.withdrawals_total_atoms = 0
        self.check_every_command = check_invariants
        # Per-command scratch (not state).
        self._events: list[Event] = []
        self._spec: InstrumentSpec | None = None
        self._touched: list[tuple[Account, int]] = []
        self.fills_made = 0
        self.fills_per_command_max = self.limits.fills_per_command_max
        self.levels_walked_max = self.limits.levels_walked_max
        self.risk_config = risk if risk is not None else (config.risk if config.risk is not None else RiskConfig())
        self._config_hash = hashlib.sha256(msgspec.msgpack.encode([config.canonical(), self.risk_config.canonical()])).digest()
        self.risk = RiskEngine(self, self.risk_config)
        if trigger_factory is None:
            trigger_factory = getattr(book_factory, "trigger_book_factory", TriggerBook)
        self.triggers: TriggerBookBase = trigger_factory(sorted(self.specs))  # untriggered stop / take-profit orders
        self.triggers_per_command_max = self.limits.triggers_per_command_max
        self._handlers: dict[type, Callable[[Any], None]] = {
            PlaceOrder: self._place,
            CancelOrder: self._cancel,
            CancelAll: self._cancel_all,
            AmendOrder: self._amend,
            CreateAccount: self._create_account,
            Deposit: self._deposit,
            Withdraw: self._withdraw,
            Transfer: self._transfer,
            DepositInsuranceFund: self._deposit_insurance_fund,
            SetMarkPrice: self._set_mark_price,
            SetOraclePrice: self._set_oracle_price,
            Heartbeat: lambda cmd: None,
            SetMarketState: self._set_market_state,
            SetKillSwitch: self._set_kill_switch,
            SetMatchingMode: self._set_matching_mode,
            CommitOrder: self._commit_order,
            RevealOrder: self._reveal_order,
        }
        # ---- market integrity (issue 4; docs/integrity-integration.md). ``_integrity_idle`` is True while
        # no instrument has a breaker configured, every market is ACTIVE/continuous with nothing scheduled
        # and the kill switch is off: then the hot path skips every integrity check (one attribute test).
        self.integ: dict[int, InstrumentIntegrity] = {iid: InstrumentIntegrity(self.specs[iid])
                                                      for iid in sorted(self.specs)}
        self._integ_default = {iid: m.canonical() for iid, m in self.integ.items()}
        self.guardian_ids = frozenset(config.guardian_ids)
        self.kill_switch_engaged = False
        self.bonds_escrowed_atoms = 0
        self.unbooked: dict[int, int] = {}  # order_id -> instrument_id of live orders held by an auction book
        self._swept: list[int] = []  # per-command scratch: instruments whose band sweep ran before the command
        self._integrity_idle = True
        self._batch_markets = False  # derived: some instrument is in BATCH or SEALED_BATCH mode
        self._admitting = False  # per-command scratch: a revealed sealed order is being admitted (§7)
        # The clearing rule of auctions and batches comes with the book: the reference book brings the
        # brute-force twin (auction_reference.clear_auction_naive), so the verifier checks clearings too.
        first_book = next(iter(self.books.values()), None)
        self._clear_fn: ClearFn = getattr(first_book, "auction_clearing", None) or clear_fast
        self._refresh_idle()

    # ------------------------------------------------------------------ entry point

    def apply(self, sequenced: Sequenced) -> list[Event]:
        """Apply one sequenced command and return the events it caused, in order.

        Command fields are read as untyped values and validated here (a client can send anything), so
        compiled builds never trust the declared field types.

        Raises:
            InvariantViolation: a bug (sequence gap, time going backwards, broken invariant).
        """
        item: Any = sequenced
        ts = item.timestamp_ns
        if item.seq != self.seq + 1 or type(ts) is not int or ts < self.now_ns or ts > TIME_NS_MAX:
            raise InvariantViolation(f"sequencer contract broken at seq {item.seq} (engine at {self.seq})")
        self.seq = item.seq
        self.now_ns = item.timestamp_ns
        events: list[Event] = []
        self._events = events
        self.fills_made = 0
        if self._batch_markets:
            # Batch boundaries and sealed-round closes first: a clearing happens *at* its boundary, so a GTD
            # order expiring after the boundary (but before this command) is in it (§6.3).
            self._run_clearings()
        if self.next_expiry_ns <= self.now_ns:
            self._expire_due()
        if self.triggers.next_expiry_ns <= self.now_ns:
            self._expire_triggers()
        if not self._integrity_idle:
            self._integrity_timers()
        risk = self.risk
        if risk.index_prices:
            risk.before_command()
        handler = self._handlers.get(type(item.command))
        if handler is None:
            events.append(CommandRejected(type(item.command).__name__, 0, 0, R.command_unknown))
        else:
            handler(item.command)
        if not self._integrity_idle:
            self._integrity_after()
        if self.triggers.armed:  # triggers reached by a price this (or an earlier, capped) command saw
            self._fire_triggers()
        if risk.touched or risk.marks_changed or risk.queue or risk.fund_open or risk.next_wake_ns <= self.now_ns:
            risk.after_command()
            if not self._integrity_idle:
                self._clear_stale_sweeps()
        if self.check_every_command:
            self.check_invariants()
        return events

    def _reject(self, cmd: Any, code: RejectCode) -> None:
        account_id = getattr(cmd, "account_id", getattr(cmd, "from_account_id", 0))
        client_id = getattr(cmd, "client_order_id", 0)
        self._events.append(
            CommandRejected(
                cmd.__struct_config__.tag,
                int(account_id) if _is_int(account_id) and _INT_ENCODABLE_MIN <= account_id <= _INT_ENCODABLE_MAX else 0,
                int(client_id) if _is_int(client_id) and _INT_ENCODABLE_MIN <= client_id <= _INT_ENCODABLE_MAX else 0,
                code,
            )
        )

    # ------------------------------------------------------------------ accounts and money

    def _create_account(self, cmd: Any) -> None:
        isolated = cmd.isolated_instrument_id
        if not _is_int(cmd.account_id) or not _is_int(cmd.owner_id) or not _is_int(isolated):
            return self._reject(cmd, R.field_type_invalid)
        if not (1 <= cmd.account_id <= ID_MAX and 1 <= cmd.owner_id <= ID_MAX):
            return self._reject(cmd, R.field_value_out_of_range)
        if isolated != 0 and isolated not in self.specs:
            return self._reject(cmd, R.instrument_unknown)
        if cmd.account_id in self.accounts:
            return self._reject(cmd, R.account_exists)
        # Client accounts only: the insurance fund's position account (0, present while it holds inventory)
        # takes no client's slot.
        if len(self.accounts) - (0 in self.accounts) >= self.limits.accounts_max:
            return self._reject(cmd, R.accounts_max_reached)
        self.accounts[cmd.account_id] = Account(cmd.account_id, cmd.owner_id, isolated)
        self._events.append(AccountCreated(cmd.account_id, cmd.owner_id, isolated))

    def _amount_code(self, amount: Any) -> RejectCode | None:
        if not _is_int(amount):
            return R.field_type_invalid
        if amount <= 0:
            return R.amount_atoms_not_positive
        if amount > self.limits.amount_atoms_max:
            return R.amount_atoms_above_max
        return None

    def _account(self, account_id: Any) -> Account | RejectCode:
        if not _is_int(account_id):
            return R.field_type_invalid
        account = self.accounts.get(account_id)
        # Account 0 is the insurance fund's position book (risk engine): no client command reaches it.
        return R.account_unknown if account is None or account_id == 0 else account

    def _deposit(self, cmd: Any) -> None:
        account = self._account(cmd.account_id)
        if not isinstance(account, Account):
            return self._reject(cmd, account)
        code = self._amount_code(cmd.amount_atoms) or self._deposit_cap_code(cmd.amount_atoms, account)
        if code is not None:
            return self._reject(cmd, code)
        account.balance_atoms += cmd.amount_atoms
        self.deposits_total_atoms += cmd.amount_atoms
        self.risk.touch(account.account_id)
        self._events.append(Deposited(account.account_id, cmd.amount_atoms, account.balance_atoms))

    def _deposit_cap_code(self, amount: int, account: Account | None) -> RejectCode | None:
        """Money entering the venue keeps the venue total and the receiving balance inside int64."""
        if self.deposits_total_atoms + amount > DEPOSITS_TOTAL_ATOMS_MAX:
            return R.deposits_total_above_max
        if account is not None and account.balance_atoms + amount > BALANCE_ATOMS_MAX:
            return R.balance_atoms_above_max
        return None

    def _withdrawal_code(self, account: Account, amount: int) -> RejectCode | None:
        """Cash may leave only if it is settled and not needed as initial margin at the mark and at the index
        (unrealized gains stay; core/margin.py)."""
        if amount > account.balance_atoms:
            return R.balance_insufficient
        if self.risk.config.withdrawal_gate_ns:
            gate = self.risk.withdrawal_code()
            if gate is not None:
                return gate
        if self.risk.oracle_paused_for(account):
            return R.withdrawal_blocked_oracle_paused
        # Settled cash + min(0, uPnL) per position - initial margin - open-order requirements >= 0 after
        # the withdrawal, each instrument at the worse of mark and index: positive unrealized PnL never
        # leaves (margin.withdrawable_atoms).
        after = withdrawable_atoms(account, self.specs, self.marks, balance_delta_atoms=-amount,
                                   index_prices=self.risk.index_prices)
        if after < 0:  # also catches OVER_MAX_TIER
            return R.withdrawal_exceeds_free_collateral
        return None

    def _withdraw(self, cmd: Any) -> None:
        account = self._account(cmd.account_id)
        if not isinstance(account, Account):
            return self._reject(cmd, account)
        code = self._amount_code(cmd.amount_atoms) or self._kill_switch_code() or self._withdrawal_code(
            account, cmd.amount_atoms)
        if code is not None:
            return self._reject(cmd, code)
        account.balance_atoms -= cmd.amount_atoms
        self.withdrawals_total_atoms += cmd.amount_atoms
        self.risk.touch(account.account_id)
        self._events.append(Withdrawn(account.account_id, cmd.amount_atoms, account.balance_atoms))

    def _transfer(self, cmd: Any) -> None:
        src, dst = self._account(cmd.from_account_id), self._account(cmd.to_account_id)
        if not isinstance(src, Account):
            return self._reject(cmd, src)
        if not isinstance(dst, Account):
            return self._reject(cmd, dst)
        if src is dst:
            return self._reject(cmd, R.transfer_to_self)
        if src.owner_id != dst.owner_id:
            return self._reject(cmd, R.account_owner_mismatch)
        code = self._amount_code(cmd.amount_atoms) or self._kill_switch_code() or self._withdrawal_code(
            src, cmd.amount_atoms)
        if code is None and dst.balance_atoms + cmd.amount_atoms > BALANCE_ATOMS_MAX:
            code = R.balance_atoms_above_max
        if code is not None:
            return self._reject(cmd, code)
        src.balance_atoms -= cmd.amount_atoms
        dst.balance_atoms += cmd.amount_atoms
        self.risk.touch(src.account_id)
        self.risk.touch(dst.account_id)
        self._events.append(Transferred(src.account_id, dst.account_id, cmd.amount_atoms))

    def _deposit_insurance_fund(self, cmd: Any) -> None:
        code = self._amount_code(cmd.amount_atoms) or self._deposit_cap_code(cmd.amount_atoms, None)
        if code is not None:
            return self._reject(cmd, code)
        self.insurance_fund_atoms += cmd.amount_atoms
        self.deposits_total_atoms += cmd.amount_atoms
        self._events.append(InsuranceFundDeposited(cmd.amount_atoms, self.insurance_fund_atoms))

    def _set_mark_price(self, cmd: Any) -> None:
        if not _is_int(cmd.instrument_id) or not _is_int(cmd.price_ticks):
            return self._reject(cmd, R.field_type_invalid)
        spec = self.specs.get(cmd.instrument_id)
        if spec is None:
            return self._reject(cmd, R.instrument_unknown)
        if cmd.price_ticks <= 0:
            return self._reject(cmd, R.price_ticks_not_positive)
        if cmd.price_ticks > spec.price_ticks_max:
            return self._reject(cmd, R.price_ticks_above_max)
        self._mark_moved(cmd.instrument_id, cmd.price_ticks)

    def _mark_moved(self, instrument_id: int, price_ticks: int) -> None:
        """A new mark price (operator override or the risk engine's mark from the oracle index):
        publish it, let the risk engine sweep for liquidations, and move a mark-referenced band."""
        self.marks[instrument_id] = price_ticks
        self.mark_epoch += 1
        self._events.append(MarkPriceSet(instrument_id, price_ticks))
        if self.triggers.orders:
            self.triggers.observe(instrument_id, TriggerSource.MARK, price_ticks)
        self.risk.mark_changed(instrument_id)
        m = self.integ[instrument_id]
        if m.band_spec is not None and m.band_spec.source == ReferenceSource.MARK:
            self._move_reference(m, price_ticks)
        if m.batch_book is not None:
            m.batch_book.mark_dirty()  # the collar moved: a pair that crossed outside it may clear now

    def _set_oracle_price(self, cmd: Any) -> None:
        self.risk.set_oracle_price(cmd)
        if self.triggers.orders and type(cmd.instrument_id) is int:  # the index price (if this set one)
            index = self.risk.index_prices.get(cmd.instrument_id)
            if index is not None:
                self.triggers.observe(cmd.instrument_id, TriggerSource.INDEX, index)

    # ------------------------------------------------------------------ orders: validation

    def _price_code(self, spec: InstrumentSpec, price: Any) -> RejectCode | None:
        if not _is_int(price):
            return R.field_type_invalid
        if price <= 0:
            return R.price_ticks_not_positive
        if price > spec.price_ticks_max:
            return R.price_ticks_above_max
        return None

    def _qty_code(self, spec: InstrumentSpec, qty: Any) -> RejectCode | None:
        if not _is_int(qty):
            return R.field_type_invalid
        if qty < spec.min_order_lots:
            return R.qty_lots_below_min
        if qty > spec.max_order_lots:
            return R.qty_lots_above_max
        return None

    def _validate_place(self, cmd: Any) -> tuple[Account, InstrumentSpec] | RejectCode:
        for value in (cmd.instrument_id, cmd.client_order_id, cmd.side, cmd.order_type, cmd.time_in_force,
                      cmd.stp, cmd.expire_at_ns, cmd.trigger_price_ticks, cmd.trigger_source):
            if not _is_int(value):
                return R.field_type_invalid
        if type(cmd.post_only) is not bool or type(cmd.reduce_only) is not bool or type(cmd.close_position) is not bool:
            return R.field_type_invalid
        account = self._account(cmd.account_id)
        if not isinstance(account, Account):
            return account
        spec = self.specs.get(cmd.instrument_id)
        if spec is None:
            return R.instrument_unknown
        if not 1 <= cmd.client_order_id <= ID_MAX:
            return R.field_value_out_of_range
        if cmd.side not in (1, -1):
            return R.side_invalid
        if not OrderType.LIMIT <= cmd.order_type <= OrderType.TAKE_PROFIT_LIMIT:
            return R.order_type_invalid
        if not 0 <= cmd.time_in_force <= 3:
            return R.time_in_force_invalid
        if not 0 <= cmd.stp <= 3:
            return R.stp_mode_invalid
        if cmd.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT):
            code = self._price_code(spec, cmd.price_ticks)
            if code is not None:
                return code
        elif not _is_int(cmd.price_ticks):
            return R.field_type_invalid
        elif not 0 <= cmd.price_ticks <= spec.price_ticks_max:  # ignored, but never an unbounded value
            return R.field_value_out_of_range
        elif cmd.post_only or cmd.time_in_force == TimeInForce.GTD:
            return R.market_order_flags_invalid
        code = self._trigger_fields_code(spec, cmd)
        if code is not None:
            return code
        code = None if cmd.close_position else self._qty_code(spec, cmd.qty_lots)
        if code is not None:
            return code
        if cmd.time_in_force == TimeInForce.GTD:
            if cmd.expire_at_ns <= self.now_ns:
                return R.expire_at_ns_not_in_future
            if cmd.expire_at_ns > TIME_NS_MAX:
                return R.expire_at_ns_above_max
        elif cmd.expire_at_ns != 0:
            return R.expire_at_ns_without_gtd
        if cmd.post_only and cmd.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            return R.market_order_flags_invalid
        if cmd.client_order_id in account.live_by_client or cmd.client_order_id in account.recent_client_set:
            return R.client_order_id_duplicate
        triggers = self.triggers
        if triggers.orders and (account.account_id, cmd.client_order_id) in triggers.by_client:
            return R.client_order_id_duplicate
        if len(account.orders) + triggers.count_for(account.account_id) >= self.limits.orders_open_max:
            return R.orders_open_max_reached  # untriggered orders count (Binance: 200 open orders per account)
        return account, spec

    def _trigger_fields_code(self, spec: InstrumentSpec, cmd: Any) -> RejectCode | None:
        """Checks of the trigger fields of an otherwise well-typed PlaceOrder (codes 310-315)."""
        if not is_trigger_type(cmd.order_type):
            if cmd.trigger_price_ticks != 0 or cmd.trigger_source != 0:
                return R.trigger_fields_on_plain_order
            return R.close_position_invalid if cmd.close_position else None
        if not 0 < cmd.trigger_price_ticks <= spec.price_ticks_max:
            return R.trigger_price_ticks_out_of_range
        if not TriggerSource.MARK <= cmd.trigger_source <= TriggerSource.LAST:
            return R.trigger_source_invalid
        if cmd.close_position and (not is_market_kind(cmd.order_type) or cmd.reduce_only or cmd.qty_lots != 0):
            return R.close_position_invalid
        return None

    def _protection_price(self, spec: InstrumentSpec, side: int) -> int | None:
        """Market order limit: best opposite price +/- market_protection_ppm (never an unbounded sweep),
        clamped into the price band when one is configured (bit-identical when the band does not bind)."""
        best = self._best_opposite(self.books[spec.instrument_id], side)
        if best is None:
            return None
        band = self.integ[spec.instrument_id].band
        if band is not None:
            return protection_price(band, side, best, spec.market_protection_ppm)
        if side > 0:
            return min(best * (PPM + spec.market_protection_ppm) // PPM, spec.price_ticks_max)
        return max(ceil_div(best * (PPM - spec.market_protection_ppm), PPM), 1)

    def _best_opposite(self, book: Any, side: int) -> int | None:
        """Best resting price a taker on ``side`` would meet first (buy: best ask), ignoring GTD orders
        that expired but are not swept yet (more than ``expiries_per_command_max`` expired at once):
        they never trade, so they set neither the post-only check nor the protection price."""
        if self.next_expiry_ns > self.now_ns:  # nothing expired is left anywhere: the cached best
            return book.best_ask() if side > 0 else book.best_bid()  # type: ignore[no-any-return]
        return book.best_live_price(-side, self.now_ns, self.limits.expiries_per_command_max)  # type: ignore[no-any-return]

    def _reduce_only_room(self, account: Account, iid: int, side: int, exclude: Order | None = None) -> int:
        """Lots a new reduce-only order on ``side`` may have: |position| on the closing side, minus the
        account's other live reduce-only orders on that side."""
        pos = account.positions.get(iid)
        if pos is None or pos.size_lots == 0 or (pos.size_lots > 0) == (side > 0):
            return 0
        room = abs(pos.size_lots)
        if pos.reduce_only_count:
            for o in pos.orders.values():
                if o.reduce_only and o.side == side and o is not exclude:
                    room -= o.qty_lots
        return room

    def _margin_code(self, account: Account, add: tuple[int, int, int, int], drop: Order | None = None) -> RejectCode | None:
        """Initial-margin check for a new or amended order (rules in :mod:`bastion.core.margin`).

        An account already below initial margin (after a mark move) may still place an order that only
        closes exposure (opposite side, within what its position and other closing orders leave) at a
        price no further through the mark than the market-protection band: it can de-risk, never add.
        """
        after = free_collateral_atoms(account, self.specs, self.marks, add=add, drop=drop,
                                      index_prices=self.risk.index_prices)
        self._margin_free_ok = after >= 0
        if after == OVER_MAX_TIER:
            return R.position_notional_above_max_tier
        if after >= 0:
            return None
        iid, side, price, qty = add
        pos = account.positions.get(iid)
        if pos is not None and pos.size_lots and (pos.size_lots > 0) != (side > 0):
            closing = sum(o.qty_lots for o in pos.orders.values() if o.side == side and o is not drop)
            mark = self.marks[iid]
            band = mark * self.specs[iid].market_protection_ppm // PPM
            within = price >= mark - band if side < 0 else price <= mark + band
            if qty + closing <= abs(pos.size_lots) and within:
                return None
        return R.margin_initial_insufficient

    # ------------------------------------------------------------------ orders: place

    def _validate_place_fast(self, cmd: Any) -> tuple[Account, InstrumentSpec] | None:
        """Accept a plain valid limit order in one pass; None means "let the full validator decide".

        Never accepts anything :meth:`_validate_place` would reject (it checks a superset of the same
        conditions); it only skips the per-field reject-code bookkeeping on the hot path.
        """
        account = self.accounts.get(cmd.account_id) if type(cmd.account_id) is int else None
        spec = self.specs.get(cmd.instrument_id) if type(cmd.instrument_id) is int else None
        if account is None or spec is None or cmd.account_id == 0:  # 0: the insurance fund (_account)
            return None
        cid, price, qty, side, tif = cmd.client_order_id, cmd.price_ticks, cmd.qty_lots, cmd.side, cmd.time_in_force
        if (type(cid) is int and type(price) is int and type(qty) is int and type(side) is int and type(tif) is int
                and type(cmd.stp) is int and type(cmd.post_only) is bool and type(cmd.reduce_only) is bool
                and type(cmd.order_type) is int and type(cmd.expire_at_ns) is int
                and cmd.order_type == 0 and cmd.expire_at_ns == 0 and 0 <= tif <= 2 and 0 <= cmd.stp <= 3
                and type(cmd.trigger_price_ticks) is int and cmd.trigger_price_ticks == 0
                and type(cmd.trigger_source) is int and cmd.trigger_source == 0 and cmd.close_position is False
                and (not self.triggers.orders or self._trigger_admits(account, cid))
                and (side == 1 or side == -1) and (tif == 0 or not cmd.post_only)
                and 0 < price <= spec.price_ticks_max and spec.min_order_lots <= qty <= spec.max_order_lots
                and 1 <= cid <= ID_MAX and cid not in account.live_by_client and cid not in account.recent_client_set
                and len(account.orders) < self.limits.orders_open_max):
            return account, spec
        return None

    def _trigger_admits(self, account: Account, client_order_id: int) -> bool:
        """The untriggered orders leave room for one more order with this client id."""
        triggers = self.triggers
        return ((account.account_id, client_order_id) not in triggers.by_client
                and len(account.orders) + triggers.count_for(account.account_id) < self.limits.orders_open_max)

    def _place(self, cmd: Any) -> None:
        checked = self._validate_place_fast(cmd) or self._validate_place(cmd)
        if not isinstance(checked, tuple):
            return self._reject(cmd, checked)
        account, spec = checked
        iid = spec.instrument_id
        if account.isolated_instrument_id and account.isolated_instrument_id != iid:
            return self._reject(cmd, R.account_isolated_to_other_instrument)
        if cmd.order_type >= OrderType.STOP_MARKET:  # rests untriggered (docs/trigger-orders.md)
            return self._place_trigger(cmd, account, spec)
        book = self.books[iid]
        side = cmd.side
        qty = cmd.qty_lots
        tif = cmd.time_in_force
        price = cmd.price_ticks
        m: InstrumentIntegrity | None = None
        if not self._integrity_idle:  # market state, kill switch, band (docs/integrity-integration.md §5.1)
            m = self.integ[iid]
            code0 = self._place_integrity_code(m, cmd)
            if code0 is not None:
                return self._reject(cmd, code0)
        if cmd.order_type == OrderType.MARKET:
            if m is not None and (m.status.state == MarketState.AUCTION or m.mode != MatchingMode.CONTINUOUS):
                # No protection price in an auction or batch: margin is taken at the collar edge, which
                # bounds any clearing price; the order enters the auction/batch book as a market order.
                low, high = self._collar(m, spec)
                price = high if side > 0 else low
            else:
                protection = self._protection_price(spec, side)
                if protection is None:
                    return self._reject(cmd, R.market_no_liquidity)
                price = protection
            if tif != TimeInForce.FOK:
                tif = TimeInForce.IOC
        if cmd.reduce_only:
            room = self._reduce_only_room(account, iid, side)
            if room <= 0:
                return self._reject(cmd, R.reduce_only_would_increase)
            if room < qty:
                if room < spec.min_order_lots:  # the clamp would make an order below the minimum size
                    return self._reject(cmd, R.reduce_only_room_below_min_lots)
                qty = room
        else:
            risk = self.risk
            if risk.pre_trade or risk.queue or risk.parked:  # OI cap, account in liquidation, index freshness (3xx)
                pos = account.positions.get(iid)
                code1 = risk.pre_trade_code(account.account_id, iid, 0 if pos is None else pos.size_lots, side, qty)
                if code1 is not None:
                    return self._reject(cmd, code1)
        if cmd.post_only:
            best = self._best_opposite(book, side)
            if best is not None and (price >= best if side > 0 else price <= best):
                return self._reject(cmd, R.post_only_would_take)
        code = self._margin_code(account, (iid, side, price, qty))
        if code is not None:
            return self._reject(cmd, code)
        order = Order(self.next_order_id, account.account_id, iid, cmd.client_order_id, side, price, qty, tif,
                      cmd.post_only, cmd.reduce_only, cmd.stp, cmd.expire_at_ns)
        if self._margin_free_ok:
            order.margin_epoch = self.mark_epoch
        if tif == TimeInForce.FOK and not self._fok_fillable(order, spec, book, m):
            return self._reject(cmd, R.fok_not_fillable)
        # ---- accepted: from here on, state changes.
        self.next_order_id += 1
        account.remember_client_id(cmd.client_order_id, self.limits.client_order_ids_remembered_max)
        self._track(account, order)
        self._events.append(OrderAccepted(order.order_id, account.account_id, iid, order.client_order_id, side,
                                          price, qty, tif))
        if m is not None and m.status.state == MarketState.AUCTION:
            self._auction_submit(m, order, cmd.order_type == OrderType.MARKET)
            return None
        if m is not None and m.mode != MatchingMode.CONTINUOUS:
            self._batch_submit(m, order, cmd.order_type == OrderType.MARKET)
            return None
        self._execute(order, spec)

    def _execute(self, order: Order, spec: InstrumentSpec) -> None:
        """Match a tracked order as taker, then rest or cancel what remains; resize touched reduce-only."""
        book = self.books[spec.instrument_id]
        self._spec = spec
        if self._touched:
            self._touched = []
        # Fast path: nothing on the other side crosses, so the order rests untouched.
        best = book.best_ask() if order.side > 0 else book.best_bid()
        if best is None or (best > order.price_ticks if order.side > 0 else best < order.price_ticks):
            stop = STOP_NONE
        elif self._integrity_idle:
            stop = book.match(order, order.price_ticks, self.now_ns, self)
        else:
            stop = self._match_guarded(order, spec, book)
            if stop < 0:  # the velocity pause took the order (parked in the auction or canceled)
                if self._touched:
                    self._resize_reduce_only()
                return None
        if order.qty_lots == 0:
            if order.order_id in self.orders:
                # Consumed by self-trade-prevention decrement, not by fills.
                self._cancel_live(order, CancelReason.stp_decrement)
        elif stop != STOP_NONE:
            self._cancel_live(order, CancelReason(stop))
        elif order.time_in_force == TimeInForce.IOC or order.time_in_force == TimeInForce.FOK:
            assert order.time_in_force != TimeInForce.FOK, "FOK order matched only partially"
            self._cancel_live(order, CancelReason.ioc_remainder)
        else:
            book.add(order)
            if order.expire_at_ns:
                self._expiry_add(order)
        if self._touched:
            self._resize_reduce_only()

    # ------------------------------------------------------------------ order bookkeeping

    def _position(self, account: Account, iid: int) -> Position:
        """The account's position on ``iid``, created if absent.

        ``account.positions`` is kept in instrument-id order (not first-touch order), so that its
        iteration order is a function of the state alone and a restored engine iterates it exactly as
        the uninterrupted one (liquidation, waterfall and margin code walk it). Out-of-order inserts
        re-sort the dict in place: at most one entry per instrument, and rare.
        """
        positions = account.positions
        pos = positions.get(iid)
        if pos is None:
            pos = Position()
            last = next(reversed(positions)) if positions else 0
            positions[iid] = pos
            if iid < last:
                ordered = sorted(positions.items())
                positions.clear()
                positions.update(ordered)
        return pos

    def _track(self, account: Account, order: Order) -> None:
        """Make ``order`` live: indexes and the account's open-order aggregates."""
        self.orders[order.order_id] = order
        account.orders[order.order_id] = order
        account.live_by_client[order.client_order_id] = order
        pos = self._position(account, order.instrument_id)
        pos.orders[order.order_id] = order
        pos.note_price(order.side, order.price_ticks)
        if order.side > 0:
            pos.open_buy_lots += order.qty_lots
        else:
            pos.open_sell_lots += order.qty_lots
        if order.reduce_only:
            pos.reduce_only_count += 1

    def _untrack(self, account: Account, order: Order) -> None:
        """Forget a live order (fully filled, or canceled: its ``qty_lots`` leaves the aggregates)."""
        del self.orders[order.order_id]
        del account.orders[order.order_id]
        del account.live_by_client[order.client_order_id]
        pos = account.positions[order.instrument_id]
        del pos.orders[order.order_id]
        if order.side > 0:
            pos.open_buy_lots -= order.qty_lots
        else:
            pos.open_sell_lots -= order.qty_lots
        if order.reduce_only:
            pos.reduce_only_count -= 1
        if order.expire_at_ns:
            self._expiry_discard(order)
        if pos.is_idle():
            del account.positions[order.instrument_id]

    def _cancel_live(self, order: Order, reason: CancelReason) -> None:
        """Cancel a live order that is not resting (a taker's remainder) or was already unlinked."""
        account = self.accounts[order.account_id]
        self._events.append(OrderCanceled(order.order_id, order.account_id, reason, order.qty_lots))
        self._untrack(account, order)

    def _cancel_resting(self, order: Order, reason: CancelReason) -> None:
        if self.unbooked and order.order_id in self.unbooked:
            self._unbook(order)
        else:
            self.books[order.instrument_id].remove(order)
        self._cancel_live(order, reason)

    def _shrink_resting(self, account: Account, order: Order, new_qty: int, reason: CancelReason) -> None:
        by = order.qty_lots - new_qty
        self._book_reduce(order, new_qty)
        pos = account.positions[order.instrument_id]
        if order.side > 0:
            pos.open_buy_lots -= by
        else:
            pos.open_sell_lots -= by
        self._events.append(OrderReduced(order.order_id, order.account_id, reason, new_qty))

    # ------------------------------------------------------------------ MatchContext callbacks

    def on_trade(self, maker: Order, taker: Order, qty_lots: int, price_ticks: int) -> None:
        """Settle one fill (book already reduced both orders): positions, PnL, fees, OI, events."""
        spec = self._spec
        assert spec is not None
        iid = spec.instrument_id
        k = spec.atoms_per_tick_lot
        notional = price_ticks * qty_lots * k
        maker_fee = spec.fee_atoms(notional, spec.maker_fee_ppm)
        # A liquidation IOC pays the liquidation fee (to the insurance fund, capped at the fill's surplus
        # over the bankruptcy price) in place of the taker fee, so a fill at the bankruptcy price leaves
        # the account at zero rather than below it.
        taker_fee = 0 if taker.order_id == self.risk.active_order_id else spec.fee_atoms(notional, spec.taker_fee_ppm)
        m_acct = self.accounts[maker.account_id]
        t_acct = self.accounts[taker.account_id]
        m_pos = m_acct.positions[iid]
        t_pos = t_acct.positions[iid]
        m_was, t_was = m_pos.size_lots, t_pos.size_lots
        oi_before = (m_was if m_was > 0 else 0) + (t_was if t_was > 0 else 0)
        m_pnl = settle_fill(m_acct, m_pos, maker.side * qty_lots, price_ticks, k)
        t_pnl = settle_fill(t_acct, t_pos, taker.side * qty_lots, price_ticks, k)
        oi_after = (m_pos.size_lots if m_pos.size_lots > 0 else 0) + (t_pos.size_lots if t_pos.size_lots > 0 else 0)
        self.open_interest_lots[iid] += oi_after - oi_before
        if (m_was == 0) != (m_pos.size_lots == 0):  # holders index (risk engine: funding, ADL)
            self.risk.holding_changed(iid, maker.account_id, m_pos.size_lots)
        if (t_was == 0) != (t_pos.size_lots == 0):
            self.risk.holding_changed(iid, taker.account_id, t_pos.size_lots)
        m_acct.balance_atoms -= maker_fee
        t_acct.balance_atoms -= taker_fee
        self.fee_pool_atoms += maker_fee + taker_fee
        if maker.side > 0:
            m_pos.open_buy_lots -= qty_lots
            t_pos.open_sell_lots -= qty_lots
        else:
            m_pos.open_sell_lots -= qty_lots
            t_pos.open_buy_lots -= qty_lots
        self.fills_made += 1
        risk = self.risk
        # A fill at the mark epoch of the order's last margin check cannot take the account below
        # maintenance (core/margin.py); anything older (or a closing-only acceptance) is re-checked.
        # Either way both positions changed, so their liquidation-index entries are stale (refreshed
        # before the next mark-price sweep reads the index).
        epoch = self.mark_epoch
        if maker.margin_epoch != epoch:
            risk.touched.add(maker.account_id)
        else:
            risk.stale.add(maker.account_id)
        if taker.margin_epoch != epoch:
            risk.touched.add(taker.account_id)
        else:
            risk.stale.add(taker.account_id)
        risk.last_trade_ticks[iid] = price_ticks
        triggers = self.triggers
        if triggers.orders:
            triggers.observe(iid, _LAST, price_ticks)
        self._events.append(TradeExecuted(iid, price_ticks, qty_lots, taker.side, maker.order_id, taker.order_id,
                                          maker.account_id, taker.account_id, maker_fee, taker_fee, m_pnl, t_pnl))
        if taker.order_id == risk.active_order_id:
            risk.liquidation_fill(taker, qty_lots, price_ticks)
        if maker.qty_lots == 0:
            self._untrack(m_acct, maker)
        if taker.qty_lots == 0:
            self._untrack(t_acct, taker)
        watched = triggers.position_keys  # untriggered reduce-only / close-position orders follow too
        if m_pos.reduce_only_count or (watched and (maker.account_id, iid) in watched):
            self._touched.append((m_acct, iid))
        if t_pos.reduce_only_count or (watched and (taker.account_id, iid) in watched):
            self._touched.append((t_acct, iid))

    def on_maker_removed(self, maker: Order, reason: CancelReason) -> None:
        """A maker left the book during matching (expired, STP, reduce-only)."""
        self._cancel_live(maker, reason)

    def on_maker_reduced(self, maker: Order, by_lots: int, reason: CancelReason) -> None:
        """A maker shrank without a trade. For STP decrement the taker shrank by the same amount."""
        account = self.accounts[maker.account_id]
        pos = account.positions[maker.instrument_id]
        if maker.side > 0:
            pos.open_buy_lots -= by_lots
        else:
            pos.open_sell_lots -= by_lots
        if reason == CancelReason.stp_decrement:
            # Same account: the taker (opposite side) also lost by_lots.
            if maker.side > 0:
                pos.open_sell_lots -= by_lots
            else:
                pos.open_buy_lots -= by_lots
        self._events.append(OrderReduced(maker.order_id, maker.account_id, reason, maker.qty_lots))
        if maker.qty_lots == 0:
            self._untrack(account, maker)

    def reduce_only_cap(self, maker: Order) -> int:
        """Lots a reduce-only maker may trade now: its account's position on the closing side."""
        pos = self.accounts[maker.account_id].positions[maker.instrument_id]
        size = pos.size_lots
        if size == 0 or (size > 0) == (maker.side > 0):
            return 0
        return size if size > 0 else -size

    # ------------------------------------------------------------------ reduce-only maintenance

    def _resize_reduce_only(self) -> None:
        """After fills: shrink (newest first) or cancel reduce-only orders so they can only reduce (never
        below ``min_order_lots``: an order that would be shrunk below it is canceled)."""
        seen: set[tuple[int, int]] = set()
        for account, iid in self._touched:
            key = (account.account_id, iid)
            if key in seen:
                continue
            seen.add(key)
            if self.triggers.position_keys and key in self.triggers.position_keys:
                self._resize_position_triggers(account, iid)
            pos = account.positions.get(iid)
            if pos is None or not pos.reduce_only_count:
                continue
            size = pos.size_lots
            room = abs(size)
            min_lots = self.specs[iid].min_order_lots
            # Oldest keeps its size first, so the newest orders shrink or go first; an order the room
            # would shrink below the instrument's minimum order size goes instead.
            for order in [o for o in pos.orders.values() if o.reduce_only]:
                if size == 0 or (size > 0) == (order.side > 0) or room == 0:
                    self._cancel_resting(order, CancelReason.reduce_only_resized)
                elif room < order.qty_lots:
                    if room < min_lots:
                        self._cancel_resting(order, CancelReason.reduce_only_resized)
                    else:
                        self._shrink_resting(account, order, room, CancelReason.reduce_only_resized)
                        room = 0
                else:
                    room -= order.qty_lots
        self._touched = []

    # ------------------------------------------------------------------ cancel / amend / expire

    def _find_order(self, account: Account, order_id: Any, client_order_id: Any) -> Order | RejectCode:
        if not _is_int(order_id) or not _is_int(client_order_id):
            return R.field_type_invalid
        if order_id != 0:
            order = account.orders.get(order_id)
        else:
            order = account.live_by_client.get(client_order_id)
        return R.order_unknown if order is None else order

    def _cancel(self, cmd: Any) -> None:
        account = self.accounts.get(cmd.account_id) if type(cmd.account_id) is int else None
        if account is None:
            return self._reject(cmd, R.account_unknown if _is_int(cmd.account_id) else R.field_type_invalid)
        order = self._find_order(account, cmd.order_id, cmd.client_order_id)
        if not isinstance(order, Order):
            if order == R.order_unknown and self.triggers.orders:  # an untriggered order?
                t = self.triggers.find(account.account_id, cmd.order_id, cmd.client_order_id)
                if t is not None:
                    return self._cancel_trigger(t, CancelReason.user)
            return self._reject(cmd, order)
        if order.client_order_id == 0 and self._is_liquidation(order):
            return self._reject(cmd, R.account_in_liquidation)
        self._cancel_resting(order, CancelReason.user)

    def _cancel_all(self, cmd: Any) -> None:
        account = self._account(cmd.account_id)
        if not isinstance(account, Account):
            return self._reject(cmd, account)
        if not _is_int(cmd.instrument_id):
            return self._reject(cmd, R.field_type_invalid)
        if cmd.instrument_id != 0 and cmd.instrument_id not in self.specs:
            return self._reject(cmd, R.instrument_unknown)
        if (cmd.instrument_id != 0 and not self._integrity_idle
                and self.integ[cmd.instrument_id].status.state == MarketState.SETTLING):
            return self._reject(cmd, R.market_settling)
        victims = [o for o in account.orders.values() if cmd.instrument_id in (0, o.instrument_id)
                   and not (o.client_order_id == 0 and self._is_liquidation(o))]
        for order in victims:
            self._cancel_resting(order, CancelReason.cancel_all)
        self._cancel_triggers(account.account_id, cmd.instrument_id, CancelReason.cancel_all)

    def _amend(self, cmd: Any) -> None:
        account = self.accounts.get(cmd.account_id) if type(cmd.account_id) is int else None
        if account is None:
            return self._reject(cmd, R.account_unknown if _is_int(cmd.account_id) else R.field_type_invalid)
        order = account.orders.get(cmd.order_id) if type(cmd.order_id) is int else None
        if order is None:
            t = self.triggers.orders.get(cmd.order_id) if self.triggers.orders and _is_int(cmd.order_id) else None
            if t is not None and t.account_id == account.account_id:
                return self._amend_trigger(cmd, account, t)
            return self._reject(cmd, R.order_unknown if _is_int(cmd.order_id) else R.field_type_invalid)
        trigger = cmd.trigger_price_ticks
        if type(trigger) is not int or trigger != 0:  # a live order has no trigger any more
            return self._reject(cmd, R.trigger_fields_on_plain_order if _is_int(trigger) else R.field_type_invalid)
        if order.client_order_id == 0 and self._is_liquidation(order):
            return self._reject(cmd, R.account_in_liquidation)
        spec = self.specs[order.instrument_id]
        price, qty = cmd.price_ticks, cmd.qty_lots
        if not (type(price) is int and type(qty) is int and 0 < price <= spec.price_ticks_max
                and spec.min_order_lots <= qty <= spec.max_order_lots):
            code = self._price_code(spec, price) or self._qty_code(spec, qty)
            assert code is not None
            return self._reject(cmd, code)
        m: InstrumentIntegrity | None = None
        if not self._integrity_idle:  # market state, kill switch, band (docs/integrity-integration.md §5.5)
            m = self.integ[order.instrument_id]
            code1 = self._amend_integrity_code(m, order, price)
            if code1 is not None:
                return self._reject(cmd, code1)
        side = order.side
        if price == order.price_ticks:
            if qty == order.qty_lots:
                return self._reject(cmd, R.amend_no_change)
            if qty < order.qty_lots:
                self._shrink_in_place(account, order, qty)
                return None
        if order.reduce_only:
            room = self._reduce_only_room(account, order.instrument_id, side, exclude=order)
            if room <= 0:
                return self._reject(cmd, R.reduce_only_would_increase)
            if room < qty:
                if room < spec.min_order_lots:
                    return self._reject(cmd, R.reduce_only_room_below_min_lots)
                qty = room
                if price == order.price_ticks:  # a size-up the clamp undid: never lose priority for it
                    if qty == order.qty_lots:
                        return self._reject(cmd, R.amend_no_change)
                    if qty < order.qty_lots:
                        self._shrink_in_place(account, order, qty)
                        return None
        book = self.books[order.instrument_id]
        if order.post_only:
            best = self._best_opposite(book, side)
            if best is not None and (price >= best if side > 0 else price <= best):
                return self._reject(cmd, R.post_only_would_take)
        # An order moved away from the market without growing cannot raise the requirement (margin.py).
        if qty > order.qty_lots or (price > order.price_ticks if side > 0 else price < order.price_ticks):
            code = self._margin_code(account, (order.instrument_id, side, price, qty), drop=order)
            if code is not None:
                return self._reject(cmd, code)
            order.margin_epoch = self.mark_epoch if self._margin_free_ok else -1
        # ---- accepted: re-enter with new price/size, losing priority.
        unbooked = m is not None and order.order_id in self.unbooked
        if unbooked:
            self._unbook(order)
        else:
            book.remove(order)
        pos = account.positions[order.instrument_id]
        if side > 0:
            pos.open_buy_lots += qty - order.qty_lots
        else:
            pos.open_sell_lots += qty - order.qty_lots
        order.price_ticks = price
        order.qty_lots = qty
        pos.note_price(side, price)
        self._events.append(OrderAmended(order.order_id, account.account_id, price, qty, False))
        if order.expire_at_ns:
            self._expiry_discard(order)
        if m is not None and m.status.state == MarketState.AUCTION:
            self._auction_submit(m, order, False)
            return None
        if m is not None and m.mode != MatchingMode.CONTINUOUS:
            self._batch_submit(m, order, False)
            return None
        self._execute(order, spec)

    def _shrink_in_place(self, account: Account, order: Order, qty: int) -> None:
        by = order.qty_lots - qty
        self._book_reduce(order, qty)
        pos = account.positions[order.instrument_id]
        if order.side > 0:
            pos.open_buy_lots -= by
        else:
            pos.open_sell_lots -= by
        self._events.append(OrderAmended(order.order_id, account.account_id, order.price_ticks, qty, True))

    def _expiry_add(self, order: Order) -> None:
        self.expiries.add((order.expire_at_ns, order.order_id))
        self.next_expiry_ns = self.expiries[0][0]

    def _expiry_discard(self, order: Order) -> None:
        self.expiries.discard((order.expire_at_ns, order.order_id))
        self.next_expiry_ns = self.expiries[0][0] if self.expiries else _NEVER

    def _expire_due(self) -> None:
        """Cancel resting GTD orders whose expiry passed (at most expiries_per_command_max per command;
        any left are also skipped by matching, which never trades an expired order)."""
        for _ in range(self.limits.expiries_per_command_max):
            if not self.expiries or self.expiries[0][0] > self.now_ns:
                return
            _, order_id = self.expiries[0]
            self._cancel_resting(self.orders[order_id], CancelReason.expired)

    # ------------------------------------------------------------------ trigger orders (docs/trigger-orders.md)
    #
    # Untriggered stop / take-profit orders live in ``self.triggers`` (core/triggers.py), not in the books:
    # they hold no margin. Every new mark, index and last-trade price is observed; after the handler (and
    # the integrity step) the reached orders fire in trigger order, at most triggers_per_command_max per
    # command, and enter as ordinary orders through the checks of ``_place`` at that moment.

    def _trigger_source_price(self, iid: int, source: int) -> int | None:
        """The current price of a trigger source (None: no index / no trade yet)."""
        if source == TriggerSource.MARK:
            return self.marks[iid]
        if source == TriggerSource.INDEX:
            return self.risk.index_prices.get(iid)
        return self.risk.last_trade_ticks.get(iid)

    def _place_trigger(self, cmd: Any, account: Account, spec: InstrumentSpec) -> None:
        """Accept a validated trigger order into the trigger book.

        Checked now: market state (and continuous matching), the reduce-only / close-position side
        (a position to close must exist; reduce-only size capped to it), a source price to compare with,
        and that the trigger is not already reached (312). Counted toward orders_open_max. Not checked
        now: margin, OI caps, index freshness: those run in full when it fires (Binance FAQ "What is a
        conditional order?": "No margin check when placing conditional orders").
        """
        iid = spec.instrument_id
        market = is_market_kind(cmd.order_type)
        if not self._integrity_idle:
            m = self.integ[iid]
            code0 = self._state_code(m, classify_place(int(market), cmd.time_in_force, cmd.post_only))
            if code0 is not None:
                return self._reject(cmd, code0)
            if m.mode != MatchingMode.CONTINUOUS:
                return self._reject(cmd, R.trigger_requires_continuous_matching)
        qty = 0 if cmd.close_position else cmd.qty_lots
        if cmd.reduce_only or cmd.close_position:
            pos = account.positions.get(iid)
            size = 0 if pos is None else pos.size_lots
            if size == 0 or (size > 0) == (cmd.side > 0):
                return self._reject(cmd, R.reduce_only_would_increase)
            if cmd.reduce_only:
                qty = min(qty, abs(size))
        current = self._trigger_source_price(iid, cmd.trigger_source)
        if current is None:
            return self._reject(cmd, R.trigger_source_price_unavailable)
        triggers = self.triggers
        if triggers.would_fire(iid, cmd.trigger_source, cmd.order_type, cmd.side, cmd.trigger_price_ticks, current):
            return self._reject(cmd, R.trigger_would_fire_immediately)
        price = 0 if market else cmd.price_ticks
        t = TriggerOrder(self.next_order_id, account.account_id, iid, cmd.client_order_id, cmd.side, cmd.order_type,
                         cmd.trigger_source, cmd.trigger_price_ticks, price, qty, cmd.time_in_force, cmd.post_only,
                         cmd.reduce_only, cmd.close_position, cmd.stp, cmd.expire_at_ns)
        self.next_order_id += 1
        account.remember_client_id(cmd.client_order_id, self.limits.client_order_ids_remembered_max)
        triggers.add(t)
        self._events.append(TriggerOrderAccepted(t.order_id, t.account_id, iid, t.client_order_id, t.side, t.order_type,
                                                 t.trigger_source, t.trigger_price_ticks, price, qty, t.time_in_force,
                                                 t.reduce_only, t.close_position))

    def _fire_triggers(self) -> None:
        """Fire reached orders in trigger order, at most ``triggers_per_command_max`` per command.

        What is left stays armed and fires on the next command(s), before anything placed later can
        fire. Instruments whose market takes no orders now (not ACTIVE, not continuous, band sweep
        pending, kill switch) are skipped and stay armed: their orders fire when it reopens. Fills of
        fired orders set new last prices, which may reach further LAST-source orders in this same loop.
        """
        triggers = self.triggers
        blocked: set[int] = set()
        for _ in range(self.triggers_per_command_max):
            if not self._integrity_idle:
                blocked = self._trigger_blocked()
            nxt = triggers.next_to_fire(blocked)
            if nxt is None:
                break
            self._fire_trigger(nxt[0], nxt[1])
        triggers.settle()

    def _trigger_blocked(self) -> set[int]:
        """Instruments on which a fired order cannot enter now (its triggers wait)."""
        out: set[int] = set()
        for iid, m in self.integ.items():
            if (self.kill_switch_engaged or m.status.state != MarketState.ACTIVE
                    or m.mode != MatchingMode.CONTINUOUS or m.sweep_pending):
                out.add(iid)
        return out

    def _fire_trigger(self, t: TriggerOrder, source_price_ticks: int) -> None:
        self.triggers.remove(t)
        if t.expire_at_ns and t.expire_at_ns <= self.now_ns:  # expired before its expiry sweep reached it
            self._events.append(OrderCanceled(t.order_id, t.account_id, CancelReason.expired, t.qty_lots))
            return
        self._events.append(OrderTriggered(t.order_id, t.account_id, t.instrument_id, t.trigger_source,
                                           t.trigger_price_ticks, source_price_ticks))
        code = self._enter_triggered(self.accounts[t.account_id], t)
        if code is not None:
            self._events.append(TriggerOrderRejected(t.order_id, t.account_id, t.client_order_id, code))

    def _enter_triggered(self, account: Account, t: TriggerOrder) -> RejectCode | None:
        """Enter a fired order as an ordinary order with the same order id; the reject code if it fails.

        The checks of :meth:`_place`, in its order, at this moment's prices and book: market state and
        price band, the protection price (*_MARKET: best opposite +/- market_protection_ppm, clamped to
        the band), reduce-only size or the pre-trade gates, post-only, the full initial-margin check, FOK.
        A close-position order is sized to the whole position and, like any closing order, passes below
        initial margin when priced within the protection band of the mark (other closing orders of the
        account do not count against it: it closes the position outright).
        """
        iid = t.instrument_id
        spec = self.specs[iid]
        book = self.books[iid]
        side = t.side
        market = is_market_kind(t.order_type)
        tif = t.time_in_force
        price = t.price_ticks
        qty = t.qty_lots
        closing = t.reduce_only or t.close_position
        m: InstrumentIntegrity | None = None
        if not self._integrity_idle:
            m = self.integ[iid]
            probe = PlaceOrder(account.account_id, iid, t.client_order_id, side, price, qty, int(market), tif,
                               t.post_only, closing, t.stp, t.expire_at_ns)
            code0 = self._place_integrity_code(m, probe)
            if code0 is not None:
                return code0
        if market:
            protection = self._protection_price(spec, side)
            if protection is None:
                return R.market_no_liquidity
            price = protection
            if tif != TimeInForce.FOK:
                tif = TimeInForce.IOC
        pos = account.positions.get(iid)
        size = 0 if pos is None else pos.size_lots
        if t.close_position:
            if size == 0 or (size > 0) == (side > 0):
                return R.reduce_only_would_increase
            qty = min(abs(size), spec.max_order_lots)
        elif t.reduce_only:
            room = self._reduce_only_room(account, iid, side)
            if room <= 0:
                return R.reduce_only_would_increase
            qty = min(qty, room)
        else:
            risk = self.risk
            if risk.pre_trade or risk.queue or risk.parked:
                code1 = risk.pre_trade_code(account.account_id, iid, size, side, qty)
                if code1 is not None:
                    return code1
        if t.post_only:
            best = book.best_ask() if side > 0 else book.best_bid()
            if best is not None and (price >= best if side > 0 else price <= best):
                return R.post_only_would_take
        code = self._margin_code(account, (iid, side, price, qty))
        if code is not None and not (t.close_position and code == R.margin_initial_insufficient
                                     and self._within_protection_band(iid, side, price)):
            return code
        order = Order(t.order_id, account.account_id, iid, t.client_order_id, side, price, qty, tif, t.post_only,
                      closing, t.stp, t.expire_at_ns)
        if self._margin_free_ok:
            order.margin_epoch = self.mark_epoch
        if tif == TimeInForce.FOK and not self._fok_fillable(order, spec, book, m):
            return R.fok_not_fillable
        self._track(account, order)
        self._events.append(OrderAccepted(order.order_id, account.account_id, iid, order.client_order_id, side,
                                          price, qty, tif))
        self._execute(order, spec)
        return None

    def _within_protection_band(self, iid: int, side: int, price_ticks: int) -> bool:
        """A closing price no further through the mark than market_protection_ppm (``_margin_code``)."""
        mark = self.marks[iid]
        band = mark * self.specs[iid].market_protection_ppm // PPM
        return price_ticks >= mark - band if side < 0 else price_ticks <= mark + band

    def _cancel_trigger(self, t: TriggerOrder, reason: CancelReason) -> None:
        self.triggers.remove(t)
        self._events.append(OrderCanceled(t.order_id, t.account_id, reason, t.qty_lots))

    def _cancel_triggers(self, account_id: int, instrument_id: int, reason: CancelReason) -> None:
        """Cancel an account's untriggered orders (on one instrument, or all for 0), by order id."""
        if self.triggers.orders:
            for t in self.triggers.of_account(account_id, instrument_id):
                self._cancel_trigger(t, reason)

    def _expire_triggers(self) -> None:
        """Cancel untriggered GTD orders whose expiry passed (at most expiries_per_command_max)."""
        for t in self.triggers.due_expiries(self.now_ns, self.limits.expiries_per_command_max):
            self._cancel_trigger(t, CancelReason.expired)

    def _resize_position_triggers(self, account: Account, iid: int) -> None:
        """The position changed: untriggered reduce-only orders shrink to it (each on its own: they are
        not live, so they do not share it) or go when it is flat or flipped; close-position orders go
        when there is no position left to close on their side."""
        pos = account.positions.get(iid)
        size = 0 if pos is None else pos.size_lots
        for t in self.triggers.of_account(account.account_id, iid):
            if not t.watches_position:
                continue
            if size == 0 or (size > 0) == (t.side > 0):
                self._cancel_trigger(t, CancelReason.position_closed if t.close_position
                                     else CancelReason.reduce_only_resized)
            elif t.reduce_only and t.qty_lots > abs(size):
                t.qty_lots = abs(size)
                self._events.append(TriggerOrderReduced(t.order_id, t.account_id, CancelReason.reduce_only_resized,
                                                        t.qty_lots))

    def _amend_trigger(self, cmd: Any, account: Account, t: TriggerOrder) -> None:
        """AmendOrder of an untriggered order: trigger price (0 keeps it), limit price (*_LIMIT), size.

        The order keeps its order id, hence its rank among equal trigger prices. A new trigger price must
        not be reached already (312); a reduce-only size is capped to the position.
        """
        spec = self.specs[t.instrument_id]
        price, qty, trigger = cmd.price_ticks, cmd.qty_lots, cmd.trigger_price_ticks
        if not _is_int(price) or not _is_int(qty) or not _is_int(trigger):
            return self._reject(cmd, R.field_type_invalid)
        market = is_market_kind(t.order_type)
        code = None if market else self._price_code(spec, price)
        if code is None:
            if t.close_position:
                code = None if qty == 0 else R.close_position_invalid
            else:
                code = self._qty_code(spec, qty)
        if code is None and trigger != 0 and not 0 < trigger <= spec.price_ticks_max:
            code = R.trigger_price_ticks_out_of_range
        if code is None and not self._integrity_idle:
            code = self._state_code(self.integ[t.instrument_id], CommandKind.AMEND)
        if code is not None:
            return self._reject(cmd, code)
        price = 0 if market else price
        trigger = trigger or t.trigger_price_ticks
        if t.reduce_only:
            pos = account.positions.get(t.instrument_id)
            qty = min(qty, abs(0 if pos is None else pos.size_lots))
        if (trigger, price, qty) == (t.trigger_price_ticks, t.price_ticks, t.qty_lots):
            return self._reject(cmd, R.amend_no_change)
        if trigger != t.trigger_price_ticks:
            current = self._trigger_source_price(t.instrument_id, t.trigger_source)
            assert current is not None, "a trigger source never loses its price"
            if self.triggers.would_fire(t.instrument_id, t.trigger_source, t.order_type, t.side, trigger, current):
                return self._reject(cmd, R.trigger_would_fire_immediately)
            self.triggers.move_trigger(t, trigger)
        t.price_ticks, t.qty_lots = price, qty
        self._events.append(TriggerOrderAmended(t.order_id, t.account_id, trigger, price, qty))

    def _trigger_invariant(self) -> str | None:
        """The first broken trigger invariant, or None (part of :meth:`check_invariants`).

        Book-internal consistency; every untriggered order has its account, instrument and an order id
        of its own; reduce-only / close-position orders fit their position; and no order is reached by
        its source's current price unless its (instrument, source) is armed (work carried over).
        """
        triggers = self.triggers
        if not triggers.orders and not triggers.armed:
            return None
        problems = triggers.check()
        if problems:
            return problems[0]
        for t in triggers.orders.values():
            account = self.accounts.get(t.account_id)
            if (account is None or t.instrument_id not in self.specs or t.order_id in self.orders
                    or t.order_id >= self.next_order_id or t.client_order_id in account.live_by_client):
                return f"trigger order {t.order_id} lacks its account or instrument, or shares an id"
            if t.watches_position:
                pos = account.positions.get(t.instrument_id)
                size = 0 if pos is None else pos.size_lots
                if size == 0 or (size > 0) == (t.side > 0) or (t.reduce_only and t.qty_lots > abs(size)):
                    return f"reduce-only trigger order {t.order_id} does not fit its position"
        for iid, source in sorted(triggers.per_key):
            if (iid, source) in triggers.armed:
                continue
            price = self._trigger_source_price(iid, source)
            if price is None or triggers.first_fired(iid, source, price, price) is not None:
                return f"a trigger on ({iid}, {source}) is reached by its source price but not armed"
        return None

    # ------------------------------------------------------------------ market integrity (issue 4)
    #
    # Wiring of bastion.core.integrity (docs/integrity-integration.md). Everything here runs only while
    # ``_integrity_idle`` is False; with no breaker configured, every market ACTIVE and continuous and the
    # kill switch off, the engine behaves (and hashes) exactly as before.

    def _refresh_idle(self) -> None:
        idle = not self.kill_switch_engaged
        batch = False
        for m in self.integ.values():
            if not m.idle:
                idle = False
            if m.mode != MatchingMode.CONTINUOUS:
                batch = True
        self._integrity_idle = idle
        self._batch_markets = batch

    def _kill_switch_code(self) -> RejectCode | None:
        return R.venue_kill_switch_engaged if self.kill_switch_engaged else None

    def _state_code(self, m: InstrumentIntegrity, kind: CommandKind) -> RejectCode | None:
        code = check_command(m.status.state, kind, self.kill_switch_engaged)
        return None if code is None else RejectCode(code.value)

    def _place_integrity_code(self, m: InstrumentIntegrity, cmd: Any) -> RejectCode | None:
        """Checks of §5.1 steps 1-4 for an otherwise valid PlaceOrder (fields already type-checked)."""
        code = self._state_code(m, classify_place(cmd.order_type, cmd.time_in_force, cmd.post_only))
        if code is not None:
            return code
        auction = m.status.state == MarketState.AUCTION
        # An uncross has no FOK guarantee, and reduce-only caps cannot be honoured inside one clearing.
        if auction and (cmd.time_in_force == TimeInForce.FOK or cmd.reduce_only):
            return R.market_auction_forbids_order_kind
        if m.mode == MatchingMode.SEALED_BATCH and not self._admitting:
            return R.sealed_batch_requires_commit
        batch = m.batch_book
        if batch is not None:
            # A batch has no fill-or-kill guarantee and no maker: FOK and post-only have no meaning in it.
            # Reduce-only is kept: capped at the closing position inside each clearing (_batch_orders).
            if cmd.time_in_force == TimeInForce.FOK or cmd.post_only:
                return R.market_auction_forbids_order_kind
            if len(batch.orders) >= batch.spec.orders_max:
                return R.auction_orders_max_reached
        if m.sweep_pending:
            return R.band_sweep_in_progress
        if m.band is not None and m.band_spec is not None and cmd.order_type == OrderType.LIMIT:
            if check_limit_price(m.band, cmd.side, cmd.price_ticks, m.band_spec.mode) is not None:
                return R.price_ticks_outside_band
        if auction and m.auction_book is not None and len(m.auction_book.orders) >= m.auction_book.spec.orders_max:
            return R.auction_orders_max_reached
        return None

    def _amend_integrity_code(self, m: InstrumentIntegrity, order: Order, price: int) -> RejectCode | None:
        """Checks of §5.5 for an AmendOrder with valid fields."""
        code = self._state_code(m, CommandKind.AMEND)
        if code is not None:
            return code
        if m.sweep_pending:
            return R.band_sweep_in_progress
        if m.band is not None and m.band_spec is not None:
            if check_limit_price(m.band, order.side, price, m.band_spec.mode) is not None:
                return R.price_ticks_outside_band
        if m.status.state == MarketState.POST_ONLY:
            best = self._best_opposite(self.books[order.instrument_id], order.side)
            if best is not None and (price >= best if order.side > 0 else price <= best):
                return R.market_post_only_requires_post_only_order
        return None

    def _guardian_code(self, cmd: Any, fields: tuple[Any, ...]) -> RejectCode | None:
        for value in fields:
            if not _is_int(value):
                return R.field_type_invalid
        if cmd.guardian_id not in self.guardian_ids:
            return R.guardian_unauthorized
        return None

    def _set_market_state(self, cmd: Any) -> None:
        """Guardian SetMarketState (§5.5): validity table, then the side effects of the target state."""
        code = self._guardian_code(cmd, (cmd.guardian_id, cmd.instrument_id, cmd.state, cmd.auction_ns))
        if code is not None:
            return self._reject(cmd, code)
        m = self.integ.get(cmd.instrument_id)
        if m is None:
            return self._reject(cmd, R.instrument_unknown)
        if not 0 <= cmd.state <= int(MarketState.SETTLING) or not 0 <= cmd.auction_ns <= DURATION_NS_MAX:
            return self._reject(cmd, R.field_value_out_of_range)
        to_state = MarketState(cmd.state)
        if to_state in (MarketState.AUCTION, MarketState.POST_ONLY) and m.mode != MatchingMode.CONTINUOUS:
            # A batch market is an auction already, and has no makers for a post-only state to protect.
            return self._reject(cmd, R.market_state_transition_invalid)
        if m.auction_book is not None and to_state not in (MarketState.AUCTION, MarketState.HALTED,
                                                            MarketState.ACTIVE, MarketState.SETTLING):
            # A halted auction keeps its book: it must reopen through the auction (or settle).
            return self._reject(cmd, R.market_state_transition_invalid)
        if (m.mode != MatchingMode.CONTINUOUS and m.status.state == MarketState.HALTED
                and to_state == MarketState.ACTIVE and cmd.auction_ns == 0):
            # A halted batch market reopens straight into its next clearing: that clearing is the auction
            # which GUARDIAN_TRANSITIONS requires of a continuous market (HALTED -> AUCTION -> ACTIVE).
            status: MarketStatus | Any = MarketStatus(MarketState.ACTIVE, TransitionReason.guardian, self.now_ns, ())
        else:
            status = guardian_set(m.status, to_state, self.now_ns, cmd.auction_ns)
        if not isinstance(status, MarketStatus):
            return self._reject(cmd, RejectCode(int(status)))
        from_state = m.status.state
        m.status = status
        self._events.append(MarketStateChanged(m.instrument_id, from_state, to_state, TransitionReason.guardian))
        if to_state == MarketState.AUCTION and m.auction_book is None:
            m.auction_book = BatchBook(m.auction_spec)
        elif from_state == MarketState.AUCTION and to_state == MarketState.ACTIVE:
            self._uncross(m)
        elif to_state == MarketState.SETTLING:
            self._settle_market(m)
        self._refresh_idle()

    def _set_kill_switch(self, cmd: Any) -> None:
        """Guardian SetKillSwitch: venue-wide; while engaged only cancels, deposits, oracle and operator
        commands run, and scheduled market-state steps wait (states.KILL_SWITCH_ALLOWED)."""
        code = self._guardian_code(cmd, (cmd.guardian_id,))
        if code is None and type(cmd.engaged) is not bool:
            code = R.field_type_invalid
        if code is not None:
            return self._reject(cmd, code)
        self.kill_switch_engaged = cmd.engaged
        self._events.append(KillSwitchSet(cmd.engaged))
        self._refresh_idle()

    def _settle_market(self, m: InstrumentIntegrity) -> None:
        """Entering SETTLING: every live order of the instrument is canceled; auction books dropped."""
        iid = m.instrument_id
        victims = [o for o in self.books[iid].orders_in_priority()] + [self.orders[i] for i in m.unbooked_ids()]
        for order in victims:
            self._cancel_resting(order, CancelReason.market_settling)
        untriggered = self.triggers.orders
        for t in [untriggered[i] for i in sorted(untriggered) if untriggered[i].instrument_id == iid]:
            self._cancel_trigger(t, CancelReason.market_settling)
        m.auction_book = None
        m.last_indicative = None
        if m.sealed is not None:  # live commitments: nothing will trade, nobody failed to reveal
            for entry in m.sealed.release_all():
                self._return_bond(m, entry.account_id, entry.commit_id, entry.bond_atoms)

    # ---- timers and post-command checks (§5 steps 3 and 6)

    def _integrity_timers(self) -> None:
        """Due plan steps (halt -> auction -> uncross), LULD limit-state timers, pending band sweeps."""
        now = self.now_ns
        self._swept = []
        for m in self.integ.values():
            if m.idle:
                continue
            if m.status.plan and not self.kill_switch_engaged and m.status.plan[0].at_ns <= now:
                status, moves = advance(m.status, now)
                m.status = status
                for move in moves:
                    self._events.append(MarketStateChanged(m.instrument_id, move.from_state, move.to_state,
                                                           move.reason))
                    if move.to_state == MarketState.AUCTION and m.auction_book is None:
                        m.auction_book = BatchBook(m.auction_spec)
                    elif move.from_state == MarketState.AUCTION and move.to_state == MarketState.ACTIVE:
                        self._uncross(m)
            if m.luld.side != LimitSide.NONE:
                self._luld_check(m)
            if m.sweep_pending:
                self._sweep_band(m)
                self._swept.append(m.instrument_id)
        self._refresh_idle()

    def _integrity_after(self) -> None:
        """After the command: band sweeps, LULD entry, the auction's indicative price (§5.2, §5.4, §6.2)."""
        for m in self.integ.values():
            if m.idle:
                continue
            if m.sweep_pending and m.instrument_id not in self._swept:  # one sweep budget per command
                self._sweep_band(m)
            if m.luld_spec is not None:
                self._luld_check(m)
            if m.status.state == MarketState.AUCTION:
                self._publish_indicative(m)
        self._swept = []
        self._refresh_idle()

    # ---- bands (§5.2)

    def _move_reference(self, m: InstrumentIntegrity, candidate_ticks: int) -> None:
        """A new reference candidate (mark or trade price); LULD smooths it. Moves the band, and marks a
        sweep when resting orders now lie beyond it on their aggressive side."""
        ref = candidate_ticks
        if m.luld_spec is not None:
            ref = luld_reference(m.reference, candidate_ticks, m.luld_spec.reference_update_ppm)
        if ref == m.reference:
            return
        m.reference = ref
        m.rebuild_band()
        if m.batch_book is not None:
            m.batch_book.mark_dirty()
        if m.band is not None and self._band_violated(m.instrument_id, m.band):
            m.sweep_pending = True
            self._integrity_idle = False

    def _clear_stale_sweeps(self) -> None:
        """After the risk engine ran: a liquidation IOC may have taken the very orders a pending band
        sweep was waiting to cancel, so a sweep is pending only while a violation remains."""
        for m in self.integ.values():
            if m.sweep_pending and (m.band is None or not self._band_violated(m.instrument_id, m.band)):
                m.sweep_pending = False

    def _band_violated(self, iid: int, band: Band) -> bool:
        book = self.books[iid]
        bid, ask = book.best_bid(), book.best_ask()
        return (bid is not None and bid > band.high_ticks) or (ask is not None and ask < band.low_ticks)

    def _sweep_band(self, m: InstrumentIntegrity) -> None:
        """Cancel resting orders beyond the band (best first), at most band_sweep_orders_max per command."""
        band = m.band
        if band is None:
            m.sweep_pending = False
            return
        iid = m.instrument_id
        budget = m.sweep_orders_max
        victims: list[Order] = []
        for order in self.books[iid].orders_in_priority():  # bids best first, then asks best first
            if len(victims) == budget:
                break
            if order.side > 0 and order.price_ticks > band.high_ticks:
                victims.append(order)
            elif order.side < 0 and order.price_ticks < band.low_ticks:
                victims.append(order)
        for order in victims:
            self._cancel_resting(order, CancelReason.outside_band)
        m.sweep_pending = self._band_violated(iid, band)

    def band_limit(self, instrument_id: int, side: int, limit_price_ticks: int) -> int:
        """``limit_price_ticks`` of an internal IOC (liquidation, insurance-fund unwind) pulled inside the
        instrument's price band: no trade happens outside a band, whoever sends the order (a client's
        limit beyond it is refused with 510 instead). Unchanged without a band."""
        if self._integrity_idle:
            return limit_price_ticks
        band = self.integ[instrument_id].band
        if band is None:
            return limit_price_ticks
        if side > 0:
            return min(limit_price_ticks, band.high_ticks)
        return max(limit_price_ticks, band.low_ticks)

    def _collar(self, m: InstrumentIntegrity, spec: InstrumentSpec) -> tuple[int, int]:
        """Price interval an auction may clear in: the band, or mark +/- market_protection_ppm without one."""
        if m.band is not None:
            return m.band.low_ticks, m.band.high_ticks
        mark = self.marks[spec.instrument_id]
        width = mark * spec.market_protection_ppm // PPM
        return max(mark - width, 1), min(mark + width, spec.price_ticks_max)

    def _auction_reference(self, m: InstrumentIntegrity) -> int:
        return m.reference if m.band_spec is not None else self.marks[m.instrument_id]

    # ---- velocity logic (§5.3)

    def _rest_or_cancel_remainder(self, book: Any, order: Order) -> None:
        """An auction or batch remainder rejoining continuous matching: an IOC, or a limit that would cross
        ``book`` at rest, is canceled (``auction_remainder``); any other rests."""
        bid, ask = book.best_bid(), book.best_ask()
        crosses = (ask is not None and order.price_ticks >= ask) if order.side > 0 else (
            bid is not None and order.price_ticks <= bid)
        if order.time_in_force == TimeInForce.IOC or crosses:
            self._cancel_live(order, CancelReason.auction_remainder)
        else:
            book.add(order)

    def _fok_fillable(self, order: Order, spec: InstrumentSpec, book: Any,
                      m: InstrumentIntegrity | None) -> bool:
        """A fill-or-kill order can fill all of ``order.qty_lots`` now: at its limit, or at the velocity
        guard's limit when one is configured (None: its first fill would engage the pause). Changes no
        state beyond the ``_spec`` scratch the book callbacks read."""
        self._spec = spec
        limit: int | None = order.price_ticks
        if m is not None and m.velocity is not None:
            limit = self._velocity_limit(m, order)
        return limit is not None and book.fillable_lots(order, limit, self.now_ns, self) >= order.qty_lots

    def _velocity_limit(self, m: InstrumentIntegrity, order: Order) -> int | None:
        """The limit a taker may match with without engaging the pause; None when its first fill would."""
        guard = m.velocity
        assert guard is not None
        book = self.books[m.instrument_id]
        best = book.best_ask() if order.side > 0 else book.best_bid()
        if best is None or m.status.state != MarketState.ACTIVE or m.mode != MatchingMode.CONTINUOUS:
            return order.price_ticks
        if guard.would_engage(self.now_ns, best):
            return None
        clamp = guard.taker_limit_ticks(self.now_ns, order.side, best)
        return min(order.price_ticks, clamp) if order.side > 0 else max(order.price_ticks, clamp)

    def _match_guarded(self, order: Order, spec: InstrumentSpec, book: Any) -> int:
        """Match a crossing taker with the integrity layer on: velocity clamp, trade recording, pause.

        Returns the book's stop reason, or -1 when the velocity pause took the order.
        """
        m = self.integ[spec.instrument_id]
        start = len(self._events)
        if m.velocity is None:
            stop: int = book.match(order, order.price_ticks, self.now_ns, self)
        else:
            limit = self._velocity_limit(m, order)
            if limit is None:
                return self._engage_velocity(m, order)
            stop = book.match(order, limit, self.now_ns, self)
        self._record_trades(m, start)
        if m.velocity is not None and order.qty_lots > 0 and stop == STOP_NONE and order.order_id in self.orders:
            best = book.best_ask() if order.side > 0 else book.best_bid()
            if best is not None and (best <= order.price_ticks if order.side > 0 else best >= order.price_ticks):
                return self._engage_velocity(m, order)  # liquidity beyond the clamp: the taker would move it
        return stop

    def _record_trades(self, m: InstrumentIntegrity, start: int) -> None:
        """Feed this match's trade prices to the velocity window and the last-trade reference."""
        events = self._events
        last = 0
        for i in range(start, len(events)):
            ev = events[i]
            if type(ev) is TradeExecuted:
                last = ev.price_ticks
                if m.velocity is not None:
                    engaged = m.velocity.record(self.now_ns, last)
                    assert not engaged, "a clamped taker engaged the velocity guard"
        if last:
            m.last_trade = last
            if m.band_spec is not None and m.band_spec.source == ReferenceSource.LAST_TRADE:
                self._move_reference(m, last)

    def _engage_velocity(self, m: InstrumentIntegrity, order: Order) -> int:
        """ACTIVE -> AUCTION for pause_ns; GTC/GTD takers wait for the reopening, IOC/FOK/market go."""
        assert m.velocity_spec is not None
        status = velocity_pause(m.status, self.now_ns, m.velocity_spec.pause_ns)
        assert status is not None
        m.status = status
        m.auction_book = BatchBook(m.auction_spec)
        self._events.append(MarketStateChanged(m.instrument_id, MarketState.ACTIVE, MarketState.AUCTION,
                                               TransitionReason.velocity))
        if order.time_in_force in (TimeInForce.GTC, TimeInForce.GTD):
            self._auction_submit(m, order, False)
        else:
            self._cancel_live(order, CancelReason.velocity_pause)
        self._integrity_idle = False
        return -1

    # ---- LULD (§5.4)

    def _luld_check(self, m: InstrumentIntegrity) -> None:
        spec = m.luld_spec
        if spec is None or m.band is None or m.status.state != MarketState.ACTIVE:
            return
        book = self.books[m.instrument_id]
        side = limit_side(book.best_bid(), book.best_ask(), m.band)
        if side == LimitSide.NONE and m.luld.side == LimitSide.NONE:
            return
        step = luld_step(m.luld, self.now_ns, side, spec)
        m.luld = step.state
        if step.halt:
            status = luld_halt(m.status, self.now_ns, spec.halt_ns, spec.auction_ns)
            assert status is not None
            m.status = status
            self._events.append(MarketStateChanged(m.instrument_id, MarketState.ACTIVE, MarketState.HALTED,
                                                   TransitionReason.luld_limit_state))
            self._integrity_idle = False

    # ---- call auctions (§6)

    def _book_submit(self, m: InstrumentIntegrity, book: BatchBook, order: Order, is_market: bool) -> None:
        """Hand a tracked, accepted order to an auction or batch book (not linked into the FastBook).
        IOC and market orders live for one clearing; the expiry index is the caller's business."""
        code = book.submit(order.order_id, order.side, 0 if is_market else order.price_ticks, order.qty_lots,
                           self.now_ns, is_market=is_market,
                           ioc=is_market or order.time_in_force == TimeInForce.IOC)
        assert code is None, "auction/batch book full after the admission check"
        self.unbooked[order.order_id] = m.instrument_id

    def _auction_submit(self, m: InstrumentIntegrity, order: Order, is_market: bool) -> None:
        """Hand a tracked, accepted order to the instrument's call-auction book."""
        assert m.auction_book is not None
        self._book_submit(m, m.auction_book, order, is_market)
        if order.expire_at_ns:
            self._expiry_add(order)

    def _batch_submit(self, m: InstrumentIntegrity, order: Order, is_market: bool) -> None:
        """Hand a tracked, accepted order to the instrument's batch book (BATCH / SEALED_BATCH mode)."""
        assert m.batch_book is not None
        self._book_submit(m, m.batch_book, order, is_market)
        if order.expire_at_ns:
            self._expiry_add(order)

    def _holding_book(self, m: InstrumentIntegrity, order_id: int) -> BatchBook:
        """The auction or batch book that holds the unbooked order ``order_id``."""
        if m.auction_book is not None and order_id in m.auction_book.orders:
            return m.auction_book
        assert m.batch_book is not None and order_id in m.batch_book.orders, "unbooked order in no book"
        return m.batch_book

    def _unbook(self, order: Order) -> None:
        """Take a live order out of its auction/batch book (cancel, or re-entry after an amend)."""
        iid = self.unbooked.pop(order.order_id)
        m = self.integ[iid]
        left = self._holding_book(m, order.order_id).cancel(order.order_id)
        assert left == order.qty_lots, "auction book and order disagree"
        if m.liquidations:
            m.liquidations.pop(order.order_id, None)

    def _book_reduce(self, order: Order, new_qty: int) -> None:
        """Shrink a live order in place (priority kept), wherever it rests."""
        if self.unbooked and order.order_id in self.unbooked:
            m = self.integ[self.unbooked[order.order_id]]
            assert self._holding_book(m, order.order_id).reduce(order.order_id, new_qty) is None
            order.qty_lots = new_qty
        else:
            self.books[order.instrument_id].reduce(order, new_qty)

    def _clearing_input(self, entries: list[tuple[Order, int, int, bool]], at_ns: int) -> list[AuctionOrder]:
        """Auction input from ``(order, qty_lots, priority, is_market)`` in priority order: GTD orders expired
        at ``at_ns`` are left out (matching never trades an expired order either), and reduce-only orders
        are capped so that together with the account's other orders on that side in this clearing they
        cannot take its position past zero (oldest first)."""
        out: list[AuctionOrder] = []
        closing: dict[tuple[int, int], int] = {}  # (account, side) -> lots still allowed for reduce-only
        if any(o.reduce_only for o, _, _, _ in entries):
            for o, qty, _, _ in entries:
                key = (o.account_id, o.side)
                if key not in closing:
                    closing[key] = self.reduce_only_cap(o)
                if not o.reduce_only:
                    closing[key] -= qty
        for o, qty, priority, is_market in entries:
            if o.expire_at_ns and o.expire_at_ns <= at_ns:
                continue
            if o.reduce_only:
                key = (o.account_id, o.side)
                qty = max(0, min(qty, closing[key]))
                closing[key] -= qty
            if qty > 0:
                out.append(AuctionOrder(o.order_id, o.side, 0 if is_market else o.price_ticks, qty, priority,
                                        is_market))
        return out

    def _auction_orders(self, m: InstrumentIntegrity) -> list[AuctionOrder]:
        """The uncross input: resting orders (their book priority) then auction-book orders (§6.1 step 1)."""
        entries = [(o, o.qty_lots, o.priority, False) for o in self.books[m.instrument_id].orders_in_priority()]
        if m.auction_book is not None:
            entries += [(self.orders[b.order_id], b.qty_lots, _AUCTION_PRIORITY_BASE + b.priority, b.is_market)
                        for b in m.auction_book.orders.values()]
        return self._clearing_input(entries, self.now_ns)

    def _batch_orders(self, m: InstrumentIntegrity, at_ns: int) -> list[AuctionOrder]:
        """The input of a batch clearing at ``at_ns``: the batch book in its priority order (§6.3)."""
        assert m.batch_book is not None
        return self._clearing_input([(self.orders[b.order_id], b.qty_lots, b.priority, b.is_market)
                                     for b in m.batch_book.orders.values()], at_ns)

    def _publish_indicative(self, m: InstrumentIntegrity) -> None:
        spec = self.specs[m.instrument_id]
        low, high = self._collar(m, spec)
        orders = self._auction_orders(m)
        ind = indicative(orders, min(max(self._auction_reference(m), low), high), low, high,
                         max(len(orders), 1))
        if ind != m.last_indicative:
            m.last_indicative = ind
            self._events.append(AuctionIndicative(m.instrument_id, ind.price_ticks or 0, ind.matched_lots,
                                                  ind.imbalance_lots))

    def _uncross(self, m: InstrumentIntegrity) -> None:
        """AUCTION -> ACTIVE: one uniform-price clearing of the resting and auction orders (§6.1)."""
        iid = m.instrument_id
        spec = self.specs[iid]
        book = self.books[iid]
        low, high = self._collar(m, spec)
        orders = self._auction_orders(m)
        result = self._clear_fn(orders, min(max(self._auction_reference(m), low), high), m.auction_spec.allocation,
                                low, high)
        price = result.price_ticks
        parked = m.unbooked_ids()
        if self._touched:
            self._touched = []
        if price is not None:
            self._events.append(AuctionCleared(iid, 0, self.now_ns, price, result.volume_lots,
                                               result.indicative.imbalance_lots))
            for trade in pair_fills(result.fills):
                self._settle_auction_trade(spec, self.orders[trade.buy_order_id], self.orders[trade.sell_order_id],
                                           trade.qty_lots, price)
        m.auction_book = None
        m.last_indicative = None
        for order_id in parked:  # §6.1 steps 4-5: market remainders go, limit remainders rest
            self.unbooked.pop(order_id, None)
            order = self.orders.get(order_id)
            if order is None:
                continue
            self._rest_or_cancel_remainder(book, order)
        if price is not None:
            self._cleared_at(m, price)
        m.luld = LuldState()
        if m.band is not None and not m.sweep_pending and self._band_violated(iid, m.band):
            # Limit remainders accepted while the band was elsewhere (it moved with the mark during the
            # auction) now rest beyond it: sweep them like any order a moved band leaves behind.
            m.sweep_pending = True
        if self._touched:
            self._resize_reduce_only()

    def _cleared_at(self, m: InstrumentIntegrity, price_ticks: int) -> None:
        """After an uncross or batch clearing at ``price_ticks``: velocity window, last trade, reference."""
        if m.velocity is not None:
            m.velocity.reset()
            m.velocity.record(self.now_ns, price_ticks)
        m.last_trade = price_ticks
        if m.band_spec is not None and m.band_spec.source == ReferenceSource.LAST_TRADE:
            self._move_reference(m, price_ticks)

    def _settle_auction_trade(self, spec: InstrumentSpec, buy: Order, sell: Order, qty_lots: int,
                              price_ticks: int) -> None:
        """One auction pair at the clearing price: ``on_trade`` with no aggressor (taker_side 0, maker =
        the sell, taker = the buy) and ``auction_fee_ppm`` on both legs (§3)."""
        for order in (buy, sell):
            new_qty = order.qty_lots - qty_lots
            assert new_qty >= 0
            if order.order_id in self.unbooked:
                order.qty_lots = new_qty  # the auction book is dropped after the clearing
            elif new_qty == 0:
                self.books[order.instrument_id].remove(order)
                order.qty_lots = 0
            else:
                self.books[order.instrument_id].reduce(order, new_qty)
        iid = spec.instrument_id
        k = spec.atoms_per_tick_lot
        fee = spec.fee_atoms(price_ticks * qty_lots * k, spec.auction_fee_ppm)
        # A liquidation IOC (batch mode) pays the liquidation fee to the fund instead (as in on_trade).
        plans = self.integ[iid].liquidations
        s_plan = plans.get(sell.order_id) if plans else None
        b_plan = plans.get(buy.order_id) if plans else None
        s_fee = 0 if s_plan is not None else fee
        b_fee = 0 if b_plan is not None else fee
        s_acct, b_acct = self.accounts[sell.account_id], self.accounts[buy.account_id]
        s_pos, b_pos = s_acct.positions[iid], b_acct.positions[iid]
        # Both legs may be the same account (no STP in an auction): settle one after the other.
        oi_before = sum(max(p.size_lots, 0) for p in ({id(s_pos): s_pos, id(b_pos): b_pos}).values())
        s_pnl = settle_fill(s_acct, s_pos, -qty_lots, price_ticks, k)
        b_pnl = settle_fill(b_acct, b_pos, qty_lots, price_ticks, k)
        oi_after = sum(max(p.size_lots, 0) for p in ({id(s_pos): s_pos, id(b_pos): b_pos}).values())
        self.open_interest_lots[iid] += oi_after - oi_before
        self.risk.holding_changed(iid, sell.account_id, s_pos.size_lots)
        self.risk.holding_changed(iid, buy.account_id, b_pos.size_lots)
        s_acct.balance_atoms -= s_fee
        b_acct.balance_atoms -= b_fee
        self.fee_pool_atoms += s_fee + b_fee
        s_pos.open_sell_lots -= qty_lots
        b_pos.open_buy_lots -= qty_lots
        # Both positions changed: health re-check after the command and a fresh liquidation-index entry
        # (without it a later mark move sweeps a stale entry and misses the account).
        self.risk.touch(sell.account_id)
        self.risk.touch(buy.account_id)
        self._events.append(TradeExecuted(iid, price_ticks, qty_lots, 0, sell.order_id, buy.order_id,
                                          sell.account_id, buy.account_id, s_fee, b_fee, s_pnl, b_pnl))
        for plan, order in ((s_plan, sell), (b_plan, buy)):
            if plan is not None:
                self._liquidation_fill(order, plan, qty_lots, price_ticks)
        risk = self.risk
        risk.touched.add(sell.account_id)  # both positions moved: health and liquidation index re-checked
        risk.touched.add(buy.account_id)
        risk.last_trade_ticks[iid] = price_ticks  # the mark's last-trade input (the FastBook is empty in batch)
        if self.triggers.orders:  # LAST-source triggers are reached by auction prices too (they wait for
            self.triggers.observe(iid, _LAST, price_ticks)  # continuous trading to fire)
        for acct, order, pos in ((s_acct, sell, s_pos), (b_acct, buy, b_pos)):
            if order.qty_lots == 0 and order.order_id in self.orders:
                self.unbooked.pop(order.order_id, None)
                if plans:
                    plans.pop(order.order_id, None)
                self._untrack(acct, order)
            if pos.reduce_only_count or (acct.account_id, iid) in self.triggers.position_keys:
                self._touched.append((acct, iid))

    # ---- matching modes: frequent batch auctions (§5.5, §6.3) and sealed rounds (§7)

    def _set_matching_mode(self, cmd: Any) -> None:
        """Guardian SetMatchingMode: only while the market is HALTED or CANCEL_ONLY (nothing trades during
        the switch), with no call auction and no live commitment (508). The live orders move in their
        priority order: into a new batch book whose grid starts now, or back into the FastBook, where IOC /
        market orders and orders that would cross the book built so far are canceled (``auction_remainder``:
        a halted market does not trade, so a crossed batch book is not cleared on the way out)."""
        code = self._guardian_code(cmd, (cmd.guardian_id, cmd.instrument_id, cmd.mode, cmd.interval_ns,
                                         cmd.reveal_ns))
        if code is not None:
            return self._reject(cmd, code)
        m = self.integ.get(cmd.instrument_id)
        if m is None:
            return self._reject(cmd, R.instrument_unknown)
        mode, interval, reveal = cmd.mode, cmd.interval_ns, cmd.reveal_ns
        if mode == MatchingMode.CONTINUOUS:
            valid = interval == 0 and reveal == 0
        elif mode == MatchingMode.BATCH:
            valid = 0 < interval <= DURATION_NS_MAX and reveal == 0
        else:
            valid = mode == MatchingMode.SEALED_BATCH and 0 < reveal <= interval <= DURATION_NS_MAX
        if not valid:
            return self._reject(cmd, R.field_value_out_of_range)
        if (m.status.state not in (MarketState.HALTED, MarketState.CANCEL_ONLY) or m.auction_book is not None
                or (m.sealed is not None and m.sealed.live)
                or (mode == m.mode and interval == m.interval_ns and reveal == m.reveal_ns)):
            return self._reject(cmd, R.matching_mode_change_invalid)
        iid = m.instrument_id
        fast = self.books[iid]
        moving = [(o, False) for o in fast.orders_in_priority()]
        if m.batch_book is not None:
            moving += [(self.orders[b.order_id], b.is_market) for b in m.batch_book.orders.values()]
        if mode != MatchingMode.CONTINUOUS and len(moving) > m.auction_spec.orders_max:
            return self._reject(cmd, R.auction_orders_max_reached)
        # ---- accepted
        self._events.append(MatchingModeSet(iid, mode, interval, reveal))
        plans = m.liquidations
        m.liquidations = {}
        for order, _ in moving:
            if order.order_id in self.unbooked:
                del self.unbooked[order.order_id]
            else:
                fast.remove(order)
        m.mode, m.interval_ns, m.reveal_ns = MatchingMode(mode), interval, reveal
        m.batch_book = None
        m.sealed = None
        if mode != MatchingMode.CONTINUOUS:
            m.batch_book = BatchBook(m.batch_spec(self.now_ns), self.now_ns)
            if mode == MatchingMode.SEALED_BATCH:
                m.sealed = SealedBidBook(m.sealed_spec(self.now_ns), iid)
        for order, is_market in moving:
            if m.batch_book is not None:
                self._book_submit(m, m.batch_book, order, is_market)
                if order.order_id in plans:
                    m.liquidations[order.order_id] = plans[order.order_id]
                continue
            self._rest_or_cancel_remainder(fast, order)
        self._refresh_idle()

    def _run_clearings(self) -> None:
        """Step 3b before GTD expiry: due batch clearings (ACTIVE, switch off; otherwise the batch only
        advances and its orders wait) and due sealed-round closes, instruments in ascending id."""
        now = self.now_ns
        for m in self.integ.values():
            if m.mode == MatchingMode.CONTINUOUS:
                continue
            if m.sealed is not None:
                for closed in m.sealed.close_due(now):  # oldest first, at most ROUNDS_LIVE_MAX
                    self._close_round(m, closed)
                continue
            book = m.batch_book
            assert book is not None
            if not book.due(now):
                continue
            if m.status.state != MarketState.ACTIVE or self.kill_switch_engaged:
                book.advance(now)
                continue
            low, high = self._collar(m, self.specs[m.instrument_id])
            clearing = book.run_due(now, min(max(self._auction_reference(m), low), high), low, high,
                                    orders=lambda at_ns: self._batch_orders(m, at_ns), clear=self._clear_fn)
            if clearing is not None:
                self._settle_clearing(m, clearing)

    def _settle_clearing(self, m: InstrumentIntegrity, clearing: BatchClearing) -> None:
        """One batch clearing (§6.3): AuctionCleared, the pairs at the clearing price, IOC/market remainders
        canceled (``auction_remainder``), then last trade / reference / velocity and reduce-only resizing.
        The batch book has already applied the fills to its own orders."""
        iid = m.instrument_id
        spec = self.specs[iid]
        price = clearing.result.price_ticks
        if self._touched:
            self._touched = []
        if price is not None:
            self._events.append(AuctionCleared(iid, clearing.batch_index, clearing.boundary_ns, price,
                                               clearing.result.volume_lots, clearing.result.indicative.imbalance_lots))
            for trade in clearing.trades:
                self._settle_auction_trade(spec, self.orders[trade.buy_order_id], self.orders[trade.sell_order_id],
                                           trade.qty_lots, price)
        for order_id, qty_lots in clearing.canceled:
            order = self.orders[order_id]
            assert order.qty_lots == qty_lots, "batch book and order disagree"
            del self.unbooked[order_id]
            if m.liquidations:
                m.liquidations.pop(order_id, None)
            self._cancel_live(order, CancelReason.auction_remainder)
        if price is not None:
            self._cleared_at(m, price)
        if self._touched:
            self._resize_reduce_only()

    # ---- liquidation IOCs in batch markets (called by the risk engine)

    def _execute_liquidation(self, order: Order, spec: InstrumentSpec) -> None:
        """The risk engine's liquidation IOC (tracked, accepted): matched now in a continuous market; in a
        batch market it joins the batch book and fills at the next clearing, its plan kept for the fee
        split of those fills (risk.active_plan). A full batch book cancels it (retried next command)."""
        m = self.integ[spec.instrument_id]
        book = m.batch_book
        if book is None:
            return self._execute(order, spec)
        plan = self.risk.active_plan
        assert plan is not None and plan.instrument_id == spec.instrument_id
        if len(book.orders) >= book.spec.orders_max:
            return self._cancel_live(order, CancelReason.ioc_remainder)
        self._book_submit(m, book, order, False)
        m.liquidations[order.order_id] = plan

    def liquidation_pending(self, account_id: int) -> bool:
        """True while a liquidation IOC of the account waits in a batch book that will clear (ACTIVE, switch
        off, and a grid or a round close coming): the risk engine then waits for that clearing instead of
        replacing the order. O(pending liquidation orders)."""
        if not self._batch_markets or self.kill_switch_engaged:
            return False
        for m in self.integ.values():
            if not m.liquidations or m.status.state != MarketState.ACTIVE:
                continue
            if m.mode == MatchingMode.SEALED_BATCH and (m.sealed is None or not m.sealed.live):
                continue  # no round will close: the order would wait for nothing
            for plan in m.liquidations.values():
                if plan.account_id == account_id:
                    return True
        return False

    def _is_liquidation(self, order: Order) -> bool:
        """A liquidation IOC waiting in a batch book (its account may not cancel or amend it)."""
        iid = self.unbooked.get(order.order_id) if self.unbooked else None
        return iid is not None and order.order_id in self.integ[iid].liquidations

    def _liquidation_fill(self, order: Order, plan: LiquidationOrder, qty_lots: int, price_ticks: int) -> None:
        """A batch fill of a liquidation IOC: the risk engine's fee split (PositionLiquidated) and throttle."""
        risk = self.risk
        risk.active_order_id, risk.active_plan = order.order_id, plan
        risk.liquidation_fill(order, qty_lots, price_ticks)
        risk.active_order_id, risk.active_plan = 0, None
        notional = qty_lots * price_ticks * self.specs[plan.instrument_id].atoms_per_tick_lot
        risk.throttle[plan.account_id] = throttle_record(risk.throttle.get(plan.account_id), self.now_ns, notional,
                                                         risk.config.liquidation)

    # ---- sealed-bid commit-reveal (§7)

    def _commit_order(self, cmd: Any) -> None:
        """CommitOrder: escrow a bond (checked like a withdrawal) against a 32-byte commitment."""
        for value in (cmd.account_id, cmd.instrument_id, cmd.commit_id, cmd.bond_atoms):
            if not _is_int(value):
                return self._reject(cmd, R.field_type_invalid)
        if type(cmd.commitment) is not bytes:
            return self._reject(cmd, R.field_type_invalid)
        account = self.accounts.get(cmd.account_id)
        if account is None:
            return self._reject(cmd, R.account_unknown)
        m = self.integ.get(cmd.instrument_id)
        if m is None:
            return self._reject(cmd, R.instrument_unknown)
        if not 1 <= cmd.commit_id <= ID_MAX:
            return self._reject(cmd, R.field_value_out_of_range)
        if len(cmd.commitment) != COMMITMENT_BYTES:
            return self._reject(cmd, R.commitment_malformed)
        if account.isolated_instrument_id and account.isolated_instrument_id != m.instrument_id:
            return self._reject(cmd, R.account_isolated_to_other_instrument)
        code = (self._amount_code(cmd.bond_atoms) or self._state_code(m, CommandKind.COMMIT)
                or (None if m.sealed is not None else R.market_not_sealed_batch)
                or self._withdrawal_code(account, cmd.bond_atoms))
        if code is not None:
            return self._reject(cmd, code)
        assert m.sealed is not None
        accepted = m.sealed.commit(account.account_id, cmd.commit_id, cmd.commitment, cmd.bond_atoms, self.now_ns)
        if not isinstance(accepted, CommitAccepted):
            return self._reject(cmd, RejectCode(int(accepted)))
        account.balance_atoms -= cmd.bond_atoms
        self.bonds_escrowed_atoms += cmd.bond_atoms
        self.risk.touch(account.account_id)
        self._events.append(OrderCommitted(account.account_id, m.instrument_id, cmd.commit_id, cmd.commitment,
                                           cmd.bond_atoms, accepted.round_index, accepted.reveal_open_ns,
                                           accepted.reveal_close_ns))

    def _reject_reveal(self, cmd: Any, code: RejectCode) -> None:
        """A refused reveal names the account only: its client order id is part of the sealed content."""
        account_id = cmd.account_id
        encodable = _is_int(account_id) and _INT_ENCODABLE_MIN <= account_id <= _INT_ENCODABLE_MAX
        self._events.append(CommandRejected("reveal_order", int(account_id) if encodable else 0, 0, code))

    def _reveal_order(self, cmd: Any) -> None:
        """RevealOrder: open a commitment in its reveal window. A match stores the order privately
        (RevealReceived, no content); a mismatch closes the commitment and forfeits its bond to the
        insurance fund (BondForfeited: the command has an effect, so it is not a CommandRejected)."""
        for value in (cmd.account_id, cmd.instrument_id, cmd.commit_id, cmd.client_order_id, cmd.side,
                      cmd.price_ticks, cmd.qty_lots, cmd.time_in_force):
            if not _is_int(value):
                return self._reject_reveal(cmd, R.field_type_invalid)
        if type(cmd.salt) is not bytes:
            return self._reject_reveal(cmd, R.field_type_invalid)
        if cmd.account_id not in self.accounts:
            return self._reject_reveal(cmd, R.account_unknown)
        m = self.integ.get(cmd.instrument_id)
        if m is None:
            return self._reject_reveal(cmd, R.instrument_unknown)
        if len(cmd.salt) != SALT_BYTES:
            return self._reject_reveal(cmd, R.salt_malformed)
        code = self._state_code(m, CommandKind.REVEAL) or (None if m.sealed is not None else R.market_not_sealed_batch)
        if code is not None:
            return self._reject_reveal(cmd, code)
        assert m.sealed is not None
        order = SealedOrder(int(cmd.account_id), int(cmd.instrument_id), int(cmd.client_order_id), int(cmd.side),
                            int(cmd.price_ticks), int(cmd.qty_lots), int(cmd.time_in_force))
        outcome = m.sealed.reveal(order.account_id, int(cmd.commit_id), order, cmd.salt, self.now_ns)
        if isinstance(outcome, RevealAccepted):
            self._events.append(RevealReceived(order.account_id, m.instrument_id, outcome.commit_id))
        elif isinstance(outcome, BondForfeit):
            self._forfeit(m, outcome.account_id, outcome.commit_id, outcome.bond_atoms, outcome.reason)
        else:
            self._reject_reveal(cmd, RejectCode(int(outcome)))

    def _forfeit(self, m: InstrumentIntegrity, account_id: int, commit_id: int, bond_atoms: int,
                 reason: BondForfeitReason) -> None:
        """An escrowed bond goes to the insurance fund."""
        self.bonds_escrowed_atoms -= bond_atoms
        self.insurance_fund_atoms += bond_atoms
        self._events.append(BondForfeited(account_id, m.instrument_id, commit_id, bond_atoms, reason,
                                          self.insurance_fund_atoms))

    def _return_bond(self, m: InstrumentIntegrity, account_id: int, commit_id: int, bond_atoms: int) -> None:
        """An escrowed bond goes back to its account's balance."""
        self.bonds_escrowed_atoms -= bond_atoms
        self.accounts[account_id].balance_atoms += bond_atoms
        self.risk.touch(account_id)
        self._events.append(BondReturned(account_id, m.instrument_id, commit_id, bond_atoms))

    def _close_round(self, m: InstrumentIntegrity, closed: RoundClosed) -> None:
        """A round's reveal window closed (§7): unrevealed bonds forfeit; revealed orders are admitted in
        commit-arrival order, each through PlaceOrder's own validation and margin check as if placed now,
        with its bond counted as its collateral (accepted: OrderAccepted, batch book, BondReturned;
        refused: BondForfeited(revealed_order_rejected), except for the venue-side refusals 530 / 308,
        which return the bond); then the batch book clears once. A market that is not ACTIVE (or a kill
        switch) admits nothing and returns the revealed orders' bonds."""
        for lost in closed.forfeited:
            self._forfeit(m, lost.account_id, lost.commit_id, lost.bond_atoms, lost.reason)
        admit = m.status.state == MarketState.ACTIVE and not self.kill_switch_engaged
        for revealed in closed.revealed:
            aid, bond = revealed.order.account_id, revealed.bond_atoms
            if not admit:
                self._return_bond(m, aid, revealed.commit_id, bond)
                continue
            account = self.accounts[aid]
            self.bonds_escrowed_atoms -= bond  # tentatively back in the balance: the order may use it as margin
            account.balance_atoms += bond
            refused = self._admit_revealed(revealed.order)
            if refused is None or refused in _VENUE_SIDE_REFUSALS:
                self.risk.touch(aid)
                self._events.append(BondReturned(aid, m.instrument_id, revealed.commit_id, bond))
            else:
                account.balance_atoms -= bond
                self.bonds_escrowed_atoms += bond
                self._forfeit(m, aid, revealed.commit_id, bond, BondForfeitReason.revealed_order_rejected)
        if not admit:
            return
        book = m.batch_book
        assert book is not None
        low, high = self._collar(m, self.specs[m.instrument_id])
        clearing = book.clear_now(self.now_ns, min(max(self._auction_reference(m), low), high), low, high,
                                  orders=lambda at_ns: self._batch_orders(m, at_ns), clear=self._clear_fn)
        self._settle_clearing(m, clearing)

    def _admit_revealed(self, order: SealedOrder) -> RejectCode | None:
        """Run a revealed order through ``_place`` (price 0 = market order). None when accepted, else the
        refusal's code: its CommandRejected is taken back out of the events (the bond's fate reports it)."""
        cmd = PlaceOrder(order.account_id, order.instrument_id, order.client_order_id, order.side, order.price_ticks,
                         order.qty_lots, order_type=OrderType.MARKET if order.price_ticks == 0 else OrderType.LIMIT,
                         time_in_force=order.time_in_force)
        events = self._events
        start = len(events)
        self._admitting = True
        self._place(cmd)
        self._admitting = False
        if len(events) == start + 1 and type(events[start]) is CommandRejected:
            rejection: Any = events.pop()
            return RejectCode(int(rejection.code))
        assert type(events[start]) is OrderAccepted
        return None

    # ------------------------------------------------------------------ state: invariants, snapshot, hash

    def check_invariants(self) -> None:
        """Full O(state) check; raises :class:`InvariantViolation` naming the first broken invariant.

        Conservation to the atom; long OI = short OI (= tracked OI); books never crossed at rest; every
        live order indexed consistently and the open-order aggregates equal the sum of live orders.
        """
        # The venue's bad-debt account (risk engine) holds minus the losses nobody could absorb.
        net_cash = self.fee_pool_atoms + self.insurance_fund_atoms + self.bonds_escrowed_atoms - self.risk.bad_debt_atoms
        net_size = dict.fromkeys(self.specs, 0)
        long_oi = dict.fromkeys(self.specs, 0)
        live = 0
        for account in self.accounts.values():
            net_cash += account.balance_atoms
            for iid, pos in account.positions.items():
                net_cash -= pos.cost_atoms
                net_size[iid] += pos.size_lots
                long_oi[iid] += max(pos.size_lots, 0)
                if (pos.size_lots == 0) != (pos.cost_atoms == 0) or pos.size_lots * pos.cost_atoms < 0:
                    raise InvariantViolation(f"account {account.account_id} position cost sign broken")
                buy = sum(o.qty_lots for o in pos.orders.values() if o.side > 0)
                sell = sum(o.qty_lots for o in pos.orders.values() if o.side < 0)
                if (buy, sell) != (pos.open_buy_lots, pos.open_sell_lots):
                    raise InvariantViolation(f"account {account.account_id} open-order aggregates drifted")
                live += len(pos.orders)
        if net_cash != self.deposits_total_atoms - self.withdrawals_total_atoms:
            raise InvariantViolation(f"conservation broken at seq {self.seq}")
        for iid in self.specs:
            if net_size[iid] != 0 or long_oi[iid] != self.open_interest_lots[iid]:
                raise InvariantViolation(f"open interest unbalanced on instrument {iid} at seq {self.seq}")
            book = self.books[iid]
            bid, ask = book.best_bid(), book.best_ask()
            if bid is not None and ask is not None and bid >= ask:
                raise InvariantViolation(f"book {iid} crossed at rest: {bid} >= {ask}")
        resting = sum(len(b) for b in self.books.values())
        parked = 0
        bonds = 0
        for m in self.integ.values():  # market integrity (docs/integrity-integration.md §8)
            self._check_mode_invariants(m)
            if m.sealed is not None:
                bonds += m.sealed.bonds_escrowed_atoms()
            ids = m.unbooked_ids()
            parked += len(ids)
            if any(self.unbooked.get(i) != m.instrument_id or i not in self.orders for i in ids):
                raise InvariantViolation(f"auction book {m.instrument_id} and the order indexes disagree")
            if m.auction_book is not None and m.status.state not in (MarketState.AUCTION, MarketState.HALTED):
                raise InvariantViolation(f"instrument {m.instrument_id} has an auction book outside an auction")
            if m.status.state == MarketState.AUCTION and m.auction_book is None:
                raise InvariantViolation(f"instrument {m.instrument_id} is in AUCTION without an auction book")
            if m.sweep_pending and (m.band is None or not self._band_violated(m.instrument_id, m.band)):
                raise InvariantViolation(f"instrument {m.instrument_id} has a sweep pending without a violation")
            if not m.sweep_pending and m.band is not None and self._band_violated(m.instrument_id, m.band):
                raise InvariantViolation(f"instrument {m.instrument_id} rests orders beyond its band")
        if self.integ and self._integrity_idle and any(not m.idle for m in self.integ.values()):
            raise InvariantViolation("integrity fast path enabled while an instrument needs the checks")
        if parked != len(self.unbooked):
            raise InvariantViolation(f"unbooked index disagrees: {parked} / {len(self.unbooked)}")
        if bonds != self.bonds_escrowed_atoms:
            raise InvariantViolation(f"escrowed bonds {self.bonds_escrowed_atoms} != live commitments' {bonds}")
        if not (live == len(self.orders) == resting + parked):
            raise InvariantViolation(f"order indexes disagree: {live} / {len(self.orders)} / {resting}+{parked}")
        broken = self.risk.check()
        if broken:
            raise InvariantViolation(f"risk invariant broken at seq {self.seq}: {broken[0]}")
        trigger_problem = self._trigger_invariant()
        if trigger_problem is not None:
            raise InvariantViolation(f"trigger invariant broken at seq {self.seq}: {trigger_problem}")

    def _check_mode_invariants(self, m: InstrumentIntegrity) -> None:
        """Matching mode ⇔ books (§8): a batch market has a batch book (and a sealed book iff SEALED_BATCH),
        an empty FastBook and no call auction; auction/batch orders agree with the engine's orders; pending
        liquidation plans belong to live batch orders."""
        iid = m.instrument_id
        batch = m.mode != MatchingMode.CONTINUOUS
        if batch != (m.batch_book is not None) or (m.mode == MatchingMode.SEALED_BATCH) != (m.sealed is not None):
            raise InvariantViolation(f"instrument {iid}: matching mode {int(m.mode)} and its books disagree")
        if batch and (len(self.books[iid]) or m.auction_book is not None):
            raise InvariantViolation(f"instrument {iid}: a batch market rests orders outside its batch book")
        for book in (m.auction_book, m.batch_book):
            if book is None:
                continue
            for b in book.orders.values():
                o = self.orders.get(b.order_id)
                if o is None or (o.side, o.qty_lots) != (b.side, b.qty_lots) or (
                        not b.is_market and o.price_ticks != b.price_ticks):
                    raise InvariantViolation(f"instrument {iid}: batch order {b.order_id} and the engine disagree")
        for order_id in m.liquidations:
            if m.batch_book is None or order_id not in m.batch_book.orders:
                raise InvariantViolation(f"instrument {iid}: liquidation plan of a dead order {order_id}")

    def canonical_state(self) -> list[Any]:
        """The business state as plain data, in a canonical order (input of the state hash).

        Sequence number and engine time are not part of it: they are covered by the journal's hash chain
        and stored beside the state in snapshots. Derived indexes (order maps, aggregates, OI, expiry
        index) are rebuilt from this on restore.
        """
        accounts = [
            [a.account_id, a.owner_id, a.balance_atoms,
             [[iid, p.size_lots, p.cost_atoms] for iid, p in sorted(a.positions.items()) if p.size_lots],
             list(a.recent_client_ids)] + ([a.isolated_instrument_id] if a.isolated_instrument_id else [])
            for a in sorted(self.accounts.values(), key=lambda a: a.account_id)
        ]
        books = [[iid, [o.canonical() for o in self.books[iid].orders_in_priority()]
                       + [self.orders[i].canonical() for i in self.integ[iid].unbooked_ids()]]
                 for iid in sorted(self.books)]
        state = [
            self._config_hash,
            accounts,
            books,
            sorted(self.marks.items()),
            self.next_order_id,
            self.fee_pool_atoms,
            self.insurance_fund_atoms,
            self.deposits_total_atoms,
            self.withdrawals_total_atoms,
            self.risk.canonical(),
        ]
        integrity = self._integrity_canonical()
        if integrity is not None:
            state.append(integrity)
        triggers = self.triggers.canonical()
        if triggers is not None:  # absent while no trigger order exists: such hashes are unchanged
            state.append(["triggers", *triggers])
        return state

    def _integrity_canonical(self) -> list[Any] | None:
        """The market-integrity block (§4), or None while all of it is in its initial state: the state
        hash of a venue that never used the integrity layer is what it was before issue 4."""
        per: list[Any] = []
        default = not self.kill_switch_engaged and not self.bonds_escrowed_atoms
        for iid in sorted(self.integ):
            data = self.integ[iid].canonical()
            default = default and data == self._integ_default[iid]
            per.append([iid, data])
        return None if default else [int(self.kill_switch_engaged), self.bonds_escrowed_atoms, per]

    def state_hash(self) -> bytes:
        """SHA-256 of the canonical msgpack encoding of :meth:`canonical_state` (32 bytes)."""
        return hashlib.sha256(msgspec.msgpack.encode(self.canonical_state())).digest()

    def snapshot(self) -> bytes:
        """Canonical bytes of (seq, now_ns, state): what a snapshot file stores."""
        return msgspec.msgpack.encode([self.seq, self.now_ns, self.canonical_state()])

    @classmethod
    def restore(cls, config: VenueConfig, data: bytes, book_factory: BookFactory = FastBook,
                check_invariants: bool = False, risk: RiskConfig | None = None) -> Engine:
        """Rebuild an engine from :meth:`snapshot` bytes.

        Raises:
            ValueError: the snapshot belongs to another venue configuration or is malformed.
        """
        seq, now_ns, state = msgspec.msgpack.decode(data)
        engine = cls(config, book_factory, check_invariants, risk)
        trigger_state = state.pop() if len(state) > 10 and state[-1] and state[-1][0] == "triggers" else None
        (config_hash, accounts, books, marks, next_id, fee_pool, insurance, deposits, withdrawals,
         risk_state) = state[:10]
        parked: set[int] = set()
        if len(state) > 10:  # the market-integrity block
            kill, bonds, per = state[10]
            engine.kill_switch_engaged, engine.bonds_escrowed_atoms = bool(kill), bonds
            for entry in per:
                m = engine.integ[entry[0]]
                m.restore(entry[1])
                for order_id in m.unbooked_ids():
                    engine.unbooked[order_id] = m.instrument_id
                    parked.add(order_id)
        if bytes(config_hash) != engine._config_hash:
            raise ValueError("snapshot was taken under a different venue configuration")
        engine.seq, engine.now_ns = seq, now_ns
        for entry in accounts:
            account_id, owner_id, balance, positions, recent = entry[:5]
            account = Account(account_id, owner_id, entry[5] if len(entry) > 5 else 0)
            account.balance_atoms = balance
            for iid, size, cost in positions:
                pos = engine._position(account, iid)
                pos.size_lots, pos.cost_atoms = size, cost
                engine.open_interest_lots[iid] += max(size, 0)
            for client_id in recent:
                account.remember_client_id(client_id, config.limits.client_order_ids_remembered_max)
            engine.accounts[account_id] = account
        # Book entries come in book priority; the live-order indexes (engine/account/position ``orders``)
        # must be rebuilt in creation order = order_id order, as an uninterrupted engine holds them:
        # reduce-only resizing ("oldest keeps its size"), cancel-all and the liquidation cancels walk them.
        restored: list[Order] = []
        for iid, orders in books:
            for (oid, aid, oiid, cid, side, price, qty, tif, post, ro, stp, exp) in orders:
                order = Order(oid, aid, oiid, cid, side, price, qty, tif, bool(post), bool(ro), stp, exp)
                restored.append(order)
                if oid not in parked:
                    engine.books[iid].add(order)
                if exp:
                    engine._expiry_add(order)
        for order in sorted(restored, key=lambda o: o.order_id):
            engine._track(engine.accounts[order.account_id], order)
        engine.marks = {iid: price for iid, price in marks}
        engine.next_order_id = next_id
        engine.fee_pool_atoms, engine.insurance_fund_atoms = fee_pool, insurance
        engine.deposits_total_atoms, engine.withdrawals_total_atoms = deposits, withdrawals
        engine._refresh_idle()
        engine.risk.restore(risk_state)
        if trigger_state is not None:
            engine.triggers.restore(trigger_state[1:])
        engine.check_invariants()
        return engine
