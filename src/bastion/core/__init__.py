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
from typing import Any

from bastion.core.instruments import (
    ConfigError,
    InstrumentSpec,
    VenueConfig,
    venue_config_from_dict,
    venue_config_from_toml,
)
from bastion.core.rejects import CancelReason, RejectCode

__all__ = [
    "STP", "AmendOrder", "CancelAll", "CancelOrder", "CancelReason", "Command", "ConfigError", "CreateAccount",
    "Deposit", "DepositInsuranceFund", "Engine", "Heartbeat", "InstrumentSpec", "InvariantViolation",
    "OrderType", "PlaceOrder", "RejectCode", "Sequenced", "SetMarkPrice", "Side", "TimeInForce", "Transfer",
    "VenueConfig", "Withdraw", "venue_config_from_dict", "venue_config_from_toml",
]


def __getattr__(name: str) -> Any:
    """``bastion.core.load_venue_config`` still resolves (to :func:`bastion.config.load_venue_config`, the
    shell's file reader), lazily, so importing the core never imports the shell or ``pathlib``."""
    if name == "load_venue_config":
        from bastion.config import load_venue_config  # noqa: PLC0415 - compatibility shim

        return load_venue_config
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
