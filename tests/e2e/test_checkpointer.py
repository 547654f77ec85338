"""The server's checkpointer: signs while the log grows, once more at shutdown, and never signs a contradiction."""

from __future__ import annotations

import logging
import sqlite3
import time

import pytest

from conftest import ceo_payment
from interlock.checkpointer import Checkpointer
from interlock.gate import Gate
from interlock.store.sqlite import SqliteStore


def _sizes(gate: Gate) -> list[int]:
    return [c.size for c in gate.store.checkpoints()]


def test_it_signs_as_the_log_grows_and_at_close(gate: Gate) -> None:
    checkpointer = Checkpointer(gate.ledger, every=0.02)
    checkpointer.start()
    try:
        gate.submit(ceo_payment(amount=10))
        deadline = time.monotonic() + 10
        while _sizes(gate) != [1] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _sizes(gate) == [1]
        gate.submit(ceo_payment(amount=11))
    finally:
        checkpointer.close()
    assert _sizes(gate)[-1] == 2, "the last entries are signed at shutdown"
    assert gate.verify_audit().ok


def test_a_refusal_is_logged_and_nothing_is_signed(gate: Gate, caplog: pytest.LogCaptureFixture) -> None:
    gate.submit(ceo_payment(amount=10))
    gate.submit(ceo_payment(amount=11))
    gate.ledger.checkpoint()
    assert isinstance(gate.store, SqliteStore)
    db = sqlite3.connect(gate.store.path)
    db.execute("DELETE FROM audit WHERE idx = 1")
    db.commit()
    db.close()

    with caplog.at_level(logging.ERROR, logger="interlock.checkpointer"):
        Checkpointer(gate.ledger, every=60).close()

    assert "audit.inconsistent" in caplog.text
    assert _sizes(gate) == [2]
