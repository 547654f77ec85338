"""The approver inbox over HTTP on the real ASGI app: sign-in, sessions, what is listed and shown, CSRF, decisions."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from markupsafe import escape

from conftest import SEED, FixedClock, code_of
from interlock.core.policy import load_policy
from interlock.credentials import Credentials
from interlock.gate import Gate
from interlock.server import create_app

from .conftest import Api, submission

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
HOSTILE_SCRIPT = "<script>alert(1)</script>"
HOSTILE_IMG = "<img src=x onerror=alert(1)>"
LOOKALIKE = "p\u0430ypal.com"  # a Cyrillic а (U+0430) in place of the Latin a


@dataclass
class Browser:
    """A cookie-keeping HTTP client on the same app, over https (the session cookie is `Secure`)."""

    api: Api
    client: httpx.AsyncClient

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.api.portal.call(lambda: self.client.get(path, **kwargs))

    def post(self, path: str, data: dict[str, str] | str, **kwargs: Any) -> httpx.Response:
        if isinstance(data, str):
            headers = {"content-type": "application/x-www-form-urlencoded", **kwargs.pop("headers", {})}
            return self.api.portal.call(lambda: self.client.post(path, content=data, headers=headers, **kwargs))
        return self.api.portal.call(lambda: self.client.post(path, data=data, **kwargs))

    def sign_in(self, who: str) -> httpx.Response:
        form = self.get("/inbox/login")
        signed_in = self.post("/inbox/login", {"token": self.api.tokens[who], "csrf_token": csrf_of(form)})
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/inbox", signed_in.text
        return signed_in

    def decide(self, request_id: str, decision: str = "approve", comment: str = "",
               binding_code: str | None = None) -> httpx.Response:
        """Post a decision with the binding code typed in: `binding_code`, or else the one the requester was given."""
        page = self.get(f"/inbox/requests/{request_id}")
        typed = code_of(self.api.gate, request_id) if binding_code is None else binding_code
        return self.post(f"/inbox/requests/{request_id}/decision",
                         {"decision": decision, "comment": comment, "binding_code": typed or "",
                          "csrf_token": csrf_of(page)})


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def browser_on(api: Api, app: Any, base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@pytest.fixture
def web(api: Api) -> Iterator[Browser]:
    client = browser_on(api, api.app, "https://interlock")
    yield Browser(api, client)
    api.portal.call(client.aclose)


@pytest.fixture
def other_web(api: Api) -> Iterator[Browser]:
    client = browser_on(api, api.app, "https://interlock")
    yield Browser(api, client)
    api.portal.call(client.aclose)


def submit(api: Api, **changes: Any) -> str:
    response = api.call("POST", "/v1/requests", "agent", json=submission(**changes))
    assert response.status_code == 201 and response.json()["outcome"] == "pending_approval", response.text
    return str(response.json()["request_id"])


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("text/html")
    assert f"<code>{code}</code>" in response.text, response.text


def approvals_of(api: Api, request_id: str) -> list[tuple[str, str, str]]:
    return [(a["approver"], a["channel"], a["verdict"]) for a in api.gate.status(request_id).approvals]


# --- signing in -------------------------------------------------------------------------------


def test_an_approver_signs_in_with_their_token_and_gets_a_strict_session_cookie(web: Browser) -> None:
    signed_in = web.sign_in("alice")

    cookie = next(c for c in signed_in.headers.get_list("set-cookie") if c.startswith("__Host-interlock-session="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= flags
    assert not any(flag.startswith(("domain", "max-age", "expires")) for flag in flags)
    inbox = web.get("/inbox")
    assert inbox.status_code == 200 and "signed in as" in inbox.text and "user:alice" in inbox.text


def test_dev_insecure_cookies_drops_secure_for_plain_http_on_loopback(api: Api) -> None:
    app = create_app(api.gate, api.credentials, dev_insecure_cookies=True)
    web = Browser(api, browser_on(api, app, "http://127.0.0.1"))
    try:
        signed_in = web.sign_in("alice")
        cookie = next(c for c in signed_in.headers.get_list("set-cookie") if c.startswith("interlock-session="))
        assert "secure" not in cookie.lower() and "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        assert web.get("/inbox").status_code == 200
    finally:
        api.portal.call(web.client.aclose)


@pytest.mark.parametrize(("token", "status", "code"), [
    ("ilk_" + "A" * 43, 401, "auth.invalid"),
    ("not a token", 401, "auth.invalid"),
    ("", 401, "auth.missing"),
])
def test_a_bad_token_does_not_sign_in(web: Browser, token: str, status: int, code: str) -> None:
    form = web.get("/inbox/login")
    refused = web.post("/inbox/login", {"token": token, "csrf_token": csrf_of(form)})
    assert_refused(refused, status, code)
    assert not any(c.startswith("__Host-interlock-session=") for c in refused.headers.get_list("set-cookie"))
    assert web.get("/inbox").status_code == 303


def test_a_principal_or_revoked_credential_does_not_sign_in(web: Browser, api: Api) -> None:
    form = web.get("/inbox/login")
    assert_refused(web.post("/inbox/login", {"token": api.tokens["agent"], "csrf_token": csrf_of(form)}),
                   403, "auth.forbidden")
    bob = next(c for c in api.credentials.list("approver") if c.subject_id == "user:bob")
    api.credentials.revoke(bob.id)
    assert_refused(web.post("/inbox/login", {"token": api.tokens["bob"], "csrf_token": csrf_of(form)}),
                   401, "auth.revoked")


def test_signing_in_needs_the_login_forms_own_token(web: Browser, api: Api) -> None:
    refused = web.post("/inbox/login", {"token": api.tokens["alice"], "csrf_token": "forged"})
    assert_refused(refused, 403, "auth.csrf")
    assert web.get("/inbox").status_code == 303


# --- sessions ---------------------------------------------------------------------------------


def test_every_page_needs_a_session(web: Browser, api: Api) -> None:
    request_id = submit(api)
    for path in ("/inbox", f"/inbox/requests/{request_id}"):
        moved = web.get(path)
        assert moved.status_code == 303 and moved.headers["location"] == "/inbox/login"
    refused = web.post(f"/inbox/requests/{request_id}/decision", {"decision": "approve", "csrf_token": "x"})
    assert_refused(refused, 401, "auth.session")
    web.client.cookies.set("__Host-interlock-session", "guessed-session-id", domain="interlock")
    assert web.get("/inbox").status_code == 303
    assert approvals_of(api, request_id) == []


def test_a_session_ends_after_30_idle_minutes_and_activity_keeps_it(web: Browser, clock: FixedClock) -> None:
    web.sign_in("alice")
    for _ in range(3):
        clock.advance(minutes=20)
        assert web.get("/inbox").status_code == 200
    clock.advance(minutes=30)
    assert web.get("/inbox").status_code == 303


def test_revoking_the_credential_ends_its_sessions_on_the_next_request(web: Browser, api: Api) -> None:
    web.sign_in("alice")
    request_id = submit(api)
    page = web.get(f"/inbox/requests/{request_id}")
    alice = next(c for c in api.credentials.list("approver") if c.subject_id == "user:alice")
    api.credentials.revoke(alice.id)

    refused = web.post(f"/inbox/requests/{request_id}/decision",
                       {"decision": "approve", "comment": "", "csrf_token": csrf_of(page)})
    assert_refused(refused, 401, "auth.revoked")
    assert web.get("/inbox").status_code == 303  # the session is gone, not just refused once
    assert approvals_of(api, request_id) == []


def test_signing_out_ends_the_session(web: Browser) -> None:
    web.sign_in("alice")
    inbox = web.get("/inbox")
    assert_refused(web.post("/inbox/logout", {"csrf_token": "wrong"}), 403, "auth.csrf")
    out = web.post("/inbox/logout", {"csrf_token": csrf_of(inbox)})
    assert out.status_code == 303 and out.headers["location"] == "/inbox/login"
    assert web.get("/inbox").status_code == 303


# --- what an approver sees ----------------------------------------------------------------------


def test_the_inbox_lists_only_what_this_approver_may_still_decide(
    web: Browser, other_web: Browser, api: Api, clock: FixedClock
) -> None:
    allowed = api.call("POST", "/v1/requests", "agent", json=submission(
        params={"amount": 10, "currency": "EUR", "recipient": "DE89370400440532013000"}))
    assert allowed.json()["outcome"] == "allowed"
    expired = submit(api)
    clock.advance(minutes=10)
    waiting = submit(api)
    for_alice_herself = submit(api, on_behalf_of=[{"id": "user:alice", "kind": "human"}])
    decided_by_alice = submit(api)
    approve = {"decision": "approve", "binding_code": code_of(api.gate, decided_by_alice)}
    assert api.call("POST", f"/v1/requests/{decided_by_alice}/approvals", "alice", json=approve).status_code == 200
    clock.advance(minutes=6)  # the first request's 15 minutes are over

    web.sign_in("alice")
    other_web.sign_in("bob")
    listed = {who: set(re.findall(r'href="/inbox/requests/([^"]+)"', browser.get("/inbox").text))
              for who, browser in (("alice", web), ("bob", other_web))}
    assert listed == {"alice": {waiting}, "bob": {waiting, for_alice_herself, decided_by_alice}}
    assert expired not in listed["bob"]


def test_the_request_page_shows_everything_the_approver_decides_on(web: Browser, api: Api) -> None:
    request_id = submit(api, on_behalf_of=[{"id": "user:ceo", "kind": "human"}, {"id": "user:cfo", "kind": "human"}],
                        justification="CEO asked in chat, urgent")
    web.sign_in("alice")
    page = web.get(f"/inbox/requests/{request_id}")

    assert page.status_code == 200
    text = page.text
    state = api.gate.status(request_id)
    assert "agent:finance-assistant" in text and "(agent)" in text
    assert text.index("user:ceo") < text.index("user:cfo")  # the delegation chain, in order
    assert "<code>chat</code>" in text and "CEO asked in chat, urgent" in text
    assert "<code>other-transfers-need-two</code>" in text and "<code>policy.approval_required</code>" in text
    assert str(escape(state.explanation)) in text
    canonical = '{"amount":48000,"currency":"EUR","recipient":"GB33BUKB20201555555555"}'
    assert f'<pre class="params">{escape(canonical)}</pre>' in text
    digest = state.digest
    assert f"{digest[0:4]} {digest[4:8]} {digest[8:12]} {digest[12:16]}" in text and digest in text
    assert "0 of 2" in text and state.expires_at is not None and state.expires_at.isoformat() in text


def test_hostile_params_render_as_text(web: Browser, api: Api) -> None:
    request_id = submit(api, params={"amount": 48000, "currency": "EUR", "recipient": "GB33BUKB20201555555555",
                                     "memo": HOSTILE_SCRIPT, "note": HOSTILE_IMG},
                        justification=f"</dd>{HOSTILE_SCRIPT}")
    web.sign_in("alice")
    text = web.get(f"/inbox/requests/{request_id}").text
    inbox = web.get("/inbox").text

    for html in (text, inbox):
        assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text


def test_non_ascii_identifiers_show_their_code_points(web: Browser, api: Api) -> None:
    request_id = submit(api, on_behalf_of=[{"id": "user:\u0441eo", "kind": "human"}],  # Cyrillic с
                        params={"amount": 48000, "currency": "EUR", "recipient": LOOKALIKE})
    web.sign_in("alice")
    text = web.get(f"/inbox/requests/{request_id}").text

    assert LOOKALIKE in text and "U+0430 CYRILLIC SMALL LETTER A" in text
    assert "<code>params.recipient</code>" in text
    assert "U+0441 CYRILLIC SMALL LETTER ES" in text
    assert "GB33BUKB" not in text  # no false alarm: the plain ASCII recipient is not this request's


def test_an_unknown_request_is_a_404_page(web: Browser) -> None:
    web.sign_in("alice")
    assert_refused(web.get("/inbox/requests/req_nope"), 404, "request.not_found")


# --- deciding -----------------------------------------------------------------------------------


@pytest.mark.parametrize("csrf", [None, "", "wrong-token"])
def test_a_decision_without_the_sessions_csrf_token_is_refused_and_changes_nothing(
    web: Browser, api: Api, csrf: str | None
) -> None:
    request_id = submit(api)
    web.sign_in("alice")
    form = {"decision": "approve", "comment": ""} | ({} if csrf is None else {"csrf_token": csrf})
    assert_refused(web.post(f"/inbox/requests/{request_id}/decision", form), 403, "auth.csrf")
    assert approvals_of(api, request_id) == []


def test_another_sessions_csrf_token_does_not_work(web: Browser, other_web: Browser, api: Api) -> None:
    request_id = submit(api)
    web.sign_in("alice")
    other_web.sign_in("bob")
    bobs = csrf_of(other_web.get(f"/inbox/requests/{request_id}"))
    refused = web.post(f"/inbox/requests/{request_id}/decision",
                       {"decision": "approve", "comment": "", "csrf_token": bobs})
    assert_refused(refused, 403, "auth.csrf")
    assert approvals_of(api, request_id) == []


def test_a_form_posted_from_another_site_is_refused(web: Browser, api: Api) -> None:
    request_id = submit(api)
    web.sign_in("alice")
    page = web.get(f"/inbox/requests/{request_id}")
    refused = web.post(f"/inbox/requests/{request_id}/decision",
                       {"decision": "approve", "comment": "", "csrf_token": csrf_of(page)},
                       headers={"sec-fetch-site": "cross-site"})
    assert_refused(refused, 403, "auth.csrf")
    assert approvals_of(api, request_id) == []


@pytest.mark.parametrize(("body", "code"), [
    ("decision=approve&decision=reject&csrf_token={csrf}", "input.duplicate_key"),
    ("decision=approve&channel=email&csrf_token={csrf}", "input.unknown_field"),
    ("decision=maybe&csrf_token={csrf}", "input.invalid"),
    ("decision=approve&comment=%FF&csrf_token={csrf}", "input.invalid"),
])
def test_a_malformed_form_is_refused_and_changes_nothing(web: Browser, api: Api, body: str, code: str) -> None:
    request_id = submit(api)
    web.sign_in("alice")
    csrf = csrf_of(web.get(f"/inbox/requests/{request_id}"))
    assert_refused(web.post(f"/inbox/requests/{request_id}/decision", body.format(csrf=csrf)), 400, code)
    assert approvals_of(api, request_id) == []


def test_approvals_over_web_satisfy_a_separate_channel_rule_for_a_chat_request(
    web: Browser, other_web: Browser, api: Api
) -> None:
    request_id = submit(api)  # arrived over `chat`; the rule wants two approvals over another channel
    web.sign_in("alice")
    other_web.sign_in("bob")

    first = web.decide(request_id, comment="called the CEO back")
    assert first.status_code == 303 and first.headers["location"] == f"/inbox/requests/{request_id}?done=approved"
    shown = web.get(first.headers["location"])
    assert "You approved this request." in shown.text and "1 of 2" in shown.text
    assert other_web.decide(request_id).status_code == 303

    assert sorted(approvals_of(api, request_id)) == [("user:alice", "web", "approve"), ("user:bob", "web", "approve")]
    state = api.gate.status(request_id)
    assert state.outcome == "approved" and state.grant
    assert {a["approver"]: a["comment"] for a in state.approvals}["user:alice"] == "called the CEO back"
    assert request_id not in web.get("/inbox").text


def test_a_rejection_ends_the_request(web: Browser, other_web: Browser, api: Api) -> None:
    request_id = submit(api)
    web.sign_in("alice")
    other_web.sign_in("bob")
    assert other_web.decide(request_id, "reject", "not a real invoice").status_code == 303
    assert api.gate.status(request_id).outcome == "rejected"

    late = web.get(f"/inbox/requests/{request_id}")
    assert "rejected" in late.text and 'value="approve"' not in late.text
    refused = web.post(f"/inbox/requests/{request_id}/decision",
                       {"decision": "approve", "comment": "", "csrf_token": csrf_of(late)})
    assert_refused(refused, 409, "request.rejected")
    assert approvals_of(api, request_id) == [("user:bob", "web", "reject")]


def test_a_replayed_decision_is_recorded_once(web: Browser, api: Api) -> None:
    request_id = submit(api)
    web.sign_in("alice")
    page = web.get(f"/inbox/requests/{request_id}")
    form = {"decision": "approve", "comment": "", "binding_code": code_of(api.gate, request_id) or "",
            "csrf_token": csrf_of(page)}
    assert web.post(f"/inbox/requests/{request_id}/decision", form).status_code == 303

    replayed = web.post(f"/inbox/requests/{request_id}/decision", form)
    assert_refused(replayed, 409, "approval.duplicate")
    assert "has already decided" in replayed.text
    assert approvals_of(api, request_id) == [("user:alice", "web", "approve")]


def test_a_refusal_from_the_gate_is_a_readable_page_with_its_code(web: Browser, api: Api, clock: FixedClock) -> None:
    own = submit(api, on_behalf_of=[{"id": "user:alice", "kind": "human"}])
    web.sign_in("alice")
    refused = web.decide(own)
    assert_refused(refused, 409, "approval.not_independent")
    assert "delegation chain" in refused.text

    late = submit(api)
    page = web.get(f"/inbox/requests/{late}")
    clock.advance(minutes=16)
    expired = web.post(f"/inbox/requests/{late}/decision",
                       {"decision": "approve", "comment": "", "csrf_token": csrf_of(page)})
    assert_refused(expired, 410, "approval.expired")
    assert approvals_of(api, own) == [] and approvals_of(api, late) == []


def test_every_inbox_response_carries_the_security_headers(web: Browser, api: Api) -> None:
    request_id = submit(api)
    responses = [web.get("/inbox"), web.get("/inbox/login"), web.get("/inbox/static/inbox.css")]
    responses.append(web.post("/inbox/login", {"token": "x", "csrf_token": "forged"}))
    web.sign_in("alice")
    responses += [web.get("/inbox"), web.get(f"/inbox/requests/{request_id}"), web.get("/inbox/requests/req_nope"),
                  web.decide(request_id), web.decide(request_id)]
    assert [r.status_code for r in responses] == [303, 200, 200, 403, 200, 200, 404, 303, 409]
    for response in responses:
        assert {k: response.headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS, response.url
    assert responses[2].headers["content-type"].startswith("text/css")


# --- protecting the approver -------------------------------------------------------------------


def test_the_page_shows_the_binding_code_and_asks_for_it_on_a_sensitive_action(web: Browser, api: Api) -> None:
    request_id = submit(api)
    web.sign_in("alice")
    page = web.get(f"/inbox/requests/{request_id}").text
    assert f'<span class="binding-code">{code_of(api.gate, request_id)}</span>' in page
    assert '<input id="binding_code" name="binding_code" type="text"' in page


@pytest.mark.parametrize("typed", ["", "ABC-DEF", "another request's"])
def test_approving_a_sensitive_action_without_its_binding_code_is_refused(web: Browser, api: Api, typed: str) -> None:
    request_id = submit(api)
    other = submit(api)  # a look-alike request submitted alongside has another code
    web.sign_in("alice")
    if typed == "another request's":
        typed = str(code_of(api.gate, other))

    assert_refused(web.decide(request_id, binding_code=typed), 409, "approval.binding_mismatch")
    assert approvals_of(api, request_id) == []
    assert approvals_of(api, other) == []


def test_the_binding_code_is_typed_loosely_and_a_rejection_needs_none(
    web: Browser, other_web: Browser, api: Api
) -> None:
    request_id = submit(api)
    web.sign_in("alice")
    other_web.sign_in("bob")
    typed = (code_of(api.gate, request_id) or "").replace("-", " ").lower()
    assert web.decide(request_id, binding_code=f" {typed} ").status_code == 303
    assert approvals_of(api, request_id) == [("user:alice", "web", "approve")]

    rejected = other_web.decide(request_id, "reject", binding_code="")
    assert rejected.status_code == 303
    assert api.gate.status(request_id).outcome == "rejected"


def test_a_non_sensitive_action_needs_no_binding_code(web: Browser, api: Api) -> None:
    # The same policy with nothing listed as sensitive: the code is still shown, but not asked for.
    api.gate.policy = load_policy((SEED / "policy.yaml").read_text().replace(
        'sensitive: ["payments.*", "config.apply", "access.*", "data.share*"]', "sensitive: []"))
    request_id = submit(api)
    web.sign_in("alice")
    page = web.get(f"/inbox/requests/{request_id}").text
    assert 'class="binding-code"' in page and 'name="binding_code"' not in page
    assert web.decide(request_id, binding_code="").status_code == 303
    assert approvals_of(api, request_id) == [("user:alice", "web", "approve")]


def test_inbox_approvals_enter_the_grant_as_web_session_approvals(web: Browser, other_web: Browser, api: Api) -> None:
    request_id = submit(api)
    web.sign_in("alice")
    other_web.sign_in("bob")
    web.decide(request_id)
    other_web.decide(request_id)
    state = api.gate.status(request_id)
    assert state.grant is not None
    claims = jwt.decode(state.grant, options={"verify_signature": False})
    assert sorted((a["approver"], a["channel"], a["auth"]) for a in claims["authorization_details"][0]["approvals"]) \
        == [("user:alice", "web", "session"), ("user:bob", "web", "session")]


def test_a_session_is_known_to_every_server_on_the_store_and_survives_a_restart(web: Browser, api: Api) -> None:
    request_id = submit(api)
    web.sign_in("alice")
    # Another server process (or node, or this one after a restart) on the same store: same cookie, same session.
    other_app = create_app(Gate(api.gate.store, api.gate.policy, api.gate.keys, clock=api.gate.clock),
                           Credentials(api.gate.store, clock=api.gate.clock))
    elsewhere = Browser(api, browser_on(api, other_app, "https://interlock"))
    elsewhere.client.cookies = web.client.cookies
    try:
        assert elsewhere.get("/inbox").status_code == 200
        assert elsewhere.decide(request_id).status_code == 303
        assert [approval[0] for approval in approvals_of(api, request_id)] == ["user:alice"]
        # Signing out on one server ends the session on all of them.
        page = web.get("/inbox")
        assert web.post("/inbox/logout", {"csrf_token": csrf_of(page)}).status_code == 303
        assert elsewhere.get("/inbox").status_code == 303
    finally:
        api.portal.call(elsewhere.client.aclose)


def test_the_store_keeps_only_a_hash_of_the_session_id(web: Browser, api: Api) -> None:
    web.sign_in("alice")
    cookie = web.client.cookies["__Host-interlock-session"]
    db = sqlite3.connect(api.gate.store.path)  # type: ignore[attr-defined]
    try:
        rows = db.execute("SELECT key_sha256, subject_id FROM inbox_sessions").fetchall()
    finally:
        db.close()
    assert rows == [(hashlib.sha256(cookie.encode()).hexdigest(), "user:alice")]
    assert cookie not in repr(rows)
