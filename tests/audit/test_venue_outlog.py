"""The venue writes the output log and signed checkpoints, and recovers them consistently.

Recovery rules under test (bastion.venue module docstring): a torn output-log tail is cut and rebuilt
from the recovery replay; a missing events.bin (or a missing mark beside the snapshot) is rebuilt by a
full replay; a complete leaf that contradicts re-execution refuses to open.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
from pathlib import Path

import pytest

from bastion.audit.checkpoint import VerifierKey, open_checkpoint
from bastion.audit.layout import LayoutError, list_checkpoints, load_stored_config, outlog_mark_path
from bastion.audit.merkle import MerkleLog
from bastion.audit.outlog import OUTLOG_HEADER_SIZE, OutlogScanner, OutputLogCorruptError, decode_leaf, leaves_of
from bastion.audit.verify import verify_directory
from bastion.core.commands import Heartbeat, decode_sequenced
from bastion.core.engine import Engine
from bastion.core.instruments import venue_config_from_dict
from bastion.journal.file import FsyncPolicy, JournalReader
from bastion.journal.snapshot import list_snapshots
from bastion.venue import Venue
from tests.audit._sessions import chaos_venue, mix_venue


@pytest.fixture(scope="module")
def built(config, tmp_path_factory) -> tuple[Path, dict[str, int]]:
    directory = tmp_path_factory.mktemp("venue") / "v"
    stats = mix_venue(config, directory, seed=5, n=2_500, snapshot_every=1_200, fsync_policy=FsyncPolicy.GROUP)
    return directory, stats


def _copy(built: tuple[Path, dict[str, int]], tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(built[0], target)
    return target


def _records(directory: Path) -> list[tuple[int, int]]:
    """(offset, end) of every events.bin record."""
    image = (directory / "events.bin").read_bytes()
    return [(r.offset, r.offset + 4 + len(r.leaf)) for r in OutlogScanner(image)]


def test_directory_layout_key_config_and_checkpoints(config, built) -> None:
    """venue.toml, venue.key (0600), venue.pub and checkpoints that state exactly the venue's heads."""
    directory, stats = built
    assert load_stored_config(directory).canonical() == config.canonical()
    assert stat.S_IMODE(os.stat(directory / "venue.key").st_mode) == 0o600
    verifier = VerifierKey.parse((directory / "venue.pub").read_text().strip())
    assert verifier.name == config.name
    files = list_checkpoints(directory)
    assert len(files) >= stats["events"] // 500 - 1
    newest = open_checkpoint((directory / "checkpoint.txt").read_bytes(), verifier)
    assert files[-1][1].read_bytes() == (directory / "checkpoint.txt").read_bytes()
    # The final checkpoint (at close) covers everything: re-derive it independently.
    engine, log = Engine(config), MerkleLog()
    with JournalReader(directory / "journal.bin") as reader:
        for record in reader.records():
            item = decode_sequenced(record.payload)
            for leaf in leaves_of(item.seq, engine.apply(item)):
                log.append(leaf)
            chain = record.chain
    assert (newest.tree_size, newest.journal_seq) == (stats["events"], stats["commands"])
    assert newest.root_hash == log.root() and newest.state_hash == engine.state_hash()
    assert newest.journal_head == chain
    assert [decode_leaf(r.leaf)[:2] for r in OutlogScanner((directory / "events.bin").read_bytes())][:3] == [
        (1, 0), (2, 0), (3, 0)]


def test_reopen_keeps_the_log_and_continues_it(config, built, tmp_path) -> None:
    directory = _copy(built, tmp_path)
    with Venue.open(config, directory, checkpoint_every_events=50) as venue:
        assert venue.recovery.outlog_leaves_appended == 0 and venue.recovery.outlog_torn_tail_bytes == 0
        assert venue.outlog.size == built[1]["events"]
        seq = venue.engine.seq
        for i in range(120):
            venue.submit(Heartbeat(), timestamp_ns=10**12 + i)
        venue.submit(Heartbeat(), timestamp_ns=10**13)
        assert venue.engine.seq == seq + 121
    report = verify_directory(directory)
    assert report.status == 0, report.finding


def test_torn_output_log_tail_is_rebuilt_from_replay(config, built, tmp_path) -> None:
    """Cut events.bin in the middle of a record after the last snapshot (a crash mid-write)."""
    directory = _copy(built, tmp_path)
    records = _records(directory)
    offset, end = records[-40]
    with open(directory / "events.bin", "r+b") as handle:
        handle.truncate(offset + (end - offset) // 2)
    os.unlink(directory / "checkpoint.txt")  # the crash also came before the final checkpoint
    shutil.rmtree(directory / "checkpoints")
    with Venue.open(config, directory) as venue:
        assert venue.recovery.outlog_torn_tail_bytes == (end - offset) // 2
        assert venue.recovery.outlog_leaves_appended == 40
        assert not venue.recovery.outlog_full_replay
    assert (directory / "events.bin").read_bytes() == (built[0] / "events.bin").read_bytes()
    assert verify_directory(directory).status == 0


def test_output_log_behind_the_journal_is_completed(config, built, tmp_path) -> None:
    """events.bin ends at a record boundary short of the journal (crash between the two fsyncs)."""
    directory = _copy(built, tmp_path)
    offset, _ = _records(directory)[-7]
    with open(directory / "events.bin", "r+b") as handle:
        handle.truncate(offset)
    with Venue.open(config, directory) as venue:
        assert venue.recovery.outlog_leaves_appended == 7
    assert verify_directory(directory).status == 0


@pytest.mark.parametrize("missing", ["events.bin", "mark"])
def test_missing_output_log_or_mark_is_rebuilt_by_full_replay(config, built, tmp_path, missing: str) -> None:
    directory = _copy(built, tmp_path)
    if missing == "events.bin":
        os.unlink(directory / "events.bin")
    else:
        for snapshot in list_snapshots(directory / "snapshots"):
            os.unlink(outlog_mark_path(directory / "snapshots", int(snapshot.name[9:29])))
    with Venue.open(config, directory) as venue:
        assert venue.recovery.outlog_full_replay
        assert venue.outlog.size == built[1]["events"]
    assert (directory / "events.bin").read_bytes() == (built[0] / "events.bin").read_bytes()
    assert verify_directory(directory).status == 0


@pytest.mark.parametrize("where", ["tail", "prefix"])
def test_a_contradicting_leaf_refuses_to_open(config, built, tmp_path, where: str) -> None:
    """A complete leaf that differs from re-execution (after the snapshot) or breaks the snapshot's
    recorded root (before it) is never repaired silently."""
    directory = _copy(built, tmp_path)
    records = _records(directory)
    offset, end = records[-3] if where == "tail" else records[100]
    with open(directory / "events.bin", "r+b") as handle:
        handle.seek(end - 1)
        last = handle.read(1)
        handle.seek(end - 1)
        handle.write(bytes([last[0] ^ 0x01]))
    before = (directory / "events.bin").read_bytes()
    with pytest.raises(OutputLogCorruptError) as info:
        Venue.open(config, directory)
    assert info.value.offset == offset if where == "tail" else info.value.offset > offset
    assert (directory / "events.bin").read_bytes() == before


def test_opening_with_another_config_is_refused(config, built, tmp_path) -> None:
    directory = _copy(built, tmp_path)
    raw = {"venue": {"name": config.name}, "instrument": [{
        "instrument_id": 9, "symbol": "X-PERP", "tick_size": "1", "lot_size": "1", "reference_price": "10",
        "margin_tiers": [{"notional_max": "1000", "imf_ppm": 100000, "mmf_ppm": 50000}]}]}
    with pytest.raises(LayoutError):
        Venue.open(venue_config_from_dict(raw), directory)


def test_crash_mid_session_recovers_the_output_log(config, tmp_path) -> None:
    """Chaos session, then a simulated crash that lost the unsynced output-log group: reopen, continue,
    and the directory verifies (the chaos stream has heartbeats and rejects: commands with no event)."""
    directory = tmp_path / "v"
    chaos_venue(config, directory, seed=3, n=1_200, fsync_policy=FsyncPolicy.GROUP)
    size = (directory / "events.bin").stat().st_size
    with open(directory / "events.bin", "r+b") as handle:
        handle.truncate(size - 11)
    with Venue.open(config, directory) as venue:
        assert venue.recovery.outlog_torn_tail_bytes > 0
    report = verify_directory(directory)
    assert report.status == 0, report.finding


def test_header_length_prefix_is_what_the_scanner_reads(built) -> None:
    """events.bin starts with the 32-byte header, then u32-LE length-prefixed leaves."""
    data = (built[0] / "events.bin").read_bytes()
    (length,) = struct.unpack_from("<I", data, OUTLOG_HEADER_SIZE)
    assert decode_leaf(data[OUTLOG_HEADER_SIZE + 4 : OUTLOG_HEADER_SIZE + 4 + length])[:2] == (1, 0)


def test_unjournalable_commands_are_refused_before_the_journal(config, tmp_path) -> None:
    """A float where an int belongs encodes but never decodes: refused, nothing journaled or applied.
    Venue.submit (what clients reach) returns a typed rejection instead of raising (it raised
    CommandNotJournalableError before: a client could make the venue raise); submit_sequenced, the
    operator's replay path, still raises."""
    from bastion.core.commands import CreateAccount, Deposit, Sequenced
    from bastion.core.events import CommandRejected
    from bastion.core.rejects import RejectCode
    from bastion.venue import CommandNotJournalableError

    with Venue.open(config, tmp_path / "v") as venue:
        venue.submit(CreateAccount(1, 1), timestamp_ns=10**9)
        for bad, code in ((Deposit(1, 1.5), RejectCode.field_type_invalid),  # type: ignore[arg-type]
                          (Deposit(1, 2**70), RejectCode.field_value_out_of_range)):
            item, events = venue.submit(bad, timestamp_ns=10**9 + 1)
            assert item.seq == 0 and events == [CommandRejected("deposit", 1, 0, code)]
            with pytest.raises(CommandNotJournalableError):
                venue.submit_sequenced(Sequenced(2, 10**9 + 1, bad))
        assert venue.engine.seq == venue.writer.head.seq == 1
        venue.submit(Deposit(1, 5), timestamp_ns=10**9 + 2)
    assert verify_directory(tmp_path / "v").status == 0


def test_an_exception_in_the_session_signs_no_final_checkpoint(config, tmp_path) -> None:
    from bastion.core.commands import CreateAccount

    with pytest.raises(RuntimeError):
        with Venue.open(config, tmp_path / "v") as venue:
            venue.submit(CreateAccount(1, 1), timestamp_ns=10**9)
            raise RuntimeError("operator abort")
    assert not (tmp_path / "v" / "checkpoint.txt").exists()
    with Venue.open(config, tmp_path / "v") as venue:  # the next clean close attests it
        assert venue.outlog.size == 1
    assert verify_directory(tmp_path / "v").status == 0
