"""The server's checkpointer: signs while the log grows, once more at shutdown, and never signs a contradiction."""

from __future__ import annotations

import logging
import socket
import sqlite3
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import ceo_payment
from interlock.audit.cosignature import Cosigner
from interlock.checkpointer import Checkpointer
from interlock.gate import Gate
from interlock.store.sqlite import SqliteStore
from interlock.witnessing import WitnessTarget


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


def test_a_witness_that_cannot_be_reached_is_logged_and_signing_goes_on(
        gate: Gate, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as unused:  # a port nothing listens on: connections are refused at once
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}"
    away = WitnessTarget(url, Cosigner("witness.example/w1", Ed25519PrivateKey.generate()).key)
    checkpointer = Checkpointer(gate.ledger, every=0.02, witnesses=[away])
    checkpointer.start()
    try:
        for amount in (10, 11, 12):
            gate.submit(ceo_payment(amount=amount))
            deadline = time.monotonic() + 10
            while _sizes(gate)[-1:] != [amount - 9] and time.monotonic() < deadline:
                time.sleep(0.01)
            assert _sizes(gate)[-1:] == [amount - 9]
        deadline = time.monotonic() + 10
        while "not cosigned by witness.example/w1: audit.witness_unreachable" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.01)
    finally:
        checkpointer.close()
    assert "\u2014 witness.example/w1" not in (gate.ledger.latest() or pytest.fail()).note
