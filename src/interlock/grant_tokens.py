"""Grant tokens: claims signed as a compact JWS (EdDSA, `typ: grant+jwt`) with the gate's active key, and
verified against every key of the gate's ring (see `signed_tokens.py`)."""

from __future__ import annotations

from typing import Any

from interlock import signed_tokens
from interlock.core.errors import GrantError
from interlock.core.grant import GRANT_TYP
from interlock.keys import KeyRing

MAX_TOKEN_BYTES = signed_tokens.MAX_TOKEN_BYTES


def sign(claims: dict[str, Any], keys: KeyRing) -> str:
    return signed_tokens.sign(claims, keys.signing_key, keys.kid, GRANT_TYP)


def verify(token: str, keys: KeyRing) -> dict[str, Any]:
    """Verify header and signature only; the caller checks times, audience and digest with its own clock."""
    return signed_tokens.verify(token, keys.public_keys, GRANT_TYP, name="grant",
                                refuse=lambda reason, message: GrantError(f"grant.{reason}", message))
