"""`policy diff`: every weakening of the control over a sensitive action, and nothing for changes that are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.core.policy import load_policy
from interlock.core.policy_diff import diff_policies

SEED = (Path(__file__).resolve().parents[2] / "examples/seed/policy.yaml").read_text()
BASE = """\
version: 1
sensitive: ["payments.*"]
groups:
  finance: ["user:alice", "user:bob", "user:carol"]
rules:
  - id: reads
    action: accounts.read
    effect: allow
  - id: pay
    action: payments.transfer
    effect: require_approval
    approval:
      approvers: ["group:finance"]
      quorum: 2
      separate_channel: true
      expires_in: 15m
      min_review: 30s
  - id: blocked
    action: payments.transfer
    when: "params.recipient.startsWith('blocked:')"
    effect: deny
"""


def downgrades(old: str, new: str) -> list[tuple[str, str]]:
    return [(d.action, d.kind) for d in diff_policies(load_policy(old), load_policy(new))]


def test_no_change_no_downgrade() -> None:
    assert downgrades(SEED, SEED) == []
    assert downgrades(BASE, BASE) == []


@pytest.mark.parametrize(("change", "kind"), [
    (("quorum: 2", "quorum: 1"), "quorum_lowered"),
    (("separate_channel: true", "separate_channel: false"), "separate_channel_dropped"),
    (("expires_in: 15m", "expires_in: 2h"), "expiry_lengthened"),
    (("min_review: 30s", "min_review: 0s"), "review_shortened"),
    (('sensitive: ["payments.*"]', 'sensitive: ["payments.refund"]'), "sensitive_removed"),
])
def test_each_weakening_of_an_approval(change: tuple[str, str], kind: str) -> None:
    assert downgrades(BASE, BASE.replace(*change)) == [("payments.transfer", kind)]


@pytest.mark.parametrize("change", [
    ("quorum: 2", "quorum: 3"),
    ("expires_in: 15m", "expires_in: 5m"),
    ('sensitive: ["payments.*"]', 'sensitive: ["payments.*", "accounts.*"]'),
    ("id: pay\n", "id: pay-renamed\n"),  # renamed, same requirement
    ("  - id: blocked\n", "  - id: blocked-renamed\n"),  # the deny renamed, same condition
    ("effect: allow\n", "effect: deny\n"),  # reads got stricter
])
def test_changes_that_do_not_weaken(change: tuple[str, str]) -> None:
    assert downgrades(BASE, BASE.replace(*change)) == []


def test_approval_removed_and_allow_added_when_a_rule_turns_into_an_allow() -> None:
    old_rule = BASE[BASE.index("  - id: pay\n"):BASE.index("  - id: blocked")]
    new = BASE.replace(old_rule, "  - id: pay\n    action: payments.transfer\n    effect: allow\n")
    assert downgrades(BASE, new) == [("payments.transfer", "allow_added"), ("payments.transfer", "approval_removed")]


def test_a_removed_deny() -> None:
    new = BASE[:BASE.index("  - id: blocked")]
    assert downgrades(BASE, new) == [("payments.transfer", "deny_removed")]


def test_a_wildcard_allow_added_is_reported_where_it_lets_a_sensitive_action_run() -> None:
    new = BASE + "  - {id: staff, action: '*', when: \"principal.kind == 'human'\", effect: allow}\n"
    found = diff_policies(load_policy(BASE), load_policy(new))
    # payments.transfer keeps its unconditional require_approval, which beats the allow; the rest of payments.* not
    assert [(d.action, d.kind, d.new_rule) for d in found] == [("payments.*", "allow_added", "staff")]
    assert "wildcard allow rule `staff`" in found[0].message


def test_an_allow_overruled_by_an_unconditional_approval_is_no_downgrade() -> None:
    new = BASE + "  - {id: cfo, action: payments.transfer, when: \"principal.id == 'u'\", effect: allow}\n"
    assert downgrades(BASE, new) == []


def test_a_new_unconditional_deny_hides_everything_else() -> None:
    new = BASE.replace("quorum: 2", "quorum: 1") + "  - {id: freeze, action: 'payments.*', effect: deny}\n"
    assert downgrades(BASE, new) == []


def test_the_seed_policy_loosened_in_review() -> None:
    loosened = (SEED.replace("quorum: 2", "quorum: 1")
                .replace("expires_in: 10m", "expires_in: 8h")
                .replace('when: "now.getDayOfWeek() in [0, 6]"', 'when: "now.getDayOfWeek() == 0"'))
    assert downgrades(SEED, loosened) == [
        ("access.emergency_grant", "expiry_lengthened"),
        ("config.apply", "deny_removed"),  # the weekend freeze's condition changed: judged as removed
        ("payments.transfer", "quorum_lowered"),
    ]
