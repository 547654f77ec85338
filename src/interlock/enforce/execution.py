"""`Interlock-Execution`: the proof, signed by the HTTP proxy, that a forwarded call had its grant consumed.

The proxy adds one to every call it forwards after consuming a grant: a JWT (RFC 7519; compact JWS, EdDSA,
`typ: interlock-execution+jwt`) whose claims bind the call as the upstream receives it — method and target
(`htm`, `htu`, as in DPoP, RFC 9449), the body's SHA-256 (the `Content-Digest` of RFC 9530) — to the grant
and request it consumed, for a short time. An upstream that accepts only calls carrying a valid one leaves
no direct path around the gate: `ExecutionVerifier` is that check, for a Python upstream.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from interlock import signed_tokens
from interlock.core.canonical import canonical_json
from interlock.core.errors import ExecutionError, KeyringError
from interlock.keys import load_or_create_key
from interlock.results import Consumption

EXECUTION_TYP = "interlock-execution+jwt"
EXECUTION_HEADER = "Interlock-Execution"
# On an MCP tools/call the gateway forwards: the token in `params._meta`, bound to `htm` = "tools/call",
# `htu` = the tool's name and `content_digest` over the RFC 8785 JSON of the arguments.
EXECUTION_META = "interlock/execution"
TOOL_CALL = "tools/call"
DEFAULT_TTL = 60
LEEWAY = 5  # seconds of clock difference between proxy and upstream tolerated
Clock = Callable[[], datetime.datetime]


def content_digest(body: bytes) -> str:
    """The RFC 9530 `Content-Digest` field value of a body, with SHA-256."""
    return f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"


@dataclass(frozen=True)
class ExecutionKey:
    """The proxy's own Ed25519 signing key (not the gate's: an upstream trusts the proxy, not every grant)."""

    key: OKPKey
    kid: str

    @classmethod
    def load_or_create(cls, path: Path) -> ExecutionKey:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = load_or_create_key(path)
        return cls(key, key.thumbprint())

    def jwks(self) -> dict[str, Any]:
        """The public key as an RFC 7517 JWK Set: what an upstream is configured with."""
        return {"keys": [{**self.key.as_dict(private=False), "kid": self.kid, "alg": "EdDSA", "use": "sig"}]}

    def issue(self, consumed: Consumption, *, issuer: str, audience: str, method: str, target: str, body: bytes,
              now: datetime.datetime, ttl: int = DEFAULT_TTL) -> str:
        issued = int(now.timestamp())
        claims = {
            "iss": issuer, "aud": audience, "iat": issued, "exp": issued + ttl, "jti": secrets.token_urlsafe(16),
            "htm": method, "htu": target, "content_digest": content_digest(body),
            "grant": consumed.jti, "request_id": consumed.request_id, "executor": consumed.executor,
            "action": consumed.action, "digest": consumed.digest,
        }
        return signed_tokens.sign(claims, self.key, self.kid, EXECUTION_TYP)


def public_keys(jwks: Mapping[str, Any]) -> dict[str, OKPKey]:
    """The Ed25519 keys of a JWK Set, by `kid`; anything else in it is refused (`keys.invalid`)."""
    keys: dict[str, OKPKey] = {}
    listed = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(listed, list) or not listed:
        raise KeyringError("keys.invalid", "a JWK Set needs a non-empty `keys` list")
    for entry in listed:
        try:
            key = OKPKey.import_key({k: v for k, v in entry.items() if k not in ("alg", "use", "kid")})
        except (JoseError, ValueError, TypeError, AttributeError) as exc:
            raise KeyringError("keys.invalid", f"not an Ed25519 public key: {exc}") from None
        if key.curve_name != "Ed25519" or key.is_private:
            raise KeyringError("keys.invalid", "a JWK Set for execution tokens holds Ed25519 public keys only")
        keys[entry.get("kid") or key.thumbprint()] = key
    return keys


@dataclass(frozen=True)
class Execution:
    """A verified execution token: which grant and request this call was let through for."""

    grant: str
    request_id: str
    action: str
    digest: str
    issuer: str
    claims: dict[str, Any]


class ExecutionVerifier:
    """The upstream's check: a call runs only with a fresh, unreplayed execution token bound to exactly it.

    `verify` refuses with `execution.missing`, `.malformed`, `.bad_algorithm`, `.unknown_key`,
    `.bad_signature`, `.wrong_audience`, `.wrong_issuer`, `.expired`, `.request_mismatch` or `.replayed`.
    Replays are remembered in memory until the token expires: run one verifier per upstream process, or
    share `seen` across processes yourself.
    """

    def __init__(self, jwks: Mapping[str, Any], *, audience: str, issuer: str | None = None,
                 clock: Clock | None = None) -> None:
        self._keys = public_keys(jwks)
        self._audience = audience
        self._issuer = issuer
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._seen: dict[str, int] = {}  # jti -> exp of every token accepted and not yet expired
        self._next_prune = 0
        self._lock = threading.Lock()

    def verify(self, token: str | None, *, method: str, target: str, body: bytes) -> Execution:
        if not token:
            raise ExecutionError("execution.missing", "no execution token: this call did not come through the gate")
        claims = signed_tokens.verify(token, self._keys, EXECUTION_TYP, name="execution token",
                                      refuse=lambda reason, message: ExecutionError(f"execution.{reason}", message))
        now = int(self._clock().timestamp())
        if claims.get("aud") != self._audience:
            raise ExecutionError("execution.wrong_audience", f"execution token is for `{claims.get('aud')}`")
        if self._issuer is not None and claims.get("iss") != self._issuer:
            raise ExecutionError("execution.wrong_issuer", f"execution token is from `{claims.get('iss')}`")
        expires, issued = claims.get("exp"), claims.get("iat")
        if not isinstance(expires, int) or not isinstance(issued, int) or issued > now + LEEWAY:
            raise ExecutionError("execution.malformed", "execution token times are missing or in the future")
        if expires + LEEWAY < now:
            raise ExecutionError("execution.expired", "execution token has expired")
        for claim, actual in (("htm", method), ("htu", target), ("content_digest", content_digest(body))):
            if claims.get(claim) != actual:
                raise ExecutionError("execution.request_mismatch", f"execution token was issued for another call"
                                                                   f" (`{claim}` differs)")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise ExecutionError("execution.malformed", "execution token has no `jti`")
        with self._lock:
            if now >= self._next_prune:  # forget expired tokens once in a while, not on every call
                self._seen = {seen: until for seen, until in self._seen.items() if until + LEEWAY >= now}
                self._next_prune = now + LEEWAY
            if jti in self._seen:
                raise ExecutionError("execution.replayed", "execution token was already used")
            self._seen[jti] = expires
        return Execution(grant=str(claims.get("grant")), request_id=str(claims.get("request_id")),
                         action=str(claims.get("action")), digest=str(claims.get("digest")),
                         issuer=str(claims.get("iss")), claims=claims)


def verify_tool_call(verifier: ExecutionVerifier, meta: Mapping[str, Any] | None, tool: str,
                     arguments: Mapping[str, Any] | None) -> Execution:
    """An MCP upstream's check of one tools/call: its `_meta` carries a valid token for this tool and arguments."""
    token = meta.get(EXECUTION_META) if meta else None
    return verifier.verify(token if isinstance(token, str) else None, method=TOOL_CALL, target=tool,
                           body=canonical_json(dict(arguments or {})))
