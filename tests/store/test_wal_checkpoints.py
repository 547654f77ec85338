"""A server's SQLite store checkpoints its WAL from a thread of its own, not in the commits of its writes."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from interlock.store.sqlite import SqliteStore
from interlock.store.sqlite_wal import BACKSTOP_PAGES

from .test_group_commit import _insert


def test_the_wal_goes_back_into_the_database_from_the_background_and_commits_only_keep_a_backstop(
        tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "interlock.db")
    store.start_housekeeping()
    try:
        with store._connection() as db:
            assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES
        before = os.path.getsize(store.path)
        for n in range(300):  # a few hundred WAL pages: far below the backstop, so no commit checkpoints
            store._writer.run(_insert(f"r{n:03d}"))
        deadline = time.monotonic() + 10
        while os.path.getsize(store.path) <= before:  # the rows reach the database file only by a checkpoint
            assert time.monotonic() < deadline, "the background thread did not checkpoint the WAL"
            time.sleep(0.05)
    finally:
        store.close()


def test_housekeeping_starts_once_and_stops_with_the_store(tmp_path: Path) -> None:
    def checkpointers() -> int:
        return sum(t.name == "interlock-wal-checkpoint" for t in threading.enumerate())

    before = checkpointers()
    store = SqliteStore(tmp_path / "interlock.db")
    store.start_housekeeping()
    store.start_housekeeping()
    assert checkpointers() == before + 1
    store.close()
    assert checkpointers() == before
