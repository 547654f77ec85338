"""INVARIANT 6 (Merkle log, signed checkpoints) — editing, deleting, moving, rewriting or truncating the audit
log in the database is detected and named."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import SEED, FixedClock, ceo_payment, code_of, spec_of
from interlock.audit.merkle import leaf_hash
from interlock.core.errors import ApprovalError, AuditError
from interlock.gate import Gate
from interlock.home import Home


@pytest.fixture
def home(tmp_path: Path, clock: FixedClock) -> Iterator[Home]:
    """A data home after a demo-like day: an approved payment run, a refused approval, a small payment run."""
    home = Home(tmp_path / "home", tmp_path / "home" / "policy.yaml")
    home.path.mkdir()
    shutil.copyfile(SEED / "policy.yaml", home.policy_path)
    gate = home.open_gate()
    gate.clock = clock
    try:
        small = ceo_payment(amount=200, recipient="DE89370400440532013000")
        allowed = gate.submit(small)
        gate.report(gate.consume(allowed.grant, "payments-service", spec_of(small)).jti, True)
        clock.advance(minutes=1)
        document = ceo_payment()
        request_id = gate.submit(document).request_id
        with pytest.raises(ApprovalError):
            gate.decide_approval(request_id, "user:carol", "chat", binding_code=code_of(gate, request_id))
        gate.decide_approval(request_id, "user:alice", "email", binding_code=code_of(gate, request_id))
        grant = gate.decide_approval(request_id, "user:bob", "phone", binding_code=code_of(gate, request_id)).grant
        clock.advance(seconds=30)
        gate.report(gate.consume(grant, "payments-service", spec_of(document)).jti, True, "paid")
        gate.ledger.checkpoint()
        assert gate.verify_audit().ok
    finally:
        gate.store.close()
    yield home


@contextmanager
def raw(home: Home) -> Iterator[sqlite3.Connection]:
    """The database file opened directly, as an attacker with write access to it would."""
    db = sqlite3.connect(home.store_path, isolation_level=None)
    try:
        yield db
    finally:
        db.close()


def entry_count(home: Home) -> int:
    with raw(home) as db:
        return db.execute("SELECT count(*) FROM audit").fetchone()[0]


def index_of(home: Home, kind: str, containing: bytes = b"", *, last: bool = False) -> int:
    """The index of the first (or last) entry of `kind` whose leaf contains `containing`."""
    with raw(home) as db:
        found = [idx for idx, leaf in db.execute("SELECT idx, leaf FROM audit ORDER BY idx")
                 if json.loads(leaf)["kind"] == kind and containing in leaf]
    assert found, f"no `{kind}` entry"
    return found[-1] if last else found[0]


Findings = set[tuple[int, str]]  # (entry index, what verification says happened to it)
_WHAT = {"content was edited": "edited", "entry moved": "moved", "missing (deleted)": "missing",
         "(rewritten)": "rewritten", "(truncated, or an older copy restored)": "truncated"}


def findings(problems: list[str] | tuple[str, ...]) -> Findings:
    """Each problem as (the entry it names, what happened); fails on a problem that names no entry."""
    found = set()
    for problem in problems:
        match = re.match(r"(?:entry|checkpoint) (\d+): (.*)$", problem)
        assert match, problem
        (what,) = [word for phrase, word in _WHAT.items() if phrase in match.group(2)]
        found.add((int(match.group(1)), what))
    return found


def edit_amount(home: Home) -> Findings:
    """Rewrite the submitted amount in place: 48000 becomes 4800."""
    target = index_of(home, "request.decided", b'"amount":48000')
    with raw(home) as db:
        (leaf,) = db.execute("SELECT leaf FROM audit WHERE idx = ?", (target,)).fetchone()
        edited = bytes(leaf).replace(b'"amount":48000', b'"amount":4800')
        assert edited != leaf
        db.execute("UPDATE audit SET leaf = ? WHERE idx = ?", (edited, target))
    return {(target, "edited"), (entry_count(home), "rewritten")}


def edit_and_rehash(home: Home) -> Findings:
    """Erase a refused approval's reason and recompute its leaf hash, as a careful attacker would."""
    target = index_of(home, "approval.refused")
    with raw(home) as db:
        (leaf,) = db.execute("SELECT leaf FROM audit WHERE idx = ?", (target,)).fetchone()
        edited = bytes(leaf).replace(b"approval.same_channel", b"approval.ok_channel")
        assert edited != leaf
        db.execute("UPDATE audit SET leaf = ?, leaf_hash = ? WHERE idx = ?", (edited, leaf_hash(edited), target))
    return {(entry_count(home), "rewritten")}


def delete_consumption(home: Home) -> Findings:
    """Remove the record that the CEO payment's grant was consumed."""
    target = index_of(home, "grant.consumed", last=True)
    size = entry_count(home)
    with raw(home) as db:
        db.execute("DELETE FROM audit WHERE idx = ?", (target,))
    return {(target, "missing"), (size, "truncated")}


def swap_rows(home: Home) -> Findings:
    """Exchange the whole contents of two rows, keeping their indexes: the log now tells events out of order."""
    first = index_of(home, "request.decided", b'"amount":48000')
    second = index_of(home, "approval.approved")
    assert first + 1 < second < entry_count(home) - 1
    with raw(home) as db:
        a = db.execute("SELECT leaf, leaf_hash FROM audit WHERE idx = ?", (first,)).fetchone()
        b = db.execute("SELECT leaf, leaf_hash FROM audit WHERE idx = ?", (second,)).fetchone()
        db.execute("UPDATE audit SET leaf = ?, leaf_hash = ? WHERE idx = ?", (*b, first))
        db.execute("UPDATE audit SET leaf = ?, leaf_hash = ? WHERE idx = ?", (*a, second))
    # Each moved entry says where it came from, and the tree is no longer the one the checkpoint signed.
    return {(first, "moved"), (second, "moved"), (entry_count(home), "rewritten")}


def rewrite_everything(home: Home) -> Findings:
    """Edit an amount and recompute every hash in the database, as an attacker without the log key could."""
    with raw(home) as db:
        for idx, leaf in db.execute("SELECT idx, leaf FROM audit ORDER BY idx").fetchall():
            leaf = bytes(leaf).replace(b'"amount":48000', b'"amount":4800')
            db.execute("UPDATE audit SET leaf = ?, leaf_hash = ? WHERE idx = ?", (leaf, leaf_hash(leaf), idx))
        db.execute("DELETE FROM audit_nodes")
        db.execute("UPDATE audit_log SET tree_size = 0")
    return {(entry_count(home), "rewritten")}


def truncate_tail(home: Home) -> Findings:
    """Cut the last entry off, as a log restored from a backup taken just before it would be."""
    size = entry_count(home)
    with raw(home) as db:
        db.execute("DELETE FROM audit WHERE idx = ?", (size - 1,))
    return {(size, "truncated")}


TAMPERS: dict[str, Callable[[Home], Findings]] = {
    "leaf edited": edit_amount,
    "leaf edited and rehashed": edit_and_rehash,
    "row deleted": delete_consumption,
    "rows swapped": swap_rows,
    "every hash recomputed": rewrite_everything,
    "tail truncated": truncate_tail,
}


def verify_with_gate(home: Home) -> tuple[bool, tuple[str, ...]]:
    gate: Gate = home.open_gate()
    try:
        result = gate.verify_audit()
    finally:
        gate.store.close()
    return result.ok, result.problems


def verify_with_cli(home: Home) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "interlock.cli", "audit", "verify", "--home", str(home.path)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_tampering_is_detected_and_names_the_entry(home: Home, tamper: str) -> None:
    expected = TAMPERS[tamper](home)

    ok, problems = verify_with_gate(home)

    assert not ok
    assert findings(problems) == expected, problems


def test_the_cli_passes_an_untouched_log(home: Home) -> None:
    done = verify_with_cli(home)

    assert done.returncode == 0, done.stdout + done.stderr
    body = json.loads(done.stdout)
    assert body["ok"] is True and body["problems"] == []
    assert body["entries"] == entry_count(home)


@pytest.mark.parametrize("tamper", ["leaf edited", "row deleted", "rows swapped"])
def test_the_cli_fails_a_tampered_log_and_names_the_entry(home: Home, tamper: str) -> None:
    expected = TAMPERS[tamper](home)

    done = verify_with_cli(home)

    assert done.returncode == 1, done.stdout + done.stderr
    body = json.loads(done.stdout)
    assert body["ok"] is False
    assert findings(body["problems"]) == expected


@pytest.mark.parametrize("tamper", ["every hash recomputed", "tail truncated"])
def test_a_node_refuses_to_sign_a_checkpoint_that_contradicts_its_last_one(home: Home, tamper: str) -> None:
    TAMPERS[tamper](home)
    gate = home.open_gate()
    try:
        gate.submit(ceo_payment(amount=10, recipient="DE89370400440532013000"))
        before = gate.store.checkpoints()
        with pytest.raises(AuditError) as refused:
            gate.ledger.checkpoint()
        assert refused.value.code == "audit.inconsistent"
        assert gate.store.checkpoints() == before
    finally:
        gate.store.close()


def test_a_rehashed_edit_does_not_reach_the_next_checkpoint(home: Home) -> None:
    # The tree's stored nodes keep what the checkpoint signed: the next checkpoint extends the true
    # history, and verification still names the edited entry against both.
    expected = edit_and_rehash(home)
    gate = home.open_gate()
    try:
        gate.submit(ceo_payment(amount=10, recipient="DE89370400440532013000"))
        signed = gate.ledger.checkpoint()
        result = gate.verify_audit()
    finally:
        gate.store.close()
    assert signed is not None and signed.size == entry_count(home)
    assert findings(result.problems) == {*expected, (signed.size, "rewritten")}


def test_a_restored_backup_fails_against_a_checkpoint_kept_elsewhere(home: Home, tmp_path: Path) -> None:
    backup = tmp_path / "backup.db"
    with raw(home) as db:
        db.execute("VACUUM INTO ?", (str(backup),))
    gate = home.open_gate()
    try:
        gate.submit(ceo_payment(amount=10, recipient="DE89370400440532013000"))
        kept = tmp_path / "seen-checkpoint.txt"
        kept.write_text(gate.ledger.checkpoint().note)  # e.g. a witness's copy
    finally:
        gate.store.close()
    shutil.copyfile(backup, home.store_path)  # the database is rolled back, its own checkpoints with it
    for suffix in ("-wal", "-shm"):
        Path(str(home.store_path) + suffix).unlink(missing_ok=True)

    assert verify_with_cli(home).returncode == 0, "on its own the restored log is consistent"
    done = subprocess.run([sys.executable, "-m", "interlock.cli", "audit", "verify", "--home", str(home.path),
                           "--since", str(kept)], capture_output=True, text=True, timeout=60)

    assert done.returncode == 1, done.stdout + done.stderr
    assert findings(json.loads(done.stdout)["problems"]) == {(entry_count(home) + 1, "truncated")}
