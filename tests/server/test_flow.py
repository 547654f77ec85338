"""The seed's CEO payment over HTTP: submit as the agent, refused and accepted approvals, long-poll, consume once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import httpx
import jwt
import pytest

from conftest import FixedClock
from interlock.gate import Gate
from interlock.notify import Subscription

from .conftest import Api, consumption, expect_error, submission


def _submit(api: Api) -> dict[str, object]:
    response = api.call("POST", "/v1/requests", "agent", json=submission())
    assert response.status_code == 201, response.text
    return response.json()


def test_the_ceo_payment_needs_two_independent_approvers_and_its_grant_is_consumed_once(api: Api) -> None:
    pending = _submit(api)
    assert pending["outcome"] == "pending_approval"
    assert pending["reasons"] == ["policy.approval_required"]
    assert pending["approval"]["requirements"][0]["quorum"] == 2
    assert "grant" not in pending
    request_id = pending["request_id"]
    assert api.gate.status(request_id).to_json() == pending, "the 201 body is the request's state"
    # The requester is given the binding code and tells it to the approvers over its own channel.
    code = pending["approval"]["binding_code"]
    assert pending["approval"]["binding_code_required"] is True

    # The CEO gets an approver credential: recognising him is not approving (INVARIANT 4).
    expect_error(api.call("POST", f"/v1/requests/{request_id}/approvals", "ceo", json={"decision": "approve"}),
                 409, "approval.not_independent")

    first = api.call("POST", f"/v1/requests/{request_id}/approvals", "alice",
                     json={"decision": "approve", "comment": "called the CEO back", "binding_code": code})
    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "pending_approval"
    assert first.json()["approvals"][0] | {"at": None} == {
        "id": first.json()["approvals"][0]["id"], "approver": "user:alice", "channel": "api", "auth": "token",
        "verdict": "approve", "comment": "called the CEO back", "at": None, "rubber_stamp": False}
    expect_error(api.call("POST", f"/v1/requests/{request_id}/approvals", "alice", json={"decision": "approve"}),
                 409, "approval.duplicate")

    approved = api.call("POST", f"/v1/requests/{request_id}/approvals", "bob",
                        json={"decision": "approve", "binding_code": code}).json()
    assert approved["outcome"] == "approved"
    assert "grant" not in approved, "the grant is the requester's executor's capability, never the approver's"
    grant = api.call("GET", f"/v1/requests/{request_id}", "agent").json()["grant"]

    # The grant verifies with another JOSE implementation from the published JWKS alone.
    jwks = api.call("GET", "/.well-known/jwks.json").json()
    key = jwt.PyJWK(jwks["keys"][0])
    claims = jwt.decode(grant, key.key, algorithms=["EdDSA"], audience="payments-service",
                        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False})
    assert claims["aud"] == "payments-service"
    # How each approver authenticated is in the grant, for an executor that requires a strength.
    in_grant = sorted(claims["authorization_details"][0]["approvals"], key=lambda a: a["approver"])
    assert in_grant == [{"id": a["id"], "approver": a["approver"], "channel": "api", "auth": "token"}
                        for a in sorted(approved["approvals"], key=lambda a: a["approver"])]
    assert [a["approver"] for a in in_grant] == ["user:alice", "user:bob"]

    # Another principal cannot consume as the executor; the body cannot name another executor.
    expect_error(api.call("POST", "/v1/grants/consume", "agent", json=consumption(grant)), 403, "grant.wrong_executor")
    expect_error(api.call("POST", "/v1/grants/consume", "agent", json=consumption(grant, executor="payments-service")),
                 403, "auth.principal_mismatch")
    changed = submission(params={"amount": 48001, "currency": "EUR", "recipient": "GB33BUKB20201555555555"})
    expect_error(api.call("POST", "/v1/grants/consume", "payments", json=consumption(grant, changed)),
                 403, "grant.digest_mismatch")

    consumed = api.call("POST", "/v1/grants/consume", "payments", json=consumption(grant, executor="payments-service"))
    assert consumed.status_code == 200, consumed.text
    jti = consumed.json()["jti"]
    assert consumed.json() == {"consumed": True, "jti": jti, "request_id": request_id,
                               "executor": "payments-service", "action": "payments.transfer",
                               "digest": pending["digest"]}
    expect_error(api.call("POST", "/v1/grants/consume", "payments", json=consumption(grant)), 409, "grant.already_used")

    # Only the grant's executor reports its result.
    expect_error(api.call("POST", f"/v1/grants/{jti}/result", "agent", json={"result": "failed"}),
                 403, "grant.wrong_executor")
    reported = api.call("POST", f"/v1/grants/{jti}/result", "payments", json={"result": "succeeded", "detail": "ok"})
    assert reported.json() == {"jti": jti, "request_id": request_id, "result": "succeeded", "detail": "ok"}
    expect_error(api.call("POST", f"/v1/grants/{jti}/result", "payments", json={"result": "failed"}),
                 409, "grant.result_recorded")
    expect_error(api.call("POST", "/v1/grants/grt_nope/result", "payments", json={"result": "failed"}),
                 403, "grant.not_issued")

    final = api.call("GET", f"/v1/requests/{request_id}", "agent").json()
    assert final["consumed"] is True and final["result"] == "succeeded" and "grant" not in final

    verification = api.call("GET", "/v1/audit/verify", "admin").json()
    assert verification["ok"] is True and verification["problems"] == []
    kinds = [json.loads(e.leaf)["kind"] for e in api.gate.store.audit_entries()]
    assert kinds.count("credential.added") == 7
    assert {"approval.refused", "approval.approved", "grant.consumed", "grant.refused",
            "execution.reported"} <= set(kinds)


@pytest.mark.parametrize("body", [{}, {"binding_code": ""}, {"binding_code": "ABC-DEF"}])
def test_approving_a_sensitive_action_over_the_api_needs_its_binding_code(api: Api, body: dict[str, str]) -> None:
    pending = _submit(api)
    request_id = pending["request_id"]
    expect_error(api.call("POST", f"/v1/requests/{request_id}/approvals", "alice",
                          json={"decision": "approve", **body}), 409, "approval.binding_mismatch")
    assert api.call("GET", f"/v1/requests/{request_id}", "agent").json().get("approvals") is None
    typed = pending["approval"]["binding_code"].lower()
    assert api.call("POST", f"/v1/requests/{request_id}/approvals", "alice",
                    json={"decision": "approve", "binding_code": typed}).status_code == 200


def test_a_rejection_over_the_api_needs_no_binding_code(api: Api) -> None:
    request_id = _submit(api)["request_id"]
    assert api.call("POST", f"/v1/requests/{request_id}/approvals", "alice",
                    json={"decision": "reject"}).json()["outcome"] == "rejected"


def test_an_approval_over_the_requests_own_channel_does_not_count(api: Api) -> None:
    pending = api.call("POST", "/v1/requests", "agent", json=submission(channel="api")).json()
    expect_error(api.call("POST", f"/v1/requests/{pending['request_id']}/approvals", "alice",
                          json={"decision": "approve"}), 409, "approval.same_channel")


def test_a_rejection_ends_the_request(api: Api) -> None:
    request_id = _submit(api)["request_id"]
    rejected = api.call("POST", f"/v1/requests/{request_id}/approvals", "alice",
                        json={"decision": "reject", "comment": "not the CEO's voice"})
    assert rejected.json()["outcome"] == "rejected"
    expect_error(api.call("POST", f"/v1/requests/{request_id}/approvals", "bob", json={"decision": "approve"}),
                 409, "request.rejected")


def test_a_late_approval_is_refused_as_expired(api: Api, clock: FixedClock) -> None:
    request_id = _submit(api)["request_id"]
    clock.advance(minutes=16)
    assert api.call("GET", f"/v1/requests/{request_id}", "alice").json()["outcome"] == "expired"
    expect_error(api.call("POST", f"/v1/requests/{request_id}/approvals", "alice", json={"decision": "approve"}),
                 410, "approval.expired")


def test_an_allowed_request_comes_with_its_grant_and_a_denied_one_is_a_decision(api: Api) -> None:
    small = submission(params={"amount": 100, "currency": "EUR", "recipient": "DE89370400440532013000"},
                       on_behalf_of=[])
    allowed = api.call("POST", "/v1/requests", "agent", json=small)
    assert allowed.status_code == 201 and allowed.json()["outcome"] == "allowed" and allowed.json()["grant"]
    denied = api.call("POST", "/v1/requests", "agent", json=submission(action="payments.refund"))
    assert denied.status_code == 201 and denied.json()["outcome"] == "denied"


# --- long-poll ---------------------------------------------------------------------------------------


@contextmanager
def _waiting_announced(api: Api, monkeypatch: pytest.MonkeyPatch) -> Iterator[asyncio.Event]:
    """An event set when a long-poll has read its starting state and subscribed: then a change must wake it."""
    subscribed = asyncio.Event()
    subscribe = api.gate.notifier.subscribe

    @contextmanager
    def announcing(request_id: str) -> Iterator[Subscription]:
        with subscribe(request_id) as subscription:
            subscribed.set()
            yield subscription

    monkeypatch.setattr(api.gate.notifier, "subscribe", announcing)
    yield subscribed


def _long_poll_while(api: Api, request_id: str, change: Callable[[httpx.AsyncClient], Awaitable[object]],
                     monkeypatch: pytest.MonkeyPatch, who: str = "agent") -> tuple[httpx.Response, float]:
    """Start `GET ?wait=30` as `who`; once it waits, make `change`; return its response and how long it took."""

    async def scenario() -> tuple[httpx.Response, float]:
        with _waiting_announced(api, monkeypatch) as subscribed:
            transport = httpx.ASGITransport(app=api.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://interlock") as client:
                started = time.monotonic()
                waiting = asyncio.ensure_future(
                    client.get(f"/v1/requests/{request_id}", params={"wait": 30}, headers=api.auth(who)))
                await asyncio.wait_for(subscribed.wait(), 10)
                await change(client)
                polled = await asyncio.wait_for(waiting, 40)
                return polled, time.monotonic() - started

    return asyncio.run(scenario())


def test_a_long_poll_returns_as_soon_as_the_approval_lands(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    pending = _submit(api)
    request_id, code = pending["request_id"], pending["approval"]["binding_code"]
    approve_body = {"decision": "approve", "binding_code": code}
    api.call("POST", f"/v1/requests/{request_id}/approvals", "alice", json=approve_body)
    approvals: list[httpx.Response] = []

    async def approve(client: httpx.AsyncClient) -> None:
        approvals.append(await client.post(f"/v1/requests/{request_id}/approvals",
                                           json=approve_body, headers=api.auth("bob")))

    polled, elapsed = _long_poll_while(api, request_id, approve, monkeypatch)
    assert approvals[0].status_code == 200, approvals[0].text
    assert polled.status_code == 200, polled.text
    assert "grant" not in approvals[0].json(), "the approver who completes the quorum does not receive the grant"
    assert polled.json()["outcome"] == "approved" and polled.json()["grant"] == api.gate.status(request_id).grant
    assert elapsed < 10, f"the long-poll waited {elapsed:.1f}s for a change that had landed"


def test_an_approvers_long_poll_returns_on_the_change_without_the_grant(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    pending = _submit(api)
    request_id, code = pending["request_id"], pending["approval"]["binding_code"]
    approve_body = {"decision": "approve", "binding_code": code}
    api.call("POST", f"/v1/requests/{request_id}/approvals", "alice", json=approve_body)

    async def approve(client: httpx.AsyncClient) -> None:
        await client.post(f"/v1/requests/{request_id}/approvals", json=approve_body, headers=api.auth("bob"))

    polled, elapsed = _long_poll_while(api, request_id, approve, monkeypatch, who="alice")
    assert polled.status_code == 200, polled.text
    assert polled.json()["outcome"] == "approved" and "grant" not in polled.json()
    grant = api.gate.status(request_id).grant
    assert grant and grant not in polled.text
    assert elapsed < 10, f"the long-poll waited {elapsed:.1f}s for a change that had landed"


def test_a_long_poll_sees_a_change_made_through_another_gate_on_the_same_store(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process (here: another Gate, whose notifier this app never hears) is seen by the bounded poll."""
    pending = _submit(api)
    request_id, code = pending["request_id"], pending["approval"]["binding_code"]
    elsewhere = Gate(api.gate.store, api.gate.policy, api.gate.keys, clock=api.gate.clock)

    async def approve_elsewhere(_: httpx.AsyncClient) -> None:
        await asyncio.to_thread(lambda: elsewhere.decide_approval(request_id, "user:alice", "email", binding_code=code))

    polled, elapsed = _long_poll_while(api, request_id, approve_elsewhere, monkeypatch)
    assert polled.json()["approvals"][0]["approver"] == "user:alice"
    assert elapsed < 10


def test_a_long_poll_without_a_change_returns_the_same_state_at_its_timeout(api: Api) -> None:
    request_id = _submit(api)["request_id"]
    started = time.monotonic()
    polled = api.call("GET", f"/v1/requests/{request_id}", "alice", params={"wait": 0.2})
    assert polled.status_code == 200
    assert polled.json()["outcome"] == "pending_approval"
    assert 0.2 <= time.monotonic() - started < 5
