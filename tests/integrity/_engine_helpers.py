"""Shared helpers for the engine-level integrity tests: configs with guardians and integrity tables."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from typing import Any

from bastion.core.commands import CreateAccount, Deposit
from bastion.core.engine import Engine
from bastion.core.events import CommandRejected, Event
from bastion.core.instruments import VenueConfig, venue_config_from_dict
from tests.conftest import Driver

GUARDIAN = 7
P = 600_000  # BTC reference price in ticks (60,000.0)

_RAW = tomllib.loads((resources.files("bastion") / "configs" / "default.toml").read_text(encoding="utf-8"))


def make_config(integrity: dict[str, Any] | None = None, guardians: bool = True) -> VenueConfig:
    raw = copy.deepcopy(_RAW)
    if guardians:
        raw["venue"]["guardian_ids"] = [GUARDIAN]
    if integrity is not None:
        raw["instrument"][0]["integrity"] = integrity
    return venue_config_from_dict(raw)


def make_engine(integrity: dict[str, Any] | None = None, accounts: int = 4) -> tuple[Engine, Driver]:
    engine = Engine(make_config(integrity), check_invariants=True)
    drive = Driver(engine)
    for a in range(1, accounts + 1):
        drive(CreateAccount(a, a))
        drive(Deposit(a, 10**12))
    return engine, drive


def of(events: list[Event], kind: type) -> list[Any]:
    return [e for e in events if type(e) is kind]


def rejected(events: list[Event]) -> int | None:
    return events[0].code if len(events) == 1 and type(events[0]) is CommandRejected else None


def assert_snapshot_roundtrip(engine: Engine) -> None:
    again = Engine.restore(engine.config, engine.snapshot(), check_invariants=True)
    assert again.state_hash() == engine.state_hash()
