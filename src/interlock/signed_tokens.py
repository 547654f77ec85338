"""Compact JWS tokens signed with Ed25519 (`alg: EdDSA`), explicitly typed (RFC 8725 §3.11), and verified with
the algorithm pinned, the key chosen by `kid` from the verifier's own set, and the token parsed once.

Grants (`grant_tokens.py`) and the HTTP proxy's execution tokens (`enforce/execution.py`) are both such tokens.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError, SecurityWarning
from joserfc.jwk import OKPKey

from interlock.core.errors import InterlockError

ALGORITHM = "EdDSA"
MAX_TOKEN_BYTES = 16 * 1024
# Headers that would let a token name its own verification key or change how it is read (RFC 8725 §3.10): refused.
REFUSED_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64"})
# RFC 7515 §7.1: three base64url parts without padding (a part of length 4n+1 cannot be base64url).
_PART = r"(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?"
COMPACT_JWS = re.compile(rf"{_PART}\.{_PART}\.{_PART}")
_REGISTRY = jws.JWSRegistry(algorithms=[ALGORITHM])
# RFC 9864 prefers the fully specified "Ed25519" name; Interlock keeps "EdDSA", which every JOSE library reads.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

# Builds the error for a refused token from a reason (`malformed`, `bad_algorithm`, `unknown_key`,
# `bad_signature`) and a message; each kind of token has its own error class and code prefix.
Refusal = Callable[[str, str], InterlockError]


def sign(claims: dict[str, Any], key: OKPKey, kid: str, typ: str) -> str:
    """A compact JWS (RFC 7515 §7.1) over the claims.

    Written out rather than through joserfc, which costs as much again as the signature itself on
    the hot path; verification (the security boundary) goes through joserfc, and tests check that
    other JOSE libraries accept these tokens.
    """
    payload = _b64url(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
    signing_input = f"{_protected_header(kid, typ)}.{payload}"
    signature = key.private_key.sign(signing_input.encode())
    return f"{signing_input}.{_b64url(signature)}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@functools.lru_cache(maxsize=16)
def _protected_header(kid: str, typ: str) -> str:
    return _b64url(json.dumps({"alg": ALGORITHM, "kid": kid, "typ": typ}, separators=(",", ":")).encode())


def verify(token: Any, public_keys: Mapping[str, OKPKey], typ: str, *, name: str, refuse: Refusal) -> dict[str, Any]:
    """Verify header and signature only; the caller checks times, audience and what the claims bind."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES or not COMPACT_JWS.fullmatch(token):
        raise refuse("malformed", f"{name} is not a compact JWS of three base64url parts")
    try:
        parsed = jws.extract_compact(token.encode())
    except (JoseError, ValueError, TypeError) as exc:
        raise refuse("malformed", f"{name} is not a JWS: {exc}") from None
    header = parsed.headers()
    if header.get("alg") != ALGORITHM:
        raise refuse("bad_algorithm", f"{name} algorithm `{header.get('alg')}` is not {ALGORITHM}")
    if header.get("typ") != typ:
        raise refuse("malformed", f"token type `{header.get('typ')}` is not {typ}")
    if REFUSED_HEADERS & header.keys():
        raise refuse("malformed", f"{name} headers name their own key or change how it is read")
    kid = header.get("kid")
    key = public_keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise refuse("unknown_key", f"{name} key `{kid}` is not one of the keys trusted here")
    try:
        valid = jws.validate_compact(parsed, key, registry=_REGISTRY)
    except BadSignatureError:
        valid = False
    except (JoseError, ValueError, TypeError) as exc:
        raise refuse("malformed", f"{name} cannot be verified: {exc}") from None
    if not valid:
        raise refuse("bad_signature", f"{name} signature does not verify")
    try:
        claims = json.loads(parsed.payload)
    except (ValueError, TypeError):
        raise refuse("malformed", f"{name} payload is not JSON") from None
    if not isinstance(claims, dict):
        raise refuse("malformed", f"{name} payload is not a JSON object")
    return claims
