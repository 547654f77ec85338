"""Which store a deployment uses: a `postgresql://` URL (INTERLOCK_STORE), or by default the SQLite file in its home."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from interlock.core.errors import StoreError
from interlock.notify import Notifier
from interlock.store.base import Store
from interlock.store.sqlite import SqliteStore

POSTGRES_SCHEMES = ("postgresql", "postgres")


def check_url(url: str) -> str:
    """`url` if it names a store Interlock can open; `store.invalid_url` otherwise (never echoing a password)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in POSTGRES_SCHEMES:
        shown = f"`{scheme}://…`" if scheme else "a value that is not a URL"
        raise StoreError("store.invalid_url", f"the store must be a postgresql:// URL (or unset, for the SQLite file"
                                              f" in the home), not {shown}")
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except ProgrammingError:
        raise StoreError("store.invalid_url", f"{redact(url)} is not a valid PostgreSQL URL") from None
    return url


def redact(url: str) -> str:
    """`url` without its password, for messages and output."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url.split("://", 1)[0] + "://…"
    if not password:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{password}@", ":***@", 1)).geturl()


def open_store(url: str | None, sqlite_path: Path) -> Store:
    """The store at `url` (migrated on open), or the SQLite file at `sqlite_path` when there is no URL."""
    if not url:
        return SqliteStore(sqlite_path)
    from interlock.store.postgres import PostgresStore

    return PostgresStore(check_url(url))


def open_notifier(url: str | None) -> Notifier:
    """Wake-ups for long-polls: across every node on PostgreSQL, within this process on SQLite."""
    if not url:
        return Notifier()
    from interlock.store.postgres_notify import PostgresNotifier

    return PostgresNotifier(check_url(url))


def migrate(url: str | None, sqlite_path: Path) -> dict[str, Any]:
    """Apply the store's pending migrations; say which store, which versions were applied, and the version now."""
    if not url:
        before = _sqlite_version(sqlite_path)
        SqliteStore(sqlite_path).close()  # migrates on open
        after = _sqlite_version(sqlite_path)
        return {"store": "sqlite", "location": str(sqlite_path), "applied": list(range(before + 1, after + 1)),
                "version": after}
    from interlock.store.postgres import apply_migrations, migrations

    applied = apply_migrations(check_url(url))
    return {"store": "postgresql", "location": redact(url), "applied": applied,
            "version": max(version for version, _, _ in migrations())}


def _sqlite_version(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(path)
        try:
            return int(db.execute("PRAGMA user_version").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise StoreError("store.unavailable", f"cannot read SQLite store {path}: {exc}") from None
