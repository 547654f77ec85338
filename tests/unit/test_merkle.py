"""The Merkle log: stored-node trees agree with RFC 9162, every proof verifies, and no altered one does."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.audit.merkle import (
    EMPTY_ROOT,
    BatchReader,
    MemoryTree,
    Node,
    completed_by,
    completed_subtrees,
    consistency_nodes,
    consistency_proof,
    inclusion_nodes,
    inclusion_proof,
    leaf_hash,
    node_hash,
    proof_hashes,
    range_nodes,
    read_nodes,
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
    lambda: completed_by(-1, LEAVES[:2], TREE.node),
    lambda: inclusion_nodes(5, 5),
    lambda: consistency_nodes(6, 5),
], ids=["empty-tree", "index-at-size", "negative-index", "size-beyond-log", "old-after-new", "negative-old",
        "new-beyond-log", "root-beyond-log", "negative-root", "missing-node", "negative-leaf", "negative-run",
        "plan-index-at-size", "plan-old-after-new"])
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


# --- proof plans and batched reads --------------------------------------------------------------


def _hashes(nodes: Sequence[Node]) -> dict[Node, bytes]:
    return {n: TREE.node(*n) for n in nodes}


def _flat(plan: list[tuple[Node, ...]]) -> list[Node]:
    return [n for part in plan for n in part]


def test_an_inclusion_plan_names_exactly_the_nodes_the_proof_is_made_of() -> None:
    for size in (1, 2, 3, 7, 8, 9, 255, 256, 257, MAX):
        for index in range(size):
            plan = inclusion_nodes(index, size)
            assert proof_hashes(plan, _hashes(_flat(plan))) == TREE.inclusion_proof(index, size)
            # One node per hash but the right edge's range (one node per one bit of its size), all complete.
            assert sum(len(part) > 1 for part in plan) <= 1
            assert len(_flat(plan)) <= 2 * size.bit_length()
            assert all((i + 1) << level <= size for level, i in _flat(plan))


def test_a_consistency_plan_names_exactly_the_nodes_the_proof_is_made_of() -> None:
    for size in (1, 2, 3, 7, 8, 9, 255, 256, 257, MAX):
        for old in range(size + 1):
            plan = consistency_nodes(old, size)
            assert proof_hashes(plan, _hashes(_flat(plan))) == TREE.consistency_proof(old, size)
            assert len(_flat(plan)) <= 2 * size.bit_length() + 1
    assert consistency_nodes(0, 5) == consistency_nodes(5, 5) == []


def test_range_nodes_are_the_perfect_subtrees_of_a_range_largest_first() -> None:
    assert range_nodes(0, 0) == ()
    assert range_nodes(0, 13) == ((3, 0), (2, 2), (0, 12))
    assert range_nodes(8, 11) == ((1, 4), (0, 10))
    for size in range(MAX + 1):
        nodes = range_nodes(0, size)
        assert sum(1 << level for level, _ in nodes) == size
        assert proof_hashes([nodes], _hashes(list(nodes))) == [ROOTS[size]]


def test_a_batch_reader_reads_a_whole_proof_or_root_in_one_call() -> None:
    calls: list[list[Node]] = []

    def many(nodes: Sequence[Node]) -> dict[Node, bytes]:
        calls.append(list(nodes))
        return _hashes(nodes)

    singles: list[Node] = []

    def one(level: int, index: int) -> bytes:
        singles.append((level, index))
        return TREE.node(level, index)

    reader = BatchReader(one, many)
    for size in (1, 9, 256, MAX):
        for index in (0, size // 2, size - 1):
            calls.clear()
            assert inclusion_proof(index, size, reader) == TREE.inclusion_proof(index, size)
            assert len(calls) == 1 and len(calls[0]) == len(set(calls[0]))
        for old in (1, size // 2 + 1, size - 1):
            calls.clear()
            assert consistency_proof(old, size, reader) == TREE.consistency_proof(old, size)
            assert len(calls) <= 1
        calls.clear()
        assert tree_root(size, reader) == ROOTS[size] and len(calls) == 1
    assert singles == []
    assert reader(2, 1) == TREE.node(2, 1) and singles == [(2, 1)]  # called as a NodeReader, it reads one node


def test_read_nodes_reads_each_node_once_and_keeps_their_order() -> None:
    reads: list[Node] = []

    def node(level: int, index: int) -> bytes:
        reads.append((level, index))
        return TREE.node(level, index)

    got = read_nodes([(1, 3), (0, 4), (1, 3), (2, 0)], node)
    assert list(got) == [(1, 3), (0, 4), (2, 0)] and reads == [(1, 3), (0, 4), (2, 0)]
    assert got[(2, 0)] == TREE.node(2, 0)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, MAX), st.integers(0, MAX))
def test_completed_by_completes_the_same_nodes_as_one_leaf_at_a_time(start: int, count: int) -> None:
    count = min(count, MAX - start)
    stored: dict[Node, bytes] = {}
    for index in range(start):
        for level, i, digest in completed_subtrees(index, LEAVES[index], lambda level, i: stored[(level, i)]):
            stored[(level, i)] = digest
    one_by_one = dict(stored)
    for index in range(start, start + count):
        for level, i, digest in completed_subtrees(index, LEAVES[index], lambda level, i: one_by_one[(level, i)]):
            one_by_one[(level, i)] = digest
    reads: list[Node] = []

    def node(level: int, index: int) -> bytes:
        reads.append((level, index))
        return stored[(level, index)]

    completed = completed_by(start, LEAVES[start : start + count], node)
    assert {(level, i): digest for level, i, digest in completed} == {
        key: value for key, value in one_by_one.items() if key not in stored}
    assert completed == sorted(completed, key=lambda c: (c[0], c[1]))  # level by level, lowest index first
    assert len({level for level, _ in reads}) == len(reads)  # at most one stored read per level
