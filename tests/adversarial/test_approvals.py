"""INVARIANT 4 — recognition is not approval: independent people, another channel, a quorum, any rejection ends it."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from conftest import FixedClock, ceo_payment, code_of
from interlock.core.errors import ApprovalError, PolicyError
from interlock.core.policy import Policy, load_policy
from interlock.gate import Gate

from .grant_flow import audit_log

REQUESTER = "agent:finance-assistant"
CHAIN = ("user:vp-finance", "user:cfo", "user:ceo")  # the agent acts for the VP, who acts for the CFO, for the CEO

# Every identity in the request's chain is *also* named an approver: independence must still refuse them.
ALL_IN_THE_GROUP = f"""
version: 1
groups:
  finance-approvers: ["user:alice", "user:bob", "user:carol", "{REQUESTER}", {", ".join(f'"{c}"' for c in CHAIN)}]
executors:
  "payments.*": payments-service
rules:
  - id: transfers-need-two
    action: payments.transfer
    effect: require_approval
    approval:
      approvers: ["group:finance-approvers"]
      quorum: 2
      separate_channel: true
      expires_in: 15m
"""

TWO_RULES = """
version: 1
groups:
  finance-approvers: ["user:alice", "user:bob", "user:carol"]
  risk-officers: ["user:rita", "user:sam"]
executors:
  "payments.*": payments-service
rules:
  - id: large-transfers-need-finance
    action: payments.transfer
    when: "params.amount > 1000"
    effect: require_approval
    approval: {approvers: ["group:finance-approvers"], quorum: 2, separate_channel: true, expires_in: 15m}
  - id: new-recipients-need-risk
    action: payments.transfer
    when: "!(params.recipient in principal.attributes.known_recipients)"
    effect: require_approval
    approval: {approvers: ["group:risk-officers"], quorum: 1, expires_in: 1h}
"""


def chained_payment() -> dict[str, Any]:
    document = ceo_payment()
    document["on_behalf_of"] = [{"id": c, "kind": "human"} for c in CHAIN]
    return document


def refused_approval(gate: Gate, request_id: str, approver: str, channel: str, code: str,
                     *, reject: bool = False) -> None:
    """The approval is refused with `code`, recorded as no approval, and audited as `approval.refused`."""
    approvals_before = gate.status(request_id).approvals
    with pytest.raises(ApprovalError) as refused:
        gate.decide_approval(request_id, approver, channel, reject=reject)
    assert refused.value.code == code, refused.value.message
    assert gate.status(request_id).approvals == approvals_before
    last = audit_log(gate)[-1]
    assert last["kind"] == "approval.refused"
    assert (last["request_id"], last["data"]["code"], last["data"]["approver"]) == (request_id, code, approver)


def no_grant_ever(gate: Gate, request_id: str) -> None:
    assert gate.status(request_id).grant is None
    assert not [e for e in audit_log(gate) if "grant" in e["data"] and e["request_id"] == request_id]


@pytest.fixture
def strict_gate(gate: Gate) -> Gate:
    gate.policy = load_policy(ALL_IN_THE_GROUP)
    return gate


def test_the_requester_cannot_approve_even_when_named_an_approver(strict_gate: Gate) -> None:
    request_id = strict_gate.submit(chained_payment()).request_id

    for channel in ("email", "phone", "chat"):
        refused_approval(strict_gate, request_id, REQUESTER, channel, "approval.not_independent")
        refused_approval(strict_gate, request_id, REQUESTER, channel, "approval.not_independent", reject=True)

    assert strict_gate.status(request_id).outcome == "pending_approval"
    no_grant_ever(strict_gate, request_id)


@pytest.mark.parametrize("delegator", CHAIN)
def test_nobody_in_the_delegation_chain_can_approve(strict_gate: Gate, delegator: str) -> None:
    request_id = strict_gate.submit(chained_payment()).request_id
    strict_gate.decide_approval(request_id, "user:alice", "email", binding_code=code_of(strict_gate, request_id))

    refused_approval(strict_gate, request_id, delegator, "phone", "approval.not_independent")

    state = strict_gate.status(request_id)
    assert state.outcome == "pending_approval"
    assert state.progress[0]["approved_by"] == ["user:alice"]
    no_grant_ever(strict_gate, request_id)


def test_the_whole_chain_together_is_not_a_quorum(strict_gate: Gate) -> None:
    request_id = strict_gate.submit(chained_payment()).request_id

    for identity in (REQUESTER, *CHAIN):
        refused_approval(strict_gate, request_id, identity, "phone", "approval.not_independent")

    assert strict_gate.status(request_id).progress[0]["approved_by"] == []
    no_grant_ever(strict_gate, request_id)


@pytest.mark.parametrize("outsider", ["user:mallory", "user:Alice", "user:alice ", "group:finance-approvers"])
def test_an_approver_outside_the_group_is_refused(gate: Gate, outsider: str) -> None:
    request_id = gate.submit(ceo_payment()).request_id

    refused_approval(gate, request_id, outsider, "email", "approval.not_an_approver")
    # Nor may an outsider end the request by rejecting it.
    refused_approval(gate, request_id, outsider, "email", "approval.not_an_approver", reject=True)

    assert gate.status(request_id).outcome == "pending_approval"
    no_grant_ever(gate, request_id)


def test_approval_over_the_requests_own_channel_is_refused(gate: Gate) -> None:
    request_id = gate.submit(ceo_payment()).request_id  # submitted over `chat`

    refused_approval(gate, request_id, "user:alice", "chat", "approval.same_channel")
    refused_approval(gate, request_id, "user:bob", "chat", "approval.same_channel")

    # Refused, not spent: the same people may still approve over another channel.
    code = code_of(gate, request_id)
    gate.decide_approval(request_id, "user:alice", "email", binding_code=code)
    assert gate.decide_approval(request_id, "user:bob", "phone", binding_code=code).outcome == "approved"


def test_one_person_twice_is_not_a_quorum_of_two(gate: Gate) -> None:
    request_id = gate.submit(ceo_payment()).request_id
    gate.decide_approval(request_id, "user:alice", "email", binding_code=code_of(gate, request_id))

    refused_approval(gate, request_id, "user:alice", "email", "approval.duplicate")
    refused_approval(gate, request_id, "user:alice", "phone", "approval.duplicate")
    refused_approval(gate, request_id, "user:alice", "sms", "approval.duplicate", reject=True)

    state = gate.status(request_id)
    assert state.outcome == "pending_approval"
    assert [a["approver"] for a in state.approvals] == ["user:alice"]
    assert state.progress[0]["approved_by"] == ["user:alice"]
    no_grant_ever(gate, request_id)


@pytest.mark.parametrize("earlier", [(), ("user:alice",)])
def test_any_rejection_ends_the_request(gate: Gate, earlier: tuple[str, ...]) -> None:
    request_id = gate.submit(ceo_payment()).request_id
    for approver in earlier:
        gate.decide_approval(request_id, approver, "email", binding_code=code_of(gate, request_id))

    assert gate.decide_approval(request_id, "user:carol", "phone", reject=True).outcome == "rejected"

    for approver in ("user:alice", "user:bob"):
        if approver not in earlier:
            refused_approval(gate, request_id, approver, "email", "request.rejected")
    assert gate.status(request_id).outcome == "rejected"
    no_grant_ever(gate, request_id)


def test_the_approval_window_closes(gate: Gate, clock: FixedClock) -> None:
    request_id = gate.submit(ceo_payment()).request_id
    clock.advance(minutes=15, seconds=-1)
    # just inside the 15 minute window
    gate.decide_approval(request_id, "user:alice", "email", binding_code=code_of(gate, request_id))

    clock.advance(seconds=1)
    assert gate.status(request_id).outcome == "expired"
    refused_approval(gate, request_id, "user:bob", "phone", "approval.expired")
    refused_approval(gate, request_id, "user:carol", "phone", "approval.expired", reject=True)
    no_grant_ever(gate, request_id)


def test_an_unknown_request_is_not_found_and_changes_nothing(gate: Gate) -> None:
    entries = len(audit_log(gate))
    with pytest.raises(ApprovalError) as refused:
        gate.decide_approval("req_does_not_exist", "user:alice", "email", binding_code="ABC-DEF")
    assert refused.value.code == "request.not_found"
    assert len(audit_log(gate)) == entries


@pytest.mark.parametrize("order", [
    ("user:alice", "user:bob", "user:rita"),
    ("user:rita", "user:alice", "user:bob"),
    ("user:alice", "user:rita", "user:bob"),
])
def test_the_grant_waits_for_every_matching_rule(gate: Gate, order: tuple[str, ...]) -> None:
    gate.policy = load_policy(TWO_RULES)
    state = gate.submit(ceo_payment())  # large *and* to a new recipient: both rules match
    assert {p["rule_id"] for p in state.progress} == {"large-transfers-need-finance", "new-recipients-need-risk"}
    channels = {"user:alice": "email", "user:bob": "phone", "user:rita": "chat"}  # risk allows the same channel

    code = state.binding_code
    for approver in order[:-1]:
        state = gate.decide_approval(state.request_id, approver, channels[approver], binding_code=code)
        assert state.outcome == "pending_approval" and state.grant is None, approver
    state = gate.decide_approval(state.request_id, order[-1], channels[order[-1]], binding_code=code)

    assert state.outcome == "approved" and state.grant
    issued = [(e["kind"], e["data"]["grant"]["jti"]) for e in audit_log(gate) if "grant" in e["data"]]
    assert issued == [("approval.approved", unverified_jti(state.grant))]


def test_approvers_of_one_rule_do_not_count_for_another(gate: Gate) -> None:
    gate.policy = load_policy(TWO_RULES)
    request_id = gate.submit(ceo_payment()).request_id

    for approver in ("user:alice", "user:bob", "user:carol"):
        gate.decide_approval(request_id, approver, "email", binding_code=code_of(gate, request_id))

    state = gate.status(request_id)
    assert state.outcome == "pending_approval"
    assert {p["rule_id"]: p["approved_by"] for p in state.progress} == {
        "large-transfers-need-finance": ["user:alice", "user:bob", "user:carol"],
        "new-recipients-need-risk": [],
    }
    refused_approval(gate, request_id, "user:alice", "phone", "approval.duplicate")
    no_grant_ever(gate, request_id)


def test_independence_cannot_be_waived_in_a_policy() -> None:
    waived = ALL_IN_THE_GROUP.replace("separate_channel: true", "separate_channel: true\n      independent_of: []")

    with pytest.raises(PolicyError) as invalid:
        load_policy(waived)
    assert invalid.value.code == "policy.invalid"


def test_seed_policy_is_what_these_attacks_assume(seed_policy: Policy) -> None:
    # The attacks above read the seed's quorum, channel rule and window; fail loudly if the seed drifts.
    (rule,) = [r for r in seed_policy.rules if r.id == "other-transfers-need-two"]
    assert rule.requirement.quorum == 2
    assert rule.requirement.separate_channel
    assert rule.requirement.expires_in == 15 * 60
    assert rule.requirement.approvers == {"user:alice", "user:bob", "user:carol"}


def unverified_jti(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])
