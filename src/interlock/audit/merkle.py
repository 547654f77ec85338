"""RFC 9162 §2.1 Merkle tree hashing, inclusion and consistency proofs, over stored perfect-subtree hashes.

A *node* (level, index) is the perfect subtree of 2**level leaves starting at leaf index << level; level 0
holds the leaf hashes. Once complete, a node's hash never changes, so a store keeps one row per node and
writes the new ones that `completed_subtrees` names on each append (`completed_by`: for a run of appended
leaves at once). Every tree head and proof below reads O(log n) nodes through a `NodeReader` and never
rebuilds the tree.

Each proof is planned first — `inclusion_nodes` and `consistency_nodes` list the nodes it needs, without
hashing — then those nodes are read at once (`read_nodes`: one query when the reader is a `BatchReader`)
and combined (`proof_hashes`). The functions taking a `NodeReader` do exactly that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from interlock.core.errors import AuditError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeReader = Callable[[int, int], bytes]
"""`node(level, index)`: the stored hash of a complete perfect subtree."""

Node = tuple[int, int]
"""The coordinates (level, index) of a node."""

ProofPlan = list[tuple[Node, ...]]
"""The nodes each hash of a proof is made of, in proof order: one node, or the nodes of a range, left to right."""


@dataclass(frozen=True)
class BatchReader:
    """A `NodeReader` that can also read many nodes at once, e.g. in one query: `many(nodes)` maps each to its hash.

    `many` raises as `one` would for a node it cannot give; `read_nodes` uses it whenever a reader has it.
    """

    one: NodeReader
    many: Callable[[Sequence[Node]], Mapping[Node, bytes]]

    def __call__(self, level: int, index: int) -> bytes:
        return self.one(level, index)


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 9162 §2.1.1 leaf hash: SHA-256(0x00 || leaf)."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1, straight from the leaf hashes (O(n); for small trees and checks)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        # Pairing left to right and carrying an odd last node up unchanged is the same tree as the
        # RFC's split at the largest power of two below n.
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = [*paired, level[-1]] if len(level) % 2 else paired
    return level[0]


def completed_subtrees(index: int, leaf: bytes, node: NodeReader) -> list[tuple[int, int, bytes]]:
    """The nodes (level, index, hash) that become complete when leaf hash `leaf` is appended at `index`.

    The first is always (0, index, leaf); each further one is the parent of the one before, while that one
    is a right child. `node` is read only for the left siblings, which were completed by earlier appends.
    """
    if index < 0:
        raise AuditError("audit.out_of_range", f"leaf index {index} is negative")
    completed = [(0, index, leaf)]
    level, position, digest = 0, index, leaf
    while position & 1:
        digest = node_hash(node(level, position - 1), digest)
        level, position = level + 1, position >> 1
        completed.append((level, position, digest))
    return completed


def completed_by(start: int, leaves: Sequence[bytes], node: NodeReader) -> list[tuple[int, int, bytes]]:
    """Every node (level, index, hash) that becomes complete when leaf hashes `leaves` are appended from `start`.

    The same nodes as `completed_subtrees` for each leaf in turn, hashed a level at a time: level 0 (the leaves)
    first, then each level up, lowest index first within a level. `node` is read only for the left sibling of
    a level's first new node (at most once per level), which earlier appends completed.
    """
    if start < 0:
        raise AuditError("audit.out_of_range", f"leaf index {start} is negative")
    completed = [(0, start + k, leaf) for k, leaf in enumerate(leaves)]
    level, first, hashes = 0, start, list(leaves)
    while len(hashes) > 1 or (hashes and first & 1):
        if first & 1:
            hashes.insert(0, node(level, first - 1))
            first -= 1
        pairs = len(hashes) // 2  # a last node without its right sibling has no parent yet
        sha256 = hashlib.sha256  # node_hash, inlined: this loop hashes every node of the tree once
        hashes = [sha256(b"\x01" + left + right).digest()
                  for left, right in zip(hashes[: 2 * pairs : 2], hashes[1 : 2 * pairs : 2], strict=True)]
        level, first = level + 1, first >> 1
        completed.extend((level, first + k, digest) for k, digest in enumerate(hashes))
    return completed


def range_nodes(start: int, end: int) -> tuple[Node, ...]:
    """The nodes MTH(D[start:end]) is made of, left to right, for a subtree of the RFC's recursion (`start`
    aligned to a power of two >= its size): the largest perfect subtree first, then the largest of the rest."""
    nodes: list[Node] = []
    while start < end:
        level = (end - start).bit_length() - 1
        nodes.append((level, start >> level))
        start += 1 << level
    return tuple(nodes)


def range_hash(start: int, end: int, node: NodeReader) -> bytes:
    """MTH(D[start:end]) for a subtree of the RFC's recursion, i.e. `start` aligned to a power of two >= its size."""
    nodes = range_nodes(start, end)
    return _fold(nodes, read_nodes(nodes, node))


def read_nodes(nodes: Iterable[Node], node: NodeReader) -> dict[Node, bytes]:
    """The hash of each node (each read once): all in one call of `many` for a `BatchReader`, else one by one."""
    wanted = list(dict.fromkeys(nodes))
    if isinstance(node, BatchReader):
        found = node.many(wanted)
        return {n: found[n] for n in wanted}
    return {n: node(*n) for n in wanted}


def proof_hashes(plan: ProofPlan, hashes: Mapping[Node, bytes]) -> list[bytes]:
    """The proof a plan describes, from the hashes of its nodes (`read_nodes`)."""
    return [_fold(part, hashes) for part in plan]


def _fold(nodes: Sequence[Node], hashes: Mapping[Node, bytes]) -> bytes:
    """MTH of a range from its nodes, left to right: each node is the left sibling of the rest, folded."""
    if not nodes:
        return EMPTY_ROOT
    digest = hashes[nodes[-1]]
    for n in reversed(nodes[:-1]):
        digest = node_hash(hashes[n], digest)
    return digest


def tree_root(size: int, node: NodeReader) -> bytes:
    """MTH(D[size]) from stored nodes, for the current or any earlier tree size."""
    if size < 0:
        raise AuditError("audit.out_of_range", f"tree size {size} is negative")
    return range_hash(0, size, node)


def inclusion_nodes(index: int, size: int) -> ProofPlan:
    """The nodes PATH(index, D[size]) of RFC 9162 §2.1.3.1 is made of, leaf side first; no hashing, no reads.

    Every part is one node but the first taken on the tree's right edge (when `size` is not a power of two):
    that range has one node per one bit of its size. O(log size) nodes in all.
    """
    if not 0 <= index < size:
        raise AuditError("audit.out_of_range", f"leaf {index} is not in a tree of size {size}")
    plan: ProofPlan = []
    low, high = 0, size
    while high - low > 1:
        split = _largest_power_of_two_below(high - low)
        if index < low + split:
            plan.append(range_nodes(low + split, high))
            high = low + split
        else:
            plan.append(((split.bit_length() - 1, low // split),))
            low += split
    plan.reverse()
    return plan


def inclusion_proof(index: int, size: int, node: NodeReader) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 §2.1.3.1, leaf side first."""
    plan = inclusion_nodes(index, size)
    return proof_hashes(plan, read_nodes((n for part in plan for n in part), node))


def consistency_nodes(old_size: int, new_size: int) -> ProofPlan:
    """The nodes PROOF(old_size, D[new_size]) of RFC 9162 §2.1.4.1 is made of; empty when a size is 0 or both
    are equal. No hashing, no reads; O(log new_size) nodes."""
    if not 0 <= old_size <= new_size:
        raise AuditError("audit.out_of_range", f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    plan: ProofPlan = []
    low, high, whole = 0, new_size, True  # `whole`: the old tree is still a complete subtree (SUBPROOF's b)
    while high != old_size:
        split = _largest_power_of_two_below(high - low)
        if old_size - low <= split:
            plan.append(range_nodes(low + split, high))
            high = low + split
        else:
            plan.append(((split.bit_length() - 1, low // split),))
            low += split
            whole = False
    if not whole:
        plan.append(range_nodes(low, high))
    plan.reverse()
    return plan


def consistency_proof(old_size: int, new_size: int, node: NodeReader) -> list[bytes]:
    """PROOF(old_size, D[new_size]) of RFC 9162 §2.1.4.1; empty when a size is 0 or both are equal."""
    plan = consistency_nodes(old_size, new_size)
    return proof_hashes(plan, read_nodes((n for part in plan for n in part), node))


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root_hash: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does `proof` show leaf hash `leaf` at `index` in the tree of `size` with `root_hash`?"""
    if not (_is_hash(leaf) and _is_hash(root_hash) and all(_is_hash(p) for p in proof)):
        return False
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root_hash


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: is the tree of `old_size` with `old_root` a prefix of the one of `new_size`/`new_root`?"""
    if not (_is_hash(old_root) and _is_hash(new_root) and all(_is_hash(p) for p in proof)):
        return False
    if not 0 <= old_size <= new_size:
        return False
    # The RFC defines proofs for 0 < first < second; the two edge cases have nothing to prove.
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = [old_root, *proof] if old_size & (old_size - 1) == 0 else list(proof)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old_root and sr == new_root and sn == 0


class MemoryTree:
    """An append-only tree in memory: every complete node, by level; O(1) amortised append, O(log n) reads."""

    def __init__(self) -> None:
        self._levels: list[list[bytes]] = []

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self._levels[0]) if self._levels else 0

    def node(self, level: int, index: int) -> bytes:
        """The hash of the complete node (level, index); a `NodeReader`."""
        if not (0 <= level < len(self._levels) and 0 <= index < len(self._levels[level])):
            raise AuditError("audit.out_of_range", f"node ({level}, {index}) is not complete")
        return self._levels[level][index]

    def append(self, leaf: bytes) -> int:
        """Append a leaf hash; return its index."""
        index = self.size
        for level, _, digest in completed_subtrees(index, leaf, self.node):
            if level == len(self._levels):
                self._levels.append([])
            self._levels[level].append(digest)
        return index

    def root(self, size: int | None = None) -> bytes:
        """The root hash at `size` (default: now)."""
        return tree_root(self.size if size is None else self._check(size), self.node)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The inclusion proof of leaf `index` in the tree at `size` (default: now)."""
        return inclusion_proof(index, self.size if size is None else self._check(size), self.node)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The consistency proof from the tree at `old_size` to the one at `new_size` (default: now)."""
        return consistency_proof(old_size, self.size if new_size is None else self._check(new_size), self.node)

    def _check(self, size: int) -> int:
        if not 0 <= size <= self.size:
            raise AuditError("audit.out_of_range", f"tree size {size} is beyond the log's {self.size}")
        return size


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _is_hash(value: bytes) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE
