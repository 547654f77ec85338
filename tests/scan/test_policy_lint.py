"""Policy lint: each check on a policy that shows the problem, and on a near twin that does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.core.action_patterns import covers, find_action, matches_any, overlaps
from interlock.core.policy import load_policy
from interlock.core.policy_lint import lint_policy
from interlock.scan import engine
from interlock.scan.policies import PolicyScanner

REPO = Path(__file__).resolve().parents[2]
HEADER = """\
version: 1
sensitive: ["payments.*", "access.grant"]
groups:
  finance: ["user:alice", "user:bob", "user:carol"]
executors:
  "payments.*": payments-service
rules:
"""
APPROVAL = """\
    effect: require_approval
    approval:
      approvers: ["group:finance"]
      quorum: 2
      separate_channel: true
      expires_in: 1h
"""


def checks(rules: str, header: str = HEADER) -> list[tuple[str, str | None]]:
    return [(fact.check, fact.rule_id) for fact in lint_policy(load_policy(header + rules))]


def findings(tmp_path: Path, text: str) -> list[tuple[str, int | None]]:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    result = engine.scan([path], [PolicyScanner()])
    assert result.problems == []
    return [(f.rule.id, f.location.line) for f in result.findings]


def test_the_seed_policy_has_no_high_or_medium_finding() -> None:
    facts = lint_policy(load_policy((REPO / "examples/seed/policy.yaml").read_text()))
    assert {fact.check for fact in facts} == {"quorum_one"}
    assert sorted(fact.rule_id or "" for fact in facts) == [
        "emergency-access", "prod-config-needs-change-approval", "third-party-sharing"]


# --- recognition used as approval --------------------------------------------------------------------


@pytest.mark.parametrize("when", [
    None, "principal.id == 'user:cfo'", "principal.attributes.role == 'cfo' && channel == 'chat'",
    "delegators.size() == 0 && now.getHours() < 18",
])
def test_an_allow_on_who_asks_alone_is_recognition_used_as_approval(tmp_path: Path, when: str | None) -> None:
    condition = f'    when: "{when}"\n' if when else ""
    text = HEADER + f"  - id: cfo-pays\n    action: payments.transfer\n{condition}    effect: allow\n"
    assert findings(tmp_path, text) == [("policy.recognition_as_approval", 10)]  # `when`, or `effect`


def test_recognition_names_the_requesters_the_condition_names() -> None:
    rules = ("  - {id: cfo, action: payments.transfer, when: \"principal.id in ['user:cfo', 'user:ceo']\","
             " effect: allow}\n")
    (fact,) = lint_policy(load_policy(HEADER + rules))
    assert fact.identity == "user:cfo, user:ceo" and fact.action == "payments.transfer"


@pytest.mark.parametrize("rules", [
    # a limit on what is done, not only on who asks
    "  - {id: small, action: payments.transfer, when: 'params.amount <= 100', effect: allow}\n",
    "  - {id: own, action: payments.transfer, when: \"resource.startsWith('acct:own/')\", effect: allow}\n",
    # not a sensitive action
    "  - {id: reads, action: accounts.balance, effect: allow}\n",
    # the allow never decides: an unconditional require_approval covers it
    "  - {id: cfo, action: payments.transfer, when: \"principal.id == 'u'\", effect: allow}\n"
    "  - id: all-payments\n    action: 'payments.*'\n" + APPROVAL,
])
def test_allows_that_are_not_recognition(rules: str) -> None:
    assert "recognition_as_approval" not in [check for check, _ in checks(rules)]


def test_a_wildcard_allow_reaching_a_sensitive_action_is_recognition_when_it_reads_only_who_asks() -> None:
    rules = "  - {id: staff, action: '*', when: \"principal.kind == 'human'\", effect: allow}\n"
    assert checks(rules) == [("recognition_as_approval", "staff")]


# --- wildcard allows ---------------------------------------------------------------------------------


def test_a_wildcard_allow_with_a_real_condition_covering_sensitive_actions() -> None:
    rules = "  - {id: small, action: 'pay*', when: 'params.amount <= 100', effect: allow}\n"
    assert checks(rules) == [("wildcard_allow", "small")]


@pytest.mark.parametrize("rules", [
    "  - {id: reads, action: 'accounts.*', when: 'params.limit <= 100', effect: allow}\n",  # nothing sensitive
    "  - {id: small, action: 'pay*', when: 'params.amount <= 100', effect: allow}\n"  # sensitive part taken over
    "  - id: payments\n    action: 'payments.*'\n" + APPROVAL,
])
def test_wildcard_allows_that_reach_no_sensitive_action(rules: str) -> None:
    assert [c for c in checks(rules) if c[0] == "wildcard_allow"] == []


# --- approvals ---------------------------------------------------------------------------------------


def test_a_sound_approval_rule_has_no_finding() -> None:
    assert checks("  - id: pay\n    action: payments.transfer\n" + APPROVAL) == []


def test_same_channel_approval_points_at_the_approval_when_the_default_applies(tmp_path: Path) -> None:
    text = HEADER + "  - id: pay\n    action: payments.transfer\n" + APPROVAL.replace(
        "      separate_channel: true\n", "")
    assert findings(tmp_path, text) == [("policy.same_channel_approval", 11)]
    explicit = HEADER + "  - id: pay\n    action: payments.transfer\n" + APPROVAL.replace("true", "false")
    assert findings(tmp_path, explicit) == [("policy.same_channel_approval", 14)]


def test_approval_expiry_over_24_hours(tmp_path: Path) -> None:
    too_long = HEADER + "  - id: pay\n    action: payments.transfer\n" + APPROVAL.replace("1h", "25h")
    assert findings(tmp_path, too_long) == [("policy.long_approval_expiry", 15)]
    assert checks("  - id: pay\n    action: payments.transfer\n" + APPROVAL.replace("1h", "24h")) == []


def test_quorum_one_on_a_sensitive_action_only() -> None:
    one = APPROVAL.replace("quorum: 2", "quorum: 1")
    assert checks("  - id: pay\n    action: payments.transfer\n" + one) == [("quorum_one", "pay")]
    assert checks("  - id: read\n    action: accounts.read\n" + one) == []


def test_the_executor_among_the_approvers() -> None:
    header = HEADER.replace('["user:alice", "user:bob", "user:carol"]', '["user:alice", "payments-service"]')
    facts = lint_policy(load_policy(header + "  - id: pay\n    action: payments.transfer\n" + APPROVAL))
    assert [(f.check, f.identity) for f in facts] == [("executor_approves", "payments-service")]
    # the same approvers on an action that service does not execute
    assert checks("  - id: grant\n    action: access.grant\n" + APPROVAL, header) == []


def test_approvers_who_are_the_requesters_the_condition_names() -> None:
    rule = "  - id: pay\n    action: payments.transfer\n    when: \"principal.id == 'user:alice'\"\n" + APPROVAL
    facts = lint_policy(load_policy(HEADER + rule))
    assert [(f.check, f.identity) for f in facts] == [("approver_is_requester", "user:alice")]
    assert "only 2 approvers" in facts[0].message
    stuck = lint_policy(load_policy(HEADER + rule.replace("quorum: 2", "quorum: 3")))
    assert "can never be approved" in stuck[0].message


@pytest.mark.parametrize("when", [
    "principal.id == 'user:dave'",  # not an approver
    "!(principal.id == 'user:alice')",  # negated: alice is exactly who this rule is not for
    "principal.id != 'user:alice'",
])
def test_conditions_that_do_not_name_an_approver_as_requester(when: str) -> None:
    rule = f"  - id: pay\n    action: payments.transfer\n    when: \"{when}\"\n" + APPROVAL
    assert checks(rule) == []


# --- rules that never decide -------------------------------------------------------------------------


def test_an_unconditional_deny_makes_rules_under_it_dead(tmp_path: Path) -> None:
    text = HEADER + ("  - {id: pay-small, action: payments.transfer, when: 'params.amount < 5', effect: allow}\n"
                     "  - {id: freeze, action: 'payments.*', effect: deny}\n")
    assert findings(tmp_path, text) == [("policy.dead_rule", 8)]


def test_several_unconditional_rules_together_make_a_rule_dead() -> None:
    rules = ("  - {id: any, action: 'x*', when: 'params.n < 5', effect: allow}\n"
             "  - {id: deny-xa, action: 'xa*', effect: deny}\n"
             "  - id: approve-rest\n    action: 'x[b-z]*'\n" + APPROVAL)
    # the actions `x` and `xA` are covered by neither: the allow still decides for them
    assert "dead_rule" not in [c for c, _ in checks(rules)]
    assert checks(rules.replace("'x*'", "'x[a-z]*'")) == [("dead_rule", "any")]


@pytest.mark.parametrize("rule", [
    "  - {id: typo, action: 'payments..transfer', effect: allow}\n",
    "  - {id: never, action: accounts.read, when: 'false', effect: allow}\n",
])
def test_rules_that_can_match_nothing(rule: str) -> None:
    assert checks(rule) == [("dead_rule", rule.split("id: ")[1].split(",")[0])]


@pytest.mark.parametrize("rules", [
    # a conditional deny leaves the allow alive
    "  - {id: pay-small, action: payments.transfer, when: 'params.amount < 5', effect: require_approval,"
    " approval: {approvers: [u], separate_channel: true, quorum: 1}}\n"
    "  - {id: no-weekends, action: 'payments.*', when: 'now.getDayOfWeek() == 0', effect: deny}\n",
    # a deny on a narrower pattern
    "  - {id: reads, action: 'accounts.*', effect: allow}\n  - {id: no-close, action: accounts.close, effect: deny}\n",
    # deny rules are never reported as dead (a redundant deny is harmless)
    "  - {id: d1, action: x, effect: deny}\n  - {id: d2, action: '*', effect: deny}\n",
])
def test_rules_that_still_decide(rules: str) -> None:
    assert "dead_rule" not in [c for c, _ in checks(rules)]


def test_no_sensitive_list() -> None:
    bare = "version: 1\nrules:\n  - {id: a, action: x, effect: allow}\n"
    assert [f.check for f in lint_policy(load_policy(bare))] == ["no_sensitive_actions"]
    assert lint_policy(load_policy("version: 1\nrules: []\n")) == ()


# --- action patterns, exactly ----------------------------------------------------------------------


def test_pattern_questions_are_answered_exactly() -> None:
    assert find_action(["payments.*", "*.transfer"]) == "payments.transfer"
    assert overlaps("data.share*", "data.share") and not overlaps("a.b", "a.c")
    assert overlaps("pay[a-c]*", "payb.x") and not overlaps("pay[a-c]*", "payd.x")
    assert covers(["*"], ["payments.*"]) and not covers(["payments.*"], ["*"])
    assert covers(["x[a-m]*", "x[n-z]*"], ["x[a-z]y"]) and not covers(["x[a-m]*"], ["x[a-z]y"])
    assert not matches_any("a..b") and not matches_any("a.") and not matches_any(".a") and matches_any("a[.]b")
