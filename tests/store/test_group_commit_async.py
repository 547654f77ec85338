"""Group commit for code on an event loop (`GroupCommitWriter.run_async`): the loop's thread runs the writes, a
committer thread only commits; each write succeeds or fails alone, and the loop's batches never overlap a
thread's or another process's."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from interlock.core.errors import ApprovalError, StoreError
from interlock.store import sqlite_writer
from interlock.store.sqlite import SqliteStore

from .test_group_commit import Blocked, _insert, _rows


def _gather(*writes: Callable[[sqlite3.Connection], Any], store: SqliteStore) -> list[Any]:
    """Run the writes concurrently on one event loop: each one's result, or the error it raised."""

    async def all_of_them() -> list[Any]:
        return await asyncio.gather(*(store._writer.run_async(w) for w in writes), return_exceptions=True)

    return asyncio.run(all_of_them())


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    opened = SqliteStore(tmp_path / "interlock.db", busy_timeout_ms=1000)
    yield opened
    opened.close()


def test_writes_share_commits_and_a_failing_one_rolls_back_alone(store: SqliteStore,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    batches: list[int] = []
    original = store._writer._write_batch

    def counted(db: sqlite3.Connection, batch: list[Any], *, begun: bool = False) -> bool:
        batches.append(len(batch))
        return original(db, batch, begun=begun)

    monkeypatch.setattr(store._writer, "_write_batch", counted)

    def refused() -> None:
        raise ApprovalError("approval.duplicate", "refused after writing a row")

    writes = [_insert(f"r{n:02d}") for n in range(20)]
    writes[7] = _insert("refused", refused)
    outcomes = _gather(*writes, store=store)

    assert isinstance(outcomes[7], ApprovalError)
    assert [o for n, o in enumerate(outcomes) if n != 7] == [f"r{n:02d}" for n in range(20) if n != 7]
    assert _rows(store) == sorted(f"r{n:02d}" for n in range(20) if n != 7)
    assert sum(batches) == 20 and len(batches) < 20, batches


def test_the_loops_thread_runs_the_writes_and_another_thread_commits(store: SqliteStore,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    threads: dict[str, str] = {}
    commit = sqlite_writer._commit_or_roll_back

    def committed(db: sqlite3.Connection) -> None:
        threads["commit"] = threading.current_thread().name
        commit(db)

    monkeypatch.setattr(sqlite_writer, "_commit_or_roll_back", committed)
    _gather(_insert("r", lambda: threads.setdefault("work", threading.current_thread().name)), store=store)

    assert threads["work"] == threading.main_thread().name  # asyncio.run's loop runs on this thread
    assert threads["commit"].startswith("interlock-commit")
    assert _rows(store) == ["r"]


def test_a_loop_write_waits_for_a_threads_batch_and_never_joins_it(store: SqliteStore) -> None:
    leader = Blocked(store)  # a thread's batch, held open

    async def write_while_held() -> str:
        pending = asyncio.ensure_future(store._writer.run_async(_insert("loop")))
        await asyncio.sleep(0.2)
        assert not pending.done()  # it waits for leadership: no second transaction beside the held one
        leader.release.set()
        return await pending

    assert asyncio.run(write_while_held()) == "loop"
    leader.thread.join(10)
    assert _rows(store) == ["held", "loop"]


def test_a_loop_write_that_cannot_lead_within_the_timeout_is_refused_and_never_runs(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "interlock.db", busy_timeout_ms=200)
    leader = Blocked(store)
    [outcome] = _gather(_insert("late"), store=store)
    leader.release.set()
    leader.thread.join(10)

    assert isinstance(outcome, StoreError) and outcome.code == "store.unavailable"
    assert _rows(store) == ["held"]
    store.close()


def test_another_process_holding_the_write_lock_delays_the_loop_or_refuses_it(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "interlock.db", busy_timeout_ms=300)
    other = os.open(store.path + ".lock", os.O_RDWR)  # a second open file: flock sees another owner
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        [refused] = _gather(_insert("refused"), store=store)
        threading.Timer(0.1, lambda: fcntl.flock(other, fcntl.LOCK_UN)).start()
        [written] = _gather(_insert("written"), store=store)
    finally:
        os.close(other)

    assert isinstance(refused, StoreError) and refused.code == "store.unavailable"
    assert written == "written"
    assert _rows(store) == ["written"]
    store.close()


def test_a_failing_commit_fails_every_write_of_the_batch(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(db: sqlite3.Connection) -> None:
        sqlite_writer._roll_back(db)
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(sqlite_writer, "_commit_or_roll_back", disk_full)
    outcomes = _gather(_insert("a"), _insert("b"), store=store)

    assert all(isinstance(o, StoreError) and o.code == "store.unavailable" for o in outcomes), outcomes
    assert _rows(store) == []


def test_a_loop_that_stops_mid_commit_releases_nothing_before_the_commit_ends(
        store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    commit = sqlite_writer._commit_or_roll_back
    committing = threading.Event()

    def slow(db: sqlite3.Connection) -> None:
        committing.set()
        threading.Event().wait(0.3)
        commit(db)

    monkeypatch.setattr(sqlite_writer, "_commit_or_roll_back", slow)

    async def leave_mid_commit() -> None:
        pending = asyncio.ensure_future(store._writer.run_async(_insert("committed")))
        while not committing.is_set():
            await asyncio.sleep(0.01)
        assert not pending.done()  # its commit is on the committer thread now
        # returning here makes asyncio.run cancel the batch's task while its commit runs

    asyncio.run(leave_mid_commit())

    assert _rows(store) == ["committed"]  # the commit finished before the task let go
    assert not store._writer._leading
    monkeypatch.setattr(sqlite_writer, "_commit_or_roll_back", commit)
    assert store._writer.run(_insert("next")) == "next"  # leadership and the write lock are free again


def test_when_both_sides_wait_a_threads_batch_and_the_loops_take_turns(store: SqliteStore) -> None:
    order: list[str] = []
    leader = Blocked(store)  # a thread's batch, held open

    def noted(name: str) -> Callable[[sqlite3.Connection], str]:
        return _insert(name, lambda: order.append(name))

    async def both_wait() -> str:
        loop_write = asyncio.ensure_future(store._writer.run_async(noted("loop")))
        while not store._writer._async_pending:
            await asyncio.sleep(0.001)
        thread_write = threading.Thread(target=lambda: store._writer.run(noted("thread")))
        thread_write.start()
        while not store._writer._queue:
            await asyncio.sleep(0.001)
        leader.release.set()  # the thread side just had a batch: the loop's goes next, then the waiting thread's
        result = await loop_write
        await asyncio.get_running_loop().run_in_executor(None, thread_write.join, 10)
        return result

    assert asyncio.run(both_wait()) == "loop"
    leader.thread.join(10)
    assert order == ["loop", "thread"]
    assert _rows(store) == ["held", "loop", "thread"]


def test_another_program_holding_sqlites_write_lock_delays_the_loop_without_stopping_it(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "interlock.db", busy_timeout_ms=2000)
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program writing: it knows nothing of Interlock's file lock
    ticks = 0

    async def write_while_locked() -> str:
        nonlocal ticks
        pending = asyncio.ensure_future(store._writer.run_async(_insert("written")))
        for _ in range(20):  # the loop keeps running other work while the write waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert not pending.done()
        other.execute("ROLLBACK")
        return await pending

    try:
        assert asyncio.run(write_while_locked()) == "written"
    finally:
        other.close()
    assert ticks == 20
    assert _rows(store) == ["written"]
    store.close()


def test_a_cancelled_caller_still_hears_whether_its_queued_write_committed(store: SqliteStore) -> None:
    """What a gated call relies on: a grant consumed while the call is being cancelled reaches the code that
    records what became of it; the cancellation comes at the caller's next await."""
    heard: list[str] = []

    async def cancelled_while_writing() -> None:
        with anyio.CancelScope() as scope:
            scope.cancel()
            heard.append(await store._writer.run_async(_insert("committed")))
            await anyio.sleep(0)  # the cancellation arrives here
            heard.append("not reached")

    asyncio.run(cancelled_while_writing())
    assert heard == ["committed"]
    assert _rows(store) == ["committed"]
