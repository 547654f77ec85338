"""INVARIANT 7 — decisions are re-checked at consume: a grant cannot outlive the policy that allowed it."""

from __future__ import annotations

import pytest

from conftest import SEED, ceo_payment, code_of, spec_of
from interlock.core.errors import GrantError
from interlock.core.policy import Policy, load_policy
from interlock.gate import Gate

from .grant_flow import approved_ceo_payment, audit_log

SEED_TEXT = (SEED / "policy.yaml").read_text()
FINANCE_GROUP = 'finance-approvers: ["user:alice", "user:bob", "user:carol"]'
CHANNEL_RULE = "      separate_channel: true\n      expires_in: 15m"


def seed_with(old: str, new: str, count: int = 1) -> str:
    """The seed policy with one edit; fails loudly if the seed drifted away from what the edit expects."""
    assert SEED_TEXT.count(old) == count, f"the seed policy no longer contains {old!r} {count} time(s)"
    return SEED_TEXT.replace(old, new)


DENYING = {
    "a deny rule added": SEED_TEXT + (
        "  - id: payments-frozen\n    action: payments.transfer\n    effect: deny\n"
        "    description: all payments frozen\n"
    ),
    "approvers replaced": seed_with(FINANCE_GROUP, 'finance-approvers: ["user:dave", "user:erin", "user:frank"]'),
    "quorum raised": seed_with("      quorum: 2\n", "      quorum: 3\n"),
    "no rule for transfers left": seed_with("    action: payments.transfer\n", "    action: payments.refund\n", 2),
    "another executor named": seed_with('"payments.*": payments-service', '"payments.*": treasury-service'),
}


@pytest.mark.parametrize("change", list(DENYING))
def test_a_grant_cannot_be_consumed_once_policy_no_longer_allows_it(gate: Gate, change: str) -> None:
    document, state = approved_ceo_payment(gate)
    gate.policy = load_policy(DENYING[change])

    with pytest.raises(GrantError) as refused:
        gate.consume(state.grant, "payments-service", spec_of(document))

    assert refused.value.code == "grant.policy_changed"
    assert not gate.status(state.request_id).consumed
    assert "grant.consumed" not in [e["kind"] for e in audit_log(gate)]


def test_a_policy_changed_refusal_does_not_burn_the_grant(gate: Gate, seed_policy: Policy) -> None:
    document, state = approved_ceo_payment(gate)
    gate.policy = load_policy(DENYING["a deny rule added"])
    with pytest.raises(GrantError):
        gate.consume(state.grant, "payments-service", spec_of(document))

    gate.policy = seed_policy  # the change is rolled back
    assert gate.consume(state.grant, "payments-service", spec_of(document)).request_id == state.request_id


def test_approvals_over_the_requests_channel_stop_counting_when_policy_demands_another(gate: Gate) -> None:
    # Approved under a policy without the channel rule: alice over email, bob over chat (the request's channel).
    gate.policy = load_policy(seed_with(CHANNEL_RULE, CHANNEL_RULE.replace("true", "false")))
    document = ceo_payment()
    request_id = gate.submit(document).request_id
    gate.decide_approval(request_id, "user:alice", "email", binding_code=code_of(gate, request_id))
    state = gate.decide_approval(request_id, "user:bob", "chat", binding_code=code_of(gate, request_id))
    assert state.grant

    gate.policy = load_policy(SEED_TEXT)
    with pytest.raises(GrantError) as refused:
        gate.consume(state.grant, "payments-service", spec_of(document))

    assert refused.value.code == "grant.policy_changed"
    assert not gate.status(request_id).consumed


def test_the_same_rules_in_different_bytes_still_allow(gate: Gate) -> None:
    document, state = approved_ceo_payment(gate)
    restated = load_policy(SEED_TEXT + "\n# reviewed by the security team; no change in meaning\n")
    assert restated.version != gate.policy.version  # a new version: the re-check really runs
    gate.policy = restated

    consumption = gate.consume(state.grant, "payments-service", spec_of(document))

    assert consumption.request_id == state.request_id
    consumed = [e for e in audit_log(gate) if e["kind"] == "grant.consumed"]
    assert [e["data"]["policy_version"] for e in consumed] == [restated.version]


def test_a_wider_approver_group_still_allows(gate: Gate) -> None:
    document, state = approved_ceo_payment(gate)
    gate.policy = load_policy(seed_with(FINANCE_GROUP,
                                        'finance-approvers: ["user:alice", "user:bob", "user:carol", "user:dave"]'))

    assert gate.consume(state.grant, "payments-service", spec_of(document)).request_id == state.request_id


def test_an_allowed_grant_is_refused_once_policy_requires_approval(gate: Gate) -> None:
    document = ceo_payment(amount=500, recipient="DE89370400440532013000")  # small, to a known recipient
    state = gate.submit(document)
    assert state.outcome == "allowed" and state.grant
    stricter = seed_with("params.amount <= 1000", "params.amount <= 100")
    gate.policy = load_policy(stricter.replace("params.amount > 1000", "params.amount > 100"))

    with pytest.raises(GrantError) as refused:
        gate.consume(state.grant, "payments-service", spec_of(document))

    assert refused.value.code == "grant.policy_changed"
    assert not gate.status(state.request_id).consumed
