"""Risk figures of a replay, read from engine state and events (never written to the engine).

The engine's risk engine liquidates inside ``Engine.apply``; this module measures, independently of it,
how far accounts are from their margins at the mark price, so the report can show that nobody lingers
below maintenance and how large the equity shortfall got:

* equity = balance + sum over positions of (size * mark * k - cost)   (``bastion.core.accounts``);
* maintenance margin = sum of ``InstrumentSpec.maintenance_margin_atoms(|size| * mark * k)``;
* *under maintenance*: a position and equity < maintenance margin (should have been liquidated);
* *bankrupt*: equity < 0; the *equity shortfall* is the sum of -equity over bankrupt accounts (what
  the insurance fund or ADL would have to cover if they all closed at the mark).

Risk-engine events are counted by family (class name markers: ``Liquidat`` = liquidation,
``Deleverag``/``Adl`` = ADL, ``Funding`` = funding, ``Breaker``/``Halt``/``MarketState``/``KillSwitch`` =
breaker change, ``InsuranceFundUsed`` = insurance); ``BadDebtRecorded.amount_atoms`` adds to realized bad
debt; ``PositionLiquidated`` names the liquidated accounts, ``InsuranceFundUsed.amount_atoms`` sums what
the fund paid and ``AutoDeleveraged.qty_lots`` the deleveraged size. The insurance fund's drawdown is
tracked from ``Engine.insurance_fund_atoms`` at each scan (peak minus current).
:func:`risk_features` says which of those event types the engine defines.

Speed: a scan at every index tick over every open position would dominate a three-week run, so each
account with one position gets two exact integer thresholds, recomputed only when its balance or
position changes (a fill, deposit, withdrawal or transfer names it): the maintenance price M* (equity
minus maintenance margin is monotone in the mark: equity moves by |size| * k per tick, the margin by at
most mmf * |size| * k + 1 with mmf <= 1/2 in every bracket, checked at load), in closed form per bracket
(:func:`_maintenance_price`), and the bankruptcy price. A scan is then a few bisections in sorted
threshold lists plus an exact sum over the bankrupt accounts only. Accounts with positions on several
instruments are evaluated exactly at every scan, and an event type this module does not model (a future
engine's) makes the next scan recompute every account's thresholds.
:meth:`RiskMonitor.scan_exact` is the reference the tests compare against.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sortedcontainers import SortedList  # type: ignore[import-untyped]

import bastion.core.events as core_events
from bastion.core.accounts import Account
from bastion.core.events import (
    AccountCreated,
    CommandRejected,
    Deposited,
    Event,
    InsuranceFundDeposited,
    MarkPriceSet,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderReduced,
    TradeExecuted,
    Transferred,
    Withdrawn,
)
from bastion.core.instruments import InstrumentSpec
from bastion.core.risk.waterfall import INSURANCE_FUND_ACCOUNT_ID
from bastion.core.risk_messages import AutoDeleveraged, InsuranceFundUsed, PositionLiquidated
from bastion.core.units import PPM
from bastion.sim.replay.exchange import Exchange

__all__ = ["RiskMonitor", "RiskSample", "risk_features"]

FEATURE_MARKERS: dict[str, tuple[str, ...]] = {
    "liquidations": ("Liquidat",),
    "adl": ("Deleverag", "Adl"),
    "funding": ("Funding",),
    "breakers": ("Breaker", "Halt", "MarketState", "KillSwitch"),
    "insurance": ("InsuranceFundDrawn", "InsuranceFundPaid", "InsuranceFundUsed"),
}


def _feature_of(name: str) -> str | None:
    for feature, markers in FEATURE_MARKERS.items():
        if any(marker in name for marker in markers):
            return feature
    return None


def risk_features() -> dict[str, bool]:
    """Which risk-engine event families ``bastion.core.events`` defines (by class name markers)."""
    names = [n for n in getattr(core_events, "__all__", dir(core_events)) if n[:1].isupper()]
    present = {feature: False for feature in FEATURE_MARKERS}
    for name in names:
        feature = _feature_of(name)
        if feature is not None:
            present[feature] = True
    return present


_NEUTRAL_EVENTS = (AccountCreated, CommandRejected, InsuranceFundDeposited, MarkPriceSet, OrderAccepted,
                   OrderAmended, OrderCanceled, OrderReduced)
_FLAT, _LONG, _SHORT, _MULTI = 0, 1, -1, 2
_NO_ACCOUNT = 2**63


@dataclass(frozen=True, slots=True)
class RiskSample:
    """Accounts at one mark price: counts and the total equity shortfall (atoms)."""

    under_maintenance: int
    bankrupt: int
    shortfall_atoms: int
    insurance_fund_atoms: int


def _equity_and_margin(account: Account, specs: dict[int, InstrumentSpec],
                       marks: dict[int, int]) -> tuple[int, int, bool]:
    """(equity, maintenance margin, has a position) of ``account`` at ``marks`` (module docstring)."""
    equity = account.balance_atoms
    maintenance = 0
    has_position = False
    for iid, pos in account.positions.items():
        if pos.size_lots == 0:
            continue
        has_position = True
        spec = specs[iid]
        notional = abs(pos.size_lots) * marks[iid] * spec.atoms_per_tick_lot
        equity += pos.size_lots * marks[iid] * spec.atoms_per_tick_lot - pos.cost_atoms
        maintenance += spec.maintenance_margin_atoms(notional)
    return equity, maintenance, has_position


def _maintenance_price(spec: InstrumentSpec, balance: int, size: int, cost: int) -> int:
    """For a long: smallest mark with equity >= MM (marks below it are under maintenance); for a short:
    the largest such mark (marks above it are under). 0 / price_ticks_max + 1 when no mark is healthy.

    Closed form per margin bracket: with notional N = |size| * M * k, rate r = mmf_ppm and deduction d
    (atom*ppm), ``equity >= ceil((N r - d) / 10**6)`` is, for integer equity, ``equity >= (N r - d) / 10**6``:
    long  ``N (10**6 - r) >= 10**6 (cost - balance) - d``, short ``N (10**6 + r) <= 10**6 (balance - cost) + d``.
    Brackets are scanned from the healthy end; the result is checked against the direct evaluation.
    """
    k = spec.atoms_per_tick_lot
    magnitude = abs(size)
    price_max = spec.price_ticks_max
    step = magnitude * k

    def healthy(mark: int) -> bool:
        return balance + size * mark * k - cost >= spec.maintenance_margin_atoms(step * mark)

    ranges: list[tuple[int, int, int, int]] = []  # (mark_lo, mark_hi, mmf, deduction) per bracket
    low_cap = -1
    tiers = spec.margin_tiers
    for i, tier in enumerate(tiers):  # bounded by the bracket count
        mark_lo = max(1, low_cap // step + 1)
        mark_hi = price_max if i == len(tiers) - 1 else min(price_max, tier.notional_max_atoms // step)
        if mark_lo <= mark_hi:
            ranges.append((mark_lo, mark_hi, tier.mmf_ppm, tier.mm_deduction_atom_ppm))
        low_cap = tier.notional_max_atoms
    if size > 0:
        result = price_max + 1
        for mark_lo, mark_hi, mmf, deduction in ranges:
            need = -((deduction - PPM * (cost - balance)) // ((PPM - mmf) * step))  # ceil
            candidate = max(need, mark_lo)
            if candidate <= mark_hi:
                result = candidate
                break
        assert result > price_max or healthy(result), "maintenance price not healthy"
        assert result == 1 or not healthy(result - 1), "maintenance price not the smallest"
        return result
    result = 0
    for mark_lo, mark_hi, mmf, deduction in reversed(ranges):
        limit = (PPM * (balance - cost) + deduction) // ((PPM + mmf) * step)  # floor
        candidate = min(limit, mark_hi)
        if candidate >= mark_lo:
            result = candidate
            break
    assert result == 0 or healthy(result), "maintenance price not healthy"
    assert result >= price_max or not healthy(result + 1), "maintenance price not the largest"
    return result


class RiskMonitor:
    """Measures every account that holds a position or a negative balance at the mark (module docstring).

    Args:
        exchange: the replay's exchange (events are observed through it).
        instrument_id: the traded instrument.
    """

    def __init__(self, exchange: Exchange, instrument_id: int) -> None:
        self.exchange = exchange
        self.engine = exchange.engine
        self.instrument_id = instrument_id
        self.spec = self.engine.specs[instrument_id]
        assert all(t.mmf_ppm <= 500_000 for t in self.spec.margin_tiers), "threshold monotonicity (docstring)"
        self.counts = {feature: 0 for feature in FEATURE_MARKERS}
        self.events_by_type: Counter[str] = Counter()  # events this module does not model
        self.bad_debt_atoms = 0
        self.liquidated_accounts: set[int] = set()  # accounts named by a PositionLiquidated event
        self.insurance_fund_used_atoms = 0  # sum of InsuranceFundUsed.amount_atoms
        self.adl_lots = 0  # sum of AutoDeleveraged.qty_lots
        self.insurance_peak_atoms = 0
        self.insurance_drawdown_max_atoms = 0
        self.under_maintenance_max = 0
        self.bankrupt_max = 0
        self.shortfall_max_atoms = 0
        self.shortfall_max_ns = 0
        self.last = RiskSample(0, 0, 0, 0)
        self._feature_by_type: dict[type, str | None] = {}
        self._dirty: set[int] = set()
        self._all_dirty = False
        self._known: set[int] = set()
        self._entries: dict[int, tuple[int, int, int]] = {}  # account -> (kind, maintenance price, bankrupt price)
        self._longs_mm, self._shorts_mm = SortedList(), SortedList()
        self._longs_bk, self._shorts_bk = SortedList(), SortedList()
        self._flat_negative: dict[int, int] = {}
        self._multi: set[int] = set()
        self.cross_check = False  # tests: compare every scan with scan_exact
        exchange.observe(self._on_events)

    # ------------------------------------------------------------------ events

    def _on_events(self, events: list[Event]) -> None:
        dirty = self._dirty
        for event in events:
            kind = type(event)
            if kind is TradeExecuted:
                assert isinstance(event, TradeExecuted)
                dirty.add(event.maker_account_id)
                dirty.add(event.taker_account_id)
            elif kind is Deposited or kind is Withdrawn:
                dirty.add(event.account_id)  # type: ignore[union-attr]
            elif kind is Transferred:
                assert isinstance(event, Transferred)
                dirty.add(event.from_account_id)
                dirty.add(event.to_account_id)
            elif kind not in _NEUTRAL_EVENTS:
                self._unknown_event(event)

    def _unknown_event(self, event: Event) -> None:
        """An event this module does not model: count risk families, then re-measure everyone."""
        kind = type(event)
        if kind not in self._feature_by_type:
            self._feature_by_type[kind] = _feature_of(kind.__name__)
        feature = self._feature_by_type[kind]
        if feature is not None:
            self.counts[feature] += 1
        self.events_by_type[kind.__name__] += 1
        field_name = "amount_atoms" if kind.__name__ == "BadDebtRecorded" else "bad_debt_atoms"
        bad_debt = getattr(event, field_name, None)
        if type(bad_debt) is int:
            self.bad_debt_atoms += bad_debt
        if kind is PositionLiquidated:
            assert isinstance(event, PositionLiquidated)
            self.liquidated_accounts.add(event.account_id)
        elif kind is InsuranceFundUsed:
            assert isinstance(event, InsuranceFundUsed)
            self.insurance_fund_used_atoms += event.amount_atoms
        elif kind is AutoDeleveraged:
            assert isinstance(event, AutoDeleveraged)
            self.adl_lots += event.qty_lots
        self._all_dirty = True

    # ------------------------------------------------------------------ thresholds

    def _drop(self, account_id: int) -> None:
        entry = self._entries.pop(account_id, None)
        self._flat_negative.pop(account_id, None)
        self._multi.discard(account_id)
        if entry is None:
            return
        kind, mm, bk = entry
        if kind == _LONG:
            self._longs_mm.remove((mm, account_id))
            self._longs_bk.remove((bk, account_id))
        elif kind == _SHORT:
            self._shorts_mm.remove((mm, account_id))
            self._shorts_bk.remove((bk, account_id))

    def _refresh(self, account_id: int) -> None:
        self._drop(account_id)
        account = self.engine.accounts.get(account_id)
        if account is None or account_id == INSURANCE_FUND_ACCOUNT_ID:  # the fund's inventory: no margin
            return
        self._known.add(account_id)
        live = [(iid, pos) for iid, pos in account.positions.items() if pos.size_lots != 0]
        if not live:
            if account.balance_atoms < 0:
                self._flat_negative[account_id] = -account.balance_atoms
            return
        if len(live) > 1 or live[0][0] != self.instrument_id:
            self._multi.add(account_id)
            return
        pos = live[0][1]
        size, cost, balance = pos.size_lots, pos.cost_atoms, account.balance_atoms
        k = self.spec.atoms_per_tick_lot
        mm = _maintenance_price(self.spec, balance, size, cost)
        if size > 0:
            bk = -((balance - cost) // (size * k))  # ceil((cost - balance) / (size k)): bankrupt below
            self._entries[account_id] = (_LONG, mm, bk)
            self._longs_mm.add((mm, account_id))
            self._longs_bk.add((bk, account_id))
        else:
            bk = (balance - cost) // (-size * k)  # floor((balance - cost) / (|size| k)): bankrupt above
            self._entries[account_id] = (_SHORT, mm, bk)
            self._shorts_mm.add((mm, account_id))
            self._shorts_bk.add((bk, account_id))

    # ------------------------------------------------------------------ scans

    def scan(self, now_ns: int) -> RiskSample:
        """Measure every account at the current marks; update the running maxima."""
        dirty = self._known if self._all_dirty else self._dirty
        for account_id in sorted(dirty):  # bounded by the accounts that ever moved money or traded
            self._refresh(account_id)
        self._dirty = set()
        self._all_dirty = False
        mark = self.engine.marks[self.instrument_id]
        under = len(self._longs_mm) - self._longs_mm.bisect_right((mark, _NO_ACCOUNT))
        under += self._shorts_mm.bisect_left((mark, -1))
        shortfall = sum(self._flat_negative.values())
        bankrupt = len(self._flat_negative)
        accounts = self.engine.accounts
        specs, marks = self.engine.specs, self.engine.marks
        longs = self._longs_bk.islice(self._longs_bk.bisect_right((mark, _NO_ACCOUNT)))
        shorts = self._shorts_bk.islice(0, self._shorts_bk.bisect_left((mark, -1)))
        for group in (longs, shorts):
            for _, account_id in group:  # only the bankrupt ones
                equity, _, _ = _equity_and_margin(accounts[account_id], specs, marks)
                assert equity < 0
                bankrupt += 1
                shortfall -= equity
        for account_id in sorted(self._multi):
            equity, maintenance, has_position = _equity_and_margin(accounts[account_id], specs, marks)
            under += int(has_position and equity < maintenance)
            if equity < 0:
                bankrupt += 1
                shortfall -= equity
        sample = RiskSample(under, bankrupt, shortfall, self.engine.insurance_fund_atoms)
        if self.cross_check:
            exact = self.scan_exact()
            assert sample == exact, f"threshold scan {sample} != exact scan {exact} at {now_ns}"
        return self._record(now_ns, sample)

    def scan_exact(self) -> RiskSample:
        """Reference scan: every account evaluated from scratch (no thresholds; tests compare)."""
        under = bankrupt = shortfall = 0
        specs, marks = self.engine.specs, self.engine.marks
        for account in self.engine.accounts.values():
            if account.account_id == INSURANCE_FUND_ACCOUNT_ID:
                continue
            equity, maintenance, has_position = _equity_and_margin(account, specs, marks)
            under += int(has_position and equity < maintenance)
            if equity < 0:
                bankrupt += 1
                shortfall -= equity
        return RiskSample(under, bankrupt, shortfall, self.engine.insurance_fund_atoms)

    def _record(self, now_ns: int, sample: RiskSample) -> RiskSample:
        fund = sample.insurance_fund_atoms
        self.insurance_peak_atoms = max(self.insurance_peak_atoms, fund)
        self.insurance_drawdown_max_atoms = max(self.insurance_drawdown_max_atoms, self.insurance_peak_atoms - fund)
        self.under_maintenance_max = max(self.under_maintenance_max, sample.under_maintenance)
        self.bankrupt_max = max(self.bankrupt_max, sample.bankrupt)
        if sample.shortfall_atoms > self.shortfall_max_atoms:
            self.shortfall_max_atoms = sample.shortfall_atoms
            self.shortfall_max_ns = now_ns
        self.last = sample
        return sample
