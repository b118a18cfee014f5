"""Shared builders for the risk tests: Binance-like instrument specs and accounts with positions."""

from __future__ import annotations

from typing import Any

from bastion.core.accounts import Account, Position
from bastion.core.commands import Sequenced
from bastion.core.engine import Engine
from bastion.core.instruments import InstrumentSpec, VenueConfig, venue_config_from_dict
from bastion.core.risk_engine import RiskConfig

USDT = 10**6
"""Atoms per settlement unit (6 decimals)."""

# Binance USD-M BTCUSDT brackets as quoted in the Binance FAQ "How to Calculate Liquidation Price of
# USDⓈ-M Futures Contracts": level 1 up to 50,000 at 0.4 %, level 2 up to 250,000 at 0.5 % (maintenance
# amount 50), level 3 up to 1,000,000 at 1 % (maintenance amount 1,300 = 250,000 * (1 % - 0.5 %) + 50).
BINANCE_TIERS: list[dict[str, Any]] = [
    {"notional_max": "50000", "imf_ppm": 8_000, "mmf_ppm": 4_000},
    {"notional_max": "250000", "imf_ppm": 10_000, "mmf_ppm": 5_000},
    {"notional_max": "1000000", "imf_ppm": 20_000, "mmf_ppm": 10_000},
    {"notional_max": "10000000", "imf_ppm": 50_000, "mmf_ppm": 25_000},
]


def make_spec(tiers: list[dict[str, Any]] | None = None, *, tick: str = "0.1", lot: str = "0.001",
              taker_fee_ppm: int = 500, instrument_id: int = 1, symbol: str = "BTC-USDT") -> InstrumentSpec:
    """A linear perpetual with Binance BTCUSDT-like grid (tick 0.1, lot 0.001: k = 100 atoms)."""
    raw = {
        "venue": {"name": "risk-test", "atom_decimals": 6},
        "instrument": [{
            "instrument_id": instrument_id, "symbol": symbol, "tick_size": tick, "lot_size": lot,
            "reference_price": "60000", "price_ticks_max": 10**12, "taker_fee_ppm": taker_fee_ppm,
            "maker_fee_ppm": 0, "margin_tiers": tiers or BINANCE_TIERS,
        }],
    }
    return venue_config_from_dict(raw).instruments[instrument_id]


def make_account(account_id: int, balance_atoms: int, positions: dict[int, tuple[int, int]] | None = None) -> Account:
    """An engine Account with ``positions`` given as ``{instrument_id: (size_lots, cost_atoms)}``."""
    account = Account(account_id, account_id)
    account.balance_atoms = balance_atoms
    for iid, (size, cost) in (positions or {}).items():
        pos = Position()
        pos.size_lots = size
        pos.cost_atoms = cost
        account.positions[iid] = pos
    return account


def assert_restore_and_replay_match(config: VenueConfig, engine: Engine, log: list[Sequenced], risk: RiskConfig,
                                    *, restore: bool = True) -> None:
    """The engine's state hash is reproduced by a snapshot restore (``restore``) and by replaying ``log``."""
    if restore:
        restored = Engine.restore(config, engine.snapshot(), check_invariants=True, risk=risk)
        assert restored.state_hash() == engine.state_hash()
    replayed = Engine(config, risk=risk)
    for item in log:
        replayed.apply(item)
    assert replayed.state_hash() == engine.state_hash()
