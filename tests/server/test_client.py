"""`RemoteGate` against the real ASGI app: every method, refusals as the local gate's errors, failing closed."""

from __future__ import annotations

import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import SEED
from interlock.audit.log import Verification
from interlock.client import RemoteGate, ReportedResult, _answer, error_for
from interlock.core.errors import (
    ApprovalError,
    AuditError,
    AuthError,
    GrantError,
    InterlockError,
    KeyringError,
    PolicyError,
    RequestError,
    StoreError,
)
from interlock.core.policy import load_policy
from interlock.enforce.guard import guard
from interlock.results import Consumption, RequestState
from interlock.store.base import BreakGlassReview
from interlock.store.sqlite import SqliteStore

from .conftest import Api, submission

PARAMS = submission()["params"]
BREAK_GLASS = """
break_glass:
  - id: treasury-emergency
    who: ["user:alice"]
    actions: ["payments.*"]
    review_within: 2h
"""
WHY = "supplier cut-off, finance approvers unreachable"


class _PortalTransport(httpx.BaseTransport):
    """A sync httpx transport onto the ASGI app, run on the fixture's event loop (what TestClient does)."""

    def __init__(self, api: Api) -> None:
        self._asgi = httpx.ASGITransport(app=api.app)
        self._portal = api.portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def send() -> httpx.Response:
            copy = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            response = await self._asgi.handle_async_request(copy)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return self._portal.call(send)


@pytest.fixture
def remote(api: Api) -> Iterator[Any]:
    """`remote("alice")`: a RemoteGate on the ASGI app holding that caller's credential."""
    opened: list[RemoteGate] = []

    def make(who: str) -> RemoteGate:
        gate = RemoteGate("http://interlock", api.tokens[who], transport=_PortalTransport(api))
        opened.append(gate)
        return gate

    yield make
    for gate in opened:
        gate.close()


def expect_refusal(error: pytest.ExceptionInfo[InterlockError], cls: type[InterlockError], code: str) -> None:
    assert type(error.value) is cls, repr(error.value)
    assert error.value.code == code, repr(error.value)
    assert error.value.message


def test_every_method_runs_the_ceo_payment_as_a_local_gate_would(api: Api, remote: Any) -> None:
    agent, alice, bob, ceo, payments = (remote(w) for w in ("agent", "alice", "bob", "ceo", "payments"))

    pending = agent.submit(submission())
    assert isinstance(pending, RequestState)
    assert pending.outcome == "pending_approval" and pending.grant is None
    assert pending.reasons == ("policy.approval_required",)
    local = api.gate.status(pending.request_id)
    assert pending.to_json() == local.to_json(), "the SDK reads back exactly the gate's state"
    assert pending.expires_at == local.expires_at
    assert agent.status(pending.request_id).to_json() == local.to_json()

    with pytest.raises(InterlockError) as refused:
        ceo.decide_approval(pending.request_id)
    expect_refusal(refused, ApprovalError, "approval.not_independent")

    # The requester passes its binding code on; approving this sensitive payment needs it.
    code = pending.binding_code
    assert code and pending.sensitive
    with pytest.raises(InterlockError) as unbound:
        alice.decide_approval(pending.request_id)
    expect_refusal(unbound, ApprovalError, "approval.binding_mismatch")
    first = alice.decide_approval(pending.request_id, comment="called the CEO back", binding_code=code)
    assert first.outcome == "pending_approval"
    assert (first.approvals[0]["approver"], first.approvals[0]["channel"]) == ("user:alice", "api")
    approved = bob.decide_approval(pending.request_id, binding_code=code.lower())
    assert approved.outcome == "approved" and approved.grant is None, "only the requester receives the grant"

    # wait() on a request that is already decided returns at once rather than long-polling for a change.
    waited = agent.wait(pending.request_id, 30)
    assert waited.outcome == "approved" and waited.grant == api.gate.status(pending.request_id).grant
    assert waited.grant

    assert agent.jwks() == api.gate.keys.jwks()

    action = {"action": "payments.transfer", "resource": "account:treasury", "params": PARAMS}
    consumed = payments.consume(waited.grant, "payments-service", action)
    assert isinstance(consumed, Consumption)
    assert (consumed.request_id, consumed.executor, consumed.action, consumed.digest) == (
        pending.request_id, "payments-service", "payments.transfer", pending.digest)
    with pytest.raises(InterlockError) as again:
        payments.consume(waited.grant, "payments-service", action)
    expect_refusal(again, GrantError, "grant.already_used")

    reported = payments.report(consumed.jti, True, "paid", executor="payments-service")
    assert reported == ReportedResult(consumed.jti, pending.request_id, "succeeded", "paid")
    with pytest.raises(InterlockError) as twice:
        payments.report(consumed.jti, False)
    expect_refusal(twice, GrantError, "grant.result_recorded")
    final = agent.status(pending.request_id)
    assert final.consumed and final.result == "succeeded" and final.grant is None


def test_wait_long_polls_until_the_quorum_is_met(api: Api, remote: Any) -> None:
    agent, alice, bob = remote("agent"), remote("alice"), remote("bob")
    pending = agent.submit(submission())
    request_id, code = pending.request_id, pending.binding_code
    assert agent.wait(request_id, 0).outcome == "pending_approval", "a zero wait is one read"

    waited: list[RequestState] = []
    waiter = threading.Thread(target=lambda: waited.append(agent.wait(request_id, 30)))
    waiter.start()
    alice.decide_approval(request_id, binding_code=code)
    bob.decide_approval(request_id, binding_code=code)
    waiter.join(timeout=40)
    assert not waiter.is_alive()
    assert waited[0].outcome == "approved" and waited[0].grant


def test_guard_consumes_and_reports_through_a_remote_gate(api: Api, remote: Any) -> None:
    agent, payments = remote("agent"), remote("payments")
    small = submission(params={"amount": 250, "currency": "EUR", "recipient": "DE89370400440532013000"},
                       on_behalf_of=[], channel="api")
    allowed = agent.submit(small)
    assert allowed.outcome == "allowed" and allowed.grant
    paid: list[tuple[int, str, str]] = []

    @guard("payments.transfer", executor="payments-service", gate=payments, resource="account:treasury")
    def transfer(amount: int, currency: str, recipient: str) -> str:
        paid.append((amount, currency, recipient))
        return "ok"

    with pytest.raises(InterlockError) as other_amount:
        transfer(251, "EUR", "DE89370400440532013000", grant=allowed.grant)
    expect_refusal(other_amount, GrantError, "grant.digest_mismatch")
    assert transfer(250, "EUR", "DE89370400440532013000", grant=allowed.grant) == "ok"
    with pytest.raises(InterlockError) as replay:
        transfer(250, "EUR", "DE89370400440532013000", grant=allowed.grant)
    expect_refusal(replay, GrantError, "grant.already_used")
    assert paid == [(250, "EUR", "DE89370400440532013000")], "ran exactly once"
    assert agent.status(allowed.request_id).result == "succeeded"


def test_break_glass_and_its_review_run_as_a_local_gate_would(api: Api, remote: Any) -> None:
    api.gate.policy = load_policy((SEED / "policy.yaml").read_text() + BREAK_GLASS)
    api.tokens["carol"] = api.credentials.add("approver", "user:carol", None, None).token  # type: ignore[arg-type]
    agent, alice, bob, carol, ceo, payments = (remote(w) for w in ("agent", "alice", "bob", "carol", "ceo",
                                                                   "payments"))
    pending = agent.submit(submission())
    look_alike = agent.submit(submission(params={**PARAMS, "recipient": "GB33BUKB20201555555556"}))
    request_id, code = pending.request_id, pending.binding_code
    assert code and look_alike.binding_code and pending.sensitive

    cases: list[tuple[Any, type[InterlockError], str]] = [
        (lambda: alice.break_glass(request_id, WHY), ApprovalError, "approval.binding_mismatch"),
        (lambda: alice.break_glass(request_id, WHY, binding_code=look_alike.binding_code),
         ApprovalError, "approval.binding_mismatch"),
        (lambda: alice.break_glass(request_id, WHY, binding_code="ABC-DEF"), ApprovalError,
         "approval.binding_mismatch"),
        (lambda: bob.break_glass(request_id, WHY, binding_code=code), ApprovalError,
         "approval.break_glass_not_allowed"),
        (lambda: ceo.break_glass(request_id, WHY, binding_code=code), ApprovalError, "approval.not_independent"),
        (lambda: agent.break_glass(request_id, WHY, binding_code=code), AuthError, "auth.forbidden"),
        (lambda: alice.break_glass(request_id, "", binding_code=code), RequestError, "input.invalid"),
        (lambda: alice.break_glass("req_nope", WHY, binding_code=code), ApprovalError, "request.not_found"),
        (lambda: bob.review_break_glass(request_id), ApprovalError, "approval.review_not_open"),
    ]
    for call, cls, code_expected in cases:
        with pytest.raises(InterlockError) as refused:
            call()
        expect_refusal(refused, cls, code_expected)
    assert api.gate.status(request_id).outcome == "pending_approval" and api.gate.open_reviews() == []

    used = alice.break_glass(request_id, WHY, binding_code=code.lower())

    assert isinstance(used, RequestState)
    assert used.outcome == "approved" and used.grant is None, "only the requester receives the grant"
    assert [(a["approver"], a["channel"], a["auth"], a.get("break_glass")) for a in used.approvals] == [
        ("user:alice", "api", "token", True)]
    assert api.gate.status(look_alike.request_id).outcome == "pending_approval"
    grant = agent.status(request_id).grant
    assert grant
    payments.consume(grant, "payments-service",
                     {"action": "payments.transfer", "resource": "account:treasury", "params": PARAMS})

    with pytest.raises(InterlockError) as own:
        alice.review_break_glass(request_id)
    expect_refusal(own, ApprovalError, "approval.not_independent")
    first = bob.review_break_glass(request_id, comment="invoice checked")
    assert isinstance(first, BreakGlassReview)
    assert first == api.gate.open_reviews()[0], "the SDK reads back exactly the gate's review"
    assert (first.used_by, first.entry_id, first.justification, first.closed_at) == (
        "user:alice", "treasury-emergency", WHY, None)
    assert [(s.reviewer_id, s.channel, s.comment) for s in first.signoffs] == [("user:bob", "api", "invoice checked")]
    with pytest.raises(InterlockError) as twice:
        bob.review_break_glass(request_id)
    expect_refusal(twice, ApprovalError, "approval.duplicate")
    second = carol.review_break_glass(request_id)
    assert second.closed_at is not None and [s.reviewer_id for s in second.signoffs] == ["user:bob", "user:carol"]
    assert api.gate.open_reviews() == []


def test_check_ready_and_verify_audit_as_a_local_gate(
    api: Api, remote: Any, server_store: SqliteStore, tmp_path: Path
) -> None:
    agent, admin = remote("agent"), remote("admin")
    agent.submit(submission())
    verified = admin.verify_audit()
    assert isinstance(verified, Verification) and verified.ok
    assert verified == api.gate.verify_audit()
    with pytest.raises(InterlockError) as not_admin:
        agent.verify_audit()
    expect_refusal(not_admin, AuthError, "auth.forbidden")

    db = sqlite3.connect(tmp_path / "interlock.db")
    with db:
        db.execute("UPDATE audit SET leaf = CAST(replace(CAST(leaf AS TEXT), '48000', '480') AS BLOB)"
                   " WHERE CAST(leaf AS TEXT) LIKE '%request.decided%'")
    db.close()
    tampered = admin.verify_audit()
    assert not tampered.ok and tampered.problems == api.gate.verify_audit().problems and tampered.problems

    assert agent.check_ready() is None
    server_store.close()  # the next call opens the file again, and finds a directory there
    (tmp_path / "interlock.db").rename(tmp_path / "moved.db")
    (tmp_path / "interlock.db").mkdir()
    with pytest.raises(InterlockError) as down:
        agent.check_ready()
    expect_refusal(down, StoreError, "store.unavailable")


def test_an_audit_refusal_from_the_server_raises_an_audit_error(api: Api) -> None:
    # No checkpoint signed yet: the server refuses with `audit.no_checkpoint` (404).
    response = api.call("GET", "/v1/audit/checkpoint")
    with pytest.raises(InterlockError) as refused:
        _answer(response)
    expect_refusal(refused, AuditError, "audit.no_checkpoint")
    assert refused.value.detail["status"] == 404


def test_refusals_are_the_local_gates_errors_with_the_servers_codes(api: Api, remote: Any) -> None:
    agent, alice, payments = remote("agent"), remote("alice"), remote("payments")
    stranger = RemoteGate("http://interlock", "ilk_" + "A" * 43, transport=_PortalTransport(api))
    request_id = agent.submit(submission()).request_id

    cases: list[tuple[Any, type[InterlockError], str]] = [
        (lambda: agent.submit(submission(surprise=1)), RequestError, "input.unknown_field"),
        (lambda: agent.submit(b'{"action": "a", "action": "b"}'), RequestError, "input.duplicate_key"),
        (lambda: agent.submit(submission(principal={"id": "agent:other"})), AuthError, "auth.principal_mismatch"),
        (lambda: alice.submit(submission()), AuthError, "auth.forbidden"),
        (lambda: agent.decide_approval(request_id), AuthError, "auth.forbidden"),
        (lambda: agent.status("req_nope"), ApprovalError, "request.not_found"),
        (lambda: agent.status("../jwks"), RequestError, "input.invalid"),
        (lambda: payments.consume("not-a-grant", "payments-service",
                                  {"action": "payments.transfer", "resource": "account:treasury", "params": {}}),
         GrantError, "grant.malformed"),
        (lambda: payments.consume("x", "payments-service", {"action": "a", "resource": "r",
                                                              "params": {"n": float("nan")}}),
         RequestError, "input.invalid"),
        (lambda: agent.consume("x", "payments-service", {"action": "a", "resource": "r"}),
         AuthError, "auth.principal_mismatch"),
        (lambda: payments.report("grt_nope", True), GrantError, "grant.not_issued"),
        (lambda: stranger.status(request_id), AuthError, "auth.invalid"),
    ]
    for call, cls, code in cases:
        with pytest.raises(InterlockError) as refused:
            call()
        expect_refusal(refused, cls, code)
    assert api.gate.status(request_id).outcome == "pending_approval", "no refusal changed anything"
    assert stranger.jwks() == api.gate.keys.jwks(), "the keys are public: no credential is checked there"
    stranger.close()


@pytest.mark.parametrize(("code", "cls"), [
    ("input.invalid", RequestError), ("policy.no_executor", PolicyError), ("approval.expired", ApprovalError),
    ("request.rejected", ApprovalError), ("grant.expired", GrantError), ("auth.revoked", AuthError),
    ("store.unavailable", StoreError), ("keys.unreadable", KeyringError), ("audit.no_checkpoint", AuditError),
    ("audit.out_of_range", AuditError), ("internal", InterlockError),
])
def test_each_reason_code_family_maps_to_the_local_error_class(code: str, cls: type[InterlockError]) -> None:
    error = error_for(code, "m")
    assert type(error) is cls and error.code == code


def test_an_unreachable_server_fails_closed_as_store_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with RemoteGate(f"http://127.0.0.1:{port}", "ilk_x", timeout=2) as gate, pytest.raises(InterlockError) as refused:
        gate.consume("grant", "payments-service", {"action": "a", "resource": "r", "params": {}})
    expect_refusal(refused, StoreError, "store.unavailable")


def test_a_server_that_does_not_answer_in_time_fails_closed_as_store_unavailable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts connections into the backlog, never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with RemoteGate(url, "ilk_x", timeout=0.3) as gate, pytest.raises(InterlockError) as refused:
            gate.consume("grant", "payments-service", {"action": "a", "resource": "r", "params": {}})
    expect_refusal(refused, StoreError, "store.unavailable")


@pytest.mark.parametrize(("status", "body", "code"), [
    (502, b"<html>Bad Gateway</html>", "store.server_error"),
    (500, b"", "store.server_error"),
    (200, b"<html>captive portal</html>", "store.bad_response"),
    (200, b'{"unexpected": true}', "store.bad_response"),
    (404, b"not found", "store.bad_response"),
])
def test_a_response_outside_the_api_contract_fails_closed(status: int, body: bytes, code: str) -> None:
    # The outside world (a proxy or a wrong host in front of the server), so a mock transport.
    transport = httpx.MockTransport(lambda _: httpx.Response(status, content=body))
    with RemoteGate("http://proxy", "ilk_x", transport=transport) as gate, pytest.raises(InterlockError) as refused:
        gate.consume("grant", "payments-service", {"action": "a", "resource": "r", "params": {}})
    expect_refusal(refused, StoreError, code)


def test_the_token_is_not_in_the_repr() -> None:
    with RemoteGate("http://interlock/", "ilk_secret") as gate:
        assert "ilk_secret" not in repr(gate) and gate.url == "http://interlock"
