"""Group commit in the SQLite store: concurrent writes share a transaction, yet each succeeds or fails alone."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from interlock.core.errors import ApprovalError, StoreError
from interlock.store.sqlite import SqliteStore


def _rows(store: SqliteStore) -> list[str]:
    db = sqlite3.connect(store.path)
    try:
        return [row[0] for row in db.execute("SELECT id FROM requests ORDER BY id")]
    finally:
        db.close()


def _insert(request_id: str, then: Callable[[], None] = lambda: None) -> Callable[[sqlite3.Connection], str]:
    def work(db: sqlite3.Connection) -> str:
        db.execute("INSERT INTO requests (id, principal_id, action, digest, request_json, status, decision_json,"
                   " created_at) VALUES (?, 'p', 'a', 'd', '{}', 'denied', '{}', 0)", (request_id,))
        then()
        return request_id

    return work


class Blocked:
    """A write that holds the leader's batch open until released, so others queue behind it."""

    def __init__(self, store: SqliteStore) -> None:
        self.started, self.release = threading.Event(), threading.Event()

        def hold() -> None:
            self.started.set()
            assert self.release.wait(10)

        self.thread = threading.Thread(target=lambda: store._writer.run(_insert("held", hold)))
        self.thread.start()
        assert self.started.wait(10)


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except Exception as error:
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _wait_queued(store: SqliteStore, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(store._writer._queue) < count:
        assert time.monotonic() < deadline, "writes did not queue"
        time.sleep(0.001)


def test_a_failing_write_in_a_batch_rolls_back_alone(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "interlock.db")
    leader = Blocked(store)

    def refused() -> None:
        raise ApprovalError("approval.duplicate", "refused after writing a row")

    failing, failed = _in_thread(lambda: store._writer.run(_insert("refused", refused)))
    passing, passed = _in_thread(lambda: store._writer.run(_insert("kept")))
    _wait_queued(store, 2)  # both wait behind the held batch, and will share the next one
    leader.release.set()
    for thread in (leader.thread, failing, passing):
        thread.join(10)

    assert isinstance(failed[0], ApprovalError) and passed == ["kept"]
    assert _rows(store) == ["held", "kept"]
    store.close()


def test_a_write_that_waits_past_the_timeout_is_refused_and_never_runs(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "interlock.db", busy_timeout_ms=200)
    leader = Blocked(store)

    thread, outcome = _in_thread(lambda: store._writer.run(_insert("late")))
    thread.join(10)
    leader.release.set()
    leader.thread.join(10)

    assert isinstance(outcome[0], StoreError) and outcome[0].code == "store.unavailable"
    assert _rows(store) == ["held"]
    store.close()


def test_many_threads_write_in_fewer_transactions_than_writes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "interlock.db")
    commits: list[int] = []
    original = store._writer._write_batch

    def counted(db: sqlite3.Connection, batch: list[Any], *, begun: bool = False) -> bool:
        commits.append(len(batch))
        return original(db, batch, begun=begun)

    store._writer._write_batch = counted  # type: ignore[method-assign]
    leader = Blocked(store)
    threads = [_in_thread(lambda n=n: store._writer.run(_insert(f"r{n:02d}")))[0] for n in range(20)]
    _wait_queued(store, 20)
    leader.release.set()
    for thread in [leader.thread, *threads]:
        thread.join(10)

    assert sorted(_rows(store)) == sorted(["held", *(f"r{n:02d}" for n in range(20))])
    assert sum(commits) == 21 and len(commits) == 2, commits


def test_a_write_lock_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "interlock.db.lock").mkdir()
    with pytest.raises(StoreError) as refused:
        SqliteStore(tmp_path / "interlock.db")
    assert refused.value.code == "store.unavailable"
