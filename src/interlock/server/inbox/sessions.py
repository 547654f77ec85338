"""Approver web sessions: random ids held in memory, idle expiry, and a CSRF token per session."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

IDLE_TIMEOUT = datetime.timedelta(minutes=30)


def _key(session_id: str) -> str:
    # Looked up by a hash of the id, so neither the dict nor its timing holds the cookie's value.
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass
class Session:
    """One signed-in approver: which credential (by its token's hash, never the token) and the form token."""

    credential_hash: str
    subject_id: str
    csrf_token: str
    last_seen: datetime.datetime
    flash: str = ""


@dataclass
class SessionBook:
    """Sessions of this process only: a restart signs everyone out, and several workers do not share them."""

    clock: Callable[[], datetime.datetime]
    idle_timeout: datetime.timedelta = IDLE_TIMEOUT
    _sessions: dict[str, Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, credential_hash: str, subject_id: str) -> str:
        """A new session (always a new id: no fixation); returns the id for the cookie."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            self._sessions = {k: s for k, s in self._sessions.items() if not self._idle(s, now)}
            self._sessions[_key(session_id)] = Session(credential_hash, subject_id, secrets.token_urlsafe(32), now)
        return session_id

    def find(self, session_id: str | None) -> Session | None:
        """The live session for a cookie value, its idle timer restarted; None if unknown or idle too long."""
        if not session_id:
            return None
        now = self.clock()
        with self._lock:
            session = self._sessions.get(_key(session_id))
            if session is None:
                return None
            if self._idle(session, now):
                del self._sessions[_key(session_id)]
                return None
            session.last_seen = now
            return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(_key(session_id), None)

    def _idle(self, session: Session, now: datetime.datetime) -> bool:
        return now - session.last_seen >= self.idle_timeout


def same_token(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a CSRF token; a missing one never matches."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())
