"""Grant claims: what a grant says (RFC 7519 + RFC 8693 `act` + RFC 9396 `authorization_details`) and its checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from interlock.core.action import ActionRequest
from interlock.core.errors import GrantError

GRANT_TYP = "grant+jwt"
AUTHORIZATION_DETAILS_TYPE = "interlock_action"
DEFAULT_TTL_SECONDS = 300
REQUIRED_CLAIMS = ("iss", "sub", "aud", "iat", "nbf", "exp", "jti", "authorization_details")
# Each approval behind a grant, so an executor can require a strength (e.g. no `local` approvals).
APPROVAL_FIELDS = ("id", "approver", "channel", "auth")


def subject_and_actors(request: ActionRequest) -> tuple[str, dict[str, Any] | None]:
    """`sub` and `act` as RFC 8693 §4.1 defines them.

    `sub` is the party the action is ultimately for: the outermost delegator, or the requester when
    nobody delegated. `act` names the party acting now (the requester); each nested `act` names the
    actor before it, back along `on_behalf_of` (outermost first) to the one right after `sub`.
    """
    chain = [p.id for p in request.on_behalf_of] + [request.principal.id]
    act: dict[str, Any] | None = None
    for actor in chain[1:]:
        act = {"sub": actor, **({"act": act} if act else {})}
    return chain[0], act


def build_claims(
    *,
    issuer: str,
    request: ActionRequest,
    request_id: str,
    digest: str,
    executor: str,
    jti: str,
    issued_at: int,
    ttl: int,
    policy_version: str,
    approvals: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """The claims of a grant bound to exactly this action (INVARIANT 2).

    `approvals` are the approvals it rests on, each with `id`, `approver`, `channel` and `auth`.
    """
    subject, act = subject_and_actors(request)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": executor,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + ttl,
        "jti": jti,
        "authorization_details": [
            {
                "type": AUTHORIZATION_DETAILS_TYPE,
                "action": request.action,
                "resource": request.resource,
                "digest": digest,
                "request_id": request_id,
                "approvals": [{name: a[name] for name in APPROVAL_FIELDS} for a in approvals],
                "policy_version": policy_version,
            }
        ],
    }
    if act:
        claims["act"] = act
    return claims


@dataclass(frozen=True)
class GrantDetails:
    """The parts of verified claims the gate needs to consume a grant."""

    jti: str
    request_id: str
    action: str
    resource: str
    digest: str
    policy_version: str
    executor: str
    expires_at: int
    approvals: tuple[dict[str, str], ...] = ()


def check_claims(
    claims: dict[str, Any], *, executor: str, digest: str, now: int, leeway: int = 0
) -> GrantDetails:
    """Check times, audience and the bound digest; raise the first failed check's reason."""
    for name in REQUIRED_CLAIMS:
        if name not in claims:
            raise GrantError("grant.malformed", f"grant lacks the `{name}` claim")
    details = claims["authorization_details"]
    if not (isinstance(details, list) and len(details) == 1 and isinstance(details[0], dict)):
        raise GrantError("grant.malformed", "grant must carry exactly one authorization_details entry")
    detail = details[0]
    if detail.get("type") != AUTHORIZATION_DETAILS_TYPE:
        raise GrantError("grant.malformed", "authorization_details entry is not an interlock action")
    for name in ("action", "resource", "digest", "request_id", "policy_version"):
        if not isinstance(detail.get(name), str):
            raise GrantError("grant.malformed", f"authorization_details lacks `{name}`")
    approvals = detail.get("approvals")
    if not isinstance(approvals, list) or not all(
        isinstance(a, dict) and all(isinstance(a.get(name), str) for name in APPROVAL_FIELDS) for a in approvals
    ):
        raise GrantError("grant.malformed", "authorization_details `approvals` must list id, approver, channel, auth")
    for name in ("iat", "nbf", "exp"):
        if not isinstance(claims[name], int) or isinstance(claims[name], bool):
            raise GrantError("grant.malformed", f"`{name}` is not an integer time")
    if now >= claims["exp"] + leeway:
        raise GrantError("grant.expired", "grant has expired")
    if now + leeway < claims["nbf"]:
        raise GrantError("grant.not_yet_valid", "grant is not valid yet")
    if claims["aud"] != executor:
        raise GrantError("grant.wrong_executor", f"grant is for another executor than `{executor}`")
    if detail["digest"] != digest:
        raise GrantError("grant.digest_mismatch", "the action about to run is not the action that was granted")
    return GrantDetails(
        jti=str(claims["jti"]),
        request_id=detail["request_id"],
        action=detail["action"],
        resource=detail["resource"],
        digest=detail["digest"],
        policy_version=detail["policy_version"],
        executor=executor,
        expires_at=claims["exp"],
        approvals=tuple({name: a[name] for name in APPROVAL_FIELDS} for a in approvals),
    )
