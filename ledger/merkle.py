"""RFC 9162 section 2.1 Merkle tree: hashing, proofs, verification and incremental appends.

Hashes are 32-byte SHA-256 digests.  A stored node is addressed as ``(level, index)``: the complete
subtree over leaves ``[index * 2**level, (index + 1) * 2**level)``; level 0 is a leaf hash.

Every hash a proof needs is the Merkle Tree Hash (MTH) of a leaf range ``[start, end)`` that is a
node of the RFC's recursive split.  Such a range decomposes into at most ``log2(n)`` complete aligned
subtrees (:func:`subtree_nodes`), so a store that keeps the hashes of complete subtrees serves any
proof with O(log n) node reads, all fetched in one query (:func:`proof_nodes`).

Proof construction follows RFC 9162 2.1.3.1 (PATH) and 2.1.4.1 (SUBPROOF); verification follows
2.1.3.2 and 2.1.4.2 step by step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final

from ledger.errors import IntegrityError, ValidationError, VerificationError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "NodeKey",
    "consistency_proof",
    "consistency_ranges",
    "fold_subtrees",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "proof_nodes",
    "range_hash_from_nodes",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "subtree_nodes",
    "verify_consistency",
    "verify_inclusion",
]

NodeKey = tuple[int, int]
"""``(level, index)`` of a complete subtree."""

HASH_SIZE: Final = 32
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
"""RFC 9162 2.1.1: MTH({}) = HASH()."""

_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"
_sha256 = hashlib.sha256


# --- hashing ----------------------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 2.1.1: MTH({d(0)}) = HASH(0x00 || d(0))."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 2.1.1: HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def root_from_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """MTH of a whole list of leaf hashes (RFC 9162 2.1.1), level by level in O(n), no recursion.

    Pairing neighbours left to right and carrying an odd last node up unchanged builds exactly the
    RFC's tree: its left subtrees are always complete, so only the right edge is ever unpaired.
    """
    if not leaves:
        return EMPTY_ROOT
    _check_hashes(leaves, "leaf hash")
    level = list(leaves)
    while len(level) > 1:
        paired = [_sha256(_NODE_PREFIX + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def fold_subtrees(hashes: Sequence[bytes]) -> bytes:
    """Combine the hashes of :func:`subtree_nodes` (left to right) into the MTH of their range.

    With k the largest power of two below n, MTH(D[0:n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
    (RFC 9162 2.1.1) and D[0:k] is the first, largest subtree, so the fold runs right to left.
    """
    if not hashes:
        raise ValidationError("cannot fold an empty list of subtree hashes")
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


# --- ranges and stored nodes ------------------------------------------------------------------------


def _largest_power_of_two_below(n: int) -> int:
    """RFC 9162 2.1.1: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_nodes(start: int, end: int) -> list[NodeKey]:
    """The complete aligned subtrees, left to right, whose fold is MTH(D[start:end]).

    The range must be one that RFC 9162 proofs use: ``start`` a multiple of the largest power of two
    not above ``end - start``.  The range then splits greedily, largest power of two first, exactly
    as the RFC's recursion splits it.
    """
    if not 0 <= start < end:
        raise ValidationError(f"invalid leaf range [{start}, {end})")
    width = end - start
    if start % (1 << (width.bit_length() - 1)):
        raise ValidationError(f"leaf range [{start}, {end}) is not aligned like an RFC 9162 subtree")
    nodes: list[NodeKey] = []
    position = start
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            nodes.append((level, position >> level))
            position += 1 << level
    return nodes


def proof_nodes(ranges: Iterable[tuple[int, int]]) -> set[NodeKey]:
    """Every stored node needed to hash the given ranges, so a store can fetch them in one query."""
    needed: set[NodeKey] = set()
    for start, end in ranges:
        needed.update(subtree_nodes(start, end))
    return needed


def range_hash_from_nodes(start: int, end: int, nodes: Mapping[NodeKey, bytes]) -> bytes:
    """MTH(D[start:end]) from stored complete-subtree hashes (see :func:`subtree_nodes`).

    Raises :class:`IntegrityError` when a node the range needs is missing from ``nodes``.
    """
    hashes: list[bytes] = []
    for key in subtree_nodes(start, end):
        found = nodes.get(key)
        if found is None:
            raise IntegrityError(f"tree node (level {key[0]}, index {key[1]}) is missing")
        hashes.append(found)
    return fold_subtrees(hashes)


# --- proof construction -----------------------------------------------------------------------------


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs form PATH(index, D[size]) (RFC 9162 2.1.3.1), in proof order.

    PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) if m < k, else PATH(m - k, D[k:n]) : MTH(D[0:k]).
    Unrolled: siblings are collected from the root down and returned leaf-first.
    """
    if not 0 <= index < size:
        raise ValidationError(f"leaf index {index} is not in a tree of size {size} (RFC 9162 2.1.3.1)")
    siblings: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        split = start + _largest_power_of_two_below(end - start)
        if index < split:
            siblings.append((split, end))
            end = split
        else:
            siblings.append((start, split))
            start = split
    siblings.reverse()
    return siblings


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs form PROOF(old_size, D[new_size]) (RFC 9162 2.1.4.1), in proof order.

    SUBPROOF(m, D[n], b): if m == n it is {} when b is true, else {MTH(D[n])}; otherwise with k the
    largest power of two below n, SUBPROOF(m, D[0:k], b) : MTH(D[k:n]) if m <= k, else
    SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]).  RFC 9162 defines the proof only for 0 < m <= n
    (m == n gives the empty proof); a tree of size 0 has no consistency proof.
    """
    if old_size <= 0:
        raise ValidationError("RFC 9162 2.1.4.1 defines no consistency proof from an empty tree")
    if old_size > new_size:
        raise ValidationError(f"old size {old_size} is larger than new size {new_size}")
    siblings: list[tuple[int, int]] = []
    start, end = 0, new_size
    known = True  # the RFC's b: MTH(D[start:end]) of the old tree is already known to the verifier
    while old_size != end:
        split = start + _largest_power_of_two_below(end - start)
        if old_size <= split:
            siblings.append((split, end))
            end = split
        else:
            siblings.append((start, split))
            start = split
            known = False
    siblings.reverse()
    return siblings if known else [(start, end), *siblings]


def inclusion_proof(index: int, size: int, range_hash: Callable[[int, int], bytes]) -> list[bytes]:
    """Build the RFC 9162 2.1.3.1 inclusion proof, asking ``range_hash(start, end)`` for each MTH."""
    return [range_hash(start, end) for start, end in inclusion_ranges(index, size)]


def consistency_proof(old_size: int, new_size: int, range_hash: Callable[[int, int], bytes]) -> list[bytes]:
    """Build the RFC 9162 2.1.4.1 consistency proof, asking ``range_hash(start, end)`` for each MTH."""
    return [range_hash(start, end) for start, end in consistency_ranges(old_size, new_size)]


# --- verification -----------------------------------------------------------------------------------


def _check_hashes(hashes: Iterable[bytes], what: str) -> None:
    for value in hashes:
        if not isinstance(value, bytes) or len(value) != HASH_SIZE:
            raise VerificationError(f"malformed {what}: expected {HASH_SIZE} bytes")


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """Recompute the root from an inclusion proof (RFC 9162 2.1.3.2 steps 1-4 and the sn check of 5)."""
    _check_hashes([leaf], "leaf hash")
    _check_hashes(proof, "inclusion proof")
    # RFC 9162 2.1.3.2 step 1: leaf_index must be below tree_size
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is not in a tree of size {size}")
    # step 2 and step 3
    fn, sn = index, size - 1
    result = leaf
    # step 4
    for sibling in proof:
        if sn == 0:  # step 4a
            raise VerificationError("inclusion proof is too long")
        if fn & 1 or fn == sn:  # step 4b
            result = node_hash(sibling, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1  # step 4c
        sn >>= 1
    # step 5 (first half): sn must have reached 0
    if sn != 0:
        raise VerificationError("inclusion proof is too short")
    return result


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Raise :class:`VerificationError` unless ``proof`` proves ``leaf`` at ``index`` under ``root``."""
    _check_hashes([root], "root hash")
    # RFC 9162 2.1.3.2 step 5: the recomputed r must equal root_hash
    if root_from_inclusion_proof(leaf, index, size, proof) != root:
        raise VerificationError("inclusion proof does not lead to the expected root")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Raise :class:`VerificationError` unless ``proof`` shows ``new_root`` extends ``old_root``.

    RFC 9162 2.1.4.2 covers 0 < first < second; for first == second the proof must be empty and the
    roots equal.  A consistency proof from the empty tree is not defined by the RFC and is rejected.
    """
    _check_hashes([old_root, new_root], "root hash")
    _check_hashes(proof, "consistency proof")
    if old_size <= 0:
        raise VerificationError("RFC 9162 2.1.4 defines no consistency proof from an empty tree")
    if old_size > new_size:
        raise VerificationError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == new_size:
        if proof:
            raise VerificationError("consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise VerificationError("trees of equal size have different roots")
        return
    old_result, new_result = _roots_from_consistency_proof(old_size, new_size, old_root, proof)
    # RFC 9162 2.1.4.2 step 7: fr == first_hash and sr == second_hash
    if old_result != old_root:
        raise VerificationError("consistency proof does not lead to the old root")
    if new_result != new_root:
        raise VerificationError("consistency proof does not lead to the new root")


def _roots_from_consistency_proof(
    first: int, second: int, first_hash: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """RFC 9162 2.1.4.2 steps 1-6 and the sn check of step 7, for 0 < first < second."""
    # step 1: an empty consistency_path fails
    if not proof:
        raise VerificationError("consistency proof is empty")
    path = list(proof)
    # step 2: if first is an exact power of 2, prepend first_hash
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    # step 3
    fn, sn = first - 1, second - 1
    # step 4: right-shift both until LSB(fn) is not set
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # step 5
    old_result = new_result = path[0]
    # step 6
    for node in path[1:]:
        if sn == 0:  # step 6a
            raise VerificationError("consistency proof is too long")
        if fn & 1 or fn == sn:  # step 6b
            old_result = node_hash(node, old_result)
            new_result = node_hash(node, new_result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            new_result = node_hash(new_result, node)
        fn >>= 1  # step 6c
        sn >>= 1
    # step 7 (first half): sn must have reached 0
    if sn != 0:
        raise VerificationError("consistency proof is too short")
    return old_result, new_result


# --- incremental appends ----------------------------------------------------------------------------


class CompactRange:
    """The right edge of a tree of ``size`` leaves: the hashes of the complete subtrees of its binary
    decomposition, largest (leftmost) first, i.e. the fold inputs of :func:`subtree_nodes` (0, size).

    Appending leaves merges equal-sized neighbours like a binary counter carrying; each merge creates
    exactly one new complete internal node, which :meth:`append` reports so a store saves it.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0:
            raise ValidationError(f"tree size {size} is negative")
        if len(hashes) != size.bit_count():
            raise ValidationError(f"a tree of size {size} needs {size.bit_count()} edge hashes, got {len(hashes)}")
        for value in hashes:
            if not isinstance(value, bytes) or len(value) != HASH_SIZE:
                raise ValidationError(f"edge hashes must be {HASH_SIZE} bytes")
        self._size = size
        self._hashes = list(hashes)

    @classmethod
    def from_nodes(cls, size: int, nodes: Mapping[NodeKey, bytes]) -> CompactRange:
        """Rebuild the edge of a tree of ``size`` leaves from stored nodes.

        The keys needed are ``subtree_nodes(0, size)``; a missing one raises :class:`IntegrityError`.
        """
        if size == 0:
            return cls()
        keys = subtree_nodes(0, size)
        missing = [key for key in keys if key not in nodes]
        if missing:
            raise IntegrityError(f"tree node (level {missing[0][0]}, index {missing[0][1]}) is missing")
        return cls(size, [nodes[key] for key in keys])

    @property
    def size(self) -> int:
        """Number of leaves covered."""
        return self._size

    @property
    def hashes(self) -> list[bytes]:
        """Edge hashes, largest subtree first (a copy)."""
        return list(self._hashes)

    def nodes(self) -> list[tuple[int, int, bytes]]:
        """The edge as ``(level, index, hash)`` stored-node entries, largest subtree first."""
        keys = subtree_nodes(0, self._size) if self._size else []
        return [(level, index, value) for (level, index), value in zip(keys, self._hashes, strict=True)]

    def root(self) -> bytes:
        """MTH of the whole tree (RFC 9162 2.1.1); :data:`EMPTY_ROOT` when empty."""
        return fold_subtrees(self._hashes) if self._hashes else EMPTY_ROOT

    def copy(self) -> CompactRange:
        """An independent copy."""
        clone = CompactRange.__new__(CompactRange)
        clone._size = self._size
        clone._hashes = list(self._hashes)
        return clone

    def append(self, leaf_hashes: Sequence[bytes]) -> list[tuple[int, int, bytes]]:
        """Append leaf hashes; return every new complete internal node as ``(level, index, hash)``.

        Leaf hashes themselves (level 0) are not repeated in the result.  The leaves are checked
        before any is appended, so a bad batch leaves the range unchanged.
        """
        for value in leaf_hashes:
            if not isinstance(value, bytes) or len(value) != HASH_SIZE:
                raise ValidationError(f"leaf hashes must be {HASH_SIZE} bytes")
        created: list[tuple[int, int, bytes]] = []
        add = created.append
        stack = self._hashes
        pop = stack.pop
        push = stack.append
        sha256 = _sha256
        prefix = _NODE_PREFIX
        size = self._size
        for current in leaf_hashes:
            carry = size
            level = 0
            while carry & 1:  # the new subtree's left neighbour has the same size: merge them
                current = sha256(prefix + pop() + current).digest()
                carry >>= 1
                level += 1
                add((level, carry, current))
            push(current)
            size += 1
        self._size = size
        return created

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


def outside_subtrees(first: int, end: int, size: int) -> list[tuple[int, int]]:
    """The maximal subtrees of the RFC 9162 2.1.1 recursion over ``[0, size)`` that lie outside ``[first, end)``.

    With their hashes and the leaf hashes of ``[first, end)``, the root of the tree of ``size`` can be recomputed:
    a multi-leaf inclusion proof of the whole range (the evidence-pack range proof).
    """
    if not 0 <= first < end <= size:
        raise ValueError("need 0 <= first < end <= size")
    found: list[tuple[int, int]] = []

    def walk(lo: int, hi: int) -> None:
        if hi <= first or lo >= end:
            found.append((lo, hi))
            return
        if first <= lo and hi <= end:
            return
        split = lo + _largest_power_of_two_below(hi - lo)
        walk(lo, split)
        walk(split, hi)

    walk(0, size)
    return found
