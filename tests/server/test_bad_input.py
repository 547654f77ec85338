"""Bad input over HTTP: strict JSON, unknown fields, a chosen channel, oversized bodies; a 4xx, never a 500."""

from __future__ import annotations

import json

import pytest

from .conftest import Api, consumption, expect_error, submission

BIG = 1024 * 1024 + 1


@pytest.mark.parametrize(("who", "path"), [
    ("agent", "/v1/requests"),
    ("alice", "/v1/requests/req_x/approvals"),
    ("payments", "/v1/grants/consume"),
    ("payments", "/v1/grants/grt_x/result"),
])
@pytest.mark.parametrize(("content", "code", "status"), [
    (b'{"a": 1, "a": 2}', "input.duplicate_key", 400),
    (b'{"a": NaN}', "input.invalid", 400),
    (b'{"a": Infinity}', "input.invalid", 400),
    (b'{"a": 9007199254740993}', "input.invalid", 400),
    (b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", "input.too_deep", 400),
    (b"", "input.invalid", 400),
    (b"[]", "input.invalid", 400),
    (b"{not json", "input.invalid", 400),
    (b"\xff\xfe", "input.invalid", 400),
    (b'{"a": "' + b"x" * BIG + b'"}', "input.too_large", 413),
], ids=["duplicate", "nan", "infinity", "big-int", "deep", "empty", "array", "broken", "not-utf8", "huge"])
def test_a_body_the_strict_parser_refuses_is_refused_before_anything_happens(
    api: Api, who: str, path: str, content: bytes, code: str, status: int
) -> None:
    entries = api.call("GET", "/v1/audit/verify", "admin").json()["entries"]
    expect_error(api.call("POST", path, who, content=content, headers={"Content-Type": "application/json"}),
                 status, code)
    assert api.call("GET", "/v1/audit/verify", "admin").json()["entries"] == entries


def test_a_huge_body_without_a_declared_length_is_refused_as_it_streams(api: Api) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"a": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    async def stream():  # type: ignore[no-untyped-def]
        for chunk in chunks():
            yield chunk

    expect_error(api.call("POST", "/v1/requests", "agent", content=stream()), 413, "input.too_large")


def test_an_approval_cannot_choose_its_channel(api: Api) -> None:
    request_id = api.call("POST", "/v1/requests", "agent", json=submission()).json()["request_id"]
    expect_error(api.call("POST", f"/v1/requests/{request_id}/approvals", "alice",
                          json={"decision": "approve", "channel": "email"}), 400, "input.unknown_field")
    assert "approvals" not in api.call("GET", f"/v1/requests/{request_id}", "alice").json()


@pytest.mark.parametrize(("who", "path", "body", "code"), [
    ("agent", "/v1/requests", submission(surprise=1), "input.unknown_field"),
    ("agent", "/v1/requests", submission(principal={"id": "agent:finance-assistant", "role": "admin"}),
     "input.unknown_field"),
    ("agent", "/v1/requests", submission(principal="agent:finance-assistant"), "input.invalid"),
    ("agent", "/v1/requests", submission(action="pay ments"), "input.invalid"),
    ("agent", "/v1/requests", submission(channel="Chat Room"), "input.invalid"),
    ("agent", "/v1/requests", submission(executor="someone-else"), "input.wrong_executor"),
    ("agent", "/v1/requests", {"action": "payments.transfer"}, "input.invalid"),
    ("alice", "/v1/requests/req_x/approvals", {"decision": "maybe"}, "input.invalid"),
    ("alice", "/v1/requests/req_x/approvals", {}, "input.invalid"),
    ("alice", "/v1/requests/req_x/approvals", {"decision": "approve", "comment": "x" * 5000}, "input.invalid"),
    ("payments", "/v1/grants/consume", consumption("x", extra=1), "input.unknown_field"),
    ("payments", "/v1/grants/consume", consumption(123), "input.invalid"),  # type: ignore[arg-type]
    ("payments", "/v1/grants/consume", consumption("not.a.jwt"), "grant.malformed"),
    ("payments", "/v1/grants/grt_x/result", {"result": "maybe"}, "input.invalid"),
])
def test_a_wrong_body_gets_its_reason_code(api: Api, who: str, path: str, body: object, code: str) -> None:
    response = api.call("POST", path, who, json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"] == code, response.text


@pytest.mark.parametrize("wait", ["-1", "61", "nan", "inf", "soon"])
def test_a_wait_outside_0_to_60_seconds_is_refused(api: Api, wait: str) -> None:
    request_id = api.call("POST", "/v1/requests", "agent", json=submission()).json()["request_id"]
    expect_error(api.call("GET", f"/v1/requests/{request_id}", "agent", params={"wait": wait}), 400, "input.invalid")


def test_an_unknown_endpoint_or_method_is_a_json_4xx(api: Api) -> None:
    expect_error(api.call("GET", "/v2/nothing", "agent"), 404, "input.no_such_endpoint")
    expect_error(api.call("DELETE", "/v1/requests", "agent"), 405, "input.method_not_allowed")


def test_no_refusal_body_is_anything_but_the_error_contract(api: Api) -> None:
    response = api.call("POST", "/v1/requests", "agent", content=b'{"a":1,"a":1}')
    assert json.loads(response.text).keys() == {"error"}
