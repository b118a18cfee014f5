"""Tests of `bastion.audit.checkpoint`: C2SP signed notes, checkpoint bodies, keys and consistency.

Published vectors used:

* C2SP signed-note "Example" / reference doc §2.6: verifier key ``example.com/foo+530d903a+...``
  and its signed note "This is an example message." (verification only; the secret key is not
  published).
* golang.org/x/mod ``sumdb/note/example_test.go`` ``ExampleSign`` / ``ExampleOpen``: the
  ``PeterNeumann`` signer key is published, and Ed25519 (RFC 8032) is deterministic, so signing must
  reproduce the example note byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.audit.checkpoint import (
    EM_DASH,
    NOTE_BYTES_MAX,
    NOTE_SIGNATURES_MAX,
    Checkpoint,
    CheckpointConsistencyError,
    CheckpointError,
    CheckpointFormatError,
    ForkError,
    KeyFormatError,
    OriginMismatchError,
    RollbackError,
    SignatureError,
    UnknownKeyError,
    VenueKey,
    VerifierKey,
    check_consistent,
    format_body,
    key_id,
    open_checkpoint,
    open_note,
    parse_body,
    sign_checkpoint,
    sign_note,
)
from bastion.audit.merkle import EMPTY_ROOT, ConsistencyProofError, MerkleLog

ORIGIN = "bastion.example/log"
SEED = bytes(range(32))

# C2SP signed-note "Example" (reference doc §2.6).
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    f"{EM_DASH} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)

# golang.org/x/mod sumdb/note example_test.go (ExampleSign, ExampleOpen).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n"
    + f"{EM_DASH} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def _venue_key(name: str = ORIGIN, seed: bytes = SEED) -> VenueKey:
    return VenueKey(name, seed)


def _log(n: int, salt: bytes = b"") -> MerkleLog:
    log = MerkleLog()
    for i in range(n):
        log.append(salt + i.to_bytes(4, "big"))
    return log


def _checkpoint(
    log: MerkleLog, size: int | None = None, *, seq: int | None = None, state: bytes = b"\x11" * 32
) -> Checkpoint:
    tree_size = log.size if size is None else size
    return Checkpoint(
        origin=ORIGIN,
        tree_size=tree_size,
        root_hash=log.root(tree_size),
        state_hash=state,
        journal_seq=tree_size if seq is None else seq,
        journal_head=hashlib.sha256(b"head" + tree_size.to_bytes(8, "big")).digest(),
    )


# ---------------------------------------------------------------------------------------------
# Published vectors
# ---------------------------------------------------------------------------------------------


def test_c2sp_signed_note_example_verifies() -> None:
    """C2SP signed-note "Example" (reference doc §2.6): key ID 530d903a, the note verifies, key text round-trips.

    Source: C2SP signed-note.md §Example; key ID = SHA-256(name || 0x0A || 0x01 || pubkey)[:4].
    """
    verifier = VerifierKey.parse(SPEC_VKEY)
    assert verifier.name == "example.com/foo"
    assert verifier.key_id == bytes.fromhex("530d903a")
    assert key_id(verifier.name, verifier.public_key) == verifier.key_id
    assert verifier.encode() == SPEC_VKEY
    opened = open_note(SPEC_NOTE, [verifier])
    assert opened.text == "This is an example message.\n"
    assert opened.verified == (verifier,)
    with pytest.raises(SignatureError):
        open_note(SPEC_NOTE.replace("example message", "example massage"), [verifier])


def test_go_note_example_is_reproduced_byte_for_byte() -> None:
    """golang.org/x/mod sumdb/note ExampleSign: our signer reproduces the published note exactly.

    Source: go.googlesource.com/mod sumdb/note/example_test.go. The signer key text is
    ``PRIVATE+KEY+<name>+<hex id>+base64(0x01 || 32-byte seed)``; Ed25519 (RFC 8032) is deterministic.
    """
    parts = GO_SKEY.split("+", 4)
    material = base64.b64decode(parts[4])
    assert parts[:2] == ["PRIVATE", "KEY"] and material[0] == 0x01 and len(material) == 33
    key = VenueKey(parts[2], material[1:])
    assert key.key_id.hex() == parts[3] == "c74f20a3"
    assert key.verifier_key() == GO_VKEY
    assert sign_note(GO_TEXT, [key]) == GO_NOTE
    assert open_note(GO_NOTE, [VerifierKey.parse(GO_VKEY)]).text == GO_TEXT


def test_checkpoint_golden_note() -> None:
    """A self-derived regression vector: our checkpoint note for a fixed key and the canonical 8-leaf root.

    The expected signature is recomputed here with plain ``cryptography`` calls (independent of the
    module), and the exact text is pinned so any format drift is caught. Source: C2SP tlog-checkpoint
    "Note text", C2SP signed-note "Ed25519 signatures"; root from reference doc §2.2.
    """
    root = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
    cp = Checkpoint(ORIGIN, 8, root, b"\x11" * 32, 7, b"\x22" * 32)
    body = (
        f"{ORIGIN}\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"
        f"state {'11' * 32}\njournal 7 {'22' * 32}\n"
    )
    assert format_body(cp) == body
    private = Ed25519PrivateKey.from_private_bytes(SEED)
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    expected_id = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public).digest()[:4]
    blob = base64.b64encode(expected_id + private.sign(body.encode())).decode()
    note = sign_checkpoint(cp, _venue_key())
    assert note == f"{body}\n{EM_DASH} {ORIGIN} {blob}\n"
    assert note.endswith(
        "A8bf+6ItKnR18pGTvKf6FIt644ptD44mwKIByv/uj8wYVxYfvX69DpariPyW600uPwJOqcvRjDDx7FB3EGcQcwlOHgw=\n"
    )
    assert _venue_key().verifier_key() == "bastion.example/log+03c6dffb+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
    assert open_checkpoint(note, _venue_key().verifier_key()) == cp


# ---------------------------------------------------------------------------------------------
# Round trip and tampering
# ---------------------------------------------------------------------------------------------

_name_chars = st.characters(categories=["L", "N"]) | st.sampled_from("./-_:")
_hash = st.binary(min_size=32, max_size=32)


@st.composite
def checkpoints(draw: st.DrawFn) -> Checkpoint:
    """Arbitrary valid checkpoints whose origin is also a valid key name."""
    tree_size = draw(st.integers(0, 2**64 - 1))
    return Checkpoint(
        origin=draw(st.text(_name_chars, min_size=1, max_size=40)),
        tree_size=tree_size,
        root_hash=EMPTY_ROOT if tree_size == 0 else draw(_hash),
        state_hash=draw(_hash),
        journal_seq=draw(st.integers(0, 2**64 - 1)),
        journal_head=draw(_hash),
    )


@settings(max_examples=100, deadline=None)
@given(cp=checkpoints(), seed=_hash)
def test_round_trip(cp: Checkpoint, seed: bytes) -> None:
    """parse_body inverts format_body, and open_checkpoint inverts sign_checkpoint, for any valid checkpoint."""
    key = VenueKey(cp.origin, seed)
    assert parse_body(format_body(cp)) == cp
    note = sign_checkpoint(cp, key)
    assert open_checkpoint(note, key.verifier_key()) == cp
    assert open_checkpoint(note.encode("utf-8"), [key.verifier]) == cp


def test_every_single_byte_change_is_rejected() -> None:
    """Flipping any bit pattern (0x01, 0x20, 0x80) in any byte of a signed note -- body, blank line,
    em dash, name or signature -- makes open_checkpoint raise a CheckpointError."""
    note = sign_checkpoint(_checkpoint(_log(10)), _venue_key()).encode("utf-8")
    verifier = _venue_key().verifier
    assert open_checkpoint(note, verifier).tree_size == 10
    rejected = 0
    for position in range(len(note)):
        for mask in (0x01, 0x20, 0x80):
            tampered = bytearray(note)
            tampered[position] ^= mask
            with pytest.raises(CheckpointError):
                open_checkpoint(bytes(tampered), verifier)
            rejected += 1
    assert rejected == 3 * len(note)


def test_body_change_with_original_signature_is_a_signature_error() -> None:
    """Editing the signed text (a different tree size) keeps the key identity, so it is a SignatureError."""
    note = sign_checkpoint(_checkpoint(_log(10)), _venue_key())
    forged = note.replace(f"{ORIGIN}\n10\n", f"{ORIGIN}\n11\n", 1)
    assert forged != note
    with pytest.raises(SignatureError):
        open_checkpoint(forged, _venue_key().verifier)


def test_wrong_key_is_rejected() -> None:
    """A different key with the same name has a different key ID: its verifier finds no signature."""
    note = sign_checkpoint(_checkpoint(_log(3)), _venue_key())
    other = VenueKey(ORIGIN, b"\x07" * 32)
    assert other.key_id != _venue_key().key_id
    with pytest.raises(UnknownKeyError):
        open_checkpoint(note, other.verifier)
    with pytest.raises(UnknownKeyError):
        open_checkpoint(note, [])


def test_witness_cosignatures_are_ignored_and_bad_known_signatures_reject() -> None:
    """Unknown signatures are skipped; a known key's bad signature rejects the whole note (C2SP signed-note)."""
    log_key, witness = _venue_key(), VenueKey("witness.example/w1", b"\x09" * 32)
    body = format_body(_checkpoint(_log(4)))
    cosigned = sign_note(body, [witness, log_key])
    assert open_checkpoint(cosigned, log_key.verifier).tree_size == 4
    assert open_checkpoint(cosigned, [witness.verifier, log_key.verifier]).tree_size == 4
    with pytest.raises(UnknownKeyError):  # the witness alone is not the log
        open_checkpoint(cosigned, witness.verifier)
    witness_line = cosigned.splitlines(keepends=True)[-2]
    bad_witness = witness_line[:-6] + ("AAAA" if witness_line[-6:-2] != "AAAA" else "BBBB") + witness_line[-2:]
    broken = cosigned.replace(witness_line, bad_witness)
    with pytest.raises(SignatureError):
        open_checkpoint(broken, [witness.verifier, log_key.verifier])
    assert open_checkpoint(broken, log_key.verifier).tree_size == 4  # unknown to this verifier: ignored


def test_key_rotation_accepts_either_configured_key() -> None:
    """Several verifiers may be configured (rotation); either key's checkpoint opens."""
    old_key, new_key = _venue_key(), VenueKey(ORIGIN, b"\x05" * 32)
    cp = _checkpoint(_log(6))
    for signer in (old_key, new_key):
        assert open_checkpoint(sign_checkpoint(cp, signer), [old_key.verifier_key(), new_key.verifier_key()]) == cp


# ---------------------------------------------------------------------------------------------
# Format errors
# ---------------------------------------------------------------------------------------------


_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_CANONICAL_ROOT_B64 = base64.b64encode(b"x" * 32).decode()
# 32 bytes use 43 base64 digits, so the last digit has 2 unused bits; setting one still decodes to
# the same bytes under lenient decoders, which is exactly the malleability we refuse.
NONCANONICAL_ROOT_B64 = (
    _CANONICAL_ROOT_B64[:-2] + _B64_ALPHABET[_B64_ALPHABET.index(_CANONICAL_ROOT_B64[-2]) + 1] + "="
)
assert base64.b64decode(NONCANONICAL_ROOT_B64) == b"x" * 32 and NONCANONICAL_ROOT_B64 != _CANONICAL_ROOT_B64


@pytest.mark.parametrize(
    "text",
    [
        f"{ORIGIN}\n010\nAAAA\n",  # too few lines
        f"{ORIGIN}\n010\n{base64.b64encode(b'x' * 32).decode()}\nstate {'00' * 32}\njournal 1 {'00' * 32}\n",
        f"{ORIGIN}\n10\n{base64.b64encode(b'x' * 31).decode()}\nstate {'00' * 32}\njournal 1 {'00' * 32}\n",
        f"{ORIGIN}\n10\n{base64.b64encode(b'x' * 32).decode()}\nstate {'AB' * 32}\njournal 1 {'00' * 32}\n",
        f"{ORIGIN}\n10\n{base64.b64encode(b'x' * 32).decode()}\nstate {'00' * 32}\njournal 01 {'00' * 32}\n",
        f"{ORIGIN}\n10\n{base64.b64encode(b'x' * 32).decode()}\nstate {'00' * 32}\njournal 1 {'00' * 32}\nextra\n",
        f"{ORIGIN}\n10\n{base64.b64encode(b'x' * 32).decode()}\nstate {'00' * 32}\njournal 1 {'00' * 32}",
        f"{ORIGIN}\n{'9' * 5000}\n{base64.b64encode(b'x' * 32).decode()}\nstate {'00' * 32}\njournal 1 {'00' * 32}\n",
        f"{ORIGIN}\n18446744073709551616\n{base64.b64encode(b'x' * 32).decode()}\nstate {'00' * 32}\njournal 1 {'00' * 32}\n",
        f"{ORIGIN}\n0\n{base64.b64encode(b'x' * 32).decode()}\nstate {'00' * 32}\njournal 0 {'00' * 32}\n",
        f"\n10\n{base64.b64encode(b'x' * 32).decode()}\nstate {'00' * 32}\njournal 1 {'00' * 32}\n",
        f"{ORIGIN}\n10\n{NONCANONICAL_ROOT_B64}\nstate {'00' * 32}\njournal 1 {'00' * 32}\n",
    ],
    ids=[
        "too-few-lines", "leading-zero-size", "short-root", "uppercase-hex", "leading-zero-seq", "extra-extension",
        "no-final-newline", "huge-size", "size-2**64", "empty-tree-wrong-root", "empty-origin", "noncanonical-base64",
    ],
)
def test_malformed_bodies_are_rejected(text: str) -> None:
    """parse_body accepts only the exact format_body output shape (C2SP tlog-checkpoint "Note text")."""
    with pytest.raises(CheckpointFormatError):
        parse_body(text)


def test_malformed_notes_are_rejected() -> None:
    """Note framing errors are CheckpointFormatError (C2SP signed-note "Format")."""
    verifier = _venue_key().verifier
    good = sign_checkpoint(_checkpoint(_log(2)), _venue_key())
    body, signature_line = good.split("\n\n")
    cases = [
        good.replace("\n\n", "\n"),  # no blank line
        good.replace(EM_DASH, "-"),  # ASCII hyphen instead of em dash
        good.replace(f"{EM_DASH} {ORIGIN}", f"{EM_DASH} {ORIGIN}+x"),  # '+' in key name
        good.replace(f"{EM_DASH} ", f"{EM_DASH}  "),  # extra space
        good[:-1],  # signature block without final newline
        good.replace(ORIGIN, ORIGIN + "\t", 1),  # control character
        body + "\n\n" + signature_line * (NOTE_SIGNATURES_MAX + 1),
        body + "\n\n" + signature_line + f"{EM_DASH} w " + "A" * NOTE_BYTES_MAX + "\n",
        good.encode("utf-8")[:-3] + b"\xff\xfe\n",  # invalid UTF-8
    ]
    for case in cases:
        with pytest.raises(CheckpointFormatError):
            open_checkpoint(case, verifier)


def test_checkpoint_field_validation() -> None:
    """Checkpoint refuses wrong hash lengths, out-of-range integers and an empty tree with a non-empty root."""
    good = dict(origin=ORIGIN, tree_size=1, journal_seq=0)
    good.update(root_hash=b"\x01" * 32, state_hash=b"\x02" * 32, journal_head=b"\x03" * 32)
    assert Checkpoint(**good).tree_size == 1  # type: ignore[arg-type]
    for field, value in [
        ("root_hash", b"\x01" * 31),
        ("state_hash", b""),
        ("journal_head", "00" * 32),
        ("tree_size", -1),
        ("tree_size", 2**64),
        ("tree_size", True),
        ("journal_seq", 2**64),
        ("origin", ""),
        ("origin", "a\nb"),
    ]:
        with pytest.raises(CheckpointFormatError):
            Checkpoint(**{**good, field: value})  # type: ignore[arg-type]
    with pytest.raises(CheckpointFormatError):
        Checkpoint(**{**good, "tree_size": 0})  # type: ignore[arg-type]
    with pytest.raises(CheckpointFormatError):
        sign_checkpoint(Checkpoint(**{**good, "origin": "other.example/log"}), _venue_key())  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------


def test_key_save_load_round_trip(tmp_path: Path) -> None:
    """The seed file is exactly 32 raw bytes, mode 0600, never overwritten, and loads to the same key."""
    key = VenueKey.generate(ORIGIN)
    path = tmp_path / "log.key"
    key.save(path)
    assert path.stat().st_size == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = VenueKey.load(path, ORIGIN)
    assert loaded.verifier_key() == key.verifier_key()
    assert loaded.sign(b"m") == key.sign(b"m")
    with pytest.raises(FileExistsError):
        key.save(path)
    short = tmp_path / "short.key"
    short.write_bytes(os.urandom(31))
    with pytest.raises(KeyFormatError):
        VenueKey.load(short, ORIGIN)
    assert path.read_bytes().hex() not in repr(loaded)


def test_verifier_key_parse_errors() -> None:
    """Malformed verifier key strings are KeyFormatError: shape, base64, type byte, key ID mismatch, names."""
    name, id_hex, material = SPEC_VKEY.split("+", 2)
    raw = base64.b64decode(material)
    wrong_type = base64.b64encode(bytes([0x02]) + raw[1:]).decode()
    bad = [
        f"{name}+{id_hex}",
        f"{name}+530D903A+{material}",
        f"{name}+530d903b+{material}",
        f"{name}+{id_hex}+{material[:-1]}",
        f"{name}+{id_hex}+{wrong_type}",
        f"{name}+{id_hex}+{base64.b64encode(raw[:-1]).decode()}",
        f"+{id_hex}+{material}",
        f"exa mple+{id_hex}+{material}",
    ]
    for text in bad:
        with pytest.raises(KeyFormatError):
            VerifierKey.parse(text)
    with pytest.raises(KeyFormatError):
        VenueKey("bad name", SEED)
    with pytest.raises(KeyFormatError):
        VenueKey(ORIGIN, SEED[:31])


# ---------------------------------------------------------------------------------------------
# Consistency between checkpoints
# ---------------------------------------------------------------------------------------------


def test_check_consistent_accepts_an_honest_extension() -> None:
    """Checkpoints of one growing log are consistent via MerkleLog.consistency_proof (RFC 9162 §2.1.4.2)."""
    log = _log(40)
    for old_size, new_size in [(1, 40), (5, 12), (16, 32), (12, 12), (0, 7), (0, 0), (39, 40)]:
        old, new = _checkpoint(log, old_size), _checkpoint(log, new_size)
        proof = log.consistency_proof(old_size, new_size) if old_size else []
        assert check_consistent(old, new, proof) is None


def test_rollback_is_detected() -> None:
    """A smaller tree size or journal sequence in the newer checkpoint is a RollbackError."""
    log = _log(20)
    old, new = _checkpoint(log, 12), _checkpoint(log, 5)
    with pytest.raises(RollbackError):
        check_consistent(old, new, [])
    with pytest.raises(RollbackError):
        check_consistent(_checkpoint(log, 5, seq=9), _checkpoint(log, 12, seq=8), log.consistency_proof(5, 12))


def test_fork_is_detected() -> None:
    """Same size with a different root (a split view) is a ForkError; a diverged longer log fails its proof."""
    honest, forked = _log(20), _log(20, salt=b"evil")
    with pytest.raises(ForkError):
        check_consistent(_checkpoint(honest, 12), _checkpoint(forked, 12), [])
    with pytest.raises(ForkError):
        check_consistent(_checkpoint(honest, 12), _checkpoint(honest, 12, state=b"\x99" * 32), [])
    # A fork that diverges after leaf 3: identical first 3 leaves, different afterwards.
    diverged = MerkleLog()
    for i in range(20):
        diverged.append(i.to_bytes(4, "big") if i < 3 else b"x" + i.to_bytes(4, "big"))
    old, new = _checkpoint(honest, 5), _checkpoint(diverged, 12)
    with pytest.raises(CheckpointConsistencyError) as excinfo:
        check_consistent(old, new, diverged.consistency_proof(5, 12))
    assert isinstance(excinfo.value.__cause__, ConsistencyProofError)
    assert check_consistent(_checkpoint(honest, 3), new, diverged.consistency_proof(3, 12)) is None


def test_bad_proofs_and_origins_are_rejected() -> None:
    """Tampered proofs, non-empty proofs from the empty tree and origin changes are consistency errors."""
    log = _log(30)
    old, new = _checkpoint(log, 7), _checkpoint(log, 30)
    proof = log.consistency_proof(7, 30)
    tampered = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
    with pytest.raises(CheckpointConsistencyError):
        check_consistent(old, new, tampered)
    with pytest.raises(CheckpointConsistencyError):
        check_consistent(old, new, proof[:-1])
    with pytest.raises(CheckpointConsistencyError):
        check_consistent(_checkpoint(log, 0), new, proof)
    other = Checkpoint("other.example/log", 30, new.root_hash, new.state_hash, new.journal_seq, new.journal_head)
    with pytest.raises(OriginMismatchError):
        check_consistent(old, other, proof)
    assert check_consistent(old, new, proof) is None
