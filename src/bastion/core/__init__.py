"""The pure, deterministic core: ``Engine.apply(Sequenced) -> list[Event]``.

No clock, randomness, environment, I/O or floats. Prices in ticks, sizes in lots, money in atoms,
rates in ppm, time in ns — all ``int``.
"""

from bastion.core.commands import (
    STP,
    AmendOrder,
    CancelAll,
    CancelOrder,
    Command,
    CreateAccount,
    Deposit,
    DepositInsuranceFund,
    Heartbeat,
    OrderType,
    PlaceOrder,
    Sequenced,
    SetMarkPrice,
    Side,
    TimeInForce,
    Transfer,
    Withdraw,
)
from bastion.core.engine import Engine, InvariantViolation
from bastion.core.instruments import ConfigError, InstrumentSpec, VenueConfig, load_venue_config
from bastion.core.rejects import CancelReason, RejectCode

__all__ = [
    "STP", "AmendOrder", "CancelAll", "CancelOrder", "CancelReason", "Command", "ConfigError", "CreateAccount",
    "Deposit", "DepositInsuranceFund", "Engine", "Heartbeat", "InstrumentSpec", "InvariantViolation",
    "OrderType", "PlaceOrder", "RejectCode", "Sequenced", "SetMarkPrice", "Side", "TimeInForce", "Transfer",
    "VenueConfig", "Withdraw", "load_venue_config",
]
