"""Proof bundles: a user's events, with RFC 6962 inclusion proofs under a signed checkpoint.

``bastion prove DIR --order-id N`` (or ``--seq S [--index K]``, optionally ``--trade`` for fills only)
selects output-log leaves and writes a self-contained JSON bundle::

    {
      "format": "bastion-proof/1",
      "query": {"order_id": 17} | {"seq": 812, "index": 0} | ..., "trade": true|false,
      "checkpoint": "<the C2SP signed note, verbatim>",
      "leaves": [
        {"leaf_index": 1041,                 # 0-based position in the Merkle log
         "seq": 812, "event_index": 0,       # decoded from the leaf (must agree with it)
         "event": {"type": "trade_executed", "price_ticks": ..., ...},  # decoded, for humans
         "leaf": "<base64 of the leaf bytes>",
         "inclusion_proof": ["<base64 32-byte hash>", ...]}          # RFC 9162 §2.1.3.1, bottom-up
      ]
    }

``bastion prove DIR --consistency OLD_SIZE NEW_SIZE`` (two tree sizes the venue signed checkpoints for), or
``--from-checkpoint OLD.txt [--checkpoint NEW.txt]`` (a checkpoint the participant kept, against the newest
or a given one), writes a *consistency* bundle: proof that the log at the newer checkpoint extends the
older one, append-only (RFC 9162 §2.1.4)::

    {
      "format": "bastion-consistency/1",
      "old_checkpoint": "<signed note>", "new_checkpoint": "<signed note>",
      "old_size": 1200, "new_size": 5400,   # readable, must equal the notes' tree sizes
      "consistency_proof": ["<base64 32-byte hash>", ...]   # RFC 9162 §2.1.4.1, as MerkleLog returns it
    }

``bastion check-proof PROOF.json --key venue.pub`` verifies it offline with only the venue's verifier key:
the checkpoint's Ed25519 signature (C2SP signed-note), then for each leaf: the leaf bytes decode (leaf
format in :mod:`bastion.audit.outlog`), the readable fields equal the decoded leaf, the leaf matches
the query, and its inclusion proof leads to the checkpoint's root (RFC 9162 §2.1.3.2). What a bundle
proves: the venue signed a log that contains these events. It does not prove that no *other* event of
the order exists; completeness is what ``bastion verify`` (re-execution) establishes. A consistency
bundle is checked the same way: both signatures, same origin, and the proof from the older root to the
newer one (RFC 9162 §2.1.4.2, :func:`~bastion.audit.checkpoint.check_consistent`): what a participant who
saved a checkpoint earlier needs to know that the venue did not rewrite the history it had signed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.audit.checkpoint import (
    Checkpoint,
    CheckpointConsistencyError,
    CheckpointError,
    VerifierKey,
    check_consistent,
    open_checkpoint,
)
from bastion.audit.layout import CHECKPOINT_LATEST, EVENTS_NAME, PUB_NAME, list_checkpoints
from bastion.audit.merkle import MerkleLog, ProofError, leaf_hash, verify_inclusion
from bastion.audit.outlog import OutlogScanner, decode_leaf, decode_outlog_header
from bastion.core.events import (
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderReduced,
    TradeExecuted,
)

__all__ = [
    "CONSISTENCY_FORMAT",
    "PROOF_FORMAT",
    "build_consistency_proof",
    "check_bundle",
    "check_consistency_proof",
    "ProofQuery",
    "ProveError",
    "ProofInvalid",
    "build_proof",
    "check_proof",
    "event_fields",
    "load_bundle",
    "order_ids_of",
]

PROOF_FORMAT = "bastion-proof/1"
CONSISTENCY_FORMAT = "bastion-consistency/1"
#: Leaves one bundle may carry (a bound on what check-proof hashes).
PROOF_LEAVES_MAX = 100_000


class ProveError(Exception):
    """``prove`` cannot produce a bundle. ``status``: 1 nothing to prove, 2 cannot run."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ProofInvalid(ValueError):
    """A proof bundle does not verify; the message says which check failed."""


@dataclass(frozen=True, slots=True)
class ProofQuery:
    """Which leaves to prove: by order id, or by command seq (and event index); ``trade``: fills only."""

    order_id: int | None = None
    seq: int | None = None
    index: int | None = None
    trade: bool = False

    def __post_init__(self) -> None:
        if (self.order_id is None) == (self.seq is None):
            raise ValueError("give exactly one of order_id or seq")
        if self.index is not None and self.seq is None:
            raise ValueError("index needs seq")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"trade": self.trade}
        for name in ("order_id", "seq", "index"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, raw: Any) -> ProofQuery:
        if not isinstance(raw, dict) or not set(raw) <= {"order_id", "seq", "index", "trade"}:
            raise ProofInvalid(f"query is not an object with order_id/seq/index/trade: {raw!r}")
        values = {k: raw.get(k) for k in ("order_id", "seq", "index")}
        if any(v is not None and (type(v) is not int or v < 0) for v in values.values()):
            raise ProofInvalid(f"query fields must be non-negative integers: {raw!r}")
        if type(raw.get("trade", False)) is not bool:
            raise ProofInvalid("query.trade must be a boolean")
        try:
            return cls(values["order_id"], values["seq"], values["index"], raw.get("trade", False))
        except ValueError as exc:
            raise ProofInvalid(f"query: {exc}") from None

    def matches(self, seq: int, index: int, event: Event) -> bool:
        """Whether the leaf (seq, index, event) answers this query."""
        if self.trade and type(event) is not TradeExecuted:
            return False
        if self.order_id is not None:
            return self.order_id in order_ids_of(event)
        return seq == self.seq and (self.index is None or index == self.index)


def order_ids_of(event: Event) -> tuple[int, ...]:
    """The venue order ids an event is about (both sides for a fill)."""
    if type(event) is TradeExecuted:
        return (event.maker_order_id, event.taker_order_id)
    if type(event) in (OrderAccepted, OrderAmended, OrderCanceled, OrderReduced):
        return (event.order_id,)  # type: ignore[union-attr]
    return ()


def event_fields(event: Event) -> dict[str, Any]:
    """A readable form of an event: ``{"type": <tag>, <field>: <value>, ...}``."""
    out: dict[str, Any] = {"type": event.__struct_config__.tag}
    for name in event.__struct_fields__:
        out[name] = getattr(event, name)
    return out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise ProofInvalid(f"{what} is not a base64 string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ProofInvalid(f"{what} is not valid base64") from exc
    if _b64(raw) != text:
        raise ProofInvalid(f"{what} is not canonical base64")
    return raw


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------


def _leaves(directory: Path, count: int) -> Iterator[bytes]:
    """The first ``count`` leaves of events.bin (fewer if the file is shorter)."""
    image = (directory / EVENTS_NAME).read_bytes()
    try:
        decode_outlog_header(image)
    except ValueError as exc:
        raise ProveError(2, f"{EVENTS_NAME}: {exc}") from None
    for n, record in enumerate(OutlogScanner(image)):
        if n == count:
            return
        yield record.leaf


def build_proof(directory: str | Path, query: ProofQuery, checkpoint_path: str | Path | None = None) -> dict[str, Any]:
    """Build the proof bundle for ``query`` against the directory's newest (or a given) checkpoint.

    Args:
        directory: the venue directory.
        query: what to prove.
        checkpoint_path: a signed checkpoint file to prove against; default ``checkpoint.txt``.

    Returns:
        The bundle as plain data (see the module docstring); ``json.dumps`` it.

    Raises:
        ProveError: status 2 when files are missing or the checkpoint does not verify under
            ``venue.pub`` or does not match events.bin; status 1 when no covered leaf matches.
    """
    directory = Path(directory)
    cp_path = Path(checkpoint_path) if checkpoint_path is not None else directory / CHECKPOINT_LATEST
    try:
        note = cp_path.read_bytes()
        key = (directory / PUB_NAME).read_text(encoding="utf-8").strip()
        cp = open_checkpoint(note, key)
    except (OSError, UnicodeDecodeError, CheckpointError) as exc:
        raise ProveError(2, f"no usable checkpoint: {exc}") from None
    log = MerkleLog()
    selected: list[tuple[int, bytes]] = []
    try:
        for leaf in _leaves(directory, cp.tree_size):
            index = log.append(leaf)
            seq, event_index, event = decode_leaf(leaf)
            if query.matches(seq, event_index, event):
                if len(selected) == PROOF_LEAVES_MAX:
                    raise ProveError(1, f"more than {PROOF_LEAVES_MAX} leaves match; narrow the query")
                selected.append((index, leaf))
    except (OSError, ValueError) as exc:
        raise ProveError(2, f"{EVENTS_NAME}: {exc}") from None
    if log.size != cp.tree_size or log.root() != cp.root_hash:
        raise ProveError(2, f"{EVENTS_NAME} does not match the checkpoint (size {log.size} vs {cp.tree_size}); "
                            "run bastion verify")
    if not selected:
        raise ProveError(1, f"no event matching {query.to_dict()} among the {cp.tree_size} events covered by the "
                            "checkpoint")
    return {
        "format": PROOF_FORMAT,
        "query": query.to_dict(),
        "checkpoint": note.decode("utf-8"),
        "leaves": [_leaf_entry(log, index, leaf) for index, leaf in selected],
    }


def _leaf_entry(log: MerkleLog, index: int, leaf: bytes) -> dict[str, Any]:
    seq, event_index, event = decode_leaf(leaf)
    return {
        "leaf_index": index,
        "seq": seq,
        "event_index": event_index,
        "event": event_fields(event),
        "leaf": _b64(leaf),
        "inclusion_proof": [_b64(h) for h in log.inclusion_proof(index)],
    }


# ---------------------------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------------------------


def check_proof(bundle: Any, key: str | VerifierKey) -> tuple[Checkpoint, int]:
    """Verify a proof bundle offline with only the venue's verifier key.

    Args:
        bundle: the parsed JSON bundle.
        key: the venue's verifier key string (``venue.pub``) or :class:`VerifierKey`.

    Returns:
        (the verified checkpoint, number of leaves proven).

    Raises:
        ProofInvalid: the first check that failed (signature, format, leaf decoding, readable fields,
            query mismatch, inclusion proof).
        KeyFormatError: the key itself is malformed.
    """
    if not isinstance(bundle, dict) or bundle.get("format") != PROOF_FORMAT:
        raise ProofInvalid(f"not a {PROOF_FORMAT} bundle")
    query = ProofQuery.from_dict(bundle.get("query"))
    note = bundle.get("checkpoint")
    if not isinstance(note, str):
        raise ProofInvalid("checkpoint is not a string")
    verifier = key if isinstance(key, VerifierKey) else VerifierKey.parse(key.strip())
    try:
        cp = open_checkpoint(note, verifier)
    except CheckpointError as exc:
        raise ProofInvalid(f"checkpoint: {type(exc).__name__}: {exc}") from None
    leaves = bundle.get("leaves")
    if not isinstance(leaves, list) or not leaves or len(leaves) > PROOF_LEAVES_MAX:
        raise ProofInvalid(f"leaves must be a list of 1..{PROOF_LEAVES_MAX} entries")
    for n, entry in enumerate(leaves):
        try:
            _check_leaf(entry, cp, query)
        except ProofInvalid as exc:
            raise ProofInvalid(f"leaves[{n}]: {exc}") from None
    return cp, len(leaves)


def _check_leaf(entry: Any, cp: Checkpoint, query: ProofQuery) -> None:
    if not isinstance(entry, dict):
        raise ProofInvalid("not an object")
    leaf = _unb64(entry.get("leaf"), "leaf")
    try:
        seq, event_index, event = decode_leaf(leaf)
    except ValueError as exc:
        raise ProofInvalid(f"leaf does not decode: {exc}") from None
    if entry.get("seq") != seq or entry.get("event_index") != event_index:
        raise ProofInvalid(f"seq/event_index {entry.get('seq')}/{entry.get('event_index')} differ from the leaf's "
                           f"{seq}/{event_index}")
    if entry.get("event") != event_fields(event):
        raise ProofInvalid("the readable event differs from the event in the leaf")
    if not query.matches(seq, event_index, event):
        raise ProofInvalid(f"the leaf (seq {seq}, event {event_index}) does not answer the query {query.to_dict()}")
    index = entry.get("leaf_index")
    proof = entry.get("inclusion_proof")
    if type(index) is not int or not isinstance(proof, list):
        raise ProofInvalid("leaf_index must be an integer and inclusion_proof a list")
    hashes = [_unb64(h, "inclusion_proof hash") for h in proof]
    try:
        verify_inclusion(leaf_hash(leaf), index, cp.tree_size, hashes, cp.root_hash)
    except ProofError as exc:
        raise ProofInvalid(f"inclusion proof of leaf {index} in tree size {cp.tree_size}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Consistency between two signed checkpoints
# ---------------------------------------------------------------------------------------------


def _open_signed(note: bytes, key: str, source: str) -> Checkpoint:
    try:
        return open_checkpoint(note, key)
    except CheckpointError as exc:
        raise ProveError(2, f"{source}: not a checkpoint signed by the venue key: {exc}") from None


def _checkpoint_at_size(directory: Path, size: int, key: str) -> bytes:
    """The signed note of the directory's checkpoint with tree size ``size``."""
    sizes: list[int] = []
    for _, path in list_checkpoints(directory):
        note = path.read_bytes()
        cp = _open_signed(note, key, path.name)
        if cp.tree_size == size:
            return note
        sizes.append(cp.tree_size)
    latest = directory / CHECKPOINT_LATEST
    if latest.is_file() and _open_signed(latest.read_bytes(), key, CHECKPOINT_LATEST).tree_size == size:
        return latest.read_bytes()
    shown = ", ".join(str(n) for n in sizes[:20]) + (" ..." if len(sizes) > 20 else "")
    raise ProveError(1, f"the venue signed no checkpoint at tree size {size} (signed sizes: {shown or 'none'})")


def build_consistency_proof(directory: str | Path, *, old_size: int | None = None, new_size: int | None = None,
                            old_checkpoint: bytes | None = None, new_checkpoint: bytes | None = None) -> dict[str, Any]:
    """A consistency bundle (module docstring) between two signed checkpoints of ``directory``.

    Args:
        directory: the venue directory (``events.bin``, ``venue.pub``, ``checkpoints/``).
        old_size / new_size: tree sizes of two checkpoints the venue signed (found in the directory).
        old_checkpoint / new_checkpoint: signed notes instead (e.g. one the participant kept); a missing
            new one is ``checkpoint.txt``.

    Returns:
        The bundle as plain data.

    Raises:
        ProveError: status 1 when no signed checkpoint has a requested size or the older one is newer;
            status 2 when files are missing, a note does not verify, or ``events.bin`` does not
            reproduce both signed roots.
    """
    directory = Path(directory)
    try:
        key = (directory / PUB_NAME).read_text(encoding="utf-8").strip()
        if old_checkpoint is None:
            if old_size is None:
                raise ProveError(2, "give the old tree size or the old checkpoint")
            old_checkpoint = _checkpoint_at_size(directory, old_size, key)
        if new_checkpoint is None:
            new_checkpoint = (_checkpoint_at_size(directory, new_size, key) if new_size is not None
                              else (directory / CHECKPOINT_LATEST).read_bytes())
    except (OSError, UnicodeDecodeError) as exc:
        raise ProveError(2, f"cannot read the venue directory: {exc}") from None
    old = _open_signed(old_checkpoint, key, "old checkpoint")
    new = _open_signed(new_checkpoint, key, "new checkpoint")
    if old.tree_size > new.tree_size:
        raise ProveError(1, f"the old checkpoint (tree size {old.tree_size}) is newer than the new one "
                            f"({new.tree_size}): swap them")
    log = MerkleLog()
    try:
        for leaf in _leaves(directory, new.tree_size):
            log.append(leaf)
    except (OSError, ValueError) as exc:
        raise ProveError(2, f"{EVENTS_NAME}: {exc}") from None
    if log.size != new.tree_size or log.root() != new.root_hash or (old.tree_size and log.root(old.tree_size)
                                                                  != old.root_hash):
        raise ProveError(2, f"{EVENTS_NAME} does not reproduce the signed roots (sizes {old.tree_size} and "
                            f"{new.tree_size}); run bastion verify")
    proof = log.consistency_proof(old.tree_size, new.tree_size) if 0 < old.tree_size < new.tree_size else []
    bundle = {
        "format": CONSISTENCY_FORMAT,
        "old_checkpoint": old_checkpoint.decode("utf-8"),
        "new_checkpoint": new_checkpoint.decode("utf-8"),
        "old_size": old.tree_size,
        "new_size": new.tree_size,
        "consistency_proof": [_b64(h) for h in proof],
    }
    check_consistency_proof(bundle, key)  # a bundle we write must verify
    return bundle


def check_consistency_proof(bundle: Any, key: str | VerifierKey) -> tuple[Checkpoint, Checkpoint]:
    """Verify a consistency bundle offline with only the venue's verifier key.

    Returns:
        (old checkpoint, new checkpoint), both signature-verified and proven consistent.

    Raises:
        ProofInvalid: not a bundle, a note that does not verify, sizes that disagree with the notes,
            different origins, rollback, fork, or a proof that does not lead from the old root to the
            new one (RFC 9162 §2.1.4.2).
        KeyFormatError: the key itself is malformed.
    """
    if not isinstance(bundle, dict) or bundle.get("format") != CONSISTENCY_FORMAT:
        raise ProofInvalid(f"not a {CONSISTENCY_FORMAT} bundle")
    verifier = key if isinstance(key, VerifierKey) else VerifierKey.parse(key.strip())
    notes = []
    for which in ("old", "new"):
        note = bundle.get(f"{which}_checkpoint")
        if not isinstance(note, str):
            raise ProofInvalid(f"{which}_checkpoint is not a string")
        try:
            cp = open_checkpoint(note, verifier)
        except CheckpointError as exc:
            raise ProofInvalid(f"{which}_checkpoint: {type(exc).__name__}: {exc}") from None
        if bundle.get(f"{which}_size") != cp.tree_size:
            raise ProofInvalid(f"{which}_size {bundle.get(f'{which}_size')!r} is not the {which} checkpoint's tree "
                               f"size {cp.tree_size}")
        notes.append(cp)
    proof = bundle.get("consistency_proof")
    if not isinstance(proof, list):
        raise ProofInvalid("consistency_proof must be a list")
    hashes = [_unb64(h, "consistency_proof hash") for h in proof]
    old, new = notes
    try:
        check_consistent(old, new, hashes)
    except CheckpointConsistencyError as exc:
        raise ProofInvalid(f"{type(exc).__name__}: {exc}") from None
    return old, new


def check_bundle(bundle: Any, key: str | VerifierKey) -> str:
    """Verify an inclusion or a consistency bundle (by its ``format``); return a one-line summary.

    Raises:
        ProofInvalid / KeyFormatError: as :func:`check_proof` and :func:`check_consistency_proof`.
    """
    if isinstance(bundle, dict) and bundle.get("format") == CONSISTENCY_FORMAT:
        old, new = check_consistency_proof(bundle, key)
        return (f"OK: {new.origin} at tree size {new.tree_size} (journal seq {new.journal_seq}) extends tree size "
                f"{old.tree_size} (journal seq {old.journal_seq}) append-only; root "
                f"{old.root_hash.hex()[:16]}... -> {new.root_hash.hex()[:16]}...")
    cp, count = check_proof(bundle, key)
    return (f"OK: {count} leaves included in {cp.origin} at tree size {cp.tree_size} "
            f"(journal seq {cp.journal_seq}, root {cp.root_hash.hex()[:16]}...)")


def load_bundle(path: str | Path) -> Any:
    """Read a bundle file as JSON.

    Raises:
        OSError: unreadable file.
        ProofInvalid: not JSON.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProofInvalid(f"not a JSON file: {exc}") from None
