"""Seeded command streams for benchmarks, soak runs and differential tests (shell code: uses ``random``).

* :func:`exchange_core_mix` — the exchange-core benchmark shape: ~9% GTC, 3% IOC, 6% cancel and 82%
  amend/move over ~1,000 resting orders and 1,000 accounts (exchange-core's "TestOrdersGenerator").
* :func:`chaos_commands` — every command type, valid and invalid, with all order flags, STP modes,
  reduce-only, GTD expiry, mark-price moves, withdrawals: the input of the differential tests (with
  ``soak=True``, also oracle index prices and account creation up to ``accounts_max``: the soak). Trigger
  orders (stop / take-profit on mark, index and last, their amends and cancels, and the oracle index
  they need) are interleaved by :class:`TriggerMix` from a second seeded generator.

Both need to know which orders are live, so they watch the engine's events through an
:class:`OrderTracker`; the resulting command list is then replayable on any engine.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from bastion.core.commands import (
    AmendOrder,
    OrderType,
    SetOraclePrice,
    CancelAll,
    CancelOrder,
    Command,
    CreateAccount,
    Deposit,
    DepositInsuranceFund,
    Heartbeat,
    PlaceOrder,
    Sequenced,
    SetKillSwitch,
    SetMarketState,
    SetMarkPrice,
    SetOraclePrice,
    Transfer,
    Withdraw,
)
from bastion.core.engine import Engine
from bastion.core.events import (
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderReduced,
    OrderTriggered,
    TradeExecuted,
    TriggerOrderAccepted,
    TriggerOrderAmended,
    TriggerOrderReduced,
    TriggerOrderRejected,
)
from bastion.core.instruments import VenueConfig

__all__ = ["OrderTracker", "TriggerMix", "chaos_commands", "exchange_core_mix", "sequenced"]


@dataclass
class OrderTracker:
    """Live orders as seen from the event stream: order_id -> [account_id, side, price_ticks, qty_lots]."""

    live: dict[int, list[int]] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)

    def observe(self, events: list[Event]) -> None:
        for ev in events:
            if type(ev) is OrderAccepted:
                self.live[ev.order_id] = [ev.account_id, ev.side, ev.price_ticks, ev.qty_lots, ev.instrument_id]
                self.ids.append(ev.order_id)
            elif type(ev) is TradeExecuted:
                for oid in (ev.maker_order_id, ev.taker_order_id):
                    rec = self.live.get(oid)
                    if rec is not None:
                        rec[3] -= ev.qty_lots
                        if rec[3] <= 0:
                            del self.live[oid]
            elif type(ev) is OrderCanceled:
                self.live.pop(ev.order_id, None)
            elif type(ev) is OrderReduced:
                rec = self.live.get(ev.order_id)
                if rec is not None:
                    rec[3] = ev.qty_lots
                    if ev.qty_lots <= 0:
                        del self.live[ev.order_id]
            elif type(ev) is OrderAmended:
                rec = self.live.get(ev.order_id)
                if rec is not None:
                    rec[2], rec[3] = ev.price_ticks, ev.qty_lots

    def pick(self, rng: random.Random) -> int | None:
        """A uniformly random live order id (compacts the id list lazily)."""
        for _ in range(8):
            if not self.ids:
                return None
            i = rng.randrange(len(self.ids))
            oid = self.ids[i]
            if oid in self.live:
                return oid
            self.ids[i] = self.ids[-1]
            self.ids.pop()
        self.ids = list(self.live)
        return rng.choice(self.ids) if self.ids else None


def sequenced(commands: list[Command], start_seq: int = 1, start_ns: int = 1_000_000_000,
              step_ns: int = 1_000) -> list[Sequenced]:
    """Stamp commands as a sequencer would: consecutive seq, time advancing by ``step_ns``."""
    return [Sequenced(start_seq + i, start_ns + i * step_ns, c) for i, c in enumerate(commands)]


def _setup(accounts: int, deposit_atoms: int) -> list[Command]:
    cmds: list[Command] = []
    for a in range(1, accounts + 1):
        cmds.append(CreateAccount(a, a))
        cmds.append(Deposit(a, deposit_atoms))
    return cmds


def exchange_core_mix(config: VenueConfig, seed: int, n: int, accounts: int = 1_000, resting: int = 1_000,
                      instrument_id: int = 1) -> tuple[list[Sequenced], list[Sequenced]]:
    """Generate the exchange-core-like mix on one instrument.

    Returns:
        (setup, body): the account-creation/deposit/book-building prefix and ``n`` mix commands, both
        stamped; apply setup then body to a fresh engine.
    """
    rng = random.Random(seed)
    spec = config.instruments[instrument_id]
    mid = spec.reference_price_ticks
    engine = Engine(config)
    tracker = OrderTracker()
    setup = sequenced(_setup(accounts, 10**14))
    for item in setup:
        engine.apply(item)
    out: list[Sequenced] = []
    seq, ts = len(setup), 1_000_000_000 + len(setup) * 1_000
    client_ids = [0] * (accounts + 1)

    def emit(cmd: Command) -> None:
        nonlocal seq, ts
        seq += 1
        ts += 1_000
        item = Sequenced(seq, ts, cmd)
        tracker.observe(engine.apply(item))
        out.append(item)

    def place(tif: int, aggressive: bool) -> PlaceOrder:
        a = rng.randint(1, accounts)
        client_ids[a] += 1
        side = 1 if rng.random() < 0.5 else -1
        offset = rng.randint(1, 40)
        price = mid - side * offset if not aggressive else mid + side * rng.randint(0, 20)
        return PlaceOrder(a, instrument_id, client_ids[a], side, price, rng.randint(1, 20), time_in_force=tif)

    while len(tracker.live) < resting:  # build the resting book first (part of setup)
        emit(place(0, False))
    setup = setup + out
    out = []
    for _ in range(n):
        r = rng.random()
        if rng.random() < 0.05:  # the centre price drifts slowly, mean-reverting within +/- 20 ticks
            mid += rng.choice((-1, 1)) if abs(mid - spec.reference_price_ticks) < 20 else (
                1 if mid < spec.reference_price_ticks else -1)
        if r < 0.09 or len(tracker.live) < resting // 2:
            emit(place(0, False))
        elif r < 0.12:
            emit(place(1, True))
        else:
            oid = tracker.pick(rng)
            if oid is None:
                emit(place(0, False))
                continue
            acct, side, price, qty, _ = tracker.live[oid]
            if r < 0.18:
                if len(tracker.live) >= resting:
                    emit(CancelOrder(acct, oid))
                else:  # below the target depth a cancel becomes a new resting order
                    emit(place(0, False))
            else:
                new_price = mid - side * rng.randint(1, 40)
                if new_price == price:
                    new_price -= side
                emit(AmendOrder(acct, oid, new_price, qty))
    return setup, out


_BAD_INTS = ("x", 1.5, None, True, -1, 0, 2**70)


def chaos_commands(config: VenueConfig, seed: int, n: int, accounts: int = 12,
                   modes: bool = False, trigger_share: float = 0.08, *,
                   soak: bool = False) -> Generator[Sequenced, list[Event] | None, None]:
    """A random stream of every command type, valid and invalid, for differential and property tests.

    A generator of stamped commands that adapts to the engine: after receiving an item, the caller
    applies it and sends back its events with ``gen.send(events)`` (the next item is returned). ``n``
    bounds the length after the account setup; after each of those, with probability
    ``trigger_share``, one more trigger-order command follows (:class:`TriggerMix`; 0 turns it off).
    ``modes`` mixes in matching-mode switches and sealed-bid commit-reveal traffic
    (:class:`bastion.sim.streams_modes.ModeChaos`; the stream without it is unchanged).

    ``soak`` (``bastion soak``): half of the price moves come as ``SetOraclePrice`` (mostly valid:
    fresh, monotonic oracle time; sometimes stale, future, zero or mistyped, sometimes pausing
    liquidations), one in ten price moves is a jump of 1-8 % (liquidations, band moves and sweeps), a
    few ``CreateAccount`` of new ids reach ``accounts_max``, and guardians reopen markets and release
    the kill switch more often than they close them (so trading continues). Off by default, so
    existing seeded streams are unchanged.
    """
    from bastion.sim.streams_modes import ModeChaos

    extra = ModeChaos(config, seed, accounts) if modes else None
    mix = TriggerMix(seed, accounts, trigger_share) if trigger_share > 0 else None
    rng = random.Random(seed)
    oracle_ts = dict.fromkeys(sorted(config.instruments), 0)
    next_account = accounts + 2
    iids = sorted(config.instruments)
    tracker = OrderTracker()
    mids = {i: config.instruments[i].reference_price_ticks for i in iids}
    seq, now = 0, 1_000_000_000
    setup: list[Command] = []
    for a in range(1, accounts + 1):
        setup += [CreateAccount(a, (a + 1) // 2), Deposit(a, rng.choice((10**9, 10**10, 10**11)))]
    setup.append(DepositInsuranceFund(10**9))
    for setup_cmd in setup:
        seq += 1
        now += 1_000
        tracker.observe((yield Sequenced(seq, now, setup_cmd)) or [])
    for client in range(1, n + 1):
        seq += 1
        now += rng.choice((0, 1_000, 1_000, 50_000))
        iid = rng.choice(iids)
        mid = mids[iid]
        acct = rng.randint(1, accounts + 1)  # accounts + 1 does not exist
        r = rng.random()
        cmd: Command
        if soak and r < 0.03:  # a sweep: crosses several levels with a large size (levels/fills stops)
            side = rng.choice((1, -1))
            cmd = PlaceOrder(acct, iid, client, side, max(1, mid + side * rng.randint(20, 80)), rng.choice((500, 5000)),
                             time_in_force=rng.choice((0, 1)), stp=rng.randint(0, 3),
                             reduce_only=rng.random() < 0.2)
        elif r < 0.45:
            tif = rng.choice((0, 0, 0, 1, 2, 3))
            expire = now + rng.randint(-2, 60) * 1_000 if tif == 3 else (5 if rng.random() < 0.01 else 0)
            order_iid = iid if rng.random() > 0.01 else 99
            client_id = client if rng.random() > 0.03 else max(1, client - 3)
            side = rng.choice((1, -1))
            # The soak rests half of its orders passively (deeper books: multi-fill sweeps, long queues).
            offset = -side * rng.randint(1, 30) if soak and rng.random() < 0.5 else rng.randint(-30, 30)
            cmd = PlaceOrder(
                acct, order_iid, client_id, side, max(1, mid + offset), rng.choice((1, 2, 3, 5, 10, 50, 200, 5000)),
                order_type=1 if rng.random() < 0.07 else 0, time_in_force=tif, post_only=rng.random() < 0.1,
                reduce_only=rng.random() < 0.1, stp=rng.randint(0, 3), expire_at_ns=expire,
            )
        elif r < 0.62:
            oid = tracker.pick(rng)
            if oid is None:
                cmd = Heartbeat()
            else:
                a, _, price, qty, oiid = tracker.live[oid]
                new_price = max(1, mids[oiid] + rng.randint(-30, 30)) if rng.random() < 0.7 else price
                cmd = AmendOrder(a, oid, new_price, max(1, qty + rng.randint(-3, 3)))
        elif soak and r < 0.74 and (rng.random() < 0.6 or len(tracker.live) < 30):
            side = rng.choice((1, -1))  # the soak turns most cancels into small passive makers (depth)
            cmd = PlaceOrder(rng.randint(1, accounts), iid, client, side, max(1, mid - side * rng.randint(1, 25)),
                             rng.choice((1, 1, 2, 3, 5)))
        elif r < 0.74:
            oid = tracker.pick(rng)
            owner = tracker.live[oid][0] if oid is not None and rng.random() > 0.05 else acct
            cmd = CancelOrder(owner, oid if oid is not None else 12345)
        elif r < 0.76:
            cmd = CancelAll(acct, rng.choice([0, *iids]))
        elif r < 0.83:
            if soak and rng.random() < 0.1:
                mids[iid] = max(10, mid + rng.choice((-1, 1)) * mid * rng.randint(10, 80) // 1000)
            else:
                mids[iid] = max(10, mid + rng.randint(-50, 50))
            if soak and rng.random() < 0.5:
                cmd = _oracle(rng, iid, mids[iid], now, oracle_ts)
            else:
                cmd = SetMarkPrice(iid, mids[iid])
        elif soak and r < 0.835:
            cmd = CreateAccount(next_account, rng.randint(1, 3))
            next_account += 1
        elif r < 0.87:
            cmd = Withdraw(acct, rng.choice((1, 10**6, 10**8, 10**10)))
        elif r < 0.89:
            cmd = Transfer(acct, rng.randint(1, accounts), rng.choice((1, 10**7, 10**9)))
        elif r < 0.91:
            cmd = Deposit(acct, rng.choice((10**6, 10**9)))
        elif r < 0.935:
            cmd = Heartbeat()
        elif r < 0.95:  # the soak halves the guardian share: markets spend most of the time trading
            cmd = _guardian(rng, config, iid, now, soak) if not soak or rng.random() < 0.5 else Heartbeat()
        else:
            cmd = _malformed(rng, acct, iid, client, config.instruments[iid].price_ticks_max, soak)
        if extra is not None:
            cmd = extra.replace(cmd, now, mids)
        events = (yield Sequenced(seq, now, cmd)) or []
        tracker.observe(events)
        if extra is not None:
            extra.observe(events)
        while mix is not None and mix.due(events):  # trigger orders (a second generator: TriggerMix)
            seq += 1
            events = (yield Sequenced(seq, now, mix.command(iids, mids, client, now))) or []
            tracker.observe(events)
            if extra is not None:
                extra.observe(events)


def _oracle(rng: random.Random, iid: int, price: int, now: int, last_ts: dict[int, int]) -> Command:
    """An oracle index update: fresh and valid 90 % of the time; else stale, from the future, zero,
    mistyped or off range (rejected without effect)."""
    roll = rng.random()
    if roll < 0.9:
        ts = max(last_ts[iid], now - rng.randint(0, 5_000), 1)
        last_ts[iid] = ts
        return SetOraclePrice(iid, price, ts, rng.random() < 0.03)
    bad = rng.choice((0, -1, now + 1, max(last_ts[iid] - 1, 0), 2**63 - 1))
    if roll < 0.95:
        return SetOraclePrice(iid, price, bad)
    return SetOraclePrice(iid, rng.choice(_BAD_INTS), max(last_ts[iid], 1))  # type: ignore[arg-type]


def _guardian(rng: random.Random, config: VenueConfig, iid: int, now: int, soak: bool = False) -> Command:
    """A market-integrity guardian command: mostly from a configured guardian, sometimes not (or mistyped).

    ``soak``: the kill switch is engaged one time in 25 (else released) and markets are mostly
    reopened, so a long stream spends most of its time trading."""
    guardians = list(config.guardian_ids) or [1]
    guardian = rng.choice(guardians) if rng.random() > 0.1 else 424242
    if rng.random() < 0.15:
        share = 0.04 if soak else 0.3
        return SetKillSwitch(guardian, rng.random() < share if rng.random() > 0.05 else 1)  # type: ignore[arg-type]
    if soak:
        state = rng.choice((0, 0, 0, 0, 0, 1, 2, 3, 4, 5)) if rng.random() > 0.998 else rng.choice(
            (0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4))
    else:
        state = rng.choice((0, 0, 0, 1, 2, 3, 4, 4, 4, 5)) if rng.random() > 0.998 else rng.choice((0, 0, 1, 2, 3, 4, 4))
    auction_ns = rng.choice((0, 0, 20_000, 100_000, 1_000_000)) if state == 4 else 0
    if rng.random() < 0.03:
        return SetMarketState(guardian, iid, rng.choice(_BAD_INTS + (6,)), auction_ns)  # type: ignore[arg-type]
    return SetMarketState(guardian, iid, state, auction_ns)


def _malformed(rng: random.Random, acct: int, iid: int, client: int, price_max: int, soak: bool = False) -> Command:
    """A structurally valid command with one bad field (wrong type, sign, size or reference).

    ``soak`` adds bad enum fields (time in force, order type, STP mode), a GTD expiry beyond int64, an
    existing account id, and isolated-margin accounts (which then trade the wrong instrument)."""
    bad = rng.choice(_BAD_INTS + (price_max + 1,))
    kind = rng.randrange(12 if soak else 6)
    if kind == 6:
        return PlaceOrder(acct, iid, client, 1, 100, 1, time_in_force=rng.choice((4, -1, 9)))
    if kind == 7:
        return PlaceOrder(acct, iid, client, 1, 100, 1, order_type=rng.choice((2, -1)))
    if kind == 8:
        return PlaceOrder(acct, iid, client, 1, 100, 1, stp=rng.choice((4, -1)))
    if kind == 9:
        return PlaceOrder(acct, iid, client, 1, 100, 1, time_in_force=3, expire_at_ns=rng.choice((2**63, 2**64 - 1)))
    if kind == 10:
        return CreateAccount(rng.randint(1, 4), 1)
    if kind == 11:
        return CreateAccount(1_000 + client, acct, isolated_instrument_id=iid)
    if kind == 0:
        return PlaceOrder(acct, iid, client, 1, bad, 1)  # type: ignore[arg-type]
    if kind == 1:
        return PlaceOrder(acct, iid, client, 1, 100, bad)  # type: ignore[arg-type]
    if kind == 2:
        return PlaceOrder(acct, iid, client, bad, 100, 1)  # type: ignore[arg-type]
    if kind == 3:
        return Deposit(acct, bad)  # type: ignore[arg-type]
    if kind == 4:
        return AmendOrder(acct, bad, 100, 1)  # type: ignore[arg-type]
    return SetMarkPrice(iid, bad)  # type: ignore[arg-type]


class TriggerMix:
    """Trigger-order commands for :func:`chaos_commands`, from their own seeded generator.

    Places stop / take-profit orders of all four types on every source (mark, index, last), some with a
    trigger already reached (rejected 312) or malformed fields; amends and cancels untriggered ones;
    and sends oracle index prices so INDEX triggers have a source. Tracks untriggered orders from the
    events (TriggerOrderAccepted in; OrderTriggered, TriggerOrderRejected, OrderCanceled out).
    """

    def __init__(self, seed: int, accounts: int, share: float) -> None:
        self.rng = random.Random(seed * 7_919 + 104_729)
        self.accounts = accounts
        self.share = share
        self.live: dict[int, list[int]] = {}  # order_id -> [account_id, instrument_id, trigger_price, qty]

    def due(self, events: list[Event]) -> bool:
        """Observe the events of the last command; True when a trigger command should follow it."""
        for ev in events:
            if isinstance(ev, TriggerOrderAccepted):
                self.live[ev.order_id] = [ev.account_id, ev.instrument_id, ev.trigger_price_ticks, ev.qty_lots]
            elif isinstance(ev, (OrderTriggered, TriggerOrderRejected, OrderCanceled)):
                self.live.pop(ev.order_id, None)
            elif isinstance(ev, (TriggerOrderAmended, TriggerOrderReduced)):
                rec = self.live.get(ev.order_id)
                if rec is not None:
                    rec[3] = ev.qty_lots
                    if isinstance(ev, TriggerOrderAmended):
                        rec[2] = ev.trigger_price_ticks
        return self.rng.random() < self.share

    def command(self, iids: list[int], mids: dict[int, int], client: int, now_ns: int) -> Command:
        """One trigger-order command (or an oracle index update) near the stream's current mids."""
        rng = self.rng
        iid = rng.choice(iids)
        mid = mids[iid]
        r = rng.random()
        if r < 0.12:
            return SetOraclePrice(iid, max(1, mid + rng.randint(-40, 40)), now_ns, rng.random() < 0.05)
        if r < 0.3 and self.live:
            oid = rng.choice(sorted(self.live))
            acct, oiid, _, qty = self.live[oid]
            if r < 0.2:
                return CancelOrder(acct, oid)
            new_trigger = rng.choice((0, max(1, mids[oiid] + rng.randint(-60, 60))))
            return AmendOrder(acct, oid, max(1, mids[oiid] + rng.randint(-30, 30)), max(0, qty + rng.randint(-2, 2)),
                              new_trigger)
        order_type = rng.choice((OrderType.STOP_MARKET, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_MARKET,
                                 OrderType.TAKE_PROFIT_LIMIT))
        market = order_type in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET)
        close = market and rng.random() < 0.1
        tif = rng.choice((0, 0, 1, 2)) if market else rng.choice((0, 0, 0, 1, 2, 3))
        expire = now_ns + rng.randint(1, 200) * 1_000 if tif == 3 else 0
        source = rng.choice((0, 0, 1, 2))
        trigger: Any = max(1, mid + rng.randint(-80, 80))
        if rng.random() < 0.03:  # malformed on purpose
            trigger = rng.choice((0, -5, 2**40, "x", 1.5, None, True))
        return PlaceOrder(
            rng.randint(1, self.accounts), iid, 1_000_000 + client, rng.choice((1, -1)),
            0 if market else max(1, mid + rng.randint(-40, 40)), 0 if close else rng.choice((1, 2, 5, 20, 200)),
            order_type=order_type, time_in_force=tif, post_only=not market and rng.random() < 0.05,
            reduce_only=not close and rng.random() < 0.2, stp=rng.randint(0, 3), expire_at_ns=expire,
            trigger_price_ticks=trigger, trigger_source=rng.choice((source, source, source, 7)) if rng.random() < 0.02
            else source, close_position=close,
        )
