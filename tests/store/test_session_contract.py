"""Approver web sessions in the store, the same on every store: open, touch, idle expiry, close."""

from __future__ import annotations

import datetime

from interlock.store.base import SessionRecord, Store

T0 = datetime.datetime(2026, 11, 25, 9, 0, tzinfo=datetime.UTC)
IDLE = datetime.timedelta(minutes=30)


def _session(key: str, at: datetime.datetime = T0) -> SessionRecord:
    return SessionRecord(key, "hash-of-token", "user:alice", f"csrf-{key}", at)


def test_a_session_is_found_and_its_idle_timer_restarts(any_store: Store) -> None:
    any_store.open_session(_session("k1"), T0 - IDLE)
    later = T0 + datetime.timedelta(minutes=20)
    found = any_store.touch_session("k1", later, later - IDLE)
    assert found == SessionRecord("k1", "hash-of-token", "user:alice", "csrf-k1", later)
    even_later = later + datetime.timedelta(minutes=29)
    assert any_store.touch_session("k1", even_later, even_later - IDLE) is not None


def test_an_idle_session_is_gone_and_stays_gone(any_store: Store) -> None:
    any_store.open_session(_session("k1"), T0 - IDLE)
    late = T0 + IDLE
    assert any_store.touch_session("k1", late, late - IDLE) is None
    assert any_store.touch_session("k1", T0, T0 - IDLE) is None, "dropped, not merely hidden"


def test_closing_ends_a_session_and_unknown_keys_find_nothing(any_store: Store) -> None:
    any_store.open_session(_session("k1"), T0 - IDLE)
    any_store.open_session(_session("k2"), T0 - IDLE)
    any_store.close_session("k1")
    any_store.close_session("never-opened")
    assert any_store.touch_session("k1", T0, T0 - IDLE) is None
    assert any_store.touch_session("k2", T0, T0 - IDLE) is not None
    assert any_store.touch_session("nope", T0, T0 - IDLE) is None


def test_opening_a_session_sweeps_the_idle_ones(any_store: Store) -> None:
    any_store.open_session(_session("old"), T0 - IDLE)
    later = T0 + datetime.timedelta(hours=1)
    any_store.open_session(_session("new", later), later - IDLE)
    # Even asked with an old clock, the swept session is not there any more.
    assert any_store.touch_session("old", T0, T0 - IDLE) is None
