"""What only the SQLite store promises: WAL, fsync on every commit, idempotent migrations, many threads."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from interlock.store.sqlite import SqliteStore, _migrations

from .test_store_contract import T0, action_request, create


def _pragmas(db: sqlite3.Connection) -> tuple[str, int, int]:
    return (db.execute("PRAGMA journal_mode").fetchone()[0], db.execute("PRAGMA synchronous").fetchone()[0],
            db.execute("PRAGMA foreign_keys").fetchone()[0])


def test_every_connection_of_the_store_is_wal_with_full_sync(store: SqliteStore) -> None:
    # synchronous is per connection, and the pool opens a second one while the first is in use.
    with store._connection() as first, store._connection() as second:
        assert first is not second
        seen = [_pragmas(first), _pragmas(second)]

    # synchronous=FULL is 2: a consumed grant or an approval survives power loss.
    assert seen == [("wal", 2, 1), ("wal", 2, 1)]


def test_idle_connections_are_reused_not_accumulated(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "interlock.db", max_idle=2)
    try:
        workers = [threading.Thread(target=lambda: list(store.audit_entries())) for _ in range(20)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert len(store._idle) <= 2
    finally:
        store.close()


def test_migrations_run_once_however_often_the_file_is_opened(tmp_path: Path) -> None:
    path = tmp_path / "interlock.db"
    first = SqliteStore(path)
    create(first, "req-1", with_grant="grt-1")
    second = SqliteStore(path)  # while the first is still open
    first.close()
    third = SqliteStore(path)

    try:
        assert third.get_request("req-1").grant.jti == "grt-1"
        assert second.get_request("req-1").created_at == T0
        raw = sqlite3.connect(path)
        latest = max(version for version, _ in _migrations())
        assert raw.execute("PRAGMA user_version").fetchone()[0] == latest
        tables = [row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        assert tables == ["approvals", "audit", "audit_checkpoints", "audit_log", "audit_nodes", "break_glass_reviews",
                          "break_glass_signoffs", "credentials", "grants", "inbox_sessions", "requests"]
        raw.close()
    finally:
        second.close()
        third.close()


def test_approvals_recorded_before_the_auth_column_read_as_local(tmp_path: Path) -> None:
    path = tmp_path / "interlock.db"
    old = sqlite3.connect(path)
    for version, script in _migrations():
        if version < 3:
            old.executescript(script)
    old.execute("PRAGMA user_version = 2")
    old.execute("INSERT INTO requests VALUES ('req-1', 'agent:a', 'x.y', 'd', ?, 'pending_approval', '{}', 0, NULL)",
                (action_request().model_dump_json(),))
    old.execute("INSERT INTO approvals (id, request_id, approver_id, channel, verdict, comment, at)"
                " VALUES ('apr-1', 'req-1', 'user:alice', 'email', 'approve', '', 0)")
    old.commit()
    old.close()

    store = SqliteStore(path)
    try:
        assert [a.auth for a in store.get_request("req-1").approvals] == ["local"]
    finally:
        store.close()


def test_close_releases_connections_opened_by_other_threads(store: SqliteStore) -> None:
    workers = [threading.Thread(target=lambda: list(store.audit_entries())) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    store.close()

    # Every connection is closed: the file can be locked exclusively by somebody else at once.
    other = sqlite3.connect(store.path, timeout=0)
    other.execute("PRAGMA journal_mode=DELETE")
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    other.close()
