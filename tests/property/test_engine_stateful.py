"""Hypothesis stateful test over the engine.

After every step: conservation to the atom (recomputed here from the commands accepted, independently of
the engine's own counters), long OI = short OI, book not crossed at rest, fast and reference engines
emit identical events, a replica fed the encoded journal bytes has the same state hash, and no accepted
order leaves an account that met initial margin below it. Oracle prices (SetOraclePrice, wide enough to
liquidate) and time jumps of one to three hours (funding settles) drive the risk engine: liquidations,
the insurance fund's takeovers and unwinds, ADL and funding must keep every invariant too, and a
snapshot taken at any step restores to the same state hash. Trigger orders (all four types, on mark,
index and last) are placed, amended and canceled among the other rules; the engines' own invariant
check covers the trigger book (nothing reached by its source price is left unarmed). At the end,
replaying the whole journal on a fresh engine and restoring a snapshot both reproduce the state hash.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bastion.core.book.reference import ReferenceBook
from bastion.core.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    Command,
    CreateAccount,
    Deposit,
    Heartbeat,
    PlaceOrder,
    Sequenced,
    SetMarkPrice,
    SetOraclePrice,
    Transfer,
    Withdraw,
    decode_sequenced,
    encode_sequenced,
)
from bastion.core.engine import Engine
from bastion.core.events import Deposited, OrderAccepted, Withdrawn
from bastion.core.margin import free_collateral_atoms
from bastion.core.risk_messages import FundingPaid, FundingRateSet, SetOraclePrice
from tests.conftest import default_config

CONFIG = default_config()
ACCOUNTS = st.integers(1, 6)
PRICE = st.integers(599_950, 600_050)
INDEX = st.integers(540_000, 660_000)  # +-10 %: enough to liquidate a leveraged account
HOUR_NS = 3600 * 10**9


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.fast = Engine(CONFIG, check_invariants=True)
        self.ref = Engine(CONFIG, ReferenceBook, check_invariants=True)
        self.replica = Engine(CONFIG)  # fed the journal's encoded bytes, decoded: replay, step by step
        self.journal: list[Sequenced] = []
        self.now_ns = 1_000_000_000
        self.client_id = 0
        self.net_deposits = 0
        self.settlements = 0
        for a in range(1, 6):
            self.send(CreateAccount(a, (a + 1) // 2))
            self.send(Deposit(a, 2 * 10**9))

    def send(self, cmd: Command, dt_ns: int = 1_000) -> list:
        self.now_ns += dt_ns
        item = Sequenced(len(self.journal) + 1, self.now_ns, cmd)
        self.journal.append(item)
        events = self.fast.apply(item)
        assert events == self.ref.apply(item), f"fast and reference disagree at seq {item.seq}"
        self.replica.apply(decode_sequenced(encode_sequenced(item)))
        for ev in events:
            if isinstance(ev, Deposited):
                self.net_deposits += ev.amount_atoms
            elif isinstance(ev, Withdrawn):
                self.net_deposits -= ev.amount_atoms
        return events

    def free(self, account_id: int) -> int | None:
        account = self.fast.accounts.get(account_id)
        return None if account is None else free_collateral_atoms(account, self.fast.specs, self.fast.marks)

    @rule(a=ACCOUNTS, amount=st.sampled_from([10**6, 10**8, 10**9, 5 * 10**9]))
    def deposit(self, a: int, amount: int) -> None:
        self.send(Deposit(a, amount))

    @rule(a=ACCOUNTS, amount=st.sampled_from([1, 10**6, 10**8, 10**9]))
    def withdraw(self, a: int, amount: int) -> None:
        self.send(Withdraw(a, amount))

    @rule(a=ACCOUNTS, b=ACCOUNTS, amount=st.sampled_from([1, 10**7, 10**9]))
    def transfer(self, a: int, b: int, amount: int) -> None:
        self.send(Transfer(a, b, amount))

    @rule(a=ACCOUNTS, side=st.sampled_from([1, -1]), price=PRICE, qty=st.integers(1, 3_000),
          tif=st.sampled_from([0, 0, 1, 2, 3]), post=st.booleans(), ro=st.booleans(), stp=st.integers(0, 3),
          market=st.booleans(), ttl=st.integers(1, 20))
    def place(self, a, side, price, qty, tif, post, ro, stp, market, ttl) -> None:
        self.client_id += 1
        before = self.free(a)
        events = self.send(PlaceOrder(a, 1, self.client_id, side, price, qty, order_type=int(market), time_in_force=tif,
                                      post_only=post, reduce_only=ro, stp=stp,
                                      expire_at_ns=self.now_ns + ttl * 1_000 if tif == 3 else 0))
        if before is not None and before >= 0 and any(isinstance(e, OrderAccepted) for e in events):
            after = self.free(a)
            assert after is not None and after >= 0, f"accepted order took account {a} below initial margin"

    @precondition(lambda self: self.fast.orders)
    @rule(data=st.data(), price=PRICE, dq=st.integers(-5, 5))
    def amend(self, data, price, dq) -> None:
        oid = data.draw(st.sampled_from(sorted(self.fast.orders)))
        order = self.fast.orders[oid]
        before = self.free(order.account_id)
        self.send(AmendOrder(order.account_id, oid, price, max(1, order.qty_lots + dq)))
        if before is not None and before >= 0:
            assert self.free(order.account_id) >= 0

    @precondition(lambda self: self.fast.orders)
    @rule(data=st.data())
    def cancel(self, data) -> None:
        oid = data.draw(st.sampled_from(sorted(self.fast.orders)))
        self.send(CancelOrder(self.fast.orders[oid].account_id, oid))

    @rule(a=ACCOUNTS)
    def cancel_all(self, a: int) -> None:
        self.send(CancelAll(a, 0))

    @rule(price=PRICE)
    def mark(self, price: int) -> None:
        self.send(SetMarkPrice(1, price))

    @rule(price=PRICE)
    def oracle(self, price: int) -> None:
        self.send(SetOraclePrice(1, price, self.now_ns + 1_000))

    @rule(a=ACCOUNTS, side=st.sampled_from([1, -1]), kind=st.sampled_from([2, 3, 4, 5]),
          source=st.sampled_from([0, 0, 1, 2]), trigger=PRICE, price=PRICE, qty=st.integers(1, 3_000),
          ro=st.sampled_from([False, False, False, True]), close=st.sampled_from([False, False, False, True]),
          tif=st.sampled_from([0, 0, 1, 2, 3]), ttl=st.integers(1, 20))
    def place_trigger(self, a, side, kind, source, trigger, price, qty, ro, close, tif, ttl) -> None:
        self.client_id += 1
        market = kind in (2, 4)
        close = close and market
        tif = 0 if market and tif == 3 else tif
        self.send(PlaceOrder(a, 1, self.client_id, side, 0 if market else price, 0 if close else qty,
                             order_type=kind, time_in_force=tif, reduce_only=ro and not close,
                             expire_at_ns=self.now_ns + ttl * 1_000 if tif == 3 else 0,
                             trigger_price_ticks=trigger, trigger_source=source, close_position=close))

    @precondition(lambda self: self.fast.triggers.size)
    @rule(data=st.data(), trigger=st.one_of(st.just(0), PRICE), price=PRICE, dq=st.integers(-5, 5),
          cancel=st.booleans())
    def amend_or_cancel_trigger(self, data, trigger, price, dq, cancel) -> None:
        oid = data.draw(st.sampled_from(sorted(self.fast.triggers.orders)))
        t = self.fast.triggers.orders[oid]
        if cancel:
            self.send(CancelOrder(t.account_id, oid))
        else:
            self.send(AmendOrder(t.account_id, oid, price, 0 if t.close_position else max(1, t.qty_lots + dq), trigger))

    @rule(dt=st.integers(0, 30_000))
    def time_passes(self, dt: int) -> None:
        self.send(Heartbeat(), dt_ns=dt)

    @rule(a=ACCOUNTS, b=ACCOUNTS, side=st.sampled_from([1, -1]), offset=st.integers(-50, 50), qty=st.integers(1, 3_000))
    def trade_near_the_mark(self, a, b, side, offset, qty) -> None:
        """A resting order at the current mark (wherever the oracle moved it) and a crossing IOC."""
        price = self.fast.marks[1] + offset
        self.client_id += 2
        self.send(PlaceOrder(a, 1, self.client_id - 1, side, price, qty))
        self.send(PlaceOrder(b, 1, self.client_id, -side, price, qty, time_in_force=1))

    @rule(index=INDEX)
    def oracle(self, index: int) -> None:
        self.send(SetOraclePrice(1, index, self.now_ns + 1_000))

    @rule(hours=st.integers(1, 3))
    def hours_pass(self, hours: int) -> None:
        events = self.send(Heartbeat(), dt_ns=hours * HOUR_NS)
        for rate in (e for e in events if isinstance(e, FundingRateSet)):
            self.settlements += 1
            paid = sum(e.amount_atoms for e in events if isinstance(e, FundingPaid))
            assert paid + rate.remainder_atoms == 0, "funding does not sum to zero"

    @rule()
    def snapshot_restores(self) -> None:
        restored = Engine.restore(CONFIG, self.fast.snapshot(), check_invariants=True)
        assert restored.state_hash() == self.fast.state_hash()

    @invariant()
    def replay_of_the_journal_reproduces_the_state_hash(self) -> None:
        assert self.replica.state_hash() == self.fast.state_hash() == self.ref.state_hash()

    @invariant()
    def conservation_to_the_atom(self) -> None:
        e = self.fast
        cash = sum(acc.balance_atoms - sum(p.cost_atoms for p in acc.positions.values()) for acc in e.accounts.values())
        assert cash + e.fee_pool_atoms + e.insurance_fund_atoms - e.risk.bad_debt_atoms == self.net_deposits

    @invariant()
    def open_interest_balanced_and_book_uncrossed(self) -> None:
        sizes = [p.size_lots for acc in self.fast.accounts.values() for i, p in acc.positions.items() if i == 1]
        assert sum(s for s in sizes if s > 0) == -sum(s for s in sizes if s < 0) == self.fast.open_interest_lots[1]
        bid, ask = self.fast.books[1].best_bid(), self.fast.books[1].best_ask()
        assert bid is None or ask is None or bid < ask

    def teardown(self) -> None:
        replayed = Engine(CONFIG)
        for item in self.journal:
            replayed.apply(item)
        assert replayed.state_hash() == self.fast.state_hash() == self.ref.state_hash()
        restored = Engine.restore(CONFIG, self.fast.snapshot())
        assert restored.state_hash() == self.fast.state_hash()


EngineMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestEngineStateful = EngineMachine.TestCase
