"""`HOME/oidc.yaml` (or `interlock serve --oidc FILE`): which OpenID provider's bearer JWTs stand for principals."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from interlock.config_files import load_model, read_bytes
from interlock.core import strict_json
from interlock.core.action import IDENTIFIER, PrincipalKind
from interlock.core.errors import RequestError

CONFIG_FILE = "oidc.yaml"
# Asymmetric signatures only (RFC 8725 §3.1, §3.2): `none` and the HMAC family cannot be configured, so a token
# can never be "verified" with a public key used as an HMAC secret.
Algorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
                    "Ed25519"]
DEFAULT_ALGORITHMS: tuple[Algorithm, ...] = ("RS256", "ES256", "EdDSA")
_CLAIM = r"^[A-Za-z0-9_.:/-]{1,64}$"
_LOOPBACK_NAMES = ("localhost",)


class OidcConfig(BaseModel):
    """The provider (issuer, audience, keys, algorithms) and how a verified token becomes a principal."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str = Field(min_length=1, max_length=2048, description="compared exactly with the token's `iss`")
    audience: str = Field(min_length=1, max_length=2048, description="must be in the token's `aud`")
    jwks_url: str | None = Field(None, max_length=2048, description="https; http only on a loopback host")
    jwks_file: Path | None = Field(None, description="a local JWK Set, relative to the config file")
    algorithms: tuple[Algorithm, ...] = Field(DEFAULT_ALGORITHMS, min_length=1)
    # Seconds a fetched key set is trusted without a successful refetch; after that, unreachable keys refuse.
    jwks_cache_seconds: int = Field(300, ge=10, le=86400)
    # At most one fetch per this many seconds, whatever the tokens ask (unknown `kid`, expired cache, failure).
    jwks_min_refresh_seconds: int = Field(30, ge=1, le=3600)
    jwks_timeout_seconds: float = Field(5.0, gt=0, le=30)
    leeway_seconds: int = Field(30, ge=0, le=300)
    max_token_bytes: int = Field(8192, ge=512, le=65536)
    principal_claim: str = Field("sub", pattern=_CLAIM)
    # INVARIANT: never empty, so a provider's subject cannot become an id registered here (an opaque principal's,
    # whose requests and grants it could then read) unless `subjects` maps it there on purpose.
    principal_prefix: str = Field("oidc:", min_length=1, max_length=64, pattern=IDENTIFIER)
    subjects: dict[str, str] = Field(default_factory=dict, description="claim value -> principal id, no prefix")
    unmapped: Literal["prefix", "refuse"] = "prefix"
    kind: PrincipalKind
    attributes: dict[str, Any] = Field(default_factory=dict)
    attribute_claims: tuple[str, ...] = Field((), description="claims copied into the principal's attributes")

    @field_validator("subjects")
    @classmethod
    def _subject_ids(cls, subjects: dict[str, str]) -> dict[str, str]:
        for claimed, principal_id in subjects.items():
            if not _matches(IDENTIFIER, claimed) or not _matches(IDENTIFIER, principal_id):
                raise ValueError("subjects and the ids they map to are 1-256 printable characters")
        return subjects

    @field_validator("attribute_claims")
    @classmethod
    def _claim_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        reserved = {"iss", "aud", "exp", "nbf", "iat", "jti"}
        for name in names:
            if not _matches(_CLAIM, name) or name in reserved:
                raise ValueError(f"`{name}` is not a claim that can become an attribute")
        return names

    @field_validator("attributes")
    @classmethod
    def _json_attributes(cls, attributes: dict[str, Any]) -> dict[str, Any]:
        try:
            strict_json.check_value(attributes)
        except RequestError as exc:
            raise ValueError(exc.message) from None
        return attributes

    @model_validator(mode="after")
    def _consistent(self) -> OidcConfig:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("name exactly one of `jwks_url` and `jwks_file`")
        if self.jwks_url is not None:
            _check_jwks_url(self.jwks_url)
        both = set(self.attributes) & set(self.attribute_claims)
        if both:
            raise ValueError(f"`{sorted(both)[0]}` is both a fixed attribute and a claim: which one wins would be a"
                             " guess")
        return self


def _matches(pattern: str, value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(pattern, value) is not None


def _check_jwks_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return
    raise ValueError("`jwks_url` must be an https URL (plain http only on a loopback host)")


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_config(text: str | bytes, base: Path) -> OidcConfig:
    """Parse an OIDC config (YAML, duplicate keys refused); `jwks_file` is relative to `base`."""
    config = load_model(text, OidcConfig, "oidc config",
                        "a YAML mapping with `issuer`, `audience`, `kind` and `jwks_url` or `jwks_file`")
    if config.jwks_file is not None:
        config = config.model_copy(update={"jwks_file": base / config.jwks_file})
    return config


def read_config(path: Path) -> OidcConfig:
    return load_config(read_bytes(path), path.parent)
