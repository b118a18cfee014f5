"""A damaged *complete* final journal record stops ``Venue.open`` with a typed error naming the offset;
only an explicit ``repair_journal_tail=True`` cuts it, and the output log and signed checkpoints still
catch a cut record that had been acknowledged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion.audit.layout import LayoutError
from bastion.audit.outlog import OutputLogCorruptError
from bastion.core.commands import CreateAccount, Deposit
from bastion.journal.errors import JournalTailCorruptError
from bastion.journal.file import FsyncPolicy
from bastion.venue import Venue


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def test_damaged_last_record_refuses_to_open_until_repaired(config, tmp_path: Path) -> None:
    """The deposit (seq 2) reaches the journal (fsynced) but not the output log: the process dies before
    committing its events. A flipped byte in that complete record is not a torn write: refused; the
    repair cuts it, and the venue reopens at seq 1."""
    directory = tmp_path / "v"
    venue = Venue.open(config, directory, fsync_policy=FsyncPolicy.ALWAYS)
    venue.submit(CreateAccount(1, 1), timestamp_ns=10**9)
    venue.commit()
    size_after_first = (directory / "journal.bin").stat().st_size
    venue.submit(Deposit(1, 5), timestamp_ns=10**9 + 1)
    venue.writer.commit()  # journal durable; output log not: then the process is "killed"
    venue.writer.close()
    os.close(venue.outlog._fd)  # die without committing the buffered events
    _flip_last_byte(directory / "journal.bin")
    with pytest.raises(JournalTailCorruptError) as info:
        Venue.open(config, directory)
    assert (info.value.seq, info.value.offset) == (2, size_after_first)
    assert f"offset {size_after_first}" in str(info.value)
    repaired = Venue.open(config, directory, repair_journal_tail=True)
    try:
        assert repaired.engine.seq == 1
        assert repaired.recovery.torn_tail_bytes > 0
    finally:
        repaired.close()
    assert (directory / "journal.bin").stat().st_size == size_after_first


@pytest.mark.parametrize("signed", [True, False], ids=["checkpoint", "output-log"])
def test_repair_cannot_hide_an_acknowledged_record(config, tmp_path: Path, signed: bool) -> None:
    """When the damaged record was acknowledged (its events committed, and a signed checkpoint covering
    it when ``signed``), the venue refuses to open even with the repair flag rather than lose it."""
    directory = tmp_path / "v"
    venue = Venue.open(config, directory)
    venue.submit(CreateAccount(1, 1), timestamp_ns=10**9)
    venue.submit(Deposit(1, 5), timestamp_ns=10**9 + 1)
    venue.close(final_checkpoint=signed)
    _flip_last_byte(directory / "journal.bin")
    with pytest.raises(JournalTailCorruptError):
        Venue.open(config, directory)
    expected = LayoutError if signed else OutputLogCorruptError
    with pytest.raises(expected, match="lost acknowledged records" if signed else "journal lost records"):
        Venue.open(config, directory, repair_journal_tail=True)
