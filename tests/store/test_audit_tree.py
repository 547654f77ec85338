"""The stored Merkle tree: nodes completed in chunks, read one by one or many at once, give the RFC 9162 tree."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from interlock.audit import merkle
from interlock.core.errors import AuditError, StoreError
from interlock.keys import KeyRing
from interlock.ledger import Ledger
from interlock.store import postgres_audit
from interlock.store import sqlite as sqlite_store
from interlock.store.base import Store

from .test_store_contract import T0, event

CHUNK = 8


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Complete nodes CHUNK leaves at a time, so a few dozen entries cross several chunks."""
    monkeypatch.setattr(sqlite_store, "_NODE_CHUNK", CHUNK)
    monkeypatch.setattr(postgres_audit, "NODE_CHUNK", CHUNK)


def ledger(store: Store) -> Ledger:
    return Ledger(store, KeyRing.generate(), lambda: T0 + datetime.timedelta(seconds=1))


def memory_tree(store: Store) -> merkle.MemoryTree:
    tree = merkle.MemoryTree()
    for entry in store.audit_entries():
        tree.append(entry.leaf_hash)
    return tree


@pytest.mark.usefixtures("small_chunks")
def test_a_checkpoint_over_many_chunks_signs_the_rfc_tree_and_every_proof_verifies(any_store: Store) -> None:
    log = ledger(any_store)
    for size in (3 * CHUNK + 5, 3 * CHUNK + 6, 7 * CHUNK, 7 * CHUNK + 1):  # a first checkpoint, then later ones
        count = size - len(list(any_store.audit_entries()))
        any_store.append_audit([event("entry", None, n=n) for n in range(count)])
        signed = log.checkpoint()
        tree = memory_tree(any_store)
        assert signed is not None and signed.size == size and signed.root == tree.root()
    assert log.verify().ok
    sizes = [c.size for c in any_store.checkpoints()]
    for size in sizes:
        root = tree.root(size)
        for index in range(size):
            proof = log.inclusion_proof(index, size)
            assert merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), index, size,
                                           [bytes.fromhex(h) for h in proof["proof"]], root)
            assert [bytes.fromhex(h) for h in proof["proof"]] == tree.inclusion_proof(index, size)
        for old in range(size + 1):
            proof = log.consistency_proof(old, size)
            assert [bytes.fromhex(h) for h in proof["proof"]] == tree.consistency_proof(old, size)


def test_many_nodes_read_at_once_are_the_nodes_read_one_by_one(any_store: Store) -> None:
    log = ledger(any_store)
    any_store.append_audit([event("entry", None, n=n) for n in range(21)])
    log.checkpoint()
    complete = [(level, index) for level in range(5) for index in range(21 >> level)]

    def read(node: merkle.NodeReader) -> tuple[dict[merkle.Node, bytes], dict[merkle.Node, bytes]]:
        assert isinstance(node, merkle.BatchReader)
        return dict(node.many(complete)), {n: node(*n) for n in complete}

    many, one = any_store.read_tree(read)
    assert many == one and len(many) == len(complete)
    with pytest.raises(AuditError) as beyond:
        any_store.read_tree(lambda node: merkle.read_nodes([(0, 3), (1, 10)], node))  # leaves 20 and 21: size 21
    assert beyond.value.code == "audit.out_of_range"


def test_a_missing_node_is_a_store_failure_not_a_wrong_proof(tmp_path: Path) -> None:
    store = sqlite_store.SqliteStore(tmp_path / "tree.db")
    try:
        log = ledger(store)
        store.append_audit([event("entry", None, n=n) for n in range(9)])
        log.checkpoint()
        store._writer.run(lambda db: db.execute("DELETE FROM audit_nodes WHERE level = 2"))
        with pytest.raises(StoreError) as raised:
            log.inclusion_proof(0)
        assert raised.value.code == "store.unavailable"
    finally:
        store.close()


@pytest.mark.usefixtures("small_chunks")
def test_sqlite_completes_a_long_backlog_in_bounded_write_transactions(tmp_path: Path) -> None:
    store = sqlite_store.SqliteStore(tmp_path / "tree.db")
    try:
        store.append_audit([event("entry", None, n=n) for n in range(5 * CHUNK + 3)])
        sizes: list[int] = []
        run = store._writer.run

        def counting(work: Any) -> Any:
            result = run(work)
            sizes.append(run(lambda db: db.execute("SELECT tree_size FROM audit_log").fetchone()[0]))
            return result

        store._writer.run = counting  # type: ignore[method-assign]
        signed = ledger(store).checkpoint()
        assert signed is not None and signed.size == 5 * CHUNK + 3
        # One transaction per CHUNK leaves while more than CHUNK wait, then the last one completes the rest and signs.
        assert sizes == [CHUNK, 2 * CHUNK, 3 * CHUNK, 4 * CHUNK, 5 * CHUNK, 5 * CHUNK + 3]
    finally:
        store.close()


def test_one_checkpoint_is_read_by_its_size_or_as_the_newest(any_store: Store) -> None:
    assert any_store.checkpoint() is None and any_store.checkpoint(1) is None
    ledger = Ledger(any_store, KeyRing.generate(), lambda: T0)
    any_store.append_audit([event("test.entry", None)])
    first = ledger.checkpoint()
    any_store.append_audit([event("test.entry", None)])
    second = ledger.checkpoint()
    assert first is not None and second is not None
    assert any_store.checkpoint() == second == ledger.latest()
    assert any_store.checkpoint(1) == first
    assert any_store.checkpoint(3) is None
