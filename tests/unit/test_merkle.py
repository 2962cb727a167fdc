"""RFC 9162 Merkle tree: CT reference vectors, a literal recursive reference, tampering, appends."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import IntegrityError, ValidationError, VerificationError
from ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    NodeKey,
    consistency_proof,
    consistency_ranges,
    fold_subtrees,
    inclusion_proof,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    proof_nodes,
    range_hash_from_nodes,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    subtree_nodes,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).resolve().parent.parent / "vectors" / "rfc6962_tree.json").read_text())


# --- a reference written literally from RFC 9162 2.1 (recursive, slicing, slow) --------------------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n (RFC 9162 2.1.1), found by counting up."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(entries: list[bytes]) -> bytes:
    """MTH(D[n]) for raw leaf data D (RFC 9162 2.1.1)."""
    n = len(entries)
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return _sha256(b"\x00" + entries[0])
    k = _k(n)
    return _sha256(b"\x01" + ref_mth(entries[:k]) + ref_mth(entries[k:]))


def ref_path(m: int, entries: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) (RFC 9162 2.1.3.1)."""
    n = len(entries)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, entries[:k]), ref_mth(entries[k:])]
    return [*ref_path(m - k, entries[k:]), ref_mth(entries[:k])]


def ref_subproof(m: int, entries: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) (RFC 9162 2.1.4.1)."""
    n = len(entries)
    if m == n:
        return [] if b else [ref_mth(entries)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, entries[:k], b), ref_mth(entries[k:])]
    return [*ref_subproof(m - k, entries[k:], False), ref_mth(entries[:k])]


def ref_proof(m: int, entries: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) (RFC 9162 2.1.4.1)."""
    return ref_subproof(m, entries, True)


# --- a tiny in-memory "store" built with CompactRange ------------------------------------------------


class Tree:
    """Leaves, their hashes and every stored node, as a store would keep them."""

    def __init__(self, entries: list[bytes]) -> None:
        self.entries = entries
        self.leaves = [leaf_hash(entry) for entry in entries]
        self.nodes: dict[NodeKey, bytes] = {(0, index): value for index, value in enumerate(self.leaves)}
        self.compact = CompactRange()
        for level, index, value in self.compact.append(self.leaves):
            self.nodes[(level, index)] = value
        self.roots = [root_from_leaf_hashes(self.leaves[:size]) for size in range(len(entries) + 1)]

    def range_hash(self, start: int, end: int) -> bytes:
        return range_hash_from_nodes(start, end, self.nodes)

    @property
    def size(self) -> int:
        return len(self.entries)


def distinct_entries(size: int) -> list[bytes]:
    return [b"entry-" + index.to_bytes(4, "big") for index in range(size)]


_TREES: dict[int, Tree] = {}


def tree_of(size: int) -> Tree:
    if size not in _TREES:
        _TREES[size] = Tree(distinct_entries(size))
    return _TREES[size]


def unhex(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(value) for value in values]


# --- (a) RFC 6962 / CT reference vectors ------------------------------------------------------------


VECTOR_TREE = Tree([bytes.fromhex(leaf) for leaf in VECTORS["leaves"]])


def test_empty_root_is_hash_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == VECTORS["roots"][0]
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    assert CompactRange().root() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(9))
def test_vector_roots(size: int) -> None:
    expected = bytes.fromhex(VECTORS["roots"][size])
    assert root_from_leaf_hashes(VECTOR_TREE.leaves[:size]) == expected
    assert ref_mth(VECTOR_TREE.entries[:size]) == expected
    compact = CompactRange()
    compact.append(VECTOR_TREE.leaves[:size])
    assert compact.root() == expected


def test_vector_root_of_eight() -> None:
    assert VECTOR_TREE.roots[8].hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"{c['index']}-of-{c['size']}")
def test_vector_inclusion(case: dict[str, object]) -> None:
    index, size = int(case["index"]), int(case["size"])  # type: ignore[call-overload]
    expected = unhex(case["proof"])  # type: ignore[arg-type]
    root = bytes.fromhex(VECTORS["roots"][size])
    leaf = VECTOR_TREE.leaves[index]
    assert inclusion_proof(index, size, VECTOR_TREE.range_hash) == expected
    assert ref_path(index, VECTOR_TREE.entries[:size]) == expected
    assert root_from_inclusion_proof(leaf, index, size, expected) == root
    verify_inclusion(leaf, index, size, expected, root)
    for bad_index, bad_size, bad_leaf, bad_proof, bad_root in _corrupt_inclusion(index, size, leaf, expected, root):
        with pytest.raises(VerificationError):
            verify_inclusion(bad_leaf, bad_index, bad_size, bad_proof, bad_root)


def _corrupt_inclusion(
    index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes
) -> list[tuple[int, int, bytes, list[bytes], bytes]]:
    """The corruptions the CT test-suite probes: index, size, leaf, root and proof changes."""
    some_hash = hashlib.sha256(b"some other hash").digest()
    probes = [
        (index - 1, size, leaf, proof, root),
        (index + 1, size, leaf, proof, root),
        (index ^ 2, size, leaf, proof, root),
        (index, size * 2, leaf, proof, root),
        (index, size // 2, leaf, proof, root),
        (index, size, some_hash, proof, root),
        (index, size, leaf, proof, EMPTY_ROOT),
        (index, size, leaf, proof, some_hash),
        (index, size, leaf, [*proof, b""], root),
        (index, size, leaf, [*proof, root], root),
        (index, size, leaf, [b"", *proof], root),
        (index, size, leaf, [root, *proof], root),
    ]
    for position in range(len(proof)):
        flipped = list(proof)
        flipped[position] = bytes([proof[position][0] ^ 8]) + proof[position][1:]
        probes.append((index, size, leaf, flipped, root))
    if proof:
        probes.append((index, size, leaf, proof[:-1], root))
    if len(proof) > 1:
        probes.append((index, size, leaf, [proof[0], some_hash, *proof[1:]], root))
    return probes


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: f"{c['old_size']}-to-{c['new_size']}")
def test_vector_consistency(case: dict[str, object]) -> None:
    old, new = int(case["old_size"]), int(case["new_size"])  # type: ignore[call-overload]
    expected = unhex(case["proof"])  # type: ignore[arg-type]
    old_root, new_root = bytes.fromhex(VECTORS["roots"][old]), bytes.fromhex(VECTORS["roots"][new])
    assert consistency_proof(old, new, VECTOR_TREE.range_hash) == expected
    assert ref_proof(old, VECTOR_TREE.entries[:new]) == expected
    verify_consistency(old, new, old_root, new_root, expected)
    if not expected:
        return
    for bad_old, bad_new, bad_old_root, bad_new_root, bad_proof in _corrupt_consistency(
        old, new, old_root, new_root, expected
    ):
        with pytest.raises(VerificationError):
            verify_consistency(bad_old, bad_new, bad_old_root, bad_new_root, bad_proof)


def _corrupt_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> list[tuple[int, int, bytes, bytes, list[bytes]]]:
    probes = [
        (old - 1, new, old_root, new_root, proof),
        (old + 1, new, old_root, new_root, proof),
        (old ^ 2, new, old_root, new_root, proof),
        (old, new * 2, old_root, new_root, proof),
        (old, new // 2, old_root, new_root, proof),
        (old, new, b"WrongRoot", new_root, proof),
        (old, new, old_root, b"WrongRoot", proof),
        (old, new, new_root, old_root, proof),
        (old, new, old_root, new_root, []),
        (old, new, old_root, new_root, [*proof, b""]),
        (old, new, old_root, new_root, [*proof, old_root]),
        (old, new, old_root, new_root, [*proof, new_root]),
        (old, new, old_root, new_root, [b"", *proof]),
        (old, new, old_root, new_root, [old_root, *proof]),
        (old, new, old_root, new_root, [new_root, *proof]),
        (old, new, old_root, new_root, [proof[0], *proof]),
        (old, new, old_root, new_root, proof[:-1]),
    ]
    for position in range(len(proof)):
        flipped = list(proof)
        flipped[position] = bytes([proof[position][0] ^ 16]) + proof[position][1:]
        probes.append((old, new, old_root, new_root, flipped))
    return probes


# --- ranges and stored nodes ------------------------------------------------------------------------


def test_subtree_nodes_examples() -> None:
    assert subtree_nodes(0, 1) == [(0, 0)]
    assert subtree_nodes(0, 8) == [(3, 0)]
    assert subtree_nodes(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert subtree_nodes(8, 13) == [(2, 2), (0, 12)]
    assert subtree_nodes(6, 8) == [(1, 3)]
    assert subtree_nodes(4, 7) == [(1, 2), (0, 6)]


@pytest.mark.parametrize(("start", "end"), [(1, 3), (2, 6), (3, 3), (5, 4), (-1, 1), (4, 12)])
def test_subtree_nodes_rejects_ranges_proofs_never_use(start: int, end: int) -> None:
    with pytest.raises(ValidationError):
        subtree_nodes(start, end)


def test_ranges_examples() -> None:
    assert inclusion_ranges(0, 1) == []
    assert inclusion_ranges(0, 8) == [(1, 2), (2, 4), (4, 8)]
    assert inclusion_ranges(5, 8) == [(4, 5), (6, 8), (0, 4)]
    assert inclusion_ranges(6, 7) == [(4, 6), (0, 4)]
    assert consistency_ranges(6, 8) == [(4, 6), (6, 8), (0, 4)]
    assert consistency_ranges(4, 8) == [(4, 8)]
    assert consistency_ranges(3, 7) == [(2, 3), (3, 4), (0, 2), (4, 7)]
    assert consistency_ranges(5, 5) == []


@pytest.mark.parametrize(("index", "size"), [(0, 0), (8, 8), (9, 8), (-1, 3)])
def test_inclusion_ranges_rejects_bad_arguments(index: int, size: int) -> None:
    with pytest.raises(ValidationError):
        inclusion_ranges(index, size)


def test_consistency_ranges_rejects_bad_arguments() -> None:
    with pytest.raises(ValidationError, match="empty tree"):
        consistency_ranges(0, 5)
    with pytest.raises(ValidationError):
        consistency_ranges(0, 0)
    with pytest.raises(ValidationError):
        consistency_ranges(6, 5)


def test_range_hash_from_nodes_reports_missing_node() -> None:
    tree = tree_of(7)
    nodes = dict(tree.nodes)
    del nodes[(1, 2)]
    with pytest.raises(IntegrityError, match="level 1, index 2"):
        range_hash_from_nodes(0, 7, nodes)


def test_fold_subtrees() -> None:
    a, b, c = (hashlib.sha256(bytes([i])).digest() for i in range(3))
    assert fold_subtrees([a]) == a
    assert fold_subtrees([a, b, c]) == node_hash(a, node_hash(b, c))
    with pytest.raises(ValidationError):
        fold_subtrees([])


# --- (b) properties ---------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=300))
def test_every_proof_verifies(size: int) -> None:
    tree = tree_of(size)
    root = tree.roots[size]
    assert tree.compact.root() == root
    for index in range(size):
        proof = inclusion_proof(index, size, tree.range_hash)
        verify_inclusion(tree.leaves[index], index, size, proof, root)
    for old in range(1, size + 1):
        proof = consistency_proof(old, size, tree.range_hash)
        verify_consistency(old, size, tree.roots[old], root, proof)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=48))
def test_module_equals_literal_reference_for_every_index(size: int) -> None:
    tree = tree_of(size)
    assert root_from_leaf_hashes(tree.leaves) == ref_mth(tree.entries)
    for index in range(size):
        assert inclusion_proof(index, size, tree.range_hash) == ref_path(index, tree.entries)
    for old in range(1, size + 1):
        assert consistency_proof(old, size, tree.range_hash) == ref_proof(old, tree.entries)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_module_equals_literal_reference_sampled(data: st.DataObject) -> None:
    size = data.draw(st.integers(min_value=1, max_value=300), label="size")
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    old = data.draw(st.integers(min_value=1, max_value=size), label="old")
    tree = tree_of(size)
    assert tree.roots[size] == ref_mth(tree.entries)
    assert inclusion_proof(index, size, tree.range_hash) == ref_path(index, tree.entries)
    assert consistency_proof(old, size, tree.range_hash) == ref_proof(old, tree.entries)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_tampered_inclusion_proofs_fail(data: st.DataObject) -> None:
    size = data.draw(st.integers(min_value=1, max_value=300), label="size")
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    tree = tree_of(size)
    leaf, root = tree.leaves[index], tree.roots[size]
    proof = inclusion_proof(index, size, tree.range_hash)
    for position in range(len(proof)):
        byte = data.draw(st.integers(min_value=0, max_value=31), label="byte")
        mask = data.draw(st.integers(min_value=1, max_value=255), label="mask")
        flipped = list(proof)
        flipped[position] = _flip(proof[position], byte, mask)
        with pytest.raises(VerificationError):
            verify_inclusion(leaf, index, size, flipped, root)
    other_index = data.draw(st.integers(min_value=0, max_value=size), label="other_index")
    if other_index != index:
        with pytest.raises(VerificationError):
            verify_inclusion(leaf, other_index, size, proof, root)
    other_size = data.draw(st.integers(min_value=0, max_value=300), label="other_size")
    if other_size != size:
        other_root = tree_of(other_size).roots[other_size] if other_size else EMPTY_ROOT
        with pytest.raises(VerificationError):
            verify_inclusion(leaf, index, other_size, proof, other_root)
    with pytest.raises(VerificationError):
        verify_inclusion(leaf, index, size, [*proof, root], root)
    if proof:
        with pytest.raises(VerificationError):
            verify_inclusion(leaf, index, size, proof[:-1], root)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_tampered_consistency_proofs_fail(data: st.DataObject) -> None:
    size = data.draw(st.integers(min_value=2, max_value=300), label="size")
    old = data.draw(st.integers(min_value=1, max_value=size - 1), label="old")
    tree = tree_of(size)
    old_root, new_root = tree.roots[old], tree.roots[size]
    proof = consistency_proof(old, size, tree.range_hash)
    for position in range(len(proof)):
        byte = data.draw(st.integers(min_value=0, max_value=31), label="byte")
        mask = data.draw(st.integers(min_value=1, max_value=255), label="mask")
        flipped = list(proof)
        flipped[position] = _flip(proof[position], byte, mask)
        with pytest.raises(VerificationError):
            verify_consistency(old, size, old_root, new_root, flipped)
    other_old = data.draw(st.integers(min_value=0, max_value=size), label="other_old")
    if other_old != old:
        with pytest.raises(VerificationError):
            verify_consistency(other_old, size, tree.roots[other_old], new_root, proof)
    other_new = data.draw(st.integers(min_value=1, max_value=300), label="other_new")
    if other_new != size:
        with pytest.raises(VerificationError):
            verify_consistency(old, other_new, old_root, tree_of(other_new).roots[other_new], proof)
    with pytest.raises(VerificationError):
        verify_consistency(old, size, new_root, old_root, proof)
    with pytest.raises(VerificationError):
        verify_consistency(old, size, old_root, new_root, proof[:-1])


def _flip(value: bytes, position: int, mask: int) -> bytes:
    return value[:position] + bytes([value[position] ^ mask]) + value[position + 1 :]


ProofBuilder = Callable[[Callable[[int, int], bytes]], list[bytes]]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_one_query_serves_a_proof(data: st.DataObject) -> None:
    size = data.draw(st.integers(min_value=1, max_value=300), label="size")
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    old = data.draw(st.integers(min_value=1, max_value=size), label="old")
    tree = tree_of(size)
    cases: list[tuple[list[tuple[int, int]], ProofBuilder]] = [
        (inclusion_ranges(index, size), partial(inclusion_proof, index, size)),
        (consistency_ranges(old, size), partial(consistency_proof, old, size)),
    ]
    for ranges, build in cases:
        needed = proof_nodes(ranges)
        fetched = {key: tree.nodes[key] for key in needed}  # the single query's result
        assert len(needed) <= size.bit_length() ** 2
        from_fetched = partial(_range_hash_from, fetched)
        assert build(from_fetched) == build(tree.range_hash)


def _range_hash_from(nodes: dict[NodeKey, bytes], start: int, end: int) -> bytes:
    return range_hash_from_nodes(start, end, nodes)


# --- verification edge cases ------------------------------------------------------------------------


def test_inclusion_verification_rejects_malformed_input() -> None:
    tree = tree_of(5)
    proof = inclusion_proof(2, 5, tree.range_hash)
    root = tree.roots[5]
    with pytest.raises(VerificationError, match="not in a tree"):
        verify_inclusion(tree.leaves[2], 5, 5, proof, root)
    with pytest.raises(VerificationError):
        verify_inclusion(tree.leaves[2], 0, 0, [], EMPTY_ROOT)
    with pytest.raises(VerificationError, match="malformed"):
        verify_inclusion(tree.leaves[2], 2, 5, [proof[0][:31], *proof[1:]], root)
    with pytest.raises(VerificationError, match="malformed"):
        verify_inclusion(tree.leaves[2][:31], 2, 5, proof, root)
    with pytest.raises(VerificationError, match="malformed"):
        verify_inclusion(tree.leaves[2], 2, 5, proof, root + b"\x00")
    with pytest.raises(VerificationError, match="too long"):
        root_from_inclusion_proof(tree.leaves[2], 2, 5, [*proof, root])
    with pytest.raises(VerificationError, match="too short"):
        root_from_inclusion_proof(tree.leaves[2], 2, 5, proof[:-1])


def test_single_leaf_tree() -> None:
    leaf = leaf_hash(b"data")
    verify_inclusion(leaf, 0, 1, [], leaf)
    with pytest.raises(VerificationError):
        verify_inclusion(leaf, 0, 1, [], EMPTY_ROOT)


def test_consistency_verification_edge_cases() -> None:
    tree = tree_of(6)
    root3, root6 = tree.roots[3], tree.roots[6]
    verify_consistency(3, 3, root3, root3, [])
    with pytest.raises(VerificationError, match="different roots"):
        verify_consistency(3, 3, root3, root6, [])
    with pytest.raises(VerificationError, match="must be empty"):
        verify_consistency(3, 3, root3, root3, [root3])
    with pytest.raises(VerificationError, match="empty tree"):
        verify_consistency(0, 6, EMPTY_ROOT, root6, [])
    with pytest.raises(VerificationError, match="larger"):
        verify_consistency(6, 3, root6, root3, [])
    with pytest.raises(VerificationError, match="empty"):
        verify_consistency(3, 6, root3, root6, [])
    with pytest.raises(VerificationError, match="malformed"):
        verify_consistency(3, 6, root3[:5], root6, consistency_proof(3, 6, tree.range_hash))


# --- incremental appends ----------------------------------------------------------------------------


def _all_complete_subtrees(size: int) -> set[NodeKey]:
    return {(level, index) for level in range(1, size.bit_length()) for index in range(size >> level)}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), max_size=12))
def test_compact_range_batches(batches: list[int]) -> None:
    size = sum(batches)
    tree = tree_of(size)
    compact = CompactRange()
    created: dict[NodeKey, bytes] = {}
    position = 0
    for batch in batches:
        for level, index, value in compact.append(tree.leaves[position : position + batch]):
            assert (level, index) not in created
            created[(level, index)] = value
        position += batch
        assert compact.size == position
        assert compact.root() == tree.roots[position]
        assert len(compact.hashes) == position.bit_count()
    assert set(created) == _all_complete_subtrees(size)
    for (level, index), value in created.items():
        assert value == ref_mth(tree.entries[index << level : (index + 1) << level])


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=60))
def test_compact_range_resumes_from_stored_nodes(first: int, more: int) -> None:
    tree = tree_of(first + more)
    resumed = CompactRange.from_nodes(first, tree.nodes)
    assert resumed.size == first
    assert resumed.root() == tree.roots[first]
    edge_keys = [(level, index) for level, index, _ in resumed.nodes()]
    assert edge_keys == (subtree_nodes(0, first) if first else [])
    copy = resumed.copy()
    resumed.append(tree.leaves[first:])
    assert resumed.root() == tree.roots[first + more]
    assert copy.size == first  # the copy is independent
    assert copy.root() == tree.roots[first]


def test_compact_range_validation() -> None:
    a_hash = leaf_hash(b"x")
    with pytest.raises(ValidationError):
        CompactRange(3, [a_hash])
    with pytest.raises(ValidationError):
        CompactRange(-1, [])
    with pytest.raises(ValidationError):
        CompactRange(1, [a_hash[:31]])
    with pytest.raises(IntegrityError):
        CompactRange.from_nodes(3, {(1, 0): a_hash})
    compact = CompactRange(1, [a_hash])
    with pytest.raises(ValidationError):
        compact.append([a_hash, b"short"])
    assert compact.size == 1  # a bad batch changes nothing
    assert compact.root() == a_hash
    assert "size=1" in repr(compact)


def test_million_leaves_fast_and_without_recursion() -> None:
    leaves = [hashlib.sha256(index.to_bytes(8, "big")).digest() for index in range(1_000_000)]
    started = time.perf_counter()
    compact = CompactRange()
    created = compact.append(leaves)
    elapsed = time.perf_counter() - started
    assert len(created) == 1_000_000 - (1_000_000).bit_count()
    assert compact.root() == root_from_leaf_hashes(leaves)
    assert elapsed < 10, f"appending 10^6 leaves took {elapsed:.1f}s"
