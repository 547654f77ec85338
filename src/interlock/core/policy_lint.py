"""Policy lint: what in a compiled policy lets a sensitive action run without an independent second control.

Pure: takes a compiled `Policy`, returns `LintFact`s that point into the policy document by path
(`("rules", 2, "approval", "quorum")`); the scanner turns paths into lines. Every fact is proven from the
policy alone, never guessed: where the answer depends on what a condition evaluates to at run time, the only
conditions taken as always true are absent ones, the only ones taken as always false are the literal
`false`. What each check looks at, exactly:

- `recognition_as_approval`: an `allow` rule whose action pattern shares an action with a `sensitive` pattern
  that no unconditional `deny`/`require_approval` rule takes over, and whose condition is absent or reads
  nothing but who asks and when (`principal`, `delegators`, `channel`, `now`).
- `wildcard_allow`: the same, for an `allow` rule with a wildcard pattern whose condition reads more (the
  pattern lets every future sensitive action under it through on that condition alone).
- `same_channel_approval`, `long_approval_expiry`, `quorum_one`: a `require_approval` rule that can decide a
  sensitive action and accepts approvals over the request's own channel; keeps an approval open longer than
  `MAX_APPROVAL_EXPIRY_SECONDS`; or needs one approver.
- `executor_approves`: a `require_approval` rule on a sensitive action whose approvers include the executor
  that `executors` names for an action the rule covers (the identity that runs it vouches for it).
- `approver_is_requester`: a `require_approval` rule whose condition names requesters literally
  (`principal.id == '…'`, `principal.id in […]`, no negation anywhere in it) among its own approvers: those
  approve each other, and for their own requests the rule has one approver fewer (if that is below the quorum,
  their requests can never be approved).
- `dead_rule`: an `allow` or `require_approval` rule that never decides: its pattern matches no valid action
  name, its condition is the literal `false`, or every action it covers is taken over by unconditional rules
  that beat it (deny beats require_approval beats allow).
- `no_sensitive_actions`: rules but no `sensitive` list, so none of the above can be checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from interlock.core.action_patterns import covers, find_action, is_glob, matches_any, overlaps
from interlock.core.policy import Policy, Rule

MAX_APPROVAL_EXPIRY_SECONDS = 24 * 3600
# CEL variables that say who asks, over what, and when: a condition on these alone is recognition.
RECOGNITION_VARIABLES = frozenset({"principal", "delegators", "channel", "now"})

Check = Literal[
    "recognition_as_approval", "wildcard_allow", "same_channel_approval", "long_approval_expiry",
    "executor_approves", "quorum_one", "approver_is_requester", "dead_rule", "no_sensitive_actions",
]
Path = tuple[str | int, ...]

_STRING = r"""(?:'([^'\\]*)'|"([^"\\]*)")"""
_ID_EQUALS = re.compile(rf"principal\.id\s*==\s*{_STRING}|{_STRING}\s*==\s*principal\.id")
_ID_IN = re.compile(r"principal\.id\s+in\s+\[([^\]]*)\]")
_STRINGS = re.compile(_STRING)
_NEGATION = re.compile(r"!(?!=)")


@dataclass(frozen=True)
class LintFact:
    """One proven weakness: which check, where in the policy document, and what exactly."""

    check: Check
    where: Path
    message: str
    rule_id: str | None = None
    action: str | None = None
    identity: str | None = None


def lint_policy(policy: Policy) -> tuple[LintFact, ...]:
    """Every lint fact of `policy`, in document order."""
    sensitive = tuple(policy.spec.sensitive)
    facts: list[LintFact] = []
    if not sensitive and policy.rules:
        facts.append(LintFact(
            "no_sensitive_actions", ("version",),
            "the policy lists no `sensitive` actions: nothing tells which actions need a second control"))
    for n, rule in enumerate(policy.rules):
        where: Path = ("rules", n)
        dead = _never_decides(policy, rule)
        if dead is not None:
            facts.append(LintFact("dead_rule", (*where, "action"), f"rule `{rule.id}` never decides: {dead}",
                                  rule.id, rule.action))
            continue
        reached = _sensitive_reached(policy, rule, sensitive)
        if not reached:
            continue
        if rule.effect == "allow":
            facts.extend(_allow_facts(rule, where, reached))
        elif rule.effect == "require_approval":
            facts.extend(_approval_facts(policy, rule, where, reached))
    return tuple(facts)


def _stricter(policy: Policy, rule: Rule) -> list[Rule]:
    """The unconditional rules that beat `rule` wherever both match."""
    beats = {"allow": ("deny", "require_approval"), "require_approval": ("deny",), "deny": ()}[rule.effect]
    return [other for other in policy.rules
            if other is not rule and other.condition is None and other.effect in beats]


def _never_decides(policy: Policy, rule: Rule) -> str | None:
    if rule.effect == "deny":
        return None
    if not matches_any(rule.action):
        return f"`{rule.action}` matches no action name (names are dot-separated segments of A-Z a-z 0-9 _ -)"
    if rule.condition is not None and rule.condition.source.strip() == "false":
        return "its condition is `false`"
    stricter = _stricter(policy, rule)
    if stricter and covers([other.action for other in stricter], [rule.action]):
        takers = [other for other in stricter if overlaps(other.action, rule.action)]
        verbs = " or ".join(sorted({"always denied" if o.effect == "deny" else "always needs approval"
                                    for o in takers}))
        names = ", ".join(f"`{o.id}`" for o in takers)
        return f"every action `{rule.action}` covers is {verbs} by {names}, which beat it"
    return None


def _sensitive_reached(policy: Policy, rule: Rule, sensitive: tuple[str, ...]) -> tuple[str, ...]:
    """The sensitive patterns with an action that `rule` covers and that no stricter unconditional rule takes."""
    outside = [other.action for other in _stricter(policy, rule)]
    return tuple(pattern for pattern in sensitive
                 if isinstance(find_action((rule.action, pattern), outside), str))


def _allow_facts(rule: Rule, where: Path, reached: tuple[str, ...]) -> list[LintFact]:
    subject = _subject(rule, reached)
    wildcard = is_glob(rule.action)
    if rule.condition is None or rule.condition.variables <= RECOGNITION_VARIABLES:
        requesters = _named_requesters(rule)
        through = f" through the wildcard `{rule.action}`" if wildcard else ""
        if rule.condition is None:
            basis = "with no condition at all: anyone recognised may run it"
        else:
            read = ", ".join(sorted(rule.condition.variables)) or "nothing"
            basis = f"on a condition that reads only {read} (who asks, over what, when)"
        return [LintFact(
            "recognition_as_approval", (*where, "when" if rule.condition is not None else "effect"),
            f"rule `{rule.id}` allows {subject}{through} {basis}; no independent approval stands"
            " between the request and the action",
            rule.id, rule.action, ", ".join(requesters) or "any requester")]
    if wildcard:
        return [LintFact(
            "wildcard_allow", (*where, "action"),
            f"rule `{rule.id}` allows every action matching `{rule.action}`, which covers {subject},"
            " without approval: any sensitive action added under this pattern runs on the condition alone",
            rule.id, rule.action, ", ".join(_named_requesters(rule)) or "any requester")]
    return []


def _approval_facts(policy: Policy, rule: Rule, where: Path, reached: tuple[str, ...]) -> list[LintFact]:
    requirement = rule.requirement
    assert requirement is not None  # compile_policy gives every require_approval rule one
    subject = _subject(rule, reached)
    approval: Path = (*where, "approval")
    facts: list[LintFact] = []
    if not requirement.separate_channel:
        facts.append(LintFact(
            "same_channel_approval", _written(policy, where, "separate_channel"),
            f"rule `{rule.id}` on {subject} accepts approvals over the channel the request came"
            " from: whoever controls that channel (a spoofed chat, a hijacked session) can ask and approve",
            rule.id, rule.action))
    if requirement.expires_in > MAX_APPROVAL_EXPIRY_SECONDS:
        facts.append(LintFact(
            "long_approval_expiry", (*approval, "expires_in"),
            f"rule `{rule.id}` on {subject} keeps an approval valid for"
            f" {_duration(requirement.expires_in)}, over the {_duration(MAX_APPROVAL_EXPIRY_SECONDS)} limit",
            rule.id, rule.action))
    executors = sorted(name for pattern, name in policy.spec.executors.items()
                       if name in requirement.approvers and overlaps(pattern, rule.action))
    for name in executors:
        facts.append(LintFact(
            "executor_approves", (*approval, "approvers"),
            f"rule `{rule.id}` lets `{name}` approve {subject}, and `{name}` is the executor"
            " that runs them: the identity that acts vouches for its own action",
            rule.id, rule.action, name))
    if requirement.quorum == 1:
        facts.append(LintFact(
            "quorum_one", _written(policy, where, "quorum"),
            f"rule `{rule.id}` on {subject} needs a single approver: one mistaken, coerced or"
            " compromised approver is enough", rule.id, rule.action))
    for requester in _named_requesters(rule):
        if requester not in requirement.approvers:
            continue
        eligible = len(requirement.approvers) - 1
        outcome = (f"so `{requester}`'s own requests can never be approved (quorum {requirement.quorum},"
                   f" {eligible} other approver{'s' if eligible != 1 else ''}): they fail closed"
                   if eligible < requirement.quorum else
                   f"so for `{requester}`'s own requests only {eligible} approver{'s' if eligible != 1 else ''}"
                   " remain, and the group approves its own members' requests")
        facts.append(LintFact(
            "approver_is_requester", (*approval, "approvers"),
            f"rule `{rule.id}` names `{requester}` both as a requester (in its condition) and as an approver,"
            f" {outcome}", rule.id, rule.action, requester))
    return facts


def _written(policy: Policy, where: Path, field: str) -> Path:
    """The path of an approval field if the document writes it out, else of the approval block (a default)."""
    index = where[1]
    assert isinstance(index, int)
    approval = policy.spec.rules[index].approval
    written = approval is not None and field in approval.model_fields_set
    return (*where, "approval", field) if written else (*where, "approval")


def _named_requesters(rule: Rule) -> list[str]:
    """Principal ids a condition names as requesters, literally; none if the condition negates anything."""
    if rule.condition is None or _NEGATION.search(rule.condition.source):
        return []
    source = rule.condition.source
    names: list[str] = []
    for match in _ID_EQUALS.finditer(source):
        names.extend(group for group in match.groups() if group)
    for match in _ID_IN.finditer(source):
        names.extend(single or double for single, double in _STRINGS.findall(match.group(1)) if single or double)
    return list(dict.fromkeys(names))


def _subject(rule: Rule, reached: tuple[str, ...]) -> str:
    if reached == (rule.action,):
        return f"sensitive `{rule.action}`"
    return f"`{rule.action}` (sensitive: {', '.join(f'`{p}`' for p in reached)})"


def _duration(seconds: int) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
