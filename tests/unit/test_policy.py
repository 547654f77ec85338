"""Policy loading: every problem is `policy.invalid` naming its line; the rule index finds rules in order."""

from __future__ import annotations

import hashlib

import pytest

from conftest import SEED
from interlock.core.errors import PolicyError
from interlock.core.policy import Policy, load_policy

# Line numbers below refer to this text (line 1 is `version: 1`).
BASE = """\
version: 1
groups:
  fin: ["user:a", "user:b"]
rules:
  - id: r1
    action: payments.transfer
    when: "params.amount <= 1000"
    effect: allow
  - id: r2
    action: payments.transfer
    effect: require_approval
    approval:
      approvers: ["group:fin"]
      quorum: 2
"""


def edited(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def refused(text: str | bytes) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        load_policy(text)
    return caught.value


def test_base_policy_loads() -> None:
    policy = load_policy(BASE)
    assert [r.id for r in policy.rules] == ["r1", "r2"]
    requirement = policy.rules[1].requirement
    assert requirement is not None
    assert requirement.approvers == frozenset({"user:a", "user:b"})
    assert requirement.quorum == 2
    assert requirement.expires_in == 15 * 60  # the default
    assert requirement.separate_channel is False


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        pytest.param(edited("    effect: allow\n", "    effect: allow: yes\n"), 8, "YAML error", id="yaml-syntax"),
        pytest.param(edited("    effect: allow\n", "\teffect: allow\n"), 8, "YAML error", id="yaml-tab"),
        pytest.param(edited("    effect: allow\n", "    effect: allow\n    effect: deny\n"), 9,
                     "duplicate key `effect`", id="duplicate-yaml-key"),
        pytest.param(BASE + "rules: []\n", 15, "duplicate key `rules`", id="duplicate-top-level-rules"),
        pytest.param(edited("effect: allow", "effect: permit"), 8, "rules.0.effect", id="unknown-effect"),
        pytest.param(edited("    effect: allow\n", "    effect: allow\n    priority: 3\n"), 9, "rules.0.priority",
                     id="unknown-rule-field"),
        pytest.param(BASE + "defaults: allow\n", 15, "defaults", id="unknown-top-level-field"),
        pytest.param(edited("      quorum: 2\n", "      quorum: 2\n      timeout: 1h\n"), 15, "timeout",
                     id="unknown-approval-field"),
        pytest.param(edited("params.amount <= 1000", "params.amount <= "), 7, "CEL error", id="cel-syntax"),
        pytest.param(edited("params.amount <= 1000", "amount <= 1000"), 7, "undeclared reference to 'amount'",
                     id="cel-undeclared-variable"),
        pytest.param(edited("params.amount <= 1000", "size(params)"), 7, "yields INT", id="cel-int"),
        pytest.param(edited("params.amount <= 1000", "action + 'x'"), 7, "yields STRING", id="cel-string"),
        pytest.param(edited("group:fin", "group:finance"), 13, "undefined group `finance`", id="undefined-group"),
        pytest.param(edited("id: r2", "id: r1"), 9, "rule id `r1` is used twice", id="duplicate-rule-id"),
        pytest.param(edited("quorum: 2", "quorum: 3"), 14, "quorum 3 exceeds the 2 approvers", id="quorum-too-big"),
        pytest.param(edited("quorum: 2", "quorum: 0"), 14, "quorum", id="quorum-zero"),
        pytest.param(edited("quorum: 2", "quorum: 2\n      independent_of: [requester]"), 15, "delegators",
                     id="independence-omits-delegators"),
        pytest.param(edited("quorum: 2", "quorum: 2\n      independent_of: [delegators]"), 15, "requester",
                     id="independence-omits-requester"),
        pytest.param(edited("quorum: 2", "quorum: 2\n      independent_of: []"), 15, "cannot be waived",
                     id="independence-empty"),
        pytest.param(edited("    effect: allow\n", "    effect: allow\n    approval:\n      approvers: [\"user:a\"]\n"),
                     10, "`approval` only goes with require_approval", id="approval-on-allow"),
        pytest.param(edited("    approval:\n      approvers: [\"group:fin\"]\n      quorum: 2\n", ""), 9,
                     "require_approval needs an `approval` block", id="require-approval-without-block"),
        pytest.param(edited("      approvers: [\"group:fin\"]\n", "      approvers: []\n"), 13, "approvers",
                     id="no-approvers"),
        pytest.param(edited("quorum: 2", "quorum: 2\n      expires_in: soon"), 15, "not a duration", id="bad-expiry"),
        pytest.param(edited("quorum: 2", "quorum: 2\n      expires_in: 0s"), 15, "positive", id="zero-expiry"),
        pytest.param(edited("quorum: 2", "quorum: 2\n      min_review: quick"), 15, "not a duration",
                     id="bad-min-review"),
        pytest.param(edited("version: 1", "version: 2"), 1, "version", id="unknown-version"),
        pytest.param(edited("action: payments.transfer", "action: 'payments transfer'"), 6, "rules.0.action",
                     id="bad-action-pattern"),
        pytest.param("- version: 1\n", 1, "YAML mapping", id="not-a-mapping"),
        pytest.param("", 1, "YAML mapping", id="empty-file"),
    ],
)
def test_invalid_policies_are_refused_with_the_line(text: str, line: int, words: str) -> None:
    error = refused(text)
    assert error.code == "policy.invalid"
    assert error.detail["line"] == line
    assert error.message.startswith(f"line {line}: ")
    assert words in error.message


def test_dyn_conditions_compile_and_are_checked_at_evaluation() -> None:
    # `params.x` is DYN at compile time (params is map<string, dyn>), so it may turn out boolean.
    policy = load_policy(edited("params.amount <= 1000", "params.flag"))
    assert policy.rules[0].condition is not None


def test_folded_multi_line_condition_reports_its_own_line() -> None:
    text = edited('    when: "params.amount <= 1000"\n', "    when: >-\n      params.amount <=\n      && true\n")
    error = refused(text)
    assert error.detail["line"] == 7


def test_python_tags_are_refused_not_constructed() -> None:
    error = refused("version: !!python/object/apply:os.system ['true']\nrules: []\n")
    assert error.code == "policy.invalid"
    assert error.detail["line"] == 1


@pytest.mark.parametrize("key", ["[a, b]", "{a: 1}"])
def test_an_unhashable_yaml_key_is_a_policy_error_not_a_crash(key: str) -> None:
    error = refused(f"version: 1\n? {key}\n: 1\n")
    assert error.code == "policy.invalid"
    assert error.detail["line"] == 2


def test_undecodable_bytes_are_a_policy_error() -> None:
    assert refused(b"version: 1\nrules: [\xff\xfe]\n").code == "policy.invalid"


def test_policy_version_is_sha256_of_the_file_bytes() -> None:
    raw = (SEED / "policy.yaml").read_bytes()
    assert load_policy(raw).version == hashlib.sha256(raw).hexdigest()
    assert load_policy(raw.decode()).version == hashlib.sha256(raw).hexdigest()


def test_a_comment_change_changes_the_version() -> None:
    assert load_policy(BASE).version != load_policy(BASE + "# reviewed\n").version


def test_seed_policy_compiles(seed_policy: Policy) -> None:
    assert [r.id for r in seed_policy.rules_for("payments.transfer")] == [
        "small-known-transfers", "other-transfers-need-two",
    ]
    other = seed_policy.rules[1].requirement
    assert other is not None
    assert other.approvers == frozenset({"user:alice", "user:bob", "user:carol"})
    assert (other.quorum, other.separate_channel, other.expires_in) == (2, True, 900)
    assert seed_policy.executor_for("payments.transfer") == "payments-service"
    assert seed_policy.executor_for("config.apply") == "deploy-executor"
    assert seed_policy.executor_for("data.share_bulk") == "data-gateway"
    assert seed_policy.executor_for("reports.read") is None
    assert seed_policy.is_sensitive("payments.refund")
    assert seed_policy.is_sensitive("access.emergency_grant")
    assert not seed_policy.is_sensitive("config.read")


def test_exact_executor_name_wins_over_an_earlier_glob() -> None:
    policy = load_policy('version: 1\nexecutors:\n  "payments.*": generic\n  payments.transfer: bank\nrules: []\n')
    assert policy.executor_for("payments.transfer") == "bank"
    assert policy.executor_for("payments.refund") == "generic"


def test_group_and_direct_approvers_are_merged() -> None:
    policy = load_policy(edited('approvers: ["group:fin"]', 'approvers: ["group:fin", "user:c", "user:a"]'))
    requirement = policy.rules[1].requirement
    assert requirement is not None
    assert requirement.approvers == frozenset({"user:a", "user:b", "user:c"})


# --- the rule index ----------------------------------------------------------------------------

INDEX = """\
version: 1
rules:
  - {id: any-payment, action: "payments.*", effect: allow}
  - {id: exact-transfer, action: payments.transfer, effect: allow}
  - {id: everything, action: "*", effect: deny}
  - {id: transfer-or-tranche, action: "payments.tran?fer", effect: allow}
  - {id: second-exact, action: payments.transfer, effect: deny}
  - {id: deep-glob, action: "*.transfer", effect: allow}
  - {id: class-glob, action: "[pq]ayments.refund", effect: allow}
"""


@pytest.fixture
def index_policy() -> Policy:
    return load_policy(INDEX)


def ids(policy: Policy, action: str) -> list[str]:
    return [rule.id for rule in policy.rules_for(action)]


def test_exact_and_glob_rules_are_found_in_policy_order(index_policy: Policy) -> None:
    assert ids(index_policy, "payments.transfer") == [
        "any-payment", "exact-transfer", "everything", "transfer-or-tranche", "second-exact", "deep-glob",
    ]


def test_payments_glob_does_not_match_another_prefix(index_policy: Policy) -> None:
    assert ids(index_policy, "paymentsX.y") == ["everything"]
    assert ids(index_policy, "payments") == ["everything"]
    assert ids(index_policy, "xpayments.refund") == ["everything"]


def test_glob_with_a_wildcard_head_and_a_character_class(index_policy: Policy) -> None:
    assert ids(index_policy, "wire.transfer") == ["everything", "deep-glob"]
    assert ids(index_policy, "qayments.refund") == ["everything", "class-glob"]
    assert ids(index_policy, "payments.refund") == ["any-payment", "everything", "class-glob"]


def test_globs_are_case_sensitive(index_policy: Policy) -> None:
    assert ids(index_policy, "Payments.transfer") == ["everything", "deep-glob"]


def test_repeated_lookups_give_the_same_answer(index_policy: Policy) -> None:
    first = index_policy.rules_for("payments.transfer")
    assert index_policy.rules_for("payments.transfer") == first
    assert ids(index_policy, "payments.transfer") == [r.id for r in first]


def test_the_lookup_cache_cannot_grow_without_bound(index_policy: Policy) -> None:
    for n in range(10_000):
        index_policy.rules_for(f"svc{n}.op")
    assert len(index_policy._index._cache) <= index_policy._index._CACHE_LIMIT
    assert ids(index_policy, "payments.transfer")[0] == "any-payment"


def test_a_policy_with_no_rule_for_an_action_finds_none() -> None:
    policy = load_policy("version: 1\nrules:\n  - {id: a, action: config.apply, effect: allow}\n")
    assert policy.rules_for("payments.transfer") == ()


@pytest.mark.parametrize(("review", "seconds"), [(None, 0), ("0s", 0), ("30s", 30), ("2m", 120)])
def test_min_review_is_off_by_default_and_read_as_a_duration(review: str | None, seconds: int) -> None:
    text = BASE if review is None else edited("quorum: 2", f"quorum: 2\n      min_review: {review}")
    requirement = next(r.requirement for r in load_policy(text).rules if r.requirement)
    assert requirement.min_review_seconds == seconds
