"""The witness's record of what it cosigned, per log: a SQLite file written durably (`synchronous=FULL`).

tlog-witness asks that checking the old size and storing the new checkpoint be one atomic step, persisted
before the cosignature is returned: each `advance` is one `BEGIN IMMEDIATE` transaction, so two requests
for one log never both pass the same check.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from interlock.audit.witness import Witnessed
from interlock.core.errors import StoreError

_SCHEMA = """CREATE TABLE IF NOT EXISTS witnessed (
    origin TEXT PRIMARY KEY,
    size   INTEGER NOT NULL CHECK (size >= 0),
    root   BLOB NOT NULL CHECK (length(root) = 32)
) STRICT"""


class SqliteWitnessState:
    def __init__(self, path: Path) -> None:
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError("store.unavailable", f"cannot open the witness state {path}: {exc}") from None
        self._lock = threading.Lock()

    def advance(self, origin: str, step: Callable[[Witnessed | None], Witnessed]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    row = self._db.execute("SELECT size, root FROM witnessed WHERE origin = ?", (origin,)).fetchone()
                    new = step(Witnessed(row[0], row[1]) if row else None)
                    self._db.execute("INSERT INTO witnessed (origin, size, root) VALUES (?, ?, ?) ON CONFLICT (origin)"
                                     " DO UPDATE SET size = excluded.size, root = excluded.root",
                                     (origin, new.size, new.root))
                    self._db.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError("store.unavailable", f"the witness state failed: {exc}") from None

    def latest(self, origin: str) -> Witnessed | None:
        with self._lock:
            row = self._db.execute("SELECT size, root FROM witnessed WHERE origin = ?", (origin,)).fetchone()
        return Witnessed(row[0], row[1]) if row else None

    def close(self) -> None:
        self._db.close()
