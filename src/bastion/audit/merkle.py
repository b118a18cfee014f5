"""RFC 6962 / RFC 9162 Merkle transparency log: tree hashes, proofs and their verification.

The tree is the Merkle Tree Hash (MTH) of RFC 6962 §2.1 (unchanged in RFC 9162 §2.1.1), with
domain-separated hashing so a leaf can never be confused with an interior node:

* ``leaf_hash(d)   = SHA-256(0x00 || d)``
* ``node_hash(l, r) = SHA-256(0x01 || l || r)``
* ``MTH({}) = SHA-256("")`` (the empty tree)
* for ``n > 1`` let ``k`` be the largest power of two smaller than ``n``:
  ``MTH(D[0:n]) = node_hash(MTH(D[0:k]), MTH(D[k:n]))``.

Everything here is written from those definitions; no third-party Merkle code is used.

`MerkleLog` is the append-only writer. It stores, per level ``h``, the hash of every *complete*
perfect subtree ``[j * 2**h, (j + 1) * 2**h)`` packed 32 bytes apiece in one ``bytearray`` per
level (about 64 bytes per leaf in total, ~64 MB per million leaves). Appending computes only the
new perfect subtrees the leaf completes (amortised one node hash per append). Any range hash that
appears in the tree of *any* size up to the current one is the right-to-left fold of at most
``log2 n`` stored perfect subtrees, so

* ``root(size)``: O(log n) hashes, for the current or any historical size;
* ``inclusion_proof`` / ``consistency_proof``: O(log² n) worst case, any historical size.

The verifiers follow RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency) step by step, with
the edge-case semantics of the transparency-dev/merkle conformance probes (see
``verify_consistency``). The "subtree" proofs of the Merkle Tree Certificates draft
(draft-ietf-plants-merkle-tree-certs §4) are supported as well, because they reduce to the same
two algorithms; see `verify_subtree_inclusion` and `verify_subtree_consistency`.

Errors::

    MerkleError (ValueError)
    ├── ProofError                 a proof does not verify, or its inputs are malformed
    │   ├── InclusionProofError
    │   └── ConsistencyProofError
    └── LogQueryError              a MerkleLog was asked for a leaf/size it does not hold

Every error carries a stable snake_case ``reason`` code (e.g. ``"root_mismatch"``) and a message.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "PROOF_HASHES_MAX",
    "TREE_HEIGHT_MAX",
    "TREE_SIZE_MAX",
    "ConsistencyProofError",
    "InclusionProofError",
    "LogQueryError",
    "MerkleError",
    "MerkleLog",
    "ProofError",
    "consistency_proof_size",
    "inclusion_proof_size",
    "is_valid_subtree",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
    "verify_subtree_consistency",
    "verify_subtree_inclusion",
]

HASH_SIZE = 32
"""Bytes in every SHA-256 leaf, node and root hash."""

TREE_HEIGHT_MAX = 64
"""Tree sizes are unsigned 64-bit (RFC 9162 §4.10 ``tree_size``), so a tree is at most 64 levels high."""

TREE_SIZE_MAX = (1 << TREE_HEIGHT_MAX) - 1
"""Largest tree size (leaf count) accepted anywhere in this module."""

PROOF_HASHES_MAX = 2 * TREE_HEIGHT_MAX
"""Longest proof accepted before any hashing (an honest proof has at most 64 hashes, 128 for subtrees)."""

_sha256 = hashlib.sha256
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH of the empty tree, ``SHA-256("")`` (RFC 6962 §2.1)."""


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class MerkleError(ValueError):
    """Base class of every error raised by `bastion.audit.merkle`.

    Attributes:
        reason: a stable snake_case code, e.g. ``"root_mismatch"``, ``"proof_too_long"``.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class ProofError(MerkleError):
    """A proof failed verification, or the sizes, indices or hashes given with it are malformed."""


class InclusionProofError(ProofError):
    """An inclusion (audit path) proof does not prove the leaf at that index under that root."""


class ConsistencyProofError(ProofError):
    """A consistency proof does not prove the old tree is a prefix of the new tree."""


class LogQueryError(MerkleError):
    """A `MerkleLog` was asked about a leaf or tree size it does not hold, or given a bad leaf hash."""


# ---------------------------------------------------------------------------------------------
# Hash primitives
# ---------------------------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """Hash one log entry as a Merkle leaf.

    Args:
        data: the entry's canonical bytes (any length, may be empty).

    Returns:
        ``SHA-256(0x00 || data)``, 32 bytes.

    Source: RFC 6962 §2.1 (``MTH({d(0)}) = SHA-256(0x00 || d(0))``), RFC 9162 §2.1.1.
    """
    return hashlib.sha256(_LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two child hashes into their parent.

    Args:
        left: hash of the left child (32 bytes for any real tree).
        right: hash of the right child.

    Returns:
        ``SHA-256(0x01 || left || right)``, 32 bytes.

    Source: RFC 6962 §2.1, RFC 9162 §2.1.1.
    """
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Reference MTH of a list of leaf hashes, computed level by level (no recursion).

    Each level pairs neighbours left to right; an unpaired last node is promoted to the next level
    unchanged (never duplicated, unlike Bitcoin). This yields exactly the RFC 6962 tree because the
    RFC splits at the largest power of two, so every left subtree is perfect. It is O(n) and is meant
    as an independent oracle for tests, not for the hot path (use `MerkleLog`).

    Args:
        leaf_hashes: the leaf hashes ``leaf_hash(d(i))`` in log order, each 32 bytes.

    Returns:
        The 32-byte Merkle Tree Hash; ``EMPTY_ROOT`` for an empty list.

    Source: RFC 6962 §2.1.
    """
    assert all(len(h) == HASH_SIZE for h in leaf_hashes), "leaf hashes must be 32 bytes"
    if not leaf_hashes:
        return EMPTY_ROOT
    level = [bytes(h) for h in leaf_hashes]
    for _ in range(TREE_HEIGHT_MAX + 1):
        if len(level) == 1:
            return level[0]
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2 == 1:
            paired.append(level[-1])
        level = paired
    raise AssertionError("more than 2**64 leaves")


# ---------------------------------------------------------------------------------------------
# Integer helpers (pure, O(1) or O(log n), no hashing)
# ---------------------------------------------------------------------------------------------


def _largest_power_of_two_below(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (``n >= 2``), the RFC 6962 split point ``k``."""
    assert n >= 2
    return 1 << ((n - 1).bit_length() - 1)


def _bit_ceil(n: int) -> int:
    """Smallest power of two ``>= n`` (``n >= 1``)."""
    assert n >= 1
    return 1 << (n - 1).bit_length()


def _shift_until_odd_or_zero(fn: int, sn: int) -> tuple[int, int]:
    """Right-shift ``fn`` and ``sn`` equally until ``LSB(fn)`` is set or ``fn`` is 0 (RFC 9162 step)."""
    if fn == 0:
        return fn, sn
    zeros = (fn & -fn).bit_length() - 1
    return fn >> zeros, sn >> zeros


def _shift_while_odd(fn: int, sn: int) -> tuple[int, int]:
    """Right-shift ``fn`` and ``sn`` equally until ``LSB(fn)`` is not set (RFC 9162 §2.1.4.2 step 4)."""
    ones = (fn ^ (fn + 1)).bit_length() - 1
    return fn >> ones, sn >> ones


def is_valid_subtree(start: int, end: int) -> bool:
    """Whether ``[start, end)`` is a subtree in the sense of the Merkle Tree Certificates draft.

    A subtree is non-empty and ``start`` is a multiple of ``BIT_CEIL(end - start)``; these are exactly
    the ranges whose MTH appears as a node of some RFC 6962 tree.

    Args:
        start: first leaf index, inclusive.
        end: last leaf index, exclusive; at most ``TREE_SIZE_MAX``.

    Returns:
        True when the range is a valid subtree.

    Source: draft-ietf-plants-merkle-tree-certs §4.1 ("Subtrees").
    """
    if not 0 <= start < end <= TREE_SIZE_MAX:
        return False
    return start % _bit_ceil(end - start) == 0


def _path_ranges(index: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs form PATH(index, D[lo:hi]), bottom (leaf sibling) first.

    Iterative transcription of RFC 6962 §2.1.1 ``PATH``; ``[lo, hi)`` must be a valid subtree.
    """
    assert lo <= index < hi
    ranges: list[tuple[int, int]] = []
    for _ in range(TREE_HEIGHT_MAX + 1):
        if hi - lo == 1:
            break
        mid = lo + _largest_power_of_two_below(hi - lo)
        if index < mid:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            lo = mid
    assert hi - lo == 1 and lo == index, "PATH walk did not reach the leaf"
    ranges.reverse()
    return ranges


def _subproof_ranges(start: int, end: int, tree_size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs form the (subtree) consistency proof of ``[start, end)`` in ``D[0:tree_size]``.

    Iterative transcription of RFC 6962 §2.1.2 ``PROOF(m, D[n]) = SUBPROOF(m, D[n], true)`` (the case
    ``start == 0``, ``end == m``), generalised to any valid subtree as in the Merkle Tree
    Certificates draft §4.4 ``SUBTREE_PROOF``. Bottom first. ``[start, end)`` must be a valid subtree
    with ``end <= tree_size``.
    """
    assert is_valid_subtree(start, end) and end <= tree_size
    lo, hi, known = 0, tree_size, True
    ranges: list[tuple[int, int]] = []
    for _ in range(TREE_HEIGHT_MAX + 1):
        if (start, end) == (lo, hi):
            if not known:
                ranges.append((lo, hi))
            break
        mid = lo + _largest_power_of_two_below(hi - lo)
        if end <= mid:
            ranges.append((mid, hi))
            hi = mid
        elif start >= mid:
            ranges.append((lo, mid))
            lo = mid
        else:
            # The subtree straddles the split, so (being a valid subtree) it starts at lo: the
            # left half is wholly old and only its right part is still being proven (RFC "m > k").
            assert start == lo
            ranges.append((lo, mid))
            lo = start = mid
            known = False
    else:
        raise AssertionError("SUBPROOF walk exceeded the tree height")
    ranges.reverse()
    return ranges


def inclusion_proof_size(index: int, tree_size: int) -> int:
    """Number of hashes in the inclusion proof of leaf ``index`` in a tree of ``tree_size`` leaves.

    Args:
        index: leaf index, ``0 <= index < tree_size``.
        tree_size: leaf count, at most ``TREE_SIZE_MAX``.

    Returns:
        The proof length (0 for a one-leaf tree, at most 64).

    Raises:
        InclusionProofError: ``index`` or ``tree_size`` out of range (reason ``index_out_of_range``).

    Source: RFC 6962 §2.1.1.
    """
    _check_index(index, tree_size, InclusionProofError)
    return len(_path_ranges(index, 0, tree_size))


def consistency_proof_size(old_size: int, new_size: int) -> int:
    """Number of hashes in the consistency proof between tree sizes ``old_size`` and ``new_size``.

    Args:
        old_size: leaf count of the old tree, ``0 < old_size <= new_size``.
        new_size: leaf count of the new tree, at most ``TREE_SIZE_MAX``.

    Returns:
        The proof length (0 when the sizes are equal).

    Raises:
        ConsistencyProofError: sizes out of range or reversed.

    Source: RFC 6962 §2.1.2.
    """
    _check_sizes(old_size, new_size)
    if old_size == new_size:
        return 0
    return len(_subproof_ranges(0, old_size, new_size))


# ---------------------------------------------------------------------------------------------
# Input checks shared by the verifiers
# ---------------------------------------------------------------------------------------------


def _check_index(index: int, tree_size: int, error: type[ProofError]) -> None:
    if not 0 <= tree_size <= TREE_SIZE_MAX:
        raise error("tree_size_out_of_range", f"tree size {tree_size} not in [0, 2**64)")
    if not 0 <= index < tree_size:
        raise error("index_out_of_range", f"leaf index {index} not in [0, {tree_size})")


def _check_sizes(old_size: int, new_size: int) -> None:
    if not (0 <= old_size <= TREE_SIZE_MAX and 0 <= new_size <= TREE_SIZE_MAX):
        detail = f"sizes {old_size}, {new_size} not in [0, 2**64)"
        raise ConsistencyProofError("tree_size_out_of_range", detail)
    if new_size < old_size:
        raise ConsistencyProofError("sizes_reversed", f"new size {new_size} < old size {old_size}")
    if old_size == 0:
        raise ConsistencyProofError("old_size_zero", "a consistency proof from the empty tree is meaningless")


def _check_proof_hashes(proof: Sequence[bytes], error: type[ProofError]) -> None:
    if len(proof) > PROOF_HASHES_MAX:
        raise error("proof_too_long", f"{len(proof)} hashes > limit {PROOF_HASHES_MAX}")
    for position, element in enumerate(proof):
        if len(element) != HASH_SIZE:
            detail = f"proof[{position}] has {len(element)} bytes, expected {HASH_SIZE}"
            raise error("proof_hash_size", detail)


def _check_hash(value: bytes, what: str, error: type[ProofError]) -> None:
    if len(value) != HASH_SIZE:
        raise error(f"{what}_size", f"{what} has {len(value)} bytes, expected {HASH_SIZE}")


def _require_equal(computed: bytes, expected: bytes, reason: str, error: type[ProofError]) -> None:
    if not hmac.compare_digest(computed, expected):
        raise error(reason, f"computed {computed.hex()} != expected {bytes(expected).hex()}")


# ---------------------------------------------------------------------------------------------
# Inclusion: RFC 9162 §2.1.3.2
# ---------------------------------------------------------------------------------------------


def _root_from_path(
    start_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], error: type[ProofError]
) -> bytes:
    """RFC 9162 §2.1.3.2 steps 2-5 (without the final root comparison); raises ``error``."""
    fn, sn, r = index, tree_size - 1, bytes(start_hash)
    for p in proof:
        if sn == 0:
            raise error("proof_too_long", f"more than {inclusion_proof_size(index, tree_size)} hashes")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                fn, sn = _shift_until_odd_or_zero(fn, sn)
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise error("proof_too_short", f"{len(proof)} hashes < {inclusion_proof_size(index, tree_size)}")
    return r


def root_from_inclusion_proof(leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes]) -> bytes:
    """Recompute the tree root implied by an inclusion proof.

    Args:
        leaf_hash: the 32-byte leaf hash ``SHA-256(0x00 || entry)``.
        index: the leaf's 0-based index.
        tree_size: the tree's leaf count, ``index < tree_size <= TREE_SIZE_MAX``.
        proof: the audit path, sibling hashes from the leaf upwards, 32 bytes each.

    Returns:
        The 32-byte root that the proof commits to (compare it with a trusted root yourself, or call
        `verify_inclusion`).

    Raises:
        InclusionProofError: index out of range (``index_out_of_range``), malformed hashes
            (``leaf_hash_size``, ``proof_hash_size``), wrong proof length (``proof_too_long``,
            ``proof_too_short``).

    Source: RFC 9162 §2.1.3.2 (verifying an inclusion proof), steps 1-4 and the ``sn == 0`` check of 5.
    """
    _check_index(index, tree_size, InclusionProofError)
    _check_hash(leaf_hash, "leaf_hash", InclusionProofError)
    _check_proof_hashes(proof, InclusionProofError)
    root = _root_from_path(leaf_hash, index, tree_size, proof, InclusionProofError)
    assert len(root) == HASH_SIZE
    return root


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify that ``leaf_hash`` is leaf ``index`` of the tree of ``tree_size`` leaves with ``root``.

    Args:
        leaf_hash: the 32-byte leaf hash ``SHA-256(0x00 || entry)``.
        index: the leaf's 0-based index.
        tree_size: the tree's leaf count.
        proof: the audit path, bottom-up, 32 bytes per hash.
        root: the trusted tree root (compared in constant time).

    Returns:
        None when the proof is valid.

    Raises:
        InclusionProofError: with reason ``root_mismatch`` or any reason of `root_from_inclusion_proof`.

    Source: RFC 9162 §2.1.3.2.
    """
    computed = root_from_inclusion_proof(leaf_hash, index, tree_size, proof)
    _require_equal(computed, root, "root_mismatch", InclusionProofError)


# ---------------------------------------------------------------------------------------------
# Consistency: RFC 9162 §2.1.4.2
# ---------------------------------------------------------------------------------------------


def root_from_consistency_proof(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> bytes:
    """Check a consistency proof against the old root and return the new root it implies.

    Edge cases follow the transparency-dev/merkle conformance probes (reference doc §2.5): an old
    size of 0 is an error (there is nothing to be consistent with; a checkpoint layer handles the
    empty tree itself); equal sizes need an empty proof and imply ``new_root == old_root``.

    Args:
        old_size: leaf count of the old tree, ``0 < old_size <= new_size``.
        new_size: leaf count of the new tree, at most ``TREE_SIZE_MAX``.
        old_root: the trusted 32-byte root of the old tree.
        proof: the consistency proof, 32 bytes per hash, as produced by
            `MerkleLog.consistency_proof`.

    Returns:
        The 32-byte new-tree root the proof commits to.

    Raises:
        ConsistencyProofError: reasons ``tree_size_out_of_range``, ``sizes_reversed``,
            ``old_size_zero``, ``proof_not_empty`` (equal sizes), ``proof_empty``,
            ``proof_hash_size``, ``old_root_size``, ``proof_too_long``, ``proof_too_short``,
            ``old_root_mismatch``.

    Source: RFC 9162 §2.1.4.2 (verifying consistency between two tree heads), steps 1-7 except the
    final comparison with the new root.
    """
    _check_sizes(old_size, new_size)
    if old_size == new_size:
        if proof:
            raise ConsistencyProofError("proof_not_empty", "equal tree sizes need an empty proof")
        return bytes(old_root)
    if not proof:  # step 1
        raise ConsistencyProofError("proof_empty", f"a proof from {old_size} to {new_size} cannot be empty")
    _check_proof_hashes(proof, ConsistencyProofError)
    _check_hash(old_root, "old_root", ConsistencyProofError)
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # step 2: first is an exact power of 2
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1  # step 3
    if fn & 1:  # step 4
        fn, sn = _shift_while_odd(fn, sn)
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            expected = consistency_proof_size(old_size, new_size)
            raise ConsistencyProofError("proof_too_long", f"more than {expected} hashes")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                fn, sn = _shift_until_odd_or_zero(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:  # step 7
        expected = consistency_proof_size(old_size, new_size)
        raise ConsistencyProofError("proof_too_short", f"{len(proof)} hashes < {expected}")
    _require_equal(fr, old_root, "old_root_mismatch", ConsistencyProofError)
    assert len(sr) == HASH_SIZE
    return sr


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Verify that the tree (``old_size``, ``old_root``) is a prefix of (``new_size``, ``new_root``).

    Args:
        old_size: leaf count of the old tree, ``0 < old_size <= new_size``.
        new_size: leaf count of the new tree.
        old_root: trusted root of the old tree.
        new_root: trusted root of the new tree (compared in constant time).
        proof: the consistency proof, bottom-up.

    Returns:
        None when the proof is valid.

    Raises:
        ConsistencyProofError: reason ``new_root_mismatch`` (``roots_differ`` for equal sizes), or any
            reason of `root_from_consistency_proof`.

    Source: RFC 9162 §2.1.4.2.
    """
    computed = root_from_consistency_proof(old_size, new_size, old_root, proof)
    reason = "roots_differ" if old_size == new_size else "new_root_mismatch"
    _require_equal(computed, new_root, reason, ConsistencyProofError)


# ---------------------------------------------------------------------------------------------
# Subtree proofs (Merkle Tree Certificates draft §4.3, §4.4)
# ---------------------------------------------------------------------------------------------


def verify_subtree_inclusion(
    leaf_hash: bytes, index: int, start: int, end: int, proof: Sequence[bytes], subtree_hash: bytes
) -> None:
    """Verify that ``leaf_hash`` is leaf ``index`` of the subtree ``[start, end)`` with hash ``subtree_hash``.

    A subtree's MTH is the MTH of its own leaves, so this is RFC 9162 inclusion of leaf
    ``index - start`` in a tree of ``end - start`` leaves, after checking the range is a subtree.

    Args:
        leaf_hash: 32-byte leaf hash.
        index: absolute leaf index, ``start <= index < end``.
        start: first leaf of the subtree (inclusive).
        end: end of the subtree (exclusive); ``[start, end)`` must satisfy `is_valid_subtree`.
        proof: audit path within the subtree, bottom-up.
        subtree_hash: trusted ``MTH(D[start:end])``.

    Returns:
        None when the proof is valid.

    Raises:
        InclusionProofError: ``subtree_invalid``, ``index_out_of_range`` or any reason of
            `verify_inclusion`.

    Source: draft-ietf-plants-merkle-tree-certs §4.3 (subtree inclusion proofs); RFC 9162 §2.1.3.2.
    """
    if not is_valid_subtree(start, end):
        raise InclusionProofError("subtree_invalid", f"[{start}, {end}) is not a valid subtree")
    if not start <= index < end:
        raise InclusionProofError("index_out_of_range", f"leaf index {index} not in [{start}, {end})")
    verify_inclusion(leaf_hash, index - start, end - start, proof, subtree_hash)


def verify_subtree_consistency(
    start: int, end: int, tree_size: int, subtree_hash: bytes, root: bytes, proof: Sequence[bytes]
) -> None:
    """Verify that ``subtree_hash`` is ``MTH(D[start:end])`` of the tree (``tree_size``, ``root``).

    With ``start == 0`` this is RFC 9162 consistency from size ``end`` to ``tree_size``. In general,
    let ``B = BIT_CEIL(end - start)``: the aligned block ``[start, min(start + B, tree_size))`` is a
    node of the tree, so the proof is an RFC 9162 consistency proof from ``end - start`` to the block
    width *inside* that block, followed by the RFC 9162 inclusion path of the block node (level
    ``log2 B``, index ``start / B``) up to the root. Both halves are checked with the RFC algorithms;
    the split point is fixed by the sizes, never taken from the proof.

    An empty subtree (``start == end <= tree_size``) is accepted exactly when the proof is empty and
    ``subtree_hash == EMPTY_ROOT``, whatever ``root`` is; this matches the conformance probes.

    Args:
        start: first leaf of the subtree (inclusive).
        end: end of the subtree (exclusive), ``end <= tree_size``.
        tree_size: leaf count of the full tree.
        subtree_hash: trusted ``MTH(D[start:end])``.
        root: trusted root of the full tree.
        proof: the subtree consistency proof, bottom-up.

    Returns:
        None when the proof is valid.

    Raises:
        ConsistencyProofError: ``subtree_invalid``, ``subtree_beyond_tree``, ``proof_not_empty``,
            ``subtree_hash_mismatch`` (empty subtree), ``proof_too_short`` or any reason of
            `root_from_consistency_proof` / `verify_inclusion`, raised as consistency errors.

    Source: draft-ietf-plants-merkle-tree-certs §4.4 (subtree consistency proofs), reduced to
    RFC 9162 §2.1.4.2 and §2.1.3.2.
    """
    if not 0 <= tree_size <= TREE_SIZE_MAX:
        raise ConsistencyProofError("tree_size_out_of_range", f"tree size {tree_size} not in [0, 2**64)")
    if start == end and 0 <= start <= tree_size:
        if proof:
            raise ConsistencyProofError("proof_not_empty", "an empty subtree needs an empty proof")
        _require_equal(bytes(subtree_hash), EMPTY_ROOT, "subtree_hash_mismatch", ConsistencyProofError)
        return
    if not is_valid_subtree(start, end):
        raise ConsistencyProofError("subtree_invalid", f"[{start}, {end}) is not a valid subtree")
    if end > tree_size:
        raise ConsistencyProofError("subtree_beyond_tree", f"subtree end {end} > tree size {tree_size}")
    width = end - start
    block_width = _bit_ceil(width)
    level = block_width.bit_length() - 1
    inner_size = min(block_width, tree_size - start)
    inner_count = 0 if width == inner_size else len(_subproof_ranges(0, width, inner_size))
    if len(proof) < inner_count:
        detail = f"{len(proof)} hashes < {inner_count} inside the block"
        raise ConsistencyProofError("proof_too_short", detail)
    _check_proof_hashes(proof, ConsistencyProofError)
    block_hash = bytes(subtree_hash)
    if inner_count:
        block_hash = root_from_consistency_proof(width, inner_size, subtree_hash, proof[:inner_count])
    block_index, level_size = start >> level, ((tree_size - 1) >> level) + 1
    outer = proof[inner_count:]
    computed = _root_from_path(block_hash, block_index, level_size, outer, ConsistencyProofError)
    _require_equal(computed, root, "root_mismatch", ConsistencyProofError)


# ---------------------------------------------------------------------------------------------
# The append-only log
# ---------------------------------------------------------------------------------------------


class MerkleLog:
    """Append-only RFC 6962 Merkle log held in memory, with roots and proofs for every past size.

    Storage: ``_levels[h]`` packs the 32-byte hashes of all complete perfect subtrees of height
    ``h`` in order, so ``_levels[0]`` is the leaf hashes and ``len(_levels[h]) == 32 * (size >> h)``.
    The highest level's last hash and the set bits of ``size`` together form the compact range
    ("frontier") of the current tree. Leaf *data* is not kept; callers own it.

    Complexity: `append` amortised O(1) (one node hash per leaf on average), `root` O(log n),
    proofs O(log² n) hashes worst case, for the current or any historical size. Memory about 64
    bytes per leaf (2 hashes), e.g. ~64 MB for 10**6 leaves.

    Not thread-safe; the single-threaded core owns it.
    """

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        """Create an empty log (size 0, root ``EMPTY_ROOT``)."""
        self._levels: list[bytearray] = [bytearray()]

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return len(self._levels[0]) // HASH_SIZE

    def __len__(self) -> int:
        """Number of leaves appended so far (same as `size`)."""
        return self.size

    def append(self, leaf_data: bytes) -> int:
        """Append one entry, hashing it as a leaf.

        Args:
            leaf_data: the entry's canonical bytes (hashed as ``SHA-256(0x00 || leaf_data)``).

        Returns:
            The new leaf's 0-based index (the log size before the append).

        Raises:
            LogQueryError: the log already holds ``TREE_SIZE_MAX`` leaves.

        Source: RFC 6962 §2.1.
        """
        return self.append_leaf_hash(_sha256(_LEAF_PREFIX + leaf_data).digest())

    def append_leaf_hash(self, leaf_hash_value: bytes) -> int:
        """Append one precomputed leaf hash.

        Args:
            leaf_hash_value: ``SHA-256(0x00 || entry)``, exactly 32 bytes.

        Returns:
            The new leaf's 0-based index.

        Raises:
            LogQueryError: the hash is not 32 bytes (``leaf_hash_size``) or the log is full.
        """
        if len(leaf_hash_value) != HASH_SIZE:
            raise LogQueryError("leaf_hash_size", f"leaf hash has {len(leaf_hash_value)} bytes, expected 32")
        levels = self._levels
        leaves = levels[0]
        index = len(leaves) // HASH_SIZE
        if index >= TREE_SIZE_MAX:
            raise LogQueryError("log_full", f"log already holds {index} leaves")
        node = bytes(leaf_hash_value)
        leaves += node
        # Each trailing 1-bit of the new size is a perfect subtree this leaf just completed; hash
        # it from its stored left half and the right half just built.
        count, height = index + 1, 0
        while not count & 1:
            assert height < TREE_HEIGHT_MAX
            node = _sha256(_NODE_PREFIX + levels[height][-2 * HASH_SIZE : -HASH_SIZE] + node).digest()
            height += 1
            if height == len(levels):
                levels.append(bytearray())
            levels[height] += node
            count >>= 1
        assert len(levels[height]) % HASH_SIZE == 0
        return index

    def leaf_hash_at(self, index: int) -> bytes:
        """Return the stored leaf hash at ``index``.

        Args:
            index: ``0 <= index < size``.

        Returns:
            The 32-byte leaf hash.

        Raises:
            LogQueryError: index out of range.
        """
        if not 0 <= index < self.size:
            raise LogQueryError("index_out_of_range", f"leaf index {index} not in [0, {self.size})")
        return self._perfect(0, index)

    def root(self, size: int | None = None) -> bytes:
        """Return the Merkle Tree Hash of the first ``size`` leaves.

        Args:
            size: tree size, ``0 <= size <= self.size``; None means the current size.

        Returns:
            The 32-byte root; ``EMPTY_ROOT`` for size 0.

        Raises:
            LogQueryError: ``size`` larger than the log.

        Source: RFC 6962 §2.1 (MTH), computed from stored perfect subtrees in O(log n).
        """
        tree_size = self._resolve_size(size)
        if tree_size == 0:
            return EMPTY_ROOT
        return self._range_hash(0, tree_size)

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> list[bytes]:
        """Build the audit path for leaf ``index`` in the tree of the first ``tree_size`` leaves.

        Args:
            index: leaf index, ``0 <= index < tree_size``.
            tree_size: historical tree size, ``<= self.size``; None means the current size.

        Returns:
            Sibling hashes from the leaf upwards (at most 64, each 32 bytes).

        Raises:
            LogQueryError: index or size out of range.

        Source: RFC 6962 §2.1.1 ``PATH(m, D[n])`` (RFC 9162 §2.1.3.1).
        """
        size = self._resolve_size(tree_size)
        if not 0 <= index < size:
            raise LogQueryError("index_out_of_range", f"leaf index {index} not in [0, {size})")
        proof = [self._range_hash(lo, hi) for lo, hi in _path_ranges(index, 0, size)]
        assert len(proof) <= TREE_HEIGHT_MAX and all(len(h) == HASH_SIZE for h in proof)
        return proof

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Build the consistency proof from the tree of ``old_size`` leaves to ``new_size`` leaves.

        Args:
            old_size: ``0 < old_size <= new_size`` (a proof from the empty tree is meaningless).
            new_size: ``<= self.size``; None means the current size.

        Returns:
            Proof hashes bottom-up; empty when the sizes are equal.

        Raises:
            LogQueryError: sizes out of range or reversed.

        Source: RFC 6962 §2.1.2 ``PROOF(m, D[n])`` (RFC 9162 §2.1.4.1).
        """
        size = self._resolve_size(new_size)
        if not 0 < old_size <= size:
            raise LogQueryError("tree_size_out_of_range", f"old size {old_size} not in [1, {size}]")
        if old_size == size:
            return []
        proof = [self._range_hash(lo, hi) for lo, hi in _subproof_ranges(0, old_size, size)]
        assert 0 < len(proof) <= TREE_HEIGHT_MAX + 1 and all(len(h) == HASH_SIZE for h in proof)
        return proof

    def subtree_hash(self, start: int, end: int) -> bytes:
        """Return ``MTH(D[start:end])`` for a valid subtree within the log.

        Args:
            start: first leaf (inclusive); ``[start, end)`` must satisfy `is_valid_subtree`.
            end: end leaf (exclusive), ``<= self.size``.

        Returns:
            The 32-byte subtree hash.

        Raises:
            LogQueryError: not a valid subtree, or beyond the log.

        Source: RFC 6962 §2.1; draft-ietf-plants-merkle-tree-certs §4.1.
        """
        self._check_subtree(start, end, self.size)
        return self._range_hash(start, end)

    def subtree_inclusion_proof(self, index: int, start: int, end: int) -> list[bytes]:
        """Build the audit path for leaf ``index`` inside the subtree ``[start, end)``.

        Args:
            index: ``start <= index < end``.
            start: first leaf of a valid subtree.
            end: end of the subtree, ``<= self.size``.

        Returns:
            Sibling hashes from the leaf up to the subtree node.

        Raises:
            LogQueryError: invalid subtree or index.

        Source: draft-ietf-plants-merkle-tree-certs §4.3.
        """
        self._check_subtree(start, end, self.size)
        if not start <= index < end:
            raise LogQueryError("index_out_of_range", f"leaf index {index} not in [{start}, {end})")
        return [self._range_hash(lo, hi) for lo, hi in _path_ranges(index, start, end)]

    def subtree_consistency_proof(self, start: int, end: int, tree_size: int | None = None) -> list[bytes]:
        """Build the proof that ``[start, end)`` is a subtree of the tree of ``tree_size`` leaves.

        Args:
            start: first leaf of a valid subtree.
            end: end of the subtree, ``end <= tree_size``.
            tree_size: ``<= self.size``; None means the current size.

        Returns:
            Proof hashes bottom-up (empty when the subtree is the whole tree).

        Raises:
            LogQueryError: invalid subtree, or sizes out of range.

        Source: draft-ietf-plants-merkle-tree-certs §4.4 ``SUBTREE_PROOF``; RFC 6962 §2.1.2.
        """
        size = self._resolve_size(tree_size)
        self._check_subtree(start, end, size)
        return [self._range_hash(lo, hi) for lo, hi in _subproof_ranges(start, end, size)]

    # -- internals ------------------------------------------------------------------------------

    def _resolve_size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise LogQueryError("tree_size_out_of_range", f"tree size {size} not in [0, {self.size}]")
        return size

    @staticmethod
    def _check_subtree(start: int, end: int, size: int) -> None:
        if not is_valid_subtree(start, end):
            raise LogQueryError("subtree_invalid", f"[{start}, {end}) is not a valid subtree")
        if end > size:
            raise LogQueryError("subtree_beyond_tree", f"subtree end {end} > tree size {size}")

    def _perfect(self, height: int, index: int) -> bytes:
        """Hash of the complete perfect subtree ``[index * 2**height, (index + 1) * 2**height)``."""
        offset = index * HASH_SIZE
        level = self._levels[height]
        assert offset + HASH_SIZE <= len(level), "perfect subtree not complete yet"
        return bytes(level[offset : offset + HASH_SIZE])

    def _range_hash(self, lo: int, hi: int) -> bytes:
        """``MTH(D[lo:hi])`` for a valid subtree ``[lo, hi)`` with ``hi <= size``, in O(log n).

        The range splits, by the binary digits of ``hi - lo`` from the top, into aligned perfect
        subtrees; folding them right to left is exactly RFC 6962's split at the largest power of two.
        """
        assert is_valid_subtree(lo, hi) and hi <= self.size
        parts: list[bytes] = []
        position, remaining = lo, hi - lo
        while remaining:
            height = remaining.bit_length() - 1
            assert position % (1 << height) == 0
            parts.append(self._perfect(height, position >> height))
            position += 1 << height
            remaining -= 1 << height
        assert position == hi and len(parts) <= TREE_HEIGHT_MAX
        acc = parts[-1]
        for part in reversed(parts[:-1]):
            acc = node_hash(part, acc)
        return acc
