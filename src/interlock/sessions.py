"""Approver web sessions (the inbox's): random ids kept in the store (only their SHA-256), idle expiry, a CSRF
token each.

In the store, every server process and node knows every session, and a restart signs nobody out.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from interlock.store.base import SessionRecord, Store

IDLE_TIMEOUT = datetime.timedelta(minutes=30)
Session = SessionRecord


def _key(session_id: str) -> str:
    # Looked up by a hash of the id, so neither the store nor its timing holds the cookie's value.
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass
class SessionBook:
    """Sessions in `store`, ended after `idle_timeout` without a request."""

    store: Store
    clock: Callable[[], datetime.datetime]
    idle_timeout: datetime.timedelta = IDLE_TIMEOUT

    def open(self, credential_hash: str, subject_id: str) -> str:
        """A new session (always a new id: no fixation); returns the id for the cookie."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        record = SessionRecord(_key(session_id), credential_hash, subject_id, secrets.token_urlsafe(32), now)
        self.store.open_session(record, now - self.idle_timeout)
        return session_id

    def find(self, session_id: str | None) -> Session | None:
        """The live session for a cookie value, its idle timer restarted; None if unknown or idle too long."""
        if not session_id:
            return None
        now = self.clock()
        return self.store.touch_session(_key(session_id), now, now - self.idle_timeout)

    def close(self, session_id: str | None) -> None:
        if session_id:
            self.store.close_session(_key(session_id))
