"""Tampering with any file of a venue directory makes ``bastion verify`` exit 1 and name the place.

The directories come from seeded randomized sessions journaled through the Venue: the exchange-core
mix (every command produces events, so the final checkpoint covers the whole journal) and the chaos
stream (every command type, valid and invalid, heartbeats, rejections). On a small directory (40
commands, two fills, two checkpoints, a snapshot) *every* byte of every file the verifier reads or
checks is flipped in turn (about 9,000 runs of ``bastion verify``, ~20 s); on the larger sessions the
flips are sampled with a seeded RNG; a failure message carries the seed and the offset.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bastion.audit.checkpoint import VenueKey, open_checkpoint, parse_body, sign_checkpoint
from bastion.audit.commands import register
from bastion.audit.layout import list_checkpoints
from bastion.audit.outlog import OutlogScanner
from bastion.audit.verify import EXIT_CANNOT_RUN, EXIT_DIVERGENCE, EXIT_OK, VerifyReport, verify_directory
from bastion.journal.file import JournalReader
from tests.audit._sessions import chaos_venue, mix_venue

SEED = 20261122
FLIPS = 36


@pytest.fixture(scope="module")
def mix_dir(config, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("mix") / "venue"
    mix_venue(config, directory, seed=11, n=1_500, accounts=100, resting=100, checkpoint_every_events=300,
              snapshot_every=700)
    assert verify_directory(directory).status == EXIT_OK
    return directory


@pytest.fixture(scope="module")
def chaos_dir(config, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("chaos") / "venue"
    chaos_venue(config, directory, seed=5, n=1_500)
    assert verify_directory(directory).status == EXIT_OK
    return directory


@pytest.fixture(scope="module")
def tiny_dir(config, tmp_path_factory) -> Path:
    """40 commands (seed 0 gives two fills), a checkpoint every 20 events, a snapshot at seq 24."""
    directory = tmp_path_factory.mktemp("tiny") / "venue"
    mix_venue(config, directory, seed=0, n=30, accounts=3, resting=4, checkpoint_every_events=20, commit_every=8,
              snapshot_every=24)
    report = verify_directory(directory)
    assert report.status == EXIT_OK and report.fills == 2 and report.snapshots == 1 and report.checkpoints >= 2
    return directory


@pytest.fixture
def work(mix_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "venue"
    shutil.copytree(mix_dir, target)
    return target


def _caught(directory: Path, file: str, **kwargs: object) -> VerifyReport:
    report = verify_directory(directory, **kwargs)  # type: ignore[arg-type]
    assert report.status == EXIT_DIVERGENCE, f"not caught: {report}"
    assert report.finding is not None and report.finding.file == file, report.finding
    return report


def _journal_records(path: Path) -> list[tuple[int, int]]:
    with JournalReader(path) as reader:
        return [(r.offset, r.end_offset) for r in reader.records()]


def _event_records(path: Path) -> list[tuple[int, int]]:
    return [(r.offset, r.offset + 4 + len(r.leaf)) for r in OutlogScanner(path.read_bytes())]


def _record_at(records: list[tuple[int, int]], offset: int, header: int) -> int:
    """Start of the record holding ``offset`` (0 inside the file header)."""
    if offset < header:
        return 0
    return next(start for start, end in records if start <= offset < end)


def _flip_each(directory: Path, name: str, offsets: list[int], check: Callable[[int, VerifyReport], None]) -> None:
    path = directory / name
    original = path.read_bytes()
    for offset in offsets:
        data = bytearray(original)
        data[offset] ^= 0x01 << (offset % 8)
        path.write_bytes(bytes(data))
        report = verify_directory(directory)
        assert report.status == EXIT_DIVERGENCE, f"seed {SEED}: flip of {name} byte {offset} not caught"
        check(offset, report)
    path.write_bytes(original)


def _sample(size: int, header: int, rng: random.Random) -> list[int]:
    picks = rng.sample(range(header, size), FLIPS) + rng.sample(range(header), 4) + [size - 1]
    return sorted(set(picks))


# ---------------------------------------------------------------------------------------------
# Clean sessions
# ---------------------------------------------------------------------------------------------


def test_clean_long_sessions_verify(config, tmp_path) -> None:
    """A 15,000-command mix over 1,000 accounts and three chaos streams (the last with the full
    invariant check after every command) verify with exit 0."""
    mix = tmp_path / "mix"
    stats = mix_venue(config, mix, seed=3, n=15_000, accounts=1_000, resting=1_000, checkpoint_every_events=4_000)
    report = verify_directory(mix)
    assert report.status == EXIT_OK, report.finding
    assert (report.commands, report.events) == (stats["commands"], stats["events"])
    assert report.fills > 500 and report.checkpoints >= 4 and not report.warnings
    for seed in (1, 2, 3):
        chaos = tmp_path / f"chaos{seed}"
        chaos_venue(config, chaos, seed=seed, n=1_500)
        report = verify_directory(chaos, invariants_every=1 if seed == 3 else 100)
        assert report.status == EXIT_OK, f"seed {seed}: {report.finding}"
        assert report.invariant_checks >= (report.commands if seed == 3 else report.commands // 100)


# ---------------------------------------------------------------------------------------------
# Byte flips
# ---------------------------------------------------------------------------------------------


def test_any_flipped_journal_byte_is_caught(work: Path) -> None:
    records = _journal_records(work / "journal.bin")
    size = (work / "journal.bin").stat().st_size

    def check(offset: int, report: VerifyReport) -> None:
        assert report.finding is not None and report.finding.file == "journal.bin", (offset, report.finding)
        assert report.finding.offset == _record_at(records, offset, 88), (offset, report.finding)

    _flip_each(work, "journal.bin", _sample(size, 88, random.Random(SEED)), check)


def test_any_flipped_output_log_byte_is_caught(work: Path) -> None:
    records = _event_records(work / "events.bin")
    size = (work / "events.bin").stat().st_size

    def check(offset: int, report: VerifyReport) -> None:
        finding = report.finding
        assert finding is not None and finding.file == "events.bin", (offset, finding)
        if offset < 32:  # header: magic/version fields name offset 0, the journal id offset 16
            assert finding.offset == (16 if offset >= 16 else 0), (offset, finding)
        else:
            assert finding.offset == _record_at(records, offset, 32), (offset, finding)
            if finding.seq:  # a divergence in re-execution: what was verified before it is counted
                assert report.commands == finding.seq - 1, (offset, finding, report.commands)

    _flip_each(work, "events.bin", _sample(size, 32, random.Random(SEED + 1)), check)


def test_any_flipped_checkpoint_byte_is_caught(work: Path) -> None:
    rng = random.Random(SEED + 2)
    files = [p for _, p in list_checkpoints(work)]
    for path in [files[0], files[len(files) // 2], files[-1], work / "checkpoint.txt"]:
        name = path.relative_to(work).as_posix()
        size = path.stat().st_size

        def check(offset: int, report: VerifyReport, name: str = name) -> None:
            assert report.finding is not None and report.finding.file == name, (name, offset, report.finding)

        _flip_each(work, name, sorted(rng.sample(range(size), 12)), check)


@pytest.fixture
def tiny(tiny_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "tiny"
    shutil.copytree(tiny_dir, target)
    return target


def test_every_flipped_byte_of_a_small_journal_is_caught(tiny: Path) -> None:
    records = _journal_records(tiny / "journal.bin")
    size = (tiny / "journal.bin").stat().st_size

    def check(offset: int, report: VerifyReport) -> None:
        assert report.finding is not None and report.finding.file == "journal.bin", (offset, report.finding)
        assert report.finding.offset == _record_at(records, offset, 88), (offset, report.finding)

    _flip_each(tiny, "journal.bin", list(range(size)), check)


def test_every_flipped_byte_of_a_small_output_log_is_caught(tiny: Path) -> None:
    records = _event_records(tiny / "events.bin")
    size = (tiny / "events.bin").stat().st_size

    def check(offset: int, report: VerifyReport) -> None:
        finding = report.finding
        assert finding is not None and finding.file == "events.bin", (offset, finding)
        if offset < 32:
            assert finding.offset == (16 if offset >= 16 else 0), (offset, finding)
        else:
            assert finding.offset == _record_at(records, offset, 32), (offset, finding)

    _flip_each(tiny, "events.bin", list(range(size)), check)


def test_every_flipped_byte_of_the_checkpoints_and_the_snapshot_is_caught(tiny: Path) -> None:
    """Signed checkpoints, checkpoint.txt, the snapshot (state, hash, chain head, header, checksum) and
    its output-log mark: each byte flipped is named in its own file."""
    names = [p.relative_to(tiny).as_posix() for _, p in list_checkpoints(tiny)] + ["checkpoint.txt"]
    names += sorted(p.relative_to(tiny).as_posix() for p in (tiny / "snapshots").iterdir())
    assert any(n.endswith(".bin") for n in names) and any(n.endswith(".outlog") for n in names)
    for name in names:
        size = (tiny / name).stat().st_size

        def check(offset: int, report: VerifyReport, name: str = name) -> None:
            assert report.finding is not None and report.finding.file == name, (name, offset, report.finding)

        _flip_each(tiny, name, list(range(size)), check)


def test_a_snapshot_resealed_with_other_state_is_caught(tiny: Path) -> None:
    """The snapshot checksum is not a signature: a snapshot rewritten with another state (or state hash, or
    chain head) and a fresh checksum loads, and is caught against the re-executed state."""
    from bastion.journal.snapshot import list_snapshots, load_snapshot, write_snapshot

    path = list_snapshots(tiny / "snapshots")[0]
    snap = load_snapshot(path)
    original = path.read_bytes()
    altered = bytearray(snap.state_bytes)
    altered[-3] ^= 0x01
    cases = [(bytes(altered), snap.state_hash, snap.chain_head, "state bytes differ"),
             (snap.state_bytes, bytes(32), snap.chain_head, "state hash differs"),
             (snap.state_bytes, snap.state_hash, bytes(32), "chain head differs")]
    for state, state_hash, chain, reason in cases:
        write_snapshot(path.parent, snap.seq, chain, state, state_hash)
        report = _caught(tiny, f"snapshots/{path.name}")
        assert reason in report.finding.reason and report.finding.seq == snap.seq  # type: ignore[union-attr]
        path.write_bytes(original)
    assert verify_directory(tiny).status == EXIT_OK


def test_a_forged_snapshot_or_mark_is_caught(tiny: Path) -> None:
    """A snapshot for a seq the journal never reaches, and a mark that lies about the output log."""
    import json

    from bastion.journal.snapshot import list_snapshots, load_snapshot, write_snapshot

    path = list_snapshots(tiny / "snapshots")[0]
    snap = load_snapshot(path)
    forged = write_snapshot(path.parent, 10**6, snap.chain_head, snap.state_bytes, snap.state_hash)
    report = _caught(tiny, f"snapshots/{forged.name}")
    assert "journal ends at seq" in report.finding.reason  # type: ignore[union-attr]
    forged.unlink()
    mark_path = path.with_suffix(".outlog")
    original = mark_path.read_text()
    body = json.loads(original)
    body["tree_size"] -= 1
    mark_path.write_text(json.dumps(body, sort_keys=True) + "\n")
    report = _caught(tiny, f"snapshots/{mark_path.name}")
    assert "differs from the re-derived log" in report.finding.reason  # type: ignore[union-attr]
    mark_path.write_text(original.replace(": ", ":  ", 1))  # same values, not the venue's bytes
    _caught(tiny, f"snapshots/{mark_path.name}")
    mark_path.write_text(original)
    path.unlink()  # a deleted snapshot only costs the venue a longer recovery: nothing to report
    mark_path.unlink()
    assert verify_directory(tiny).status == EXIT_OK


def test_flips_in_a_chaos_session_are_caught(chaos_dir: Path, tmp_path: Path) -> None:
    work = tmp_path / "venue"
    shutil.copytree(chaos_dir, work)
    rng = random.Random(SEED + 3)
    for name, header in (("journal.bin", 88), ("events.bin", 32)):
        size = (work / name).stat().st_size
        offsets = sorted(rng.sample(range(header, size), 12))
        _flip_each(work, name, offsets, lambda offset, report, name=name: None if report.finding.file == name
                   else pytest.fail(f"{name} byte {offset}: {report.finding}"))


# ---------------------------------------------------------------------------------------------
# Records deleted, duplicated, reordered
# ---------------------------------------------------------------------------------------------


def _splice(path: Path, records: list[tuple[int, int]], how: str, i: int) -> int:
    """Delete, duplicate or swap (with the next) record ``i``; return the offset where the file first differs."""
    data = path.read_bytes()
    start, end = records[i]
    record = data[start:end]
    if how == "delete":
        data = data[:start] + data[end:]
    elif how == "duplicate":
        data = data[:end] + record + data[end:]
    else:
        _, end2 = records[i + 1]
        data = data[:start] + data[end:end2] + record + data[end2:]
    path.write_bytes(data)
    return start if how != "duplicate" else end


@pytest.mark.parametrize("how", ["delete", "duplicate", "swap"])
@pytest.mark.parametrize("name", ["journal.bin", "events.bin"])
def test_records_deleted_duplicated_or_reordered_are_caught(work: Path, name: str, how: str) -> None:
    path = work / name
    records = _journal_records(path) if name == "journal.bin" else _event_records(path)
    for i in (3, len(records) // 2):
        original = path.read_bytes()
        at = _splice(path, records, how, i)
        report = _caught(work, name)
        assert report.finding is not None and report.finding.offset == at, (how, i, report.finding)
        path.write_bytes(original)


@pytest.mark.parametrize("name", ["journal.bin", "events.bin"])
def test_a_truncated_or_extended_tail_is_caught(work: Path, name: str) -> None:
    path = work / name
    records = _journal_records(path) if name == "journal.bin" else _event_records(path)
    original = path.read_bytes()
    start, end = records[-1]
    path.write_bytes(original[:start])  # the last record deleted cleanly
    newest = f"checkpoints/{list_checkpoints(work)[-1][1].name}"
    report = _caught(work, newest if name == "journal.bin" else name)
    assert report.finding is not None
    if name == "journal.bin":  # the newest checkpoint names a journal seq that no longer exists
        assert "journal ends at seq" in report.finding.reason
    path.write_bytes(original + original[start:end])  # the last record appended twice
    _caught(work, name)


# ---------------------------------------------------------------------------------------------
# Checkpoints: forged, lying, rolled back
# ---------------------------------------------------------------------------------------------


def test_a_checkpoint_resigned_with_another_key_is_caught(work: Path) -> None:
    files = [p for _, p in list_checkpoints(work)]
    target = files[len(files) // 2]
    note = target.read_text(encoding="utf-8")
    cp = parse_body(note[: note.rindex("\n\n") + 1])
    forged = sign_checkpoint(cp, VenueKey.generate(cp.origin))  # same name, another key
    target.write_text(forged, encoding="utf-8")
    report = _caught(work, target.relative_to(work).as_posix())
    assert "UnknownKeyError" in report.finding.reason  # type: ignore[union-attr]


def test_a_lying_checkpoint_signed_with_the_venue_key_is_caught(work: Path, config) -> None:
    """The venue's own key signs a checkpoint whose state hash / root / journal head is false."""
    key = VenueKey.load(work / "venue.key", config.name)
    files = [p for _, p in list_checkpoints(work)]
    target = files[1]
    honest = open_checkpoint(target.read_bytes(), key.verifier)
    for field, what in (("state_hash", "state hash"), ("root_hash", "root"), ("journal_head", "journal head")):
        lie = honest.__class__(**{**{f: getattr(honest, f) for f in honest.__slots__}, field: b"\x07" * 32})
        target.write_text(sign_checkpoint(lie, key), encoding="utf-8")
        report = _caught(work, target.relative_to(work).as_posix())
        assert what in report.finding.reason and report.finding.seq == honest.journal_seq  # type: ignore[union-attr]


def test_rollback_to_an_older_checkpoint_is_caught(work: Path) -> None:
    files = [p for _, p in list_checkpoints(work)]
    newest_note = files[-1].read_bytes()
    latest = work / "checkpoint.txt"
    # 1. checkpoint.txt replaced by an older checkpoint.
    latest.write_bytes(files[-3].read_bytes())
    report = _caught(work, "checkpoint.txt")
    assert "rolled back" in report.finding.reason  # type: ignore[union-attr]
    # 2. the newest checkpoint file deleted (checkpoint.txt still names it).
    latest.write_bytes(newest_note)
    files[-1].unlink()
    report = _caught(work, "checkpoint.txt")
    assert "deleted" in report.finding.reason  # type: ignore[union-attr]
    # 3. a consistent rollback of both: only a checkpoint the auditor saw earlier exposes it.
    latest.write_bytes(files[-2].read_bytes())
    relaxed = verify_directory(work)
    assert relaxed.status == EXIT_OK and relaxed.warnings  # events after the newest checkpoint: unsigned
    report = _caught(work, "checkpoint.txt", trusted_checkpoints=[newest_note])
    assert "rollback" in report.finding.reason  # type: ignore[union-attr]


def test_a_pinned_key_rejects_a_wholesale_resigning(work: Path, config) -> None:
    """Replace venue.key/venue.pub and re-sign every checkpoint: only a pinned key catches it."""
    pinned = (work / "venue.pub").read_text().strip()
    key = VenueKey.load(work / "venue.key", config.name)
    impostor = VenueKey.generate(config.name)
    for path in [p for _, p in list_checkpoints(work)] + [work / "checkpoint.txt"]:
        cp = open_checkpoint(path.read_bytes(), key.verifier)
        path.write_text(sign_checkpoint(cp, impostor), encoding="utf-8")
    (work / "venue.pub").write_text(impostor.verifier_key() + "\n")
    assert verify_directory(work).status == EXIT_OK
    _caught(work, f"checkpoints/{list_checkpoints(work)[0][1].name}", key=pinned)


def test_altered_config_is_caught(work: Path) -> None:
    """venue.toml with another taker fee: the re-derived fills and state hashes no longer match."""
    path = work / "venue.toml"
    path.write_text(path.read_text().replace("taker_fee_ppm = 500", "taker_fee_ppm = 400", 1))
    report = verify_directory(work)
    assert report.status == EXIT_DIVERGENCE and report.finding is not None
    assert report.finding.file in ("events.bin", "checkpoints/" + list_checkpoints(work)[0][1].name)


def test_a_matching_engine_that_breaks_time_priority_is_caught(mix_dir: Path, monkeypatch) -> None:
    """The venue's fills are re-derived on the reference book: a book with another priority rule
    (here last-in-first-out within a price) disagrees with the recorded fills."""
    from bastion.core.book import reference

    original = reference.ReferenceBook._sorted_opposite

    def lifo(self, taker):  # type: ignore[no-untyped-def]
        return sorted(original(self, taker), key=lambda o: (o.price_ticks * taker.side, -o.priority))

    monkeypatch.setattr(reference.ReferenceBook, "_sorted_opposite", lifo)
    report = _caught(mix_dir, "events.bin")
    assert "TradeExecuted" in report.finding.reason or "OrderAccepted" in report.finding.reason  # type: ignore[union-attr]


@pytest.mark.parametrize("missing", ["events.bin", "journal.bin", "venue.toml", "venue.pub"])
def test_missing_inputs_cannot_run(work: Path, missing: str) -> None:
    (work / missing).unlink()
    report = verify_directory(work)
    assert report.status == EXIT_CANNOT_RUN and report.finding is not None and report.finding.file == missing


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        """Test app."""

    return app


def test_cli_exit_codes_and_messages(work: Path) -> None:
    runner, app = CliRunner(), _app()
    ok = runner.invoke(app, ["verify", str(work), "--key", str(work / "venue.pub")])
    assert ok.exit_code == 0 and ok.stdout.startswith("OK"), ok.output
    records = _event_records(work / "events.bin")
    start, _ = records[500]
    data = bytearray((work / "events.bin").read_bytes())
    data[start + 20] ^= 0xFF
    (work / "events.bin").write_bytes(bytes(data))
    bad = runner.invoke(app, ["verify", str(work)])
    assert bad.exit_code == 1 and f"events.bin offset {start}" in bad.stdout, bad.output
    as_json = runner.invoke(app, ["verify", str(work), "--json"])
    assert as_json.exit_code == 1 and '"offset": %d' % start in as_json.stdout
    missing = runner.invoke(app, ["verify", str(work / "nope")])
    assert missing.exit_code == 2 and "CANNOT VERIFY" in missing.stdout
