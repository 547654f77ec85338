"""The audit log's Merkle tree over a store's rows, the same way on every store: reading its nodes, and
growing it from stored leaves.

A store calls `grow` with the leaves its nodes already reach (`done`), the log's size, a reader of the
leaf hashes in a range, its stored nodes and a chunk size; it gets back, chunk by chunk, the nodes each
chunk completes and writes them its own way. Only the newest node of each level is kept between chunks,
so memory stays bounded however long the backlog.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from interlock.audit.merkle import BatchReader, Node, NodeReader, completed_by
from interlock.core.errors import AuditError, StoreError

Completed = tuple[int, int, bytes]  # (level, index, hash)
LeafRange = Callable[[int, int], list[tuple[int, bytes]]]  # (start, stop) -> [(index, leaf hash)] in index order


def stored_nodes(size: int, fetch: Callable[[Sequence[Node]], dict[Node, bytes]]) -> BatchReader:
    """The stored nodes of the tree of `size` leaves, read by `fetch` (level 0: the leaf hashes; many in one query).

    A node beyond the tree is `audit.out_of_range`; one the store should have and does not, `store.unavailable`.
    """

    def many(nodes: Sequence[Node]) -> dict[Node, bytes]:
        for level, index in nodes:
            if (index + 1) << level > size:
                raise AuditError("audit.out_of_range", f"node ({level}, {index}) is beyond the tree of {size} entries")
        found = fetch(nodes)
        for level, index in nodes:
            if (level, index) not in found:
                raise StoreError("store.unavailable", f"audit tree node ({level}, {index}) is missing")
        return found

    return BatchReader(lambda level, index: many([(level, index)])[(level, index)], many)


def signed_nodes(size: int, nodes: Sequence[Node],
                 fetch: Callable[[Sequence[Node]], dict[Node, bytes] | None]) -> dict[Node, bytes]:
    """The hashes of `nodes` in the tree a checkpoint signed at `size`, read by `fetch` in one statement together
    with that checkpoint (None: no checkpoint was signed at `size`, which is `audit.out_of_range`).

    INVARIANT: a proof never mixes two states of the log. One statement reads one snapshot; and besides, stored
    nodes and leaves are only ever inserted (primary keys: one value per node), and a checkpoint is written in
    the transaction that completes its tree's nodes, so every state holding the checkpoint holds those nodes.
    """

    def checked(wanted: Sequence[Node]) -> dict[Node, bytes]:
        found = fetch(wanted)
        if found is None:
            raise AuditError("audit.out_of_range", f"no checkpoint was signed at {size} entries")
        return found

    return dict(stored_nodes(size, checked).many(list(dict.fromkeys(nodes))))


def grow(done: int, size: int, leaves: LeafRange, stored: NodeReader, chunk: int) -> Iterator[list[Completed]]:
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
