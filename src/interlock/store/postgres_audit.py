"""The audit log in PostgreSQL: one totally ordered Merkle log however many nodes append to it at once.

Everything that knows the audit tables' layout lives here, so a change of layout touches this file only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from interlock.audit.log import AuditEntry, StoredEntry, seal
from interlock.audit.merkle import BatchReader, Node
from interlock.core.errors import StoreError
from interlock.store import tree
from interlock.store.base import AuditEvent, CheckpointRecord, SignCheckpoint
from interlock.store.rows import changed_checkpoint, checkpoint_from_row, rfc3339, to_micros

# Advisory lock keys are (namespace, key) pairs; the namespace keeps them apart from other applications' locks.
LOCK_NAMESPACE = 0x494C4B00  # "ILK\0"
APPEND_LOCK = 2
NODE_CHUNK = 1 << 14  # leaves whose nodes are completed at a time when a checkpoint is signed
Query = Callable[[str, tuple[Any, ...]], list[Any]]  # runs one statement on its own (no transaction), returns its rows


def append(conn: psycopg.Connection[Any], events: list[AuditEvent]) -> None:
    """Append `events` inside the caller's transaction, as its last step (the lock is held until commit).

    The lock serialises appenders across every node: the next index is read only once the previous appender
    has committed or rolled back, so indexes have no gaps and no duplicates, and commits land in index order
    (whatever a reader sees of the log is a prefix of it).
    """
    if not events:
        return
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_NAMESPACE, APPEND_LOCK))
    # A statement of its own, after the lock: under READ COMMITTED it sees the last holder's commit.
    row = conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM audit").fetchone()
    index = int(row[0]) if row else 0
    rows = []
    for event in events:
        entry = AuditEntry(index, rfc3339(event.at), event.kind, event.request_id, event.data)
        try:
            stored = seal(entry)
        except (TypeError, ValueError) as exc:
            # An audit entry that cannot be written rolls the state change back with it.
            raise StoreError("store.unavailable", f"audit entry cannot be written: {exc}") from None
        rows.append((stored.index, stored.leaf, stored.leaf_hash))
        index += 1
    with conn.cursor() as cursor:
        cursor.executemany("INSERT INTO audit (idx, leaf, leaf_hash) VALUES (%s, %s, %s)", rows)


def entries(conn: psycopg.Connection[Any], start: int = 0, stop: int | None = None) -> list[StoredEntry]:
    """The entries with `start <= index < stop` (default: all), in log order."""
    rows = conn.execute("SELECT idx, leaf, leaf_hash FROM audit WHERE idx >= %s AND (%s::bigint IS NULL OR idx < %s)"
                        " ORDER BY idx", (start, stop, stop)).fetchall()
    return [StoredEntry(idx, bytes(leaf), bytes(digest)) for idx, leaf, digest in rows]


def origin(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT origin FROM audit_log").fetchone()
    if row is None:
        raise StoreError("store.unavailable", "the audit log has no origin: the schema is incomplete")
    return str(row[0])


def tree_size(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT tree_size FROM audit_log").fetchone()
    return int(row[0]) if row else 0


def sign_checkpoint(conn: psycopg.Connection[Any], sign: SignCheckpoint) -> CheckpointRecord | None:
    """Complete the tree's nodes, call `sign`, store what it returns; inside the caller's transaction.

    Signers on several nodes take turns on the `audit_log` row; appenders go on meanwhile, and the nodes cover
    the prefix of the log committed when this transaction reads it.
    """
    row = conn.execute("SELECT tree_size FROM audit_log FOR UPDATE").fetchone()
    done = int(row[0]) if row else 0
    size = _complete_nodes(conn, done)
    last = last_checkpoint(conn)
    made = sign(size, node_reader(conn, size), last)
    if made is None:
        return last
    conn.execute("INSERT INTO audit_checkpoints (size, root, note, signed_at) VALUES (%s, %s, %s, %s)",
                 (made.size, made.root, made.note, to_micros(made.signed_at)))
    return made


def _complete_nodes(conn: psycopg.Connection[Any], done: int) -> int:
    """Write every node completed by the leaves appended since the last call; return the log's size.

    Leaves are read, hashed a level at a time and their nodes written `NODE_CHUNK` at a time, so memory stays
    bounded however many leaves have no nodes yet (only the newest node of each level is kept in between).
    """
    row = conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM audit").fetchone()
    size = int(row[0]) if row else 0
    if size <= done:
        return size  # nothing new; fewer: the log lost entries its nodes were built from, the caller refuses to sign
    def leaves(start: int, stop: int) -> list[tuple[int, bytes]]:
        return conn.execute("SELECT idx, leaf_hash FROM audit WHERE idx >= %s AND idx < %s ORDER BY idx",
                            (start, stop)).fetchall()

    for completed in tree.grow(done, size, leaves, node_reader(conn, done), NODE_CHUNK):
        # COPY, not INSERT: the rows of a first checkpoint over a long log go in several times faster.
        with conn.cursor() as cursor, cursor.copy("COPY audit_nodes (level, idx, hash) FROM STDIN") as copy:
            for row in completed:
                if row[0] > 0:
                    copy.write_row(row)
    conn.execute("UPDATE audit_log SET tree_size = %s", (size,))
    return size


def node_reader(conn: psycopg.Connection[Any], size: int) -> BatchReader:
    """The stored nodes of the tree of `size` leaves, many in one query."""

    def fetch(nodes: Sequence[Node]) -> dict[Node, bytes]:
        rows = conn.execute(_NODES, _node_args(nodes)).fetchall()
        return {(int(level), int(index)): bytes(digest) for level, index, digest in rows}

    return tree.stored_nodes(size, fetch)


def signed_nodes(query: Query, size: int, nodes: Sequence[Node]) -> dict[Node, bytes]:
    """The hashes of `nodes` in the tree the checkpoint of `size` signed, and that checkpoint, in one statement."""

    def fetch(wanted: Sequence[Node]) -> dict[Node, bytes] | None:
        rows = query(_SIGNED_NODES, (*_node_args(wanted), size))
        if not rows:
            return None
        return {(int(level), int(index)): bytes(digest) for level, index, digest in rows if level is not None}

    return tree.signed_nodes(size, nodes, fetch)


def _node_args(nodes: Sequence[Node]) -> tuple[list[int], list[int], list[int]]:
    inner = [(level, index) for level, index in nodes if level > 0]
    return [level for level, _ in inner], [index for _, index in inner], [index for level, index in nodes if level == 0]


# Many nodes in one round trip: each inner node by its primary key, the leaves (level 0) from the audit table.
_NODES = ("SELECT n.level, n.idx, n.hash FROM unnest(%s::integer[], %s::bigint[]) AS want (level, idx)"
          " JOIN audit_nodes AS n ON n.level = want.level AND n.idx = want.idx"
          " UNION ALL SELECT 0, idx, leaf_hash FROM audit WHERE idx = ANY(%s::bigint[])")
# The same with the checkpoint they are proved against: no row without that checkpoint, one row of NULLs when it
# is there and no node was asked for (or found).
_SIGNED_NODES = ("SELECT found.* FROM audit_checkpoints LEFT JOIN ("
                 "SELECT n.level, n.idx, n.hash FROM unnest(%s::integer[], %s::bigint[]) AS want (level, idx)"
                 " JOIN audit_nodes AS n ON n.level = want.level AND n.idx = want.idx"
                 " UNION ALL SELECT 0, idx, leaf_hash FROM audit WHERE idx = ANY(%s::bigint[])"
                 ") AS found ON true WHERE size = %s")


def last_checkpoint(conn: psycopg.Connection[Any]) -> CheckpointRecord | None:
    row = conn.execute(_LAST_CHECKPOINT).fetchone()
    return checkpoint_from_row(row) if row else None


def checkpoint(query: Query, size: int | None) -> CheckpointRecord | None:
    """The checkpoint signed at `size` (default: the newest): one statement, so no transaction is needed."""
    if size is None:
        rows = query(_LAST_CHECKPOINT, ())
    else:
        rows = query("SELECT size, root, note, signed_at FROM audit_checkpoints WHERE size = %s", (size,))
    return checkpoint_from_row(rows[0]) if rows else None


_LAST_CHECKPOINT = "SELECT size, root, note, signed_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1"


def checkpoints(conn: psycopg.Connection[Any]) -> list[CheckpointRecord]:
    rows = conn.execute("SELECT size, root, note, signed_at FROM audit_checkpoints ORDER BY size").fetchall()
    return [checkpoint_from_row(row) for row in rows]


def change_checkpoint_note(conn: psycopg.Connection[Any], size: int, change: Callable[[str], str]) -> CheckpointRecord:
    row = conn.execute("SELECT size, root, note, signed_at FROM audit_checkpoints WHERE size = %s FOR UPDATE",
                       (size,)).fetchone()
    changed = changed_checkpoint(row, size, change)
    conn.execute("UPDATE audit_checkpoints SET note = %s WHERE size = %s", (changed.note, size))
    return changed
