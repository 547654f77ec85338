"""RFC 6962 Merkle vectors (transparency-dev/merkle): tree hashes, stored nodes, proofs and the nodes they read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from interlock.audit.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from interlock.core.errors import AuditError

VECTORS = Path(__file__).parent / "merkle"
TREE = json.loads((VECTORS / "tree.json").read_text())
PROOFS = json.loads((VECTORS / "proofs.json").read_text())
NODES = json.loads((VECTORS / "proof_nodes.json").read_text())

LEAVES = [bytes.fromhex(leaf) for leaf in TREE["leaf_inputs_hex"]]
ROOTS = [bytes.fromhex(r) for r in TREE["root_hashes_by_size"]]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")  # the source's


def hashes(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def golden_tree() -> MemoryTree:
    tree = MemoryTree()
    for leaf in LEAVES:
        tree.append(leaf_hash(leaf))
    return tree


def test_the_vectors_are_all_there() -> None:
    assert len(LEAVES) == 8 and len(ROOTS) == 9
    assert [len(level) for level in TREE["node_hashes_by_level"]] == [8, 4, 2, 1]
    assert len(PROOFS["inclusion"]) == 6 and len(PROOFS["consistency"]) == 5
    assert len(NODES["inclusion"]) == 23 and len(NODES["consistency"]) == 27


@pytest.mark.parametrize("size", range(9))
def test_root_of_each_size(size: int) -> None:
    leaf_hashes = [leaf_hash(leaf) for leaf in LEAVES[:size]]
    assert root(leaf_hashes) == ROOTS[size]
    assert golden_tree().root(size) == ROOTS[size]


def test_empty_tree_root_is_the_hash_of_nothing() -> None:
    assert EMPTY_ROOT == ROOTS[0] == root([]) == MemoryTree().root()


def test_stored_nodes_are_the_complete_subtree_hashes() -> None:
    tree = golden_tree()
    for level, expected in enumerate(TREE["node_hashes_by_level"]):
        assert [tree.node(level, i).hex() for i in range(len(expected))] == expected
    with pytest.raises(AuditError):
        tree.node(3, 1)


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    level0, level1 = (hashes(level) for level in TREE["node_hashes_by_level"][:2])
    assert [leaf_hash(leaf) for leaf in LEAVES] == level0
    assert [node_hash(level0[2 * i], level0[2 * i + 1]) for i in range(4)] == level1


# --- proof/verify_test.go: known proofs, and the source's corruptions of each ----------------------


def corrupt_inclusion(index: int, size: int, proof: list[bytes], root_hash: bytes,
                      leaf: bytes) -> list[tuple[str, int, int, list[bytes], bytes, bytes]]:
    """The probes of corruptInclusionProof in the source, each of which must fail."""
    probes = [
        ("index - 1", index - 1, size, proof, root_hash, leaf),
        ("index + 1", index + 1, size, proof, root_hash, leaf),
        ("index ^ 2", index ^ 2, size, proof, root_hash, leaf),
        ("size * 2", index, size * 2, proof, root_hash, leaf),
        ("size / 2", index, size // 2, proof, root_hash, leaf),
        ("wrong leaf", index, size, proof, root_hash, b"WrongLeaf"),
        ("empty root", index, size, proof, EMPTY_ROOT, leaf),
        ("random root", index, size, proof, SOME_HASH, leaf),
        ("trailing garbage", index, size, [*proof, b""], root_hash, leaf),
        ("trailing root", index, size, [*proof, root_hash], root_hash, leaf),
        ("preceding garbage", index, size, [b"", *proof], root_hash, leaf),
        ("preceding root", index, size, [root_hash, *proof], root_hash, leaf),
    ]
    for i in range(len(proof)):
        flipped = [*proof]
        flipped[i] = bytes([proof[i][0] ^ 8]) + proof[i][1:]
        probes.append((f"modified proof[{i}] bit 3", index, size, flipped, root_hash, leaf))
    if proof:
        probes.append(("removed component", index, size, proof[:-1], root_hash, leaf))
    if len(proof) > 1:
        probes.append(("inserted component", index, size, [proof[0], SOME_HASH, *proof[1:]], root_hash, leaf))
    return probes


@pytest.mark.parametrize("case", PROOFS["inclusion"], ids=lambda c: f"{c['leaf']}-of-{c['size']}")
def test_inclusion_vector(case: dict[str, Any]) -> None:
    index, size, proof = case["leaf"] - 1, case["size"], hashes(case["proof"])
    tree = golden_tree()
    if index < 0:  # the source's invalid path: nothing to prove, nothing verifies
        with pytest.raises(AuditError):
            tree.inclusion_proof(index, size)
        assert not verify_inclusion(SOME_HASH, index, size, proof, EMPTY_ROOT)
        return
    leaf = leaf_hash(LEAVES[index])
    assert tree.inclusion_proof(index, size) == proof
    assert verify_inclusion(leaf, index, size, proof, ROOTS[size])
    accepted = [probe[0] for probe in corrupt_inclusion(index, size, proof, ROOTS[size], leaf)
                if verify_inclusion(probe[5], probe[1], probe[2], probe[3], probe[4])]
    assert accepted == []


def corrupt_consistency(size1: int, size2: int, root1: bytes, root2: bytes,
                        proof: list[bytes]) -> list[tuple[str, int, int, bytes, bytes, list[bytes]]]:
    """The probes of corruptConsistencyProof in the source, each of which must fail."""
    probes = [
        ("size1 - 1", size1 - 1, size2, root1, root2, proof),
        ("size1 + 1", size1 + 1, size2, root1, root2, proof),
        ("size1 ^ 2", size1 ^ 2, size2, root1, root2, proof),
        ("size2 * 2", size1, size2 * 2, root1, root2, proof),
        ("size2 / 2", size1, size2 // 2, root1, root2, proof),
        ("wrong root1", size1, size2, b"WrongRoot", root2, proof),
        ("wrong root2", size1, size2, root1, b"WrongRoot", proof),
        ("swapped roots", size1, size2, root2, root1, proof),
        ("empty proof", size1, size2, root1, root2, []),
        ("trailing garbage", size1, size2, root1, root2, [*proof, b""]),
        ("trailing root1", size1, size2, root1, root2, [*proof, root1]),
        ("trailing root2", size1, size2, root1, root2, [*proof, root2]),
        ("preceding garbage", size1, size2, root1, root2, [b"", *proof]),
        ("preceding root1", size1, size2, root1, root2, [root1, *proof]),
        ("preceding root2", size1, size2, root1, root2, [root2, *proof]),
        ("preceding proof[0]", size1, size2, root1, root2, [proof[0], *proof]),
        ("truncated proof", size1, size2, root1, root2, proof[:-1]),
    ]
    for i in range(len(proof)):
        flipped = [*proof]
        flipped[i] = bytes([proof[i][0] ^ 16]) + proof[i][1:]
        probes.append((f"modified proof[{i}] bit 4", size1, size2, root1, root2, flipped))
    return probes


@pytest.mark.parametrize("case", PROOFS["consistency"], ids=lambda c: f"{c['size1']}-to-{c['size2']}")
def test_consistency_vector(case: dict[str, Any]) -> None:
    size1, size2, proof = case["size1"], case["size2"], hashes(case["proof"])
    assert golden_tree().consistency_proof(size1, size2) == proof
    assert verify_consistency(size1, size2, ROOTS[size1], ROOTS[size2], proof)
    if proof:  # as in the source, only non-trivial proofs are corrupted
        accepted = [probe[0] for probe in corrupt_consistency(size1, size2, ROOTS[size1], ROOTS[size2], proof)
                    if verify_consistency(probe[1], probe[2], probe[3], probe[4], probe[5])]
        assert accepted == []


# --- proof/proof_test.go: which stored nodes each proof reads ----------------------------------------


def proof_from_nodes(tree: MemoryTree, case: dict[str, Any]) -> list[bytes]:
    """The source's Nodes.Rehash: node hashes in order, the `rehash` slice folded into one element."""
    node_hashes = [tree.node(level, index) for level, index in case["nodes"]]
    begin, end = case.get("rehash", [0, 0])
    if end - begin < 2:
        return node_hashes
    folded = node_hashes[begin]
    for h in node_hashes[begin + 1 : end]:
        folded = node_hash(h, folded)
    return [*node_hashes[:begin], folded, *node_hashes[end:]]


@pytest.fixture(scope="module")
def tree_128() -> MemoryTree:
    tree = MemoryTree()
    for i in range(128):  # the source's genEntries: the decimal string of each index
        tree.append(leaf_hash(str(i).encode()))
    return tree


@pytest.mark.parametrize("case", NODES["inclusion"], ids=lambda c: f"{c['index']}-of-{c['size']}")
def test_inclusion_proof_reads_the_expected_nodes(case: dict[str, Any], tree_128: MemoryTree) -> None:
    if case.get("error"):
        with pytest.raises(AuditError):
            inclusion_proof(case["index"], case["size"], tree_128.node)
        return
    proof = inclusion_proof(case["index"], case["size"], tree_128.node)
    assert proof == proof_from_nodes(tree_128, case)
    assert verify_inclusion(tree_128.node(0, case["index"]), case["index"], case["size"], proof,
                            tree_128.root(case["size"]))


@pytest.mark.parametrize("case", NODES["consistency"], ids=lambda c: f"{c['size1']}-to-{c['size2']}")
def test_consistency_proof_reads_the_expected_nodes(case: dict[str, Any], tree_128: MemoryTree) -> None:
    size1, size2 = case["size1"], case["size2"]
    if case.get("error"):
        with pytest.raises(AuditError):
            consistency_proof(size1, size2, tree_128.node)
        return
    proof = consistency_proof(size1, size2, tree_128.node)
    assert proof == proof_from_nodes(tree_128, case)
    assert verify_consistency(size1, size2, tree_128.root(size1), tree_128.root(size2), proof)
