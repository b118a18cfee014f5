"""The output-log formats: leaf bytes, the compact Merkle frontier, events.bin framing, venue.toml."""

from __future__ import annotations

import struct
import tomllib

import pytest

from bastion.audit.layout import venue_config_to_toml
from bastion.audit.merkle import EMPTY_ROOT, MerkleLog, leaf_hash, merkle_root
from bastion.audit.outlog import (
    LEAF_HEADER_SIZE,
    OUTLOG_HEADER_SIZE,
    MerkleFrontier,
    OutlogScanner,
    decode_leaf,
    decode_outlog_header,
    encode_leaf,
    encode_outlog_header,
    leaves_of,
)
from bastion.core.events import CommandRejected, TradeExecuted, encode_event
from bastion.core.instruments import venue_config_from_dict

TRADE = TradeExecuted(1, 600_000, 3, 1, 10, 11, 5, 6, -18, 90, 0, 0)


def test_leaf_layout_is_version_seq_index_then_the_encoded_event() -> None:
    """The documented leaf layout, byte by byte: u8 1, u64 BE seq, u32 BE index, encode_event(event)."""
    leaf = encode_leaf(0x0102030405060708, 7, TRADE)
    assert leaf[:LEAF_HEADER_SIZE] == bytes([1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 7])
    assert leaf[LEAF_HEADER_SIZE:] == encode_event(TRADE)
    assert decode_leaf(leaf) == (0x0102030405060708, 7, TRADE)
    assert leaves_of(9, [TRADE, CommandRejected("x", 1, 2, 100)]) == [
        encode_leaf(9, 0, TRADE), encode_leaf(9, 1, CommandRejected("x", 1, 2, 100))]


@pytest.mark.parametrize("bad", [b"", bytes(13), b"\x02" + bytes(12) + encode_event(TRADE),
                                 encode_leaf(1, 0, TRADE)[:-1]])
def test_malformed_leaves_are_rejected(bad: bytes) -> None:
    with pytest.raises(ValueError):
        decode_leaf(bad)


def test_frontier_root_equals_the_full_tree_at_every_size() -> None:
    """MerkleFrontier keeps O(log n) hashes yet gives the RFC 6962 root of MerkleLog and of the
    level-by-level reference merkle_root, at every size 0..300."""
    frontier, log, hashes = MerkleFrontier(), MerkleLog(), []
    assert frontier.root() == EMPTY_ROOT
    for i in range(300):
        data = i.to_bytes(4, "big")
        frontier.append(data)
        log.append(data)
        hashes.append(leaf_hash(data))
        assert frontier.root() == log.root() == merkle_root(hashes), i
        assert len(frontier.hashes) == (i + 1).bit_count()


def _file(*leaves: bytes) -> bytes:
    return encode_outlog_header(bytes(range(16))) + b"".join(struct.pack("<I", len(x)) + x for x in leaves)


def test_scanner_frames_records_and_classifies_tails() -> None:
    a, b = encode_leaf(1, 0, TRADE), encode_leaf(2, 0, TRADE)
    image = _file(a, b)
    assert decode_outlog_header(image) == bytes(range(16))
    scanner = OutlogScanner(image)
    assert [r.leaf for r in scanner] == [a, b]
    assert scanner.fault is None and scanner.end_offset == len(image)
    # A record cut short by a crash is torn; so is a zero-filled tail; an impossible length is not.
    cases = [(image[:-5], 1, "truncated", True), (image + bytes(40), 2, "bad_length", True),
             (image + b"\x00\x00\x02\x00" + bytes(8), 2, "bad_length", False)]
    for tail, count, reason, torn in cases:
        scanner = OutlogScanner(tail)
        assert len(list(scanner)) == count
        assert scanner.fault is not None and (scanner.fault.reason, scanner.fault.torn) == (reason, torn)
        assert scanner.end_offset == scanner.fault.offset


@pytest.mark.parametrize("offset", range(0, OUTLOG_HEADER_SIZE))
def test_every_header_byte_is_checked(offset: int) -> None:
    """Flipping any header byte fails decoding or changes the journal id it binds to."""
    image = bytearray(_file())
    image[offset] ^= 0x40
    try:
        assert decode_outlog_header(bytes(image)) != bytes(range(16))
    except ValueError:
        pass


def test_venue_toml_round_trips(config) -> None:
    """venue.toml written from a config loads back to the same canonical config (and so the same hash)."""
    text = venue_config_to_toml(config)
    assert venue_config_from_dict(tomllib.loads(text)).canonical() == config.canonical()


def test_venue_toml_round_trips_integrity_and_guardians(config) -> None:
    """Market-integrity settings and guardian ids (issue 4) survive venue.toml too, when the config has them."""
    instruments = pytest.importorskip("bastion.core.instruments")
    if not hasattr(instruments, "IntegrityConfig"):
        pytest.skip("this build has no market-integrity config")
    raw = tomllib.loads(venue_config_to_toml(config))
    raw["venue"]["guardian_ids"] = [7, 3]
    raw["instrument"][0]["integrity"] = {"band_ppm": 50_000, "band_mode": "both_sides", "band_reference": "last_trade",
                                         "luld_halt_ns": 5_000_000_000, "auction_allocation": "pro_rata",
                                         "auction_fee_ppm": 300}
    rich = venue_config_from_dict(raw)
    assert rich.canonical() != config.canonical()
    assert venue_config_from_dict(tomllib.loads(venue_config_to_toml(rich))).canonical() == rich.canonical()


def test_store_config_copies_a_source_file_verbatim(config, tmp_path) -> None:
    from importlib import resources

    from bastion.audit.layout import LayoutError, store_config

    source = resources.files("bastion") / "configs" / "default.toml"
    store_config(tmp_path, config, source)  # type: ignore[arg-type]
    assert (tmp_path / "venue.toml").read_bytes() == source.read_bytes()
    store_config(tmp_path, config)  # present and equal: fine
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.toml").write_text(venue_config_to_toml(config).replace("taker_fee_ppm = 500", "taker_fee_ppm = 499", 1))
    with pytest.raises(LayoutError):
        store_config(other, config, other / "x.toml")
