"""Copying the SQLite store's write-ahead log back into its database file from a thread of its own.

Left to SQLite, the commit that takes the WAL past 1,000 pages does it (and fsyncs the database file), and
every write queued behind that commit waits: under load, the tail of the server's latency. A server store
instead runs a PASSIVE checkpoint every `interval` seconds from this thread, which never blocks a writer
or a reader; SQLite's own checkpoint stays as a backstop, at BACKSTOP_PAGES. Small and often is best: the
database file's fsync then competes least with the commits' (measured at 1,500 submits/s: p99 24-28 ms
every 1 s, 17-21 ms every 0.2 s, 13-14 ms every 0.05 s).
"""

from __future__ import annotations

import logging
import sqlite3
import threading

_log = logging.getLogger(__name__)

BACKSTOP_PAGES = 10_000  # about 40 MB of WAL: reached only if this thread falls behind or is not running
CHECKPOINT_INTERVAL = 0.05  # seconds


class WalCheckpointer:
    """A daemon thread that checkpoints `path` every `interval` seconds until `close()`."""

    def __init__(self, path: str, interval: float = CHECKPOINT_INTERVAL) -> None:
        self._path = path
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="interlock-wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(self._interval):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # the backstop still bounds the WAL; say so and go on
                    _log.warning("WAL checkpoint of %s failed: %s", self._path, exc)
        finally:
            db.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
