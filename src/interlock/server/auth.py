"""Who is calling: the bearer token (RFC 6750) authenticated against the credential registry, and role checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool

from interlock.core.approval import takes_part
from interlock.core.errors import AuthError
from interlock.credentials import TOKEN_PREFIX, Credentials, Identity, Role
from interlock.gate import Gate
from interlock.results import RequestReview

if TYPE_CHECKING:
    from interlock.oidc import OidcBearer

# Declared for the OpenAPI schema; the header is parsed below so each failure has its own reason code.
_bearer_scheme = HTTPBearer(auto_error=False, description="`Authorization: Bearer ilk_...`")


def gate_of(request: Request) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


def credentials_of(request: Request) -> Credentials:
    credentials: Credentials = request.app.state.credentials
    return credentials


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("auth.invalid", "the Authorization header is not `Bearer <token>`")
    return token.strip()


def authenticate(request: Request, token: str | None) -> Identity:
    """The identity of a bearer token: a registered credential (`ilk_...`), else, when the server accepts them,
    a JWT of the configured OpenID provider (always a principal)."""
    oidc = _provider_of(request, token)
    if oidc is not None:
        return oidc.authenticate(token or "")
    return credentials_of(request).authenticate(token)


def _provider_of(request: Request, token: str | None) -> OidcBearer | None:
    """The OpenID provider that authenticates `token`, or None when the credential registry does."""
    oidc: OidcBearer | None = request.app.state.oidc
    return oidc if oidc is not None and token and not token.startswith(TOKEN_PREFIX) else None


@dataclass(frozen=True)
class Bearer:
    """A call's bearer token, read from its header but not yet looked up in the registry."""

    request: Request
    token: str | None
    roles: tuple[Role, ...]

    def identity(self) -> Identity:
        """The caller, refused with `auth.forbidden` unless it holds one of the roles. Reads the store: call it
        on a worker thread, in the same hop as the work it authorizes where there is one (a hop costs more
        than the read)."""
        return self._allowed(authenticate(self.request, self.token))

    async def identity_async(self) -> Identity:
        """`identity()` on the event loop: a registry lookup the store can do there (a local file) runs on the
        loop's thread; an OpenID provider's token and a remote store's lookup run on a worker thread."""
        oidc = _provider_of(self.request, self.token)
        if oidc is not None:
            return self._allowed(await run_in_threadpool(oidc.authenticate, self.token or ""))
        return self._allowed(await credentials_of(self.request).authenticate_async(self.token))

    def _allowed(self, identity: Identity) -> Identity:
        if identity.role not in self.roles:
            needed = " or ".join(self.roles)
            raise AuthError("auth.forbidden", f"a {identity.role} credential cannot do this; it needs {needed}")
        return identity


def bearer(*roles: Role) -> Callable[..., Awaitable[Bearer]]:
    """A dependency: the call's bearer token, to be authenticated for one of `roles` by `Bearer.identity()`."""

    async def read(request: Request, _: object = Depends(_bearer_scheme)) -> Bearer:
        return Bearer(request, bearer_token(request), roles)

    return read


def caller(*roles: Role) -> Callable[..., Awaitable[Identity]]:
    """A dependency: the authenticated caller, refused with `auth.forbidden` unless it holds one of `roles`."""

    async def authenticated(request: Request, _: object = Depends(_bearer_scheme)) -> Identity:
        return await run_in_threadpool(Bearer(request, bearer_token(request), roles).identity)

    return authenticated


def approver_takes_part(gate: Gate, review: RequestReview, approver_id: str) -> bool:
    """Whether an approver may see a request: one its rules need, who decided on it, or may review its break-glass."""
    state = review.state
    return takes_part(
        review.request, approver_id,
        approvers=(person for requirement in state.requirements for person in requirement["approvers"]),
        decided_by=(approval["approver"] for approval in state.approvals),
        glass_broken=any(approval.get("break_glass") for approval in state.approvals),
        groups=gate.policy.spec.groups,
    )
