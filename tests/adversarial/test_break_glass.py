"""Break-glass: one named, independent person proceeds alone; recorded, alerted, and reviewed by two others."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import jwt
import pytest

from conftest import SEED, FixedClock, ceo_payment, spec_of
from interlock.core.errors import ApprovalError, GrantError, PolicyError, RequestError
from interlock.core.policy import load_policy
from interlock.gate import Gate

from .grant_flow import audit_log

SEED_POLICY = (SEED / "policy.yaml").read_text()
BREAK_GLASS = """
break_glass:
  - id: treasury-emergency
    who: ["group:oncall-leads", "agent:finance-assistant", "user:ceo"]
    actions: ["payments.*"]
    review_within: 4h
"""
WHY = "supplier cut-off at 10:00, both finance approvers unreachable"
SENSITIVE = 'sensitive: ["payments.*", "config.apply", "access.*", "data.share*"]'


@pytest.fixture
def bg_gate(gate: Gate) -> Gate:
    gate.policy = load_policy(SEED_POLICY + BREAK_GLASS)
    return gate


def pending(gate: Gate, **params: Any) -> tuple[dict[str, Any], str, str]:
    """A pending CEO payment: the request, its id, and the binding code the requester passes on."""
    document = ceo_payment(**params)
    state = gate.submit(document)
    assert state.outcome == "pending_approval" and state.binding_code
    return document, state.request_id, state.binding_code


def test_a_named_person_proceeds_alone_and_the_grant_is_consumable_once(bg_gate: Gate) -> None:
    alerts: list[tuple[str, str, str]] = []
    bg_gate.on_break_glass = lambda state, request, review: alerts.append(
        (state.request_id, request.action, review.used_by))
    document, request_id, code = pending(bg_gate)

    state = bg_gate.break_glass(request_id, "user:grace", "phone", WHY, binding_code=code)

    assert state.outcome == "approved" and state.grant
    assert [a["break_glass"] for a in state.approvals] == [True]
    detail = jwt.decode(state.grant, options={"verify_signature": False})["authorization_details"][0]
    assert detail["break_glass"] is True and detail["break_glass_entry"] == "treasury-emergency"
    assert [a["approver"] for a in detail["approvals"]] == ["user:grace"]
    assert alerts == [(request_id, "payments.transfer", "user:grace")]
    bg_gate.consume(state.grant, "payments-service", spec_of(document))
    with pytest.raises(GrantError) as again:
        bg_gate.consume(state.grant, "payments-service", spec_of(document))
    assert again.value.code == "grant.already_used"


def test_the_use_is_audited_with_who_why_entry_and_review_due(bg_gate: Gate, clock: FixedClock) -> None:
    _, request_id, code = pending(bg_gate)
    bg_gate.break_glass(request_id, "user:heidi", "phone", WHY, binding_code=code)
    entries = [e for e in audit_log(bg_gate) if e["request_id"] == request_id]
    used = next(e for e in entries if e["kind"] == "break_glass.used")
    assert used["data"]["who"] == "user:heidi" and used["data"]["why"] == WHY
    assert used["data"]["entry"] == "treasury-emergency"
    assert used["data"]["review_due"] == (clock.now.replace(hour=13)).isoformat()
    assert entries[-1] == used and used["data"]["grant"]["jti"] == jwt.decode(
        bg_gate.status(request_id).grant or "", options={"verify_signature": False})["jti"]
    assert bg_gate.verify_audit().ok


@pytest.mark.parametrize("policy_text, person", [
    (SEED_POLICY + BREAK_GLASS, "user:alice"),  # not named
    (SEED_POLICY + BREAK_GLASS.replace('"payments.*"', '"payments.refund"'), "user:grace"),  # action not covered
    (SEED_POLICY, "user:grace"),  # no break_glass in the policy
])
def test_anyone_or_anything_not_named_is_refused(gate: Gate, policy_text: str, person: str) -> None:
    gate.policy = load_policy(policy_text)
    _, request_id, code = pending(gate)
    with pytest.raises(ApprovalError) as refused:
        gate.break_glass(request_id, person, "phone", WHY, binding_code=code)
    assert refused.value.code == "approval.break_glass_not_allowed"
    assert gate.status(request_id).outcome == "pending_approval" and gate.open_reviews() == []
    assert audit_log(gate)[-1]["kind"] == "break_glass.refused"


@pytest.mark.parametrize("person", ["agent:finance-assistant", "user:ceo"])
def test_the_requester_and_its_delegators_are_refused_even_when_named(bg_gate: Gate, person: str) -> None:
    _, request_id, code = pending(bg_gate)
    with pytest.raises(ApprovalError) as refused:
        bg_gate.break_glass(request_id, person, "phone", WHY, binding_code=code)
    assert refused.value.code == "approval.not_independent"
    assert bg_gate.status(request_id).grant is None


@pytest.mark.parametrize("justification", ["", "   ", "x" * 4097])
def test_a_justification_is_required(bg_gate: Gate, justification: str) -> None:
    _, request_id, code = pending(bg_gate)
    with pytest.raises(RequestError) as refused:
        bg_gate.break_glass(request_id, "user:grace", "phone", justification, binding_code=code)
    assert refused.value.code == "input.invalid"
    assert bg_gate.status(request_id).outcome == "pending_approval"


def test_only_a_pending_request_can_be_broken_into(bg_gate: Gate) -> None:
    allowed = bg_gate.submit(ceo_payment(amount=100, recipient="DE89370400440532013000"))
    assert allowed.outcome == "allowed"
    _, request_id, code = pending(bg_gate)
    bg_gate.break_glass(request_id, "user:grace", "phone", WHY, binding_code=code)
    with pytest.raises(ApprovalError) as twice:
        bg_gate.break_glass(request_id, "user:heidi", "phone", WHY, binding_code=code)
    assert twice.value.code == "request.not_pending"
    with pytest.raises(ApprovalError) as not_pending:
        bg_gate.break_glass(allowed.request_id, "user:grace", "phone", WHY, binding_code=code)
    assert not_pending.value.code == "request.not_pending"


def test_a_failing_alert_hook_never_affects_the_grant(bg_gate: Gate) -> None:
    def broken(*_: Any) -> None:
        raise RuntimeError("chat is down")

    bg_gate.on_break_glass = broken
    _, request_id, code = pending(bg_gate)
    assert bg_gate.break_glass(request_id, "user:grace", "phone", WHY, binding_code=code).grant


# --- the binding code: a look-alike request cannot be broken into by mistake ------------------------


@pytest.mark.parametrize("typed", [None, "", "ABC-DEF", "look-alike's"])
def test_breaking_the_glass_on_a_sensitive_action_without_its_code_is_refused_and_records_only_the_refusal(
    bg_gate: Gate, typed: str | None
) -> None:
    alerts: list[str] = []
    bg_gate.on_break_glass = lambda state, *_: alerts.append(state.request_id)
    _, request_id, _ = pending(bg_gate)
    # Submitted alongside, one digit apart: the request a hurried person is led to break the glass on.
    _, look_alike, look_alike_code = pending(bg_gate, recipient="GB33BUKB20201555555556")
    if typed == "look-alike's":
        typed = look_alike_code
    entries = len(audit_log(bg_gate))

    with pytest.raises(ApprovalError) as refused:
        bg_gate.break_glass(request_id, "user:grace", "phone", WHY, binding_code=typed)

    assert refused.value.code == "approval.binding_mismatch"
    assert "breaking the glass" in refused.value.message
    for rid in (request_id, look_alike):
        state = bg_gate.status(rid)
        assert (state.outcome, state.approvals, state.grant) == ("pending_approval", (), None)
    assert bg_gate.open_reviews() == [] and alerts == []
    new = audit_log(bg_gate)[entries:]
    assert [(e["kind"], e["request_id"], e["data"]["code"], e["data"]["who"]) for e in new] == [
        ("break_glass.refused", request_id, "approval.binding_mismatch", "user:grace")]


def test_the_right_code_typed_loosely_breaks_the_glass_on_that_request_only(bg_gate: Gate) -> None:
    _, request_id, code = pending(bg_gate)
    _, look_alike, _ = pending(bg_gate, recipient="GB33BUKB20201555555556")
    with pytest.raises(ApprovalError) as refused:
        bg_gate.break_glass(look_alike, "user:grace", "phone", WHY, binding_code=code)
    assert refused.value.code == "approval.binding_mismatch"

    state = bg_gate.break_glass(request_id, "user:grace", "phone", WHY, binding_code=code.lower().replace("-", " "))

    assert state.outcome == "approved" and state.grant
    assert bg_gate.status(look_alike).outcome == "pending_approval"


def test_a_refusal_for_another_reason_names_that_reason_not_the_code(bg_gate: Gate) -> None:
    # Checked at the same point as an approval's: after who may act, so the real reason is named.
    _, request_id, _ = pending(bg_gate)
    for person, code in [("user:ceo", "approval.not_independent"), ("user:alice", "approval.break_glass_not_allowed")]:
        with pytest.raises(ApprovalError) as refused:
            bg_gate.break_glass(request_id, person, "phone", WHY)
        assert refused.value.code == code, person


def test_a_non_sensitive_action_needs_no_code(gate: Gate) -> None:
    gate.policy = load_policy(SEED_POLICY.replace(SENSITIVE, "sensitive: []") + BREAK_GLASS)
    _, request_id, _ = pending(gate)
    assert gate.break_glass(request_id, "user:grace", "phone", WHY).outcome == "approved"


def test_a_decision_that_does_not_say_whether_it_is_sensitive_needs_the_code(
    gate: Gate, tmp_path: Path
) -> None:
    # A request decided before decisions said `sensitive` (or a row that lost it): fail closed.
    gate.policy = load_policy(SEED_POLICY.replace(SENSITIVE, "sensitive: []") + BREAK_GLASS)
    _, request_id, code = pending(gate)
    with sqlite3.connect(tmp_path / "interlock.db") as db:
        db.execute("UPDATE requests SET decision_json = json_remove(decision_json, '$.sensitive') WHERE id = ?",
                   (request_id,))
    db.close()
    with pytest.raises(ApprovalError) as refused:
        gate.break_glass(request_id, "user:grace", "phone", WHY)
    assert refused.value.code == "approval.binding_mismatch"
    assert gate.break_glass(request_id, "user:grace", "phone", WHY, binding_code=code).outcome == "approved"


def test_a_policy_naming_an_undefined_group_is_invalid_with_its_line() -> None:
    with pytest.raises(PolicyError) as invalid:
        load_policy(SEED_POLICY + BREAK_GLASS.replace("group:oncall-leads", "group:nobody"))
    assert invalid.value.code == "policy.invalid" and "nobody" in invalid.value.message
    assert invalid.value.detail["line"] == SEED_POLICY.count("\n") + 4
    with pytest.raises(PolicyError):
        load_policy(SEED_POLICY + BREAK_GLASS.replace("4h", "soon"))


# --- the post-hoc review ------------------------------------------------------------------------


def test_two_independent_reviewers_close_the_review(bg_gate: Gate) -> None:
    _, request_id, code = pending(bg_gate)
    bg_gate.break_glass(request_id, "user:grace", "phone", WHY, binding_code=code)
    for person, code in [("agent:finance-assistant", "approval.not_independent"),
                         ("user:ceo", "approval.not_independent"),
                         ("user:grace", "approval.not_independent"),
                         ("user:mallory", "approval.not_an_approver")]:
        with pytest.raises(ApprovalError) as refused:
            bg_gate.review_break_glass(request_id, person, "web")
        assert refused.value.code == code, person
    first = bg_gate.review_break_glass(request_id, "user:alice", "web", "checked the invoice")
    assert first.closed_at is None and [s.reviewer_id for s in first.signoffs] == ["user:alice"]
    with pytest.raises(ApprovalError) as twice:
        bg_gate.review_break_glass(request_id, "user:alice", "web")
    assert twice.value.code == "approval.duplicate"
    assert [r.request_id for r in bg_gate.open_reviews()] == [request_id]

    second = bg_gate.review_break_glass(request_id, "user:erin", "web")  # an approver of another group

    assert second.closed_at is not None and bg_gate.open_reviews() == []
    kinds = [e["kind"] for e in audit_log(bg_gate) if e["request_id"] == request_id]
    reviewed = [e["data"] for e in audit_log(bg_gate) if e["kind"] == "break_glass.reviewed"]
    assert kinds.count("break_glass.reviewed") == 2 and kinds[-1] == "break_glass.reviewed"
    assert "closed" not in reviewed[0]
    assert reviewed[-1]["closed"] == {"entry": "treasury-emergency", "reviewers": ["user:alice", "user:erin"]}
    with pytest.raises(ApprovalError) as closed:
        bg_gate.review_break_glass(request_id, "user:bob", "web")
    assert closed.value.code == "approval.review_not_open"


def test_an_open_review_is_overdue_after_its_due_time_and_not_before(bg_gate: Gate, clock: FixedClock) -> None:
    _, request_id, code = pending(bg_gate)
    bg_gate.break_glass(request_id, "user:grace", "phone", WHY, binding_code=code)
    (review,) = bg_gate.open_reviews()
    assert review.due_at == clock.now.replace(hour=13)
    clock.advance(hours=3, minutes=59)
    assert bg_gate.overdue_reviews() == []
    clock.advance(minutes=1)
    assert [r.request_id for r in bg_gate.overdue_reviews()] == [request_id]
    assert bg_gate.overdue_reviews(clock.now.replace(hour=12)) == []
