"""Break-glass: one named, independent person proceeds alone; recorded, alerted, and reviewed by two others."""

from __future__ import annotations

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


@pytest.fixture
def bg_gate(gate: Gate) -> Gate:
    gate.policy = load_policy(SEED_POLICY + BREAK_GLASS)
    return gate


def pending(gate: Gate) -> tuple[dict[str, Any], str]:
    document = ceo_payment()
    state = gate.submit(document)
    assert state.outcome == "pending_approval"
    return document, state.request_id


def test_a_named_person_proceeds_alone_and_the_grant_is_consumable_once(bg_gate: Gate) -> None:
    alerts: list[tuple[str, str, str]] = []
    bg_gate.on_break_glass = lambda state, request, review: alerts.append(
        (state.request_id, request.action, review.used_by))
    document, request_id = pending(bg_gate)

    state = bg_gate.break_glass(request_id, "user:grace", "phone", WHY)

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
    _, request_id = pending(bg_gate)
    bg_gate.break_glass(request_id, "user:heidi", "phone", WHY)
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
    _, request_id = pending(gate)
    with pytest.raises(ApprovalError) as refused:
        gate.break_glass(request_id, person, "phone", WHY)
    assert refused.value.code == "approval.break_glass_not_allowed"
    assert gate.status(request_id).outcome == "pending_approval" and gate.open_reviews() == []
    assert audit_log(gate)[-1]["kind"] == "break_glass.refused"


@pytest.mark.parametrize("person", ["agent:finance-assistant", "user:ceo"])
def test_the_requester_and_its_delegators_are_refused_even_when_named(bg_gate: Gate, person: str) -> None:
    _, request_id = pending(bg_gate)
    with pytest.raises(ApprovalError) as refused:
        bg_gate.break_glass(request_id, person, "phone", WHY)
    assert refused.value.code == "approval.not_independent"
    assert bg_gate.status(request_id).grant is None


@pytest.mark.parametrize("justification", ["", "   ", "x" * 4097])
def test_a_justification_is_required(bg_gate: Gate, justification: str) -> None:
    _, request_id = pending(bg_gate)
    with pytest.raises(RequestError) as refused:
        bg_gate.break_glass(request_id, "user:grace", "phone", justification)
    assert refused.value.code == "input.invalid"
    assert bg_gate.status(request_id).outcome == "pending_approval"


def test_only_a_pending_request_can_be_broken_into(bg_gate: Gate) -> None:
    allowed = bg_gate.submit(ceo_payment(amount=100, recipient="DE89370400440532013000"))
    assert allowed.outcome == "allowed"
    _, request_id = pending(bg_gate)
    bg_gate.break_glass(request_id, "user:grace", "phone", WHY)
    with pytest.raises(ApprovalError) as twice:
        bg_gate.break_glass(request_id, "user:heidi", "phone", WHY)
    assert twice.value.code == "request.not_pending"
    with pytest.raises(ApprovalError) as not_pending:
        bg_gate.break_glass(allowed.request_id, "user:grace", "phone", WHY)
    assert not_pending.value.code == "request.not_pending"


def test_a_failing_alert_hook_never_affects_the_grant(bg_gate: Gate) -> None:
    def broken(*_: Any) -> None:
        raise RuntimeError("chat is down")

    bg_gate.on_break_glass = broken
    _, request_id = pending(bg_gate)
    assert bg_gate.break_glass(request_id, "user:grace", "phone", WHY).grant


def test_a_policy_naming_an_undefined_group_is_invalid_with_its_line() -> None:
    with pytest.raises(PolicyError) as invalid:
        load_policy(SEED_POLICY + BREAK_GLASS.replace("group:oncall-leads", "group:nobody"))
    assert invalid.value.code == "policy.invalid" and "nobody" in invalid.value.message
    assert invalid.value.detail["line"] == SEED_POLICY.count("\n") + 4
    with pytest.raises(PolicyError):
        load_policy(SEED_POLICY + BREAK_GLASS.replace("4h", "soon"))


# --- the post-hoc review ------------------------------------------------------------------------


def test_two_independent_reviewers_close_the_review(bg_gate: Gate) -> None:
    _, request_id = pending(bg_gate)
    bg_gate.break_glass(request_id, "user:grace", "phone", WHY)
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
    _, request_id = pending(bg_gate)
    bg_gate.break_glass(request_id, "user:grace", "phone", WHY)
    (review,) = bg_gate.open_reviews()
    assert review.due_at == clock.now.replace(hour=13)
    clock.advance(hours=3, minutes=59)
    assert bg_gate.overdue_reviews() == []
    clock.advance(minutes=1)
    assert [r.request_id for r in bg_gate.overdue_reviews()] == [request_id]
    assert bg_gate.overdue_reviews(clock.now.replace(hour=12)) == []
