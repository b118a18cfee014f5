"""A double-entry ledger rebuilt from the output log alone, and its comparison with the engine.

The engine keeps money as integer fields (``Account.balance_atoms``, ``Position.cost_atoms``,
``fee_pool_atoms``, ``insurance_fund_atoms``, ``bonds_escrowed_atoms``, ``risk.bad_debt_atoms``,
``deposits_total_atoms - withdrawals_total_atoms``) under one global conservation invariant.
:class:`Ledger` folds the events of every command, in log order, into postings
``(debit, credit, amount_atoms, kind)`` between named ledger accounts, so that every balance is a sum of
postings that each balance on their own. Anyone holding only the output log (and the venue config, for
``k`` = ``atoms_per_tick_lot`` per instrument) can rebuild every balance; :meth:`Ledger.mismatches`
names each one that differs from an engine's state.

Ledger accounts and their normal side (the side on which a balance is positive):

==============================  ======  ===================================================
``external``                    debit   deposits - withdrawals (money held for the outside)
``cash:<account_id>``           credit  ``Account.balance_atoms``
``position:<account>:<instr>``  debit   ``Position.cost_atoms`` (signed cost basis)
``fee_pool``                    credit  ``Engine.fee_pool_atoms``
``insurance_fund``              credit  ``Engine.insurance_fund_atoms``
``bond_escrow``                 credit  ``Engine.bonds_escrowed_atoms``
``bad_debt``                    debit   ``Engine.risk.bad_debt_atoms``
``funding:<instr>``             --      clearing account of one funding settlement; 0 after it
==============================  ======  ===================================================

Debits = credits, hence ``external + bad_debt + sum(cost) = sum(cash) + fee_pool + insurance_fund +
bond_escrow``: the engine's conservation invariant, here as a consequence of double entry.

Posting rules (all amounts atoms; a posting with a negative amount is written with its sides swapped,
so every stored amount is > 0; zero amounts are not posted):

* ``Deposited``: Dr external, Cr cash:a (``deposit``). ``Withdrawn``: Dr cash:a, Cr external
  (``withdrawal``). ``Transferred``: Dr cash:from, Cr cash:to (``transfer``).
  ``InsuranceFundDeposited``: Dr external, Cr insurance_fund (``insurance_deposit``).
* ``TradeExecuted`` (taker side s; s = 0 in an auction: maker = the sell, taker = the buy):
  Dr position:buyer, Cr position:seller, ``qty * price * k`` (``trade_notional``); per side
  Dr position, Cr cash, ``realized_pnl`` (``realized_pnl``); per side Dr cash, Cr fee_pool, ``fee``
  (``fee``, or ``rebate`` when negative). So per side Δcost = signed_qty*price*k + pnl and
  Δcash = pnl - fee, as in ``accounts.settle_fill``.
* ``PositionLiquidated``: Dr cash:a, Cr insurance_fund, ``liquidation_fee_atoms`` (``liquidation_fee``).
* ``InsuranceFundUsed``: Dr insurance_fund, Cr cash:a (``insurance_payment``), unless it restates the
  charge of the ``PositionTakenOver`` just before it (via 3, charge > 0: posted there).
* ``PositionTakenOver`` / ``AutoDeleveraged``: a forced close of ``qty`` at ``price`` between the
  bankrupt account (closes its position, whose side the ledger knows from its own position sizes) and
  the taker/counterparty: notional as for a fill (``takeover`` / ``adl``); realized PnL of both sides by
  ``settle_fill``'s arithmetic on the ledger's own (size, cost) (the events report only the ADL
  counterparty's, which is checked); the charge Dr cash:taker, Cr cash:account (``takeover_charge`` /
  ``adl_charge``).
* ``SocializedLoss``: Dr cash:payer, Cr cash:bankrupt (``socialized_loss``).
* ``BadDebtRecorded``: Dr bad_debt, Cr cash:a (``bad_debt``).
* ``FundingRateSet``: Dr funding:i, Cr insurance_fund, ``remainder_atoms`` (``funding_remainder``);
  ``FundingPaid``: Dr funding:i, Cr cash:a, ``amount`` (``funding``). The clearing account returns to 0.
* ``OrderCommitted``: Dr cash:a, Cr bond_escrow (``bond_posted``); ``BondReturned``: Dr bond_escrow,
  Cr cash:a (``bond_returned``); ``BondForfeited``: Dr bond_escrow, Cr insurance_fund
  (``bond_forfeited``).
* Account 0 is the insurance fund's position account. Its cash (realized PnL of its inventory, its
  funding) is swept into the fund after every operation (``RiskEngine._sweep_fund``; no event reports
  the sweep, the rule does): after each event, a nonzero ``cash:0`` is posted to ``insurance_fund``
  (``fund_sweep``). Where the engine credits "the fund" directly (a charge it pays, a payment to or
  from it, bad debt booked for it) the posting is on ``insurance_fund``.
* ``InsuranceFundUnwound`` posts nothing (its fill came as ``TradeExecuted``).

Events that report a balance after themselves (``Deposited``/``Withdrawn.balance_atoms``,
``InsuranceFundDeposited``/``InsuranceFundUsed``/``BondForfeited``/``InsuranceFundUnwound``
``.insurance_fund_atoms``, ``BadDebtRecorded.bad_debt_total_atoms``) and the realized PnL a fill or an
ADL reports are checked against the ledger as they are folded; a disagreement is kept in
:attr:`Ledger.anomalies` (so a tampered log is found without any engine).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Optional

import typer
from rich.console import Console
from rich.table import Table

from bastion.core.events import (
    AutoDeleveraged,
    BadDebtRecorded,
    BondForfeited,
    BondReturned,
    Deposited,
    Event,
    FundingPaid,
    FundingRateSet,
    InsuranceFundDeposited,
    InsuranceFundUnwound,
    InsuranceFundUsed,
    OrderCommitted,
    PositionLiquidated,
    PositionTakenOver,
    SocializedLoss,
    TradeExecuted,
    Transferred,
    Withdrawn,
)
from bastion.core.instruments import VenueConfig

if TYPE_CHECKING:
    from bastion.core.engine import Engine

__all__ = ["Ledger", "LedgerRun", "Posting", "ledger_command", "ledger_directory", "EXTERNAL", "FEE_POOL", "INSURANCE_FUND", "BOND_ESCROW", "BAD_DEBT",
           "cash_account", "position_account"]

EXTERNAL = "external"
FEE_POOL = "fee_pool"
INSURANCE_FUND = "insurance_fund"
BOND_ESCROW = "bond_escrow"
BAD_DEBT = "bad_debt"
FUND_ID = 0
"""The insurance fund's position account (``INSURANCE_FUND_ACCOUNT_ID``)."""

_CASH0 = "cash:0"


def cash_account(account_id: int) -> str:
    """``cash:<account_id>``: an account's settled cash."""
    return f"cash:{account_id}"


def position_account(account_id: int, instrument_id: int) -> str:
    """``position:<account_id>:<instrument_id>``: the signed cost basis of one position."""
    return f"position:{account_id}:{instrument_id}"


def _fund_or_cash(account_id: int) -> str:
    """Where the engine's ``RiskEngine._credit`` lands: the fund's cash is ``insurance_fund``."""
    return INSURANCE_FUND if account_id == FUND_ID else cash_account(account_id)


def is_debit_normal(name: str) -> bool:
    """Whether a ledger account's balance is reported as debits - credits (else credits - debits)."""
    return name == EXTERNAL or name == BAD_DEBT or name.startswith("position:")


class Posting(NamedTuple):
    """One double-entry posting: ``amount_atoms`` (> 0) debited to ``debit`` and credited to ``credit``.

    ``seq`` / ``event_index`` locate the event (command seq, event index) in the output log.
    """

    debit: str
    credit: str
    amount_atoms: int
    kind: str
    seq: int = 0
    event_index: int = 0


class Ledger:
    """Folds output-log events into double-entry postings and balances.

    Args:
        config: the venue config (``k`` per instrument: ``instruments[i].atoms_per_tick_lot``).
        keep_postings: keep every :class:`Posting` in :attr:`postings` (memory grows with the log).

    Attributes:
        net: per ledger account, debits - credits (atoms).
        sizes: ``(account_id, instrument_id) -> signed size_lots`` from fills and forced closes.
        statements: ``account_id -> kind -> signed cash effect`` (atoms; > 0 into the account's cash);
            the sum over kinds is the account's cash balance.
        anomalies: events whose reported figures disagree with the ledger (message strings).
        events, commands, postings_count: what was folded.
    """

    def __init__(self, config: VenueConfig, keep_postings: bool = False) -> None:
        self.k: dict[int, int] = {iid: spec.atoms_per_tick_lot for iid, spec in config.instruments.items()}
        self.net: dict[str, int] = defaultdict(int)
        self.sizes: dict[tuple[int, int], int] = defaultdict(int)
        self.statements: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.deposits_atoms = 0
        self.withdrawals_atoms = 0
        self.anomalies: list[str] = []
        self.keep_postings = keep_postings
        self.postings: list[Posting] = []
        self.postings_count = 0
        self.events = 0
        self.commands = 0
        self._seq = 0
        self._index = 0
        self._takeover_charge: tuple[int, int] | None = None  # (account, charge) an InsuranceFundUsed restates

    # ------------------------------------------------------------------ balances

    def balance(self, name: str) -> int:
        """A ledger account's balance on its normal side (atoms; see the module table)."""
        value = self.net.get(name, 0)
        return value if is_debit_normal(name) else -value

    def cash(self, account_id: int) -> int:
        """The account's cash as the ledger has it (atoms; mirrors ``Account.balance_atoms``)."""
        return self.balance(cash_account(account_id))

    def cost(self, account_id: int, instrument_id: int) -> int:
        """The position's signed cost basis as the ledger has it (atoms; mirrors ``Position.cost_atoms``)."""
        return self.balance(position_account(account_id, instrument_id))

    def statement(self, account_id: int) -> dict[str, int]:
        """Cash effect by kind for one account (atoms, > 0 in); sums to :meth:`cash`."""
        return dict(sorted(self.statements.get(account_id, {}).items()))

    def trial_balance(self) -> tuple[int, int]:
        """(total of debit balances, total of credit balances) over all ledger accounts; equal by construction."""
        debits = sum(v for v in self.net.values() if v > 0)
        credits = -sum(v for v in self.net.values() if v < 0)
        return debits, credits

    # ------------------------------------------------------------------ posting

    def post(self, debit: str, credit: str, amount_atoms: int, kind: str) -> None:
        """Book one posting (sides swapped when ``amount_atoms`` < 0; nothing when 0)."""
        if amount_atoms == 0 or debit == credit:
            return
        if amount_atoms < 0:
            debit, credit, amount_atoms = credit, debit, -amount_atoms
        net = self.net
        net[debit] += amount_atoms
        net[credit] -= amount_atoms
        for name, sign in ((debit, -1), (credit, 1)):
            if name.startswith("cash:"):
                self.statements[int(name[5:])][kind] += sign * amount_atoms
        self.postings_count += 1
        if self.keep_postings:
            self.postings.append(Posting(debit, credit, amount_atoms, kind, self._seq, self._index))

    def _note(self, message: str) -> None:
        self.anomalies.append(f"seq {self._seq} event {self._index}: {message}")

    def _claim(self, what: str, reported: int, ledger: int) -> None:
        if reported != ledger:
            self._note(f"{what}: event reports {reported}, ledger has {ledger}")

    def _legs(self, iid: int, qty: int, price: int, legs: tuple[tuple[int, int], ...], kind: str) -> list[int]:
        """Settle the two legs ``(account_id, side)`` of one fill of ``qty`` at ``price``, in order, with
        ``settle_fill``'s arithmetic on the ledger's own size and cost (the same position twice when an
        auction crosses an account with itself). Posts the notional (Dr position:buyer, Cr position:seller,
        ``kind``) and each leg's realized PnL (Dr position, Cr cash); returns the realized PnL per leg."""
        k = self.k[iid]
        shadow: dict[tuple[int, int], tuple[int, int]] = {}
        realized: list[int] = []
        for account_id, side in legs:
            key = (account_id, iid)
            size, cost = shadow.get(key) or (self.sizes.get(key, 0), self.cost(account_id, iid))
            signed = side * qty
            pnl = 0
            if size != 0 and (size > 0) != (signed > 0):
                sign = 1 if size > 0 else -1
                closing = min(-signed * sign, size * sign)
                removed = sign * ((cost * sign) * closing // (size * sign))
                pnl = sign * price * closing * k - removed
            shadow[key] = (size + signed, cost + signed * price * k + pnl)
            realized.append(pnl)
        buyer = next(a for a, side in legs if side > 0)
        seller = next(a for a, side in legs if side < 0)
        self.post(position_account(buyer, iid), position_account(seller, iid), qty * price * k, kind)
        for (account_id, _), pnl in zip(legs, realized):
            self.post(position_account(account_id, iid), cash_account(account_id), pnl, "realized_pnl")
        for key, (size, _) in shadow.items():
            if size:
                self.sizes[key] = size
            else:
                self.sizes.pop(key, None)
        return realized

    def _sweep(self) -> None:
        cash0 = self.net.get(_CASH0, 0)
        if cash0:
            self.post(_CASH0, INSURANCE_FUND, -cash0, "fund_sweep")

    # ------------------------------------------------------------------ folding

    def fold(self, seq: int, events: Iterable[Event]) -> None:
        """Fold the events of command ``seq`` in order (the output log's leaves of one seq)."""
        self.commands += 1
        for index, event in enumerate(events):
            self.fold_event(seq, index, event)

    def fold_event(self, seq: int, index: int, ev: Event) -> None:
        """Fold one event (leaf ``index`` of command ``seq``); see the module docstring for the rules."""
        self._seq, self._index = seq, index
        self.events += 1
        pending, self._takeover_charge = self._takeover_charge, None
        t = type(ev)
        if t is TradeExecuted:
            assert isinstance(ev, TradeExecuted)
            self._trade(ev)
        elif t is Deposited:
            assert isinstance(ev, Deposited)
            self.deposits_atoms += ev.amount_atoms
            self.post(EXTERNAL, cash_account(ev.account_id), ev.amount_atoms, "deposit")
            self._claim(f"cash of account {ev.account_id}", ev.balance_atoms, self.cash(ev.account_id))
        elif t is Withdrawn:
            assert isinstance(ev, Withdrawn)
            self.withdrawals_atoms += ev.amount_atoms
            self.post(cash_account(ev.account_id), EXTERNAL, ev.amount_atoms, "withdrawal")
            self._claim(f"cash of account {ev.account_id}", ev.balance_atoms, self.cash(ev.account_id))
        elif t is Transferred:
            assert isinstance(ev, Transferred)
            self.post(cash_account(ev.from_account_id), cash_account(ev.to_account_id), ev.amount_atoms, "transfer")
        elif t is InsuranceFundDeposited:
            assert isinstance(ev, InsuranceFundDeposited)
            self.deposits_atoms += ev.amount_atoms
            self.post(EXTERNAL, INSURANCE_FUND, ev.amount_atoms, "insurance_deposit")
            self._claim("insurance fund", ev.insurance_fund_atoms, self.balance(INSURANCE_FUND))
        elif t is PositionLiquidated:
            assert isinstance(ev, PositionLiquidated)
            self.post(cash_account(ev.account_id), INSURANCE_FUND, ev.liquidation_fee_atoms, "liquidation_fee")
        elif t is InsuranceFundUsed:
            assert isinstance(ev, InsuranceFundUsed)
            if pending is not None:  # restates the takeover charge just posted
                self._claim(f"takeover charge restated for account {ev.account_id}", ev.amount_atoms, pending[1])
            else:
                self.post(INSURANCE_FUND, _fund_or_cash(ev.account_id), ev.amount_atoms, "insurance_payment")
            self._claim("insurance fund", ev.insurance_fund_atoms, self.balance(INSURANCE_FUND))
        elif t is PositionTakenOver:
            assert isinstance(ev, PositionTakenOver)
            self._forced_close(ev.instrument_id, ev.account_id, ev.taker_account_id, ev.qty_lots, ev.price_ticks,
                               ev.charge_atoms, "takeover")
            if ev.via == 3 and ev.charge_atoms:
                self._takeover_charge = (ev.account_id, ev.charge_atoms)
        elif t is AutoDeleveraged:
            assert isinstance(ev, AutoDeleveraged)
            pnl = self._forced_close(ev.instrument_id, ev.account_id, ev.counterparty_account_id, ev.qty_lots,
                                     ev.price_ticks, ev.charge_atoms, "adl")
            self._claim(f"ADL realized PnL of account {ev.counterparty_account_id}",
                        ev.counterparty_realized_pnl_atoms, pnl)
        elif t is SocializedLoss:
            assert isinstance(ev, SocializedLoss)
            self.post(_fund_or_cash(ev.account_id), _fund_or_cash(ev.bankrupt_account_id), ev.amount_atoms,
                      "socialized_loss")
        elif t is BadDebtRecorded:
            assert isinstance(ev, BadDebtRecorded)
            self.post(BAD_DEBT, _fund_or_cash(ev.account_id), ev.amount_atoms, "bad_debt")
            self._claim("bad debt total", ev.bad_debt_total_atoms, self.balance(BAD_DEBT))
        elif t is FundingRateSet:
            assert isinstance(ev, FundingRateSet)
            self.post(f"funding:{ev.instrument_id}", INSURANCE_FUND, ev.remainder_atoms, "funding_remainder")
        elif t is FundingPaid:
            assert isinstance(ev, FundingPaid)
            self.post(f"funding:{ev.instrument_id}", cash_account(ev.account_id), ev.amount_atoms, "funding")
        elif t is OrderCommitted:
            assert isinstance(ev, OrderCommitted)
            self.post(cash_account(ev.account_id), BOND_ESCROW, ev.bond_atoms, "bond_posted")
        elif t is BondReturned:
            assert isinstance(ev, BondReturned)
            self.post(BOND_ESCROW, cash_account(ev.account_id), ev.bond_atoms, "bond_returned")
        elif t is BondForfeited:
            assert isinstance(ev, BondForfeited)
            self.post(BOND_ESCROW, INSURANCE_FUND, ev.bond_atoms, "bond_forfeited")
            self._claim("insurance fund", ev.insurance_fund_atoms, self.balance(INSURANCE_FUND))
        elif t is InsuranceFundUnwound:
            assert isinstance(ev, InsuranceFundUnwound)
            self._claim("insurance fund", ev.insurance_fund_atoms, self.balance(INSURANCE_FUND))
            self._claim(f"fund inventory on instrument {ev.instrument_id}", ev.inventory_lots,
                        self.sizes.get((FUND_ID, ev.instrument_id), 0))
        self._sweep()

    def _trade(self, ev: TradeExecuted) -> None:
        side = ev.taker_side if ev.taker_side else 1  # auction: the maker is the sell, the taker the buy
        maker, taker = ev.maker_account_id, ev.taker_account_id
        m_pnl, t_pnl = self._legs(ev.instrument_id, ev.qty_lots, ev.price_ticks, ((maker, -side), (taker, side)),
                                  "trade_notional")  # maker first, as Engine.on_trade settles
        self._claim(f"realized PnL of maker account {maker}", ev.maker_realized_pnl_atoms, m_pnl)
        self._claim(f"realized PnL of taker account {taker}", ev.taker_realized_pnl_atoms, t_pnl)
        for account_id, fee in ((maker, ev.maker_fee_atoms), (taker, ev.taker_fee_atoms)):
            self.post(cash_account(account_id), FEE_POOL, fee, "fee" if fee >= 0 else "rebate")

    def _forced_close(self, iid: int, account_id: int, other_id: int, qty: int, price: int, charge: int,
                      kind: str) -> int:
        """The bankrupt ``account_id`` closes ``qty`` of its position with ``other_id`` at ``price``; the other
        pays ``charge``. Returns the other side's realized PnL."""
        size = self.sizes.get((account_id, iid), 0)
        if size == 0:
            self._note(f"{kind} of account {account_id} on instrument {iid}, which holds no position in the ledger")
            return 0
        side = 1 if size > 0 else -1
        _, pnl = self._legs(iid, qty, price, ((account_id, -side), (other_id, side)), kind)
        self._sweep()  # the engine sweeps the fund's realized PnL before the charge
        self.post(_fund_or_cash(other_id), _fund_or_cash(account_id), charge, f"{kind}_charge")
        return pnl

    # ------------------------------------------------------------------ comparison

    def mismatches(self, engine: Engine) -> list[str]:
        """Every difference between the ledger and ``engine``'s money fields, named; [] when equal.

        Compared: each account's ``balance_atoms`` with ``cash:<id>``; each position's ``cost_atoms`` and
        ``size_lots`` with ``position:<id>:<instr>`` and the ledger's size; the fee pool, insurance fund,
        bond escrow and bad debt; deposits, withdrawals and external; ledger accounts with a balance the
        engine does not have; funding clearing accounts left nonzero; the trial balance; and every
        :attr:`anomalies` entry.
        """
        out = list(self.anomalies)
        seen_cash: set[str] = set()
        seen_pos: set[tuple[int, int]] = set()
        for aid, account in engine.accounts.items():
            name = cash_account(aid)
            seen_cash.add(name)
            have = self.cash(aid)
            if have != account.balance_atoms:
                out.append(f"{name}: ledger {have}, engine balance_atoms {account.balance_atoms}")
            for iid, pos in account.positions.items():
                seen_pos.add((aid, iid))
                cost = self.cost(aid, iid)
                if cost != pos.cost_atoms:
                    out.append(f"{position_account(aid, iid)}: ledger {cost}, engine cost_atoms {pos.cost_atoms}")
                size = self.sizes.get((aid, iid), 0)
                if size != pos.size_lots:
                    out.append(f"{position_account(aid, iid)}: ledger size {size} lots, engine size_lots "
                               f"{pos.size_lots}")
        for name, value in sorted(self.net.items()):
            if not value:
                continue
            if name.startswith("cash:") and name not in seen_cash:
                out.append(f"{name}: ledger {self.balance(name)}, the engine has no such account")
            elif name.startswith("position:"):
                _, a, i = name.split(":")
                if (int(a), int(i)) not in seen_pos:
                    out.append(f"{name}: ledger {self.balance(name)}, the engine has no such position")
            elif name.startswith("funding:"):
                out.append(f"{name}: funding clearing left at {-value} (payments and remainder do not sum to 0)")
        for (aid, iid), size in sorted(self.sizes.items()):
            if size and (aid, iid) not in seen_pos:
                out.append(f"{position_account(aid, iid)}: ledger size {size} lots, the engine has no such position")
        fields: Mapping[str, int] = {
            FEE_POOL: engine.fee_pool_atoms,
            INSURANCE_FUND: engine.insurance_fund_atoms,
            BOND_ESCROW: engine.bonds_escrowed_atoms,
            BAD_DEBT: engine.risk.bad_debt_atoms,
            EXTERNAL: engine.deposits_total_atoms - engine.withdrawals_total_atoms,
        }
        for name, value in fields.items():
            if self.balance(name) != value:
                out.append(f"{name}: ledger {self.balance(name)}, engine {value}")
        if self.deposits_atoms != engine.deposits_total_atoms:
            out.append(f"deposits: ledger {self.deposits_atoms}, engine deposits_total_atoms "
                       f"{engine.deposits_total_atoms}")
        if self.withdrawals_atoms != engine.withdrawals_total_atoms:
            out.append(f"withdrawals: ledger {self.withdrawals_atoms}, engine withdrawals_total_atoms "
                       f"{engine.withdrawals_total_atoms}")
        debits, credits = self.trial_balance()
        if debits != credits:
            out.append(f"trial balance: debits {debits} != credits {credits}")
        return out

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary: every nonzero balance (normal side), totals, counts."""
        debits, credits = self.trial_balance()
        return {
            "commands": self.commands, "events": self.events, "postings": self.postings_count,
            "debits_atoms": debits, "credits_atoms": credits,
            "deposits_atoms": self.deposits_atoms, "withdrawals_atoms": self.withdrawals_atoms,
            "balances": {name: self.balance(name) for name in sorted(self.net) if self.net[name]},
            "anomalies": list(self.anomalies),
        }


# ---------------------------------------------------------------------------------------------------------
# A venue directory: the output log folded, the journal replayed (``bastion ledger``)
# ---------------------------------------------------------------------------------------------------------


class LedgerRun(NamedTuple):
    """Outcome of :func:`ledger_directory`.

    ``status``: 0 the ledger equals the engine, 1 mismatches (listed), 2 cannot run (``error`` says why).
    ``ledger`` / ``engine`` are None when the run could not start.
    """

    status: int
    ledger: Ledger | None
    engine: Engine | None
    mismatches: list[str]
    error: str


def ledger_directory(directory: Path) -> LedgerRun:
    """Fold ``directory/events.bin`` into a :class:`Ledger` and compare it with a fresh engine (FastBook, the
    stored ``venue.toml``) that re-executed ``directory/journal.bin``.

    The ledger sees only the output log's leaves; the engine only the journal (whether the leaves are the
    ones the journal produces is ``bastion verify``'s question). Leaves whose seq lies beyond the journal, an
    undecodable leaf or journal record, or a damaged file past its header are mismatches too (status 1).
    Missing or unreadable files, a bad config or file header: status 2.
    """
    from bastion.audit.layout import EVENTS_NAME, JOURNAL_NAME, load_stored_config
    from bastion.audit.outlog import OutlogScanner, decode_leaf, decode_outlog_header
    from bastion.core.commands import decode_sequenced
    from bastion.core.engine import Engine
    from bastion.core.instruments import ConfigError
    from bastion.journal.errors import JournalError
    from bastion.journal.file import JournalReader

    try:
        config = load_stored_config(directory)
        image = (directory / EVENTS_NAME).read_bytes()
        decode_outlog_header(image)
        reader = JournalReader(directory / JOURNAL_NAME)
    except (ConfigError, OSError, ValueError, JournalError) as exc:
        return LedgerRun(2, None, None, [], f"{type(exc).__name__}: {exc}")
    ledger = Ledger(config)
    engine = Engine(config)
    problems: list[str] = []
    scanner = OutlogScanner(image)
    with reader:
        if reader.header.first_seq != 1:
            return LedgerRun(2, None, None, [], f"{JOURNAL_NAME} is a continuation segment (first seq "
                                                 f"{reader.header.first_seq}): the ledger starts from seq 1")
        try:
            for record in reader.records():
                engine.apply(decode_sequenced(record.payload))
        except Exception as exc:  # noqa: BLE001 - a journal the engine cannot replay is a finding
            problems.append(f"{JOURNAL_NAME}: replay stopped at seq {engine.seq + 1}: {type(exc).__name__}: {exc}")
    events: list[Event] = []
    seq = 0
    for found in scanner:
        try:
            leaf = decode_leaf(found.leaf)
        except ValueError as exc:
            problems.append(f"{EVENTS_NAME} offset {found.offset}: {exc}")
            break
        if leaf.seq != seq:
            if events:
                ledger.fold(seq, events)
            seq, events = leaf.seq, []
        events.append(leaf.event)
    if events:
        ledger.fold(seq, events)
    if scanner.fault is not None:
        problems.append(f"{EVENTS_NAME} offset {scanner.fault.offset}: {scanner.fault.reason} ({scanner.fault.detail})")
    if seq > engine.seq:
        problems.append(f"{EVENTS_NAME} has leaves of seq {seq}, the journal ends at seq {engine.seq}")
    problems += ledger.mismatches(engine)
    return LedgerRun(1 if problems else 0, ledger, engine, problems, "")


def _engine_value(name: str, engine: Engine) -> int | None:
    """The engine field a ledger account mirrors (None: a clearing account, no engine field)."""
    fields = {FEE_POOL: engine.fee_pool_atoms, INSURANCE_FUND: engine.insurance_fund_atoms,
              BOND_ESCROW: engine.bonds_escrowed_atoms, BAD_DEBT: engine.risk.bad_debt_atoms,
              EXTERNAL: engine.deposits_total_atoms - engine.withdrawals_total_atoms}
    if name in fields:
        return fields[name]
    parts = name.split(":")
    if parts[0] == "cash":
        account = engine.accounts.get(int(parts[1]))
        return 0 if account is None else account.balance_atoms
    if parts[0] == "position":
        account = engine.accounts.get(int(parts[1]))
        pos = None if account is None else account.positions.get(int(parts[2]))
        return 0 if pos is None else pos.cost_atoms
    return None


def ledger_command(
    directory: Path = typer.Argument(..., help="The venue directory."),
    account: Optional[int] = typer.Option(None, "--account", help="Print this account's statement by kind."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Rebuild the double-entry ledger from the output log alone and compare it with the engine state the
    journal replays to: a trial balance (or --account N's statement). Exit 0 equal, 1 a mismatch (named),
    2 cannot run."""
    run = ledger_directory(directory)
    if run.status == 2 or run.ledger is None or run.engine is None:
        Console(stderr=True).print(f"[red]cannot run:[/] {run.error}")
        raise typer.Exit(2)
    ledger, engine = run.ledger, run.engine
    if json_out:
        out: dict[str, object] = {"directory": str(directory), "status": run.status, "mismatches": run.mismatches,
                                  **ledger.to_dict()}
        if account is not None:
            out["account"] = {"account_id": account, "cash_atoms": ledger.cash(account),
                              "statement": ledger.statement(account),
                              "positions": {name: ledger.balance(name) for name in sorted(ledger.net)
                                            if name.startswith(f"position:{account}:") and ledger.net[name]}}
        print(json.dumps(out))
        raise typer.Exit(run.status)
    console = Console(width=max(Console().width, 132))  # atoms are long numbers: never cut them
    if account is not None:
        table = Table(title=f"statement of account {account} (cash effect, atoms)")
        table.add_column("kind")
        table.add_column("atoms", justify="right")
        for kind, value in ledger.statement(account).items():
            table.add_row(kind, f"{value:,}")
        table.add_row("[bold]cash balance[/]", f"[bold]{ledger.cash(account):,}[/]")
        for name in sorted(ledger.net):
            if name.startswith(f"position:{account}:") and ledger.net[name]:
                table.add_row(f"{name} (cost basis)", f"{ledger.balance(name):,}")
        console.print(table)
    else:
        table = Table(title=f"trial balance of {directory} ({ledger.commands:,} commands, {ledger.events:,} "
                            f"events, {ledger.postings_count:,} postings)")
        for col in ("ledger account", "debit", "credit", "engine", ""):
            table.add_column(col, justify="left" if col == "ledger account" else "right",
                             no_wrap=col != "ledger account")
        groups: dict[str, list[str]] = defaultdict(list)
        for name in sorted(ledger.net):
            head = name.split(":")[0]
            groups[head if head in ("cash", "position", "funding") else name].append(name)
        for group, names in sorted(groups.items()):
            net = sum(ledger.net[n] for n in names)
            values = [_engine_value(n, engine) for n in names]
            engine_net = None if None in values else sum(
                (v or 0) if is_debit_normal(n) else -(v or 0) for n, v in zip(names, values))
            label = group if len(names) == 1 and names[0] == group else f"{group}:* ({len(names)} accounts)"
            ok = engine_net is None or engine_net == net
            table.add_row(label, f"{net:,}" if net > 0 else "", f"{-net:,}" if net < 0 else "",
                          "" if engine_net is None else f"{abs(engine_net):,}", "ok" if ok else "[red]DIFFERS[/]")
        debits, credits = ledger.trial_balance()
        table.add_row("[bold]total[/]", f"[bold]{debits:,}[/]", f"[bold]{credits:,}[/]", "", "")
        console.print(table)
    if run.mismatches:
        print(f"MISMATCH in {directory}: {len(run.mismatches)} difference(s)")
        for line in run.mismatches[:50]:
            print(f"  {line}")
    else:
        print(f"OK {directory}: every ledger balance equals the engine's (accounts, positions, fee pool, insurance "
              f"fund, bond escrow, bad debt, deposits - withdrawals). The ledger reads the leaves as they are: "
              f"that they are the signed log the journal produces is what `bastion verify` checks.")
    raise typer.Exit(run.status)
