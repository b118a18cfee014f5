"""Signed checkpoints of the audit log: C2SP tlog-checkpoint bodies in C2SP signed notes (Ed25519).

A checkpoint commits the venue to the Merkle root of its transparency log at one tree size, plus
two extension lines binding the engine state and the journal to that root. Its note text is::

    <origin>\\n
    <tree size, decimal, no leading zeros>\\n
    <root hash, standard base64 with padding>\\n
    state <state hash, 64 lowercase hex digits>\\n
    journal <journal seq, decimal> <journal head hash, 64 lowercase hex digits>\\n

and the signed note appends a blank line and one signature line per signer::

    \\n
    — <key name> <base64(4-byte key ID || 64-byte Ed25519 signature)>\\n

(the first character is the em dash U+2014). The two extension lines are Bastion's own:

* ``state``: the engine's state hash after applying every journal record the checkpoint covers;
* ``journal``: the sequence number of the newest journal record covered and the journal's
  hash-chain head after that record.

Both hashes are 32 bytes (SHA-256); their exact definitions belong to the engine and journal
modules. C2SP notes that extension lines are not auditable by log monitors; here they are
auditable by re-execution: replaying the journal prefix must reproduce both hashes.

Sources:

* C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint), "Note text" and "Signatures".
* C2SP signed-note (https://c2sp.org/signed-note), "Format", "Signatures", "Ed25519 signatures":
  key ID = first 4 bytes of ``SHA-256(key name || 0x0A || 0x01 || 32-byte public key)``;
  verifier key text ``<name>+<hex key ID>+<base64(0x01 || public key)>``.

Verification rules (signed-note "Signatures"): signatures from unknown keys (name and key ID not
both matching a configured verifier) are ignored, a known key's bad signature rejects the whole
note, and a note with no good signature from a known key is rejected.

Errors::

    CheckpointError (ValueError)
    ├── CheckpointFormatError        malformed note, signature line, checkpoint body or field value
    ├── KeyFormatError               malformed verifier key text or seed file
    ├── UnknownKeyError              no signature from a configured key (for the checkpoint's origin)
    ├── SignatureError               a configured key's signature does not verify
    └── CheckpointConsistencyError   two checkpoints cannot both come from one append-only log
        ├── OriginMismatchError      different origins
        ├── RollbackError            tree size or journal sequence went backwards
        └── ForkError                same tree size, different root or extension lines
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bastion.audit.merkle import EMPTY_ROOT, HASH_SIZE, TREE_SIZE_MAX, ProofError, verify_consistency

__all__ = [
    "EM_DASH",
    "JOURNAL_SEQ_MAX",
    "NOTE_BYTES_MAX",
    "NOTE_SIGNATURES_MAX",
    "SIGNATURE_TYPE_ED25519",
    "Checkpoint",
    "CheckpointConsistencyError",
    "CheckpointError",
    "CheckpointFormatError",
    "ForkError",
    "KeyFormatError",
    "OpenedNote",
    "OriginMismatchError",
    "RollbackError",
    "SignatureError",
    "UnknownKeyError",
    "VenueKey",
    "VerifierKey",
    "check_consistent",
    "format_body",
    "key_id",
    "open_checkpoint",
    "open_note",
    "parse_body",
    "sign_checkpoint",
    "sign_note",
]

EM_DASH = "\u2014"
"""First character of every signature line (C2SP signed-note "Format")."""

SIGNATURE_TYPE_ED25519 = 0x01
"""Signature type byte of Ed25519 note signatures (C2SP signed-note "Signature types")."""

NOTE_BYTES_MAX = 64 * 1024
"""Largest note accepted, in UTF-8 bytes. Our limit (a checkpoint is ~300 bytes plus ~100 per signature)."""

NOTE_SIGNATURES_MAX = 100
"""Most signature lines accepted per note (signed-note requires >= 16; Go's note package uses 100)."""

JOURNAL_SEQ_MAX = (1 << 64) - 1
"""Largest journal sequence number accepted in the ``journal`` extension line (unsigned 64-bit)."""

_ED25519_PUBLIC_KEY_SIZE = 32
_ED25519_SEED_SIZE = 32
_ED25519_SIGNATURE_SIZE = 64
_KEY_ID_SIZE = 4
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_DECIMAL_DIGITS_MAX = 20  # 2**64 - 1 has 20 digits; longer text is rejected before int() sees it
_HEX_HASH = re.compile(r"[0-9a-f]{64}")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class CheckpointError(ValueError):
    """Base class of every error raised by `bastion.audit.checkpoint`."""


class CheckpointFormatError(CheckpointError):
    """A note, signature line, checkpoint body or checkpoint field is not in the documented format."""


class KeyFormatError(CheckpointError):
    """A verifier key string or an Ed25519 seed file is malformed or of an unsupported type."""


class UnknownKeyError(CheckpointError):
    """The note carries no signature from any configured key (or none named like the checkpoint origin)."""


class SignatureError(CheckpointError):
    """A signature line from a configured key (same name and key ID) fails Ed25519 verification."""


class CheckpointConsistencyError(CheckpointError):
    """Two checkpoints are not provably views of one append-only log (e.g. the consistency proof fails)."""


class OriginMismatchError(CheckpointConsistencyError):
    """The two checkpoints name different logs."""


class RollbackError(CheckpointConsistencyError):
    """The newer checkpoint has a smaller tree size or journal sequence than the older one."""


class ForkError(CheckpointConsistencyError):
    """Two checkpoints of the same tree size disagree on the root or an extension line: a split view."""


# ---------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------


def _check_key_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise KeyFormatError("key name must be a non-empty string")
    if "+" in name or any(ch.isspace() or ch < " " for ch in name):
        raise KeyFormatError(f"key name {name!r} contains a space, control character or '+'")


def key_id(name: str, public_key: bytes) -> bytes:
    """Compute the signed-note key ID of an Ed25519 key.

    Args:
        name: the key name (non-empty, no spaces or '+').
        public_key: the 32-byte Ed25519 public key (RFC 8032 encoding).

    Returns:
        4 bytes: ``SHA-256(name || 0x0A || 0x01 || public_key)[:4]`` (big-endian uint32 on the wire).

    Raises:
        KeyFormatError: bad name or key length.

    Source: C2SP signed-note, "Ed25519 signatures".
    """
    _check_key_name(name)
    if len(public_key) != _ED25519_PUBLIC_KEY_SIZE:
        raise KeyFormatError(f"Ed25519 public key has {len(public_key)} bytes, expected 32")
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([SIGNATURE_TYPE_ED25519]) + public_key).digest()
    return digest[:_KEY_ID_SIZE]


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """An Ed25519 note verifier: key name, key ID and public key.

    Attributes:
        name: key name; for a log key it equals the checkpoint origin.
        key_id: 4-byte key ID, always equal to `key_id(name, public_key)`.
        public_key: 32-byte Ed25519 public key.
    """

    name: str
    key_id: bytes
    public_key: bytes

    def __post_init__(self) -> None:
        """Reject a key whose ID does not match its name and public key."""
        if key_id(self.name, self.public_key) != self.key_id:
            raise KeyFormatError(f"key ID {self.key_id.hex()} does not match name {self.name!r} and key")

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> VerifierKey:
        """Build a verifier from a name and a raw 32-byte Ed25519 public key (key ID computed).

        Raises:
            KeyFormatError: bad name or key length.
        """
        return cls(name, key_id(name, public_key), bytes(public_key))

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Parse a verifier key string ``<name>+<hex key ID>+<base64(0x01 || public key)>``.

        Args:
            text: e.g. ``"example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"``.

        Returns:
            The verifier key.

        Raises:
            KeyFormatError: wrong shape, non-canonical base64, a signature type other than Ed25519,
                or a key ID that does not match the name and key.

        Source: C2SP signed-note (verifier key encoding of the Go reference, golang.org/x/mod/sumdb/note).
        """
        parts = text.split("+", 2)
        if len(parts) != 3 or not _KEY_ID_HEX.fullmatch(parts[1]):
            raise KeyFormatError(f"verifier key is not <name>+<8 hex>+<base64>: {text!r}")
        name, id_hex, material_b64 = parts
        material = _b64decode_canonical(material_b64, KeyFormatError, "verifier key")
        if len(material) != 1 + _ED25519_PUBLIC_KEY_SIZE or material[0] != SIGNATURE_TYPE_ED25519:
            raise KeyFormatError("verifier key is not an Ed25519 (type 0x01) key")
        return cls(name, bytes.fromhex(id_hex), material[1:])

    def encode(self) -> str:
        """Return the verifier key string ``<name>+<hex key ID>+<base64(0x01 || public key)>``."""
        material = base64.b64encode(bytes([SIGNATURE_TYPE_ED25519]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{material}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Check a 64-byte Ed25519 signature (RFC 8032) over ``message``; False on any failure."""
        if len(signature) != _ED25519_SIGNATURE_SIZE:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


class VenueKey:
    """The venue's Ed25519 log-signing key together with its note key name.

    The secret is a raw 32-byte RFC 8032 seed. `save` writes it to a new file with mode 0600;
    `load` reads such a file back. Generating and file I/O are shell operations: the core only ever
    receives a loaded key.
    """

    __slots__ = ("_private_key", "_verifier")

    def __init__(self, name: str, seed: bytes) -> None:
        """Build the key from its name and 32-byte Ed25519 seed.

        Raises:
            KeyFormatError: bad name or seed length.
        """
        if len(seed) != _ED25519_SEED_SIZE:
            raise KeyFormatError(f"Ed25519 seed has {len(seed)} bytes, expected 32")
        self._private_key = Ed25519PrivateKey.from_private_bytes(bytes(seed))
        public = self._private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._verifier = VerifierKey.from_public_key(name, public)

    @classmethod
    def generate(cls, name: str) -> VenueKey:
        """Create a fresh key from the OS CSPRNG (``os.urandom``).

        Raises:
            KeyFormatError: bad key name.
        """
        return cls(name, os.urandom(_ED25519_SEED_SIZE))

    @classmethod
    def load(cls, path: str | os.PathLike[str], name: str) -> VenueKey:
        """Load a key from a file holding exactly the raw 32-byte seed.

        Raises:
            KeyFormatError: the file is not exactly 32 bytes, or the name is bad.
            OSError: the file cannot be read.
        """
        seed = Path(path).read_bytes()
        if len(seed) != _ED25519_SEED_SIZE:
            raise KeyFormatError(f"seed file {os.fspath(path)!r} has {len(seed)} bytes, expected 32")
        return cls(name, seed)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the raw 32-byte seed to a new file created with mode 0600.

        Raises:
            FileExistsError: the file already exists (keys are never overwritten).
            OSError: other I/O failures.
        """
        seed = self._private_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(seed)

    @property
    def name(self) -> str:
        """The key name (for the log key, the checkpoint origin)."""
        return self._verifier.name

    @property
    def key_id(self) -> bytes:
        """The 4-byte signed-note key ID."""
        return self._verifier.key_id

    @property
    def verifier(self) -> VerifierKey:
        """The public half, as a `VerifierKey`."""
        return self._verifier

    def verifier_key(self) -> str:
        """The public verifier key string ``<name>+<hex key ID>+<base64(0x01 || public key)>``."""
        return self._verifier.encode()

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature (RFC 8032, deterministic) of ``message``."""
        signature = self._private_key.sign(message)
        assert len(signature) == _ED25519_SIGNATURE_SIZE
        return signature

    def __repr__(self) -> str:
        """Show the public identity only; the seed never appears in reprs or logs."""
        return f"VenueKey({self.verifier_key()!r})"


# ---------------------------------------------------------------------------------------------
# Signed notes
# ---------------------------------------------------------------------------------------------


def _b64decode_canonical(text: str, error: type[CheckpointError], what: str) -> bytes:
    """Strict standard base64 (RFC 4648 §4, padded); non-canonical encodings are rejected."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise error(f"{what} is not valid base64: {text!r}") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise error(f"{what} is not canonical base64: {text!r}")
    return raw


def _check_note_characters(text: str) -> None:
    if any(ch < " " and ch != "\n" for ch in text):
        raise CheckpointFormatError("note contains an ASCII control character other than newline")


@dataclass(frozen=True, slots=True)
class OpenedNote:
    """A verified note: its text and the verifiers whose signatures checked out.

    Attributes:
        text: the signed text, ending in a newline.
        verified: the configured keys with a valid signature, in signature-line order.
    """

    text: str
    verified: tuple[VerifierKey, ...]


def sign_note(text: str, signers: Sequence[VenueKey]) -> str:
    """Sign a note text with one or more keys.

    Args:
        text: the note text; must end in a newline, be at most `NOTE_BYTES_MAX` bytes as UTF-8 and
            contain no control characters other than newline.
        signers: at least one key; each appends one signature line, in order.

    Returns:
        ``text + "\\n" + "".join("— <name> <base64(key ID || signature)>\\n" ...)``.

    Raises:
        CheckpointFormatError: bad text, or no signers.

    Source: C2SP signed-note, "Format" and "Ed25519 signatures".
    """
    if not text.endswith("\n"):
        raise CheckpointFormatError("note text must end in a newline")
    _check_note_characters(text)
    if not signers or len(signers) > NOTE_SIGNATURES_MAX:
        raise CheckpointFormatError(f"need 1..{NOTE_SIGNATURES_MAX} signers, got {len(signers)}")
    message = text.encode("utf-8")
    lines = []
    for signer in signers:
        blob = base64.b64encode(signer.key_id + signer.sign(message)).decode("ascii")
        lines.append(f"{EM_DASH} {signer.name} {blob}\n")
    note = text + "\n" + "".join(lines)
    if len(note.encode("utf-8")) > NOTE_BYTES_MAX:
        raise CheckpointFormatError(f"signed note exceeds {NOTE_BYTES_MAX} bytes")
    return note


def _split_note(note: str | bytes) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """Parse a signed note into its text and (name, key ID, signature) triples, without verifying."""
    if isinstance(note, bytes):
        if len(note) > NOTE_BYTES_MAX:
            raise CheckpointFormatError(f"note exceeds {NOTE_BYTES_MAX} bytes")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointFormatError("note is not valid UTF-8") from exc
    if len(note.encode("utf-8", errors="surrogatepass")) > NOTE_BYTES_MAX:
        raise CheckpointFormatError(f"note exceeds {NOTE_BYTES_MAX} bytes")
    if any("\ud800" <= ch <= "\udfff" for ch in note):
        raise CheckpointFormatError("note is not valid UTF-8 (lone surrogate)")
    _check_note_characters(note)
    split_at = note.rfind("\n\n")
    if split_at < 0:
        raise CheckpointFormatError("note has no blank line before its signatures")
    text, block = note[: split_at + 1], note[split_at + 2 :]
    if not block.endswith("\n"):
        raise CheckpointFormatError("signature block is empty or does not end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > NOTE_SIGNATURES_MAX:
        raise CheckpointFormatError(f"note has {len(lines)} signatures > limit {NOTE_SIGNATURES_MAX}")
    signatures: list[tuple[str, bytes, bytes]] = []
    for line in lines:
        if not line.startswith(EM_DASH + " "):
            raise CheckpointFormatError(f"signature line does not start with an em dash and space: {line!r}")
        fields = line[2:].split(" ")
        if len(fields) != 2:
            raise CheckpointFormatError(f"signature line is not '— <name> <base64>': {line!r}")
        name, blob_b64 = fields
        try:
            _check_key_name(name)
        except KeyFormatError as exc:
            raise CheckpointFormatError(f"bad key name in signature line: {name!r}") from exc
        blob = _b64decode_canonical(blob_b64, CheckpointFormatError, "signature")
        if len(blob) <= _KEY_ID_SIZE:
            raise CheckpointFormatError(f"signature of {name!r} is shorter than a key ID plus signature")
        signatures.append((name, blob[:_KEY_ID_SIZE], blob[_KEY_ID_SIZE:]))
    return text, signatures


def open_note(note: str | bytes, verifiers: Sequence[VerifierKey]) -> OpenedNote:
    """Parse a signed note and verify it against the configured keys.

    Signatures whose (name, key ID) match no verifier are ignored; a matching signature that fails
    rejects the note; at least one matching signature must verify.

    Args:
        note: the whole note (text, blank line, signature lines), as str or UTF-8 bytes.
        verifiers: the trusted keys.

    Returns:
        The text and the verifiers that signed it.

    Raises:
        CheckpointFormatError: malformed note.
        SignatureError: a configured key's signature is invalid.
        UnknownKeyError: no signature from a configured key.

    Source: C2SP signed-note, "Format" and "Signatures".
    """
    text, signatures = _split_note(note)
    by_identity = {(v.name, v.key_id): v for v in verifiers}
    message = text.encode("utf-8")
    verified: list[VerifierKey] = []
    for name, sig_key_id, signature in signatures:
        verifier = by_identity.get((name, sig_key_id))
        if verifier is None:
            continue
        if not verifier.verify(message, signature):
            raise SignatureError(f"signature by {name!r} (key ID {sig_key_id.hex()}) does not verify")
        verified.append(verifier)
    if not verified:
        known = ", ".join(sorted(f"{v.name}+{v.key_id.hex()}" for v in verifiers)) or "none"
        raise UnknownKeyError(f"no signature from a configured key (configured: {known})")
    return OpenedNote(text, tuple(verified))


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One signed statement of the venue's log head, with the state and journal it corresponds to.

    Attributes:
        origin: the log identity, e.g. ``"bastion.example/log"``; non-empty, one line, no control
            characters. The signing key's name must equal it.
        tree_size: leaves in the Merkle log, ``0 <= tree_size < 2**64``.
        root_hash: 32-byte RFC 6962 root of the first ``tree_size`` leaves (``SHA-256("")`` if 0).
        state_hash: 32-byte engine state hash after the covered journal prefix.
        journal_seq: sequence number of the newest journal record covered, ``0 <= seq < 2**64``.
        journal_head: 32-byte journal hash-chain head after that record.

    Raises (on construction):
        CheckpointFormatError: any field out of range or of the wrong type/length.
    """

    origin: str
    tree_size: int
    root_hash: bytes
    state_hash: bytes
    journal_seq: int
    journal_head: bytes

    def __post_init__(self) -> None:
        """Validate every field (the same rules `parse_body` applies to text)."""
        if not isinstance(self.origin, str) or not self.origin or any(ch < " " for ch in self.origin):
            raise CheckpointFormatError(f"origin must be a non-empty single line: {self.origin!r}")
        counters = (
            ("tree_size", self.tree_size, TREE_SIZE_MAX),
            ("journal_seq", self.journal_seq, JOURNAL_SEQ_MAX),
        )
        for field, value, limit in counters:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
                raise CheckpointFormatError(f"{field} must be an int in [0, 2**64), got {value!r}")
        digests = (
            ("root_hash", self.root_hash),
            ("state_hash", self.state_hash),
            ("journal_head", self.journal_head),
        )
        for field, digest in digests:
            if not isinstance(digest, bytes) or len(digest) != HASH_SIZE:
                raise CheckpointFormatError(f"{field} must be {HASH_SIZE} bytes")
        if self.tree_size == 0 and self.root_hash != EMPTY_ROOT:
            raise CheckpointFormatError("an empty tree's root must be SHA-256(\"\")")


def format_body(cp: Checkpoint) -> str:
    """Render a checkpoint as its note text (five newline-terminated lines).

    Args:
        cp: the checkpoint.

    Returns:
        ``"<origin>\\n<size>\\n<b64 root>\\nstate <hex>\\njournal <seq> <hex>\\n"``.

    Source: C2SP tlog-checkpoint, "Note text" (lines 1-3); lines 4-5 are Bastion extension lines.
    """
    root_b64 = base64.b64encode(cp.root_hash).decode("ascii")
    return (
        f"{cp.origin}\n{cp.tree_size}\n{root_b64}\n"
        f"state {cp.state_hash.hex()}\njournal {cp.journal_seq} {cp.journal_head.hex()}\n"
    )


def _parse_decimal(text: str, what: str) -> int:
    if len(text) > _DECIMAL_DIGITS_MAX or not _DECIMAL.fullmatch(text):
        raise CheckpointFormatError(f"{what} is not a decimal without leading zeros: {text!r}")
    return int(text)


def parse_body(text: str) -> Checkpoint:
    """Parse checkpoint note text produced by `format_body`; the inverse of it, byte for byte.

    Args:
        text: the note text (already verified, e.g. `OpenedNote.text`).

    Returns:
        The checkpoint.

    Raises:
        CheckpointFormatError: wrong line count, empty lines, non-decimal or zero-padded numbers,
            non-canonical base64, wrong hash lengths, or extension lines other than exactly
            ``state ...`` and ``journal ...``.

    Source: C2SP tlog-checkpoint, "Note text".
    """
    if not text.endswith("\n"):
        raise CheckpointFormatError("checkpoint text must end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) != 5 or any(not line for line in lines):
        raise CheckpointFormatError(f"checkpoint must have exactly 5 non-empty lines, got {len(lines)}")
    origin, size_text, root_b64, state_line, journal_line = lines
    tree_size = _parse_decimal(size_text, "tree size")
    root_hash = _b64decode_canonical(root_b64, CheckpointFormatError, "root hash")
    state = state_line.split(" ")
    if len(state) != 2 or state[0] != "state" or not _HEX_HASH.fullmatch(state[1]):
        raise CheckpointFormatError(f"bad state line: {state_line!r}")
    journal = journal_line.split(" ")
    if len(journal) != 3 or journal[0] != "journal" or not _HEX_HASH.fullmatch(journal[2]):
        raise CheckpointFormatError(f"bad journal line: {journal_line!r}")
    cp = Checkpoint(
        origin=origin,
        tree_size=tree_size,
        root_hash=root_hash,
        state_hash=bytes.fromhex(state[1]),
        journal_seq=_parse_decimal(journal[1], "journal seq"),
        journal_head=bytes.fromhex(journal[2]),
    )
    assert format_body(cp) == text, "parse_body must be the exact inverse of format_body"
    return cp


def sign_checkpoint(cp: Checkpoint, signer: VenueKey) -> str:
    """Sign a checkpoint as a C2SP signed note.

    Args:
        cp: the checkpoint; ``cp.origin`` must equal ``signer.name``.
        signer: the venue's log key.

    Returns:
        The signed note text (body, blank line, one em-dash signature line).

    Raises:
        CheckpointFormatError: the origin does not match the key name.

    Source: C2SP tlog-checkpoint "Signatures" (key name SHOULD match origin; enforced here).
    """
    if cp.origin != signer.name:
        raise CheckpointFormatError(f"origin {cp.origin!r} does not match key name {signer.name!r}")
    return sign_note(format_body(cp), [signer])


def open_checkpoint(
    note: str | bytes, verifier: VerifierKey | str | Sequence[VerifierKey | str]
) -> Checkpoint:
    """Verify a signed checkpoint and parse it.

    Args:
        note: the signed note as published.
        verifier: the log's verifier key(s), as `VerifierKey` or verifier key strings; several are
            allowed for key rotation. Witness cosignatures by other keys are ignored.

    Returns:
        The checkpoint, once a configured key named like its origin has a valid signature on it.

    Raises:
        KeyFormatError: a verifier key string is malformed.
        CheckpointFormatError: malformed note or body.
        SignatureError: a configured key's signature fails.
        UnknownKeyError: no valid signature from a configured key named like the origin.

    Source: C2SP signed-note "Signatures"; C2SP tlog-checkpoint "Note text", "Signatures".
    """
    items = [verifier] if isinstance(verifier, (VerifierKey, str)) else list(verifier)
    keys = [VerifierKey.parse(item) if isinstance(item, str) else item for item in items]
    opened = open_note(note, keys)
    cp = parse_body(opened.text)
    if not any(v.name == cp.origin for v in opened.verified):
        raise UnknownKeyError(f"checkpoint for {cp.origin!r} has no valid signature by a key of that name")
    return cp


def check_consistent(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> None:
    """Check that ``new`` extends ``old`` in one append-only log (no rollback, no fork).

    Rules: same origin; ``new.tree_size >= old.tree_size`` and ``new.journal_seq >= old.journal_seq``;
    at equal tree sizes every field must be identical (the state and journal are functions of the
    log prefix) and the proof empty; from an empty old tree any new tree is consistent (empty proof);
    otherwise ``proof`` must be a valid RFC 9162 consistency proof between the two roots.

    Args:
        old: the checkpoint seen first (already signature-verified).
        new: the later checkpoint (already signature-verified).
        proof: consistency proof from ``old.tree_size`` to ``new.tree_size``, bottom-up, as
            produced by `MerkleLog.consistency_proof`.

    Returns:
        None when consistent.

    Raises:
        OriginMismatchError: different origins.
        RollbackError: tree size or journal sequence decreased.
        ForkError: same tree size but different root, state or journal lines.
        CheckpointConsistencyError: the consistency proof does not verify (chained from the
            `bastion.audit.merkle.ConsistencyProofError`).

    Source: C2SP tlog-checkpoint "Signatures" (a log MUST NOT sign inconsistent checkpoints);
    RFC 9162 §2.1.4.2.
    """
    if old.origin != new.origin:
        raise OriginMismatchError(f"origins differ: {old.origin!r} vs {new.origin!r}")
    if new.tree_size < old.tree_size:
        raise RollbackError(f"tree size went back from {old.tree_size} to {new.tree_size}")
    if new.journal_seq < old.journal_seq:
        raise RollbackError(f"journal seq went back from {old.journal_seq} to {new.journal_seq}")
    if new.tree_size == old.tree_size and new != old:
        raise ForkError(f"two different checkpoints at tree size {new.tree_size} (root or extensions differ)")
    if old.tree_size == 0 and proof:
        raise CheckpointConsistencyError("a proof from the empty tree must be empty")
    if old.tree_size == 0:
        return
    try:
        verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash, proof)
    except ProofError as exc:
        raise CheckpointConsistencyError(
            f"no valid consistency proof from size {old.tree_size} to {new.tree_size}: {exc}"
        ) from exc
