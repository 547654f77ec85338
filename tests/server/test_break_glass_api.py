"""Break-glass over HTTP: the two endpoints, a refusal, and the inbox listing an overdue review."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import SEED, FixedClock
from interlock.core.policy import load_policy
from interlock.webhooks import Webhooks

from .conftest import Api, consumption, expect_error, submission
from .test_inbox import Browser, browser_on, csrf_of
from .test_webhooks import ENV, Receiver, receiver  # noqa: F401 - the receiver fixture

BREAK_GLASS = """
break_glass:
  - id: treasury-emergency
    who: ["user:alice"]
    actions: ["payments.*"]
    review_within: 2h
"""
WHY = {"justification": "supplier cut-off, finance approvers unreachable"}


def why(code: str) -> dict[str, str]:
    """The break-glass body with the binding code the requester passed on (a payment is sensitive)."""
    return {**WHY, "binding_code": code}


@pytest.fixture
def bg_api(api: Api) -> Api:
    api.gate.policy = load_policy((SEED / "policy.yaml").read_text() + BREAK_GLASS)
    api.tokens["carol"] = api.credentials.add("approver", "user:carol", None, None).token  # type: ignore[arg-type]
    return api


@pytest.fixture
def web(bg_api: Api) -> Iterator[Browser]:
    client = browser_on(bg_api, bg_api.app, "https://interlock")
    yield Browser(bg_api, client)
    bg_api.portal.call(client.aclose)


def pending(api: Api, **changes: Any) -> tuple[str, str]:
    """A pending payment's id and the binding code its requester was given."""
    response = api.call("POST", "/v1/requests", "agent", json=submission(**changes))
    assert response.status_code == 201 and response.json()["outcome"] == "pending_approval", response.text
    return str(response.json()["request_id"]), str(response.json()["approval"]["binding_code"])


def test_break_glass_then_two_sign_offs_over_the_api(bg_api: Api) -> None:
    request_id, code = pending(bg_api)
    path = f"/v1/requests/{request_id}/break-glass"
    expect_error(bg_api.call("POST", path, "bob", json=why(code)), 403, "approval.break_glass_not_allowed")
    expect_error(bg_api.call("POST", path, "agent", json=why(code)), 403, "auth.forbidden")
    expect_error(bg_api.call("POST", path, "alice", json={"justification": "", "binding_code": code}), 400,
                 "input.invalid")

    used = bg_api.call("POST", path, "alice", json=why(code))

    assert used.status_code == 200, used.text
    body = used.json()
    assert body["outcome"] == "approved" and "grant" not in body, "the break-glass user does not receive the grant"
    assert body["approvals"][0]["channel"] == "api" and body["approvals"][0]["auth"] == "token"
    grant = bg_api.call("GET", f"/v1/requests/{request_id}", "agent").json()["grant"]
    consumed = bg_api.call("POST", "/v1/grants/consume", "payments", json=consumption(grant))
    assert consumed.status_code == 200, consumed.text

    reviews = f"{path}/reviews"
    expect_error(bg_api.call("POST", reviews, "alice", json={}), 409, "approval.not_independent")
    expect_error(bg_api.call("POST", reviews, "ceo", json={}), 409, "approval.not_independent")
    first = bg_api.call("POST", reviews, "bob", json={"comment": "invoice checked"})
    assert first.status_code == 200 and first.json()["closed"] is False, first.text
    second = bg_api.call("POST", reviews, "carol", json={})
    assert second.status_code == 200, second.text
    assert second.json()["closed"] is True
    assert [s["reviewer"] for s in second.json()["signoffs"]] == ["user:bob", "user:carol"]


@pytest.mark.parametrize("body", [WHY, {**WHY, "binding_code": ""}, why("ABC-DEF"), "look-alike's"])
def test_breaking_the_glass_on_a_sensitive_action_over_the_api_needs_its_binding_code(
    bg_api: Api, body: dict[str, str] | str
) -> None:
    request_id, code = pending(bg_api)
    look_alike, look_alike_code = pending(bg_api, params={**submission()["params"],
                                                          "recipient": "GB33BUKB20201555555556"})
    if body == "look-alike's":
        body = why(look_alike_code)
    path = f"/v1/requests/{request_id}/break-glass"
    entries = len(list(bg_api.gate.store.audit_entries()))

    error = expect_error(bg_api.call("POST", path, "alice", json=body), 409, "approval.binding_mismatch")

    assert "binding code" in error["message"]
    for rid in (request_id, look_alike):
        state = bg_api.call("GET", f"/v1/requests/{rid}", "agent").json()
        assert state["outcome"] == "pending_approval" and "approvals" not in state and "grant" not in state
    assert bg_api.gate.open_reviews() == []
    refusals = [json.loads(e.leaf) for e in list(bg_api.gate.store.audit_entries())[entries:]]
    assert [(r["kind"], r["data"]["code"], r["data"]["who"], r["data"]["channel"]) for r in refusals] == [
        ("break_glass.refused", "approval.binding_mismatch", "user:alice", "api")]

    used = bg_api.call("POST", path, "alice", json=why(code.lower().replace("-", "")))
    assert used.status_code == 200 and used.json()["outcome"] == "approved", used.text
    assert bg_api.call("GET", f"/v1/requests/{look_alike}", "agent").json()["outcome"] == "pending_approval"


def test_the_break_glass_body_documents_its_binding_code_and_limits_it(bg_api: Api) -> None:
    schema = bg_api.call("GET", "/openapi.json").json()["components"]["schemas"]["BreakGlassBody"]
    assert "binding_code" in schema["properties"] and schema["required"] == ["justification"]
    assert "binding code" in str(schema["properties"]["binding_code"])
    request_id, _ = pending(bg_api)
    expect_error(bg_api.call("POST", f"/v1/requests/{request_id}/break-glass", "alice", json=why("A" * 65)),
                 400, "input.invalid")
    assert bg_api.gate.status(request_id).outcome == "pending_approval"


def test_the_inbox_lists_an_open_review_and_marks_it_overdue(bg_api: Api, web: Browser, clock: FixedClock) -> None:
    request_id, code = pending(bg_api)
    assert bg_api.call("POST", f"/v1/requests/{request_id}/break-glass", "alice", json=why(code)).status_code == 200

    web.sign_in("bob")
    page = web.get("/inbox")
    assert request_id in page.text and "supplier cut-off" in page.text and "OVERDUE" not in page.text

    clock.advance(hours=2)
    web.sign_in("bob")
    overdue = web.get("/inbox")
    assert overdue.status_code == 200 and "OVERDUE" in overdue.text and request_id in overdue.text

    page = web.get(f"/inbox/requests/{request_id}")
    assert "Break-glass review" in page.text
    forged = web.post(f"/inbox/requests/{request_id}/break-glass-review", {"comment": "", "csrf_token": "x"})
    assert forged.status_code == 403 and bg_api.gate.open_reviews()[0].signoffs == ()
    signed = web.post(f"/inbox/requests/{request_id}/break-glass-review",
                      {"comment": "seen", "csrf_token": csrf_of(page)})
    assert signed.status_code == 303, signed.text
    assert [s.reviewer_id for s in bg_api.gate.open_reviews()[0].signoffs] == ["user:bob"]


def test_every_notified_group_is_alerted_at_once(bg_api: Api, receiver: Receiver) -> None:  # noqa: F811
    bg_api.gate.policy = load_policy(
        (SEED / "policy.yaml").read_text() + BREAK_GLASS
        + f"notify:\n  finance-approvers:\n    url: {receiver.url}\n    secret_env: FINANCE_HOOK_SECRET\n"
        f"  change-approvers:\n    url: {receiver.url}\n    secret_env: FINANCE_HOOK_SECRET\n")
    webhooks = Webhooks.attach(bg_api.gate, "https://interlock.example", ENV)
    assert webhooks is not None
    try:
        request_id, code = pending(bg_api)
        assert json.loads(receiver.next()[1])["event"] == "request.pending_approval"
        assert bg_api.call("POST", f"/v1/requests/{request_id}/break-glass", "alice",
                           json=why(code)).status_code == 200
        alerts = [json.loads(receiver.next()[1]) for _ in range(2)]
    finally:
        webhooks.close()
    assert sorted(a["group"] for a in alerts) == ["change-approvers", "finance-approvers"]
    assert {(a["event"], a["request_id"], a["used_by"], a["justification"]) for a in alerts} == {
        ("request.break_glass", request_id, "user:alice", WHY["justification"])}
