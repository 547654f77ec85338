"""The SDK against `interlock serve` as a real process: the CEO payment from submit to reported result."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from interlock.client import RemoteGate
from interlock.core.errors import GrantError
from interlock.enforce.guard import guard
from interlock.results import RequestState

from .served import cli, seed_callers, seeded_home, serving

CEO_PAYMENT = {
    "on_behalf_of": [{"id": "user:ceo", "kind": "human"}],
    "action": "payments.transfer",
    "resource": "account:treasury",
    "params": {"amount": 48000, "currency": "EUR", "recipient": "GB33BUKB20201555555555"},
    # The request came in over chat; the approvers answer over `api`: the rule's separate channel.
    "channel": "chat",
    "justification": "CEO asked in chat",
}


@pytest.mark.slow
def test_the_sdk_runs_a_whole_approval_flow_against_interlock_serve(tmp_path: Path) -> None:
    home = seeded_home(tmp_path)
    token = seed_callers(home)
    with serving(home) as url, RemoteGate(url, token["agent"]) as agent, \
            RemoteGate(url, token["alice"]) as alice, RemoteGate(url, token["bob"]) as bob, \
            RemoteGate(url, token["payments"]) as payments:
        pending = agent.submit(CEO_PAYMENT)
        assert pending.outcome == "pending_approval", pending
        assert pending.requirements[0]["quorum"] == 2

        waited: list[RequestState] = []
        waiter = threading.Thread(target=lambda: waited.append(agent.wait(pending.request_id, 60)))
        waiter.start()
        code = pending.binding_code  # the requester tells it to the approvers over its own channel
        assert alice.decide_approval(pending.request_id, comment="called the CEO back",
                                     binding_code=code).outcome == "pending_approval"
        assert bob.decide_approval(pending.request_id, binding_code=code).outcome == "approved"
        waiter.join(timeout=90)
        assert not waiter.is_alive(), "wait() did not return"
        grant = waited[0].grant
        assert waited[0].outcome == "approved" and grant, waited[0]
        assert [a["approver"] for a in waited[0].approvals] == ["user:alice", "user:bob"]

        paid: list[tuple[int, str, str]] = []

        @guard("payments.transfer", executor="payments-service", gate=payments, resource="account:treasury")
        def transfer(amount: int, currency: str, recipient: str) -> None:
            paid.append((amount, currency, recipient))

        transfer(48000, "EUR", "GB33BUKB20201555555555", grant=grant)
        with pytest.raises(GrantError) as replay:
            transfer(48000, "EUR", "GB33BUKB20201555555555", grant=grant)
        assert replay.value.code == "grant.already_used"
        assert paid == [(48000, "EUR", "GB33BUKB20201555555555")]

        done = agent.status(pending.request_id)
        assert (done.outcome, done.consumed, done.result, done.grant) == ("approved", True, "succeeded", None)
    assert cli(home, "audit", "verify")["ok"] is True
