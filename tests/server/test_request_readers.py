"""Who may read a request and what they see: the requester with its grant; approvers who take part in it, and
admins, without it; every other approver is refused, over the API and in the inbox."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from conftest import SEED
from interlock.core.policy import load_policy

from .conftest import Api, consumption, expect_error, submission
from .test_inbox import Browser, assert_refused, browser_on

# user:grace (an on-call lead) may break the glass on payments, but no payment rule names her.
BREAK_GLASS = """
break_glass:
  - id: treasury-emergency
    who: ["user:grace"]
    actions: ["payments.*"]
    review_within: 2h
"""
WHY = {"justification": "supplier cut-off, finance approvers unreachable"}
SMALL = {"amount": 100, "currency": "EUR", "recipient": "DE89370400440532013000"}


@pytest.fixture
def readers(api: Api) -> Api:
    """The seed's callers, and approvers no payment rule names: erin (change approvers), zed (in no group), grace."""
    api.gate.policy = load_policy((SEED / "policy.yaml").read_text() + BREAK_GLASS)
    for name, subject in [("erin", "user:erin"), ("zed", "user:zed"), ("grace", "user:grace")]:
        api.tokens[name] = api.credentials.add("approver", subject, None, None).token
    return api


@pytest.fixture
def web(readers: Api) -> Iterator[Callable[[str], Browser]]:
    """A browser signed in to the inbox as the given approver, one per call."""
    opened: list[Browser] = []

    def signed_in(who: str) -> Browser:
        opened.append(Browser(readers, browser_on(readers, readers.app, "https://interlock")))
        opened[-1].sign_in(who)
        return opened[-1]

    yield signed_in
    for browser in opened:
        readers.portal.call(browser.client.aclose)


def pending(api: Api) -> dict[str, str]:
    response = api.call("POST", "/v1/requests", "agent", json=submission())
    assert response.status_code == 201 and response.json()["outcome"] == "pending_approval", response.text
    return {"id": response.json()["request_id"], "code": response.json()["approval"]["binding_code"],
            "digest": response.json()["digest"]}


def approve(api: Api, request: dict[str, str], *who: str) -> None:
    for approver in who:
        answer = api.call("POST", f"/v1/requests/{request['id']}/approvals", approver,
                          json={"decision": "approve", "binding_code": request["code"]})
        assert answer.status_code == 200, answer.text


def assert_refused_without_data(api: Api, request: dict[str, str], who: str, **kwargs: object) -> None:
    refused = api.call("GET", f"/v1/requests/{request['id']}", who, **kwargs)
    expect_error(refused, 403, "auth.forbidden")
    assert list(refused.json()) == ["error"]
    assert "etag" not in refused.headers
    for secret in (request["digest"], request["code"], "account:treasury", "GB33BUKB20201555555555"):
        assert secret not in refused.text


def test_an_approver_with_no_part_in_a_request_is_refused_and_learns_nothing(readers: Api) -> None:
    request = pending(readers)
    for who in ("erin", "zed", "grace", "ceo"):
        assert_refused_without_data(readers, request, who)
    approve(readers, request, "alice", "bob")
    for who in ("erin", "zed", "grace", "ceo"):
        assert_refused_without_data(readers, request, who)


def test_the_refusal_comes_before_the_long_poll(readers: Api) -> None:
    request = pending(readers)
    started = time.monotonic()
    assert_refused_without_data(readers, request, "erin", params={"wait": 30})
    assert time.monotonic() - started < 5, "a refused reader must not be held by the long-poll"


def test_a_required_approver_reads_the_request_before_and_after_approval_but_never_its_grant(readers: Api) -> None:
    request = pending(readers)
    path = f"/v1/requests/{request['id']}"
    before = readers.call("GET", path, "bob")
    assert before.status_code == 200 and before.json()["outcome"] == "pending_approval"
    assert before.json()["approval"]["binding_code"] == request["code"]

    approve(readers, request, "alice", "bob")
    grant = readers.gate.status(request["id"]).grant
    assert grant
    for who in ("alice", "bob"):
        after = readers.call("GET", path, who)
        assert after.status_code == 200 and after.json()["outcome"] == "approved", after.text
        assert "grant" not in after.json() and grant not in after.text
        assert sorted(a["approver"] for a in after.json()["approvals"]) == ["user:alice", "user:bob"]
    # The ETag names what this caller sees, and it changed when the grant was issued.
    assert after.headers["etag"] != before.headers["etag"]


def test_the_requester_gets_the_grant_and_an_admin_reads_without_it(readers: Api) -> None:
    request = pending(readers)
    approve(readers, request, "alice", "bob")
    path = f"/v1/requests/{request['id']}"
    grant = readers.gate.status(request["id"]).grant
    assert grant

    mine = readers.call("GET", path, "agent")
    assert mine.status_code == 200 and mine.json()["grant"] == grant
    admin = readers.call("GET", path, "admin")
    assert admin.status_code == 200 and admin.json()["outcome"] == "approved"
    assert "grant" not in admin.json() and grant not in admin.text
    assert admin.headers["etag"] != mine.headers["etag"], "each caller's ETag names what it receives"
    assert readers.call("POST", "/v1/grants/consume", "payments", json=consumption(grant)).status_code == 200


def test_an_allowed_request_needs_no_approver_so_only_its_requester_and_an_admin_read_it(readers: Api) -> None:
    allowed = readers.call("POST", "/v1/requests", "agent", json=submission(params=SMALL, on_behalf_of=[])).json()
    assert allowed["outcome"] == "allowed" and allowed["grant"]
    path = f"/v1/requests/{allowed['request_id']}"
    assert readers.call("GET", path, "agent").json()["grant"] == allowed["grant"]
    assert "grant" not in readers.call("GET", path, "admin").json()
    for who in ("alice", "erin"):
        expect_error(readers.call("GET", path, who), 403, "auth.forbidden")


def test_an_approver_who_rejected_still_reads_the_decided_request(readers: Api) -> None:
    request = pending(readers)
    rejected = readers.call("POST", f"/v1/requests/{request['id']}/approvals", "alice", json={"decision": "reject"})
    assert rejected.json()["outcome"] == "rejected"
    read = readers.call("GET", f"/v1/requests/{request['id']}", "alice")
    assert read.status_code == 200 and read.json()["outcome"] == "rejected"


def test_break_glass_lets_its_user_and_its_possible_reviewers_read_never_the_grant(readers: Api) -> None:
    request = pending(readers)
    path = f"/v1/requests/{request['id']}"
    for who in ("grace", "erin"):
        expect_error(readers.call("GET", path, who), 403, "auth.forbidden")

    used = readers.call("POST", f"{path}/break-glass", "grace", json={**WHY, "binding_code": request["code"]})
    assert used.status_code == 200 and used.json()["outcome"] == "approved", used.text
    grant = readers.gate.status(request["id"]).grant
    assert grant and "grant" not in used.json(), "the break-glass user does not receive the grant"

    # grace broke the glass; erin, in a policy group, may sign off its review; zed is in no group.
    for who in ("grace", "erin"):
        read = readers.call("GET", path, who)
        assert read.status_code == 200 and read.json()["outcome"] == "approved", (who, read.text)
        assert grant not in read.text
    expect_error(readers.call("GET", path, "zed"), 403, "auth.forbidden")
    assert readers.call("POST", f"{path}/break-glass/reviews", "erin", json={}).status_code == 200
    assert readers.call("GET", path, "agent").json()["grant"] == grant


# --- the inbox ---------------------------------------------------------------------------------


def test_the_inbox_refuses_a_request_page_to_an_approver_with_no_part_in_it(
    readers: Api, web: Callable[[str], Browser]
) -> None:
    request = pending(readers)
    for who in ("erin", "zed", "ceo"):
        page = web(who).get(f"/inbox/requests/{request['id']}")
        assert_refused(page, 403, "auth.forbidden")
        for secret in (request["code"], "account:treasury", "GB33BUKB20201555555555", "agent:finance-assistant"):
            assert secret not in page.text
        assert f'href="/inbox/requests/{request["id"]}"' not in page.text

    assert web("alice").get(f"/inbox/requests/{request['id']}").status_code == 200


def test_the_inbox_page_never_shows_the_grant(readers: Api, web: Callable[[str], Browser]) -> None:
    request = pending(readers)
    approve(readers, request, "alice", "bob")
    grant = readers.gate.status(request["id"]).grant
    assert grant
    page = web("bob").get(f"/inbox/requests/{request['id']}")
    assert page.status_code == 200 and grant not in page.text


def test_the_inbox_lists_an_open_break_glass_review_only_to_those_who_may_sign_it_off(
    readers: Api, web: Callable[[str], Browser]
) -> None:
    request = pending(readers)
    assert readers.call("POST", f"/v1/requests/{request['id']}/break-glass", "grace",
                        json={**WHY, "binding_code": request["code"]}).status_code == 200
    assert request["id"] in web("erin").get("/inbox").text
    zed = web("zed")
    listed = zed.get("/inbox")
    assert listed.status_code == 200 and request["id"] not in listed.text
    assert_refused(zed.get(f"/inbox/requests/{request['id']}"), 403, "auth.forbidden")
