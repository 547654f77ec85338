"""Who is calling: the bearer token (RFC 6750) authenticated against the credential registry, and role checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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


async def authenticate(request: Request, token: str | None) -> Identity:
    """The identity of a bearer token: a registered credential (`ilk_...`), else, when the server accepts them,
    a JWT of the configured OpenID provider (always a principal). A registry lookup the store can do on the
    event loop (a local file) runs there; a provider's token and a remote store's lookup on a worker thread."""
    oidc: OidcBearer | None = request.app.state.oidc
    if oidc is not None and token and not token.startswith(TOKEN_PREFIX):
        return await run_in_threadpool(oidc.authenticate, token)
    return await credentials_of(request).authenticate_async(token)


def caller(*roles: Role) -> Callable[..., Awaitable[Identity]]:
    """A dependency: the authenticated caller, refused with `auth.forbidden` unless it holds one of `roles`.
    It runs before the route reads the body."""

    async def authenticated(request: Request, _: object = Depends(_bearer_scheme)) -> Identity:
        identity = await authenticate(request, bearer_token(request))
        if identity.role not in roles:
            needed = " or ".join(roles)
            raise AuthError("auth.forbidden", f"a {identity.role} credential cannot do this; it needs {needed}")
        return identity

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
