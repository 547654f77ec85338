"""Group commit for the SQLite store: concurrent writes share one transaction and one fsync.

Every write is a function of the connection. A writer queues its function; one thread at a time, the
leader, takes the queue, runs each function in its own SAVEPOINT inside one `BEGIN IMMEDIATE`
transaction and commits once, then wakes every writer with its own result. A function that raises rolls
back to its savepoint and only its caller sees the error; a failing commit fails
them all with `store.unavailable`, so nobody is told "done" before the fsync. Later functions in a
batch see what earlier ones wrote (a velocity limit counts them), exactly as if they had run one after
the other. Writers in other processes queue on an advisory file lock, which wakes the next at once
(SQLite's own busy handler sleeps in growing steps, which piles up under load).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

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

    def run(self, work: Work[T]) -> T:
        """Run `work(db)` in a write transaction, alone or batched with others; return once it is committed."""
        write: _Write[T] = _Write(work)
        deadline = time.monotonic() + self._timeout_s
        with self._state:
            self._queue.append(write)
            while not write.done and self._leading:
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
                with self._state:
                    self._leading = False
                    self._state.notify_all()
        if write.error is not None:
            raise write.error
        return write.result  # type: ignore[no-any-return]

    def _commit(self, batch: list[_Write[Any]], deadline: float) -> None:
        try:
            with self._file_lock(deadline), self._connection() as db:
                self._transaction(db, batch)
        except StoreError as error:
            failed = error
        except sqlite3.Error as exc:
            failed = StoreError("store.unavailable", f"SQLite store failed: {exc}")
        else:
            failed = None
        for write in batch:
            if failed is not None and write.error is None:
                write.result, write.error = None, failed
            write.done = True

    @staticmethod
    def _transaction(db: sqlite3.Connection, batch: list[_Write[Any]]) -> None:
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
                    return
                if not alone:
                    db.execute("RELEASE write")
            db.execute("COMMIT")
        except BaseException:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise

    def close(self) -> None:
        with self._state:
            fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    @contextmanager
    def _file_lock(self, deadline: float) -> Iterator[None]:
        """The advisory lock every Interlock process takes around its write transactions (only the leader does)."""
        if self._lock_fd is None:
            try:
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise StoreError("store.unavailable",
                                 f"cannot open the write lock {self._lock_path}: {exc}") from None
        fd = self._lock_fd
        try:
            pause = 0.0002
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StoreError("store.unavailable",
                                         "SQLite store is busy: another process holds the write lock") from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.002)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


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
