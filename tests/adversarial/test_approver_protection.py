"""Protecting approvers: binding codes on sensitive actions, rubber-stamp flags, approval strength in the grant."""

from __future__ import annotations

import jwt
import pytest

from conftest import SEED, FixedClock, ceo_payment, code_of
from interlock.core.errors import ApprovalError, RequestError
from interlock.core.policy import load_policy
from interlock.gate import Gate
from interlock.observe import Observation

from .grant_flow import audit_log

SEED_POLICY = (SEED / "policy.yaml").read_text()
SENSITIVE = 'sensitive: ["payments.*", "config.apply", "access.*", "data.share*"]'


def claims_of(grant: str) -> dict[str, object]:
    return jwt.decode(grant, options={"verify_signature": False})


# --- binding codes ------------------------------------------------------------------------------


def test_a_request_waiting_for_approval_tells_its_requester_the_code(gate: Gate) -> None:
    allowed = gate.submit(ceo_payment(amount=100, recipient="DE89370400440532013000"))
    assert allowed.outcome == "allowed"
    assert allowed.binding_code is None and "approval" not in allowed.to_json()
    pending = gate.submit(ceo_payment())
    approval = pending.to_json()["approval"]
    assert approval["binding_code"] == pending.binding_code and pending.binding_code
    assert approval["binding_code_required"] is True


@pytest.mark.parametrize("typed", [None, "", "ABC-DEF", "look-alike's"])
def test_approving_a_sensitive_action_without_its_code_is_refused_and_records_only_the_refusal(
    gate: Gate, typed: str | None
) -> None:
    request_id = gate.submit(ceo_payment()).request_id
    look_alike = gate.submit(ceo_payment(recipient="GB33BUKB20201555555556")).request_id
    if typed == "look-alike's":
        typed = code_of(gate, look_alike)
    entries = len(audit_log(gate))

    with pytest.raises(ApprovalError) as refused:
        gate.decide_approval(request_id, "user:alice", "email", binding_code=typed)

    assert refused.value.code == "approval.binding_mismatch"
    assert gate.status(request_id).approvals == () and gate.status(look_alike).approvals == ()
    new = audit_log(gate)[entries:]
    assert [(e["kind"], e["data"]["code"], e["data"]["approver"]) for e in new] == [
        ("approval.refused", "approval.binding_mismatch", "user:alice")]


def test_the_right_code_typed_loosely_approves(gate: Gate) -> None:
    request_id = gate.submit(ceo_payment()).request_id
    code = str(code_of(gate, request_id))
    gate.decide_approval(request_id, "user:alice", "email", binding_code=code.lower().replace("-", " "))
    assert gate.decide_approval(request_id, "user:bob", "phone", binding_code=code).outcome == "approved"


def test_a_rejection_needs_no_code(gate: Gate) -> None:
    request_id = gate.submit(ceo_payment()).request_id
    assert gate.decide_approval(request_id, "user:carol", "phone", reject=True).outcome == "rejected"


def test_a_refusal_for_another_reason_names_that_reason_not_the_code(gate: Gate) -> None:
    request_id = gate.submit(ceo_payment()).request_id
    with pytest.raises(ApprovalError) as refused:
        gate.decide_approval(request_id, "user:ceo", "email")
    assert refused.value.code == "approval.not_independent"


def test_a_non_sensitive_action_needs_no_code(gate: Gate) -> None:
    gate.policy = load_policy(SEED_POLICY.replace(SENSITIVE, "sensitive: []"))
    pending = gate.submit(ceo_payment())
    assert pending.binding_code and pending.to_json()["approval"]["binding_code_required"] is False
    gate.decide_approval(pending.request_id, "user:alice", "email")
    assert gate.decide_approval(pending.request_id, "user:bob", "phone").outcome == "approved"


# --- rubber stamps ------------------------------------------------------------------------------


def test_an_approval_sooner_than_min_review_is_flagged_in_the_audit_log_and_to_the_observer(
    gate: Gate, clock: FixedClock
) -> None:
    gate.policy = load_policy(SEED_POLICY.replace("expires_in: 15m", "expires_in: 15m\n      min_review: 30s", 1))
    seen: list[Observation] = []
    gate.observer = seen.append
    request_id = gate.submit(ceo_payment()).request_id
    code = code_of(gate, request_id)

    clock.advance(seconds=5)
    gate.decide_approval(request_id, "user:alice", "email", binding_code=code)
    clock.advance(seconds=25)
    state = gate.decide_approval(request_id, "user:bob", "phone", binding_code=code)

    assert state.outcome == "approved", "a rubber stamp still counts"
    approved = {e["data"]["approver"]: e["data"] for e in audit_log(gate) if e["kind"] == "approval.approved"}
    assert approved["user:alice"]["rubber_stamp"] is True
    assert "rubber_stamp" not in approved["user:bob"]
    assert [(o.operation, o.flags) for o in seen if o.operation == "approve"] == [
        ("approve", ("rubber_stamp",)), ("approve", ())]
    assert {a["approver"]: a["rubber_stamp"] for a in state.approvals} == {"user:alice": True, "user:bob": False}


def test_without_min_review_nothing_is_a_rubber_stamp(gate: Gate) -> None:
    seen: list[Observation] = []
    gate.observer = seen.append
    request_id = gate.submit(ceo_payment()).request_id
    gate.decide_approval(request_id, "user:alice", "email", binding_code=code_of(gate, request_id))
    assert [o.flags for o in seen if o.operation == "approve"] == [()]
    assert not any("rubber_stamp" in e["data"] for e in audit_log(gate))


# --- approval strength in the grant -------------------------------------------------------------


def test_the_grant_names_each_approvals_channel_and_authentication(gate: Gate) -> None:
    request_id = gate.submit(ceo_payment()).request_id
    code = code_of(gate, request_id)
    gate.decide_approval(request_id, "user:alice", "email", binding_code=code, auth="session")
    state = gate.decide_approval(request_id, "user:bob", "phone", binding_code=code)  # in-process: `local`

    assert state.grant is not None
    details = claims_of(state.grant)["authorization_details"][0]  # type: ignore[index]
    ids = {a["approver"]: a["id"] for a in state.approvals}
    assert sorted(details["approvals"], key=lambda a: a["approver"]) == [
        {"id": ids["user:alice"], "approver": "user:alice", "channel": "email", "auth": "session"},
        {"id": ids["user:bob"], "approver": "user:bob", "channel": "phone", "auth": "local"},
    ]
    consumed = gate.consume(state.grant, "payments-service",
                            {"action": "payments.transfer", "resource": "account:treasury",
                             "params": ceo_payment()["params"]})
    assert consumed.request_id == request_id


@pytest.mark.parametrize("auth", ["password", "", "TOKEN", None])
def test_an_unknown_authentication_method_is_bad_input(gate: Gate, auth: object) -> None:
    request_id = gate.submit(ceo_payment()).request_id
    with pytest.raises(RequestError) as refused:
        gate.decide_approval(request_id, "user:alice", "email", binding_code=code_of(gate, request_id),
                             auth=auth)  # type: ignore[arg-type]
    assert refused.value.code == "input.invalid"
    assert gate.status(request_id).approvals == ()
