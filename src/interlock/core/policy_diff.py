"""Control downgrades between two policies: every sensitive action whose second control got weaker. Pure.

The actions compared are the `sensitive` patterns of both policies and every rule pattern that shares an action
with one of them; a pattern stands for the actions it names (`payments.*` is asked about as the action
`payments.*`, which every rule covering the whole family matches). An action only counts if it is sensitive in
the old or the new policy, and not if the new policy can never run it (an unconditional deny, or no rule that
allows or asks for approval). For each such action:

- `sensitive_removed`: it is sensitive in the old policy and not in the new one;
- `deny_removed`: an old deny rule has no new deny with the same condition (or none) covering it;
- `allow_added`: a new allow rule (not overruled by an unconditional require_approval) has no old allow with the
  same condition (or none) — a wildcard allow added shows up here for each sensitive action it reaches;
- `approval_removed`: an old require_approval rule has no new one, matched by id, else by the same condition,
  else an unconditional one;
- for a matched pair: `quorum_lowered`, `independence_dropped`, `separate_channel_dropped`,
  `expiry_lengthened`, `review_shortened` (min_review).

A changed condition is judged only where it cannot be weaker: a deny whose condition changed counts as removed,
since whether the new condition denies as much cannot be told without evaluating it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from interlock.core.action_patterns import is_glob, overlaps
from interlock.core.policy import ApprovalRequirement, Policy, Rule, RuleSpec

DowngradeKind = Literal[
    "sensitive_removed", "deny_removed", "allow_added", "approval_removed", "quorum_lowered",
    "independence_dropped", "separate_channel_dropped", "expiry_lengthened", "review_shortened",
]


@dataclass(frozen=True)
class Downgrade:
    """One way the control over `action` is weaker in the new policy."""

    action: str
    kind: DowngradeKind
    message: str
    old_rule: str | None = None
    new_rule: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {"action": self.action, "kind": self.kind, "message": self.message,
                "old_rule": self.old_rule, "new_rule": self.new_rule}


def diff_policies(old: Policy, new: Policy) -> tuple[Downgrade, ...]:
    """Every downgrade from `old` to `new`, ordered by action then kind."""
    found: list[Downgrade] = []
    for action in _compared_actions(old, new):
        if not (old.is_sensitive(action) or new.is_sensitive(action)):
            continue
        new_rules = new.rules_for(action)
        if not _can_run(new_rules):
            continue
        old_rules = old.rules_for(action)
        if old.is_sensitive(action) and not new.is_sensitive(action):
            found.append(Downgrade(action, "sensitive_removed",
                                   f"`{action}` is no longer listed as sensitive (binding codes, review and scans"
                                   " rely on that list)"))
        found.extend(_denies_removed(action, old_rules, new_rules))
        found.extend(_allows_added(action, old_rules, new_rules))
        found.extend(_approvals_weakened(action, old, new, old_rules, new_rules))
    return tuple(sorted(found, key=lambda d: (d.action, d.kind, d.old_rule or "", d.new_rule or "")))


def _compared_actions(old: Policy, new: Policy) -> list[str]:
    sensitive = {*old.spec.sensitive, *new.spec.sensitive}
    patterns = {rule.action for rule in (*old.rules, *new.rules)}
    reaching = {p for p in patterns if any(overlaps(p, s) for s in sensitive)}
    return sorted(sensitive | reaching)


def _can_run(rules: tuple[Rule, ...]) -> bool:
    if any(rule.effect == "deny" and rule.condition is None for rule in rules):
        return False
    return any(rule.effect != "deny" for rule in rules)


def _condition(rule: Rule) -> str | None:
    return " ".join(rule.condition.source.split()) if rule.condition is not None else None


def _same_or_wider(kept: Rule, wanted: Rule) -> bool:
    """`kept` applies at least wherever `wanted` does, as far as can be told without evaluating: unconditional,
    or the same condition."""
    return kept.condition is None or _condition(kept) == _condition(wanted)


def _denies_removed(action: str, old_rules: tuple[Rule, ...], new_rules: tuple[Rule, ...]) -> list[Downgrade]:
    denies = [rule for rule in new_rules if rule.effect == "deny"]
    return [
        Downgrade(action, "deny_removed",
                  f"deny rule `{rule.id}`{_when(rule)} no longer applies to `{action}` (removed, or its condition"
                  " changed)", old_rule=rule.id)
        for rule in old_rules
        if rule.effect == "deny" and not any(_same_or_wider(kept, rule) for kept in denies)
    ]


def _allows_added(action: str, old_rules: tuple[Rule, ...], new_rules: tuple[Rule, ...]) -> list[Downgrade]:
    if any(rule.effect == "require_approval" and rule.condition is None for rule in new_rules):
        return []  # an unconditional require_approval overrules every allow
    allows = [rule for rule in old_rules if rule.effect == "allow"]
    return [
        Downgrade(action, "allow_added",
                  f"new {'wildcard ' if is_glob(rule.action) else ''}allow rule `{rule.id}` (`{rule.action}`)"
                  f"{_when(rule)} lets `{action}` run without approval", new_rule=rule.id)
        for rule in new_rules
        if rule.effect == "allow" and not any(_same_or_wider(was, rule) for was in allows)
    ]


def _approvals_weakened(action: str, old: Policy, new: Policy,
                        old_rules: tuple[Rule, ...], new_rules: tuple[Rule, ...]) -> list[Downgrade]:
    found: list[Downgrade] = []
    candidates = [rule for rule in new_rules if rule.effect == "require_approval"]
    for rule in old_rules:
        if rule.effect != "require_approval" or rule.requirement is None:
            continue
        match = (next((r for r in candidates if r.id == rule.id), None)
                 or next((r for r in candidates if r.condition is not None and _condition(r) == _condition(rule)),
                         None)
                 or next((r for r in candidates if r.condition is None), None))
        if match is None or match.requirement is None:
            found.append(Downgrade(action, "approval_removed",
                                   f"require_approval rule `{rule.id}`{_when(rule)} no longer applies to"
                                   f" `{action}`: it may run without approval", old_rule=rule.id))
            continue
        found.extend(_requirement_weakened(action, rule, match, _spec(old, rule), _spec(new, match)))
    return found


def _requirement_weakened(action: str, old_rule: Rule, new_rule: Rule,
                          old_spec: RuleSpec, new_spec: RuleSpec) -> list[Downgrade]:
    was, now = old_rule.requirement, new_rule.requirement
    assert isinstance(was, ApprovalRequirement) and isinstance(now, ApprovalRequirement)
    ids = {"old_rule": old_rule.id, "new_rule": new_rule.id}
    found: list[Downgrade] = []
    if now.quorum < was.quorum:
        found.append(Downgrade(action, "quorum_lowered", f"quorum lowered from {was.quorum} to {now.quorum}", **ids))
    was_independent = set(old_spec.approval.independent_of if old_spec.approval else ())
    now_independent = set(new_spec.approval.independent_of if new_spec.approval else ())
    dropped = sorted(was_independent - now_independent)
    if dropped:
        found.append(Downgrade(action, "independence_dropped",
                               f"approvers no longer need to be independent of {', '.join(dropped)}", **ids))
    if was.separate_channel and not now.separate_channel:
        found.append(Downgrade(action, "separate_channel_dropped",
                               "approvals may now come over the request's own channel", **ids))
    if now.expires_in > was.expires_in:
        found.append(Downgrade(action, "expiry_lengthened",
                               f"approval window lengthened from {was.expires_in}s to {now.expires_in}s", **ids))
    if now.min_review_seconds < was.min_review_seconds:
        found.append(Downgrade(action, "review_shortened",
                               f"minimum review time shortened from {was.min_review_seconds}s to"
                               f" {now.min_review_seconds}s", **ids))
    return found


def _spec(policy: Policy, rule: Rule) -> RuleSpec:
    return next(spec for spec in policy.spec.rules if spec.id == rule.id)


def _when(rule: Rule) -> str:
    condition = _condition(rule)
    return f" (when `{condition}`)" if condition is not None else ""
