"""Bearer credentials of the HTTP API: token issue, hashing, revocation, and who a token stands for."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_args

from interlock.core import strict_json
from interlock.core.action import PrincipalKind
from interlock.core.errors import AuthError, RequestError
from interlock.gate import Clock, utc_now
from interlock.ids import new_id
from interlock.store.base import AuditEvent, CredentialRecord, Role, Store

__all__ = ["ROLES", "TOKEN_PREFIX", "Credentials", "Identity", "IssuedCredential", "Role", "describe", "token_sha256"]

TOKEN_PREFIX = "ilk_"  # noqa: S105 - a prefix that makes a leaked token recognisable, not a secret
ROLES: tuple[Role, ...] = get_args(Role)
_TOKEN = re.compile(r"ilk_[A-Za-z0-9_-]{43}")
_SUBJECT = re.compile(r"[^\x00-\x1f\x7f]{1,256}")


@dataclass(frozen=True)
class Identity:
    """Who an authenticated caller is: the registry's word, never the caller's."""

    role: Role
    subject_id: str
    kind: str | None
    attributes: dict[str, Any] | None
    credential_id: str

    def principal(self) -> dict[str, Any]:
        """The request's `principal` as the registry knows it."""
        return {"id": self.subject_id, "kind": self.kind, "attributes": dict(self.attributes or {})}


@dataclass(frozen=True)
class IssuedCredential:
    """A new credential and its token; the token exists only here, to be shown once."""

    record: CredentialRecord
    token: str


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def describe(record: CredentialRecord) -> dict[str, Any]:
    """A credential as shown to an operator: never the token, never its hash."""
    body: dict[str, Any] = {"id": record.id, "role": record.role, "subject": record.subject_id}
    if record.role == "principal":
        body["kind"] = record.kind
        body["attributes"] = record.attributes
    body["created_at"] = record.created_at.isoformat()
    body["revoked_at"] = record.revoked_at.isoformat() if record.revoked_at else None
    return body


@dataclass
class Credentials:
    """The credential registry: add, list and revoke credentials (each audited), and authenticate tokens."""

    store: Store
    clock: Clock = utc_now
    ids: Callable[[str], str] = field(default=new_id)

    def add(
        self, role: Role, subject_id: str, kind: str | None = None,
        attributes: dict[str, Any] | bytes | str | None = None,
    ) -> IssuedCredential:
        """Register a credential for `subject_id`; principals need a `kind` and may carry `attributes`."""
        _check_subject(role, subject_id)
        if role == "principal":
            if kind not in get_args(PrincipalKind):
                raise RequestError("input.invalid", f"kind must be one of {', '.join(get_args(PrincipalKind))}")
            attributes = _attributes(attributes)
        elif kind is not None or attributes is not None:
            raise RequestError("input.invalid", f"only principals have a kind and attributes, not {role}s")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        record = CredentialRecord(self.ids("cred"), role, subject_id, token_sha256(token), now, kind,
                                  attributes if role == "principal" else None)
        # The audit entry names the credential and what it stands for; never the token or its hash.
        data: dict[str, Any] = {"credential_id": record.id, "role": role, "subject": subject_id}
        if role == "principal":
            data.update(kind=kind, attributes=record.attributes)
        self.store.add_credential(record, AuditEvent("credential.added", None, data, now))
        return IssuedCredential(record, token)

    def list(self, role: Role | None = None) -> list[CredentialRecord]:
        return self.store.list_credentials(role)

    def revoke(self, credential_id: str, role: Role | None = None) -> CredentialRecord:
        """Revoke a credential (of `role`, when given): its token is refused (`auth.revoked`) from now on."""
        if role is not None and all(c.id != credential_id for c in self.list(role)):
            raise AuthError("auth.unknown_credential", f"no {role} credential `{credential_id}`")
        now = self.clock()
        return self.store.revoke_credential(
            credential_id, now,
            lambda c: AuditEvent("credential.revoked", None,
                                 {"credential_id": c.id, "role": c.role, "subject": c.subject_id}, now),
        )

    def authenticate(self, token: str | None) -> Identity:
        """The identity a bearer token stands for; `auth.missing`, `auth.invalid` or `auth.revoked` otherwise."""
        return self.identify(_token_hash(token))

    async def authenticate_async(self, token: str | None) -> Identity:
        """`authenticate` for a coroutine."""
        token_hash = _token_hash(token)
        return _identity(await self.store.find_credential_async(token_hash))

    def identify(self, token_hash: str) -> Identity:
        """The identity of the credential whose token hashes to `token_hash` (what a web session keeps)."""
        return _identity(self.store.find_credential(token_hash))


def _token_hash(token: str | None) -> str:
    if not token:
        raise AuthError("auth.missing", "a bearer token is required: `Authorization: Bearer ilk_...`")
    if not _TOKEN.fullmatch(token):
        raise AuthError("auth.invalid", "the bearer token is not an Interlock credential")
    return token_sha256(token)


def _identity(record: CredentialRecord | None) -> Identity:
    # The hash lookup is by an index on a SHA-256 of a 256-bit secret: its timing reveals nothing usable.
    if record is None:
        raise AuthError("auth.invalid", "the bearer token is not a registered credential")
    if record.revoked_at is not None:
        raise AuthError("auth.revoked", "the bearer token was revoked")
    return Identity(record.role, record.subject_id, record.kind, record.attributes, record.id)


def _check_subject(role: str, subject_id: str) -> None:
    if role not in ROLES:
        raise RequestError("input.invalid", f"role must be one of {', '.join(ROLES)}")
    if not isinstance(subject_id, str) or not _SUBJECT.fullmatch(subject_id):
        raise RequestError("input.invalid", "the id must be 1-256 printable characters")


def _attributes(attributes: dict[str, Any] | bytes | str | None) -> dict[str, Any]:
    if attributes is None:
        return {}
    value = strict_json.parse(attributes) if isinstance(attributes, bytes | str) else attributes
    if not isinstance(value, dict):
        raise RequestError("input.invalid", "attributes must be a JSON object")
    strict_json.check_value(value)
    return value
