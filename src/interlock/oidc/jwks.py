"""The provider's verification keys: a JWK Set (RFC 7517) fetched or read, cached, and refreshed within bounds."""

from __future__ import annotations

import base64
import logging
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

from interlock.core import strict_json
from interlock.core.errors import AuthError, RequestError

MAX_JWKS_BYTES = 256 * 1024
MIN_RSA_BITS = 2048
VerificationKey = RSAKey | ECKey | OKPKey
# The key type (and curve) each algorithm needs (RFC 7518 §3, RFC 8037 §3.1, RFC 9864 §2.2).
_KEY_FOR: Mapping[str, tuple[str, frozenset[str] | None]] = {
    **{alg: ("RSA", None) for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    "ES256": ("EC", frozenset({"P-256"})), "ES384": ("EC", frozenset({"P-384"})), "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})), "Ed25519": ("OKP", frozenset({"Ed25519"})),
}
_IMPORTERS: Mapping[str, Callable[[dict[str, Any]], VerificationKey]] = {
    "RSA": RSAKey.import_key, "EC": ECKey.import_key, "OKP": OKPKey.import_key,
}
_log = logging.getLogger(__name__)
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)


def unavailable(message: str) -> AuthError:
    return AuthError("auth.jwks_unavailable", message)


@dataclass(frozen=True)
class TrustedKey:
    """One key of the set, and the configured algorithms it may verify."""

    key: VerificationKey
    algorithms: frozenset[str]


def parse_key_set(document: bytes, algorithms: tuple[str, ...]) -> dict[str, TrustedKey]:
    """The usable signature keys of a JWK Set, by `kid`; `RequestError` when none is usable."""
    value = strict_json.parse(document, max_bytes=MAX_JWKS_BYTES)
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
        raise RequestError("input.invalid", "not a JWK Set: no `keys` array")
    keys: dict[str, TrustedKey] = {}
    repeated: set[str] = set()
    for entry in value["keys"]:
        trusted = _trusted_key(entry, algorithms)
        if trusted is None:
            continue
        kid = entry["kid"]
        if kid in keys:
            repeated.add(kid)
        keys[kid] = trusted
    for kid in repeated:
        # Two keys under one `kid`: which one a token means would be a guess, so neither is used.
        _log.warning("the JWK Set has several keys with kid %r; none of them is used", kid)
        del keys[kid]
    if not keys:
        raise RequestError("input.invalid", f"the JWK Set has no usable key for {', '.join(algorithms)}")
    return keys


def _trusted_key(entry: object, algorithms: tuple[str, ...]) -> TrustedKey | None:
    """The key if it is a public signature key with a `kid` for some configured algorithm, else None (skipped)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str) or not entry["kid"]:
        return None
    if entry.get("use", "sig") != "sig" or "d" in entry:
        return None
    key_ops = entry.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    kty, crv = entry.get("kty"), entry.get("crv")
    usable = frozenset(alg for alg in algorithms if _fits(alg, kty, crv))
    if "alg" in entry:
        usable &= {entry["alg"]}
    importer = _IMPORTERS.get(kty) if isinstance(kty, str) else None
    if not usable or importer is None:
        return None
    if kty == "RSA" and _modulus_bits(entry.get("n")) < MIN_RSA_BITS:
        _log.warning("the JWK Set's RSA key %r is under %d bits; it is not used", entry["kid"], MIN_RSA_BITS)
        return None
    try:
        key = importer(entry)
    except (JoseError, ValueError, TypeError, KeyError):
        _log.warning("the JWK Set's key %r cannot be read; it is not used", entry["kid"])
        return None
    return TrustedKey(key, usable)


def _modulus_bits(n: object) -> int:
    """The size of an RSA JWK's modulus (RFC 7518 §6.3.1.1), 0 if it is not base64url."""
    if not isinstance(n, str):
        return 0
    try:
        return int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))).bit_length()
    except ValueError:
        return 0


def _fits(alg: str, kty: object, crv: object) -> bool:
    needed_kty, curves = _KEY_FOR[alg]
    return kty == needed_kty and (curves is None or crv in curves)


@dataclass
class KeySource:
    """Where the key set comes from: an https URL (no redirects, bounded size and time) or a local file."""

    url: str | None
    path: Path | None
    timeout: float

    def read(self) -> bytes:
        if self.path is not None:
            try:
                with self.path.open("rb") as file:
                    document = file.read(MAX_JWKS_BYTES + 1)
            except OSError as exc:
                raise unavailable(f"cannot read the JWK Set {self.path}: {exc.strerror}") from None
            return self._bounded(document)
        assert self.url is not None
        try:
            with httpx.Client(timeout=self.timeout, follow_redirects=False) as client, \
                    client.stream("GET", self.url, headers={"Accept": "application/json"}) as response:
                if response.status_code != 200:
                    raise unavailable(f"the JWK Set at {self.url} answered HTTP {response.status_code}")
                document = b""
                for chunk in response.iter_bytes():
                    document += chunk
                    if len(document) > MAX_JWKS_BYTES:
                        break
        except httpx.HTTPError as exc:
            raise unavailable(f"cannot fetch the JWK Set at {self.url}: {type(exc).__name__}") from None
        return self._bounded(document)

    def name(self) -> str:
        return self.url or str(self.path)

    @staticmethod
    def _bounded(document: bytes) -> bytes:
        if len(document) > MAX_JWKS_BYTES:
            raise unavailable(f"the JWK Set is over {MAX_JWKS_BYTES} bytes")
        return document


@dataclass
class KeyCache:
    """The last good key set, trusted for `cache_seconds` after it was read; read again when it is older or a
    token names an unknown `kid`, but never more than once per `min_refresh_seconds`, so tokens cannot make the
    gate hammer the provider. Fails closed: with no fresh set, every token is refused (`auth.jwks_unavailable`).
    """

    source: KeySource
    algorithms: tuple[str, ...]
    cache_seconds: float
    min_refresh_seconds: float
    monotonic: Callable[[], float] = time.monotonic
    _keys: dict[str, TrustedKey] = field(default_factory=dict, init=False)
    _read_at: float | None = field(default=None, init=False)
    _tried_at: float | None = field(default=None, init=False)
    _failure: str | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def key(self, kid: str) -> TrustedKey:
        """The trusted key named `kid`; `auth.invalid` if the provider has none, `auth.jwks_unavailable` if the
        key set cannot be known now."""
        with self._lock:
            now = self.monotonic()
            fresh = self._read_at is not None and now - self._read_at < self.cache_seconds
            if (not fresh or kid not in self._keys) and self._may_try(now):
                self._refresh(now)
                fresh = self._failure is None or fresh
            if not fresh:
                raise unavailable(f"the provider's keys cannot be read ({self._failure or 'not read yet'});"
                                  " bearer JWTs are refused until they can")
            trusted = self._keys.get(kid)
            if trusted is None:
                if self._failure is not None:
                    raise unavailable(f"key `{kid}` is not in the cached key set and the provider's keys cannot be"
                                      f" read again ({self._failure})")
                raise AuthError("auth.invalid", f"the bearer JWT's key `{kid}` is not one of the provider's keys")
            return trusted

    def prefetch(self) -> str | None:
        """Read the key set now; the reason it could not be read, or None."""
        with self._lock:
            self._refresh(self.monotonic())
            return self._failure

    def _may_try(self, now: float) -> bool:
        return self._tried_at is None or now - self._tried_at >= self.min_refresh_seconds

    def _refresh(self, now: float) -> None:
        self._tried_at = now
        try:
            keys = parse_key_set(self.source.read(), self.algorithms)
        except AuthError as exc:
            self._failure = exc.message
        except RequestError as exc:
            self._failure = f"{self.source.name()}: {exc.message}"
        else:
            self._keys, self._read_at, self._failure = keys, now, None
            return
        _log.warning("OpenID provider keys: %s", self._failure)
