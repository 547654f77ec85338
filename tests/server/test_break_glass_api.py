"""Break-glass over HTTP: the two endpoints, a refusal, and the inbox listing an overdue review."""

from __future__ import annotations

import json
from collections.abc import Iterator

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


def pending(api: Api) -> str:
    response = api.call("POST", "/v1/requests", "agent", json=submission())
    assert response.status_code == 201 and response.json()["outcome"] == "pending_approval", response.text
    return str(response.json()["request_id"])


def test_break_glass_then_two_sign_offs_over_the_api(bg_api: Api) -> None:
    request_id = pending(bg_api)
    path = f"/v1/requests/{request_id}/break-glass"
    expect_error(bg_api.call("POST", path, "bob", json=WHY), 403, "approval.break_glass_not_allowed")
    expect_error(bg_api.call("POST", path, "agent", json=WHY), 403, "auth.forbidden")
    expect_error(bg_api.call("POST", path, "alice", json={"justification": ""}), 400, "input.invalid")

    used = bg_api.call("POST", path, "alice", json=WHY)

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


def test_the_inbox_lists_an_open_review_and_marks_it_overdue(bg_api: Api, web: Browser, clock: FixedClock) -> None:
    request_id = pending(bg_api)
    assert bg_api.call("POST", f"/v1/requests/{request_id}/break-glass", "alice", json=WHY).status_code == 200

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
        request_id = pending(bg_api)
        assert json.loads(receiver.next()[1])["event"] == "request.pending_approval"
        assert bg_api.call("POST", f"/v1/requests/{request_id}/break-glass", "alice", json=WHY).status_code == 200
        alerts = [json.loads(receiver.next()[1]) for _ in range(2)]
    finally:
        webhooks.close()
    assert sorted(a["group"] for a in alerts) == ["change-approvers", "finance-approvers"]
    assert {(a["event"], a["request_id"], a["used_by"], a["justification"]) for a in alerts} == {
        ("request.break_glass", request_id, "user:alice", WHY["justification"])}
