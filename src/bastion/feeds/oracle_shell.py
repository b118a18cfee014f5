"""The oracle shell: signed source reports in, verified ``SourcePrice`` batches out (shell code).

Every price source signs its reports with its own Ed25519 key (:mod:`bastion.feeds.oracle_reports`);
the venue trusts one public key per source id (in a replay: ``public_key`` of each
``[[oracle.sources]]`` of the scenario). :class:`OracleShell` is the only path from a report to the
engine: per index tick it

1. verifies the batch (:func:`~bastion.feeds.oracle_reports.verify_many`: key by the clear-text source
   id, signature over the domain-separated canonical payload, strict decoding, key id = payload source);
2. refuses, among verified reports, a source that reported twice in one batch (the newest is kept),
   a report dated after the tick (``from_future``) and one older than the newest already accepted from
   that source (``replayed_older``: an old signed report re-sent);
3. hands the accepted reports, in source-id order, to the caller, which aggregates them
   (``OracleState.update``) and journals ``SetOraclePrice``.

Every refusal is counted by ``"<source id>:<reason>"`` (``rejected``); a refused report never reaches
aggregation, so it never reaches the engine. Identical signed reports (same payload and signature,
e.g. a quiet source's last bar re-sent every tick) are verified once and remembered (``memo_max``).

Replay keys (:func:`replay_signing_key`): a replay plays the sources too, so each source id gets a
deterministic key, ``Ed25519 seed = SHA-256("bastion.replay.oracle-source" || 0x00 || source_id)``:
the same on every machine, independent of the scenario seed, and obviously not a secret (a replay
proves the pipeline, not the provenance of historical data).
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bastion.core.oracle import SourcePrice
from bastion.feeds.oracle_reports import (
    OracleReportError,
    OracleReportErrorCode,
    PriceReport,
    SignedReport,
    load_public_key,
    sign_report,
    verify_report,
)

__all__ = [
    "OracleShell",
    "ShellBatch",
    "SourceSigner",
    "parse_public_key",
    "public_key_hex",
    "replay_signing_key",
]

_REPLAY_KEY_DOMAIN = b"bastion.replay.oracle-source\x00"
memo_max = 4_096
"""Most distinct verified signed reports remembered (bounded; evicted oldest first)."""
batch_reports_max = 256
"""Most reports one tick may carry (the verify_many bound)."""


def replay_signing_key(source_id: str) -> Ed25519PrivateKey:
    """The deterministic replay key of ``source_id`` (module docstring)."""
    seed = hashlib.sha256(_REPLAY_KEY_DOMAIN + source_id.encode("utf-8")).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The 32-byte raw Ed25519 public key (RFC 8032) as 64 lowercase hex digits."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def parse_public_key(text: str) -> Ed25519PublicKey:
    """Inverse of :func:`public_key_hex`.

    Raises:
        ValueError: not 64 hex digits, or not a valid Ed25519 key.
    """
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"public key {text!r} is not hex") from None
    if len(raw) != 32:
        raise ValueError(f"public key {text!r} is not 32 bytes")
    try:
        return load_public_key(raw)
    except OracleReportError as exc:
        raise ValueError(f"public key {text!r}: {exc}") from None


class SourceSigner:
    """The source side of a replay: signs each report with its source's key (one signature per report)."""

    def __init__(self, keys: Mapping[str, Ed25519PrivateKey]) -> None:
        self.keys = dict(keys)
        self.signed = 0
        self._last: dict[str, tuple[SourcePrice, SignedReport]] = {}

    def sign(self, price: SourcePrice) -> SignedReport:
        """``price`` as a signed report of its source (a repeat of the previous report is not re-signed)."""
        last = self._last.get(price.source_id)
        if last is not None and last[0] == price:
            return last[1]
        report = PriceReport(price.source_id, price.symbol, price.quote, price.price, price.exponent,
                             price.timestamp_ns)
        signed = sign_report(report, self.keys[price.source_id])
        self.signed += 1
        self._last[price.source_id] = (price, signed)
        return signed


@dataclass(frozen=True, slots=True)
class ShellBatch:
    """One tick through the shell: the reports accepted (source-id order) and how many were refused."""

    accepted: tuple[SourcePrice, ...]
    refused: int


class OracleShell:
    """Verify, then filter, signed reports (module docstring).

    Args:
        trusted_keys: source id -> the Ed25519 public key trusted for it.
    """

    def __init__(self, trusted_keys: Mapping[str, Ed25519PublicKey]) -> None:
        self.trusted_keys = dict(trusted_keys)
        self.received = 0
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self._newest_ns: dict[str, int] = {}
        self._memo: OrderedDict[tuple[str, bytes, bytes], SourcePrice] = OrderedDict()

    def _verify(self, signed: SignedReport) -> SourcePrice:
        key = (signed.source_id, signed.payload, signed.signature)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        price = verify_report(signed, self.trusted_keys)
        self._memo[key] = price
        if len(self._memo) > memo_max:
            self._memo.popitem(last=False)
        return price

    def tick(self, batch: Sequence[SignedReport], now_ns: int) -> ShellBatch:
        """Verify and filter one tick's reports; return what may be aggregated (see module docstring)."""
        if len(batch) > batch_reports_max:
            raise OracleReportError(OracleReportErrorCode.batch_too_large, str(len(batch)))
        self.received += len(batch)
        chosen: dict[str, SourcePrice] = {}
        refused = 0
        for signed in batch:
            try:
                price = self._verify(signed)
            except OracleReportError as error:
                self.rejected[f"{_printable(signed.source_id)}:{error.code.name}"] += 1
                refused += 1
                continue
            reason = None
            if price.timestamp_ns > now_ns:
                reason = "from_future"
            elif price.timestamp_ns < self._newest_ns.get(price.source_id, price.timestamp_ns):
                reason = "replayed_older"
            elif price.source_id in chosen:
                keep = max(chosen[price.source_id], price, key=lambda p: p.timestamp_ns)
                self.rejected[f"{price.source_id}:duplicate_source"] += 1
                refused += 1
                chosen[price.source_id] = keep
                continue
            if reason is not None:
                self.rejected[f"{price.source_id}:{reason}"] += 1
                refused += 1
                continue
            chosen[price.source_id] = price
        for source_id, price in chosen.items():
            self._newest_ns[source_id] = price.timestamp_ns
        self.accepted += len(chosen)
        return ShellBatch(tuple(chosen[s] for s in sorted(chosen)), refused)

    def figures(self) -> dict[str, object]:
        """Counts for a summary: received, accepted, rejected by ``source:reason``, trusted keys."""
        return {
            "reports_received": self.received,
            "reports_accepted": self.accepted,
            "reports_rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "trusted_keys": {s: public_key_hex(k) for s, k in sorted(self.trusted_keys.items())},
        }


def _printable(text: str) -> str:
    """A source id as it may appear in a counter key (anything an attacker sent, shortened and escaped)."""
    return text[:64].encode("ascii", "backslashreplace").decode("ascii")
