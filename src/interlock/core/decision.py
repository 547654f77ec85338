"""Policy decisions: evaluate one request against a compiled policy, with `now` and history passed in."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from interlock.core.action import ActionRequest
from interlock.core.conditions import Activation, History, NoHistory
from interlock.core.policy import ApprovalRequirement, Policy, Rule

Outcome = Literal["allow", "deny", "require_approval"]
_NO_HISTORY = NoHistory()


@dataclass(frozen=True)
class Decision:
    """What policy says about a request, and why."""

    outcome: Outcome
    policy_version: str
    matched_rules: tuple[str, ...]
    reasons: tuple[str, ...]
    explanation: str
    requirements: tuple[ApprovalRequirement, ...] = field(default=())
    sensitive: bool = False

    @property
    def approval_expires_in(self) -> int | None:
        """Seconds an approval may take: the shortest expiry of all requirements."""
        return min((r.expires_in for r in self.requirements), default=None)

    def to_json(self) -> dict[str, object]:
        """The decision as JSON data; computed once per decision, so treat it as read-only."""
        return self._json

    @functools.cached_property
    def _json(self) -> dict[str, object]:
        return {
            "outcome": self.outcome,
            "policy_version": self.policy_version,
            "matched_rules": list(self.matched_rules),
            "reasons": list(self.reasons),
            "explanation": self.explanation,
            "sensitive": self.sensitive,
            "requirements": [
                {
                    "rule_id": r.rule_id,
                    "approvers": sorted(r.approvers),
                    "quorum": r.quorum,
                    "separate_channel": r.separate_channel,
                    "expires_in": r.expires_in,
                    "min_review_seconds": r.min_review_seconds,
                }
                for r in self.requirements
            ],
        }


def _deny(policy: Policy, sensitive: bool, reason: str, explanation: str, matched: tuple[str, ...] = ()) -> Decision:
    return Decision("deny", policy.version, matched, (reason,), explanation, sensitive=sensitive)


def decide(
    policy: Policy,
    request: ActionRequest,
    now: datetime.datetime,
    history: History | None = None,
) -> Decision:
    """Deny beats require_approval beats allow; no matching rule, or any condition error, denies."""
    candidates = policy.candidates(request.action)
    sensitive = candidates.sensitive
    if not candidates.rules:
        return _deny(policy, sensitive, "policy.no_matching_rule", f"no rule covers `{request.action}`")
    activation: Activation | None = None
    matched: list[Rule] = []
    for rule in candidates.rules:
        if rule.condition is not None:
            if activation is None:
                variables = _variables(request, now, candidates.variables)
                activation = Activation(variables, history or _NO_HISTORY, shared=candidates.conditions > 1)
            result = activation.evaluate(rule.condition)
            if isinstance(result, str):
                # INVARIANT 5: an erroring condition never opens a door nor skips a deny rule.
                return _deny(
                    policy, sensitive, "policy.condition_error",
                    f"rule `{rule.id}`: condition {result}", (rule.id,),
                )
            if not result:
                continue
        matched.append(rule)
    key = (request.action, *[rule.id for rule in matched])
    decision = policy.decisions.get(key)
    if decision is None:
        decision = policy.remember_decision(key, _combine(policy, request, sensitive, matched))
    return decision


def _combine(policy: Policy, request: ActionRequest, sensitive: bool, matched: list[Rule]) -> Decision:
    if not matched:
        return _deny(policy, sensitive, "policy.no_matching_rule", f"no rule for `{request.action}` matched")
    denying = [r for r in matched if r.effect == "deny"]
    if denying:
        ids = tuple(r.id for r in denying)
        return _deny(policy, sensitive, "policy.denied", _explain("denied by", denying), ids)
    approving = [r for r in matched if r.effect == "require_approval"]
    if approving:
        requirements = tuple(r.requirement for r in approving if r.requirement is not None)
        needs = "; ".join(
            f"{q.quorum} of {len(q.approvers)} approvers"
            + (" over another channel" if q.separate_channel else "")
            for q in requirements
        )
        return Decision(
            "require_approval", policy.version, tuple(r.id for r in approving), ("policy.approval_required",),
            f"{_explain('approval required by', approving)}: {needs}", requirements, sensitive,
        )
    return Decision(
        "allow", policy.version, tuple(r.id for r in matched), ("policy.allowed",),
        _explain("allowed by", matched), sensitive=sensitive,
    )


def _explain(verb: str, rules: list[Rule]) -> str:
    parts = [f"`{r.id}`" + (f" ({r.description})" if r.description else "") for r in rules]
    return f"{verb} {', '.join(parts)}"


_BINDINGS: dict[str, Callable[[ActionRequest, datetime.datetime], object]] = {
    "principal": lambda request, now: request.principal.as_cel(),
    "delegators": lambda request, now: [p.as_cel() for p in request.on_behalf_of],
    "action": lambda request, now: request.action,
    "resource": lambda request, now: request.resource,
    "params": lambda request, now: request.params,
    "context": lambda request, now: request.context,
    "channel": lambda request, now: request.channel,
    "now": lambda request, now: now,
    "history": lambda request, now: "",
}


def _variables(request: ActionRequest, now: datetime.datetime, names: frozenset[str]) -> dict[str, object]:
    """Only the CEL variables the candidate rules read: converting the others would be wasted work."""
    return {name: _BINDINGS[name](request, now) for name in names}
