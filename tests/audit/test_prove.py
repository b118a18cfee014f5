"""Proof bundles: ``bastion prove`` writes them, ``bastion check-proof`` verifies them with the public key
only, and every altered part of a bundle is rejected with a reason."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from bastion.audit.checkpoint import VenueKey
from bastion.audit.commands import register
from bastion.audit.outlog import decode_leaf
from bastion.audit.prove import ProofInvalid, ProofQuery, ProveError, build_proof, check_proof
from bastion.core.events import TradeExecuted
from tests.audit._sessions import mix_venue


@pytest.fixture(scope="module")
def venue_dir(config, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("prove") / "venue"
    mix_venue(config, directory, seed=9, n=1_200, accounts=60, resting=80, checkpoint_every_events=250)
    return directory


@pytest.fixture(scope="module")
def traded_order(venue_dir: Path) -> int:
    """An order id that was accepted and then filled (as taker or maker)."""
    from bastion.audit.outlog import OutlogScanner

    for record in OutlogScanner((venue_dir / "events.bin").read_bytes()):
        event = decode_leaf(record.leaf).event
        if type(event) is TradeExecuted:
            return event.maker_order_id
    raise AssertionError("no fill in the session")


def _key(venue_dir: Path) -> str:
    return (venue_dir / "venue.pub").read_text().strip()


def test_an_orders_events_are_proven_under_the_newest_checkpoint(venue_dir: Path, traded_order: int) -> None:
    bundle = build_proof(venue_dir, ProofQuery(order_id=traded_order))
    types = [leaf["event"]["type"] for leaf in bundle["leaves"]]
    assert types[0] == "order_accepted" and "trade_executed" in types
    assert bundle["checkpoint"] == (venue_dir / "checkpoint.txt").read_text()
    cp, count = check_proof(json.loads(json.dumps(bundle)), _key(venue_dir))
    assert count == len(types) and cp.tree_size > max(leaf["leaf_index"] for leaf in bundle["leaves"])
    fills = build_proof(venue_dir, ProofQuery(order_id=traded_order, trade=True))
    assert {leaf["event"]["type"] for leaf in fills["leaves"]} == {"trade_executed"}


def test_a_single_event_by_seq_and_index(venue_dir: Path) -> None:
    bundle = build_proof(venue_dir, ProofQuery(seq=1_000, index=0))
    assert [(x["seq"], x["event_index"]) for x in bundle["leaves"]] == [(1_000, 0)]
    assert check_proof(bundle, _key(venue_dir))[1] == 1


def test_nothing_to_prove_and_unusable_directories(venue_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ProveError) as info:
        build_proof(venue_dir, ProofQuery(order_id=10**12))
    assert info.value.status == 1
    with pytest.raises(ProveError) as info:
        build_proof(tmp_path, ProofQuery(seq=1))
    assert info.value.status == 2


def _mutations(bundle: dict[str, Any], other: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(what, altered bundle) pairs; each must be rejected."""
    out: list[tuple[str, dict[str, Any]]] = []

    def variant(what: str, fn: Any) -> None:
        b = copy.deepcopy(bundle)
        fn(b)
        out.append((what, b))

    def flip_b64(text: str) -> str:
        import base64

        raw = bytearray(base64.b64decode(text))
        raw[len(raw) // 2] ^= 1
        return base64.b64encode(bytes(raw)).decode()

    variant("proof hash", lambda b: b["leaves"][0]["inclusion_proof"].__setitem__(0, flip_b64(
        b["leaves"][0]["inclusion_proof"][0])))
    variant("proof hash dropped", lambda b: b["leaves"][0]["inclusion_proof"].pop())
    variant("proof hash added", lambda b: b["leaves"][0]["inclusion_proof"].append(b["leaves"][0]["inclusion_proof"][0]))
    variant("leaf index", lambda b: b["leaves"][0].__setitem__("leaf_index", b["leaves"][0]["leaf_index"] + 1))
    variant("leaf bytes", lambda b: b["leaves"][0].__setitem__("leaf", flip_b64(b["leaves"][0]["leaf"])))
    variant("readable event", lambda b: b["leaves"][0]["event"].__setitem__("qty_lots", 10**6))
    variant("seq", lambda b: b["leaves"][0].__setitem__("seq", b["leaves"][0]["seq"] + 1))
    variant("checkpoint text", lambda b: b.__setitem__("checkpoint", b["checkpoint"].replace("\n", "\n\n", 1)))
    variant("checkpoint size", lambda b: b.__setitem__("checkpoint", b["checkpoint"].replace(
        b["checkpoint"].split("\n")[1], str(int(b["checkpoint"].split("\n")[1]) + 1), 1)))
    variant("another order's leaf", lambda b: b["leaves"].append(other["leaves"][0]))
    variant("query", lambda b: b["query"].__setitem__("order_id", b["query"]["order_id"] + 1))
    variant("no leaves", lambda b: b.__setitem__("leaves", []))
    variant("format", lambda b: b.__setitem__("format", "bastion-proof/0"))
    return out


def test_every_altered_part_of_a_bundle_is_rejected(venue_dir: Path, traded_order: int) -> None:
    bundle = build_proof(venue_dir, ProofQuery(order_id=traded_order))
    other = build_proof(venue_dir, ProofQuery(seq=3))  # a deposit: not about any order
    key = _key(venue_dir)
    for what, altered in _mutations(bundle, other):
        with pytest.raises(ProofInvalid):
            check_proof(altered, key)
            pytest.fail(f"accepted a bundle with an altered {what}")
    with pytest.raises(ProofInvalid, match="checkpoint"):
        check_proof(bundle, VenueKey.generate("bastion-dev").verifier_key())


def test_cli_prove_and_check_proof(venue_dir: Path, traded_order: int, tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        """Test app."""

    runner = CliRunner()
    out = tmp_path / "proof.json"
    made = runner.invoke(app, ["prove", str(venue_dir), "--order-id", str(traded_order), "--trade", "-o", str(out)])
    assert made.exit_code == 0, made.output
    ok = runner.invoke(app, ["check-proof", str(out), "--key", str(venue_dir / "venue.pub")])
    assert ok.exit_code == 0 and ok.stdout.startswith("OK"), ok.output
    bundle = json.loads(out.read_text())
    bundle["leaves"][0]["event"]["price_ticks"] += 1
    out.write_text(json.dumps(bundle))
    bad = runner.invoke(app, ["check-proof", str(out), "--key", _key(venue_dir)])
    assert bad.exit_code == 1 and "INVALID" in bad.stdout
    by_seq = runner.invoke(app, ["prove", str(venue_dir), "--seq", "700"])
    assert by_seq.exit_code == 0 and json.loads(by_seq.stdout)["leaves"][0]["seq"] == 700
    none = runner.invoke(app, ["prove", str(venue_dir), "--order-id", str(10**12)])
    assert none.exit_code == 1
    both = runner.invoke(app, ["prove", str(venue_dir), "--order-id", "1", "--seq", "2"])
    assert both.exit_code == 2


# ---------------------------------------------------------------------------------------------
# Consistency between two signed checkpoints
# ---------------------------------------------------------------------------------------------


def _signed_sizes(venue_dir: Path) -> list[int]:
    from bastion.audit.checkpoint import open_checkpoint
    from bastion.audit.layout import list_checkpoints

    return [open_checkpoint(p.read_bytes(), _key(venue_dir)).tree_size for _, p in list_checkpoints(venue_dir)]


def _leaf_hashes(venue_dir: Path, count: int) -> list[bytes]:
    from bastion.audit.merkle import leaf_hash
    from bastion.audit.outlog import OutlogScanner

    return [leaf_hash(r.leaf) for r in OutlogScanner((venue_dir / "events.bin").read_bytes())][:count]


def test_consistency_bundle_between_signed_checkpoints_is_the_rfc_proof(venue_dir: Path) -> None:
    """Between every pair of signed sizes (and from the first to checkpoint.txt): the bundle's proof is
    RFC 6962 §2.1.2 SUBPROOF(m, D[n], true) recomputed by the test's own recursive oracle over the leaves of
    events.bin, it verifies with the RFC 9162 §2.1.4.2 verifier from the two signed roots, and
    check-proof accepts it with only the venue key."""
    import base64

    from bastion.audit.checkpoint import open_checkpoint
    from bastion.audit.merkle import verify_consistency
    from bastion.audit.prove import build_consistency_proof, check_bundle, check_consistency_proof
    from tests.audit.test_merkle import rfc_subproof

    sizes = _signed_sizes(venue_dir)
    assert len(sizes) >= 4
    hashes = _leaf_hashes(venue_dir, sizes[-1])
    key = _key(venue_dir)
    for old_size, new_size in [(sizes[0], sizes[1]), (sizes[0], sizes[-1]), (sizes[1], sizes[-2]), (sizes[2], sizes[2])]:
        bundle = build_consistency_proof(venue_dir, old_size=old_size, new_size=new_size)
        assert (bundle["old_size"], bundle["new_size"]) == (old_size, new_size)
        proof = [base64.b64decode(h) for h in bundle["consistency_proof"]]
        expected = rfc_subproof(old_size, hashes[:new_size], True) if old_size < new_size else []
        assert proof == expected, (old_size, new_size)
        old = open_checkpoint(bundle["old_checkpoint"], key)
        new = open_checkpoint(bundle["new_checkpoint"], key)
        if old_size < new_size:
            verify_consistency(old_size, new_size, old.root_hash, new.root_hash, proof)
        assert check_consistency_proof(json.loads(json.dumps(bundle)), key) == (old, new)
        assert check_bundle(bundle, key).startswith("OK:")
    kept = sorted((venue_dir / "checkpoints").iterdir())[1].read_bytes()  # a checkpoint a participant saved
    latest = build_consistency_proof(venue_dir, old_checkpoint=kept)
    assert latest["new_checkpoint"] == (venue_dir / "checkpoint.txt").read_text()
    assert latest["old_checkpoint"].encode() == kept and check_bundle(latest, key).startswith("OK:")


def test_every_altered_part_of_a_consistency_bundle_is_rejected(venue_dir: Path) -> None:
    import base64

    from bastion.audit.checkpoint import VenueKey
    from bastion.audit.prove import build_consistency_proof, check_consistency_proof

    sizes = _signed_sizes(venue_dir)
    bundle = build_consistency_proof(venue_dir, old_size=sizes[1], new_size=sizes[-1])
    other = build_consistency_proof(venue_dir, old_size=sizes[0], new_size=sizes[-1])
    assert len(bundle["consistency_proof"]) >= 2
    key = _key(venue_dir)

    def flip(text: str) -> str:
        raw = bytearray(base64.b64decode(text))
        raw[5] ^= 0x10
        return base64.b64encode(bytes(raw)).decode()

    mutations = {
        "each proof hash": [lambda b, i=i: b["consistency_proof"].__setitem__(i, flip(b["consistency_proof"][i]))
                            for i in range(len(bundle["consistency_proof"]))],
        "hash dropped": [lambda b: b["consistency_proof"].pop()],
        "hash added": [lambda b: b["consistency_proof"].append(b["consistency_proof"][0])],
        "hashes swapped": [lambda b: b["consistency_proof"].reverse()],
        "old checkpoint of another size": [lambda b: b.update(old_checkpoint=other["old_checkpoint"])],
        "old and new swapped": [lambda b: b.update(old_checkpoint=b["new_checkpoint"], new_checkpoint=b["old_checkpoint"],
                                                    old_size=b["new_size"], new_size=b["old_size"])],
        "readable size": [lambda b: b.update(old_size=b["old_size"] + 1)],
        "note text": [lambda b: b.update(new_checkpoint=b["new_checkpoint"].replace("\n", "\n\n", 1))],
        "format": [lambda b: b.update(format="bastion-consistency/0")],
    }
    for what, fns in mutations.items():
        for fn in fns:
            altered = copy.deepcopy(bundle)
            fn(altered)
            with pytest.raises(ProofInvalid):
                check_consistency_proof(altered, key)
                pytest.fail(f"accepted a consistency bundle with an altered {what}")
    with pytest.raises(ProofInvalid):
        check_consistency_proof(bundle, VenueKey.generate("bastion-dev").verifier_key())


def test_consistency_bundle_refuses_unsigned_sizes_and_a_rewritten_log(venue_dir: Path, tmp_path: Path) -> None:
    import shutil

    from bastion.audit.prove import build_consistency_proof

    sizes = _signed_sizes(venue_dir)
    with pytest.raises(ProveError) as info:
        build_consistency_proof(venue_dir, old_size=sizes[0] + 1, new_size=sizes[-1])
    assert info.value.status == 1 and "signed no checkpoint at tree size" in str(info.value)
    with pytest.raises(ProveError) as info:
        build_consistency_proof(venue_dir, old_size=sizes[-1], new_size=sizes[0])
    assert info.value.status == 1
    forked = tmp_path / "forked"
    shutil.copytree(venue_dir, forked)
    data = bytearray((forked / "events.bin").read_bytes())
    data[40] ^= 0x01  # inside the first leaf: the rebuilt log no longer has the signed roots
    (forked / "events.bin").write_bytes(bytes(data))
    with pytest.raises(ProveError) as info:
        build_consistency_proof(forked, old_size=sizes[0], new_size=sizes[1])
    assert info.value.status == 2


def test_cli_consistency_proof(venue_dir: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        """Test app."""

    runner = CliRunner()
    sizes = _signed_sizes(venue_dir)
    out = tmp_path / "consistency.json"
    made = runner.invoke(app, ["prove", str(venue_dir), "--consistency", str(sizes[0]), str(sizes[-1]), "-o", str(out)])
    assert made.exit_code == 0, made.output
    ok = runner.invoke(app, ["check-proof", str(out), "--key", str(venue_dir / "venue.pub")])
    assert ok.exit_code == 0 and ok.stdout.startswith("OK:") and "append-only" in ok.stdout, ok.output
    kept = tmp_path / "kept.txt"
    first = sorted((venue_dir / "checkpoints").iterdir())[0]
    kept.write_bytes(first.read_bytes())
    made = runner.invoke(app, ["prove", str(venue_dir), "--from-checkpoint", str(kept)])
    assert made.exit_code == 0 and json.loads(made.stdout)["old_size"] == sizes[0], made.output
    bundle = json.loads(out.read_text())
    bundle["consistency_proof"][0] = bundle["consistency_proof"][-1]
    out.write_text(json.dumps(bundle))
    bad = runner.invoke(app, ["check-proof", str(out), "--key", _key(venue_dir)])
    assert bad.exit_code == 1 and "INVALID" in bad.stdout
    unsigned = runner.invoke(app, ["prove", str(venue_dir), "--consistency", str(sizes[0] + 1), str(sizes[-1])])
    assert unsigned.exit_code == 1
    mixed = runner.invoke(app, ["prove", str(venue_dir), "--consistency", "1", "2", "--order-id", "3"])
    assert mixed.exit_code == 2
