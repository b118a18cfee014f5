"""``bastion verify``: an independent verifier of a venue directory, by re-execution.

What it checks, in order (the first failure stops it and is reported with file, offset and seq):

1. **Inputs.** ``venue.toml`` parses and validates; the verifier key (``--key`` or ``venue.pub``) parses;
   ``journal.bin`` and ``events.bin`` exist. Missing or unreadable inputs: exit 2.
2. **Checkpoints.** Every ``checkpoints/checkpoint-<seq>.txt`` is a C2SP signed note with a valid
   Ed25519 signature by the venue key whose origin is the key name (C2SP signed-note "Signatures",
   tlog-checkpoint); its file name matches its journal seq; tree sizes strictly grow from one to the
   next; ``checkpoint.txt`` is byte-identical to the newest one (a rolled-back or deleted newest
   checkpoint is named). Checkpoints the caller already trusts (``--trusted-checkpoint``) must verify
   too and must not be newer than the directory's newest one (rollback).
3. **Re-execution.** The input journal is read with :class:`~bastion.journal.file.JournalReader`, which
   verifies every record header checksum and the hash chain (a flipped, deleted, duplicated or
   reordered record fails there), and each command is applied to the *reference* engine
   ``Engine(config, ReferenceBook)``: the slow, obviously correct book that re-sorts nothing it need
   not and keeps each side as one list in matching order. A fill the venue's fast book made out of
   priority is not reproduced here and shows up as a differing leaf; a rule broken by both engines
   (shared code) is caught by the explicit fill checks of step 7.
4. **Output log.** Every event re-derived is encoded as its leaf (:mod:`bastion.audit.outlog`) and
   compared, byte for byte, with the next leaf of ``events.bin``; then appended to an RFC 6962 Merkle
   log. Extra, missing, altered or reordered leaves are reported with their file offset.
5. **Checkpoint contents.** At each checkpoint's journal seq, the recomputed tree size and root
   (RFC 6962 §2.1), the engine's state hash and the journal chain head must equal what was signed;
   successive checkpoints must be consistent (RFC 9162 §2.1.4 consistency proof from the recomputed
   log, checked with :func:`~bastion.audit.checkpoint.check_consistent`). No checkpoint may cover
   more of the journal than exists.
6. **Invariants.** After every command: no book crossed at rest, and open interest balanced on every
   instrument (net size 0, long OI = the engine's tracked OI), kept incrementally over the accounts
   the command's events name (:class:`_OpenInterest`). Every ``invariants_every`` commands, at every
   checkpoint and at the end: the engine's full :meth:`~bastion.core.engine.Engine.check_invariants`
   (conservation to the atom, OI, no crossed book, index consistency). That check is O(accounts +
   orders) per call, so running it after every command (``invariants_every=1``, the literal
   ``Engine(config, ReferenceBook, check_invariants=True)``) is about 100x slower on a 1,000-account
   book; the default samples it. Conservation is deliberately not re-implemented here: it needs the
   engine's whole bookkeeping (fee pool, insurance fund, and whatever pools later features add).
7. **Fills** (:mod:`bastion.audit.fills`, from the event stream alone, no engine code). For every
   ``TradeExecuted``: both orders are live (as the event stream describes them) with the sides the
   fill states, the fill is not larger than either order's remaining size, the price is the maker's
   limit and does not violate the taker's limit (buy: price <= limit, sell: price >= limit), no
   account trades with itself, and the maker is the best-priced, earliest resting order on its side
   (price-time priority, on a shadow book kept from OrderAccepted / OrderAmended / OrderReduced /
   OrderCanceled / TradeExecuted); an auction/batch fill (``taker_side`` 0) is at or inside both
   orders' limits. On instruments with an ``[instrument.integrity]`` band: every fill and auction
   clearing price lies inside the band rebuilt from the config and the MarkPriceSet / trade events.
8. **Snapshots.** The verifier never *uses* ``snapshots/``: it re-executes from seq 1, so a snapshot
   cannot make it accept anything. But the venue recovers from them, so each one is *checked*: when
   re-execution reaches a snapshot's seq, the file must load (checksum, header) and its journal chain
   head, state hash and state bytes must equal the re-executed ones, and the output-log mark beside
   it (tree size, root, offset in ``events.bin``) must equal the re-derived log. A snapshot beyond
   the end of the journal, an altered snapshot or mark, or a malformed mark is a finding (the file
   under ``snapshots/`` is named); the count checked is in the report.

Exit status: 0 clean, 1 divergence or tampering found, 2 cannot run. Warnings (not failures): events
or journal records after the newest checkpoint (a crash before the next checkpoint), stray files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from bastion.audit.checkpoint import (
    Checkpoint,
    CheckpointConsistencyError,
    CheckpointError,
    VerifierKey,
    check_consistent,
    open_checkpoint,
)
from bastion.audit.fills import BAND_EVENTS, ORDER_EVENTS, BandWatch, ShadowBook
from bastion.audit.layout import (
    CHECKPOINT_DIR,
    CHECKPOINT_LATEST,
    CONFIG_NAME,
    EVENTS_NAME,
    JOURNAL_NAME,
    PUB_NAME,
    SNAPSHOT_DIR,
    OutlogMark,
    checkpoint_seq,
    journal_id_for,
    list_checkpoints,
    load_stored_config,
    outlog_mark_path,
    read_outlog_mark,
)
from bastion.audit.merkle import MerkleLog
from bastion.audit.outlog import (
    LEAF_HEAD,
    OUTLOG_HEADER_SIZE,
    LEAF_VERSION,
    LeafRecord,
    OutlogScanner,
    decode_leaf,
    decode_outlog_header,
)
from bastion.core.book.reference import ReferenceBook
from bastion.core.commands import decode_sequenced
from bastion.core.engine import Engine
from bastion.core.errors import InvariantViolation
from bastion.core.events import (
    AccountCreated,
    BondForfeited,
    BondReturned,
    Deposited,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderCommitted,
    OrderReduced,
    RevealReceived,
    TradeExecuted,
    Transferred,
    Withdrawn,
    encode_event,
)
from bastion.core.instruments import ConfigError, VenueConfig
from bastion.journal.errors import JournalCorruptError, JournalIOError, SnapshotCorruptError
from bastion.journal.file import JournalReader
from bastion.journal.snapshot import load_snapshot, snapshot_seq

__all__ = [
    "EXIT_CANNOT_RUN",
    "EXIT_DIVERGENCE",
    "EXIT_OK",
    "INVARIANTS_EVERY_DEFAULT",
    "Finding",
    "VerifyReport",
    "verify_directory",
]

EXIT_OK = 0
EXIT_DIVERGENCE = 1
EXIT_CANNOT_RUN = 2
#: Full invariant check cadence, in commands (plus every checkpoint and the end).
INVARIANTS_EVERY_DEFAULT = 5_000
_PROGRESS_EVERY = 4_096  # records between progress callbacks (a power of two: cheap mask test)


@dataclass(frozen=True, slots=True)
class Finding:
    """The first problem found: which file, where in it, which command, and why."""

    file: str
    reason: str
    offset: int | None = None
    seq: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.offset is not None:
            where += f" offset {self.offset}"
        if self.seq is not None:
            where += f" (seq {self.seq})"
        return f"{where}: {self.reason}"


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_directory`.

    Attributes:
        status: EXIT_OK, EXIT_DIVERGENCE or EXIT_CANNOT_RUN.
        finding: the first problem (None when clean).
        warnings: non-fatal observations.
        commands, events, fills: journal records re-executed, leaves compared, fills checked.
        band_fills: fills (and auction clearings) checked against a price band.
        checkpoints: checkpoints whose contents were re-derived (directory and trusted ones).
        snapshots: snapshot files checked against the re-executed state (never used as input).
        invariant_checks: full invariant checks run.
        elapsed_s: wall time of the run, seconds.
    """

    status: int
    finding: Finding | None = None
    warnings: list[str] = field(default_factory=list)
    commands: int = 0
    events: int = 0
    fills: int = 0
    band_fills: int = 0
    checkpoints: int = 0
    snapshots: int = 0
    invariant_checks: int = 0
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for ``--json``."""
        return {
            "status": self.status,
            "ok": self.status == EXIT_OK,
            "finding": None if self.finding is None else {
                "file": self.finding.file, "offset": self.finding.offset, "seq": self.finding.seq,
                "reason": self.finding.reason},
            "warnings": self.warnings,
            "commands": self.commands,
            "events": self.events,
            "fills": self.fills,
            "band_fills": self.band_fills,
            "checkpoints": self.checkpoints,
            "snapshots": self.snapshots,
            "invariant_checks": self.invariant_checks,
            "elapsed_s": round(self.elapsed_s, 3),
        }


class _Stop(Exception):
    """Internal: ends the run with a status and a finding."""

    def __init__(self, status: int, finding: Finding) -> None:
        super().__init__(str(finding))
        self.status = status
        self.finding = finding


def _fail(file: str, reason: str, offset: int | None = None, seq: int | None = None) -> _Stop:
    return _Stop(EXIT_DIVERGENCE, Finding(file, reason, offset, seq))


def _cannot(file: str, reason: str) -> _Stop:
    return _Stop(EXIT_CANNOT_RUN, Finding(file, reason))


@dataclass(frozen=True, slots=True)
class _Target:
    """A signed checkpoint to re-derive, with where it came from (for messages)."""

    cp: Checkpoint
    source: str
    data: bytes


# ---------------------------------------------------------------------------------------------
# Inputs and checkpoints
# ---------------------------------------------------------------------------------------------


def _load_inputs(directory: Path, key: str | VerifierKey | None) -> tuple[VenueConfig, VerifierKey]:
    if not directory.is_dir():
        raise _cannot(str(directory), "not a directory")
    try:
        config = load_stored_config(directory)
    except ConfigError as exc:
        raise _cannot(CONFIG_NAME, f"cannot load the venue config: {exc}") from None
    if key is None:
        try:
            key = (directory / PUB_NAME).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise _cannot(PUB_NAME, f"cannot read the verifier key: {exc}") from None
    try:
        verifier = key if isinstance(key, VerifierKey) else VerifierKey.parse(key.strip())
    except CheckpointError as exc:
        raise _cannot(PUB_NAME, f"malformed verifier key: {exc}") from None
    for name in (JOURNAL_NAME, EVENTS_NAME):
        if not (directory / name).is_file():
            raise _cannot(name, "missing")
    return config, verifier


def _open_note(data: bytes, verifier: VerifierKey, source: str) -> Checkpoint:
    try:
        return open_checkpoint(data, verifier)
    except CheckpointError as exc:
        raise _fail(source, f"not a valid checkpoint signed by {verifier.name}+{verifier.key_id.hex()}: "
                            f"{type(exc).__name__}: {exc}") from None


def _local_checkpoints(directory: Path, verifier: VerifierKey, warnings: list[str]) -> list[_Target]:
    """Verify the signatures and ordering of the directory's checkpoints and of checkpoint.txt."""
    local: list[_Target] = []
    for seq, path in list_checkpoints(directory):
        source = f"{CHECKPOINT_DIR}/{path.name}"
        data = path.read_bytes()
        cp = _open_note(data, verifier, source)
        if cp.journal_seq != seq:
            raise _fail(source, f"file name says journal seq {seq}, the signed checkpoint says {cp.journal_seq}")
        if local and cp.tree_size <= local[-1].cp.tree_size:
            raise _fail(source, f"tree size {cp.tree_size} does not grow past {local[-1].cp.tree_size} of "
                                f"{local[-1].source}: a log never shrinks (rollback or fork)")
        local.append(_Target(cp, source, data))
    folder = directory / CHECKPOINT_DIR
    if folder.is_dir():
        stray = sorted(p.name for p in folder.iterdir() if checkpoint_seq(p) is None and not p.name.startswith("."))
        if stray:
            warnings.append(f"{CHECKPOINT_DIR}/ holds files that are not checkpoints: {', '.join(stray)}")
    _check_latest(directory, verifier, local)
    return local


def _check_latest(directory: Path, verifier: VerifierKey, local: list[_Target]) -> None:
    """checkpoint.txt must be the newest checkpoint file, byte for byte."""
    path = directory / CHECKPOINT_LATEST
    if not path.exists():
        if local:
            raise _fail(CHECKPOINT_LATEST, f"missing, while {CHECKPOINT_DIR}/ holds {len(local)} checkpoints")
        return
    data = path.read_bytes()
    cp = _open_note(data, verifier, CHECKPOINT_LATEST)
    if local and data == local[-1].data:
        return
    older = [t for t in local if t.data == data]
    if older:
        raise _fail(CHECKPOINT_LATEST, f"rolled back: it is {older[0].source} (tree size {cp.tree_size}), not the "
                                       f"newest {local[-1].source} (tree size {local[-1].cp.tree_size})")
    raise _fail(CHECKPOINT_LATEST, f"its checkpoint (journal seq {cp.journal_seq}, tree size {cp.tree_size}) is not "
                                   f"in {CHECKPOINT_DIR}/: the newest checkpoint file was deleted or replaced")


def _targets(local: list[_Target], trusted: Sequence[bytes], verifier: VerifierKey) -> list[_Target]:
    """Merge trusted checkpoints into the directory's, checking for rollback and forks."""
    targets = list(local)
    newest = local[-1].cp if local else None
    for i, data in enumerate(trusted):
        source = f"trusted checkpoint #{i + 1}"
        try:
            cp = open_checkpoint(data, verifier)
        except CheckpointError as exc:
            raise _cannot(source, f"does not verify under the venue key: {exc}") from None
        if newest is None or cp.tree_size > newest.tree_size or cp.journal_seq > newest.journal_seq:
            have = "none" if newest is None else f"tree size {newest.tree_size}, journal seq {newest.journal_seq}"
            raise _fail(CHECKPOINT_LATEST, f"rollback: the directory's newest checkpoint ({have}) is older than the "
                                           f"{source} (tree size {cp.tree_size}, journal seq {cp.journal_seq})")
        targets.append(_Target(cp, source, data))
    targets.sort(key=lambda t: (t.cp.journal_seq, t.cp.tree_size))
    for a, b in zip(targets, targets[1:]):
        if a.cp.journal_seq == b.cp.journal_seq and a.cp != b.cp:
            raise _fail(b.source, f"fork: differs from {a.source} at the same journal seq {a.cp.journal_seq}")
    return targets


# ---------------------------------------------------------------------------------------------
# Fill checks
# ---------------------------------------------------------------------------------------------


_OrderLimits = ShadowBook  # the fill checks' former name (tests use it)
#: Events that never move a position (skipped by the open-interest refresh; any other event naming an
#: account, including event types added later, refreshes it).
_POSITION_NEUTRAL = frozenset({OrderAccepted, OrderAmended, OrderCanceled, OrderReduced, AccountCreated, Deposited,
                               Withdrawn, Transferred, OrderCommitted, RevealReceived, BondForfeited, BondReturned})


# ---------------------------------------------------------------------------------------------
# Per-command open-interest balance over the accounts a command touched
# ---------------------------------------------------------------------------------------------

_account_fields_cache: dict[type, tuple[str, ...]] = {}


def _account_fields(kind: type) -> tuple[str, ...]:
    """The fields of an event type that name accounts (``account_id``, ``maker_account_id``, ...)."""
    fields = _account_fields_cache.get(kind)
    if fields is None:
        names = getattr(kind, "__struct_fields__", ())
        fields = _account_fields_cache[kind] = tuple(n for n in names if n.endswith("account_id"))
    return fields


class _OpenInterest:
    """Position sizes of every account, refreshed for the accounts a command's events name.

    After every command, per instrument: ``sum(size) == 0`` (every lot bought was sold) and
    ``sum(max(size, 0)) == engine.open_interest_lots`` (long OI = short OI = the engine's tracked OI).
    The sums are kept incrementally, so the check is O(accounts touched), not O(accounts). Only sizes
    are read, nothing the engine derives, so the check does not depend on how fees, funding or other
    money flows are booked. Conservation of funds needs the engine's full bookkeeping: it is left to
    the engine's own :meth:`~bastion.core.engine.Engine.check_invariants` (every ``invariants_every``
    commands, at every checkpoint and at the end).
    """

    __slots__ = ("sizes", "net_size", "long_oi")

    def __init__(self, instrument_ids: Sequence[int]) -> None:
        self.sizes: dict[int, dict[int, int]] = {}
        self.net_size = dict.fromkeys(instrument_ids, 0)
        self.long_oi = dict.fromkeys(instrument_ids, 0)

    def refresh(self, engine: Engine, account_id: int) -> None:
        """Re-read one account's position sizes from the engine (absent account: no positions)."""
        account = engine.accounts.get(account_id)
        sizes = {} if account is None else {
            iid: pos.size_lots for iid, pos in account.positions.items() if pos.size_lots}
        old = self.sizes.get(account_id, {})
        if old == sizes:
            return
        net_size, long_oi = self.net_size, self.long_oi
        for iid, size in old.items():
            net_size[iid] -= size
            long_oi[iid] -= size if size > 0 else 0
        for iid, size in sizes.items():
            net_size[iid] += size
            long_oi[iid] += size if size > 0 else 0
        self.sizes[account_id] = sizes

    def check(self, engine: Engine) -> str | None:
        """Return the first unbalanced instrument, else None."""
        for iid, net in self.net_size.items():
            if net != 0 or self.long_oi[iid] != engine.open_interest_lots[iid]:
                return (f"open interest unbalanced on instrument {iid}: net size {net}, long OI "
                        f"{self.long_oi[iid]}, engine OI {engine.open_interest_lots[iid]}")
        return None


# ---------------------------------------------------------------------------------------------
# Re-execution
# ---------------------------------------------------------------------------------------------


def _describe_leaf(leaf: bytes) -> str:
    try:
        seq, index, event = decode_leaf(leaf)
    except ValueError as exc:
        return f"an undecodable leaf ({exc})"
    return f"seq {seq} event {index} {type(event).__name__}"


class _Leaves:
    """Iterator over events.bin records that remembers its scanner (for fault messages)."""

    def __init__(self, image: bytes) -> None:
        self.scanner = OutlogScanner(image)
        self._it = iter(self.scanner)

    def next(self) -> LeafRecord | None:
        """The next framed record, or None at the end of the file or at a framing fault."""
        return next(self._it, None)


class _Run:
    """One verification run over an opened directory (state of the replay loop)."""

    def __init__(self, config: VenueConfig, targets: list[_Target], report: VerifyReport, invariants_every: int,
                 on_progress: Callable[[int, int], None] | None, snapshots: dict[int, Path] | None = None) -> None:
        self.engine = Engine(config, ReferenceBook, check_invariants=invariants_every == 1)
        self.snapshots = dict(sorted((snapshots or {}).items()))
        self.leaves_end = OUTLOG_HEADER_SIZE  # offset in events.bin just past the last leaf compared
        self.latencies_ns: list[int] | None = None  # per-record wall time (benchmarks)
        self.log = MerkleLog()
        self.targets = targets
        self.next_target = 0
        self.previous: _Target | None = None
        self.report = report
        self.invariants_every = invariants_every
        self.on_progress = on_progress
        self.orders = ShadowBook(config)
        self.bands = BandWatch.from_config(config)
        self.oi = _OpenInterest(sorted(config.instruments))
        self._seq = 0

    def check_snapshot(self, seq: int, chain: bytes) -> None:
        """The snapshot of journal seq ``seq`` (and its output-log mark) against the re-executed state."""
        path = self.snapshots.pop(seq)
        source = f"{SNAPSHOT_DIR}/{path.name}"
        try:
            snap = load_snapshot(path)
        except SnapshotCorruptError as exc:
            raise _fail(source, f"does not load: {exc.reason}", seq=seq) from None
        engine = self.engine
        if snap.chain_head != chain:
            raise _fail(source, "journal chain head differs from the journal's at this seq", seq=seq)
        if snap.state_hash != engine.state_hash():
            raise _fail(source, "state hash differs from the re-executed state", seq=seq)
        if snap.state_bytes != engine.snapshot():
            raise _fail(source, "state bytes differ from the re-executed state (same hash: altered body)", seq=seq)
        mark_path = outlog_mark_path(path.parent, seq)
        if mark_path.exists():
            mark = read_outlog_mark(path.parent, seq)
            where = f"{SNAPSHOT_DIR}/{mark_path.name}"
            if mark is None or mark_path.read_bytes() != _mark_bytes(mark):
                raise _fail(where, "malformed output-log mark (not the JSON the venue writes)", seq=seq)
            log = self.log
            if (mark.tree_size, mark.root, mark.offset) != (log.size, log.root(), self.leaves_end):
                raise _fail(where, f"output-log mark (size {mark.tree_size}, offset {mark.offset}) differs from the "
                                   f"re-derived log (size {log.size}, offset {self.leaves_end})", seq=seq)
        self.report.snapshots += 1

    def full_invariants(self, seq: int) -> None:
        try:
            self.engine.check_invariants()
        except InvariantViolation as exc:
            raise _fail(JOURNAL_NAME, f"invariant broken after this command: {exc}", seq=seq) from None
        self.report.invariant_checks += 1

    def check_targets(self, seq: int, chain: bytes) -> None:
        """Compare every checkpoint at journal seq ``seq`` with the re-derived log, state and chain."""
        targets = self.targets
        while self.next_target < len(targets) and targets[self.next_target].cp.journal_seq == seq:
            target = targets[self.next_target]
            self.next_target += 1
            cp, log = target.cp, self.log
            if cp.tree_size != log.size:
                raise _fail(target.source, f"signed tree size {cp.tree_size}, but journal seqs 1..{seq} produce "
                                           f"{log.size} events", seq=seq)
            if cp.root_hash != log.root():
                raise _fail(target.source, f"signed root differs from the root of the re-derived log "
                                           f"(size {log.size})", seq=seq)
            if cp.state_hash != self.engine.state_hash():
                raise _fail(target.source, "signed state hash differs from the re-executed state", seq=seq)
            if cp.journal_head != chain:
                raise _fail(target.source, "signed journal head differs from the journal's chain", seq=seq)
            previous = self.previous
            if previous is not None:
                old = previous.cp
                proof = log.consistency_proof(old.tree_size, cp.tree_size) if 0 < old.tree_size < cp.tree_size else []
                try:
                    check_consistent(old, cp, proof)
                except CheckpointConsistencyError as exc:
                    raise _fail(target.source, f"inconsistent with {previous.source}: {exc}", seq=seq) from None
            self.previous = target
            self.full_invariants(seq)
            self.report.checkpoints += 1

    def replay(self, reader: JournalReader, leaves: _Leaves, events_name: str) -> int:
        """Re-execute every journal record and compare leaves; return the offset after the last record.

        On a finding, the report still counts what was verified before it (commands before the
        divergent one, fills checked so far).
        """
        try:
            return self._replay(reader, leaves, events_name)
        except _Stop:
            self.report.commands = max(0, self._seq - 1)
            self.report.fills = self.orders.fills
            self.report.band_fills = self.bands.checked if self.bands is not None else 0
            raise

    def _replay(self, reader: JournalReader, leaves: _Leaves, events_name: str) -> int:
        """The loop of :meth:`replay`.

        Longer than the house ~70 lines on purpose: this is the per-event hot loop, and splitting it
        into per-event calls costs a measurable share of the verifier's speed (locals are bound once).
        """
        engine, log_append, orders, report = self.engine, self.log.append, self.orders, self.report
        bands = self.bands
        band_events = BAND_EVENTS if bands is not None else frozenset()
        order_events = ORDER_EVENTS
        oi, account_fields = self.oi, _account_fields
        apply, decode, encode, head = engine.apply, decode_sequenced, encode_event, LEAF_HEAD.pack
        books = list(engine.books.values())
        every = self.invariants_every if self.invariants_every > 1 else 0
        next_leaf = leaves.next
        total = reader.size_bytes
        target_seq = self._next_target_seq()
        snapshot_seqs = self.snapshots
        end = reader.header.start.offset
        found = None
        seq = 0
        latencies = self.latencies_ns
        clock = time.perf_counter_ns
        lap = clock()
        for record in reader.records():
            seq, end = record.seq, record.end_offset
            self._seq = seq
            try:
                item = decode(record.payload)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise _fail(JOURNAL_NAME, f"payload does not decode as a command: {exc}", record.offset, seq) from None
            try:
                events: list[Any] = apply(item)
            except InvariantViolation as exc:
                raise _fail(JOURNAL_NAME, f"reference engine: {exc}", record.offset, seq) from None
            except Exception as exc:  # noqa: BLE001 - a journal that crashes the engine is a finding, not a traceback
                raise _fail(JOURNAL_NAME, f"reference engine failed on this command: {type(exc).__name__}: {exc}",
                            record.offset, seq) from exc
            touched: set[int] = set()
            for index, ev in enumerate(events):
                leaf = head(LEAF_VERSION, seq, index) + encode(ev)
                found = next_leaf()
                if found is None:
                    raise _fail(events_name, f"ends, but seq {seq} produces event {index} "
                                             f"{type(ev).__name__}{self._fault_detail(leaves)}",
                                self._leaves_end(leaves), seq)
                if found.leaf != leaf:
                    raise _fail(events_name, f"leaf {self.log.size} is "
                                             f"{_describe_leaf(found.leaf)}; re-execution gives seq {seq} event "
                                             f"{index} {type(ev).__name__}", found.offset, seq)
                log_append(leaf)
                kind = type(ev)
                if kind in order_events:
                    why = orders.observe(ev, seq)
                    if why is not None:
                        raise _fail(events_name, why, found.offset, seq)
                if kind in band_events:
                    assert bands is not None
                    why = bands.observe(ev)
                    if why is not None:
                        raise _fail(events_name, why, found.offset, seq)
                if kind is TradeExecuted:
                    touched.add(ev.maker_account_id)
                    touched.add(ev.taker_account_id)
                elif kind in _POSITION_NEUTRAL:
                    pass
                else:
                    for name in account_fields(kind):
                        touched.add(getattr(ev, name))
            report.events += len(events)
            if seq in snapshot_seqs:
                if found is not None:
                    self.leaves_end = found.offset + 4 + len(found.leaf)
                self.check_snapshot(seq, record.chain)
            if bands is not None:
                bands.end_command()
            if touched:
                for account_id in touched:
                    oi.refresh(engine, account_id)
                why = oi.check(engine)
                if why is not None:
                    raise _fail(JOURNAL_NAME, f"invariant broken after this command: {why}", record.offset, seq)
            for book in books:
                bid, ask = book.best_bid(), book.best_ask()
                if bid is not None and ask is not None and bid >= ask:
                    raise _fail(JOURNAL_NAME, f"book {book.instrument_id} crossed at rest: {bid} >= {ask}",
                                record.offset, seq)
            if every and seq % every == 0:
                self.full_invariants(seq)
            if seq == target_seq:
                self.check_targets(seq, record.chain)
                target_seq = self._next_target_seq()
            if self.on_progress is not None and not seq & (_PROGRESS_EVERY - 1):
                self.on_progress(end, total)
            if latencies is not None:
                now = clock()
                latencies.append(now - lap)
                lap = now
        report.commands = seq
        report.fills = orders.fills
        report.band_fills = bands.checked if bands is not None else 0
        if self.invariants_every == 1:  # the engine ran the full check after every command itself
            report.invariant_checks += seq
        return end

    def _next_target_seq(self) -> int:
        return self.targets[self.next_target].cp.journal_seq if self.next_target < len(self.targets) else -1

    @staticmethod
    def _fault_detail(leaves: _Leaves) -> str:
        fault = leaves.scanner.fault
        return f" (framing stops: {fault.reason}: {fault.detail})" if fault else ""

    @staticmethod
    def _leaves_end(leaves: _Leaves) -> int:
        scanner = leaves.scanner
        return scanner.fault.offset if scanner.fault else scanner.end_offset


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def verify_directory(
    directory: str | Path,
    *,
    key: str | VerifierKey | None = None,
    trusted_checkpoints: Sequence[bytes] = (),
    invariants_every: int = INVARIANTS_EVERY_DEFAULT,
    on_progress: Callable[[int, int], None] | None = None,
    latencies_ns: list[int] | None = None,
) -> VerifyReport:
    """Verify a venue directory by re-execution on the reference engine (see the module docstring).

    Args:
        directory: the venue directory.
        key: the venue's verifier key string (pin it: it comes from outside the directory); None
            reads ``venue.pub`` from the directory (then a wholesale re-signing is not detected).
        trusted_checkpoints: signed checkpoint notes seen earlier (e.g. published); each must be
            reproduced and none may be newer than the directory's newest checkpoint.
        invariants_every: full invariant check every this many commands (1 = after every command,
            0 = only at checkpoints and at the end).
        on_progress: called with (journal bytes done, journal bytes total) now and then.
        latencies_ns: when given, the time spent on each journal record (read, re-executed, checked)
            is appended to it, in ns (benchmarks; ``time.perf_counter_ns``).

    Returns:
        A :class:`VerifyReport`; ``status`` is the process exit code (0 / 1 / 2).
    """
    started = time.perf_counter()
    directory = Path(directory)
    report = VerifyReport(EXIT_OK)
    try:
        _verify(directory, key, trusted_checkpoints, max(0, invariants_every), on_progress, report, latencies_ns)
    except _Stop as stop:
        report.status, report.finding = stop.status, stop.finding
    report.elapsed_s = time.perf_counter() - started
    return report


def _verify(directory: Path, key: str | VerifierKey | None, trusted: Sequence[bytes], invariants_every: int,
            on_progress: Callable[[int, int], None] | None, report: VerifyReport,
            latencies_ns: list[int] | None = None) -> None:
    config, verifier = _load_inputs(directory, key)
    local = _local_checkpoints(directory, verifier, report.warnings)
    targets = _targets(local, trusted, verifier)
    try:
        reader = JournalReader(directory / JOURNAL_NAME)
    except JournalCorruptError as exc:
        raise _fail(JOURNAL_NAME, f"file header: {exc.reason.value}: {exc.detail}", exc.offset) from None
    except JournalIOError as exc:
        raise _cannot(JOURNAL_NAME, str(exc)) from None
    with reader:
        if reader.header.first_seq != 1:
            raise _cannot(JOURNAL_NAME, f"a continuation segment (first seq {reader.header.first_seq}) cannot be "
                                        "re-executed from scratch")
        image = (directory / EVENTS_NAME).read_bytes()
        try:
            journal_id = decode_outlog_header(image)
        except ValueError as exc:
            raise _fail(EVENTS_NAME, f"file header: {exc}", 0) from None
        if journal_id != reader.header.journal_id:
            raise _fail(EVENTS_NAME, "file header names another journal (journal_id differs)", 16)
        if reader.header.journal_id != journal_id_for(verifier):
            report.warnings.append(f"{JOURNAL_NAME}'s journal_id is not the one derived from the venue key "
                                   "(a directory created before the output log existed?)")
        run = _Run(config, targets, report, invariants_every, on_progress, _snapshot_files(directory))
        run.latencies_ns = latencies_ns
        if run._next_target_seq() == 0:
            run.check_targets(0, reader.header.chain_in)
        if 0 in run.snapshots:
            run.check_snapshot(0, reader.header.chain_in)
        leaves = _Leaves(image)
        try:
            end = run.replay(reader, leaves, EVENTS_NAME)
        except JournalCorruptError as exc:
            raise _fail(JOURNAL_NAME, f"{exc.reason.value}: {exc.detail}", exc.offset, exc.seq) from None
        _after_replay(run, reader, leaves, end, report)


def _mark_bytes(mark: OutlogMark) -> bytes:
    """The exact bytes :func:`~bastion.audit.layout.write_outlog_mark` writes for ``mark`` (one canonical form,
    so that no edit of the file, even one that parses to the same values, goes unnoticed)."""
    body = {"seq": mark.seq, "tree_size": mark.tree_size, "root": mark.root.hex(), "offset": mark.offset}
    return (json.dumps(body, sort_keys=True) + "\n").encode("ascii")


def _snapshot_files(directory: Path) -> dict[int, Path]:
    """Snapshot files under ``snapshots/`` by the journal seq in their names (temp files ignored)."""
    folder = directory / SNAPSHOT_DIR
    if not folder.is_dir():
        return {}
    found: dict[int, Path] = {}
    for path in folder.iterdir():
        seq = snapshot_seq(path)
        if seq is not None and path.is_file():
            found[seq] = path
    return found


def _after_replay(run: _Run, reader: JournalReader, leaves: _Leaves, end: int, report: VerifyReport) -> None:
    """Checks once the journal is exhausted: tails, extra leaves, uncovered checkpoints, final invariants."""
    head_seq = report.commands
    if end != reader.size_bytes:
        torn = reader.torn_tail
        detail = f"{torn.reason.value}: {torn.detail}" if torn else "unread bytes"
        raise _fail(JOURNAL_NAME, f"torn tail of {reader.size_bytes - end} bytes ({detail}); a crashed venue "
                                  "must be reopened (recovery cuts it) before it is verified", end, head_seq + 1)
    if run.snapshots:
        seq, path = next(iter(run.snapshots.items()))
        raise _fail(f"{SNAPSHOT_DIR}/{path.name}", f"a snapshot of journal seq {seq}, but the journal ends at seq "
                                                    f"{head_seq} (records deleted, or a forged snapshot)", seq=seq)
    if run.next_target < len(run.targets):
        target = run.targets[run.next_target]
        raise _fail(target.source, f"covers journal seq {target.cp.journal_seq}, but the journal ends at seq "
                                   f"{head_seq} (records deleted?)", seq=head_seq)
    extra = leaves.next()
    if extra is not None:
        raise _fail(EVENTS_NAME, f"{_describe_leaf(extra.leaf)} is beyond every event the journal produces",
                    extra.offset)
    fault = leaves.scanner.fault
    if fault is not None:
        raise _fail(EVENTS_NAME, f"{fault.reason}: {fault.detail}", fault.offset)
    run.full_invariants(head_seq)
    newest = run.previous.cp if run.previous is not None else None
    size = run.log.size
    if newest is None:
        if size:
            raise _fail(CHECKPOINT_LATEST, f"no signed checkpoint covers the {size} events of this directory")
        return
    if size > newest.tree_size:
        report.warnings.append(f"{size - newest.tree_size} events after the newest checkpoint (tree size "
                               f"{newest.tree_size}) are not signed yet (crash before the next checkpoint?)")
    elif head_seq > newest.journal_seq:
        report.warnings.append(f"journal seqs {newest.journal_seq + 1}..{head_seq} produced no events and follow "
                               "the newest checkpoint")
