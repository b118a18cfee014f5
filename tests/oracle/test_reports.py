"""Signed price reports: canonical bytes, Ed25519 sign/verify, tampering, wrong keys."""

from __future__ import annotations

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from bastion.core.oracle import SourcePrice
from bastion.feeds.oracle_reports import (
    DOMAIN,
    OracleReportError,
    OracleReportErrorCode,
    PriceReport,
    SignedReport,
    canonical_bytes,
    decode_signed,
    encode_signed,
    load_public_key,
    sign_report,
    verify_many,
    verify_report,
)

# Deterministic keys (no randomness in tests).
KRAKEN_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
BINANCE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
TRUSTED = {"kraken": KRAKEN_KEY.public_key(), "binance": BINANCE_KEY.public_key()}
REPORT = PriceReport("kraken", "BTC", "USD", 2_012_345, -2, 1_678_521_000 * 10**9)


def code_of(excinfo: pytest.ExceptionInfo[OracleReportError]) -> OracleReportErrorCode:
    return excinfo.value.code


def test_canonical_bytes_are_a_fixed_msgpack_array() -> None:
    """[source_id, symbol, quote, price, exponent, timestamp_ns] in shortest MessagePack forms:
    0x96 (array of 6), 0xa6 'kraken', 0xa3 'BTC', 0xa3 'USD', 0xce uint32 2012345, 0xfe (-2),
    0xcf uint64 timestamp."""
    expected = (
        "96" + "a6" + b"kraken".hex() + "a3" + b"BTC".hex() + "a3" + b"USD".hex()
        + "ce001eb4b9" + "fe" + "cf174b4df4d1089000"
    )
    assert canonical_bytes(REPORT).hex() == expected


def test_sign_and_verify_round_trip() -> None:
    signed = sign_report(REPORT, KRAKEN_KEY)
    assert len(signed.signature) == 64
    assert verify_report(signed, TRUSTED) == SourcePrice(
        "kraken", "BTC", "USD", 2_012_345, -2, 1_678_521_000 * 10**9
    )
    # Ed25519 is deterministic (RFC 8032): same report, same key -> same signature.
    assert sign_report(REPORT, KRAKEN_KEY) == signed
    assert decode_signed(encode_signed(signed)) == signed


def test_every_tampered_byte_is_rejected() -> None:
    signed = sign_report(REPORT, KRAKEN_KEY)
    for index in range(len(signed.payload)):
        payload = bytearray(signed.payload)
        payload[index] ^= 0x01
        tampered = SignedReport(signed.source_id, bytes(payload), signed.signature)
        with pytest.raises(OracleReportError) as excinfo:
            verify_report(tampered, TRUSTED)
        assert code_of(excinfo) is OracleReportErrorCode.signature_invalid
    for index in range(len(signed.signature)):
        signature = bytearray(signed.signature)
        signature[index] ^= 0x80
        tampered = SignedReport(signed.source_id, signed.payload, bytes(signature))
        with pytest.raises(OracleReportError) as excinfo:
            verify_report(tampered, TRUSTED)
        assert code_of(excinfo) is OracleReportErrorCode.signature_invalid


def test_wrong_key_and_unknown_source_are_rejected() -> None:
    forged = sign_report(REPORT, BINANCE_KEY)  # kraken's report signed with binance's key
    with pytest.raises(OracleReportError) as excinfo:
        verify_report(forged, TRUSTED)
    assert code_of(excinfo) is OracleReportErrorCode.signature_invalid
    with pytest.raises(OracleReportError) as excinfo:
        verify_report(sign_report(REPORT, KRAKEN_KEY), {"binance": TRUSTED["binance"]})
    assert code_of(excinfo) is OracleReportErrorCode.source_unknown


def test_key_id_must_match_payload_source() -> None:
    """Binance signs a report claiming to be from kraken: the signature is valid for binance's
    key, but the payload's source_id is not the key id."""
    payload = canonical_bytes(REPORT)
    signed = SignedReport("binance", payload, BINANCE_KEY.sign(DOMAIN + payload))
    with pytest.raises(OracleReportError) as excinfo:
        verify_report(signed, TRUSTED)
    assert code_of(excinfo) is OracleReportErrorCode.source_mismatch


def test_signature_without_domain_prefix_is_rejected() -> None:
    payload = canonical_bytes(REPORT)
    signed = SignedReport("kraken", payload, KRAKEN_KEY.sign(payload))
    with pytest.raises(OracleReportError) as excinfo:
        verify_report(signed, TRUSTED)
    assert code_of(excinfo) is OracleReportErrorCode.signature_invalid


def test_non_canonical_and_malformed_payloads_are_rejected_even_if_signed() -> None:
    # price 5 encoded as uint64 (0xcf) instead of a positive fixint: same value, other bytes.
    canonical = canonical_bytes(PriceReport("kraken", "BTC", "USD", 5, -2, 7))
    loose = canonical.replace(b"\x05\xfe\x07", b"\xcf" + (5).to_bytes(8, "big") + b"\xfe\x07")
    assert msgspec.msgpack.decode(loose) == msgspec.msgpack.decode(canonical)
    signed = SignedReport("kraken", loose, KRAKEN_KEY.sign(DOMAIN + loose))
    with pytest.raises(OracleReportError) as excinfo:
        verify_report(signed, TRUSTED)
    assert code_of(excinfo) is OracleReportErrorCode.payload_not_canonical
    garbage = b"\x93\x01\x02\x03"
    signed = SignedReport("kraken", garbage, KRAKEN_KEY.sign(DOMAIN + garbage))
    with pytest.raises(OracleReportError) as excinfo:
        verify_report(signed, TRUSTED)
    assert code_of(excinfo) is OracleReportErrorCode.payload_malformed


def test_field_ranges_and_wire_errors() -> None:
    with pytest.raises(OracleReportError) as excinfo:
        canonical_bytes(PriceReport("", "BTC", "USD", 1, 0, 0))
    assert code_of(excinfo) is OracleReportErrorCode.field_out_of_range
    with pytest.raises(OracleReportError) as excinfo:
        canonical_bytes(PriceReport("kraken", "BTC", "USD", 2**63, 0, 0))
    assert code_of(excinfo) is OracleReportErrorCode.field_out_of_range
    with pytest.raises(OracleReportError) as excinfo:
        decode_signed(b"\xc1")
    assert code_of(excinfo) is OracleReportErrorCode.wire_malformed
    with pytest.raises(OracleReportError) as excinfo:
        load_public_key(b"\x00" * 31)
    assert code_of(excinfo) is OracleReportErrorCode.field_out_of_range
    raw = TRUSTED["kraken"].public_bytes_raw()
    assert verify_report(sign_report(REPORT, KRAKEN_KEY), {"kraken": load_public_key(raw)})


def test_verify_many_separates_good_from_bad() -> None:
    good = sign_report(REPORT, KRAKEN_KEY)
    bad = SignedReport("kraken", good.payload, bytes(64))
    verified, refused = verify_many([good, bad], TRUSTED)
    assert verified == [REPORT.to_source_price()]
    assert [error.code for _, error in refused] == [OracleReportErrorCode.signature_invalid]


names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64)


@given(names, names, names, st.integers(-(2**63), 2**63 - 1), st.integers(-128, 127),
       st.integers(-(2**63), 2**63 - 1))
def test_round_trip_any_valid_report(
    source_id: str, symbol: str, quote: str, price: int, exponent: int, timestamp_ns: int
) -> None:
    report = PriceReport(source_id, symbol, quote, price, exponent, timestamp_ns)
    signed = decode_signed(encode_signed(sign_report(report, KRAKEN_KEY)))
    assert verify_report(signed, {source_id: KRAKEN_KEY.public_key()}) == report.to_source_price()
