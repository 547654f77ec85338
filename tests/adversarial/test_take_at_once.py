"""`Gate.take_async`: decide and consume in one transaction, for an enforcement point that both asks and executes.

It must leave the record `submit` then `consume` leave, and open nothing they would not: the grant is used once,
bound to the request, and only by its own executor; a held or denied request consumes nothing.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from conftest import ceo_payment, spec_of
from interlock.core.errors import GrantError
from interlock.gate import Gate
from interlock.results import Consumption, RequestState

from .grant_flow import audit_log

EXECUTOR = "payments-service"  # the seed policy's executor of payments.*
KNOWN = "DE89370400440532013000"


def take(gate: Gate, document: dict[str, Any], executor: str = EXECUTOR) -> tuple[RequestState, Consumption | None]:
    async def body() -> tuple[RequestState, Consumption | None]:
        return await gate.take_async(document, executor)

    return anyio.run(body)


def test_an_allowed_request_is_decided_and_consumed_once_with_the_record_of_both(gate: Gate) -> None:
    document = ceo_payment(amount=500, recipient=KNOWN)
    state, consumed = take(gate, document)
    assert state.outcome == "allowed" and consumed is not None
    assert (consumed.executor, consumed.action, consumed.request_id) == (EXECUTOR, "payments.transfer",
                                                                         state.request_id)
    assert consumed.digest == state.digest
    after = gate.status(state.request_id)
    assert after.consumed and after.grant is None  # nothing left to present
    log = audit_log(gate)
    assert [entry["kind"] for entry in log] == ["request.decided", "grant.consumed"]
    issued = log[0]["data"]["grant"]
    assert log[1]["data"]["jti"] == issued["jti"] == consumed.jti and log[1]["data"]["executor"] == EXECUTOR
    assert gate.verify_audit().ok
    # The result is reported as for any consumed grant, and only once.
    gate.report(consumed.jti, True, executor=EXECUTOR)
    assert gate.status(state.request_id).result == "succeeded"


def test_the_grant_of_a_taken_request_cannot_be_consumed_again(gate: Gate) -> None:
    document = ceo_payment(amount=500, recipient=KNOWN)
    state, _ = take(gate, document)
    assert state.grant is None  # the caller is never handed the token of a grant already used
    record = gate.store.get_request(state.request_id).grant
    assert record is not None and record.consumed_at is not None
    with pytest.raises(GrantError) as again:  # someone who read the token from the store
        gate.consume(record.token, EXECUTOR, spec_of(document))
    assert again.value.code == "grant.already_used"


@pytest.mark.parametrize(("document", "outcome"), [
    (ceo_payment(), "pending_approval"),                                  # large and new: two approvers
    ({**ceo_payment(), "action": "payments.refund"}, "denied"),          # no rule: denied
])
def test_a_held_or_denied_request_consumes_nothing(gate: Gate, document: dict[str, Any], outcome: str) -> None:
    state, consumed = take(gate, document)
    assert (state.outcome, consumed) == (outcome, None)
    assert not gate.status(state.request_id).consumed
    assert [entry["kind"] for entry in audit_log(gate)] == ["request.decided"]


def test_a_grant_for_another_executor_is_refused_as_consume_refuses_it(gate: Gate) -> None:
    document = ceo_payment(amount=500, recipient=KNOWN)
    with pytest.raises(GrantError) as refused:
        take(gate, document, executor="deploy-executor")
    assert refused.value.code == "grant.wrong_executor"
    decided, refusal = audit_log(gate)
    assert (decided["kind"], refusal["kind"]) == ("request.decided", "grant.refused")
    state = gate.status(decided["request_id"])
    assert state.outcome == "allowed" and not state.consumed  # its own executor may still consume it
    gate.consume(state.grant or "", EXECUTOR, spec_of(document))
