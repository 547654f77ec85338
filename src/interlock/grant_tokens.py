"""Grant tokens: sign claims as a JWT (EdDSA, `typ: grant+jwt`) and verify one with the algorithm pinned (RFC 8725)."""

from __future__ import annotations

from typing import Any

import jwt

from interlock.core.errors import GrantError
from interlock.core.grant import GRANT_TYP
from interlock.keys import KeyRing

ALGORITHM = "EdDSA"
MAX_TOKEN_BYTES = 16 * 1024
# Headers that would let a token name its own verification key: never trusted, so refused.
_KEY_CARRYING_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256"})


def sign(claims: dict[str, Any], keys: KeyRing) -> str:
    """A compact JWS over the claims with the active key."""
    return jwt.encode(claims, keys.signing_key, algorithm=ALGORITHM, headers={"kid": keys.kid, "typ": GRANT_TYP})


def verify(token: str, keys: KeyRing) -> dict[str, Any]:
    """Verify header and signature only; the caller checks times, audience and digest with its own clock."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_BYTES:
        raise GrantError("grant.malformed", "grant is empty, too long or not a string")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise GrantError("grant.malformed", f"grant is not a JWT: {exc}") from None
    if header.get("alg") != ALGORITHM:
        raise GrantError("grant.bad_algorithm", f"grant algorithm `{header.get('alg')}` is not {ALGORITHM}")
    if header.get("typ") != GRANT_TYP:
        raise GrantError("grant.malformed", f"token type `{header.get('typ')}` is not {GRANT_TYP}")
    if _KEY_CARRYING_HEADERS & header.keys() or "crit" in header:
        raise GrantError("grant.malformed", "grant headers name their own key or critical extensions")
    key = keys.public_keys.get(header.get("kid")) if isinstance(header.get("kid"), str) else None
    if key is None:
        raise GrantError("grant.unknown_key", f"grant key `{header.get('kid')}` is not one of this gate's keys")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False},
        )
    except jwt.InvalidSignatureError:
        raise GrantError("grant.bad_signature", "grant signature does not verify") from None
    except jwt.PyJWTError as exc:
        raise GrantError("grant.malformed", f"grant cannot be decoded: {exc}") from None
    if not isinstance(claims, dict):
        raise GrantError("grant.malformed", "grant payload is not a JSON object")
    return claims
