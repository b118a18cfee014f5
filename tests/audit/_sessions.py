"""Venue directories from seeded randomized sessions, for the verifier, tamper and proof tests."""

from __future__ import annotations

from pathlib import Path

from bastion.core.commands import Sequenced
from bastion.core.instruments import VenueConfig
from bastion.journal.file import FsyncPolicy
from bastion.sim.streams import chaos_commands, exchange_core_mix
from bastion.venue import CommandNotJournalableError, Venue


def chaos_venue(config: VenueConfig, directory: Path, seed: int, n: int, *, checkpoint_every_events: int = 400,
                commit_every: int = 37, snapshot_every: int = 900,
                fsync_policy: FsyncPolicy = FsyncPolicy.NONE) -> dict[str, int]:
    """Every command type, valid and invalid (``chaos_commands``), journaled through a Venue."""
    gen = chaos_commands(config, seed, n)
    with Venue.open(config, directory, fsync_policy=fsync_policy,
                    checkpoint_every_events=checkpoint_every_events) as venue:
        item = next(gen)
        count = 0
        while True:
            # Re-stamp: the venue refuses commands that cannot be journaled (a float or an int beyond 64
            # bits where an int belongs); they are skipped and the seq stays gap-free.
            item = Sequenced(venue.engine.seq + 1, item.timestamp_ns, item.command)
            try:
                events = venue.submit_sequenced(item)
            except CommandNotJournalableError:
                events = []
            count += 1
            if count % commit_every == 0:
                venue.commit()
            if snapshot_every and count % snapshot_every == 0:
                venue.snapshot()
            try:
                item = gen.send(events)
            except StopIteration:
                break
        venue.commit()
        return {"commands": venue.engine.seq, "events": venue.outlog.size}


def mix_venue(config: VenueConfig, directory: Path, seed: int, n: int, *, accounts: int = 200, resting: int = 200,
              checkpoint_every_events: int = 500, commit_every: int = 64, snapshot_every: int = 1_500,
              fsync_policy: FsyncPolicy = FsyncPolicy.NONE) -> dict[str, int]:
    """The exchange-core-like mix (every command produces at least one event), journaled through a Venue."""
    setup, body = exchange_core_mix(config, seed, n, accounts=accounts, resting=resting)
    with Venue.open(config, directory, fsync_policy=fsync_policy,
                    checkpoint_every_events=checkpoint_every_events) as venue:
        for i, item in enumerate(setup + body, 1):
            venue.submit_sequenced(item)
            if i % commit_every == 0:
                venue.commit()
            if snapshot_every and i % snapshot_every == 0:
                venue.snapshot()
        venue.commit()
        return {"commands": venue.engine.seq, "events": venue.outlog.size}
