"""Grant tokens: claims signed as a compact JWS (EdDSA, `typ: grant+jwt`) with the gate's active key, and
verified against every key of the gate's ring (see `signed_tokens.py`)."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

from interlock import signed_tokens
from interlock.core.errors import GrantError
from interlock.core.grant import GRANT_TYP
from interlock.keys import KeyRing

MAX_TOKEN_BYTES = signed_tokens.MAX_TOKEN_BYTES
# Grants signed here and not yet presented that a GrantTokens remembers (a few MB at most); older ones
# are verified in full.
REMEMBERED_GRANTS = 4096


def sign(claims: dict[str, Any], keys: KeyRing) -> str:
    return signed_tokens.sign(claims, keys.signing_key, keys.kid, GRANT_TYP)


def verify(token: str, keys: KeyRing) -> dict[str, Any]:
    """Verify header and signature only; the caller checks times, audience and digest with its own clock."""
    return signed_tokens.verify(token, keys.public_keys, GRANT_TYP, name="grant",
                                refuse=lambda reason, message: GrantError(f"grant.{reason}", message))


class GrantTokens:
    """A gate's grants: signed with its ring's active key, verified against every key of the ring.

    It remembers the tokens it signed until each is first presented. A presented token equal to one of them
    carries this ring's valid signature by construction, so its check is a lookup and the payload's parse
    instead of a JWS parse and an Ed25519 verification (about 0.2 ms of a consume). Everything else — a
    token another process signed, a second presentation, a forgery, one pushed out by `capacity` newer
    ones — is verified in full. The claims are checked by the caller either way.
    """

    def __init__(self, keys: KeyRing, capacity: int = REMEMBERED_GRANTS) -> None:
        self.keys = keys
        self._capacity = capacity
        self._signed: dict[str, None] = {}  # insertion-ordered: the oldest first
        self._lock = threading.Lock()

    def sign(self, claims: dict[str, Any]) -> str:
        token = sign(claims, self.keys)
        with self._lock:
            self._signed[token] = None
            if len(self._signed) > self._capacity:
                del self._signed[next(iter(self._signed))]  # the oldest
        return token

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a grant whose header and signature are valid; `grant.*` refusals otherwise."""
        with self._lock:
            signed_here = isinstance(token, str) and token in self._signed
            if signed_here:
                del self._signed[token]
        if not signed_here:
            return verify(token, self.keys)
        payload = token.split(".")[1]
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return claims
