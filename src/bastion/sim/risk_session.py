"""A risk-heavy seeded session journaled through the venue: oracle updates, liquidations, funding, bands.

The order mix of :func:`bastion.sim.streams.exchange_core_mix` exercises matching only. This session is
the other half of what ``bastion verify`` must keep up with (``bench -w replay_risk -w verify_risk``):

* the default venue with a mark-referenced price band (``[instrument.integrity] band_ppm``, 5 % unless
  given) and the risk engine's defaults (liquidation, loss waterfall, hourly funding);
* one ``SetOraclePrice`` per simulated minute on a seeded path: a random walk (``sigma_ppm`` per
  minute) with a crash every ``crash_every_minutes`` (``crash_ppm`` per minute for ``crash_minutes``)
  followed by a rebound, so leveraged positions are liquidated into the book, and some go to the
  insurance fund / ADL;
* two market makers re-quoting a ladder around the index every minute (``CancelAll`` + ``levels``
  post-only limits per side);
* ``traders`` leveraged accounts (5x..40x) that open with IOC limits through the ladder, hold for a
  while and close reduce-only; a liquidated trader re-opens when it still has money.

Commands are a function of ``seed`` and the engine's events (the order ids of the ladder are read from
them), so the same seed gives the same journal. Shell code: the engine sees commands only.
"""

from __future__ import annotations

import copy
import random
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from bastion.core.commands import (
    CancelAll,
    CreateAccount,
    Deposit,
    DepositInsuranceFund,
    PlaceOrder,
    TimeInForce,
)
from bastion.core.instruments import VenueConfig, venue_config_from_dict
from bastion.core.risk_messages import SetOraclePrice
from bastion.journal.file import FsyncPolicy
from bastion.venue import Venue

__all__ = ["risk_config", "risk_session"]

NS_PER_MINUTE = 60 * 10**9
MAKER_BID, MAKER_ASK, INSURANCE_USD = 1, 2, 2_000_000
TRADER_BASE = 1_000
minutes_max = 10_000_000
"""Bound on the simulated minutes of one session."""


def risk_config(band_ppm: int = 50_000) -> VenueConfig:
    """The default venue with a mark-referenced band of ``band_ppm`` on instrument 1 (risk-engine defaults)."""
    raw = tomllib.loads((resources.files("bastion") / "configs" / "default.toml").read_text(encoding="utf-8"))
    raw = copy.deepcopy(raw)
    raw["instrument"][0]["integrity"] = {"band_ppm": band_ppm}
    return venue_config_from_dict(raw)


class _Path:
    """The seeded index path (ticks): random walk, periodic crash and rebound."""

    def __init__(self, rng: random.Random, start_ticks: int, sigma_ppm: int, crash_every: int, crash_minutes: int,
                 crash_ppm: int) -> None:
        self.rng, self.price = rng, start_ticks
        self.sigma_ppm, self.crash_every, self.crash_minutes, self.crash_ppm = sigma_ppm, crash_every, crash_minutes, crash_ppm
        self.start = start_ticks

    def step(self, minute: int) -> int:
        phase = minute % self.crash_every
        if self.crash_every - 2 * self.crash_minutes <= phase < self.crash_every - self.crash_minutes:
            drift = -self.crash_ppm
        elif phase >= self.crash_every - self.crash_minutes:
            drift = self.crash_ppm * 9 // 10
        else:
            drift = (self.start - self.price) * 1_000 // self.start  # weak pull back to the start price
        move = drift + int(self.rng.gauss(0, self.sigma_ppm))
        self.price = max(self.start // 3, min(self.start * 3, self.price + self.price * move // 1_000_000))
        return self.price


def risk_session(config: VenueConfig, directory: Path, minutes: int, *, seed: int = 11, traders: int = 400,
                 levels: int = 10, level_qty_lots: int = 2_000, sigma_ppm: int = 2_500, crash_every_minutes: int = 360,
                 crash_minutes: int = 20, crash_ppm: int = 8_000, checkpoint_every_events: int = 10_000,
                 commit_every: int = 256) -> dict[str, Any]:
    """Journal the session (module docstring) into a fresh venue ``directory``.

    Args:
        config: the venue (:func:`risk_config`); instrument 1 is traded.
        directory: the venue directory (must not hold a journal yet).
        minutes: simulated minutes (one index update each), 1..minutes_max.
        seed: path and trader seed.
        traders, levels, level_qty_lots: population and ladder size.
        sigma_ppm, crash_every_minutes, crash_minutes, crash_ppm: the index path.

    Returns:
        ``{"commands", "events", "events_by_type": {name: count}}``.
    """
    assert 1 <= minutes <= minutes_max and traders >= 1 and levels >= 1
    rng = random.Random(seed)
    spec = config.instruments[1]
    k = spec.atoms_per_tick_lot
    path = _Path(rng, spec.reference_price_ticks, sigma_ppm, crash_every_minutes, crash_minutes, crash_ppm)
    counts: dict[str, int] = {}
    client = [0]

    with Venue.open(config, directory, fsync_policy=FsyncPolicy.NONE,
                    checkpoint_every_events=checkpoint_every_events) as venue:
        now = [0]

        def submit(command: Any) -> list[Any]:
            _, events = venue.submit(command, now[0])
            for ev in events:
                name = type(ev).__name__
                counts[name] = counts.get(name, 0) + 1
            if venue.engine.seq % commit_every == 0:
                venue.commit()
            return events

        def cid() -> int:
            client[0] += 1
            return client[0]

        for account, usd in ((MAKER_BID, 10**9), (MAKER_ASK, 10**9)):
            submit(CreateAccount(account, account))
            submit(Deposit(account, usd * 10**config.atom_decimals))
        submit(DepositInsuranceFund(INSURANCE_USD * 10**config.atom_decimals))
        trader_ids = [TRADER_BASE + i for i in range(traders)]
        for account in trader_ids:
            submit(CreateAccount(account, account))
            submit(Deposit(account, rng.randint(1_000, 20_000) * 10**config.atom_decimals))
        holding: dict[int, tuple[int, int]] = {}  # trader -> (side, close at minute)
        idle_until = {a: rng.randint(0, 120) for a in trader_ids}
        for minute in range(minutes):
            now[0] = (minute + 1) * NS_PER_MINUTE
            price = path.step(minute)
            submit(SetOraclePrice(1, price, now[0], False))
            _quote(submit, cid, price, levels, level_qty_lots)
            _trade(submit, cid, rng, venue, minute, price, k, trader_ids, holding, idle_until)
        venue.commit()
        return {"commands": venue.engine.seq, "events": venue.outlog.size, "events_by_type": dict(sorted(counts.items()))}


def _quote(submit: Any, cid: Any, price: int, levels: int, qty: int) -> None:
    """Both makers re-quote ``levels`` post-only limits per side, 5 bp apart, around ``price``."""
    for account in (MAKER_BID, MAKER_ASK):
        submit(CancelAll(account, 1))
    for account, side in ((MAKER_BID, 1), (MAKER_ASK, -1)):
        for level in range(1, levels + 1):
            limit = price - side * max(1, price * 5 * level // 10_000)
            submit(PlaceOrder(account, 1, cid(), side, limit, qty, post_only=True))


def _trade(submit: Any, cid: Any, rng: random.Random, venue: Venue, minute: int, price: int, k: int,
           trader_ids: list[int], holding: dict[int, tuple[int, int]], idle_until: dict[int, int]) -> None:
    """Due traders close (reduce-only IOC); a few idle ones open with 5x..40x leverage (IOC through the ladder)."""
    engine = venue.engine
    for account in sorted(holding):
        side, close_at = holding[account]
        pos = engine.accounts[account].positions.get(1)
        if pos is None or pos.size_lots == 0:  # liquidated (or ADL'd) meanwhile
            del holding[account]
            idle_until[account] = minute + rng.randint(5, 60)
        elif minute >= close_at:
            limit = price + side * -1 * price // 50  # 2 % through the index
            submit(PlaceOrder(account, 1, cid(), -side, limit, abs(pos.size_lots), time_in_force=TimeInForce.IOC,
                              reduce_only=True))
            del holding[account]
            idle_until[account] = minute + rng.randint(5, 60)
    for account in rng.sample(trader_ids, min(len(trader_ids), 6)):
        if account in holding or idle_until[account] > minute:
            continue
        balance = engine.accounts[account].balance_atoms
        if balance <= 0:
            continue
        side = rng.choice((1, -1))
        leverage = rng.randint(5, 40)
        qty = max(1, balance * leverage // (price * k))
        limit = price + side * price // 100  # 1 % through the index: inside a 5 % band
        events = submit(PlaceOrder(account, 1, cid(), side, limit, qty, time_in_force=TimeInForce.IOC))
        if any(type(ev).__name__ == "TradeExecuted" for ev in events):
            holding[account] = (side, minute + rng.randint(30, 600))
        else:
            idle_until[account] = minute + rng.randint(5, 60)
