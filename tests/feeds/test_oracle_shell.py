"""The oracle shell: only reports signed by the trusted key of their source reach aggregation; every
forgery is refused with a reason (the replay's use of it: tests/replay/test_signed_oracle.py)."""

from __future__ import annotations

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bastion.core.oracle import SourcePrice
from bastion.feeds.oracle_reports import PriceReport, SignedReport, sign_report
from bastion.feeds.oracle_shell import (
    OracleShell,
    SourceSigner,
    parse_public_key,
    public_key_hex,
    replay_signing_key,
)

T = 1_678_521_000 * 10**9
KEYS = {s: replay_signing_key(s) for s in ("kraken", "binance")}
ATTACKER = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def _price(source: str, price: int, ts: int = T) -> SourcePrice:
    return SourcePrice(source, "BTC", "USD", price, -2, ts)


def _shell() -> OracleShell:
    return OracleShell({s: k.public_key() for s, k in KEYS.items()})


def _altered(signed: SignedReport, price: int) -> SignedReport:
    """The same signature over a payload whose price was changed in transit."""
    report = msgspec.msgpack.decode(signed.payload, type=PriceReport)
    payload = msgspec.msgpack.encode(msgspec.structs.replace(report, price=price))
    return SignedReport(signed.source_id, payload, signed.signature)


def test_replay_keys_are_deterministic_and_distinct() -> None:
    assert public_key_hex(replay_signing_key("kraken")) == public_key_hex(replay_signing_key("kraken"))
    assert public_key_hex(replay_signing_key("kraken")) != public_key_hex(replay_signing_key("binance"))
    text = public_key_hex(KEYS["kraken"])
    assert len(text) == 64 and public_key_hex(parse_public_key(text)) == text
    for bad in ("zz" * 32, "ab" * 31, ""):
        with pytest.raises(ValueError):
            parse_public_key(bad)


def test_honest_reports_pass_and_every_forgery_is_refused_by_reason() -> None:
    shell, signer = _shell(), SourceSigner(KEYS)
    honest = [signer.sign(_price("binance", 2_000_100)), signer.sign(_price("kraken", 2_000_000))]
    batch = shell.tick(honest, T)
    assert batch.accepted == (_price("binance", 2_000_100), _price("kraken", 2_000_000)) and batch.refused == 0
    forged = [
        _altered(honest[1], 1_000_000),                                     # price changed in transit
        sign_report(PriceReport("kraken", "BTC", "USD", 1, -2, T), ATTACKER),  # right id, wrong key
        sign_report(PriceReport("mallory", "BTC", "USD", 1, -2, T), ATTACKER),  # unknown source
        SignedReport("binance", sign_report(PriceReport("kraken", "BTC", "USD", 1, -2, T), KEYS["binance"]).payload,
                     sign_report(PriceReport("kraken", "BTC", "USD", 1, -2, T), KEYS["binance"]).signature),
    ]
    batch = shell.tick(honest + forged, T)
    assert batch.accepted == (_price("binance", 2_000_100), _price("kraken", 2_000_000)) and batch.refused == 4
    assert dict(shell.rejected) == {"kraken:signature_invalid": 2, "mallory:source_unknown": 1,
                                    "binance:source_mismatch": 1}
    assert shell.figures()["reports_rejected"] == 4 and shell.accepted == 4


def test_replayed_future_and_duplicate_reports_are_refused() -> None:
    shell, signer = _shell(), SourceSigner(KEYS)
    old = signer.sign(_price("kraken", 2_000_000, T))
    new = signer.sign(_price("kraken", 2_000_500, T + 60 * 10**9))
    assert shell.tick([old], T).accepted == (_price("kraken", 2_000_000, T),)
    assert shell.tick([old], T + 10).accepted == (_price("kraken", 2_000_000, T),)  # a quiet source re-sent: fine
    assert shell.tick([new, old], T + 60 * 10**9).accepted == (_price("kraken", 2_000_500, T + 60 * 10**9),)
    assert shell.tick([old], T + 61 * 10**9).accepted == ()  # older than what was accepted: a replay
    future = signer.sign(_price("binance", 2_000_000, T + 10**12))
    assert shell.tick([future], T + 61 * 10**9).accepted == ()
    assert shell.rejected == {"kraken:duplicate_source": 1, "kraken:replayed_older": 1, "binance:from_future": 1}


def test_the_signer_signs_each_new_report_once() -> None:
    signer = SourceSigner(KEYS)
    a = signer.sign(_price("kraken", 1))
    assert signer.sign(_price("kraken", 1)) is a and signer.signed == 1
    assert signer.sign(_price("kraken", 2)) != a and signer.signed == 2
