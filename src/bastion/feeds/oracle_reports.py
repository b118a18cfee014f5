"""Signed oracle price reports: canonical encoding, Ed25519 signing and verification (shell).

A price source (a venue adapter, a validator, a partner feed) signs each report with its own
Ed25519 key (RFC 8032). The exchange keeps a table of trusted public keys by source id; only
reports that verify against that table are turned into core inputs
(``bastion.core.oracle.SourcePrice``) — ``verify_report`` is the only path from bytes to a
core oracle input.

Canonical encoding: ``PriceReport`` is a msgspec Struct encoded as a MessagePack array
``[source_id, symbol, quote, price, exponent, timestamp_ns]`` (msgspec always uses the shortest
MessagePack form for each value, so one report has exactly one encoding). The signed message is
``DOMAIN + payload`` (domain separation, so a report signature can never be replayed as a
signature of some other Bastion message). Verification re-encodes the decoded report and rejects
any payload that is not byte-identical to the canonical encoding.

Verification order is deliberate: the key is looked up by the clear-text ``source_id`` of the
``SignedReport`` and the signature is checked *before* the payload is parsed, so untrusted bytes
are never decoded; then the payload's own ``source_id`` must equal the key id.

Errors: every failure raises ``OracleReportError`` with an ``OracleReportErrorCode``;
third-party errors (msgspec, cryptography) are translated at this boundary.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bastion.core.oracle import SourcePrice

DOMAIN = b"bastion/oracle-report/v1\x00"
"""Domain-separation prefix of every signed report message."""

SIGNATURE_SIZE = 64
"""Ed25519 signature size in bytes (RFC 8032 section 5.1.6)."""

NAME_LENGTH_MAX = 64
"""Longest source id, symbol or currency code on the wire, in characters."""

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
EXPONENT_WIRE_MIN = -128
EXPONENT_WIRE_MAX = 127

SIGNED_REPORT_SIZE_MAX = 1_024
"""Largest encoded SignedReport accepted by decode_signed, in bytes."""

BATCH_REPORTS_MAX = 256
"""Most signed reports verify_many examines in one call."""


class OracleReportErrorCode(enum.IntEnum):
    """Why a signed report was refused (stable numbers)."""

    source_unknown = 1
    signature_invalid = 2
    payload_malformed = 3
    payload_not_canonical = 4
    source_mismatch = 5
    field_out_of_range = 6
    wire_malformed = 7
    batch_too_large = 8


class OracleReportError(Exception):
    """A price report could not be encoded, decoded or verified.

    Attributes:
        code: the OracleReportErrorCode.
    """

    def __init__(self, code: OracleReportErrorCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code


class PriceReport(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """One price observation as published by a source.

    Attributes:
        source_id: the publishing source (also the key id), 1..64 printable ASCII characters.
        symbol: the priced asset, e.g. ``"BTC"`` (or a stablecoin for a rate report).
        quote: the currency of the price, e.g. ``"USD"``, ``"USDT"``.
        price: mantissa; the price is ``price * 10**exponent`` (signed 64-bit).
        exponent: base-10 exponent (-128..127 on the wire; the core accepts -18..18).
        timestamp_ns: observation time at the source, ns since the Unix epoch (signed 64-bit).
    """

    source_id: str
    symbol: str
    quote: str
    price: int
    exponent: int
    timestamp_ns: int

    def to_source_price(self) -> SourcePrice:
        """The core input for this report (call only on a verified report)."""
        return SourcePrice(
            source_id=self.source_id,
            symbol=self.symbol,
            quote=self.quote,
            price=self.price,
            exponent=self.exponent,
            timestamp_ns=self.timestamp_ns,
        )


class SignedReport(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """A canonical report payload with its Ed25519 signature.

    Attributes:
        source_id: key id in clear text (must equal the payload's source_id).
        payload: ``canonical_bytes(report)``.
        signature: 64-byte Ed25519 signature of ``DOMAIN + payload``.
    """

    source_id: str
    payload: bytes
    signature: bytes


_REPORT_ENCODER = msgspec.msgpack.Encoder()
_REPORT_DECODER = msgspec.msgpack.Decoder(PriceReport)
_SIGNED_DECODER = msgspec.msgpack.Decoder(SignedReport)


def _check_name(value: str, what: str) -> None:
    if not (0 < len(value) <= NAME_LENGTH_MAX and value.isascii() and value.isprintable()):
        raise OracleReportError(
            OracleReportErrorCode.field_out_of_range,
            f"{what} must be 1..{NAME_LENGTH_MAX} printable ASCII characters",
        )


def validate_report(report: PriceReport) -> None:
    """Check wire-level field ranges (not business rules such as price > 0).

    Raises:
        OracleReportError: ``field_out_of_range``.
    """
    _check_name(report.source_id, "source_id")
    _check_name(report.symbol, "symbol")
    _check_name(report.quote, "quote")
    in_range = (
        INT64_MIN <= report.price <= INT64_MAX
        and EXPONENT_WIRE_MIN <= report.exponent <= EXPONENT_WIRE_MAX
        and INT64_MIN <= report.timestamp_ns <= INT64_MAX
    )
    if not in_range:
        raise OracleReportError(OracleReportErrorCode.field_out_of_range, "integer out of range")


def canonical_bytes(report: PriceReport) -> bytes:
    """The unique byte encoding of ``report`` (MessagePack array, shortest forms).

    Raises:
        OracleReportError: ``field_out_of_range``.
    """
    validate_report(report)
    return _REPORT_ENCODER.encode(report)


def sign_report(report: PriceReport, private_key: Ed25519PrivateKey) -> SignedReport:
    """Sign ``report`` with the source's Ed25519 key.

    Args:
        report: the report; its ``source_id`` becomes the key id.
        private_key: the source's key (``cryptography`` Ed25519PrivateKey).

    Returns:
        SignedReport over ``DOMAIN + canonical_bytes(report)``.

    Raises:
        OracleReportError: ``field_out_of_range``.
    """
    payload = canonical_bytes(report)
    signature = private_key.sign(DOMAIN + payload)
    assert len(signature) == SIGNATURE_SIZE
    return SignedReport(source_id=report.source_id, payload=payload, signature=signature)


def verify_report(
    signed: SignedReport, trusted_keys: Mapping[str, Ed25519PublicKey]
) -> SourcePrice:
    """Verify a signed report and return it as a core input.

    Order: key lookup by clear-text source id, signature check over ``DOMAIN + payload``,
    strict decode, canonical re-encoding check, key id == payload source id, field ranges.

    Args:
        signed: the signed report.
        trusted_keys: source id -> trusted Ed25519 public key.

    Returns:
        The verified report as ``bastion.core.oracle.SourcePrice``.

    Raises:
        OracleReportError: ``source_unknown``, ``signature_invalid``, ``payload_malformed``,
            ``payload_not_canonical``, ``source_mismatch`` or ``field_out_of_range``.
    """
    key = trusted_keys.get(signed.source_id)
    if key is None:
        raise OracleReportError(OracleReportErrorCode.source_unknown, repr(signed.source_id))
    if len(signed.signature) != SIGNATURE_SIZE:
        raise OracleReportError(OracleReportErrorCode.signature_invalid, "bad signature size")
    try:
        key.verify(signed.signature, DOMAIN + signed.payload)
    except InvalidSignature as exc:
        raise OracleReportError(OracleReportErrorCode.signature_invalid, "bad signature") from exc
    try:
        report = _REPORT_DECODER.decode(signed.payload)
    except msgspec.DecodeError as exc:
        raise OracleReportError(OracleReportErrorCode.payload_malformed, str(exc)) from exc
    validate_report(report)
    if _REPORT_ENCODER.encode(report) != signed.payload:
        raise OracleReportError(OracleReportErrorCode.payload_not_canonical, "re-encoding differs")
    if report.source_id != signed.source_id:
        raise OracleReportError(OracleReportErrorCode.source_mismatch, "key id != source_id")
    return report.to_source_price()


def verify_many(
    batch: Iterable[SignedReport], trusted_keys: Mapping[str, Ed25519PublicKey]
) -> tuple[list[SourcePrice], list[tuple[SignedReport, OracleReportError]]]:
    """Verify up to BATCH_REPORTS_MAX reports; return (verified inputs, refusals with errors).

    Raises:
        OracleReportError: ``batch_too_large`` if the batch exceeds BATCH_REPORTS_MAX.
    """
    verified: list[SourcePrice] = []
    refused: list[tuple[SignedReport, OracleReportError]] = []
    for index, signed in enumerate(batch):
        if index >= BATCH_REPORTS_MAX:
            raise OracleReportError(OracleReportErrorCode.batch_too_large, str(index))
        try:
            verified.append(verify_report(signed, trusted_keys))
        except OracleReportError as error:
            refused.append((signed, error))
    return verified, refused


def encode_signed(signed: SignedReport) -> bytes:
    """Wire encoding of a SignedReport (MessagePack array)."""
    return _REPORT_ENCODER.encode(signed)


def decode_signed(data: bytes) -> SignedReport:
    """Parse a SignedReport from the wire (the signature is checked later by verify_report).

    Raises:
        OracleReportError: ``wire_malformed`` (too large or not a SignedReport).
    """
    if len(data) > SIGNED_REPORT_SIZE_MAX:
        raise OracleReportError(OracleReportErrorCode.wire_malformed, "too large")
    try:
        signed = _SIGNED_DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise OracleReportError(OracleReportErrorCode.wire_malformed, str(exc)) from exc
    _check_name(signed.source_id, "source_id")
    return signed


def load_public_key(raw: bytes) -> Ed25519PublicKey:
    """Ed25519 public key from its 32 raw bytes (RFC 8032 encoding).

    Raises:
        OracleReportError: ``field_out_of_range`` if the bytes are not a valid key.
    """
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise OracleReportError(OracleReportErrorCode.field_out_of_range, "bad key") from exc
