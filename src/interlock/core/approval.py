"""Approval rules: who may approve a request, over which channel, and when the quorum is met."""

from __future__ import annotations

import datetime
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from interlock.core.action import ActionRequest
from interlock.core.errors import ApprovalError
from interlock.core.policy import ApprovalRequirement

Verdict = Literal["approve", "reject"]
# How the approver proved who they are: an API bearer credential, a web inbox session, or a local caller
# (the CLI, an in-process gate) that the operating system's account already vouches for.
ApproverAuth = Literal["token", "session", "local"]
AUTH_METHODS: frozenset[str] = frozenset({"token", "session", "local"})


@dataclass(frozen=True)
class Approval:
    """One recorded approve or reject by one approver over one channel."""

    id: str
    request_id: str
    approver_id: str
    channel: str
    verdict: Verdict
    comment: str
    at: datetime.datetime
    auth: ApproverAuth = "local"
    # Given alone under a policy `break_glass` entry, not as one vote toward a quorum.
    break_glass: bool = False


def check_independent(request: ActionRequest, person_id: str) -> None:
    """INVARIANT 4: recognition is not approval. Not the requester, nobody it acts for."""
    if person_id == request.principal.id:
        raise ApprovalError("approval.not_independent", f"`{person_id}` is the requester")
    if person_id in request.delegator_ids:
        raise ApprovalError("approval.not_independent", f"`{person_id}` is in the request's delegation chain")


def takes_part(
    request: ActionRequest,
    person_id: str,
    *,
    approvers: Iterable[str],
    decided_by: Iterable[str],
    glass_broken: bool = False,
    groups: Mapping[str, Collection[str]] | None = None,
) -> bool:
    """Whether a person has a part in a request: they decided on it (the break-glass user too), or, being
    independent of it, its rules name them as an approver, or the glass was broken and they may sign off its review
    (any member of a policy group, as `review_break_glass` allows)."""
    if person_id in set(decided_by):
        return True
    if person_id == request.principal.id or person_id in request.delegator_ids:
        return False
    if person_id in set(approvers):
        return True
    return glass_broken and any(person_id in members for members in (groups or {}).values())


def check_approver(
    request: ActionRequest,
    requirements: Iterable[ApprovalRequirement],
    approver_id: str,
    channel: str,
    earlier: Iterable[Approval],
) -> None:
    """Raise the reason an approver may not approve or reject this request; return if they may."""
    check_independent(request, approver_id)
    eligible = [r for r in requirements if approver_id in r.approvers]
    if not eligible:
        raise ApprovalError("approval.not_an_approver", f"`{approver_id}` is not an approver for this request")
    if any(a.approver_id == approver_id for a in earlier):
        raise ApprovalError("approval.duplicate", f"`{approver_id}` has already decided on this request")
    if all(r.separate_channel and channel == request.channel for r in eligible):
        raise ApprovalError(
            "approval.same_channel",
            f"approval must come over another channel than the request's `{request.channel}`",
        )


def is_rubber_stamp(
    requirements: Iterable[ApprovalRequirement],
    approver_id: str,
    verdict: Verdict,
    submitted_at: datetime.datetime,
    at: datetime.datetime,
) -> bool:
    """An approve given sooner after submission than the longest review time of the rules it answers."""
    if verdict != "approve":
        return False
    review = max((r.min_review_seconds for r in requirements if approver_id in r.approvers), default=0)
    return (at - submitted_at).total_seconds() < review


def counts_for(request: ActionRequest, requirement: ApprovalRequirement, approval: Approval) -> bool:
    """Whether an approval counts toward a requirement (re-checked, so a changed policy is honoured)."""
    return (
        approval.verdict == "approve"
        and approval.approver_id in requirement.approvers
        and approval.approver_id != request.principal.id
        and approval.approver_id not in request.delegator_ids
        and not (requirement.separate_channel and approval.channel == request.channel)
    )


def is_satisfied(
    request: ActionRequest, requirements: Iterable[ApprovalRequirement], approvals: Iterable[Approval]
) -> bool:
    """Every requirement has its quorum of distinct, eligible approvers, and nobody rejected."""
    approvals = list(approvals)
    if any(a.verdict == "reject" for a in approvals):
        return False
    requirements = list(requirements)
    if not requirements:
        return False
    for requirement in requirements:
        approvers = {a.approver_id for a in approvals if counts_for(request, requirement, a)}
        if len(approvers) < requirement.quorum:
            return False
    return True


def progress(
    request: ActionRequest, requirements: Iterable[ApprovalRequirement], approvals: Iterable[Approval]
) -> list[dict[str, object]]:
    """Per requirement: who has approved so far and how many are needed."""
    approvals = list(approvals)
    return [
        {
            "rule_id": r.rule_id,
            "quorum": r.quorum,
            "approved_by": sorted({a.approver_id for a in approvals if counts_for(request, r, a)}),
        }
        for r in requirements
    ]
