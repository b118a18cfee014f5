"""State shared by both replay kinds: venue, accounts, LP book, index/mark, traders, risk, series.

The data-specific loops (``tick.py``, ``bars.py``) drive a :class:`ReplayContext`: they call
:meth:`ReplayContext.index_tick` with the sources' latest reports, reconcile the LP book, send the taker
flow, and let :meth:`ReplayContext.run_traders` act at its scheduled times. Account ids:
LPs ``1..``, takers ``1001..``, traders ``100001..`` (each its own owner).

A batch scenario (``[matching] mode = "batch"``) switches the instrument in :meth:`ReplayContext.setup`,
before any order: the guardian halts it, sets frequent batch auctions with the scenario's interval (the
grid starts then) and reactivates it; the exchange then passes every boundary with a heartbeat, the LPs
quote plain limit orders into the batch book, and every "best opposite price" the agents need comes
from :meth:`ReplayContext.touch` (the LP ladder, else the last clearing price, else the mark).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bastion.core.commands import CreateAccount, Deposit, DepositInsuranceFund, SetMarketState, SetMatchingMode
from bastion.core.events import CommandRejected
from bastion.core.integrity.codes import MatchingMode
from bastion.core.integrity.states import MarketState
from bastion.core.risk_messages import SetOraclePrice
from bastion.core.instruments import InstrumentSpec, VenueConfig
from bastion.core.oracle import SourcePrice
from bastion.feeds.oracle_reports import SignedReport
from bastion.feeds.oracle_shell import OracleShell, SourceSigner, parse_public_key, replay_signing_key
from bastion.sim.replay.agents import TraderPopulation
from bastion.sim.replay.calibration import Calibration
from bastion.sim.replay.exchange import Exchange
from bastion.sim.replay.index import IndexBuilder, IndexTick
from bastion.sim.replay.liquidity import Level, LiquidityBook
from bastion.sim.replay.risk import RiskMonitor
from bastion.sim.replay.scenario import Scenario
from bastion.sim.replay.series import Series, Timeline
from bastion.venue import Venue

__all__ = ["BookSample", "Progress", "ReplayContext"]

LP_BASE, TAKER_BASE, TRADER_BASE = 1, 1_001, 100_001
NS_PER_S = 1_000_000_000
Progress = Callable[[int, int], None]
"""``progress(completed, total)`` in the loop's own unit (capture seconds, bar minutes)."""
OracleTamper = Callable[[int, list[SignedReport]], list[SignedReport]]
"""``tamper(time_ns, signed reports) -> reports``: an adversary between the sources and the shell (tests)."""
book_samples_max = 100_000


@dataclass(frozen=True, slots=True)
class BookSample:
    """Engine book vs target book right after a reconcile (tests compare them)."""

    time_ns: int
    seq: int
    engine: tuple[list[Level], list[Level]]
    target: tuple[list[Level], list[Level]]
    update_id: int | None  # the real book's last update id (tick replays)


@dataclass
class ReplayContext:
    """Everything one replay run owns (see module docstring)."""

    scenario: Scenario
    config: VenueConfig
    spec: InstrumentSpec
    venue: Venue
    calibration: Calibration
    interval_ns: int
    progress: Progress | None = None
    oracle_tamper: OracleTamper | None = None
    exchange: Exchange = field(init=False)
    signer: SourceSigner = field(init=False)
    oracle: OracleShell = field(init=False)
    liquidity: LiquidityBook = field(init=False)
    risk: RiskMonitor = field(init=False)
    index: IndexBuilder = field(init=False)
    series: Series = field(init=False)
    timeline: Timeline = field(init=False)
    traders: TraderPopulation | None = field(init=False, default=None)
    rng: random.Random = field(init=False)
    lp_ids: list[int] = field(init=False)
    taker_ids: list[int] = field(init=False)
    trader_ids: list[int] = field(init=False)
    marked: bool = field(init=False, default=False)
    mark_updates: int = field(init=False, default=0)
    start_ns: int = field(init=False, default=0)
    end_ns: int = field(init=False, default=0)
    mark_book_deviation_max_ppm: int = field(init=False, default=0)
    book_checks: int = field(init=False, default=0)
    book_mismatches: int = field(init=False, default=0)
    book_samples: list[BookSample] = field(init=False, default_factory=list)
    extra: dict[str, object] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        s = self.scenario
        self.exchange = Exchange(self.venue, s.run.commit_every)
        self.lp_ids = [LP_BASE + i for i in range(s.book.lp_accounts)]
        self.taker_ids = [TAKER_BASE + i for i in range(s.book.taker_accounts)]
        self.trader_ids = [TRADER_BASE + i for i in range(s.traders.count)]
        self.liquidity = LiquidityBook(self.exchange, self.spec.instrument_id, self.lp_ids, s.book.levels,
                                       batch=s.matching.batch)
        self.risk = RiskMonitor(self.exchange, self.spec.instrument_id)
        self.index = IndexBuilder(s.oracle, self.spec, self.interval_ns)
        self.signer = SourceSigner({src.id: replay_signing_key(src.id) for src in s.oracle.sources})
        self.oracle = OracleShell({src.id: parse_public_key(src.public_key) if src.public_key
                                   else replay_signing_key(src.id).public_key() for src in s.oracle.sources})
        self.rng = random.Random(f"{s.seed}:flow")
        self.series = Series(0, s.oracle.price_exponent, s.book.levels)
        self.timeline = Timeline(0, self.spec.instrument_id)
        self.exchange.observe(lambda events: self.timeline.observe(events, self.exchange.now_ns))

    @property
    def atom_decimals(self) -> int:
        decimals: int = self.config.atom_decimals
        return decimals

    def usd_atoms(self, usd: int) -> int:
        atoms_per_usd: int = 10**self.atom_decimals
        return usd * atoms_per_usd

    def setup(self, start_ns: int, end_ns: int) -> None:
        """Create and fund every account and seed the insurance fund, at ``start_ns``."""
        assert start_ns <= end_ns
        self.start_ns, self.end_ns = start_ns, end_ns
        self.series.start_ns = start_ns
        self.timeline.start_ns = start_ns
        book = self.scenario.book
        submit = self.exchange.submit
        for ids, deposit_usd in ((self.lp_ids, book.lp_deposit_usd), (self.taker_ids, book.taker_deposit_usd)):
            for account_id in ids:
                submit(start_ns, CreateAccount(account_id, account_id))
                submit(start_ns, Deposit(account_id, self.usd_atoms(deposit_usd)))
        for account_id in self.trader_ids:
            submit(start_ns, CreateAccount(account_id, account_id))
        if self.scenario.insurance.fund_usd > 0:
            submit(start_ns, DepositInsuranceFund(self.usd_atoms(self.scenario.insurance.fund_usd)))
        if self.scenario.matching.batch:
            self._switch_to_batch(start_ns)

    @property
    def batch(self) -> bool:
        """The replayed instrument runs frequent batch auctions (module docstring)."""
        return self.scenario.matching.batch

    def _switch_to_batch(self, time_ns: int) -> None:
        """HALTED, SetMatchingMode(BATCH, tau), ACTIVE, as the venue's guardian (module docstring).

        Raises:
            ScenarioError: the engine refused one of the three commands (its reject code named).
        """
        from bastion.sim.replay.scenario import ScenarioError

        guardian = self.scenario.matching.guardian_id or min(self.config.guardian_ids)
        iid = self.spec.instrument_id
        for command in (SetMarketState(guardian, iid, MarketState.HALTED),
                        SetMatchingMode(guardian, iid, MatchingMode.BATCH, self.scenario.matching.interval_ns),
                        SetMarketState(guardian, iid, MarketState.ACTIVE)):
            refused = [e for e in self.exchange.submit(time_ns, command) if type(e) is CommandRejected]
            if refused:
                raise ScenarioError(f"{self.scenario.name}: the engine refused {type(command).__name__} "
                                    f"(reject code {getattr(refused[0], 'code', 0)})")
        self.exchange.enable_batch(iid)

    def touch(self, side: int, fallback: bool = True) -> int | None:
        """Best price a ``side`` order would meet: the engine book's best opposite price in a continuous
        market; in a batch market (empty FastBook) the LP ladder's best opposite order, else (with
        ``fallback``) the last fill price (the last clearing), else the mark once it is set."""
        if not self.batch:
            book = self.exchange.engine.books[self.spec.instrument_id]
            best: int | None = book.best_ask() if side > 0 else book.best_bid()
            return best
        best = self.liquidity.best(-side)
        if best is None and fallback:
            best = self.exchange.last_price_ticks
            if best is None and self.marked:
                best = self.exchange.engine.marks[self.spec.instrument_id]
        return best

    def book_depth(self, levels: int) -> tuple[list[Level], list[Level]]:
        """The engine's resting liquidity, top ``levels`` per side: the FastBook's depth, or in a batch
        market the resting (GTC) orders of the LP accounts in the engine's batch book, by price."""
        iid = self.spec.instrument_id
        engine = self.exchange.engine
        if not self.batch:
            depth: tuple[list[Level], list[Level]] = engine.books[iid].depth(levels)
            return depth
        book = engine.integ[iid].batch_book
        assert book is not None
        lps = set(self.lp_ids)
        sides: dict[int, dict[int, int]] = {1: {}, -1: {}}
        for order in book.orders.values():
            if order.ioc or engine.orders[order.order_id].account_id not in lps:  # fleeting IOCs are no level
                continue
            level = sides[order.side]
            level[order.price_ticks] = level.get(order.price_ticks, 0) + order.qty_lots
        bids = sorted(sides[1].items(), reverse=True)[:levels]
        asks = sorted(sides[-1].items())[:levels]
        return bids, asks

    def index_tick(self, time_ns: int, reports: list[SourcePrice]) -> IndexTick:
        """One index tick: each source signs its report, the oracle shell verifies them (only verified
        reports reach ``OracleState``), the index updates, the mark is set if it changed, risk is
        measured and a row recorded."""
        signed = [self.signer.sign(report) for report in reports]
        if self.oracle_tamper is not None:
            signed = self.oracle_tamper(time_ns, signed)
        tick = self.index.update(list(self.oracle.tick(signed, time_ns).accepted), time_ns)
        iid = self.spec.instrument_id
        if tick.mark_ticks is not None and tick.mark_ticks != self.exchange.engine.marks[iid] or (
                tick.mark_ticks is not None and not self.marked):
            assert tick.mark_ticks is not None
            self.exchange.submit(time_ns, self._mark_command(tick))
            self.mark_updates += 1
            if not self.marked:
                self.marked = True
                self._start_traders(time_ns)
        risk = self.risk.scan(time_ns)
        traders_open = self.traders.open_positions() if self.traders is not None else 0
        self.series.record(self.exchange, self.spec, tick, risk, traders_open, self.atom_decimals, self.marked,
                           dict(self.risk.counts), self.book_depth(self.scenario.book.levels) if self.batch else None)
        return tick

    def _mark_command(self, tick: IndexTick) -> SetOraclePrice:
        """The command that carries the index to the engine: ``SetOraclePrice`` (index on the tick grid,
        the tick time, the oracle guard's pause verdict). The engine's risk engine derives the mark
        from it and the book (Binance median rule) and sweeps for liquidations."""
        assert tick.mark_ticks is not None
        return SetOraclePrice(self.spec.instrument_id, tick.mark_ticks, tick.time_ns, tick.liquidations_paused)

    def measure_mark_vs_book(self) -> None:
        """Track max |mark - engine book mid| / mid (ppm, rounded up) while the mark is set (in a batch
        market the mid of the LP ladder, the FastBook being empty)."""
        if not self.marked:
            return
        engine = self.exchange.engine
        if self.batch:
            bid, ask = self.liquidity.best(1), self.liquidity.best(-1)
        else:
            book = engine.books[self.spec.instrument_id]
            bid, ask = book.best_bid(), book.best_ask()
        if bid is None or ask is None:
            return
        twice_mid = bid + ask
        distance = abs(2 * engine.marks[self.spec.instrument_id] - twice_mid)
        deviation = -((-distance * 1_000_000) // twice_mid)
        self.mark_book_deviation_max_ppm = max(self.mark_book_deviation_max_ppm, deviation)

    def _start_traders(self, time_ns: int) -> None:
        if not self.trader_ids:
            return
        self.traders = TraderPopulation(self.exchange, self.spec, self.scenario.traders, self.calibration,
                                        self.trader_ids, self.scenario.seed, time_ns, self.atom_decimals,
                                        touch=self.touch if self.batch else None, batch=self.batch)

    def run_traders(self, now_ns: int) -> None:
        """Let the traders act on everything due up to ``now_ns`` (never beyond the replay's end)."""
        if self.traders is not None:
            self.traders.run_due(min(now_ns, self.end_ns))

    def check_book(self, time_ns: int, target: tuple[list[Level], list[Level]], update_id: int | None = None) -> None:
        """Compare the engine book's top levels with ``target`` (after a reconcile) and count the result."""
        levels = self.scenario.book.levels
        engine = self.book_depth(levels)
        self.book_checks += 1
        same = engine[0] == target[0] and engine[1] == target[1]
        self.book_mismatches += int(not same)
        if len(self.book_samples) < book_samples_max:
            self.book_samples.append(BookSample(time_ns, self.exchange.engine.seq, engine, target, update_id))

    def report_progress(self, completed: int, total: int) -> None:
        if self.progress is not None:
            self.progress(completed, total)


def out_dir_ready(out: Path) -> None:
    """Empty ``out`` for a new run, refusing to delete a directory that is not a replay's output.

    Raises:
        FileExistsError: ``out`` holds files but no ``journal.bin`` / ``summary.json`` / ``report.html``.
    """
    import shutil

    if out.exists() and any(out.iterdir()):
        markers = ("journal.bin", "summary.json", "report.html")
        if not any((out / name).exists() for name in markers):
            raise FileExistsError(f"{out} is not empty and does not look like a replay output; not deleting it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
