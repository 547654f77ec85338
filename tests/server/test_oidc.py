"""Bearer JWTs of an OpenID provider for principals, on the real ASGI app: the provider's keys are served by a real
HTTP server, tokens are signed by PyJWT (not by Interlock), and every refusal leaves the gate unchanged."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from anyio.from_thread import start_blocking_portal
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from conftest import FixedClock
from interlock.core.policy import Policy
from interlock.credentials import Credentials
from interlock.gate import Gate
from interlock.keys import KeyRing
from interlock.oidc import OidcBearer, load_config
from interlock.server import create_app
from interlock.store.sqlite import SqliteStore

from .conftest import KNOWN_RECIPIENTS, Api, consumption, expect_error, submission

ISSUER = "https://idp.example.com/realms/ops"
AUDIENCE = "https://interlock.example.com"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
ROTATED_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SIGNERS: dict[str, tuple[Any, str]] = {
    "RS256": (RSA_KEY, "rsa-1"), "ES256": (EC_KEY, "ec-1"), "EdDSA": (ED_KEY, "ed-1"),
}
SMALL_TRANSFER = {"amount": 100, "currency": "EUR", "recipient": "DE89370400440532013000"}


def public_jwk(private_key: Any, kid: str) -> dict[str, Any]:
    """The public half as a JWK, written by PyJWT."""
    algorithm = (jwt.algorithms.RSAAlgorithm if isinstance(private_key, rsa.RSAPrivateKey)
                 else jwt.algorithms.ECAlgorithm if isinstance(private_key, ec.EllipticCurvePrivateKey)
                 else jwt.algorithms.OKPAlgorithm)
    jwk: dict[str, Any] = algorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig"}


PROVIDER_KEYS = [public_jwk(RSA_KEY, "rsa-1"), public_jwk(EC_KEY, "ec-1"), public_jwk(ED_KEY, "ed-1")]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class JwksServer:
    """A real HTTP server publishing a JWK Set, counting its fetches; `status` makes it fail, `stop` takes it down."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.document: Any = {"keys": keys}
        self.status = 200
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps(outer.document).encode()
                self.send_response(outer.status)
                if outer.status in (301, 302, 307):
                    self.send_header("Location", "http://127.0.0.1:9/attacker.json")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()
        self.running = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"

    def stop(self) -> None:
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()
            self.running = False


class Ticker:
    """The monotonic clock that paces key set refreshes, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer(list(PROVIDER_KEYS))
    yield server
    server.stop()


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


Serve = Callable[..., Api]


@pytest.fixture
def serve(server_store: SqliteStore, seed_policy: Policy, clock: FixedClock, jwks: JwksServer, ticker: Ticker,
          tmp_path: Path) -> Iterator[Serve]:
    """Start the real app with an OIDC configuration (the defaults below, changed by keyword)."""
    with ExitStack() as stack:

        def start(**changes: Any) -> Api:
            document = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": jwks.url, "kind": "agent",
                        "attributes": {"idp": "ops"}, "attribute_claims": ["known_recipients"], **changes}
            document = {name: value for name, value in document.items() if value is not None}
            bearer = OidcBearer.open(load_config(yaml.safe_dump(document), tmp_path), clock, ticker)
            gate = Gate(server_store, seed_policy, KeyRing.generate(), clock=clock)
            credentials = Credentials(server_store, clock=clock)
            app = create_app(gate, credentials, oidc=bearer)
            portal = stack.enter_context(start_blocking_portal())
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://interlock")
            stack.callback(portal.call, client.aclose)
            api = Api(app, portal, client, gate, credentials)
            for name, role, subject, kind, attributes in [
                ("agent", "principal", "agent:finance-assistant", "agent", KNOWN_RECIPIENTS),
                ("payments", "principal", "payments-service", "service", {}),
                ("alice", "approver", "user:alice", None, None),
                ("bob", "approver", "user:bob", None, None),
                ("admin", "admin", "user:root", None, None),
            ]:
                api.tokens[name] = credentials.add(role, subject, kind, attributes).token  # type: ignore[arg-type]
            return api

        yield start


def claims(clock: FixedClock, **changes: Any) -> dict[str, Any]:
    """An access token's claims for the finance bot, valid now for five minutes; `None` drops a claim."""
    now = int(clock.now.timestamp())
    body = {"iss": ISSUER, "aud": [AUDIENCE, "account"], "sub": "finance-bot", "iat": now, "nbf": now,
            "exp": now + 300, "jti": "tok-1", "known_recipients": KNOWN_RECIPIENTS["known_recipients"], **changes}
    return {name: value for name, value in body.items() if value is not None}


def sign(body: dict[str, Any], alg: str = "RS256", key: Any = None, kid: str | None = None, **header: Any) -> str:
    default_key, default_kid = SIGNERS.get(alg, (RSA_KEY, "rsa-1"))
    return jwt.encode(body, key or default_key, algorithm=alg, headers={"kid": kid or default_kid, **header})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_size(api: Api) -> int:
    return len(list(api.gate.store.audit_entries()))


@pytest.mark.parametrize(("alg", "typ"), [("RS256", "at+jwt"), ("ES256", "JWT"), ("EdDSA", None),
                                          ("RS256", "application/at+JWT")])
def test_a_providers_token_submits_and_reads_its_own_request(
    serve: Serve, clock: FixedClock, alg: str, typ: str | None
) -> None:
    api = serve()
    token = sign(claims(clock), alg, typ=typ)
    submitted = api.call("POST", "/v1/requests", json=submission(), headers=bearer(token))
    assert submitted.status_code == 201 and submitted.json()["outcome"] == "pending_approval", submitted.text
    request_id = submitted.json()["request_id"]
    principal = api.gate.review(request_id).request.principal
    assert (principal.id, principal.kind) == ("oidc:finance-bot", "agent")
    assert principal.attributes == {"idp": "ops", **KNOWN_RECIPIENTS}
    read = api.call("GET", f"/v1/requests/{request_id}", headers=bearer(token))
    assert read.status_code == 200 and read.json()["request_id"] == request_id


def test_a_token_within_the_leeway_is_accepted(serve: Serve, clock: FixedClock) -> None:
    api = serve(leeway_seconds=30)
    now = int(clock.now.timestamp())
    token = sign(claims(clock, exp=now - 20, nbf=now + 20, iat=now + 20))
    assert api.call("POST", "/v1/requests", json=submission(), headers=bearer(token)).status_code == 201


def _hs256_with_the_public_key(clock: FixedClock) -> str:
    pem = RSA_KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    signing_input = (b64url(json.dumps({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}).encode()) + "."
                     + b64url(json.dumps(claims(clock)).encode()))
    return signing_input + "." + b64url(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())


def _tampered(clock: FixedClock) -> str:
    header, _, signature = sign(claims(clock)).split(".")
    return f"{header}.{b64url(json.dumps(claims(clock, sub='payments-service')).encode())}.{signature}"


def _duplicate_sub(clock: FixedClock) -> str:
    payload = json.dumps(claims(clock))[:-1] + ', "sub": "payments-service"}'
    return jwt.PyJWS().encode(payload.encode(), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})


ATTACKER_JWK = public_jwk(ATTACKER_KEY, "rsa-1")
REFUSED: list[tuple[str, Callable[[FixedClock], str], str]] = [
    ("wrong issuer", lambda c: sign(claims(c, iss="https://idp.example.net/realms/ops")), "issuer"),
    ("issuer not exact", lambda c: sign(claims(c, iss=ISSUER + "/")), "issuer"),
    ("wrong audience", lambda c: sign(claims(c, aud="https://other.example.com")), "audience"),
    ("audience list without ours", lambda c: sign(claims(c, aud=["account", "x"])), "audience"),
    ("no audience", lambda c: sign(claims(c, aud=None)), "audience"),
    ("expired", lambda c: sign(claims(c, exp=int(c.now.timestamp()) - 31)), "expired"),
    ("no exp", lambda c: sign(claims(c, exp=None)), "no `exp`"),
    ("exp not a number", lambda c: sign(claims(c, exp="tomorrow")), "NumericDate"),
    ("not yet valid", lambda c: sign(claims(c, nbf=int(c.now.timestamp()) + 120)), "not valid yet"),
    ("issued in the future", lambda c: sign(claims(c, iat=int(c.now.timestamp()) + 120)), "future"),
    ("alg none", lambda c: jwt.encode(claims(c), None, algorithm="none", headers={"kid": "rsa-1"}), "`none`"),
    ("HS256 with the public key", _hs256_with_the_public_key, "`HS256`"),
    ("PS256 not configured", lambda c: sign(claims(c), "PS256", RSA_KEY, "rsa-1"), "`PS256`"),
    ("RSA signature under the EC key's kid", lambda c: sign(claims(c), "RS256", RSA_KEY, "ec-1"), "does not go"),
    ("another key under a known kid", lambda c: sign(claims(c), "RS256", ATTACKER_KEY, "rsa-1"), "signature"),
    ("tampered payload", _tampered, "signature"),
    ("jku to the attacker's keys", lambda c: sign(claims(c), "RS256", ATTACKER_KEY, "rsa-1",
                                                   jku="http://127.0.0.1:9/attacker.json"), "jku"),
    ("embedded jwk", lambda c: sign(claims(c), "RS256", ATTACKER_KEY, "rsa-1", jwk=ATTACKER_JWK), "jwk"),
    ("x5u", lambda c: sign(claims(c), x5u="https://attacker.example/cert.pem"), "x5u"),
    ("crit", lambda c: sign(claims(c), crit=["exp"]), "crit"),
    ("id-token-like typ", lambda c: sign(claims(c), typ="secevent+jwt"), "type"),
    ("no kid", lambda c: jwt.encode(claims(c), RSA_KEY, algorithm="RS256"), "`kid`"),
    ("oversized", lambda c: sign(claims(c, pad="x" * 9000)), "over 8192 bytes"),
    ("duplicate claim", _duplicate_sub, "strict JSON"),
    ("no sub", lambda c: sign(claims(c, sub=None)), "`sub`"),
    ("sub not a string", lambda c: sign(claims(c, sub=42)), "`sub`"),
    ("sub with a control character", lambda c: sign(claims(c, sub="bot\nadmin")), "`sub`"),
    ("two parts", lambda c: ".".join(sign(claims(c)).split(".")[:2]), "compact JWS"),
    ("not a token", lambda c: "not-a-token", "compact JWS"),
]


@pytest.mark.parametrize(("make", "fragment"), [(make, fragment) for _, make, fragment in REFUSED],
                         ids=[name for name, _, _ in REFUSED])
def test_a_bad_token_is_refused_and_changes_nothing(
    serve: Serve, clock: FixedClock, make: Callable[[FixedClock], str], fragment: str
) -> None:
    api = serve()
    assert api.call("POST", "/v1/requests", json=submission(), headers=bearer(sign(claims(clock)))).status_code == 201
    entries = audit_size(api)
    for method, path, body in [("POST", "/v1/requests", submission()),
                               ("POST", "/v1/grants/consume", consumption("x"))]:
        refused = api.call(method, path, json=body, headers=bearer(make(clock)))
        error = expect_error(refused, 401, "auth.invalid")
        assert fragment in error["message"], error
        assert refused.headers["www-authenticate"].startswith("Bearer")
    assert audit_size(api) == entries


def test_a_header_naming_another_key_set_is_never_fetched(serve: Serve, clock: FixedClock) -> None:
    api = serve()
    attacker = JwksServer([ATTACKER_JWK])
    try:
        token = sign(claims(clock), "RS256", ATTACKER_KEY, "rsa-1", jku=attacker.url)
        expect_error(api.call("POST", "/v1/requests", json=submission(), headers=bearer(token)), 401, "auth.invalid")
        assert attacker.fetches == 0
    finally:
        attacker.stop()


def test_an_unknown_kid_refreshes_the_key_set_once_then_is_refused(
    serve: Serve, clock: FixedClock, jwks: JwksServer, ticker: Ticker
) -> None:
    api = serve(jwks_min_refresh_seconds=30)
    assert api.call("POST", "/v1/requests", json=submission(), headers=bearer(sign(claims(clock)))).status_code == 201
    assert jwks.fetches == 1
    entries = audit_size(api)
    rotated = sign(claims(clock), "RS256", ROTATED_KEY, "rsa-2")
    expect_error(api.call("POST", "/v1/requests", json=submission(), headers=bearer(rotated)), 401, "auth.invalid")
    assert jwks.fetches == 1, "the set was read less than 30 s ago"
    ticker.now += 30
    for _ in range(3):
        error = expect_error(api.call("POST", "/v1/requests", json=submission(), headers=bearer(rotated)),
                             401, "auth.invalid")
        assert "`rsa-2` is not one of the provider's keys" in error["message"]
    assert jwks.fetches == 2, "one refresh for the unknown kid, then none until the interval has passed"
    assert audit_size(api) == entries
    # The provider rotates the key in: seen at the next refresh the interval allows.
    jwks.document = {"keys": [*PROVIDER_KEYS, public_jwk(ROTATED_KEY, "rsa-2")]}
    ticker.now += 29
    expect_error(api.call("POST", "/v1/requests", json=submission(), headers=bearer(rotated)), 401, "auth.invalid")
    assert jwks.fetches == 2
    ticker.now += 1
    assert api.call("POST", "/v1/requests", json=submission(), headers=bearer(rotated)).status_code == 201
    assert jwks.fetches == 3


def test_a_provider_that_is_down_refuses_its_tokens_while_credentials_still_work(
    serve: Serve, clock: FixedClock, jwks: JwksServer, ticker: Ticker
) -> None:
    jwks.stop()
    api = serve()
    entries = audit_size(api)
    for _ in range(2):
        error = expect_error(api.call("POST", "/v1/requests", json=submission(), headers=bearer(sign(claims(clock)))),
                             503, "auth.jwks_unavailable")
        assert "cannot fetch the JWK Set" in error["message"]
    assert audit_size(api) == entries
    assert api.call("GET", "/readyz").status_code == 200
    assert api.call("POST", "/v1/requests", "agent", json=submission()).status_code == 201


@pytest.mark.parametrize(("status", "document", "fragment"), [
    (500, {"keys": PROVIDER_KEYS}, "HTTP 500"),
    (302, {"keys": PROVIDER_KEYS}, "HTTP 302"),
    (200, {"keys": [{"kty": "oct", "k": b64url(b"secret" * 6), "kid": "rsa-1"}]}, "no usable key"),
    (200, {"keys": [{**public_jwk(RSA_KEY, "rsa-1"), "use": "enc"}]}, "no usable key"),
    (200, {"keys": [{**public_jwk(RSA_KEY, "rsa-1"), "alg": "PS256"}]}, "no usable key"),
    (200, {"keys": [public_jwk(rsa.generate_private_key(public_exponent=65537, key_size=1024), "rsa-1")]},
     "no usable key"),
    (200, {"keys": [public_jwk(RSA_KEY, "rsa-1"), public_jwk(ATTACKER_KEY, "rsa-1")]}, "no usable key"),
    (200, ["not", "a", "key", "set"], "no `keys`"),
], ids=["500", "redirect", "symmetric key", "encryption key", "other alg", "rsa-1024", "kid twice", "not a set"])
def test_a_key_set_that_cannot_be_used_refuses_every_token(
    serve: Serve, clock: FixedClock, jwks: JwksServer, status: int, document: Any, fragment: str
) -> None:
    jwks.status, jwks.document = status, document
    api = serve()
    error = expect_error(api.call("POST", "/v1/requests", json=submission(), headers=bearer(sign(claims(clock)))),
                         503, "auth.jwks_unavailable")
    assert fragment in error["message"], error


def test_cached_keys_are_trusted_only_until_the_cache_expires_then_refetched(
    serve: Serve, clock: FixedClock, jwks: JwksServer, ticker: Ticker
) -> None:
    api = serve(jwks_cache_seconds=300, jwks_min_refresh_seconds=30)
    token = sign(claims(clock, exp=int(clock.now.timestamp()) + 3600))
    assert api.call("POST", "/v1/requests", json=submission(), headers=bearer(token)).status_code == 201
    jwks.status = 503
    ticker.now += 299
    assert api.call("POST", "/v1/requests", json=submission(), headers=bearer(token)).status_code == 201
    assert jwks.fetches == 1
    ticker.now += 1
    expect_error(api.call("POST", "/v1/requests", json=submission(), headers=bearer(token)), 503,
                 "auth.jwks_unavailable")
    assert jwks.fetches == 2
    jwks.status = 200
    expect_error(api.call("POST", "/v1/requests", json=submission(), headers=bearer(token)), 503,
                 "auth.jwks_unavailable")
    assert jwks.fetches == 2, "a failed fetch is not retried before the interval has passed"
    ticker.now += 30
    assert api.call("POST", "/v1/requests", json=submission(), headers=bearer(token)).status_code == 201
    assert jwks.fetches == 3


def test_a_local_key_set_file(serve: Serve, clock: FixedClock, jwks: JwksServer, tmp_path: Path) -> None:
    jwks.stop()
    (tmp_path / "provider-jwks.json").write_text(json.dumps({"keys": PROVIDER_KEYS}))
    api = serve(jwks_url=None, jwks_file="provider-jwks.json")
    for alg in SIGNERS:
        assert api.call("POST", "/v1/requests", json=submission(), headers=bearer(sign(claims(clock), alg))
                        ).status_code == 201


def test_a_providers_principal_can_never_approve_or_administer(serve: Serve, clock: FixedClock) -> None:
    api = serve(subjects={"alice@example.com": "user:alice"})
    token = sign(claims(clock, sub="alice@example.com"))
    request_id = api.call("POST", "/v1/requests", "agent", json=submission()).json()["request_id"]
    entries = audit_size(api)
    for method, path, body in [
        ("POST", f"/v1/requests/{request_id}/approvals", {"decision": "approve"}),
        ("POST", f"/v1/requests/{request_id}/break-glass", {"justification": "outage"}),
        ("POST", f"/v1/requests/{request_id}/break-glass/reviews", {"comment": "fine"}),
        ("GET", "/v1/audit/verify", None),
        ("GET", "/metrics", None),
    ]:
        expect_error(api.call(method, path, json=body, headers=bearer(token)), 403, "auth.forbidden")
    assert audit_size(api) == entries
    web = httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="https://interlock")
    try:
        form = api.portal.call(lambda: web.get("/inbox/login"))
        csrf = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        refused = api.portal.call(lambda: web.post("/inbox/login", data={"token": token, "csrf_token": csrf}))
        assert refused.status_code == 401 and "<code>auth.invalid</code>" in refused.text
        assert not any(c.startswith("__Host-interlock-session=") for c in refused.headers.get_list("set-cookie"))
    finally:
        api.portal.call(web.aclose)


def test_the_same_person_id_is_recognised_an_approver_cannot_approve_what_they_requested(
    serve: Serve, clock: FixedClock
) -> None:
    api = serve(subjects={"alice@example.com": "user:alice"})
    token = sign(claims(clock, sub="alice@example.com"))
    submitted = api.call("POST", "/v1/requests", json=submission(), headers=bearer(token)).json()
    assert api.gate.review(submitted["request_id"]).request.principal.id == "user:alice"
    path = f"/v1/requests/{submitted['request_id']}/approvals"
    code = submitted["approval"]["binding_code"]
    expect_error(api.call("POST", path, "alice", json={"decision": "approve", "binding_code": code}),
                 409, "approval.not_independent")
    assert api.call("POST", path, "bob", json={"decision": "approve", "binding_code": code}).status_code == 200
    assert [a["approver"] for a in api.gate.status(submitted["request_id"]).approvals] == ["user:bob"]


def test_the_prefix_keeps_the_providers_subjects_apart_from_registered_principals(
    serve: Serve, clock: FixedClock
) -> None:
    api = serve()
    lookalike = sign(claims(clock, sub="agent:finance-assistant"))
    request_id = api.call("POST", "/v1/requests", "agent", json=submission()).json()["request_id"]
    expect_error(api.call("GET", f"/v1/requests/{request_id}", headers=bearer(lookalike)), 403, "auth.forbidden")
    claimed = submission(principal={"id": "agent:finance-assistant"})
    expect_error(api.call("POST", "/v1/requests", json=claimed, headers=bearer(lookalike)),
                 403, "auth.principal_mismatch")


def test_a_mapped_executor_consumes_a_grant_once(serve: Serve, clock: FixedClock) -> None:
    api = serve(subjects={"svc-payments": "payments-service"}, kind="service")
    body = submission(params=SMALL_TRANSFER)
    allowed = api.call("POST", "/v1/requests", "agent", json=body).json()
    assert allowed["outcome"] == "allowed", allowed
    unmapped = sign(claims(clock))
    expect_error(api.call("POST", "/v1/grants/consume", json=consumption(allowed["grant"], body),
                          headers=bearer(unmapped)), 403, "grant.wrong_executor")
    executor = bearer(sign(claims(clock, sub="svc-payments")))
    consumed = api.call("POST", "/v1/grants/consume", json=consumption(allowed["grant"], body), headers=executor)
    assert consumed.status_code == 200 and consumed.json()["executor"] == "payments-service", consumed.text
    expect_error(api.call("POST", "/v1/grants/consume", json=consumption(allowed["grant"], body), headers=executor),
                 409, "grant.already_used")
    reported = api.call("POST", f"/v1/grants/{consumed.json()['jti']}/result", json={"result": "succeeded"},
                        headers=executor)
    assert reported.status_code == 200, reported.text


def test_unmapped_subjects_can_be_refused(serve: Serve, clock: FixedClock) -> None:
    api = serve(subjects={"svc-finance": "agent:finance-bot"}, unmapped="refuse")
    entries = audit_size(api)
    error = expect_error(api.call("POST", "/v1/requests", json=submission(), headers=bearer(sign(claims(clock)))),
                         403, "auth.forbidden")
    assert "`finance-bot` is not mapped" in error["message"]
    assert audit_size(api) == entries
    mapped = bearer(sign(claims(clock, sub="svc-finance")))
    assert api.call("POST", "/v1/requests", json=submission(), headers=mapped).status_code == 201


def test_without_a_provider_a_jwt_is_not_a_credential(api: Api, clock: FixedClock) -> None:
    expect_error(api.call("POST", "/v1/requests", json=submission(), headers=bearer(sign(claims(clock)))),
                 401, "auth.invalid")
