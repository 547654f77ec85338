"""The Merkle log: stored-node trees agree with RFC 9162, every proof verifies, and no altered one does."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.audit.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    completed_subtrees,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from interlock.core.errors import AuditError

MAX = 300


def mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 9162 §2.1.1 defines it, recursively over leaf hashes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


LEAVES = [leaf_hash(f"entry {i}".encode()) for i in range(MAX)]
TREE = MemoryTree()
for _leaf in LEAVES:
    TREE.append(_leaf)
ROOTS = [mth(LEAVES[:size]) for size in range(MAX + 1)]


def flip(value: bytes, position: int) -> bytes:
    position %= len(value)
    return value[:position] + bytes([value[position] ^ 0x01]) + value[position + 1 :]


def test_memory_tree_root_is_the_rfc_root_at_every_size() -> None:
    growing = MemoryTree()
    assert growing.root() == EMPTY_ROOT
    for size, leaf in enumerate(LEAVES, start=1):
        assert growing.append(leaf) == size - 1
        assert growing.root() == ROOTS[size]
    assert [TREE.root(size) for size in range(MAX + 1)] == ROOTS  # historical sizes, from the stored nodes
    assert [root(LEAVES[:size]) for size in range(MAX + 1)] == ROOTS


def test_completed_subtrees_are_what_a_store_writes_on_append() -> None:
    stored: dict[tuple[int, int], bytes] = {}
    for index, leaf in enumerate(LEAVES):
        new = completed_subtrees(index, leaf, lambda level, i: stored[(level, i)])
        assert new[0] == (0, index, leaf)
        # One node per trailing one bit of the index, plus the leaf.
        assert len(new) == 1 + (index ^ (index + 1)).bit_length() - 1
        for level, i, digest in new:
            assert (level, i) not in stored
            assert digest == mth(LEAVES[i << level : (i + 1) << level])
            stored[(level, i)] = digest
        assert tree_root(index + 1, lambda level, i: stored[(level, i)]) == ROOTS[index + 1]
    assert len(stored) == 2 * MAX - bin(MAX).count("1")  # every complete node of a tree of MAX leaves, once


def test_proofs_read_only_a_logarithmic_number_of_nodes() -> None:
    reads: list[tuple[int, int]] = []

    def node(level: int, index: int) -> bytes:
        reads.append((level, index))
        return TREE.node(level, index)

    for size in (1, 2, 255, 256, 257, MAX):
        for index in range(size):
            reads.clear()
            inclusion_proof(index, size, node)
            assert len(reads) <= 2 * size.bit_length()
        for old in range(size + 1):
            reads.clear()
            consistency_proof(old, size, node)
            assert len(reads) <= 2 * size.bit_length() + 1


@settings(max_examples=60, deadline=None)
@given(st.integers(1, MAX))
def test_every_inclusion_proof_verifies(size: int) -> None:
    for index in range(size):
        assert verify_inclusion(LEAVES[index], index, size, TREE.inclusion_proof(index, size), ROOTS[size])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, MAX))
def test_every_consistency_proof_verifies(new_size: int) -> None:
    for old_size in range(new_size + 1):
        proof = TREE.consistency_proof(old_size, new_size)
        assert verify_consistency(old_size, new_size, ROOTS[old_size], ROOTS[new_size], proof)


@st.composite
def leaf_in_tree(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX))
    return draw(st.integers(0, size - 1)), size


@settings(max_examples=300, deadline=None)
@given(leaf_in_tree(), st.integers(0, 10_000), st.integers(0, 31))
def test_an_altered_inclusion_proof_fails(where: tuple[int, int], pick: int, position: int) -> None:
    index, size = where
    proof = TREE.inclusion_proof(index, size)
    leaf, root_hash = LEAVES[index], ROOTS[size]
    if proof:
        altered = [*proof]
        altered[pick % len(proof)] = flip(proof[pick % len(proof)], position)
        assert not verify_inclusion(leaf, index, size, altered, root_hash)
        assert not verify_inclusion(leaf, index, size, proof[:-1], root_hash)
    assert not verify_inclusion(flip(leaf, position), index, size, proof, root_hash)
    assert not verify_inclusion(leaf, index, size, proof, flip(root_hash, position))
    assert not verify_inclusion(leaf, index, size, [*proof, LEAVES[pick % MAX]], root_hash)
    wrong_index = (index + 1 + pick % MAX) % (MAX + 1)
    if wrong_index != index:
        assert not verify_inclusion(leaf, wrong_index, size, proof, root_hash)
    # The size is bound to the root by the checkpoint that signs both, so a wrong size comes with its root.
    wrong_size = (size + pick) % MAX + 1
    if wrong_size != size:
        assert not verify_inclusion(leaf, index, wrong_size, proof, ROOTS[wrong_size])


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    new_size = draw(st.integers(2, MAX))
    return draw(st.integers(1, new_size - 1)), new_size


@settings(max_examples=300, deadline=None)
@given(two_sizes(), st.integers(0, 10_000), st.integers(0, 31))
def test_an_altered_consistency_proof_fails(sizes: tuple[int, int], pick: int, position: int) -> None:
    old_size, new_size = sizes
    proof = TREE.consistency_proof(old_size, new_size)
    old_root, new_root = ROOTS[old_size], ROOTS[new_size]
    altered = [*proof]
    altered[pick % len(proof)] = flip(proof[pick % len(proof)], position)
    assert not verify_consistency(old_size, new_size, old_root, new_root, altered)
    assert not verify_consistency(old_size, new_size, flip(old_root, position), new_root, proof)
    assert not verify_consistency(old_size, new_size, old_root, flip(new_root, position), proof)
    assert not verify_consistency(old_size, new_size, old_root, new_root, proof[:-1])
    assert not verify_consistency(old_size, new_size, old_root, new_root, [*proof, proof[0]])
    assert not verify_consistency(old_size, new_size, new_root, old_root, proof)
    for wrong_old, wrong_new in ((old_size + 1 + pick % MAX, new_size), (old_size, new_size + 1 + pick % MAX),
                                 (pick % old_size, new_size)):
        if wrong_old <= wrong_new <= MAX and wrong_old != wrong_new:
            assert not verify_consistency(wrong_old, wrong_new, ROOTS[wrong_old], ROOTS[wrong_new], proof)


def test_trivial_consistency_has_an_empty_proof_and_needs_equal_or_empty_roots() -> None:
    assert TREE.consistency_proof(0, 5) == [] and TREE.consistency_proof(5, 5) == []
    assert verify_consistency(0, 5, EMPTY_ROOT, ROOTS[5], [])
    assert verify_consistency(5, 5, ROOTS[5], ROOTS[5], [])
    assert not verify_consistency(0, 5, ROOTS[1], ROOTS[5], [])
    assert not verify_consistency(5, 5, ROOTS[5], ROOTS[4], [])
    assert not verify_consistency(5, 5, ROOTS[5], ROOTS[5], [ROOTS[5]])
    assert not verify_consistency(0, 5, EMPTY_ROOT, ROOTS[5], [ROOTS[5]])
    assert not verify_consistency(5, 4, ROOTS[5], ROOTS[4], TREE.consistency_proof(4, 5))
    assert not verify_consistency(-1, 5, EMPTY_ROOT, ROOTS[5], [])


@pytest.mark.parametrize("call", [
    lambda: TREE.inclusion_proof(0, 0),
    lambda: TREE.inclusion_proof(5, 5),
    lambda: TREE.inclusion_proof(-1, 5),
    lambda: TREE.inclusion_proof(0, MAX + 1),
    lambda: TREE.consistency_proof(6, 5),
    lambda: TREE.consistency_proof(-1, 5),
    lambda: TREE.consistency_proof(1, MAX + 1),
    lambda: TREE.root(MAX + 1),
    lambda: TREE.root(-1),
    lambda: TREE.node(0, MAX),
    lambda: completed_subtrees(-1, LEAVES[0], TREE.node),
], ids=["empty-tree", "index-at-size", "negative-index", "size-beyond-log", "old-after-new", "negative-old",
        "new-beyond-log", "root-beyond-log", "negative-root", "missing-node", "negative-leaf"])
def test_out_of_range_requests_are_refused(call: Callable[[], object]) -> None:
    with pytest.raises(AuditError) as raised:
        call()
    assert raised.value.code == "audit.out_of_range"


def test_hashes_of_the_wrong_length_never_verify() -> None:
    proof = TREE.inclusion_proof(3, 10)
    assert verify_inclusion(LEAVES[3], 3, 10, proof, ROOTS[10])
    assert not verify_inclusion(LEAVES[3] + b"\x00", 3, 10, proof, ROOTS[10])
    assert not verify_inclusion(LEAVES[3], 3, 10, proof, ROOTS[10][:31])
    assert not verify_inclusion(LEAVES[3], 3, 10, [proof[0] + b"\x00", *proof[1:]], ROOTS[10])
    assert not verify_consistency(3, 10, ROOTS[3][:31], ROOTS[10], TREE.consistency_proof(3, 10))
