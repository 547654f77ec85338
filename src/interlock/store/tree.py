"""Growing the audit log's Merkle tree from stored leaves, the same way on every store.

A store calls `grow` with the leaves its nodes already reach (`done`), the log's size, a reader of the
leaf hashes in a range, its stored nodes and a chunk size; it gets back, chunk by chunk, the nodes each
chunk completes and writes them its own way. Only the newest node of each level is kept between chunks,
so memory stays bounded however long the backlog.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from interlock.audit.merkle import NodeReader, completed_by
from interlock.core.errors import StoreError

Node = tuple[int, int, bytes]  # (level, index, hash)
LeafRange = Callable[[int, int], list[tuple[int, bytes]]]  # (start, stop) -> [(index, leaf hash)] in index order


def grow(done: int, size: int, leaves: LeafRange, stored: NodeReader, chunk: int) -> Iterator[list[Node]]:
    """Yield the nodes each chunk of leaves from `done` to `size` completes, in order."""
    newest: dict[int, tuple[int, bytes]] = {}  # level -> (index, hash) of the last node completed there

    def node(level: int, index: int) -> bytes:
        last = newest.get(level)
        return last[1] if last is not None and last[0] == index else stored(level, index)

    reached = done
    while reached < size:
        stop = min(size, reached + chunk)
        hashes: list[bytes] = []
        for index, digest in leaves(reached, stop):
            if index != reached + len(hashes):
                break
            hashes.append(bytes(digest))
        if reached + len(hashes) < stop:
            raise StoreError("store.unavailable",
                             f"audit entry {reached + len(hashes)} is missing: the log cannot grow its tree")
        completed = completed_by(reached, hashes, node)
        for level, position, value in completed:
            newest[level] = (position, value)
        reached = stop
        yield completed
