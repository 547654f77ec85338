"""A bearer JWT from the OpenID provider: verified (RFC 8725; RFC 9068 §4) and turned into a principal's identity.

Only principals: the identity's role is always `principal`, so such a token can submit, read its own requests and
consume grants, and never approve (approvers keep their registered credentials and inbox sessions) or administer.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError

from interlock.core import strict_json
from interlock.core.errors import AuthError, RequestError
from interlock.credentials import Identity
from interlock.gate import Clock
from interlock.oidc.config import CONFIG_FILE, OidcConfig, read_config
from interlock.oidc.jwks import KeyCache, KeySource
from interlock.signed_tokens import COMPACT_JWS, REFUSED_HEADERS

# The credential id of every identity from a JWT: there is no registered credential to revoke.
OIDC_CREDENTIAL = "oidc"
# RFC 9068 §2.1 `at+jwt` and RFC 7519 §5.1 `JWT`; media types compare case-insensitively, `application/` optional.
_JWT_TYPES = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
# joserfc refuses a header over 512 bytes; a refused key-carrying header is reported as such below that size.
MAX_HEADER_CHARS = 2048
_ID = re.compile(r"[^\x00-\x1f\x7f]{1,256}")


def _invalid(message: str) -> AuthError:
    return AuthError("auth.invalid", f"the bearer JWT {message}")


@dataclass(frozen=True)
class OidcBearer:
    """Verifies the provider's bearer JWTs against its key set and the gate's clock."""

    config: OidcConfig
    keys: KeyCache
    clock: Clock

    @classmethod
    def open(cls, config: OidcConfig, clock: Clock, monotonic: Callable[[], float] = time.monotonic) -> OidcBearer:
        """A verifier for `config`; a local key set must be readable now, a fetched one is read when needed.

        `clock` (the gate's) judges the tokens' times; `monotonic` paces the key set's refreshes.
        """
        source = KeySource(config.jwks_url, config.jwks_file, config.jwks_timeout_seconds)
        keys = KeyCache(source, config.algorithms, config.jwks_cache_seconds, config.jwks_min_refresh_seconds,
                        monotonic)
        if config.jwks_file is not None and (failure := keys.prefetch()) is not None:
            raise RequestError("input.invalid", f"oidc config: `jwks_file`: {failure}")
        return cls(config, keys, clock)

    def authenticate(self, token: str) -> Identity:
        """The principal a verified token stands for; `auth.invalid`, `auth.forbidden` or `auth.jwks_unavailable`."""
        return self.identity(self.verify(token))

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a token whose header, signature, issuer, audience and times all check out."""
        if len(token.encode()) > self.config.max_token_bytes:
            raise _invalid(f"is over {self.config.max_token_bytes} bytes")
        if not COMPACT_JWS.fullmatch(token):
            raise _invalid("is not a compact JWS of three base64url parts")
        header = _header(token)
        alg = header.get("alg")
        if alg not in self.config.algorithms:
            raise _invalid(f"algorithm {_shown(alg)} is not one of {', '.join(self.config.algorithms)}")
        if REFUSED_HEADERS & header.keys():
            raise _invalid(f"header names its own key or changes how it is read"
                           f" ({', '.join(sorted(REFUSED_HEADERS & header.keys()))})")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _JWT_TYPES):
            raise _invalid(f"type {_shown(typ)} is not `at+jwt` or `JWT`")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _invalid("header has no `kid`")
        trusted = self.keys.key(kid)
        if alg not in trusted.algorithms:
            raise _invalid(f"algorithm `{alg}` does not go with key `{kid}`")
        try:
            parsed = jws.extract_compact(token.encode())
        except (JoseError, ValueError, TypeError):
            raise _invalid("is not a JWS") from None
        if parsed.headers() != header:
            raise _invalid("header reads differently to different parsers")
        try:
            valid = jws.validate_compact(parsed, trusted.key, registry=jws.JWSRegistry(algorithms=[alg]))
        except BadSignatureError:
            valid = False
        except (JoseError, ValueError, TypeError):
            raise _invalid(f"cannot be verified with key `{kid}`") from None
        if not valid:
            raise _invalid("signature does not verify")
        try:
            claims = strict_json.parse(parsed.payload, max_bytes=self.config.max_token_bytes)
        except RequestError as exc:
            raise _invalid(f"payload is not strict JSON: {exc.message}") from None
        if not isinstance(claims, dict):
            raise _invalid("payload is not a JSON object")
        self._check_claims(claims)
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        if claims.get("iss") != self.config.issuer:
            raise _invalid(f"issuer {_shown(claims.get('iss'))} is not `{self.config.issuer}`")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
        if self.config.audience not in audiences:
            raise _invalid(f"audience does not include `{self.config.audience}`")
        now = self.clock().timestamp()
        leeway = self.config.leeway_seconds
        exp = _time(claims, "exp", required=True)
        if exp is not None and now >= exp + leeway:
            raise _invalid("has expired")
        nbf = _time(claims, "nbf", required=False)
        if nbf is not None and now + leeway < nbf:
            raise _invalid("is not valid yet (`nbf`)")
        iat = _time(claims, "iat", required=False)
        if iat is not None and now + leeway < iat:
            raise _invalid("was issued in the future (`iat`)")

    def identity(self, claims: dict[str, Any]) -> Identity:
        """The principal of verified claims: a `subjects` entry, else the prefixed claim (or refused)."""
        config = self.config
        value = claims.get(config.principal_claim)
        if not isinstance(value, str) or not _ID.fullmatch(value):
            raise _invalid(f"claim `{config.principal_claim}` is not 1-256 printable characters")
        principal_id = config.subjects.get(value)
        if principal_id is None:
            if config.unmapped == "refuse":
                raise AuthError("auth.forbidden", f"`{config.principal_claim}` `{value}` is not mapped to a"
                                                  " principal here")
            principal_id = config.principal_prefix + value
            if not _ID.fullmatch(principal_id):
                raise _invalid(f"claim `{config.principal_claim}` is too long for a principal id")
        attributes = dict(config.attributes)
        attributes.update({name: claims[name] for name in config.attribute_claims if name in claims})
        return Identity("principal", principal_id, config.kind, attributes, OIDC_CREDENTIAL)


def _shown(value: Any) -> str:
    """A value from the token, quoted and cut short for a message."""
    text = value if isinstance(value, str) else json.dumps(value)
    return f"`{text[:80]}…`" if len(text) > 80 else f"`{text}`"


def _header(token: str) -> dict[str, Any]:
    """The protected header (RFC 7515 §5.2 steps 2-4), read with the strict parser (duplicate names refused)."""
    encoded = token.split(".", 1)[0]
    if len(encoded) > MAX_HEADER_CHARS:
        raise _invalid(f"header is over {MAX_HEADER_CHARS} characters")
    try:
        header = strict_json.parse(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (RequestError, ValueError):
        raise _invalid("header is not a JSON object") from None
    if not isinstance(header, dict):
        raise _invalid("header is not a JSON object")
    return header


def _time(claims: dict[str, Any], name: str, *, required: bool) -> float | None:
    """A NumericDate claim (RFC 7519 §2): seconds since the epoch."""
    value = claims.get(name)
    if value is None:
        if required:
            raise _invalid(f"has no `{name}`")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"`{name}` is not a NumericDate")
    return float(value)


def open_bearer(home: Path, path: Path | None, clock: Clock) -> OidcBearer | None:
    """The verifier configured by `path`, else by `HOME/oidc.yaml` when it exists; None when neither does.

    A fetched key set is read once now so a wrong URL shows at startup; failing, it is only logged: registered
    credentials work without the provider, and its tokens are refused until its keys can be read.
    """
    if path is None:
        path = home / CONFIG_FILE
        if not path.exists():
            return None
    bearer = OidcBearer.open(read_config(path), clock)
    if bearer.config.jwks_url is not None:
        bearer.keys.prefetch()  # a failure is logged by the key cache
    return bearer
