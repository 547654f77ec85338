"""Who may call what: missing, malformed, unknown and revoked tokens; roles; a principal that claims to be another."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .conftest import KNOWN_RECIPIENTS, Api, consumption, expect_error, submission

# Every authenticated endpoint, with a body it would accept from the right caller.
ENDPOINTS = [
    ("POST", "/v1/requests", submission()),
    ("GET", "/v1/requests/req_x", None),
    ("POST", "/v1/requests/req_x/approvals", {"decision": "approve"}),
    ("POST", "/v1/grants/consume", consumption("x")),
    ("POST", "/v1/grants/grt_x/result", {"result": "succeeded"}),
    ("GET", "/v1/audit/verify", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
@pytest.mark.parametrize(("header", "code"), [
    (None, "auth.missing"),
    ("Basic dXNlcjpwYXNz", "auth.invalid"),
    ("Bearer ", "auth.invalid"),
    ("Bearer not-a-token", "auth.invalid"),
    ("Bearer ilk_" + "A" * 43, "auth.invalid"),
], ids=["missing", "basic", "empty", "malformed", "unregistered"])
def test_an_unauthenticated_call_is_refused_and_changes_nothing(
    api: Api, method: str, path: str, body: object, header: str | None, code: str
) -> None:
    entries = len(list(api.gate.store.audit_entries()))
    response = api.call(method, path, headers={"Authorization": header} if header else {}, json=body)
    expect_error(response, 401, code)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert len(list(api.gate.store.audit_entries())) == entries


BAD_BODIES = {"not JSON": b"{", "over the size limit": b"[" * (1024 * 1024 + 1)}


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, body in ENDPOINTS if body is not None])
@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_the_caller_is_judged_before_the_body(api: Api, method: str, path: str, body: bytes) -> None:
    """An unregistered token or the wrong role is refused as such, whatever the body; the right caller hears
    what is wrong with the body."""
    expect_error(api.call(method, path, headers={"Authorization": "Bearer ilk_" + "A" * 43}, content=body),
                 401, "auth.invalid")
    wrong = "agent" if path.endswith("/approvals") else "alice"
    expect_error(api.call(method, path, wrong, content=body), 403, "auth.forbidden")
    right = "alice" if path.endswith("/approvals") else "agent"
    status, code = (400, "input.invalid") if len(body) < 10 else (413, "input.too_large")
    expect_error(api.call(method, path, right, content=body), status, code)


def test_a_revoked_token_is_refused(api: Api) -> None:
    assert api.call("POST", "/v1/requests", "agent", json=submission()).status_code == 201
    [agent] = [c for c in api.credentials.list("principal") if c.subject_id == "agent:finance-assistant"]
    api.credentials.revoke(agent.id)
    expect_error(api.call("POST", "/v1/requests", "agent", json=submission()), 401, "auth.revoked")


@pytest.mark.parametrize(("who", "method", "path", "body"), [
    ("alice", "POST", "/v1/requests", submission()),
    ("admin", "POST", "/v1/requests", submission()),
    ("alice", "POST", "/v1/grants/consume", consumption("x")),
    ("alice", "POST", "/v1/grants/grt_x/result", {"result": "succeeded"}),
    ("agent", "POST", "/v1/requests/req_x/approvals", {"decision": "approve"}),
    ("admin", "POST", "/v1/requests/req_x/approvals", {"decision": "approve"}),
    ("agent", "GET", "/v1/audit/verify", None),
    ("alice", "GET", "/v1/audit/verify", None),
])
def test_a_credential_of_the_wrong_role_is_forbidden(api: Api, who: str, method: str, path: str, body: object) -> None:
    expect_error(api.call(method, path, who, json=body), 403, "auth.forbidden")


def test_only_the_requester_an_approver_it_needs_or_an_admin_reads_a_request(api: Api) -> None:
    request_id = api.call("POST", "/v1/requests", "agent", json=submission()).json()["request_id"]
    for who in ("agent", "alice", "bob", "admin"):
        assert api.call("GET", f"/v1/requests/{request_id}", who).status_code == 200, who
    # The CEO holds an approver credential but is in the request's delegation chain: not one of its approvers.
    for who in ("other-agent", "ceo"):
        expect_error(api.call("GET", f"/v1/requests/{request_id}", who), 403, "auth.forbidden")
    expect_error(api.call("GET", "/v1/requests/req_missing", "alice"), 404, "request.not_found")


@pytest.mark.parametrize("principal", [
    {"id": "agent:other"},
    {"id": "user:ceo", "kind": "human"},
    {"id": "agent:finance-assistant", "kind": "human"},
    {"id": "agent:finance-assistant", "kind": "agent",
     "attributes": {"known_recipients": ["DE89370400440532013000", "GB33BUKB20201555555555"]}},
    {"id": "agent:finance-assistant", "attributes": {}},
])
def test_a_body_that_claims_another_principal_or_other_attributes_is_refused(api: Api, principal: object) -> None:
    expect_error(api.call("POST", "/v1/requests", "agent", json=submission(principal=principal)),
                 403, "auth.principal_mismatch")
    assert api.call("GET", "/v1/audit/verify", "admin").json()["entries"] == 7, "nothing but the 7 credentials"


def test_the_registry_supplies_the_principal_and_a_matching_claim_is_accepted(api: Api) -> None:
    claim = {"id": "agent:finance-assistant", "kind": "agent", "attributes": KNOWN_RECIPIENTS}
    small = submission(principal=claim, on_behalf_of=[],
                       params={"amount": 100, "currency": "EUR", "recipient": "DE89370400440532013000"})
    assert api.call("POST", "/v1/requests", "agent", json=small).json()["outcome"] == "allowed"
    # Without a claim the registry's attributes decide too: the known recipient is allowed.
    small.pop("principal")
    assert api.call("POST", "/v1/requests", "agent", json=small).json()["outcome"] == "allowed"
    # The other agent has no known recipients in the registry: the same body needs approval.
    assert api.call("POST", "/v1/requests", "other-agent", json=small).json()["outcome"] == "pending_approval"


def test_an_approver_with_a_second_credential_is_still_the_same_person(api: Api) -> None:
    second = api.credentials.add("approver", "user:alice").token
    pending = api.call("POST", "/v1/requests", "agent", json=submission()).json()
    request_id, code = pending["request_id"], pending["approval"]["binding_code"]
    assert api.call("POST", f"/v1/requests/{request_id}/approvals", "alice",
                    json={"decision": "approve", "binding_code": code}).is_success
    expect_error(api.call("POST", f"/v1/requests/{request_id}/approvals",
                          headers={"Authorization": f"Bearer {second}"},
                          json={"decision": "approve", "binding_code": code}),
                 409, "approval.duplicate")


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, body in ENDPOINTS if body is not None])
def test_the_body_of_an_unauthenticated_call_is_not_read(api: Api, method: str, path: str) -> None:
    pulled: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for chunk in range(64):  # 1 MiB in all, the body limit
            pulled.append(chunk)
            yield b" " * 16384

    expect_error(api.call(method, path, headers={"Authorization": "Bearer ilk_" + "A" * 43}, content=body()),
                 401, "auth.invalid")
    assert pulled == []  # refused on its header alone
