"""Child process for the output-log crash test: journals a deterministic mix through a Venue.

Usage: python _outlog_child.py DIR SEED COMMANDS. Reopens DIR (recovering journal and output log),
continues the stream from the recovered seq, commits every few commands and prints ``ack <seq>`` after
each commit; snapshots and signs checkpoints often, so a kill lands anywhere in that cycle.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from bastion.config import load_venue_config
from bastion.journal.file import FsyncPolicy
from bastion.sim.streams import exchange_core_mix
from bastion.venue import Venue


def session(seed: int, commands: int):  # type: ignore[no-untyped-def]
    config = load_venue_config(resources.files("bastion") / "configs" / "default.toml")
    setup, body = exchange_core_mix(config, seed, commands, accounts=50, resting=100)
    return config, setup + body


def main() -> None:
    directory, seed, commands = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    config, items = session(seed, commands)
    venue = Venue.open(config, directory, fsync_policy=FsyncPolicy.GROUP, group_records_max=32,
                       checkpoint_every_events=97)
    print(f"recovered {venue.engine.seq}", flush=True)
    for i, item in enumerate(items[venue.engine.seq:], venue.engine.seq + 1):
        venue.submit_sequenced(item)
        if i % 11 == 0:
            print(f"ack {venue.commit()}", flush=True)
        if i % 400 == 0:
            venue.snapshot()
    venue.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
