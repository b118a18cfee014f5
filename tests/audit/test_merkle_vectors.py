"""Conformance of `bastion.audit.merkle` against published RFC 6962 / RFC 9162 test vectors.

Two sources:

1. The canonical 8-leaf tree (reference doc ``audit-custody-api.md`` §2.1-§2.4), which comes from
   transparency-dev/merkle ``testonly/constants.go`` @582a6ad, ``rfc6962/rfc6962_test.go`` and
   ``cmd/proofgen/main.go`` (the leaves of the original Certificate Transparency C++ tests), plus
   the labelled 7-entry example of C2SP ``merkle-tree.md``. These need no external files.

2. The transparency-dev/merkle probe suite copied to ``../shared/data/ct-merkle-vectors`` (beside
   the project checkout; Apache-2.0; hashes are base64). Every JSON file is its own test case:
   ``inclusion/`` and ``consistency/`` (RFC 9162 §2.1.3.2 / §2.1.4.2) and also ``subtreeinclusion/``
   and ``subtreeconsistency/``, whose semantics (draft-ietf-plants-merkle-tree-certs §4.3/§4.4)
   reduce to the same two RFC algorithms and are implemented by `verify_subtree_inclusion` and
   `verify_subtree_consistency`. A case with ``wantErr: true`` must raise the matching
   `ProofError` subclass; a case with ``wantErr: false`` must verify *and* recompute the root.
   When the shared data directory is absent these cases are skipped, not failed.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from bastion.audit.merkle import (
    EMPTY_ROOT,
    ConsistencyProofError,
    InclusionProofError,
    MerkleLog,
    ProofError,
    consistency_proof_size,
    inclusion_proof_size,
    leaf_hash,
    merkle_root,
    node_hash,
    root_from_consistency_proof,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
    verify_subtree_consistency,
    verify_subtree_inclusion,
)

# ---------------------------------------------------------------------------------------------
# Locating ../shared/data
# ---------------------------------------------------------------------------------------------


def shared_data_dir() -> Path | None:
    """Return ``<project root>/../shared/data`` if it exists, else None.

    The project root is two levels above this file (``tests/audit/``); the shared data directory sits
    beside the project checkout, e.g. ``/work/main`` -> ``/work/shared/data``.
    """
    project_root = Path(__file__).resolve().parents[2]
    candidate = (project_root / ".." / "shared" / "data").resolve()
    return candidate if candidate.is_dir() else None


_SHARED = shared_data_dir()
VECTORS_DIR: Path | None = (_SHARED / "ct-merkle-vectors") if _SHARED is not None else None
if VECTORS_DIR is not None and not VECTORS_DIR.is_dir():
    VECTORS_DIR = None

SUITES = ("inclusion", "consistency", "subtreeinclusion", "subtreeconsistency")
EXPECTED_FILE_COUNTS = {"inclusion": 98, "consistency": 98, "subtreeinclusion": 204, "subtreeconsistency": 118}
"""Files per suite at transparency-dev/merkle 417fb0c (README.txt of the copy)."""


def _vector_params(suite: str) -> list[Any]:
    if VECTORS_DIR is None:
        reason = "../shared/data/ct-merkle-vectors not present"
        return [pytest.param(None, id=f"{suite}-absent", marks=pytest.mark.skip(reason=reason))]
    files = sorted((VECTORS_DIR / suite).rglob("*.json"))
    return [pytest.param(path, id=str(path.relative_to(VECTORS_DIR))) for path in files]


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    assert isinstance(data["wantErr"], bool), f"{path}: wantErr must be a bool"
    return data


def _proof(data: dict[str, Any]) -> list[bytes]:
    return [_b64(p) for p in (data["proof"] or [])]  # the Go suite writes null for "no proof"


# ---------------------------------------------------------------------------------------------
# The probe suite, one test per file
# ---------------------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_vector_suite_is_complete() -> None:
    """The shared copy holds all 518 probe files of the four suites, so a truncated copy cannot pass silently."""
    if VECTORS_DIR is None:
        pytest.skip("../shared/data/ct-merkle-vectors not present")
    counts = {suite: len(list((VECTORS_DIR / suite).rglob("*.json"))) for suite in SUITES}
    assert counts == EXPECTED_FILE_COUNTS


@pytest.mark.shared_data
@pytest.mark.parametrize("path", _vector_params("inclusion"))
def test_inclusion_vector(path: Path) -> None:
    """RFC 9162 §2.1.3.2 inclusion verification agrees with the probe's ``wantErr``."""
    d = _load(path)
    args = (_b64(d["leafHash"]), d["leafIdx"], d["treeSize"], _proof(d))
    if d["wantErr"]:
        with pytest.raises(InclusionProofError):
            verify_inclusion(*args, _b64(d["root"]))
    else:
        assert root_from_inclusion_proof(*args) == _b64(d["root"])
        verify_inclusion(*args, _b64(d["root"]))


@pytest.mark.shared_data
@pytest.mark.parametrize("path", _vector_params("consistency"))
def test_consistency_vector(path: Path) -> None:
    """RFC 9162 §2.1.4.2 consistency verification agrees with the probe's ``wantErr``."""
    d = _load(path)
    size1, size2, root1, root2 = d["size1"], d["size2"], _b64(d["root1"]), _b64(d["root2"])
    if d["wantErr"]:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(size1, size2, root1, root2, _proof(d))
    else:
        assert root_from_consistency_proof(size1, size2, root1, _proof(d)) == root2
        verify_consistency(size1, size2, root1, root2, _proof(d))


@pytest.mark.shared_data
@pytest.mark.parametrize("path", _vector_params("subtreeinclusion"))
def test_subtree_inclusion_vector(path: Path) -> None:
    """Subtree inclusion (MTC draft §4.3) agrees with the probe's ``wantErr``; ``root`` is the subtree hash."""
    d = _load(path)
    leaf, index, start, end, root = _b64(d["leafHash"]), d["leafIdx"], d["start"], d["end"], _b64(d["root"])
    if d["wantErr"]:
        with pytest.raises(InclusionProofError):
            verify_subtree_inclusion(leaf, index, start, end, _proof(d), root)
    else:
        assert root_from_inclusion_proof(leaf, index - start, end - start, _proof(d)) == root
        verify_subtree_inclusion(leaf, index, start, end, _proof(d), root)


@pytest.mark.shared_data
@pytest.mark.parametrize("path", _vector_params("subtreeconsistency"))
def test_subtree_consistency_vector(path: Path) -> None:
    """Subtree consistency (MTC draft §4.4) agrees with the probe's ``wantErr``; ``root1`` is the subtree hash."""
    d = _load(path)
    args = (d["start"], d["end"], d["size"], _b64(d["root1"]), _b64(d["root2"]), _proof(d))
    if d["wantErr"]:
        with pytest.raises(ConsistencyProofError):
            verify_subtree_consistency(*args)
    else:
        assert verify_subtree_consistency(*args) is None
        if d["start"] == 0 and 0 < d["end"] < d["size"]:
            # For a prefix this is plain RFC 9162 consistency; both must agree.
            assert root_from_consistency_proof(d["end"], d["size"], args[3], args[5]) == args[4]


@pytest.mark.shared_data
def test_happy_path_vectors_equal_our_generated_proofs() -> None:
    """Every accepted inclusion/consistency probe over the canonical tree is exactly the proof `MerkleLog` builds.

    The happy-path probes are built from the 8-leaf tree of §2.2, so our generator (RFC 6962
    §2.1.1 PATH and §2.1.2 PROOF) must reproduce their proof bytes, not merely verify them.
    """
    if VECTORS_DIR is None:
        pytest.skip("../shared/data/ct-merkle-vectors not present")
    log = _canonical_log()
    roots = {log.root(n): n for n in range(1, 9)}
    compared = 0
    for path in sorted((VECTORS_DIR / "inclusion").rglob("*.json")):
        d = _load(path)
        root = _b64(d["root"])
        if not d["wantErr"] and roots.get(root) == d["treeSize"]:
            assert log.inclusion_proof(d["leafIdx"], d["treeSize"]) == _proof(d), path
            compared += 1
    for path in sorted((VECTORS_DIR / "consistency").rglob("*.json")):
        d = _load(path)
        if not d["wantErr"] and roots.get(_b64(d["root2"])) == d["size2"] and d["size1"] > 0:
            assert log.consistency_proof(d["size1"], d["size2"]) == _proof(d), path
            compared += 1
    assert compared >= 8, "expected the happy paths of suites 0-4 to use the canonical tree"


@pytest.mark.shared_data
@pytest.mark.parametrize("suite", ["inclusion", "consistency"])
def test_every_rejected_probe_names_a_reason(suite: str) -> None:
    """Each rejection carries a stable reason code, so operators see *why* a proof failed."""
    if VECTORS_DIR is None:
        pytest.skip("../shared/data/ct-merkle-vectors not present")
    reasons: set[str] = set()
    for path in sorted((VECTORS_DIR / suite).rglob("*.json")):
        d = _load(path)
        if not d["wantErr"]:
            continue
        with pytest.raises(ProofError) as excinfo:
            if suite == "inclusion":
                verify_inclusion(_b64(d["leafHash"]), d["leafIdx"], d["treeSize"], _proof(d), _b64(d["root"]))
            else:
                verify_consistency(d["size1"], d["size2"], _b64(d["root1"]), _b64(d["root2"]), _proof(d))
        assert excinfo.value.reason and excinfo.value.reason.islower()
        reasons.add(excinfo.value.reason)
    assert len(reasons) >= 4, reasons


# ---------------------------------------------------------------------------------------------
# The canonical 8-leaf tree (no external files)
# ---------------------------------------------------------------------------------------------

CANONICAL_LEAVES_HEX = (
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)
CANONICAL_LEAF_HASHES_HEX = (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
)
CANONICAL_ROOTS_HEX = (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)


def _canonical_log() -> MerkleLog:
    log = MerkleLog()
    for index, data_hex in enumerate(CANONICAL_LEAVES_HEX):
        assert log.append(bytes.fromhex(data_hex)) == index
    return log


def _abbrev(value: bytes) -> str:
    """Render a hash the way the reference doc abbreviates it: first 8 and last 4 hex digits."""
    text = value.hex()
    return f"{text[:8]}…{text[-4:]}"


def test_hash_primitives() -> None:
    """Reference doc §2.1 (transparency-dev ``rfc6962_test.go``): empty tree, empty leaf, leaf, node.

    Source: RFC 6962 §2.1 (0x00 leaf / 0x01 node prefixes, MTH({}) = SHA-256("")).
    """
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert leaf_hash(b"L123456").hex() == "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    assert node_hash(b"N123", b"N456").hex() == "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"


def test_domain_separation_and_order() -> None:
    """Leaf and node hashing are domain-separated and ordered (second-preimage defence, RFC 6962 §2.1)."""
    h1, h2 = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(h1, h2) != leaf_hash(h1 + h2)
    assert node_hash(h1, h2) != node_hash(h2, h1)
    assert leaf_hash(b"a") != leaf_hash(b"b")
    assert leaf_hash(b"") != EMPTY_ROOT


def test_canonical_leaf_hashes_and_roots() -> None:
    """Reference doc §2.2: leaf hashes and MTH(D[0:n]) for n = 0..8, historical and reference roots.

    Sizes 3, 5, 6, 7 catch the "duplicate the last node" bug. Source: RFC 6962 §2.1, §2.1.3 (example
    trees); transparency-dev/merkle ``testonly/constants.go`` @582a6ad.
    """
    log = _canonical_log()
    assert [log.leaf_hash_at(i).hex() for i in range(8)] == list(CANONICAL_LEAF_HASHES_HEX)
    leaf_hashes = [bytes.fromhex(h) for h in CANONICAL_LEAF_HASHES_HEX]
    for size, root_hex in enumerate(CANONICAL_ROOTS_HEX):
        assert log.root(size).hex() == root_hex, f"root({size})"
        assert merkle_root(leaf_hashes[:size]).hex() == root_hex, f"merkle_root(prefix {size})"
    assert log.root() == log.root(8)


def test_canonical_interior_nodes() -> None:
    """Reference doc §2.2 levels 1-3 (abbreviated there as first 8 / last 4 hex digits).

    Source: RFC 6962 §2.1.3 (example tree); transparency-dev/merkle ``testonly/constants.go``.
    """
    lh = [bytes.fromhex(h) for h in CANONICAL_LEAF_HASHES_HEX]
    level1 = [node_hash(lh[i], lh[i + 1]) for i in range(0, 8, 2)]
    level2 = [node_hash(level1[0], level1[1]), node_hash(level1[2], level1[3])]
    level3 = node_hash(level2[0], level2[1])
    assert [_abbrev(h) for h in level1] == ["fac54203…c125", "5f083f0a…031e", "0ebc5d34…ef6a", "ca854ea1…0ae0"]
    assert [_abbrev(h) for h in level2] == ["d37ee418…14b7", "6b47aaf2…f6e4"]
    assert _abbrev(level3) == "5dc9da79…4328"
    assert level3 == _canonical_log().root()


@pytest.mark.parametrize(
    ("index", "size", "expected"),
    [
        (0, 1, []),
        (0, 8, ["96a296d2…cfc7", "5f083f0a…031e", "6b47aaf2…f6e4"]),
        (5, 8, ["bc1a0643…9e6b", "ca854ea1…0ae0", "d37ee418…14b7"]),
        (2, 3, ["fac54203…c125"]),
        (1, 5, ["6e340b9c…a01d", "5f083f0a…031e", "bc1a0643…9e6b"]),
    ],
)
def test_canonical_inclusion_proofs(index: int, size: int, expected: list[str]) -> None:
    """Reference doc §2.3 audit paths (0-based; transparency-dev ``cmd/proofgen/main.go``), verified.

    Source: RFC 6962 §2.1.1 (PATH), §2.1.3 (examples); RFC 9162 §2.1.3.2 (verification).
    """
    log = _canonical_log()
    proof = log.inclusion_proof(index, size)
    assert [_abbrev(h) for h in proof] == expected
    assert len(proof) == inclusion_proof_size(index, size)
    verify_inclusion(log.leaf_hash_at(index), index, size, proof, bytes.fromhex(CANONICAL_ROOTS_HEX[size]))
    assert root_from_inclusion_proof(log.leaf_hash_at(index), index, size, proof) == log.root(size)


@pytest.mark.parametrize(
    ("old_size", "new_size", "expected"),
    [
        (1, 1, []),
        (1, 8, ["96a296d2…cfc7", "5f083f0a…031e", "6b47aaf2…f6e4"]),
        (6, 8, ["0ebc5d34…ef6a", "ca854ea1…0ae0", "d37ee418…14b7"]),
        (2, 5, ["5f083f0a…031e", "bc1a0643…9e6b"]),
        (6, 7, ["0ebc5d34…ef6a", "b08693ec…1a5f", "d37ee418…14b7"]),
        (3, 7, ["0298d122…7fe7", "07506a85…87e7", "fac54203…c125", "837dbb15…2d0e"]),
        (4, 8, ["6b47aaf2…f6e4"]),
    ],
)
def test_canonical_consistency_proofs(old_size: int, new_size: int, expected: list[str]) -> None:
    """Reference doc §2.4 consistency proofs (``cmd/proofgen/main.go`` plus two derived ones), verified.

    Source: RFC 6962 §2.1.2 (PROOF/SUBPROOF), §2.1.3 (examples); RFC 9162 §2.1.4.2 (verification).
    """
    log = _canonical_log()
    proof = log.consistency_proof(old_size, new_size)
    assert [_abbrev(h) for h in proof] == expected
    assert len(proof) == consistency_proof_size(old_size, new_size)
    verify_consistency(old_size, new_size, log.root(old_size), log.root(new_size), proof)


def test_consistency_3_to_7_full_hex() -> None:
    """The one proof hash the reference doc gives in full: MTH(D[4:7]) in the 3 -> 7 proof (§2.4)."""
    proof = _canonical_log().consistency_proof(3, 7)
    assert proof[-1].hex() == "837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e"


def test_c2sp_seven_entry_example_labels() -> None:
    """C2SP ``merkle-tree.md`` "Example": labelled inclusion and consistency proofs of a 7-entry tree.

    Labels: a..g leaves, h=ab, i=cd, j=ef, k=hi, l=jg. Source: C2SP merkle-tree.md (derived from
    RFC 6962 §2.1 and RFC 9162 §2.1), the same shapes as RFC 6962 §2.1.3.
    """
    log = _canonical_log()
    a, b, c, d, e, f, g = (log.leaf_hash_at(i) for i in range(7))
    h, i, j = node_hash(a, b), node_hash(c, d), node_hash(e, f)
    k, l_node = node_hash(h, i), node_hash(j, g)
    assert log.root(7) == node_hash(k, l_node)
    assert log.inclusion_proof(0, 7) == [b, i, l_node]
    assert log.inclusion_proof(3, 7) == [c, h, l_node]
    assert log.inclusion_proof(4, 7) == [f, g, k]
    assert log.inclusion_proof(6, 7) == [j, k]
    assert log.consistency_proof(3, 7) == [c, d, h, l_node]
    assert log.consistency_proof(4, 7) == [l_node]
    assert log.consistency_proof(6, 7) == [j, g, k]


def test_canonical_all_small_proofs_verify_and_shifted_index_fails() -> None:
    """All 36 (index, size <= 8) inclusion proofs and 28 consistency pairs verify; a shifted index fails.

    Reference doc §2.4 (72 positive checks). Source: RFC 9162 §2.1.3.2 and §2.1.4.2.
    """
    log = _canonical_log()
    checked = 0
    for size in range(1, 9):
        root = log.root(size)
        for index in range(size):
            proof = log.inclusion_proof(index, size)
            verify_inclusion(log.leaf_hash_at(index), index, size, proof, root)
            checked += 1
            for other in (index - 1, index + 1):
                with pytest.raises(InclusionProofError):
                    verify_inclusion(log.leaf_hash_at(index), other, size, proof, root)
    for new_size in range(2, 9):
        for old_size in range(1, new_size):
            proof = log.consistency_proof(old_size, new_size)
            verify_consistency(old_size, new_size, log.root(old_size), log.root(new_size), proof)
            checked += 1
    assert checked == 36 + 28
