"""The audited venue directory: file names, the venue key, the stored config, checkpoint files.

A venue directory (written by :class:`bastion.venue.Venue`, read by ``bastion verify`` / ``prove``)::

    venue.toml                      the venue configuration, written at creation (TOML, round-trips)
    venue.key                       Ed25519 seed of the log-signing key (32 raw bytes, mode 0600)
    venue.pub                       its C2SP verifier key string ``<origin>+<key id>+<base64>``
    journal.bin                     input journal (bastion.journal.records)
    events.bin                      output log: every event of every command (bastion.audit.outlog)
    snapshots/snapshot-<seq>.bin    engine snapshots (bastion.journal.snapshot)
    snapshots/snapshot-<seq>.outlog output-log position at that snapshot (JSON, see OutlogMark)
    checkpoints/checkpoint-<seq>.txt  signed checkpoints, named by the journal seq they cover
    checkpoint.txt                  copy of the newest signed checkpoint

Every file here is written atomically (temp file, fsync, rename, directory fsync), so a crash leaves
the old version or the new one, never a torn one.

Errors: :class:`LayoutError` (a ``ValueError``) for files that exist but do not match what the caller
holds (another key, another config); OS errors propagate as ``OSError``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from bastion.audit.checkpoint import VenueKey, VerifierKey
from bastion.audit.merkle import HASH_SIZE
from bastion.core.instruments import VenueConfig, venue_config_from_dict
from bastion.core.risk_config import risk_config_to_toml
from bastion.journal.file import fsync_directory

__all__ = [
    "CHECKPOINT_DIR",
    "CHECKPOINT_LATEST",
    "CONFIG_NAME",
    "EVENTS_NAME",
    "JOURNAL_NAME",
    "KEY_NAME",
    "PUB_NAME",
    "SNAPSHOT_DIR",
    "LayoutError",
    "OutlogMark",
    "checkpoint_path",
    "journal_id_for",
    "checkpoint_seq",
    "list_checkpoints",
    "load_or_create_key",
    "load_stored_config",
    "outlog_mark_path",
    "read_outlog_mark",
    "store_config",
    "venue_config_to_toml",
    "write_atomic",
    "write_checkpoint",
    "write_outlog_mark",
]

JOURNAL_NAME: Final = "journal.bin"
EVENTS_NAME: Final = "events.bin"
SNAPSHOT_DIR: Final = "snapshots"
CHECKPOINT_DIR: Final = "checkpoints"
CHECKPOINT_LATEST: Final = "checkpoint.txt"
CONFIG_NAME: Final = "venue.toml"
KEY_NAME: Final = "venue.key"
PUB_NAME: Final = "venue.pub"

_CHECKPOINT_RE: Final = re.compile(r"checkpoint-(\d{20})\.txt")


class LayoutError(ValueError):
    """A file of the venue directory exists but contradicts what the caller holds."""


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically: temp file, fsync, rename, directory fsync.

    Raises:
        OSError: any step failed (the old file, if any, is left in place).
    """
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_directory(path.parent)


# ---------------------------------------------------------------------------------------------
# Key
# ---------------------------------------------------------------------------------------------


def load_or_create_key(directory: Path, origin: str) -> VenueKey:
    """Load ``venue.key`` (creating it, mode 0600, on first use) and make sure ``venue.pub`` matches.

    Args:
        directory: the venue directory.
        origin: the checkpoint origin, which is also the signed-note key name.

    Returns:
        The venue's signing key.

    Raises:
        LayoutError: ``venue.pub`` exists and names another key.
        KeyFormatError: bad origin for a key name, or a seed file that is not 32 bytes.
    """
    key_path = directory / KEY_NAME
    if not key_path.exists():
        key = VenueKey.generate(origin)
        key.save(key_path)  # O_EXCL, 0600
        fsync_directory(directory)
    key = VenueKey.load(key_path, origin)
    pub_path = directory / PUB_NAME
    text = key.verifier_key() + "\n"
    if pub_path.exists():
        if pub_path.read_text(encoding="utf-8") != text:
            raise LayoutError(f"{pub_path} does not hold the verifier key of {key_path} for origin {origin!r}")
    else:
        write_atomic(pub_path, text.encode("utf-8"))
    return key


def journal_id_for(verifier: VerifierKey) -> bytes:
    """The 16-byte journal_id a venue gives its journal at creation: bound to its log key.

    ``SHA-256("bastion.journal-id" || 0x00 || Ed25519 public key)[:16]``. The journal module asks for
    a unique id per deployment (it seeds the genesis chain value); deriving it from the key makes it
    unique and lets a verifier see that the journal was started for this log key.
    """
    return hashlib.sha256(b"bastion.journal-id\x00" + verifier.public_key).digest()[:16]


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


def _toml_str(value: str) -> str:
    """A TOML basic string (JSON escapes are a subset TOML accepts for printable BMP text)."""
    return json.dumps(value, ensure_ascii=False)


def _plain(value: Decimal) -> str:
    return _toml_str(format(value, "f"))


#: Names of the enumerated ``[instrument.integrity]`` fields, value -> TOML string (the inverse of the
#: loader's tables in bastion.core.instruments; a mismatch is caught by the round-trip check).
_INTEGRITY_CHOICES: dict[str, dict[int, str]] = {
    "band_mode": {0: "aggressive_side", 1: "both_sides"},
    "band_reference": {0: "mark", 1: "last_trade"},
    "auction_allocation": {0: "time", 1: "pro_rata"},
}


def _integrity_lines(spec: Any) -> list[str]:
    """``[instrument.integrity]`` of one instrument, or nothing when it is absent or all defaults."""
    integrity = getattr(spec, "integrity", None)
    if integrity is None or integrity == type(integrity)():
        return []
    lines = ["", "[instrument.integrity]"]
    for name in integrity.__slots__:
        value = getattr(integrity, name)
        if value is None:
            continue
        choices = _INTEGRITY_CHOICES.get(name)
        lines.append(f"{name} = {_toml_str(choices[value]) if choices else value}")
    return lines


def venue_config_to_toml(config: VenueConfig) -> str:
    """Render a validated config as TOML that :func:`load_venue_config` reads back identically.

    Covers the venue table (with ``guardian_ids`` when set), the limits, every instrument with its
    margin tiers and its ``[instrument.integrity]`` table when it is not all defaults.

    Returns:
        The TOML text; ``venue_config_from_dict(tomllib.loads(text)).canonical() == config.canonical()``
        is checked by :func:`store_config` (a config field this writer does not know fails there).
    """
    lines = [
        "# Written by the venue at creation; the engine state hash covers this configuration.",
        "[venue]",
        f"name = {_toml_str(config.name)}",
        f"settlement_asset = {_toml_str(config.settlement_asset)}",
        f"atom_decimals = {config.atom_decimals}",
    ]
    guardians = getattr(config, "guardian_ids", ())
    if guardians:
        lines.append(f"guardian_ids = [{', '.join(str(g) for g in guardians)}]")
    lines += ["", "[limits]"]
    lines += [f"{field} = {getattr(config.limits, field)}" for field in config.limits.__slots__]
    atom = Decimal(1).scaleb(-config.atom_decimals)
    for spec in sorted(config.instruments.values(), key=lambda s: s.instrument_id):
        tiers = ", ".join(
            f"{{ notional_max = {_plain(t.notional_max_atoms * atom)}, imf_ppm = {t.imf_ppm}, mmf_ppm = {t.mmf_ppm} }}"
            for t in spec.margin_tiers
        )
        lines += [
            "",
            "[[instrument]]",
            f"instrument_id = {spec.instrument_id}",
            f"symbol = {_toml_str(spec.symbol)}",
            'kind = "perpetual"',
            f"tick_size = {_plain(spec.tick_size)}",
            f"lot_size = {_plain(spec.lot_size)}",
            f"contract_multiplier = {_plain(spec.contract_multiplier)}",
            f"reference_price = {_plain(spec.reference_price_ticks * spec.tick_size)}",
            f"min_order_lots = {spec.min_order_lots}",
            f"max_order_lots = {spec.max_order_lots}",
            f"price_ticks_max = {spec.price_ticks_max}",
            f"market_protection_ppm = {spec.market_protection_ppm}",
            f"maker_fee_ppm = {spec.maker_fee_ppm}",
            f"taker_fee_ppm = {spec.taker_fee_ppm}",
            f"margin_tiers = [{tiers}]",
        ]
        lines += _integrity_lines(spec)
    if getattr(config, "risk", None) is not None:
        lines += risk_config_to_toml(config.risk)
    return "\n".join(lines) + "\n"


def load_stored_config(directory: Path) -> VenueConfig:
    """Load and validate ``venue.toml`` of a venue directory.

    Raises:
        ConfigError: missing, unreadable or invalid file (message names the field).
    """
    from bastion.config import load_venue_config

    return load_venue_config(directory / CONFIG_NAME)


def store_config(directory: Path, config: VenueConfig, source: Path | None = None) -> None:
    """Write ``venue.toml`` if absent; if present it must describe ``config``.

    Args:
        directory: the venue directory.
        config: the configuration the venue runs with.
        source: the TOML file ``config`` was loaded from; copied verbatim when given (it must load to
            ``config``), otherwise the file is generated by :func:`venue_config_to_toml`.

    Raises:
        LayoutError: the stored config differs from ``config``, ``source`` does not describe it, or
            the generated text does not round-trip (a config field the writer does not know: pass
            ``source``).
        ConfigError: the stored or source file is invalid.
    """
    import tomllib

    path = directory / CONFIG_NAME
    if path.exists():
        if load_stored_config(directory).canonical() != config.canonical():
            raise LayoutError(f"{path} describes another venue configuration than the one given")
        return
    if source is not None:
        from bastion.config import load_venue_config

        if load_venue_config(source).canonical() != config.canonical():
            raise LayoutError(f"{source} does not describe the venue configuration given")
        write_atomic(path, Path(source).read_bytes())
        return
    text = venue_config_to_toml(config)
    if venue_config_from_dict(tomllib.loads(text)).canonical() != config.canonical():
        raise LayoutError("the venue configuration does not round-trip through the generated TOML; "
                          "open the venue with config_path= the TOML file it was loaded from")
    write_atomic(path, text.encode("utf-8"))


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def checkpoint_path(directory: Path, journal_seq: int) -> Path:
    """``checkpoints/checkpoint-<journal seq, 20 digits>.txt``."""
    assert 0 <= journal_seq < 10**20
    return directory / CHECKPOINT_DIR / f"checkpoint-{journal_seq:020d}.txt"


def checkpoint_seq(path: Path) -> int | None:
    """The journal seq in a checkpoint file name, or None for any other name."""
    match = _CHECKPOINT_RE.fullmatch(path.name)
    return None if match is None else int(match.group(1))


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """Checkpoint files as (journal seq from the name, path), oldest first; [] without the folder."""
    folder = directory / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(seq, p) for p in folder.iterdir() if (seq := checkpoint_seq(p)) is not None and p.is_file()]
    return sorted(found)


def write_checkpoint(directory: Path, journal_seq: int, note: str) -> Path:
    """Write a signed checkpoint note under ``checkpoints/`` and as ``checkpoint.txt`` (both atomic).

    Raises:
        OSError: the files could not be written.
    """
    path = checkpoint_path(directory, journal_seq)
    path.parent.mkdir(exist_ok=True)
    data = note.encode("utf-8")
    write_atomic(path, data)
    write_atomic(directory / CHECKPOINT_LATEST, data)
    return path


# ---------------------------------------------------------------------------------------------
# Output-log marks beside snapshots
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutlogMark:
    """Where the output log stood when the snapshot of journal seq ``seq`` was taken.

    Attributes:
        seq: journal seq of the snapshot.
        tree_size: leaves of the output log produced by seqs 1..seq.
        root: RFC 6962 root of those leaves (32 bytes).
        offset: byte offset in ``events.bin`` just past leaf ``tree_size - 1``.
    """

    seq: int
    tree_size: int
    root: bytes
    offset: int


def outlog_mark_path(snapshot_dir: Path, seq: int) -> Path:
    """``snapshots/snapshot-<seq, 20 digits>.outlog`` (ignored by the snapshot loader's name pattern)."""
    return snapshot_dir / f"snapshot-{seq:020d}.outlog"


def write_outlog_mark(snapshot_dir: Path, mark: OutlogMark) -> Path:
    """Write the mark as one JSON object (atomic). Write it *before* its snapshot file."""
    snapshot_dir.mkdir(parents=True, exist_ok=True)
    path = outlog_mark_path(snapshot_dir, mark.seq)
    body = {"seq": mark.seq, "tree_size": mark.tree_size, "root": mark.root.hex(), "offset": mark.offset}
    write_atomic(path, (json.dumps(body, sort_keys=True) + "\n").encode("ascii"))
    return path


def read_outlog_mark(snapshot_dir: Path, seq: int) -> OutlogMark | None:
    """The mark written with the snapshot of ``seq``, or None if absent or malformed."""
    path = outlog_mark_path(snapshot_dir, seq)
    try:
        raw = json.loads(path.read_text(encoding="ascii"))
        mark = OutlogMark(int(raw["seq"]), int(raw["tree_size"]), bytes.fromhex(raw["root"]), int(raw["offset"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if mark.seq != seq or len(mark.root) != HASH_SIZE or mark.tree_size < 0 or mark.offset < 0:
        return None
    return mark
