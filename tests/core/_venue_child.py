"""Child process for the crash test: journals a deterministic session and prints each acknowledged seq.

Usage: python _venue_child.py DIR SEED COMMANDS. Reopens DIR (recovering), continues the deterministic
stream from the recovered seq, commits every few commands (group commit + fsync) and prints
``ack <seq>`` only after ``commit()`` returned; snapshots now and then.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from bastion.config import load_venue_config
from bastion.journal.file import FsyncPolicy
from bastion.sim.streams import exchange_core_mix
from bastion.venue import Venue


def session(seed: int, commands: int):
    config = load_venue_config(resources.files("bastion") / "configs" / "default.toml")
    setup, body = exchange_core_mix(config, seed, commands, accounts=50, resting=100)
    return config, setup + body


def main() -> None:
    directory, seed, commands = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    config, items = session(seed, commands)
    venue = Venue.open(config, directory, fsync_policy=FsyncPolicy.GROUP, group_records_max=64)
    print(f"recovered {venue.engine.seq}", flush=True)
    for i, item in enumerate(items[venue.engine.seq:], venue.engine.seq + 1):
        venue.submit_sequenced(item)
        if i % 7 == 0:
            print(f"ack {venue.commit()}", flush=True)
        if i % 500 == 0:
            venue.snapshot()
    print(f"ack {venue.commit()}", flush=True)
    venue.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
