"""Group commit for the SQLite store: concurrent writes share one transaction and one fsync.

Every write is a function of the connection. A writer queues its function; one thread at a time, the
leader, takes the queue, runs each function in its own SAVEPOINT inside one `BEGIN IMMEDIATE`
transaction and commits once, then wakes every writer with its own result. A function that raises rolls
back to its savepoint and only its caller sees the error; a failing commit fails
them all with `store.unavailable`, so nobody is told "done" before the fsync. Later functions in a
batch see what earlier ones wrote (a velocity limit counts them), exactly as if they had run one after
the other. Writers in other processes queue on an advisory file lock, which wakes the next at once
(SQLite's own busy handler sleeps in growing steps, which piles up under load).

`run_async` is the same for code on an event loop (the HTTP server): the loop's own thread runs the batch's
functions, and only the COMMIT — the fsync — runs on a committer thread, while the loop goes on and the next
batch gathers. One thread then runs the Python of every write instead of many taking turns at the GIL (each
SQLite statement releases it), which on this project's machine halved the server's CPU per decision. Both
paths take the same leadership, so a batch of one never overlaps a batch of the other.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio

from interlock.core.errors import StoreError

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], T]


@dataclass(eq=False)
class _Write(Generic[T]):
    work: Work[T]
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    taken: bool = field(default=False)


class GroupCommitWriter:
    """Serialises the store's writes through batches; `connection()` lends a pooled connection."""

    def __init__(self, lock_path: str, connection: Callable[[], AbstractContextManager[sqlite3.Connection]],
                 timeout_s: float) -> None:
        self._lock_path = lock_path
        self._connection = connection
        self._timeout_s = timeout_s
        self._state = threading.Condition()
        self._queue: list[_Write[Any]] = []
        self._leading = False
        self._lock_fd: int | None = None
        # The event loop's side (run_async): its queue, the task leading its batches, the committer thread,
        # and how a releasing thread wakes that task when it waits for leadership.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._async_queue: list[tuple[_Write[Any], asyncio.Future[Any]]] = []
        self._async_leader: asyncio.Task[None] | None = None
        self._async_waiting: asyncio.Event | None = None
        self._committer: ThreadPoolExecutor | None = None
        # Turns, when both sides have writes waiting: after a batch of one side, the other side's is next.
        self._async_pending = False  # the loop's leader waits for leadership
        self._async_turn = False  # the last batch was a thread's: the loop's leader goes next

    def run(self, work: Work[T]) -> T:
        """Run `work(db)` in a write transaction, alone or batched with others; return once it is committed."""
        write: _Write[T] = _Write(work)
        deadline = time.monotonic() + self._timeout_s
        with self._state:
            self._queue.append(write)
            while not write.done and (self._leading or (self._async_turn and self._async_pending)):
                remaining = deadline - time.monotonic()
                if remaining <= 0 and not write.taken:
                    self._queue.remove(write)
                    raise StoreError("store.unavailable", "SQLite store is busy: no write slot within the timeout")
                self._state.wait(max(remaining, 0.05))
            if not write.done:
                self._leading = True
                batch, self._queue = self._queue, []
                for queued in batch:
                    queued.taken = True
        if not write.done:
            try:
                self._commit(batch, deadline)
            finally:
                self._release(async_next=True)
        if write.error is not None:
            raise write.error
        return write.result  # type: ignore[no-any-return]

    def _release(self, *, async_next: bool) -> None:
        """Give up leadership: wake the threads that wait for it, and the event loop's leader if it waits."""
        with self._state:
            self._leading = False
            self._async_turn = async_next
            self._state.notify_all()
            waiting, loop = self._async_waiting, self._loop
        if waiting is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(waiting.set)

    async def run_async(self, work: Work[T]) -> T:
        """`run` for a coroutine: `work(db)` runs on this event loop's thread, batched with the loop's other
        writes; returns once the batch is committed. Calls come from one event loop at a time."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._async_leader is not None and not self._async_leader.done():
                raise RuntimeError("a SQLite store's async writes come from one event loop at a time")
            with self._state:
                self._loop, self._async_waiting = loop, None
        write: _Write[T] = _Write(work)
        done: asyncio.Future[T] = loop.create_future()
        self._async_queue.append((write, done))
        if self._async_leader is None or self._async_leader.done():
            self._async_leader = loop.create_task(self._lead_async())
        # A write once queued is committed (or fails) with its batch even if its caller is cancelled meanwhile:
        # the caller waits, shielded, to hear which, and sees the cancellation at its next await. Otherwise a
        # grant could be consumed with nobody left to run the call or report it.
        with anyio.CancelScope(shield=True):
            return await done

    async def _lead_async(self) -> None:
        while self._async_queue:
            deadline = time.monotonic() + self._timeout_s
            queued, self._async_queue = self._async_queue, []
            batch = [write for write, _ in queued]
            try:
                await self._lead_when_free(deadline)
            except StoreError as busy:
                for write in batch:
                    write.error = busy
            else:
                try:
                    await self._commit_async(batch, deadline)
                finally:
                    self._release(async_next=False)
            finally:
                _answer(queued)  # whatever happened, no caller is left waiting

    async def _lead_when_free(self, deadline: float) -> None:
        """Take leadership without blocking the loop: at once if free, else when a thread releases it."""
        with self._state:
            waiting = self._async_waiting = self._async_waiting or asyncio.Event()
            self._async_pending = True
        try:
            while True:
                waiting.clear()
                with self._state:
                    if not self._leading and (self._async_turn or not self._queue):
                        self._leading = True
                        return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreError("store.unavailable", "SQLite store is busy: no write slot within the timeout")
                try:
                    await asyncio.wait_for(waiting.wait(), min(remaining, 0.05))
                except TimeoutError:
                    pass
        finally:
            with self._state:
                self._async_pending = False
                self._state.notify_all()  # threads that gave the loop its turn may go once it has it

    async def _commit_async(self, batch: list[_Write[Any]], deadline: float) -> None:
        failed: StoreError | None = None
        cancelled = False
        try:
            await self._file_lock_async(deadline)
            try:
                with self._connection() as db:
                    await _begin_without_waiting(db, deadline, busy_ms=round(self._timeout_s * 1000))
                    if self._write_batch(db, batch, begun=True):
                        cancelled = await self._commit_on_committer(db)
            finally:
                self._file_unlock()
        except StoreError as error:
            failed = error
        except sqlite3.Error as exc:
            failed = StoreError("store.unavailable", f"SQLite store failed: {exc}")
        _settle(batch, failed)
        if cancelled:
            raise asyncio.CancelledError

    async def _commit_on_committer(self, db: sqlite3.Connection) -> bool:
        """Commit on the committer thread; True if the loop was cancelled meanwhile (the commit still ended)."""
        if self._committer is None:
            self._committer = ThreadPoolExecutor(1, thread_name_prefix="interlock-commit")
        commit = self._committer.submit(_commit_or_roll_back, db)
        try:
            await asyncio.shield(asyncio.wrap_future(commit))
        except asyncio.CancelledError:
            # The loop is going away mid-commit: the connection, the lock and leadership are released only once
            # the commit has finished, and each caller hears how it ended.
            concurrent.futures.wait([commit])
            commit.result()  # its error, if it failed, is the batch's
            return True
        return False

    async def _file_lock_async(self, deadline: float) -> None:
        fd = self._lock_file()
        for pause in _lock_pauses():
            if _took_lock(fd, deadline):
                return
            await asyncio.sleep(pause)

    def _commit(self, batch: list[_Write[Any]], deadline: float) -> None:
        failed: StoreError | None = None
        try:
            with self._file_lock(deadline), self._connection() as db:
                if self._write_batch(db, batch):
                    _commit_or_roll_back(db)
        except StoreError as error:
            failed = error
        except sqlite3.Error as exc:
            failed = StoreError("store.unavailable", f"SQLite store failed: {exc}")
        _settle(batch, failed)

    @staticmethod
    def _write_batch(db: sqlite3.Connection, batch: list[_Write[Any]], *, begun: bool = False) -> bool:
        """BEGIN IMMEDIATE (unless `begun`) and run the batch; True when a transaction is left open to commit."""
        if not begun:
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError("store.unavailable", f"SQLite store is unavailable: {exc}") from None
        try:
            # A write alone needs no savepoint: if it fails, the whole transaction is its own to roll back.
            alone = len(batch) == 1
            for write in batch:
                if not alone:
                    db.execute("SAVEPOINT write")
                _attempt(db, write, "ROLLBACK" if alone else "ROLLBACK TO write")
                if alone and write.error is not None:
                    return False
                if not alone:
                    db.execute("RELEASE write")
        except BaseException:
            _roll_back(db)
            raise
        return True

    def close(self) -> None:
        with self._state:
            fd, self._lock_fd = self._lock_fd, None
            committer, self._committer = self._committer, None
        if committer is not None:
            committer.shutdown(wait=True)
        if fd is not None:
            os.close(fd)

    def _lock_file(self) -> int:
        if self._lock_fd is None:
            try:
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise StoreError("store.unavailable",
                                 f"cannot open the write lock {self._lock_path}: {exc}") from None
        return self._lock_fd

    def _file_unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextmanager
    def _file_lock(self, deadline: float) -> Iterator[None]:
        """The advisory lock every Interlock process takes around its write transactions (only the leader does)."""
        fd = self._lock_file()
        try:
            for pause in _lock_pauses():
                if _took_lock(fd, deadline):
                    break
                time.sleep(pause)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def _took_lock(fd: int, deadline: float) -> bool:
    """Take the write lock if it is free; False if another process holds it, `store.unavailable` past `deadline`."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        if time.monotonic() > deadline:
            raise StoreError("store.unavailable",
                             "SQLite store is busy: another process holds the write lock") from None
        return False


def _lock_pauses() -> Iterator[float]:
    """Seconds to wait between tries at the write lock: growing from 0.2 ms to 2 ms."""
    pause = 0.0002
    while True:
        yield pause
        pause = min(pause * 2, 0.002)


def _settle(batch: list[_Write[Any]], failed: StoreError | None) -> None:
    """Mark the batch's writes done; when the transaction failed, each that had no error of its own has its error."""
    for write in batch:
        if failed is not None and write.error is None:
            write.result, write.error = None, failed
        write.done = True


def _answer(queued: list[tuple[_Write[Any], asyncio.Future[Any]]]) -> None:
    """Give each waiting caller its write's result or error; a write that never finished is unavailable."""
    for write, done in queued:
        if done.done():
            continue
        if write.error is not None:
            done.set_exception(write.error)
        elif write.done:
            done.set_result(write.result)
        else:
            done.set_exception(StoreError("store.unavailable", "SQLite store failed before this write was committed"))


async def _begin_without_waiting(db: sqlite3.Connection, deadline: float, *, busy_ms: int) -> None:
    """BEGIN IMMEDIATE without SQLite's busy handler, which would stop the event loop: while another program
    holds the database's write lock (every Interlock writer takes the file lock first, so only another
    program can), retry after a pause, until `deadline`. The connection's own busy timeout, `busy_ms`, is
    restored after."""
    db.execute("PRAGMA busy_timeout = 0")
    try:
        for pause in _lock_pauses():
            try:
                db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise StoreError("store.unavailable", f"SQLite store is unavailable: {exc}") from None
            await asyncio.sleep(pause)
    finally:
        db.execute(f"PRAGMA busy_timeout = {busy_ms:d}")


def _commit_or_roll_back(db: sqlite3.Connection) -> None:
    try:
        db.execute("COMMIT")
    except BaseException:
        _roll_back(db)
        raise


def _roll_back(db: sqlite3.Connection) -> None:
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def _attempt(db: sqlite3.Connection, write: _Write[Any], rollback: str) -> None:
    """Run one write; a failure of its own is rolled back (`rollback`) and kept for its caller alone."""
    try:
        write.result = write.work(db)
    except sqlite3.IntegrityError as exc:  # this write's rows, not the connection
        db.execute(rollback)
        write.error = StoreError("store.unavailable", f"SQLite store failed: {exc}")
    except sqlite3.Error:
        raise  # the connection or the file failed: nothing in this batch is kept
    except BaseException as error:  # noqa: BLE001 - handed to its own caller, the others go on
        db.execute(rollback)
        write.error = error
