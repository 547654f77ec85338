"""Wake-ups across gate nodes: PostgreSQL's LISTEN/NOTIFY fires the waiters of this process on any node's change."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from interlock.notify import Notifier, Subscription
from interlock.store.postgres import CHANGES_CHANNEL, connect_options

_log = logging.getLogger(__name__)


class PostgresNotifier(Notifier):
    """A Notifier that also hears the NOTIFY each PostgresStore transaction sends when it changes a request.

    One listener thread with its own connection, started by the first subscription (a command that never
    long-polls never opens it). When the connection is lost it reconnects, and on every (re)connect wakes
    every waiter: a change that committed while nobody listened is then seen by the waiter's re-read.
    """

    def __init__(self, url: str, *, poll_seconds: float = 0.5, max_backoff_seconds: float = 5.0) -> None:
        super().__init__()
        self._url = url
        self._poll = poll_seconds
        self._max_backoff = max_backoff_seconds
        self._stop = threading.Event()
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # set while LISTEN is in force (and its waiters were woken)
        self.backend_pid: int | None = None  # the listener's server process, while connected

    @contextmanager
    def subscribe(self, request_id: str) -> Iterator[Subscription]:
        """Subscribe (from a coroutine) before reading the state, so no change falls between read and wait."""
        self._ensure_listener()
        with super().subscribe(request_id) as subscription:
            yield subscription

    def close(self) -> None:
        """Stop listening; waiters fall back to their bounded poll."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=self._poll + 5)

    def _ensure_listener(self) -> None:
        with self._start:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._listen, name="interlock-listen", daemon=True)
                self._thread.start()

    def _listen(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, **connect_options(self._url)) as conn:
                    conn.execute(f"LISTEN {CHANGES_CHANNEL}")
                    self.backend_pid = conn.info.backend_pid
                    backoff = 0.1
                    self._wake_all()
                    self.listening.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=self._poll):
                            self.changed(note.payload)
            except Exception as exc:  # noqa: BLE001 - the listener outlives any failure; waiters poll meanwhile
                if self.listening.is_set() or not isinstance(exc, psycopg.Error):
                    _log.warning("PostgreSQL listener stopped (%s); reconnecting", exc)
                self.listening.clear()
                self.backend_pid = None
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff)
        self.listening.clear()

    def _wake_all(self) -> None:
        with self._lock:
            waiting = [s for subscriptions in self._waiting.values() for s in subscriptions]
        for subscription in waiting:
            subscription.fire()
