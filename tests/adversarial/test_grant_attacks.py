"""INVARIANTS 1 and 2 — a grant is a token this gate signed, for this executor, for exactly this action.

Every attack is refused with its exact reason code, consumes nothing, and leaves the genuine grant usable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.jwk import OKPKey

from conftest import FixedClock, spec_of
from interlock import grant_tokens
from interlock.core.action import parse_action, parse_request
from interlock.core.errors import GrantError
from interlock.core.grant import build_claims
from interlock.gate import Gate
from interlock.keys import KeyRing

from .grant_flow import approved_ceo_payment, audit_log

EXECUTOR = "payments-service"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes] | None) -> str:
    """A compact JWS built by hand, as an attacker would: no library gets to refuse for us."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode())) if sign else ''}"


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def public_bytes(keys: KeyRing) -> tuple[bytes, bytes]:
    public = keys.signing_key.private_key.public_key()  # the cryptography key under the JWK
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return raw, pem


@pytest.fixture
def granted(gate: Gate) -> tuple[dict[str, Any], str, str]:
    """(the request document, its request id, its genuine grant)."""
    document, state = approved_ceo_payment(gate)
    return document, state.request_id, state.grant


def assert_refused(gate: Gate, token: Any, action: dict[str, Any], code: str, executor: str = EXECUTOR) -> None:
    """Present a grant; it must be refused with `code`, audited as refused, and consume nothing."""
    consumed_before = [e for e in audit_log(gate) if e["kind"] == "grant.consumed"]
    with pytest.raises(GrantError) as refused:
        gate.consume(token, executor, action)
    assert refused.value.code == code, refused.value.message
    log = audit_log(gate)
    assert [e for e in log if e["kind"] == "grant.consumed"] == consumed_before
    assert log[-1]["kind"] == "grant.refused" and log[-1]["data"]["code"] == code


def assert_genuine_consume_still_works(gate: Gate, granted: tuple[dict[str, Any], str, str]) -> None:
    document, request_id, token = granted
    assert not gate.status(request_id).consumed
    consumption = gate.consume(token, EXECUTOR, spec_of(document))
    assert consumption.request_id == request_id
    assert gate.status(request_id).consumed


# --- tokens this gate did not sign as a grant -----------------------------------------------------


def test_alg_none_is_refused(gate: Gate, granted: tuple[dict[str, Any], str, str]) -> None:
    document, _, token = granted
    for alg in ("none", "None", "NONE"):
        forged = jws({"alg": alg, "typ": "grant+jwt", "kid": gate.keys.kid}, claims_of(token), None)
        assert_refused(gate, forged, spec_of(document), "grant.bad_algorithm")
    assert_genuine_consume_still_works(gate, granted)


@pytest.mark.parametrize("secret", ["raw", "pem"])
def test_hmac_signed_with_the_public_key_is_refused(
    gate: Gate, granted: tuple[dict[str, Any], str, str], secret: str
) -> None:
    # Key confusion: the verifying key is public, so a verifier that let the token pick HS256 would accept this.
    document, _, token = granted
    key = dict(zip(("raw", "pem"), public_bytes(gate.keys), strict=True))[secret]
    forged = jws({"alg": "HS256", "typ": "grant+jwt", "kid": gate.keys.kid}, claims_of(token),
                 lambda data: hmac.new(key, data, hashlib.sha256).digest())
    assert_refused(gate, forged, spec_of(document), "grant.bad_algorithm")
    assert_genuine_consume_still_works(gate, granted)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "eddsa", "Ed25519"])
def test_other_algorithm_names_are_refused(gate: Gate, granted: tuple[dict[str, Any], str, str], alg: str) -> None:
    document, _, token = granted
    header = {"alg": alg, "typ": "grant+jwt", "kid": gate.keys.kid}
    forged = jws(header, claims_of(token), gate.keys.signing_key.private_key.sign)
    assert_refused(gate, forged, spec_of(document), "grant.bad_algorithm")
    assert_genuine_consume_still_works(gate, granted)


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", None])
def test_another_token_kind_signed_by_the_real_key_is_not_a_grant(
    gate: Gate, granted: tuple[dict[str, Any], str, str], typ: str | None
) -> None:
    document, _, token = granted
    header = {"alg": "EdDSA", "kid": gate.keys.kid, **({"typ": typ} if typ else {})}
    forged = jws(header, claims_of(token), gate.keys.signing_key.private_key.sign)
    assert_refused(gate, forged, spec_of(document), "grant.malformed")
    assert_genuine_consume_still_works(gate, granted)


@pytest.mark.parametrize("carrier", ["jwk", "jku", "x5u", "x5c"])
def test_a_header_carrying_the_attackers_own_key_is_refused(
    gate: Gate, granted: tuple[dict[str, Any], str, str], carrier: str
) -> None:
    document, _, token = granted
    attacker = Ed25519PrivateKey.generate()
    raw = attacker.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}
    values = {"jwk": jwk, "jku": "https://attacker.example/jwks.json", "x5u": "https://attacker.example/cert.pem",
              "x5c": ["MIIBattacker"]}
    # The kid is the gate's own, so only the key-carrying header can be what refuses.
    header = {"alg": "EdDSA", "typ": "grant+jwt", "kid": gate.keys.kid, carrier: values[carrier]}
    assert_refused(gate, jws(header, claims_of(token), attacker.sign), spec_of(document), "grant.malformed")
    assert_genuine_consume_still_works(gate, granted)


def test_a_grant_from_another_key_ring_names_an_unknown_key(
    gate: Gate, granted: tuple[dict[str, Any], str, str]
) -> None:
    document, _, token = granted
    other = KeyRing.generate()
    assert_refused(gate, grant_tokens.sign(claims_of(token), other), spec_of(document), "grant.unknown_key")
    assert_genuine_consume_still_works(gate, granted)


def test_another_key_claiming_the_gates_kid_does_not_verify(
    gate: Gate, granted: tuple[dict[str, Any], str, str]
) -> None:
    document, _, token = granted
    attacker = Ed25519PrivateKey.generate()
    pem = attacker.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    assert KeyRing.from_private_key(OKPKey.import_key(pem), gate.keys.log_key).kid != gate.keys.kid
    forged = jws({"alg": "EdDSA", "typ": "grant+jwt", "kid": gate.keys.kid}, claims_of(token), attacker.sign)
    assert_refused(gate, forged, spec_of(document), "grant.bad_signature")
    assert_genuine_consume_still_works(gate, granted)


def test_a_flipped_signature_character_does_not_verify(gate: Gate, granted: tuple[dict[str, Any], str, str]) -> None:
    document, _, token = granted
    head, payload, signature = token.split(".")
    middle = len(signature) // 2
    flipped = signature[:middle] + ("A" if signature[middle] != "A" else "B") + signature[middle + 1:]
    assert_refused(gate, f"{head}.{payload}.{flipped}", spec_of(document), "grant.bad_signature")
    assert_genuine_consume_still_works(gate, granted)


def test_claims_edited_under_the_real_signature_do_not_verify(
    gate: Gate, granted: tuple[dict[str, Any], str, str]
) -> None:
    document, _, token = granted
    head, _, signature = token.split(".")
    claims = claims_of(token)
    claims["authorization_details"][0]["digest"] = "0" * 64
    payload = b64(json.dumps(claims).encode())
    assert_refused(gate, f"{head}.{payload}.{signature}", spec_of(document), "grant.bad_signature")
    assert_genuine_consume_still_works(gate, granted)


def _garbage(token: str) -> dict[str, tuple[Any, str]]:
    """Damaged tokens and what they are refused as: not a JWT at all, or a JWS whose signature is damaged."""
    head, payload, signature = token.split(".")
    return {
        "empty": ("", "grant.malformed"),
        "one word": ("garbage", "grant.malformed"),
        "three dots of nothing": ("a.b.c", "grant.malformed"),
        "signature dropped": (f"{head}.{payload}", "grant.malformed"),
        "cut inside the payload": (token[: len(head) + 1 + len(payload) // 2], "grant.malformed"),
        "four segments": (f"{head}.{payload}.{signature}.extra", "grant.malformed"),
        "two tokens glued": (f"{token}.{token}", "grant.malformed"),
        "leading space": (" " + token, "grant.malformed"),
        "trailing newline": (token + "\n", "grant.malformed"),
        "over the size limit": ("x" * (grant_tokens.MAX_TOKEN_BYTES + 1), "grant.malformed"),
        "None": (None, "grant.malformed"),
        "bytes": (token.encode(), "grant.malformed"),
        "last character cut": (token[:-1], "grant.malformed"),
        "empty signature": (f"{head}.{payload}.", "grant.bad_signature"),
        "signature cut short": (f"{head}.{payload}.{signature[:64]}", "grant.bad_signature"),
    }


def test_truncated_and_garbage_tokens_are_refused(gate: Gate, granted: tuple[dict[str, Any], str, str]) -> None:
    document, _, token = granted
    for name, (bad, code) in _garbage(token).items():
        try:
            assert_refused(gate, bad, spec_of(document), code)
        except AssertionError as failure:
            raise AssertionError(f"{name}: {failure}") from None
    assert_genuine_consume_still_works(gate, granted)


# --- the gate's own grant, presented in the wrong time, place or for the wrong action ----------------


def test_an_expired_grant_is_refused(gate: Gate, clock: FixedClock, granted: tuple[dict[str, Any], str, str]) -> None:
    document, _, token = granted
    claims = claims_of(token)
    assert claims["exp"] - claims["iat"] == 300
    clock.advance(seconds=300 + gate.nbf_leeway)
    assert_refused(gate, token, spec_of(document), "grant.expired")
    clock.advance(days=30)
    assert_refused(gate, token, spec_of(document), "grant.expired")
    clock.advance(days=-30, seconds=-1)  # back inside the leeway: the refusals burned nothing
    assert_genuine_consume_still_works(gate, granted)


def test_a_grant_used_before_it_is_valid_is_refused(
    gate: Gate, clock: FixedClock, granted: tuple[dict[str, Any], str, str]
) -> None:
    document, _, token = granted
    clock.advance(seconds=-(gate.nbf_leeway + 1))
    assert_refused(gate, token, spec_of(document), "grant.not_yet_valid")
    clock.advance(seconds=1)  # exactly at the leeway: accepted
    assert_genuine_consume_still_works(gate, granted)


@pytest.mark.parametrize("executor", ["deploy-executor", "payments-service-2", "Payments-Service", ""])
def test_another_executor_cannot_consume(
    gate: Gate, granted: tuple[dict[str, Any], str, str], executor: str
) -> None:
    document, _, token = granted
    assert_refused(gate, token, spec_of(document), "grant.wrong_executor", executor=executor)
    assert_genuine_consume_still_works(gate, granted)


CHANGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "amount": lambda a: a["params"].update(amount=48001),
    "amount as a string": lambda a: a["params"].update(amount="48000"),
    "recipient": lambda a: a["params"].update(recipient="DE89370400440532013000"),
    "currency": lambda a: a["params"].update(currency="USD"),
    "extra param": lambda a: a["params"].update(memo="also pay me"),
    "missing param": lambda a: a["params"].pop("currency"),
    "resource": lambda a: a.update(resource="account:payroll"),
    "action": lambda a: a.update(action="payments.refund"),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_an_action_other_than_the_granted_one_is_refused(
    gate: Gate, granted: tuple[dict[str, Any], str, str], change: str
) -> None:
    document, _, token = granted
    action = json.loads(json.dumps(spec_of(document)))
    CHANGES[change](action)
    assert_refused(gate, token, action, "grant.digest_mismatch")
    assert_genuine_consume_still_works(gate, granted)


def test_a_replayed_grant_is_refused(gate: Gate, granted: tuple[dict[str, Any], str, str]) -> None:
    document, _, token = granted
    assert_genuine_consume_still_works(gate, granted)
    for _ in range(3):
        assert_refused(gate, token, spec_of(document), "grant.already_used")
    assert [e["kind"] for e in audit_log(gate)].count("grant.consumed") == 1


# --- tokens signed with the gate's own key that it never issued (a leaked key) ----------------------


def _signed_by_gate(gate: Gate, document: dict[str, Any], request_id: str, jti: str, digest: str) -> str:
    """Claims this gate never issued, signed with its own key: what a leaked signing key would allow."""
    request = parse_request(document)
    now = int(gate.clock().timestamp())
    claims = build_claims(issuer=gate.issuer, request=request, request_id=request_id, digest=digest,
                          executor=EXECUTOR, jti=jti, issued_at=now, ttl=300, policy_version=gate.policy.version)
    return grant_tokens.sign(claims, gate.keys)


def test_a_validly_signed_grant_that_was_never_issued_is_refused(
    gate: Gate, granted: tuple[dict[str, Any], str, str]
) -> None:
    document, request_id, token = granted
    digest = claims_of(token)["authorization_details"][0]["digest"]
    forged = _signed_by_gate(gate, document, request_id, "grt_never_issued", digest)
    assert_refused(gate, forged, spec_of(document), "grant.not_issued")
    assert_genuine_consume_still_works(gate, granted)


def test_a_validly_signed_grant_reusing_a_jti_for_another_action_is_refused(
    gate: Gate, granted: tuple[dict[str, Any], str, str]
) -> None:
    # The store's record of the grant binds the digest too: a signed token alone cannot widen it.
    document, request_id, token = granted
    changed = {**spec_of(document), "params": {**document["params"], "amount": 1}}
    forged = _signed_by_gate(gate, document, request_id, claims_of(token)["jti"], parse_action(changed).digest())
    assert_refused(gate, forged, changed, "grant.digest_mismatch")
    assert_genuine_consume_still_works(gate, granted)
