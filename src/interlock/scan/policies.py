"""Interlock policy files: the lint of `core.policy_lint` as findings, each on the line it is about.

A file is an Interlock policy when its first document is a mapping with `version: 1` and a `rules` list whose
entries name an `action` and an `effect` (the shape `core.policy.PolicySpec` loads). It is loaded exactly as the
gate loads it (`load_policy`); a policy the gate would refuse is reported as unparseable, with the gate's message.
"""

from __future__ import annotations

from typing import Any

from interlock.core.errors import PolicyError
from interlock.core.policy import PolicySpec, load_policy
from interlock.core.policy_lint import MAX_APPROVAL_EXPIRY_SECONDS, Check, LintFact, lint_policy
from interlock.scan import frameworks as fw
from interlock.scan.findings import Finding, Location, Rule
from interlock.scan.sources import Listed, Mapped, ParseError, Source

KIND = "interlock-policy"
_POLICY_FIELDS = frozenset(PolicySpec.model_fields)

RULES: dict[Check, Rule] = {
    "recognition_as_approval": Rule(
        id="policy.recognition_as_approval",
        title="A sensitive action is allowed on who asks alone",
        severity="high",
        why="The rule lets a sensitive action run because of the requester's identity, role, channel or the time, "
            "with nothing independent of the requester in between: a stolen credential, a spoofed chat or a "
            "compromised agent that presents that identity runs the action. Recognition is not approval.",
        fix="Make the rule `require_approval` with approvers independent of the requester, over a separate channel "
            "(`separate_channel: true`); or narrow the allow with limits on what is done (amount, resource, "
            "recipient) so only low-impact requests pass without approval.",
        owasp_nhi=(fw.NHI5_OVERPRIVILEGED, fw.NHI4_INSECURE_AUTH),
        nist_csf=(fw.CSF_PR_AA_05, fw.CSF_PR_AA_03),
        nist_800_207=(fw.ZT_TENET_4, fw.ZT_TENET_6),
    ),
    "wildcard_allow": Rule(
        id="policy.wildcard_allow",
        title="A wildcard allow rule covers sensitive actions",
        severity="medium",
        why="Every action that matches the pattern, including sensitive actions added later, runs without approval "
            "whenever the rule's condition holds; nobody decides that a new sensitive action may skip the second "
            "control, the pattern decides it for them.",
        fix="Name the actions the allow is meant for instead of a pattern, or add an unconditional "
            "`require_approval` (or `deny`) rule for the sensitive actions under the pattern.",
        owasp_nhi=(fw.NHI5_OVERPRIVILEGED,),
        nist_csf=(fw.CSF_PR_AA_05, fw.CSF_PR_PS_01),
        nist_800_207=(fw.ZT_TENET_4,),
    ),
    "same_channel_approval": Rule(
        id="policy.same_channel_approval",
        title="Approvals of a sensitive action may come over the request's own channel",
        severity="medium",
        why="An attacker who controls the channel a request came from (an impersonated executive in chat, a hijacked "
            "session) can also produce the approval there; the approval is then not independent of the request.",
        fix="Set `separate_channel: true` on the rule's `approval`, so the approval must arrive over another channel "
            "(the approver inbox, a different chat, a phone call recorded in the inbox).",
        owasp_nhi=(fw.NHI4_INSECURE_AUTH,),
        nist_csf=(fw.CSF_PR_AA_03, fw.CSF_PR_AA_05),
        nist_800_207=(fw.ZT_TENET_6,),
    ),
    "long_approval_expiry": Rule(
        id="policy.long_approval_expiry",
        title=f"An approval of a sensitive action stays valid more than {MAX_APPROVAL_EXPIRY_SECONDS // 3600}h",
        severity="medium",
        why="A long approval window lets a request be approved long after its context changed (the requester left, "
            "the recipient's account was swapped, the incident is over), and gives an attacker time to collect "
            "approvals from people who no longer remember the request.",
        fix=f"Set the approval's `expires_in` to what an approver needs to decide (minutes to hours, at most "
            f"{MAX_APPROVAL_EXPIRY_SECONDS // 3600}h); a request that expires can be submitted again.",
        nist_csf=(fw.CSF_PR_AA_05,),
        nist_800_207=(fw.ZT_TENET_3,),
    ),
    "executor_approves": Rule(
        id="policy.executor_approves",
        title="The executor of a sensitive action is among its approvers",
        severity="medium",
        why="The identity that consumes the grant and runs the action can also approve it: one compromised service "
            "account then both vouches for and performs the action, and the approval is no longer a second control.",
        fix="Remove the executor from the approvers (and from the groups the rule names); approvers should be "
            "people who neither ask for nor run the action.",
        owasp_nhi=(fw.NHI9_REUSE, fw.NHI5_OVERPRIVILEGED),
        nist_csf=(fw.CSF_PR_AA_05,),
        nist_800_207=(fw.ZT_TENET_6,),
    ),
    "quorum_one": Rule(
        id="policy.quorum_one",
        title="A sensitive action needs only one approver",
        severity="low",
        why="One approver is a second control, but a single mistaken, coerced or compromised approver is then "
            "enough to let the action run.",
        fix="Raise the approval's `quorum` to 2 for actions whose impact warrants it (payments, access grants, "
            "production changes), with a group large enough to answer.",
        nist_csf=(fw.CSF_PR_AA_05,),
        nist_800_207=(fw.ZT_TENET_4,),
    ),
    "approver_is_requester": Rule(
        id="policy.approver_is_requester",
        title="A rule's approvers include the requesters its condition names",
        severity="low",
        why="Interlock never lets requesters approve their own requests, so for those requesters the rule has fewer "
            "eligible approvers than the group suggests, and the group approves its own members' requests; when "
            "too few remain, the requests can never be approved and people look for a way around the policy.",
        fix="Use an approver group that does not contain the requesters the rule is written for, or make sure the "
            "group keeps at least `quorum` members once the requester is left out.",
        nist_csf=(fw.CSF_PR_AA_05,),
        nist_800_207=(fw.ZT_TENET_4,),
    ),
    "dead_rule": Rule(
        id="policy.dead_rule",
        title="A rule never decides anything",
        severity="low",
        why="A rule that can never decide (its pattern matches no action, its condition is `false`, or stricter "
            "unconditional rules take every action it covers) says something the policy does not do; reviewers "
            "reason from rules that have no effect, and a later edit of the stricter rule silently brings it to life.",
        fix="Delete the rule, or fix its action pattern or condition so it says what the policy should do.",
        nist_csf=(fw.CSF_PR_PS_01,),
        nist_800_207=(fw.ZT_TENET_4,),
    ),
    "no_sensitive_actions": Rule(
        id="policy.no_sensitive_actions",
        title="The policy lists no sensitive actions",
        severity="low",
        why="Without a `sensitive` list nothing marks which actions must never run on recognition alone: approvers "
            "see no binding code requirement and `interlock scan` cannot tell which allows are bypasses.",
        fix="List the actions with impact (payments, access changes, production changes, data sharing) under "
            "`sensitive:` as names or patterns.",
        nist_csf=(fw.CSF_ID_AM_08, fw.CSF_PR_PS_01),
        nist_800_207=(fw.ZT_TENET_7,),
    ),
}


def is_policy(document: Any) -> bool:
    """`version: 1` and a `rules` list whose entries name `action` and `effect`; no keys a policy cannot have."""
    if not isinstance(document, Mapped) or type(document.get("version")) is not int or document["version"] != 1:
        return False
    rules = document.get("rules")
    if not isinstance(rules, Listed):
        return False
    if not rules:
        return set(document) <= _POLICY_FIELDS
    return all(isinstance(rule, Mapped) and "action" in rule and "effect" in rule for rule in rules)


class PolicyScanner:
    """Lints Interlock policy files."""

    kind = KIND

    def recognizes(self, source: Source) -> bool:
        return source.syntax in ("yaml", "json") and is_policy(source.first_mapping())

    def scan(self, source: Source) -> list[Finding]:
        try:
            policy = load_policy(source.text)
        except PolicyError as error:
            raise ParseError(f"not a valid Interlock policy: {error.message}") from None
        document = source.first_mapping()
        return [_finding(source.display, document, fact) for fact in lint_policy(policy)]


def _finding(path: str, document: Mapped | None, fact: LintFact) -> Finding:
    return Finding(rule=RULES[fact.check], location=Location(path, _line(document, fact.where)),
                   message=fact.message, identity=fact.identity, action=fact.action)


def _line(document: Mapped | None, where: tuple[str | int, ...]) -> int | None:
    """The line of the deepest part of `where` the document has (the policy was loaded from the same text)."""
    if document is None:
        return None
    node: Any = document
    line: int | None = document.line or None
    for part in where:
        if isinstance(node, Mapped) and part in node:
            line, node = node.line_of(part), node[part]
        elif isinstance(node, Listed) and isinstance(part, int) and 0 <= part < len(node):
            line, node = node.line_of(part), node[part]
        else:
            break
    return line
