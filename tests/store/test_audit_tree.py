"""The stored Merkle tree: nodes completed in chunks, read one by one or many at once, give the RFC 9162 tree."""

from __future__ import annotations

import dataclasses
import datetime
import threading
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest

from interlock.audit import merkle
from interlock.core.errors import AuditError, StoreError
from interlock.keys import KeyRing
from interlock.ledger import Ledger
from interlock.store import postgres_audit
from interlock.store import sqlite as sqlite_store
from interlock.store.base import CheckpointRecord, Store
from interlock.store.postgres import PostgresStore

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


def delete_nodes(store: Store, level: int) -> None:
    """Tamper with the store behind its back: drop every stored node of `level`."""
    if isinstance(store, sqlite_store.SqliteStore):
        store._writer.run(lambda db: db.execute("DELETE FROM audit_nodes WHERE level = ?", (level,)))
        return
    assert isinstance(store, PostgresStore)
    with psycopg.connect(store.url, autocommit=True) as conn:
        conn.execute("DELETE FROM audit_nodes WHERE level = %s", (level,))


def test_a_missing_node_is_a_store_failure_not_a_wrong_proof(any_store: Store) -> None:
    log = ledger(any_store)
    any_store.append_audit([event("entry", None, n=n) for n in range(9)])
    log.checkpoint()
    delete_nodes(any_store, 2)
    for prove in (partial(log.inclusion_proof, 0), partial(log.inclusion_proof, 0, 9),
                  partial(log.consistency_proof, 5, 9)):
        with pytest.raises(StoreError) as raised:
            prove()
        assert raised.value.code == "store.unavailable"


def test_proofs_for_a_size_no_checkpoint_signed_are_refused_even_where_its_nodes_exist(any_store: Store) -> None:
    log = ledger(any_store)
    any_store.append_audit([event("entry", None, n=n) for n in range(9)])
    log.checkpoint()
    any_store.append_audit([event("entry", None, n=n) for n in range(7)])
    log.checkpoint()  # signed: 9 and 16; every node of the trees of 10..15 entries is stored too
    for size in (10, 12, 15, 17, 2**40):
        for prove in (partial(log.inclusion_proof, 0, size), partial(log.inclusion_proof, size - 1, size),
                      partial(log.consistency_proof, 3, size), partial(log.consistency_proof, 0, size),
                      partial(log.consistency_proof, size, size)):
            with pytest.raises(AuditError) as raised:
                prove()
            assert raised.value.code == "audit.out_of_range", size
        with pytest.raises(AuditError) as raised:
            any_store.signed_nodes(size, [])
        assert raised.value.code == "audit.out_of_range"
    assert any_store.signed_nodes(9, []) == {} and log.consistency_proof(9, 9)["proof"] == []


def test_proofs_taken_while_the_log_grows_each_verify_against_the_checkpoint_they_name(any_store: Store) -> None:
    log = ledger(any_store)
    any_store.append_audit([event("entry", None, n=n) for n in range(5)])
    first = log.checkpoint()
    assert first is not None
    done = threading.Event()
    failures: list[BaseException] = []

    def grow() -> None:
        try:
            for n in range(30):
                any_store.append_audit([event("entry", None, n=n)] * (n % 3 + 1))
                log.checkpoint()
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=grow)
    writer.start()
    proved = 0
    while not done.is_set() or proved < 20:
        for size in (first.size, None):
            proof = log.inclusion_proof(proved % first.size, size)
            assert merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), proof["index"], proof["size"],
                                           [bytes.fromhex(h) for h in proof["proof"]], _root(any_store, proof["size"]))
            consistency = log.consistency_proof(first.size, size)
            assert merkle.verify_consistency(first.size, consistency["to"], first.root,
                                             _root(any_store, consistency["to"]),
                                             [bytes.fromhex(h) for h in consistency["proof"]])
        proved += 1
    writer.join()
    assert not failures and proved >= 20


def _root(store: Store, size: int) -> bytes:
    signed = store.checkpoint(size)
    assert signed is not None
    return signed.root


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


def two_checkpoints(store: Store) -> tuple[Ledger, CheckpointRecord, CheckpointRecord]:
    """A ledger on `store` and the checkpoints it signs at one entry and at two."""
    ledger = Ledger(store, KeyRing.generate(), lambda: T0)
    signed = []
    for _ in range(2):
        store.append_audit([event("test.entry", None)])
        signed.append(ledger.checkpoint())
    first, second = signed
    assert first is not None and second is not None
    return ledger, first, second


def test_one_checkpoint_is_read_by_its_size_or_as_the_newest(any_store: Store) -> None:
    assert any_store.checkpoint() is None and any_store.checkpoint(1) is None
    ledger, first, second = two_checkpoints(any_store)
    assert any_store.checkpoint() == second == ledger.latest()
    assert any_store.checkpoint(1) == first
    assert any_store.checkpoint(3) is None


def test_a_checkpoints_note_changes_only_as_its_change_says_and_alone(any_store: Store) -> None:
    _, first, second = two_checkpoints(any_store)
    changed = any_store.change_checkpoint_note(1, lambda note: note + "\u2014 witness.example/w1 AAAAAA==\n")
    assert changed == dataclasses.replace(first, note=first.note + "\u2014 witness.example/w1 AAAAAA==\n")
    assert any_store.checkpoint(1) == changed and any_store.checkpoint(2) == second

    def refuse(note: str) -> str:
        raise AuditError("audit.bad_note", "not this one")

    with pytest.raises(AuditError):
        any_store.change_checkpoint_note(2, refuse)
    assert any_store.checkpoint(2) == second  # a change that fails changes nothing
    with pytest.raises(AuditError) as missing:
        any_store.change_checkpoint_note(3, lambda note: note)
    assert missing.value.code == "audit.out_of_range"
