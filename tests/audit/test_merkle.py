"""Property, differential and stateful tests of `bastion.audit.merkle`.

Oracles, independent of the code under test:

* `merkle_root` (level-by-level pairing) and the test-local ``rfc_*`` functions below, which are
  literal recursive transcriptions of RFC 6962 §2.1 (MTH), §2.1.1 (PATH) and §2.1.2
  (PROOF/SUBPROOF). Recursion is fine here: this is test code, trees are at most 300 leaves deep
  in log2, and it keeps the oracle visibly identical to the RFC text.
* The verifiers implement the bit-twiddling algorithms of RFC 9162 §2.1.3.2 / §2.1.4.2, which are
  a different formulation from the generators' recursive definitions.

What "tampering fails" means precisely. Hash alterations (any proof hash, the leaf, a root)
always fail. An altered *index* always fails. An altered *size* is subtler: an inclusion proof does
not by itself bind the tree size, only the root does (e.g. the proof of leaf 0 in a 3-leaf tree has
the same left/right shape as in a 4-leaf tree). So the size tests assert the exact property: with
the altered size's true root the proof fails unless it *is* the honest proof for that claim, and with
the original root it verifies exactly when the RFC 6962 PATH shape is unchanged. Signed checkpoints
bind (size, root) together, which is what makes this sufficient.

Hypothesis prints the falsifying example (and a reproduction blob) on failure.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bastion.audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    PROOF_HASHES_MAX,
    TREE_SIZE_MAX,
    ConsistencyProofError,
    InclusionProofError,
    LogQueryError,
    MerkleError,
    MerkleLog,
    ProofError,
    consistency_proof_size,
    inclusion_proof_size,
    is_valid_subtree,
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

LEAVES_MAX = 300
PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)

# ---------------------------------------------------------------------------------------------
# RFC 6962 oracles (recursive, test-only) and fixtures
# ---------------------------------------------------------------------------------------------


def _split(n: int) -> int:
    """k = the largest power of two smaller than n (n >= 2), RFC 6962 §2.1."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def rfc_mth(hashes: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH over leaf hashes."""
    if not hashes:
        return EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return node_hash(rfc_mth(hashes[:k]), rfc_mth(hashes[k:]))


def rfc_path(m: int, hashes: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n])."""
    if len(hashes) == 1:
        return []
    k = _split(len(hashes))
    if m < k:
        return rfc_path(m, hashes[:k]) + [rfc_mth(hashes[k:])]
    return rfc_path(m - k, hashes[k:]) + [rfc_mth(hashes[:k])]


def rfc_subproof(m: int, hashes: list[bytes], known: bool) -> list[bytes]:
    """RFC 6962 §2.1.2 SUBPROOF(m, D[n], b)."""
    if m == len(hashes):
        return [] if known else [rfc_mth(hashes)]
    k = _split(len(hashes))
    if m <= k:
        return rfc_subproof(m, hashes[:k], known) + [rfc_mth(hashes[k:])]
    return rfc_subproof(m - k, hashes[k:], False) + [rfc_mth(hashes[:k])]


def rfc_path_shape(m: int, n: int) -> tuple[bool, ...]:
    """Bottom-up sides of PATH(m, D[n]): True where the sibling is on the right."""
    if n == 1:
        return ()
    k = _split(n)
    if m < k:
        return rfc_path_shape(m, k) + (True,)
    return rfc_path_shape(m - k, n - k) + (False,)


def make_log(n: int, salt: int) -> tuple[MerkleLog, list[bytes]]:
    """A log of n distinct leaves (``b"<salt>:<i>"``) and the matching list of leaf hashes."""
    log = MerkleLog()
    hashes = []
    for i in range(n):
        data = f"{salt}:{i}".encode()
        assert log.append(data) == i
        hashes.append(leaf_hash(data))
    assert log.size == n == len(log)
    return log, hashes


def flip_bit(value: bytes, byte_index: int, bit: int) -> bytes:
    """Return ``value`` with one bit flipped."""
    out = bytearray(value)
    out[byte_index % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


def raises(error: type[Exception], fn: Callable[[], object]) -> bool:
    """True when ``fn()`` raises ``error``; False when it returns. Any other exception propagates."""
    try:
        fn()
    except error:
        return True
    return False


# ---------------------------------------------------------------------------------------------
# Roots
# ---------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(n=st.integers(1, LEAVES_MAX), salt=st.integers(0, 2**32))
def test_root_of_every_historical_size_equals_reference(n: int, salt: int) -> None:
    """root(size) for every size 0..n equals `merkle_root` of the prefix; the full root equals the RFC oracle."""
    log, hashes = make_log(n, salt)
    for size in range(n + 1):
        assert log.root(size) == merkle_root(hashes[:size]), size
    assert log.root() == rfc_mth(hashes)
    assert log.root(0) == EMPTY_ROOT


def test_roots_up_to_256_match_rfc_oracle() -> None:
    """Differential: `MerkleLog.root`, `merkle_root` and the recursive RFC 6962 MTH agree for 0..256 leaves."""
    log, hashes = make_log(256, salt=7)
    for size in range(257):
        expected = rfc_mth(hashes[:size])
        assert log.root(size) == expected
        assert merkle_root(hashes[:size]) == expected


# ---------------------------------------------------------------------------------------------
# Inclusion
# ---------------------------------------------------------------------------------------------


def _check_inclusion_tampering(log: MerkleLog, hashes: list[bytes], index: int, size: int, bit: int) -> None:
    """Assert the exact tampering properties documented in the module docstring for one proof."""
    n = log.size
    root = log.root(size)
    proof = log.inclusion_proof(index, size)
    leaf = hashes[index]
    verify_inclusion(leaf, index, size, proof, root)
    for k in range(len(proof)):  # any proof hash byte
        bad = proof[:k] + [flip_bit(proof[k], bit + k, bit)] + proof[k + 1 :]
        assert raises(InclusionProofError, lambda: verify_inclusion(leaf, index, size, bad, root))
    assert raises(InclusionProofError, lambda: verify_inclusion(flip_bit(leaf, bit, bit), index, size, proof, root))
    assert raises(InclusionProofError, lambda: verify_inclusion(leaf, index, size, proof, flip_bit(root, bit, bit)))
    assert raises(InclusionProofError, lambda: verify_inclusion(leaf, index, size, [*proof, root], root))
    if proof:
        assert raises(InclusionProofError, lambda: verify_inclusion(leaf, index, size, proof[:-1], root))
    for other in {index - 1, index + 1, index ^ 1, index ^ 2, 2 * index + 1, index // 2, size, -1}:
        if other != index:
            assert raises(InclusionProofError, lambda: verify_inclusion(leaf, other, size, proof, root))
    for other_size in {size - 1, size + 1, 2 * size, size // 2, TREE_SIZE_MAX + 1}:
        if other_size == size:
            continue
        same_shape = index < other_size <= TREE_SIZE_MAX and rfc_path_shape(index, other_size) == rfc_path_shape(
            index, size
        )
        failed = raises(InclusionProofError, lambda: verify_inclusion(leaf, index, other_size, proof, root))
        assert failed == (not same_shape), (index, size, other_size)
        if index < other_size <= n:
            honest = log.inclusion_proof(index, other_size) == proof
            true_root = log.root(other_size)
            failed = raises(InclusionProofError, lambda: verify_inclusion(leaf, index, other_size, proof, true_root))
            assert failed == (not honest), (index, size, other_size)


@PROPERTY_SETTINGS
@given(data=st.data(), n=st.integers(1, LEAVES_MAX), salt=st.integers(0, 2**32))
def test_inclusion_every_index_verifies_and_tampering_fails(data: st.DataObject, n: int, salt: int) -> None:
    """For a random tree and a random historical size, every leaf's proof equals RFC PATH, verifies, and
    fails when a proof byte, the leaf, the index, the size or the root is altered (RFC 9162 §2.1.3.2)."""
    log, hashes = make_log(n, salt)
    size = data.draw(st.integers(1, n), label="size")
    bit = data.draw(st.integers(0, 255), label="bit")
    for index in range(size):
        proof = log.inclusion_proof(index, size)
        assert proof == rfc_path(index, hashes[:size])
        assert len(proof) == inclusion_proof_size(index, size)
        assert root_from_inclusion_proof(hashes[index], index, size, proof) == log.root(size)
        _check_inclusion_tampering(log, hashes, index, size, bit)


def test_inclusion_exhaustive_up_to_64_leaves() -> None:
    """Every (index, size) with size <= 64 (2080 proofs): equals RFC PATH, verifies, tampering fails."""
    log, hashes = make_log(64, salt=1)
    checked = 0
    for size in range(1, 65):
        for index in range(size):
            assert log.inclusion_proof(index, size) == rfc_path(index, hashes[:size])
            _check_inclusion_tampering(log, hashes, index, size, bit=index * 7 + size)
            checked += 1
    assert checked == 64 * 65 // 2


# ---------------------------------------------------------------------------------------------
# Consistency
# ---------------------------------------------------------------------------------------------


def _check_consistency_tampering(log: MerkleLog, old: int, new: int, bit: int) -> None:
    """Assert a consistency proof verifies and every alteration of it or its claim fails."""
    n = log.size
    r_old, r_new = log.root(old), log.root(new)
    proof = log.consistency_proof(old, new)
    verify_consistency(old, new, r_old, r_new, proof)

    def fails(o: int, m: int, ro: bytes, rn: bytes, p: list[bytes]) -> bool:
        return raises(ConsistencyProofError, lambda: verify_consistency(o, m, ro, rn, p))

    for k in range(len(proof)):
        assert fails(old, new, r_old, r_new, proof[:k] + [flip_bit(proof[k], bit + k, bit)] + proof[k + 1 :])
    assert fails(old, new, flip_bit(r_old, bit, bit), r_new, proof)
    assert fails(old, new, r_old, flip_bit(r_new, bit, bit), proof)
    assert fails(old, new, r_old, r_new, [*proof, r_new])
    if proof:
        assert fails(old, new, r_old, r_new, proof[:-1])
        assert fails(old, new, r_old, r_new, proof[1:])
        assert fails(old, new, r_new, r_old, proof)  # swapped roots (sizes differ here)
    for o, m in {(old - 1, new), (old + 1, new), (old, new - 1), (old, new + 1), (old * 2, new), (old, new // 2)}:
        if (o, m) == (old, new):
            continue
        if 0 < o <= m <= n:
            honest = log.consistency_proof(o, m) == proof
            assert fails(o, m, log.root(o), log.root(m), proof) == (not honest), (old, new, o, m)
        elif o <= 0 or o > m:
            assert fails(o, m, r_old, r_new, proof)
        # else: a size beyond this log has no true root to test against; with the *original* roots
        # a same-shape size can pass, because only the signed (size, root) pair binds the size.


@PROPERTY_SETTINGS
@given(data=st.data(), n=st.integers(1, LEAVES_MAX), salt=st.integers(0, 2**32))
def test_consistency_random_pairs_verify_and_tampering_fails(data: st.DataObject, n: int, salt: int) -> None:
    """Random old <= new <= n: the proof equals RFC PROOF, verifies, and any alteration fails (RFC 9162 §2.1.4.2)."""
    log, hashes = make_log(n, salt)
    for _ in range(4):
        new = data.draw(st.integers(1, n), label="new")
        old = data.draw(st.integers(1, new), label="old")
        bit = data.draw(st.integers(0, 255), label="bit")
        proof = log.consistency_proof(old, new)
        assert proof == rfc_subproof(old, hashes[:new], True)
        assert len(proof) == consistency_proof_size(old, new)
        assert root_from_consistency_proof(old, new, log.root(old), proof) == log.root(new)
        _check_consistency_tampering(log, old, new, bit)


def test_consistency_exhaustive_up_to_64_leaves() -> None:
    """Every 1 <= old <= new <= 64 (2080 pairs): equals RFC PROOF, verifies, tampering fails."""
    log, hashes = make_log(64, salt=2)
    checked = 0
    for new in range(1, 65):
        for old in range(1, new + 1):
            assert log.consistency_proof(old, new) == rfc_subproof(old, hashes[:new], True)
            _check_consistency_tampering(log, old, new, bit=old * 5 + new)
            checked += 1
    assert checked == 64 * 65 // 2


def test_consistency_edge_cases_follow_probe_semantics() -> None:
    """Size 0 is an error; equal sizes need an empty proof and equal roots; reversed sizes fail."""
    log, _ = make_log(5, salt=3)
    r3, r5 = log.root(3), log.root(5)
    with pytest.raises(ConsistencyProofError) as excinfo:
        verify_consistency(0, 5, EMPTY_ROOT, r5, [])
    assert excinfo.value.reason == "old_size_zero"
    verify_consistency(3, 3, r3, r3, [])
    assert raises(ConsistencyProofError, lambda: verify_consistency(3, 3, r3, r5, []))
    assert raises(ConsistencyProofError, lambda: verify_consistency(3, 3, r3, r3, [r3]))
    with pytest.raises(ConsistencyProofError) as excinfo:
        verify_consistency(5, 3, r5, r3, [])
    assert excinfo.value.reason == "sizes_reversed"
    with pytest.raises(ConsistencyProofError) as excinfo:
        verify_consistency(3, 5, r3, r5, [])
    assert excinfo.value.reason == "proof_empty"


# ---------------------------------------------------------------------------------------------
# Subtrees (MTC draft §4.1, §4.3, §4.4)
# ---------------------------------------------------------------------------------------------


@st.composite
def subtree_in(draw: st.DrawFn, n: int) -> tuple[int, int]:
    """A valid subtree [start, end) with end <= n: start is a multiple of B = BIT_CEIL(end - start)."""
    height = draw(st.integers(0, max(0, (n - 1).bit_length())))
    block = 1 << height
    width = draw(st.integers(block // 2 + 1, block))
    starts = range(0, n - width + 1, block)
    assume(len(starts) > 0)
    start = draw(st.sampled_from(starts))
    return start, start + width


@PROPERTY_SETTINGS
@given(data=st.data(), n=st.integers(1, LEAVES_MAX), salt=st.integers(0, 2**32))
def test_subtree_proofs_verify_and_tampering_fails(data: st.DataObject, n: int, salt: int) -> None:
    """Subtree hashes equal the reference; subtree inclusion and consistency proofs verify and resist tampering."""
    log, hashes = make_log(n, salt)
    start, end = data.draw(subtree_in(n), label="subtree")
    size = data.draw(st.integers(end, n), label="tree_size")
    bit = data.draw(st.integers(0, 255), label="bit")
    assert is_valid_subtree(start, end)
    sub_hash = log.subtree_hash(start, end)
    assert sub_hash == merkle_root(hashes[start:end])
    for index in range(start, end):
        path = log.subtree_inclusion_proof(index, start, end)
        assert path == rfc_path(index - start, hashes[start:end])
        verify_subtree_inclusion(hashes[index], index, start, end, path, sub_hash)
        wrong = flip_bit(sub_hash, bit, bit)
        assert raises(
            InclusionProofError, lambda: verify_subtree_inclusion(hashes[index], index, start, end, path, wrong)
        )
    root = log.root(size)
    proof = log.subtree_consistency_proof(start, end, size)
    verify_subtree_consistency(start, end, size, sub_hash, root, proof)
    if start == 0 and end < size:
        assert proof == log.consistency_proof(end, size)

    def fails(subtree: bytes, tree_root: bytes, candidate: list[bytes]) -> bool:
        return raises(
            ConsistencyProofError, lambda: verify_subtree_consistency(start, end, size, subtree, tree_root, candidate)
        )

    for k in range(len(proof)):
        assert fails(sub_hash, root, proof[:k] + [flip_bit(proof[k], bit + k, bit)] + proof[k + 1 :])
    assert fails(flip_bit(sub_hash, bit, bit), root, proof)
    assert fails(sub_hash, flip_bit(root, bit, bit), proof)
    assert fails(sub_hash, root, [*proof, root])
    if proof:
        assert fails(sub_hash, root, proof[:-1])


def test_subtree_validity_rule() -> None:
    """[start, end) is a subtree iff non-empty and start is a multiple of BIT_CEIL(end - start) (MTC §4.1)."""
    assert is_valid_subtree(0, 1) and is_valid_subtree(8, 13) and is_valid_subtree(12, 13) and is_valid_subtree(0, 7)
    assert not is_valid_subtree(3, 5) and not is_valid_subtree(1, 15) and not is_valid_subtree(2, 2)
    assert not is_valid_subtree(4, 3) and not is_valid_subtree(1, TREE_SIZE_MAX + 2)
    log, _ = make_log(16, salt=4)
    with pytest.raises(LogQueryError):
        log.subtree_hash(3, 5)
    with pytest.raises(LogQueryError):
        log.subtree_consistency_proof(0, 17)


# ---------------------------------------------------------------------------------------------
# Larger trees, limits and API errors
# ---------------------------------------------------------------------------------------------


def test_seventy_thousand_leaves_sampled_proofs() -> None:
    """A 70,000-leaf log (17 levels): root equals the reference and 100 seeded random proofs of each kind verify."""
    rng = random.Random(20_240_601)
    log, hashes = make_log(70_000, salt=5)
    assert log.root() == merkle_root(hashes)
    for _ in range(100):
        size = rng.randint(1, log.size)
        index = rng.randrange(size)
        verify_inclusion(hashes[index], index, size, log.inclusion_proof(index, size), log.root(size))
        old = rng.randint(1, size)
        verify_consistency(old, size, log.root(old), log.root(size), log.consistency_proof(old, size))


def test_proof_lengths_at_the_64_bit_limit() -> None:
    """Sizes near 2**64 are accepted arithmetically; the proof length must match exactly; 2**64 is refused."""
    size = TREE_SIZE_MAX
    index = size - 1
    length = inclusion_proof_size(index, size)
    assert 1 <= length <= 64
    leaf = leaf_hash(b"x")
    assert len(root_from_inclusion_proof(leaf, index, size, [leaf] * length)) == HASH_SIZE
    with pytest.raises(InclusionProofError) as excinfo:
        root_from_inclusion_proof(leaf, index, size, [leaf] * (length - 1))
    assert excinfo.value.reason == "proof_too_short"
    with pytest.raises(InclusionProofError) as excinfo:
        root_from_inclusion_proof(leaf, 0, size + 1, [])
    assert excinfo.value.reason == "tree_size_out_of_range"
    assert consistency_proof_size(size - 1, size) <= 65
    with pytest.raises(ConsistencyProofError):
        consistency_proof_size(1, size + 1)


def test_malformed_proof_inputs_are_typed_errors() -> None:
    """Bad lengths and oversize proofs raise ProofError subclasses (which are ValueErrors), not crashes."""
    log, hashes = make_log(10, salt=6)
    proof, root = log.inclusion_proof(3), log.root()
    cases: list[tuple[str, Callable[[], object]]] = [
        ("proof_hash_size", lambda: verify_inclusion(hashes[3], 3, 10, [proof[0][:31], *proof[1:]], root)),
        ("leaf_hash_size", lambda: verify_inclusion(hashes[3][:16], 3, 10, proof, root)),
        ("proof_too_long", lambda: verify_inclusion(hashes[3], 3, 10, [root] * (PROOF_HASHES_MAX + 1), root)),
        ("index_out_of_range", lambda: verify_inclusion(hashes[3], 10, 10, proof, root)),
        ("root_mismatch", lambda: verify_inclusion(hashes[4], 3, 10, proof, root)),
    ]
    for reason, call in cases:
        with pytest.raises(InclusionProofError) as excinfo:
            call()
        assert excinfo.value.reason == reason
        assert isinstance(excinfo.value, ProofError) and isinstance(excinfo.value, MerkleError)
        assert isinstance(excinfo.value, ValueError)


def test_log_query_errors() -> None:
    """The log refuses bad leaf hashes and indices/sizes it does not hold with LogQueryError."""
    log, _ = make_log(5, salt=8)
    with pytest.raises(LogQueryError) as excinfo:
        log.append_leaf_hash(b"\x00" * 31)
    assert excinfo.value.reason == "leaf_hash_size"
    for call in (
        lambda: log.root(6),
        lambda: log.root(-1),
        lambda: log.inclusion_proof(5),
        lambda: log.inclusion_proof(2, 2),
        lambda: log.consistency_proof(0, 5),
        lambda: log.consistency_proof(3, 6),
        lambda: log.leaf_hash_at(5),
    ):
        with pytest.raises(LogQueryError):
            call()
    assert log.size == 5
    assert log.consistency_proof(5) == []


def test_append_leaf_hash_equals_append() -> None:
    """Appending data and appending its precomputed leaf hash build the same tree."""
    by_data, by_hash = MerkleLog(), MerkleLog()
    for i in range(37):
        data = i.to_bytes(4, "big")
        assert by_data.append(data) == by_hash.append_leaf_hash(leaf_hash(data)) == i
    assert by_data.root() == by_hash.root()
    assert MerkleLog().root() == EMPTY_ROOT


# ---------------------------------------------------------------------------------------------
# Stateful: a log that keeps growing while old checkpoints stay provable
# ---------------------------------------------------------------------------------------------


class GrowingLog(RuleBasedStateMachine):
    """Appends interleaved with remembered (size, root) heads; every remembered head stays consistent."""

    def __init__(self) -> None:
        super().__init__()
        self.log = MerkleLog()
        self.hashes: list[bytes] = []
        self.heads: list[tuple[int, bytes]] = []

    @rule(data=st.binary(max_size=16), count=st.integers(1, 40))
    def append(self, data: bytes, count: int) -> None:
        for _ in range(count):
            entry = data + len(self.hashes).to_bytes(4, "big")
            assert self.log.append(entry) == len(self.hashes)
            self.hashes.append(leaf_hash(entry))

    @precondition(lambda self: self.log.size > 0)
    @rule()
    def remember_head(self) -> None:
        self.heads.append((self.log.size, self.log.root()))

    @precondition(lambda self: len(self.heads) > 0)
    @rule(data=st.data())
    def old_heads_stay_consistent(self, data: st.DataObject) -> None:
        old_size, old_root = data.draw(st.sampled_from(self.heads))
        proof = self.log.consistency_proof(old_size)
        verify_consistency(old_size, self.log.size, old_root, self.log.root(), proof)
        index = data.draw(st.integers(0, old_size - 1))
        verify_inclusion(self.hashes[index], index, old_size, self.log.inclusion_proof(index, old_size), old_root)

    @invariant()
    def root_matches_reference(self) -> None:
        assert self.log.root() == merkle_root(self.hashes)
        assert self.log.size == len(self.hashes)


GrowingLog.TestCase.settings = settings(max_examples=30, stateful_step_count=25, deadline=None)
TestGrowingLog = GrowingLog.TestCase
