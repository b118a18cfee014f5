"""Shared fixtures: the default venue config, a driver that stamps commands, the shared-data locator."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from bastion.core.commands import Command, Sequenced
from bastion.core.engine import Engine
from bastion.core.events import Event
from bastion.config import load_venue_config
from bastion.core.instruments import VenueConfig

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def default_config() -> VenueConfig:
    return load_venue_config(resources.files("bastion") / "configs" / "default.toml")


@pytest.fixture(scope="session")
def config() -> VenueConfig:
    return default_config()


class Driver:
    """Feeds commands to an engine as a sequencer would (seq +1, time +1 µs unless told)."""

    def __init__(self, engine: Engine, start_ns: int = 1_000_000_000) -> None:
        self.engine = engine
        self.now_ns = start_ns
        self.log: list[Sequenced] = []

    def __call__(self, cmd: Command, *, at_ns: int | None = None) -> list[Event]:
        self.now_ns = at_ns if at_ns is not None else self.now_ns + 1_000
        item = Sequenced(self.engine.seq + 1, self.now_ns, cmd)
        self.log.append(item)
        return self.engine.apply(item)


@pytest.fixture
def engine(config: VenueConfig) -> Engine:
    return Engine(config, check_invariants=True)


@pytest.fixture
def drive(engine: Engine) -> Driver:
    return Driver(engine)
