"""``bastion recover DIR``: the operator's way to reopen a venue directory and, when the journal's final
record is complete but corrupt (JournalTailCorruptError, never cut silently), to cut it explicitly."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from bastion.cli import app
from bastion.core.commands import CreateAccount, Deposit, PlaceOrder, Sequenced, encode_sequenced
from bastion.core.instruments import VenueConfig
from bastion.journal.file import JournalWriter
from bastion.venue import Venue

COMMANDS = 40


def _venue(config: VenueConfig, directory: Path, *, journal_only_last: bool) -> list[str]:
    """A venue directory with COMMANDS journaled commands; the state hash after each (hex, index seq - 1).

    ``journal_only_last``: the last command reaches the journal (committed, fsynced) but not the output
    log or a checkpoint, as after a crash between the two commits; otherwise the venue closes normally
    and signs a final checkpoint over everything.
    """
    hashes = []
    venue = Venue.open(config, directory, checkpoint_every_events=10**9)
    price = config.instruments[1].reference_price_ticks
    commands = [CreateAccount(1, 1), Deposit(1, 10**12)]
    commands += [PlaceOrder(1, 1, i + 1, 1, price - 10 - i, 1) for i in range(COMMANDS - 2)]
    last = commands.pop() if journal_only_last else None
    for i, command in enumerate(commands):
        venue.submit(command, 1_000 * (i + 1))
        hashes.append(venue.engine.state_hash().hex())
    venue.close()
    if last is not None:
        item = Sequenced(COMMANDS, 1_000 * COMMANDS, last)
        reopened = Venue.open(config, directory)
        engine = reopened.engine  # the state the venue recovers to
        reopened.close(final_checkpoint=False)
        engine.apply(item)
        hashes.append(engine.state_hash().hex())
        with JournalWriter.open(directory / "journal.bin") as writer:
            writer.append(encode_sequenced(item))
            writer.commit()
    return hashes


def _recover(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["recover", *args])
    return result.exit_code, result.output


def test_recover_reports_a_clean_directory(config: VenueConfig, tmp_path: Path) -> None:
    hashes = _venue(config, tmp_path / "v", journal_only_last=False)
    code, out = _recover(str(tmp_path / "v"))
    assert code == 0, out
    summary = json.loads(out[out.index("{"):])
    assert summary["last_seq"] == COMMANDS and summary["state_hash"] == hashes[-1]
    assert summary["journal_tail_bytes_cut"] == 0 and not summary["tail_repaired"]


def test_recover_rederives_the_output_of_a_journaled_but_unlogged_command(config: VenueConfig,
                                                                         tmp_path: Path) -> None:
    hashes = _venue(config, tmp_path / "v", journal_only_last=True)
    code, out = _recover(str(tmp_path / "v"))
    assert code == 0, out
    summary = json.loads(out[out.index("{"):])
    assert summary["last_seq"] == COMMANDS and summary["state_hash"] == hashes[-1]
    assert summary["outlog_leaves_appended"] > 0 and summary["journal_tail_bytes_cut"] == 0


def test_a_torn_tail_is_cut_on_recovery(config: VenueConfig, tmp_path: Path) -> None:
    hashes = _venue(config, tmp_path / "v", journal_only_last=True)
    journal = tmp_path / "v" / "journal.bin"
    size = journal.stat().st_size
    with journal.open("r+b") as handle:
        handle.truncate(size - 3)  # a crash mid-append: the last record is short
    code, out = _recover(str(tmp_path / "v"))
    assert code == 0, out
    summary = json.loads(out[out.index("{"):])
    assert summary["last_seq"] == COMMANDS - 1 and summary["state_hash"] == hashes[-2]
    assert summary["journal_tail_bytes_cut"] > 0 and not summary["tail_repaired"]


def test_a_complete_corrupt_tail_needs_the_operator(config: VenueConfig, tmp_path: Path) -> None:
    hashes = _venue(config, tmp_path / "v", journal_only_last=True)
    journal = tmp_path / "v" / "journal.bin"
    data = bytearray(journal.read_bytes())
    data[-1] ^= 0x01  # the final record is complete but its payload no longer matches
    journal.write_bytes(bytes(data))
    code, out = _recover(str(tmp_path / "v"))
    assert code == 1 and "--repair-tail" in out and f"seq {COMMANDS}" in out, out
    assert journal.read_bytes() == bytes(data)  # refused: nothing cut
    code, out = _recover(str(tmp_path / "v"), "--repair-tail")
    assert code == 0, out
    summary = json.loads(out[out.index("{"):])
    assert summary["last_seq"] == COMMANDS - 1 and summary["state_hash"] == hashes[-2]
    assert summary["tail_repaired"] and summary["journal_tail_bytes_cut"] > 0
    code, out = _recover(str(tmp_path / "v"))  # the repaired directory now opens cleanly
    assert code == 0 and json.loads(out[out.index("{"):])["last_seq"] == COMMANDS - 1, out


def test_a_signed_checkpoint_over_the_corrupt_record_refuses_the_cut(config: VenueConfig, tmp_path: Path) -> None:
    _venue(config, tmp_path / "v", journal_only_last=False)  # the final checkpoint covers seq COMMANDS
    journal = tmp_path / "v" / "journal.bin"
    data = bytearray(journal.read_bytes())
    data[-1] ^= 0x01
    journal.write_bytes(bytes(data))
    code, out = _recover(str(tmp_path / "v"), "--repair-tail")
    assert code == 1 and "checkpoint" in out, out


def test_not_a_venue_directory(tmp_path: Path) -> None:
    code, out = _recover(str(tmp_path))
    assert code == 2 and "journal.bin" in out
