"""What the gate answers: a request's state, what an approver reviews, a consumed grant, a break-glass review."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from interlock.core.action import ActionRequest
from interlock.store.base import BreakGlassReview

# A decision's outcome, and the request status it leaves.
OUTCOME_STATUS = {"allow": "allowed", "deny": "denied", "require_approval": "pending_approval"}


@dataclass(frozen=True)
class RequestState:
    """What the gate tells a requester or approver about a request."""

    request_id: str
    outcome: str  # allowed | denied | pending_approval | approved | rejected | expired
    reasons: tuple[str, ...]
    explanation: str
    digest: str
    policy_version: str
    grant: str | None = None
    requester: str = ""  # the principal's id, for access checks; not part of the JSON
    expires_at: datetime.datetime | None = None
    requirements: tuple[dict[str, Any], ...] = ()
    progress: tuple[dict[str, Any], ...] = ()
    approvals: tuple[dict[str, Any], ...] = ()
    consumed: bool = False
    result: str | None = None
    # CIBA-style binding code of a request waiting for approvers; typing it is required when `sensitive`.
    binding_code: str | None = None
    sensitive: bool = False

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "request_id": self.request_id,
            "outcome": self.outcome,
            "reasons": list(self.reasons),
            "explanation": self.explanation,
            "digest": self.digest,
            "policy_version": self.policy_version,
        }
        if self.grant:
            body["grant"] = self.grant
        if self.requirements:
            body["approval"] = {
                "requirements": list(self.requirements),
                "progress": list(self.progress),
                "expires_at": self.expires_at.isoformat() if self.expires_at else None,
                "binding_code": self.binding_code,
                "binding_code_required": self.sensitive,
            }
        if self.approvals:
            body["approvals"] = list(self.approvals)
        if self.consumed:
            body["consumed"] = True
            body["result"] = self.result
        return body


@dataclass(frozen=True)
class RequestReview:
    """What an approver reviews: the request exactly as submitted, the rules it matched, and its state now."""

    request: ActionRequest
    state: RequestState
    matched_rules: tuple[str, ...]
    submitted_at: datetime.datetime


@dataclass(frozen=True)
class Consumption:
    """A grant consumed: the executor may now run exactly the action it presented."""

    jti: str
    request_id: str
    executor: str
    action: str
    digest: str


def review_json(review: BreakGlassReview) -> dict[str, Any]:
    """A break-glass review as JSON data."""
    return {
        "request_id": review.request_id,
        "break_glass_entry": review.entry_id,
        "used_by": review.used_by,
        "justification": review.justification,
        "opened_at": review.opened_at.isoformat(),
        "due_at": review.due_at.isoformat(),
        "closed": review.closed_at is not None,
        "closed_at": review.closed_at.isoformat() if review.closed_at else None,
        "signoffs": [{"id": s.id, "reviewer": s.reviewer_id, "channel": s.channel, "comment": s.comment,
                      "at": s.at.isoformat()} for s in review.signoffs],
    }
