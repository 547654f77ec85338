"""Grant tokens: sign claims as a compact JWS (EdDSA, `typ: grant+jwt`) and verify one with the algorithm
pinned (RFC 8725), parsing the token once."""

from __future__ import annotations

import base64
import functools
import json
import re
import warnings
from typing import Any

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError, SecurityWarning

from interlock.core.errors import GrantError
from interlock.core.grant import GRANT_TYP
from interlock.keys import KeyRing

ALGORITHM = "EdDSA"
MAX_TOKEN_BYTES = 16 * 1024
# Headers that would let a token name its own verification key or change how it is read: refused.
_REFUSED_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64"})
# RFC 7515 §7.1: three base64url parts without padding (a part of length 4n+1 cannot be base64url).
_COMPACT_JWS = re.compile(r"(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?\.(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?"
                          r"\.(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?")
_REGISTRY = jws.JWSRegistry(algorithms=[ALGORITHM])
# RFC 9864 prefers the fully specified "Ed25519" name; grants keep "EdDSA", which every JOSE library reads.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)


def sign(claims: dict[str, Any], keys: KeyRing) -> str:
    """A compact JWS (RFC 7515 §7.1) over the claims with the active key.

    Written out rather than through joserfc, which costs as much again as the signature itself on
    the hot path; verification (the security boundary) goes through joserfc, and tests check that
    other JOSE libraries accept these tokens.
    """
    payload = _b64url(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
    signing_input = f"{_protected_header(keys.kid)}.{payload}"
    signature = keys.signing_key.private_key.sign(signing_input.encode())
    return f"{signing_input}.{_b64url(signature)}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@functools.lru_cache(maxsize=16)
def _protected_header(kid: str) -> str:
    return _b64url(json.dumps({"alg": ALGORITHM, "kid": kid, "typ": GRANT_TYP}, separators=(",", ":")).encode())


def verify(token: str, keys: KeyRing) -> dict[str, Any]:
    """Verify header and signature only; the caller checks times, audience and digest with its own clock."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES or not _COMPACT_JWS.fullmatch(token):
        raise GrantError("grant.malformed", "grant is not a compact JWS of three base64url parts")
    try:
        parsed = jws.extract_compact(token.encode())
    except (JoseError, ValueError, TypeError) as exc:
        raise GrantError("grant.malformed", f"grant is not a JWS: {exc}") from None
    header = parsed.headers()
    if header.get("alg") != ALGORITHM:
        raise GrantError("grant.bad_algorithm", f"grant algorithm `{header.get('alg')}` is not {ALGORITHM}")
    if header.get("typ") != GRANT_TYP:
        raise GrantError("grant.malformed", f"token type `{header.get('typ')}` is not {GRANT_TYP}")
    if _REFUSED_HEADERS & header.keys():
        raise GrantError("grant.malformed", "grant headers name their own key or change how it is read")
    kid = header.get("kid")
    key = keys.public_keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise GrantError("grant.unknown_key", f"grant key `{kid}` is not one of this gate's keys")
    try:
        valid = jws.validate_compact(parsed, key, registry=_REGISTRY)
    except BadSignatureError:
        valid = False
    except (JoseError, ValueError, TypeError) as exc:
        raise GrantError("grant.malformed", f"grant cannot be verified: {exc}") from None
    if not valid:
        raise GrantError("grant.bad_signature", "grant signature does not verify")
    try:
        claims = json.loads(parsed.payload)
    except (ValueError, TypeError):
        raise GrantError("grant.malformed", "grant payload is not JSON") from None
    if not isinstance(claims, dict):
        raise GrantError("grant.malformed", "grant payload is not a JSON object")
    return claims
