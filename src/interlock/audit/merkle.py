"""RFC 9162 §2.1 Merkle tree hashing, inclusion and consistency proofs, over stored perfect-subtree hashes.

A *node* (level, index) is the perfect subtree of 2**level leaves starting at leaf index << level; level 0
holds the leaf hashes. Once complete, a node's hash never changes, so a store keeps one row per node and
writes the new ones that `completed_subtrees` names on each append. Every tree head and proof below reads
O(log n) nodes through a `NodeReader` and never rebuilds the tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from interlock.core.errors import AuditError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeReader = Callable[[int, int], bytes]
"""`node(level, index)`: the stored hash of a complete perfect subtree."""


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


def range_hash(start: int, end: int, node: NodeReader) -> bytes:
    """MTH(D[start:end]) for a subtree of the RFC's recursion, i.e. `start` aligned to a power of two >= its size."""
    pieces: list[bytes] = []
    while start < end:
        level = (end - start).bit_length() - 1
        pieces.append(node(level, start >> level))
        start += 1 << level
    if not pieces:
        return EMPTY_ROOT
    digest = pieces.pop()
    while pieces:
        digest = node_hash(pieces.pop(), digest)
    return digest


def tree_root(size: int, node: NodeReader) -> bytes:
    """MTH(D[size]) from stored nodes, for the current or any earlier tree size."""
    if size < 0:
        raise AuditError("audit.out_of_range", f"tree size {size} is negative")
    return range_hash(0, size, node)


def inclusion_proof(index: int, size: int, node: NodeReader) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 §2.1.3.1, leaf side first."""
    if not 0 <= index < size:
        raise AuditError("audit.out_of_range", f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []
    low, high = 0, size
    while high - low > 1:
        split = _largest_power_of_two_below(high - low)
        if index < low + split:
            path.append(range_hash(low + split, high, node))
            high = low + split
        else:
            path.append(node(split.bit_length() - 1, low // split))
            low += split
    path.reverse()
    return path


def consistency_proof(old_size: int, new_size: int, node: NodeReader) -> list[bytes]:
    """PROOF(old_size, D[new_size]) of RFC 9162 §2.1.4.1; empty when a size is 0 or both are equal."""
    if not 0 <= old_size <= new_size:
        raise AuditError("audit.out_of_range", f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    low, high, whole = 0, new_size, True  # `whole`: the old tree is still a complete subtree (SUBPROOF's b)
    while high != old_size:
        split = _largest_power_of_two_below(high - low)
        if old_size - low <= split:
            proof.append(range_hash(low + split, high, node))
            high = low + split
        else:
            proof.append(node(split.bit_length() - 1, low // split))
            low += split
            whole = False
    if not whole:
        proof.append(range_hash(low, high, node))
    proof.reverse()
    return proof


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
