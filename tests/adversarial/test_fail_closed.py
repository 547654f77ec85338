"""INVARIANT 5 — fail closed: when the gate cannot know, the answer is no, with a reason, and nothing changes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from conftest import FixedClock, ceo_payment, code_of, spec_of
from interlock.core.errors import GrantError, PolicyError, StoreError
from interlock.core.policy import Policy, load_policy
from interlock.gate import Gate
from interlock.home import Home
from interlock.keys import KeyRing
from interlock.store.sqlite import SqliteStore

from .grant_flow import approved_ceo_payment, audit_log


@pytest.fixture
def impatient_gate(tmp_path: Path, seed_policy: Policy, clock: FixedClock) -> Iterator[Gate]:
    """A gate whose store waits only 50 ms for a lock, so a held lock shows as an outage at once."""
    store = SqliteStore(tmp_path / "interlock.db", busy_timeout_ms=50)
    yield Gate(store, seed_policy, KeyRing.generate(), clock=clock)
    store.close()


@contextmanager
def locked(path: str) -> Iterator[None]:
    """Another process-like writer holds the database's write lock."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


@contextmanager
def audit_writes_fail(path: str) -> Iterator[None]:
    """Every insert into the audit log fails inside the database, as a full disk or a bad sector would."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TRIGGER audit_write_fails BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    try:
        yield
    finally:
        other.execute("DROP TRIGGER audit_write_fails")
        other.close()


def rows(path: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read directly from the file."""
    raw = sqlite3.connect(path)
    try:
        return {table: raw.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
                for table in ("requests", "approvals", "grants", "audit")}
    finally:
        raw.close()


def test_an_unavailable_store_refuses_submit_approve_and_consume(impatient_gate: Gate) -> None:
    gate = impatient_gate
    path = gate.store.path
    pending = gate.submit(ceo_payment()).request_id
    code = code_of(gate, pending)
    gate.decide_approval(pending, "user:alice", "email", binding_code=code)
    document, approved = approved_ceo_payment(gate)
    before = rows(path)

    with locked(path):
        attempts = {
            "submit": lambda: gate.submit(ceo_payment()),
            "approve": lambda: gate.decide_approval(pending, "user:bob", "phone", binding_code=code),
            "reject": lambda: gate.decide_approval(pending, "user:carol", "phone", reject=True),
            "consume": lambda: gate.consume(approved.grant, "payments-service", spec_of(document)),
        }
        for name, attempt in attempts.items():
            with pytest.raises(StoreError) as refused:
                attempt()
            assert refused.value.code == "store.unavailable", name

    assert rows(path) == before
    # The outage is over: the same calls now go through, so the refusals above did not spend anything.
    assert gate.decide_approval(pending, "user:bob", "phone", binding_code=code).outcome == "approved"
    assert gate.consume(approved.grant, "payments-service", spec_of(document)).request_id == approved.request_id


def test_a_failing_audit_write_refuses_and_rolls_back_the_state_change(gate: Gate) -> None:
    path = gate.store.path
    pending = gate.submit(ceo_payment()).request_id
    code = code_of(gate, pending)
    document, approved = approved_ceo_payment(gate)
    before = rows(path)

    with audit_writes_fail(path):
        for attempt in (
            lambda: gate.submit(ceo_payment(amount=10)),
            lambda: gate.decide_approval(pending, "user:alice", "email", binding_code=code),
            lambda: gate.consume(approved.grant, "payments-service", spec_of(document)),
        ):
            with pytest.raises(StoreError) as refused:
                attempt()
            assert refused.value.code == "store.unavailable"

    assert rows(path) == before  # no request row, no approval, no consumed grant without its audit entry
    assert gate.consume(approved.grant, "payments-service", spec_of(document)).request_id == approved.request_id
    assert gate.verify_audit().ok


def test_a_refusal_stands_when_it_cannot_be_written_down(gate: Gate) -> None:
    document, approved = approved_ceo_payment(gate)
    path = gate.store.path

    with audit_writes_fail(path):
        with pytest.raises(GrantError) as refused:
            gate.consume(approved.grant, "deploy-executor", spec_of(document))

    assert refused.value.code == "grant.wrong_executor"
    assert not gate.status(approved.request_id).consumed


def test_a_store_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    not_a_database = tmp_path / "interlock.db"
    not_a_database.write_bytes(b"this is not an SQLite file" * 100)

    for path in (tmp_path / "missing-directory" / "interlock.db", not_a_database, tmp_path):
        with pytest.raises(StoreError) as refused:
            SqliteStore(path)
        assert refused.value.code == "store.unavailable", path


def test_an_unreadable_policy_opens_no_gate(tmp_path: Path) -> None:
    home = Home(tmp_path, tmp_path / "policy.yaml")
    with pytest.raises(PolicyError) as missing:
        home.open_gate()
    assert missing.value.code == "policy.invalid"

    home.policy_path.write_text("version: 1\nrules:\n  - id: broken\n    action: [\n")
    with pytest.raises(PolicyError) as broken:
        home.open_gate()
    assert broken.value.code == "policy.invalid"


@pytest.mark.parametrize("action", ["payments.wire", "payments", "totally.unknown"])
def test_an_action_no_rule_covers_is_denied(gate: Gate, action: str) -> None:
    document = {**ceo_payment(), "action": action}

    state = gate.submit(document)

    assert (state.outcome, state.reasons, state.grant) == ("denied", ("policy.no_matching_rule",), None)


def test_a_rule_set_where_no_condition_matches_denies(gate: Gate) -> None:
    gate.policy = load_policy(
        "version: 1\nexecutors: {'payments.*': payments-service}\nrules:\n"
        "  - id: only-tiny\n    action: payments.transfer\n    when: 'params.amount < 1'\n    effect: allow\n"
    )

    state = gate.submit(ceo_payment())

    assert (state.outcome, state.reasons, state.grant) == ("denied", ("policy.no_matching_rule",), None)


ERRORING = """
version: 1
executors: {"payments.*": payments-service}
rules:
  - id: allow-transfers
    action: payments.transfer
    effect: allow
  - id: allow-finance-team
    action: payments.transfer
    when: "principal.attributes.team == 'finance'"
    effect: allow
  - id: deny-huge
    action: payments.transfer
    when: "params.amount > 100000"
    effect: deny
"""


def _finance_agent(**params: Any) -> dict[str, Any]:
    document = ceo_payment(**params)
    document["principal"]["attributes"]["team"] = "finance"
    return document


@pytest.mark.parametrize("document, failing_rule", [
    (ceo_payment(), "allow-finance-team"),  # the principal has no `team` attribute: an allow rule errors
    (_finance_agent(amount="a lot"), "deny-huge"),  # a string compared to a number: a deny rule errors
], ids=["allow rule errors", "deny rule errors"])
def test_a_condition_that_errors_denies_even_when_another_rule_allows(
    gate: Gate, document: dict[str, Any], failing_rule: str
) -> None:
    gate.policy = load_policy(ERRORING)
    assert gate.submit(_finance_agent(amount=10)).outcome == "allowed"  # the policy does allow when nothing errors

    state = gate.submit(document)

    assert (state.outcome, state.reasons, state.grant) == ("denied", ("policy.condition_error",), None)
    decided = [e for e in audit_log(gate) if e["kind"] == "request.decided"]
    assert decided[-1]["data"]["decision"]["matched_rules"] == [failing_rule]


NO_EXECUTOR = """
version: 1
groups: {finance-approvers: ["user:alice", "user:bob"]}
rules:
  - id: allow-transfers
    action: payments.transfer
    when: "params.amount < 100000"
    effect: allow
  - id: big-transfers
    action: payments.transfer
    when: "params.amount >= 100000"
    effect: require_approval
    approval: {approvers: ["group:finance-approvers"], quorum: 1}
"""


@pytest.mark.parametrize("amount", [48000, 480000])
def test_an_action_without_an_executor_is_denied_not_granted(gate: Gate, amount: int) -> None:
    gate.policy = load_policy(NO_EXECUTOR)

    state = gate.submit(ceo_payment(amount=amount))

    assert (state.outcome, state.reasons, state.grant) == ("denied", ("policy.no_executor",), None)
    assert [e["data"].get("grant") for e in audit_log(gate)] == [None]


def test_naming_the_executor_in_the_request_is_enough(gate: Gate) -> None:
    # The counterpart of the test above: the denial really is about the missing executor.
    gate.policy = load_policy(NO_EXECUTOR)

    state = gate.submit({**ceo_payment(), "executor": "payments-service"})

    assert state.outcome == "allowed" and state.grant
