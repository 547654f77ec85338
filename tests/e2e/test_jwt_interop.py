"""A grant from `interlock serve` verified by another language's JOSE library (Node's `jose`) from the JWKS alone."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from interlock.client import RemoteGate

from .e2e_support import REPO
from .served import cli, seeded_home, serving

INTEROP = REPO / "tests" / "interop"
NODE = shutil.which("node")
SMALL_PAYMENT = {
    "action": "payments.transfer",
    "resource": "account:treasury",
    "params": {"amount": 250, "currency": "EUR", "recipient": "DE89370400440532013000"},
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NODE is None or shutil.which("npm") is None,
                       reason="node and npm are not installed: the independent JWT check in Node cannot run"),
]


def _node_verify(jwks_url: str, token: str, audience: str = "") -> subprocess.CompletedProcess[str]:
    if not (INTEROP / "node_modules" / "jose").is_dir():
        pytest.fail("tests/interop is not installed: run `npm ci --prefix tests/interop` (`make test` does)")
    assert NODE is not None
    args = [NODE, str(INTEROP / "verify.mjs"), jwks_url, token, *([audience] if audience else [])]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=INTEROP)


def _verified(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _with_payload(token: str, **claims: Any) -> str:
    """The same header and signature over a payload with `claims` changed."""
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return ".".join([header, _b64url(json.dumps(decoded | claims).encode()), signature])


def test_node_jose_verifies_a_served_grant_against_the_published_jwks(tmp_path: Path) -> None:
    home = seeded_home(tmp_path)
    agent_token = cli(home, "principals", "add", "agent:finance-assistant", "--kind", "agent",
                      "--attributes", json.dumps({"known_recipients": ["DE89370400440532013000"]}))["token"]
    payments_token = cli(home, "principals", "add", "payments-service", "--kind", "service")["token"]
    with serving(home) as url, RemoteGate(url, agent_token) as agent, RemoteGate(url, payments_token) as payments:
        allowed = agent.submit(SMALL_PAYMENT)
        assert allowed.outcome == "allowed" and allowed.grant, allowed
        jwks_url = f"{url}/.well-known/jwks.json"

        verified = _verified(_node_verify(jwks_url, allowed.grant, "payments-service"))
        assert verified["header"]["alg"] == "EdDSA"
        payload = verified["payload"]
        assert payload["aud"] == "payments-service"
        assert payload["sub"] == "agent:finance-assistant"
        assert payload["authorization_details"][0]["digest"] == allowed.digest
        assert payload["authorization_details"][0]["request_id"] == allowed.request_id
        consumed = payments.consume(allowed.grant, "payments-service", SMALL_PAYMENT)
        assert payload["jti"] == consumed.jti, "the jti Node read is the one the gate consumed"

        for forged in (
            _with_payload(allowed.grant, aud="attacker-service"),
            _with_payload(allowed.grant, authorization_details=[
                {**payload["authorization_details"][0], "digest": "0" * 64}]),
            allowed.grant[:-4] + ("AAAA" if not allowed.grant.endswith("AAAA") else "BBBB"),
        ):
            rejected = _node_verify(jwks_url, forged)
            assert rejected.returncode != 0 and rejected.stdout == "", rejected
            assert "ERR_JWS_SIGNATURE_VERIFICATION_FAILED" in rejected.stderr, rejected.stderr
        wrong_audience = _node_verify(jwks_url, allowed.grant, "someone-else")
        assert wrong_audience.returncode != 0 and "ERR_JWT_CLAIM_VALIDATION_FAILED" in wrong_audience.stderr
