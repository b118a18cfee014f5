"""Per-instrument market-integrity state held by the engine (docs/integrity-integration.md §4).

One :class:`InstrumentIntegrity` per instrument: market status and plan, matching mode, band reference,
velocity window, LULD limit state, the call-auction / batch books and the sealed-bid book. The engine
owns the logic (``engine.py``, section "market integrity"); this class only holds the state, derives
the band, and converts to and from canonical plain data (state hash, snapshots).
"""

from __future__ import annotations

from typing import Any

import msgspec

from bastion.core.instruments import InstrumentSpec
from bastion.core.integrity.auction import Allocation, Indicative
from bastion.core.integrity.bands import Band, BandMode, BandSpec, ReferenceSource, band_around
from bastion.core.integrity.batch import BatchBook, BatchSpec
from bastion.core.integrity.codes import MatchingMode
from bastion.core.integrity.commit_reveal import SealedBidBook, SealedSpec
from bastion.core.integrity.luld import LimitSide, LuldSpec, LuldState
from bastion.core.integrity.states import MarketState, MarketStatus
from bastion.core.integrity.velocity import VelocityGuard, VelocitySpec
from bastion.core.risk.liquidation import LiquidationOrder

__all__ = ["InstrumentIntegrity"]


class InstrumentIntegrity:
    """Market-integrity state of one instrument (mutable; owned by the engine)."""

    __slots__ = (
        "instrument_id", "price_ticks_max", "band_spec", "velocity_spec", "luld_spec", "auction_spec",
        "status", "mode", "interval_ns", "reveal_ns", "last_trade", "reference", "band", "velocity", "luld",
        "auction_book", "batch_book", "sealed", "sweep_pending", "last_indicative", "sweep_orders_max",
        "bond_atoms_min", "commitments_per_round_max", "liquidations",
    )

    def __init__(self, spec: InstrumentSpec) -> None:
        cfg = spec.integrity
        self.instrument_id = spec.instrument_id
        self.price_ticks_max = spec.price_ticks_max
        self.band_spec: BandSpec | None = (
            BandSpec(cfg.band_ppm, spec.market_protection_ppm, BandMode(cfg.band_mode),
                     ReferenceSource(cfg.band_reference)) if cfg.band_ppm else None)
        self.velocity_spec: VelocitySpec | None = (
            VelocitySpec(cfg.velocity_threshold_ticks, cfg.velocity_lookback_ns, cfg.velocity_pause_ns,
                         cfg.velocity_samples_max) if cfg.velocity_threshold_ticks else None)
        self.luld_spec: LuldSpec | None = (
            LuldSpec(cfg.luld_limit_state_ns, cfg.luld_halt_ns, cfg.luld_auction_ns, cfg.luld_reference_update_ppm)
            if cfg.luld_halt_ns else None)
        self.auction_spec = BatchSpec(2**62, 0, cfg.auction_orders_max, Allocation(cfg.auction_allocation))
        self.sweep_orders_max = cfg.band_sweep_orders_max
        self.bond_atoms_min = cfg.bond_atoms_min
        self.commitments_per_round_max = cfg.commitments_per_round_max
        # ---- state
        self.status = MarketStatus()
        self.mode = MatchingMode.CONTINUOUS
        self.interval_ns = 0
        self.reveal_ns = 0
        self.last_trade = spec.reference_price_ticks
        self.reference = spec.reference_price_ticks  # the band's (and LULD's) reference price
        self.band: Band | None = None
        self.velocity: VelocityGuard | None = VelocityGuard(self.velocity_spec) if self.velocity_spec else None
        self.luld = LuldState()
        self.auction_book: BatchBook | None = None
        self.batch_book: BatchBook | None = None
        self.sealed: SealedBidBook | None = None
        self.sweep_pending = False
        self.last_indicative: Indicative | None = None
        # Liquidation IOCs waiting in the batch book for their clearing: order_id -> the risk engine's plan
        # (LiquidationOrder; fee and insurance split of each fill, docs/integrity-integration.md §6.4).
        self.liquidations: dict[int, LiquidationOrder] = {}
        self.rebuild_band()

    @property
    def configured(self) -> bool:
        """True when any breaker (band, velocity, LULD) is configured for this instrument."""
        return self.band_spec is not None or self.velocity_spec is not None or self.luld_spec is not None

    @property
    def idle(self) -> bool:
        """ACTIVE, continuous, no breaker configured, nothing pending: the engine's fast path applies."""
        return (not self.configured and self.status.state == MarketState.ACTIVE and not self.status.plan
                and self.mode == MatchingMode.CONTINUOUS and self.auction_book is None)

    def rebuild_band(self) -> None:
        """Derive the band from the current reference (None when no band is configured)."""
        if self.band_spec is None:
            self.band = None
        else:
            self.band = band_around(self.reference, self.band_spec.band_ppm, self.price_ticks_max)

    def batch_spec(self, origin_ns: int) -> BatchSpec:
        """Spec of the batch book in the current mode: the ``tau`` grid from ``origin_ns`` for BATCH; for
        SEALED_BATCH the call-auction spec (no grid: the book clears at each round's reveal close)."""
        if self.mode == MatchingMode.SEALED_BATCH:
            return BatchSpec(2**62, origin_ns, self.auction_spec.orders_max, self.auction_spec.allocation)
        return BatchSpec(self.interval_ns, origin_ns, self.auction_spec.orders_max, self.auction_spec.allocation)

    def sealed_spec(self, origin_ns: int) -> SealedSpec:
        return SealedSpec(self.interval_ns, self.reveal_ns, origin_ns, self.bond_atoms_min,
                          self.commitments_per_round_max)

    def canonical(self) -> list[Any]:
        """Plain data for the state hash and snapshots (order of fields fixed)."""
        ind = self.last_indicative
        batch_origin = self.batch_book.spec.origin_ns if self.batch_book is not None else 0
        sealed_origin = self.sealed.spec.origin_ns if self.sealed is not None else 0
        return [
            self.status.canonical(), int(self.mode), self.interval_ns, self.reveal_ns, self.last_trade,
            self.reference,
            None if self.velocity is None else self.velocity.canonical(),
            self.luld.canonical(),
            None if self.auction_book is None else self.auction_book.canonical(),
            None if self.batch_book is None else [batch_origin, self.batch_book.canonical()],
            None if self.sealed is None else [sealed_origin, self.sealed.canonical()],
            int(self.sweep_pending),
            None if ind is None else [ind.price_ticks, ind.matched_lots, ind.imbalance_lots, ind.demand_lots,
                                      ind.supply_lots],
            [[oid, list(msgspec.to_builtins(plan))] for oid, plan in self.liquidations.items()],
        ]

    def restore(self, data: list[Any]) -> None:
        """Inverse of :meth:`canonical` (on a freshly built instance)."""
        (status, mode, interval_ns, reveal_ns, last_trade, reference, velocity, luld, auction, batch, sealed,
         sweep, ind, liquidations) = data
        self.status = MarketStatus.from_canonical(status)
        self.mode = MatchingMode(mode)
        self.interval_ns, self.reveal_ns = interval_ns, reveal_ns
        self.last_trade, self.reference = last_trade, reference
        if velocity is not None:
            assert self.velocity_spec is not None
            self.velocity = VelocityGuard.from_canonical(self.velocity_spec, velocity)
        self.luld = LuldState(LimitSide(luld[0]), luld[1])
        self.auction_book = None if auction is None else BatchBook.from_canonical(self.auction_spec, auction)
        self.batch_book = None if batch is None else BatchBook.from_canonical(self.batch_spec(batch[0]), batch[1])
        self.sealed = None if sealed is None else SealedBidBook.from_canonical(self.sealed_spec(sealed[0]), sealed[1])
        self.sweep_pending = bool(sweep)
        self.last_indicative = None if ind is None else Indicative(*ind)
        self.liquidations = {oid: LiquidationOrder(*plan) for oid, plan in liquidations}
        self.rebuild_band()

    def unbooked_ids(self) -> list[int]:
        """Order ids held by the auction and batch books, in their priority order."""
        out: list[int] = []
        for book in (self.auction_book, self.batch_book):
            if book is not None:
                out.extend(book.orders)
        return out
