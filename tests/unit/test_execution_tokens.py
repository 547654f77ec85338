"""Execution tokens (enforce/execution.py): what an upstream's verifier accepts, and every way it refuses."""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path

import pytest

from interlock.core.errors import ExecutionError, KeyringError
from interlock.enforce.execution import (
    EXECUTION_META,
    ExecutionKey,
    ExecutionVerifier,
    content_digest,
    verify_tool_call,
)
from interlock.results import Consumption

NOW = datetime.datetime(2026, 11, 29, 9, 0, tzinfo=datetime.UTC)
CONSUMED = Consumption(jti="g1", request_id="req_1", executor="http-proxy", action="payments.transfer", digest="d" * 64)
CALL = {"method": "POST", "target": "/payments/acc-1", "body": b'{"amount":4800}'}


@pytest.fixture
def key(tmp_path: Path) -> ExecutionKey:
    return ExecutionKey.load_or_create(tmp_path / "proxy-execution.pem")


def token_for(key: ExecutionKey, *, now: datetime.datetime = NOW, audience: str = "payments-api",
              issuer: str = "interlock-proxy", ttl: int = 60, **call: object) -> str:
    fields = {**CALL, **call}
    return key.issue(CONSUMED, issuer=issuer, audience=audience, method=str(fields["method"]),
                     target=str(fields["target"]), body=bytes(fields["body"]), now=now, ttl=ttl)  # type: ignore[arg-type]


def verifier(key: ExecutionKey, *, at: datetime.datetime = NOW, issuer: str | None = None) -> ExecutionVerifier:
    return ExecutionVerifier(key.jwks(), audience="payments-api", issuer=issuer, clock=lambda: at)


def refusal(check: ExecutionVerifier, token: str | None, **call: object) -> str:
    """The reason code the verifier refuses `token` with, for CALL changed by `call`."""
    fields = {**CALL, **call}
    with pytest.raises(ExecutionError) as caught:
        check.verify(token, method=str(fields["method"]), target=str(fields["target"]),
                     body=bytes(fields["body"]))  # type: ignore[arg-type]
    return caught.value.code


def test_a_token_verifies_once_for_exactly_its_call(key: ExecutionKey) -> None:
    check = verifier(key)
    token = token_for(key)
    execution = check.verify(token, **CALL)  # type: ignore[arg-type]
    assert (execution.grant, execution.request_id, execution.action) == ("g1", "req_1", "payments.transfer")
    assert execution.claims["content_digest"] == content_digest(CALL["body"])  # type: ignore[arg-type]
    assert refusal(check, token) == "execution.replayed"


@pytest.mark.parametrize("change", [{"method": "PUT"}, {"method": "post"}, {"target": "/payments/acc-2"},
                                    {"target": "/payments/acc-1?x=1"}, {"body": b'{"amount":4801}'}],
                         ids=["method", "method-case", "target", "query", "body"])
def test_a_token_for_another_call_is_refused(key: ExecutionKey, change: dict[str, object]) -> None:
    assert refusal(verifier(key), token_for(key), **change) == "execution.request_mismatch"


def test_times_audience_and_issuer_are_checked(key: ExecutionKey) -> None:
    assert refusal(verifier(key, at=NOW + datetime.timedelta(seconds=66)), token_for(key)) == "execution.expired"
    assert verifier(key, at=NOW + datetime.timedelta(seconds=64)).verify(token_for(key), **CALL)  # type: ignore[arg-type]
    from_the_future = verifier(key, at=NOW - datetime.timedelta(seconds=6))
    assert refusal(from_the_future, token_for(key)) == "execution.malformed"
    assert refusal(verifier(key), token_for(key, audience="ledger-api")) == "execution.wrong_audience"
    strict = verifier(key, issuer="interlock-proxy")
    assert refusal(strict, token_for(key, issuer="someone-else")) == "execution.wrong_issuer"


def test_missing_malformed_foreign_and_forged_tokens_are_refused(key: ExecutionKey, tmp_path: Path) -> None:
    check = verifier(key)
    assert refusal(check, None) == "execution.missing"
    assert refusal(check, "") == "execution.missing"
    assert refusal(check, "not-a-token") == "execution.malformed"
    other = ExecutionKey.load_or_create(tmp_path / "other.pem")
    assert refusal(check, token_for(other)) == "execution.unknown_key"
    header, payload, signature = token_for(key).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["htu"] = "/payments/acc-9"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert refusal(check, f"{header}.{forged}.{signature}", target="/payments/acc-9") == "execution.bad_signature"
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none","typ":"interlock-execution+jwt"}').rstrip(b"=").decode()
    assert refusal(check, f"{unsigned}.{payload}.") == "execution.bad_algorithm"


def test_a_tool_call_is_bound_to_its_tool_and_arguments(key: ExecutionKey) -> None:
    arguments = {"recipient": "DE89", "amount": 40}
    token = key.issue(CONSUMED, issuer="interlock-mcp-gateway", audience="bank", method="tools/call", target="pay",
                      body=b'{"amount":40,"recipient":"DE89"}', now=NOW)  # RFC 8785: keys sorted
    check = ExecutionVerifier(key.jwks(), audience="bank", clock=lambda: NOW)
    with pytest.raises(ExecutionError, match="another call"):
        verify_tool_call(check, {EXECUTION_META: token}, "pay", {**arguments, "amount": 41})
    assert verify_tool_call(check, {EXECUTION_META: token}, "pay", arguments).grant == "g1"
    with pytest.raises(ExecutionError) as missing:
        verify_tool_call(check, {}, "pay", arguments)
    assert missing.value.code == "execution.missing"


def test_a_jwk_set_with_anything_but_ed25519_public_keys_is_refused(key: ExecutionKey) -> None:
    private = {"keys": [{**key.key.as_dict(private=True), "kid": key.kid}]}
    for bad in ({}, {"keys": []}, {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, private):
        with pytest.raises(KeyringError):
            ExecutionVerifier(bad, audience="payments-api")
