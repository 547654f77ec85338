"""The Store contract: every backend must pass these, through the `Store` protocol only."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import itertools
import json
from typing import Any

import pytest

from interlock.audit.log import verify
from interlock.core.action import ActionRequest, parse_request
from interlock.core.approval import Approval
from interlock.core.conditions import History
from interlock.core.errors import ApprovalError, GrantError, StoreError
from interlock.store.base import (
    AuditEvent,
    GrantRecord,
    LoadRequest,
    NewRequest,
    RequestChange,
    RequestRecord,
    Store,
)

T0 = datetime.datetime(2026, 11, 25, 9, 0, 0, 123456, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)
DAY_SECONDS = 24 * 3600
_probe_ids = itertools.count()


def action_request(principal: str = "agent:payer", action: str = "payments.transfer", amount: Any = 100,
                   channel: str = "chat") -> ActionRequest:
    return parse_request({
        "principal": {"id": principal, "kind": "agent", "attributes": {"team": "finance"}},
        "on_behalf_of": [{"id": "user:ceo", "kind": "human"}],
        "action": action,
        "resource": "account:treasury",
        "params": {"amount": amount, "currency": "EUR", "recipient": "GB33BUKB20201555555555"},
        "channel": channel,
        "context": {"ip": "203.0.113.7"},
        "justification": "contract test",
    })


def decision(outcome: str) -> dict[str, Any]:
    return {"outcome": outcome, "policy_version": "policy-v1", "matched_rules": ["r1"], "reasons": ["because"],
            "explanation": "test decision", "sensitive": True, "requirements": []}


def event(kind: str, request_id: str | None, at: datetime.datetime = T0, **data: Any) -> AuditEvent:
    return AuditEvent(kind, request_id, data, at)


def grant(jti: str, request_id: str, digest: str, at: datetime.datetime = T0) -> GrantRecord:
    return GrantRecord(jti, request_id, "payments-service", f"token-{jti}", digest, "policy-v1", at,
                       at + datetime.timedelta(minutes=5))


def create(store: Store, request_id: str, request: ActionRequest | None = None, *, status: str = "allowed",
           at: datetime.datetime = T0, with_grant: str | None = None,
           expires_at: datetime.datetime | None = None, events: list[AuditEvent] | None = None) -> NewRequest:
    request = request or action_request()
    digest = request.digest()

    def decide(history: History) -> NewRequest:
        issued = grant(with_grant, request_id, digest, at) if with_grant else None
        return NewRequest(status, decision(status), expires_at,  # type: ignore[arg-type]
                          events if events is not None else [event("request.submitted", request_id, at)], issued)

    return store.create_request(request_id, request, digest, at, decide)


def audit_kinds(store: Store) -> list[str]:
    return [json.loads(entry.leaf)["kind"] for entry in store.audit_entries()]


def history_seen_at(store: Store, at: datetime.datetime, principal: str = "agent:payer",
                    windows: tuple[int, ...] = (DAY_SECONDS,)) -> list[tuple[int, float]]:
    """Create one more request at `at` and return what its decision callback saw in history."""
    seen: list[tuple[int, float]] = []
    request = action_request(principal)

    def decide(history: History) -> NewRequest:
        for window in windows:
            seen.append((history.count("payments.transfer", window),
                         history.sum("payments.transfer", "amount", window)))
        return NewRequest("denied", decision("deny"), None, [event("request.submitted", "probe", at)])

    store.create_request(f"probe-{next(_probe_ids)}", request, request.digest(), at, decide)
    return seen


def approval(request_id: str, approver: str, verdict: str = "approve", at: datetime.datetime = T0) -> Approval:
    return Approval(f"apr-{request_id}-{approver}", request_id, approver, "email", verdict, "ok", at)  # type: ignore[arg-type]


# --- requests ------------------------------------------------------------------------------------


def test_a_created_request_reads_back_exactly_as_written(any_store: Store) -> None:
    request = action_request()
    expires = T0 + datetime.timedelta(minutes=15)
    create(any_store, "req-1", request, status="pending_approval", expires_at=expires)

    record = any_store.get_request("req-1")

    assert record.id == "req-1"
    assert record.request == request
    assert record.digest == request.digest()
    assert record.status == "pending_approval"
    assert record.decision == decision("pending_approval")
    assert record.created_at == T0
    assert record.expires_at == expires
    assert record.approvals == ()
    assert record.grant is None


def test_a_created_grant_reads_back_with_its_request(any_store: Store) -> None:
    request = action_request()
    create(any_store, "req-1", request, with_grant="grt-1")

    stored = any_store.get_request("req-1").grant

    assert stored == grant("grt-1", "req-1", request.digest())
    assert stored.consumed_at is None and stored.result is None


def test_a_grant_created_consumed_reads_back_consumed_and_is_never_consumed_again(any_store: Store) -> None:
    # Gate.take_async: decided and consumed in one transaction.
    request = action_request()
    digest = request.digest()

    def decide(history: History) -> NewRequest:
        taken = dataclasses.replace(grant("grt-1", "req-1", digest), consumed_at=T0)
        return NewRequest("allowed", decision("allowed"), None, [event("request.decided", "req-1", T0),
                                                                  event("grant.consumed", "req-1", T0)], taken)

    any_store.create_request("req-1", request, digest, T0, decide)

    assert any_store.get_request("req-1").grant.consumed_at == T0
    with pytest.raises(GrantError) as again:
        any_store.consume_grant("grt-1", _consumed_event, T0)
    assert again.value.code == "grant.already_used"
    assert audit_kinds(any_store) == ["request.decided", "grant.consumed"]


def test_a_request_created_from_a_coroutine_reads_back_as_one_created_by_a_thread(any_store: Store) -> None:
    request = action_request()
    seen: list[tuple[int, float]] = []

    def decide(history: History) -> NewRequest:
        seen.append((history.count("payments.transfer", DAY_SECONDS), history.sum("payments.transfer", "amount",
                                                                                   DAY_SECONDS)))
        return NewRequest("allowed", decision("allow"), None, [event("request.submitted", "req-2", T0)],
                          grant("grt-2", "req-2", request.digest()))

    create(any_store, "req-1", request, with_grant="grt-1")
    new = asyncio.run(any_store.create_request_async("req-2", request, request.digest(), T0 + HOUR, decide))

    assert new.grant == grant("grt-2", "req-2", request.digest())
    assert seen == [(1, 100.0)]  # its decision saw the history, as a thread's would
    assert any_store.get_request("req-2").grant == grant("grt-2", "req-2", request.digest())
    assert audit_kinds(any_store) == ["request.submitted", "request.submitted"]


def test_an_unknown_request_is_not_found(any_store: Store) -> None:
    with pytest.raises(ApprovalError) as refused:
        any_store.get_request("req-missing")
    assert refused.value.code == "request.not_found"


def test_a_refusing_decide_callback_writes_nothing(any_store: Store) -> None:
    request = action_request()

    def decide(history: History) -> NewRequest:
        raise GrantError("policy.no_executor", "refused inside the transaction")

    with pytest.raises(GrantError):
        any_store.create_request("req-1", request, request.digest(), T0, decide)

    with pytest.raises(ApprovalError, match="req-1"):
        any_store.get_request("req-1")
    assert list(any_store.audit_entries()) == []


def test_update_request_writes_status_approval_grant_and_audit_together(any_store: Store) -> None:
    request = action_request()
    create(any_store, "req-1", request, status="pending_approval")
    vote = approval("req-1", "user:alice")
    issued = grant("grt-1", "req-1", request.digest())
    seen: list[RequestRecord] = []

    def change(record: RequestRecord) -> RequestChange:
        seen.append(record)
        return RequestChange([event("approval.approved", "req-1"), event("grant.issued", "req-1", jti="grt-1")],
                             status="approved", approval=vote, grant=issued)

    any_store.update_request("req-1", change)

    assert [r.status for r in seen] == ["pending_approval"]
    record = any_store.get_request("req-1")
    assert record.status == "approved"
    assert record.approvals == (vote,)
    assert record.grant == issued
    assert audit_kinds(any_store) == ["request.submitted", "approval.approved", "grant.issued"]


def test_how_each_approver_authenticated_is_kept_with_the_approval(any_store: Store) -> None:
    create(any_store, "req-1", status="pending_approval")
    votes = [Approval("apr-1", "req-1", "user:alice", "web", "approve", "", T0, "session"),
             Approval("apr-2", "req-1", "user:bob", "api", "approve", "", T0, "token"),
             Approval("apr-3", "req-1", "user:carol", "console", "approve", "", T0)]
    for vote in votes:
        any_store.update_request("req-1", lambda r, v=vote: RequestChange([event("approval.approved", "req-1")],
                                                                           approval=v))

    assert [(a.approver_id, a.auth) for a in any_store.get_request("req-1").approvals] == [
        ("user:alice", "session"), ("user:bob", "token"), ("user:carol", "local")]


@pytest.mark.parametrize("failure", [
    ApprovalError("approval.not_independent", "refused inside the transaction"),
    ValueError("a bug inside the callback"),
])
def test_a_failing_change_callback_writes_nothing(any_store: Store, failure: Exception) -> None:
    create(any_store, "req-1", status="pending_approval")
    before = list(any_store.audit_entries())

    def change(record: RequestRecord) -> RequestChange:
        raise failure

    with pytest.raises(type(failure)):
        any_store.update_request("req-1", change)

    record = any_store.get_request("req-1")
    assert record.status == "pending_approval"
    assert record.approvals == ()
    assert list(any_store.audit_entries()) == before


def test_a_second_decision_by_one_approver_rolls_back_the_whole_change(any_store: Store) -> None:
    # The status update runs before the approval insert fails: both must vanish, and the audit too.
    create(any_store, "req-1", status="pending_approval")
    any_store.update_request("req-1", lambda r: RequestChange([event("approval.approved", "req-1")],
                                                              approval=approval("req-1", "user:alice")))
    before = list(any_store.audit_entries())
    again = Approval("apr-other-id", "req-1", "user:alice", "phone", "reject", "", T0)

    with pytest.raises(ApprovalError) as refused:
        any_store.update_request("req-1", lambda r: RequestChange([event("approval.rejected", "req-1")],
                                                                  status="rejected", approval=again))

    assert refused.value.code == "approval.duplicate"
    record = any_store.get_request("req-1")
    assert record.status == "pending_approval"
    assert [a.id for a in record.approvals] == ["apr-req-1-user:alice"]
    assert list(any_store.audit_entries()) == before


def test_updating_an_unknown_request_is_not_found_and_writes_nothing(any_store: Store) -> None:
    with pytest.raises(ApprovalError) as refused:
        any_store.update_request("req-missing", lambda r: RequestChange([event("approval.approved", None)]))
    assert refused.value.code == "request.not_found"
    assert list(any_store.audit_entries()) == []


# --- grants --------------------------------------------------------------------------------------


def _consumed_event(grant_record: GrantRecord, load: LoadRequest) -> list[AuditEvent]:
    return [event("grant.consumed", grant_record.request_id, jti=grant_record.jti)]


def test_a_grant_is_consumed_exactly_once(any_store: Store) -> None:
    request = action_request()
    create(any_store, "req-1", request, with_grant="grt-1")
    later = T0 + datetime.timedelta(seconds=30)
    calls: list[tuple[GrantRecord, RequestRecord]] = []

    def check(grant_record: GrantRecord, load: LoadRequest) -> list[AuditEvent]:
        record, _ = load()
        calls.append((grant_record, record))
        return _consumed_event(grant_record, load)

    consumed = any_store.consume_grant("grt-1", check, later)

    assert consumed.consumed_at == later
    assert calls[0][0].consumed_at is None and calls[0][1].id == "req-1"
    with pytest.raises(GrantError) as again:
        any_store.consume_grant("grt-1", check, later)
    assert again.value.code == "grant.already_used"
    assert len(calls) == 1
    assert any_store.get_request("req-1").grant.consumed_at == later
    assert audit_kinds(any_store).count("grant.consumed") == 1


def test_a_grant_consumed_from_a_coroutine_is_consumed_once_as_from_a_thread(any_store: Store) -> None:
    create(any_store, "req-1", with_grant="grt-1")
    later = T0 + datetime.timedelta(seconds=30)

    def refuse(grant_record: GrantRecord, load: LoadRequest) -> list[AuditEvent]:
        raise GrantError("grant.policy_changed", "refused inside the transaction")

    async def consume_twice_after_a_refusal() -> list[Any]:
        refused = await asyncio.gather(any_store.consume_grant_async("grt-1", refuse, later), return_exceptions=True)
        consumed = await any_store.consume_grant_async("grt-1", _consumed_event, later)
        again = await asyncio.gather(any_store.consume_grant_async("grt-1", _consumed_event, later),
                                     return_exceptions=True)
        return [*refused, consumed, *again]

    refused, consumed, again = asyncio.run(consume_twice_after_a_refusal())

    assert isinstance(refused, GrantError) and refused.code == "grant.policy_changed"
    assert consumed.consumed_at == later
    assert isinstance(again, GrantError) and again.code == "grant.already_used"
    assert any_store.get_request("req-1").grant.consumed_at == later
    assert audit_kinds(any_store).count("grant.consumed") == 1


def test_consuming_a_grant_that_was_never_issued_is_refused(any_store: Store) -> None:
    with pytest.raises(GrantError) as refused:
        any_store.consume_grant("grt-never", _consumed_event, T0)
    assert refused.value.code == "grant.not_issued"
    assert list(any_store.audit_entries()) == []


def test_a_refusing_check_leaves_the_grant_unconsumed(any_store: Store) -> None:
    create(any_store, "req-1", with_grant="grt-1")
    before = list(any_store.audit_entries())

    def refuse(grant_record: GrantRecord, load: LoadRequest) -> list[AuditEvent]:
        raise GrantError("grant.policy_changed", "refused inside the transaction")

    with pytest.raises(GrantError, match="refused inside"):
        any_store.consume_grant("grt-1", refuse, T0)

    assert any_store.get_request("req-1").grant.consumed_at is None
    assert list(any_store.audit_entries()) == before
    assert any_store.consume_grant("grt-1", _consumed_event, T0).consumed_at == T0


def test_a_result_is_recorded_once_and_only_after_consume(any_store: Store) -> None:
    create(any_store, "req-1", with_grant="grt-1")
    reported = event("execution.reported", None, jti="grt-1", result="succeeded")

    with pytest.raises(GrantError) as early:
        any_store.record_result("grt-1", "succeeded", "too early", reported)
    assert early.value.code == "grant.not_consumed"
    with pytest.raises(GrantError) as unknown:
        any_store.record_result("grt-never", "succeeded", "", reported)
    assert unknown.value.code == "grant.not_issued"

    any_store.consume_grant("grt-1", _consumed_event, T0)
    recorded = any_store.record_result("grt-1", "failed", "bank said no", reported)
    assert (recorded.result, recorded.result_detail) == ("failed", "bank said no")

    with pytest.raises(GrantError) as twice:
        any_store.record_result("grt-1", "succeeded", "rewrite history", reported)
    assert twice.value.code == "grant.result_recorded"
    stored = any_store.get_request("req-1").grant
    assert (stored.result, stored.result_detail) == ("failed", "bank said no")
    assert audit_kinds(any_store) == ["request.submitted", "grant.consumed", "execution.reported"]


# --- audit ---------------------------------------------------------------------------------------


def test_audit_indexes_run_from_zero_without_gaps_and_the_chain_verifies(any_store: Store) -> None:
    create(any_store, "req-1", status="pending_approval",
           events=[event("request.submitted", "req-1"), event("policy.decided", "req-1", outcome="x")])
    any_store.append_audit([event("approval.refused", "req-1", code="approval.same_channel")])
    any_store.update_request("req-1", lambda r: RequestChange(
        [event("approval.approved", "req-1"), event("grant.issued", "req-1")], status="approved",
        approval=approval("req-1", "user:alice"), grant=grant("grt-1", "req-1", r.digest)))
    any_store.consume_grant("grt-1", _consumed_event, T0)
    any_store.append_audit([])

    entries = list(any_store.audit_entries())

    assert [e.index for e in entries] == list(range(6))
    assert [json.loads(e.leaf)["index"] for e in entries] == list(range(6))
    result = verify(entries)
    assert result.ok, result.problems
    assert result.entries == 6


def test_an_audit_leaf_holds_the_event_as_given(any_store: Store) -> None:
    any_store.append_audit([event("grant.refused", None, T0, code="grant.expired", jti="grt-9")])

    (entry,) = any_store.audit_entries()

    assert json.loads(entry.leaf) == {"index": 0, "at": "2026-11-25T09:00:00.123456Z", "kind": "grant.refused",
                                      "request_id": None, "data": {"code": "grant.expired", "jti": "grt-9"}}


def _unsealable(kind: str, request_id: str | None) -> AuditEvent:
    # An event the audit log cannot seal (not canonical JSON): the append fails inside the transaction.
    return event(kind, request_id, not_json=object())


def test_a_failing_audit_append_rolls_back_a_new_request(any_store: Store) -> None:
    with pytest.raises((ValueError, StoreError)):
        create(any_store, "req-1", with_grant="grt-1",
               events=[event("request.submitted", "req-1"), _unsealable("policy.decided", "req-1")])

    with pytest.raises(ApprovalError) as missing:
        any_store.get_request("req-1")
    assert missing.value.code == "request.not_found"
    with pytest.raises(GrantError) as no_grant:
        any_store.consume_grant("grt-1", _consumed_event, T0)
    assert no_grant.value.code == "grant.not_issued"
    assert list(any_store.audit_entries()) == []


def test_a_failing_audit_append_rolls_back_a_change(any_store: Store) -> None:
    create(any_store, "req-1", status="pending_approval")
    before = list(any_store.audit_entries())

    with pytest.raises((ValueError, StoreError)):
        any_store.update_request("req-1", lambda r: RequestChange(
            [_unsealable("approval.approved", "req-1")], status="approved",
            approval=approval("req-1", "user:alice"), grant=grant("grt-1", "req-1", r.digest)))

    record = any_store.get_request("req-1")
    assert (record.status, record.approvals, record.grant) == ("pending_approval", (), None)
    assert list(any_store.audit_entries()) == before


def test_a_failing_audit_append_leaves_the_grant_unconsumed(any_store: Store) -> None:
    create(any_store, "req-1", with_grant="grt-1")
    before = list(any_store.audit_entries())

    with pytest.raises((ValueError, StoreError)):
        any_store.consume_grant("grt-1", lambda g, load: [_unsealable("grant.consumed", "req-1")], T0)

    assert any_store.get_request("req-1").grant.consumed_at is None
    assert list(any_store.audit_entries()) == before


def test_a_failing_audit_append_leaves_no_result(any_store: Store) -> None:
    create(any_store, "req-1", with_grant="grt-1")
    any_store.consume_grant("grt-1", _consumed_event, T0)
    before = list(any_store.audit_entries())

    with pytest.raises((ValueError, StoreError)):
        any_store.record_result("grt-1", "succeeded", "", _unsealable("execution.reported", None))

    assert any_store.get_request("req-1").grant.result is None
    assert list(any_store.audit_entries()) == before
    assert any_store.record_result("grt-1", "succeeded", "", event("execution.reported", None)).result == "succeeded"


def test_a_partly_unsealable_batch_appends_nothing(any_store: Store) -> None:
    any_store.append_audit([event("first", None)])

    with pytest.raises((ValueError, StoreError)):
        any_store.append_audit([event("second", None), _unsealable("third", None)])

    assert audit_kinds(any_store) == ["first"]


# --- history -------------------------------------------------------------------------------------


def _reject(store: Store, request_id: str) -> None:
    store.update_request(request_id, lambda r: RequestChange([event("approval.rejected", request_id)],
                                                             status="rejected"))


def test_history_counts_and_sums_only_requests_inside_the_window(any_store: Store) -> None:
    create(any_store, "old", action_request(amount=1), at=T0 - 25 * HOUR)
    create(any_store, "edge", action_request(amount=2), at=T0 - 24 * HOUR)  # exactly one window ago: outside
    create(any_store, "in-1", action_request(amount=300), at=T0 - 2 * HOUR)
    create(any_store, "in-2", action_request(amount=40), at=T0 - HOUR, status="pending_approval")
    create(any_store, "in-3", action_request(amount=5), at=T0 - HOUR, status="approved")

    assert history_seen_at(any_store, T0, windows=(DAY_SECONDS, 90 * 60, 60)) == [
        (3, 345.0), (2, 45.0), (0, 0.0),
    ]


def test_history_leaves_out_denied_and_rejected_requests(any_store: Store) -> None:
    create(any_store, "allowed", action_request(amount=100), at=T0 - HOUR)
    create(any_store, "denied", action_request(amount=2000), at=T0 - HOUR, status="denied")
    create(any_store, "rejected", action_request(amount=30000), at=T0 - HOUR, status="pending_approval")
    _reject(any_store, "rejected")

    assert history_seen_at(any_store, T0) == [(1, 100.0)]


def test_history_is_per_principal_and_per_action(any_store: Store) -> None:
    create(any_store, "mine", action_request("agent:payer", amount=100), at=T0 - HOUR)
    create(any_store, "theirs", action_request("agent:other", amount=7000), at=T0 - HOUR)
    create(any_store, "refund", action_request("agent:payer", action="payments.refund", amount=900), at=T0 - HOUR)

    assert history_seen_at(any_store, T0, "agent:payer") == [(1, 100.0)]
    assert history_seen_at(any_store, T0, "agent:other") == [(1, 7000.0)]


def test_history_at_consume_leaves_out_the_request_being_consumed(any_store: Store) -> None:
    create(any_store, "earlier", action_request(amount=100), at=T0 - HOUR)
    create(any_store, "req-1", action_request(amount=4000), at=T0, with_grant="grt-1")
    seen: list[tuple[int, float]] = []

    def check(grant_record: GrantRecord, load: LoadRequest) -> list[AuditEvent]:
        record, history = load()
        assert record.id == "req-1"
        seen.append((history.count("payments.transfer", DAY_SECONDS),
                     history.sum("payments.transfer", "amount", DAY_SECONDS)))
        return _consumed_event(grant_record, load)

    any_store.consume_grant("grt-1", check, T0 + datetime.timedelta(seconds=10))

    assert seen == [(1, 100.0)]
