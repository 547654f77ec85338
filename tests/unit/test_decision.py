"""decide(): deny beats require_approval beats allow, and anything unclear denies with a reason (INVARIANT 5)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from conftest import WEDNESDAY, ceo_payment
from interlock.core.action import ActionRequest, parse_request
from interlock.core.decision import decide
from interlock.core.errors import RequestError
from interlock.core.policy import Policy, load_policy

SATURDAY = datetime.datetime(2026, 11, 28, 9, 0, tzinfo=datetime.UTC)
APPROVAL = """
    approval:
      approvers: ["user:alice", "user:bob"]
      quorum: {quorum}
      separate_channel: {separate}
      expires_in: {expires}"""


def rule(rule_id: str, effect: str, when: str | None = None, action: str = "payments.transfer",
         quorum: int = 1, separate: bool = False, expires: str = "15m", description: str = "") -> str:
    text = f"\n  - id: {rule_id}\n    action: \"{action}\"\n    effect: {effect}"
    if when is not None:
        text += f"\n    when: {when!r}"
    if description:
        text += f"\n    description: {description}"
    if effect == "require_approval":
        text += APPROVAL.format(quorum=quorum, separate=str(separate).lower(), expires=expires)
    return text


def policy_of(*rules: str) -> Policy:
    return load_policy("version: 1\nrules:" + "".join(rules) + "\n")


def request(**params: Any) -> ActionRequest:
    return parse_request(ceo_payment(**params))


class FakeHistory:
    """The store's view of earlier requests: answers from a table, records every question."""

    def __init__(self, counts: dict[str, int] | None = None, sums: dict[tuple[str, str], float] | None = None,
                 fail: Exception | None = None) -> None:
        self.counts = counts or {}
        self.sums = sums or {}
        self.fail = fail
        self.calls: list[tuple[Any, ...]] = []

    def count(self, action: str, window_seconds: int) -> int:
        self.calls.append(("count", action, window_seconds))
        if self.fail:
            raise self.fail
        return self.counts.get(action, 0)

    def sum(self, action: str, param: str, window_seconds: int) -> float:
        self.calls.append(("sum", action, param, window_seconds))
        if self.fail:
            raise self.fail
        return self.sums.get((action, param), 0.0)


# --- combining effects -------------------------------------------------------------------------


def test_allow_alone_allows() -> None:
    decision = decide(policy_of(rule("ok", "allow")), request(), WEDNESDAY)
    assert decision.outcome == "allow"
    assert decision.matched_rules == ("ok",)
    assert decision.reasons == ("policy.allowed",)
    assert decision.requirements == ()


@pytest.mark.parametrize("order", [("allow", "deny"), ("deny", "allow")])
def test_deny_beats_allow_in_any_order(order: tuple[str, str]) -> None:
    policy = policy_of(*(rule(effect, effect) for effect in order))
    decision = decide(policy, request(), WEDNESDAY)
    assert decision.outcome == "deny"
    assert decision.reasons == ("policy.denied",)
    assert decision.matched_rules == ("deny",)


@pytest.mark.parametrize("order", [("allow", "require_approval"), ("require_approval", "allow")])
def test_require_approval_beats_allow_in_any_order(order: tuple[str, str]) -> None:
    policy = policy_of(*(rule(effect, effect) for effect in order))
    decision = decide(policy, request(), WEDNESDAY)
    assert decision.outcome == "require_approval"
    assert decision.reasons == ("policy.approval_required",)
    assert decision.matched_rules == ("require_approval",)


def test_deny_beats_require_approval() -> None:
    policy = policy_of(rule("review", "require_approval"), rule("never", "deny"), rule("ok", "allow"))
    decision = decide(policy, request(), WEDNESDAY)
    assert decision.outcome == "deny"
    assert decision.matched_rules == ("never",)
    assert decision.requirements == ()


def test_rules_whose_condition_is_false_do_not_count() -> None:
    policy = policy_of(rule("big-denied", "deny", "params.amount > 100000"), rule("ok", "allow"))
    assert decide(policy, request(), WEDNESDAY).outcome == "allow"
    assert decide(policy, request(amount=200000), WEDNESDAY).outcome == "deny"


def test_no_rule_for_the_action_denies() -> None:
    decision = decide(policy_of(rule("cfg", "allow", action="config.apply")), request(), WEDNESDAY)
    assert decision.outcome == "deny"
    assert decision.reasons == ("policy.no_matching_rule",)
    assert decision.matched_rules == ()
    assert "payments.transfer" in decision.explanation


def test_an_empty_policy_denies() -> None:
    decision = decide(load_policy("version: 1\n"), request(), WEDNESDAY)
    assert (decision.outcome, decision.reasons) == ("deny", ("policy.no_matching_rule",))


def test_no_matching_condition_denies() -> None:
    decision = decide(policy_of(rule("small", "allow", "params.amount <= 1000")), request(), WEDNESDAY)
    assert decision.outcome == "deny"
    assert decision.reasons == ("policy.no_matching_rule",)


# --- conditions that error ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "when",
    [
        "params.missing == 1",                      # no such key
        "params.currency <= 1000",                  # string <= int
        "params.amount",                            # DYN that is not a bool
        "principal.attributes.limit > 0",           # missing nested key
        "params.amount / 0 > 1",                    # division by zero
    ],
)
def test_a_condition_error_on_an_allow_rule_denies(when: str) -> None:
    decision = decide(policy_of(rule("ok", "allow", when)), request(), WEDNESDAY)
    assert decision.outcome == "deny"
    assert decision.reasons == ("policy.condition_error",)
    assert decision.matched_rules == ("ok",)
    assert "`ok`" in decision.explanation


def test_a_condition_error_on_a_deny_rule_denies_although_an_allow_rule_matches() -> None:
    policy = policy_of(rule("ok", "allow"), rule("blocklist", "deny", "params.missing_list.exists(x, x == 1)"))
    decision = decide(policy, request(), WEDNESDAY)
    assert decision.outcome == "deny"
    assert decision.reasons == ("policy.condition_error",)
    assert decision.matched_rules == ("blocklist",)


def test_a_condition_error_on_a_later_rule_overrides_an_earlier_allow() -> None:
    policy = policy_of(rule("ok", "allow", "true"), rule("review", "require_approval", "params.currency > 5"))
    decision = decide(policy, request(), WEDNESDAY)
    assert (decision.outcome, decision.reasons) == ("deny", ("policy.condition_error",))


def test_a_condition_error_for_one_request_does_not_affect_another() -> None:
    policy = policy_of(rule("ok", "allow", "params.amount <= 1000000"))
    assert decide(policy, request(amount="lots"), WEDNESDAY).reasons == ("policy.condition_error",)
    assert decide(policy, request(), WEDNESDAY).outcome == "allow"


# --- several approval rules, and what a decision says --------------------------------------------


def test_every_matching_require_approval_rule_contributes_its_requirement() -> None:
    policy = policy_of(
        rule("finance", "require_approval", quorum=2, expires="30m"),
        rule("unmatched", "require_approval", "params.amount < 0"),
        rule("security", "require_approval", separate=True, expires="10m"),
        rule("ok", "allow"),
    )
    decision = decide(policy, request(), WEDNESDAY)
    assert decision.outcome == "require_approval"
    assert decision.matched_rules == ("finance", "security")
    assert [r.rule_id for r in decision.requirements] == ["finance", "security"]
    assert [(r.quorum, r.separate_channel) for r in decision.requirements] == [(2, False), (1, True)]
    assert decision.approval_expires_in == 600  # the shortest window of all requirements
    assert "2 of 2 approvers" in decision.explanation
    assert "over another channel" in decision.explanation


def test_decision_names_the_policy_version_and_explains_with_descriptions() -> None:
    policy = policy_of(rule("ok", "allow", description="small things"), rule("also", "allow"))
    decision = decide(policy, request(), WEDNESDAY)
    assert decision.policy_version == policy.version
    assert decision.matched_rules == ("ok", "also")
    assert decision.explanation == "allowed by `ok` (small things), `also`"


def test_decision_json_carries_everything_the_audit_log_needs() -> None:
    policy = policy_of(rule("review", "require_approval", quorum=2, separate=True))
    body = decide(policy, request(), WEDNESDAY).to_json()
    assert body["outcome"] == "require_approval"
    assert body["policy_version"] == policy.version
    assert body["requirements"] == [{
        "rule_id": "review", "approvers": ["user:alice", "user:bob"], "quorum": 2,
        "separate_channel": True, "expires_in": 900, "min_review_seconds": 0,
    }]


def test_sensitive_actions_are_flagged_even_when_denied(seed_policy: Policy) -> None:
    assert decide(seed_policy, request(), WEDNESDAY).sensitive
    other = parse_request({**ceo_payment(), "action": "reports.read"})
    decision = decide(seed_policy, other, WEDNESDAY)
    assert decision.reasons == ("policy.no_matching_rule",)
    assert not decision.sensitive


# --- now and history are passed in ---------------------------------------------------------------


def test_now_is_the_time_passed_in() -> None:
    policy = policy_of(rule("weekday", "allow"), rule("weekend-freeze", "deny", "now.getDayOfWeek() in [0, 6]"))
    assert decide(policy, request(), WEDNESDAY).outcome == "allow"
    saturday = decide(policy, request(), SATURDAY)
    assert saturday.outcome == "deny"
    assert saturday.matched_rules == ("weekend-freeze",)


def test_seed_freezes_config_on_saturday_only(seed_policy: Policy) -> None:
    staging = parse_request({**ceo_payment(), "action": "config.apply", "resource": "env:staging/app",
                             "params": {}, "executor": "deploy-executor"})
    assert decide(seed_policy, staging, WEDNESDAY).outcome == "allow"
    assert decide(seed_policy, staging, SATURDAY).outcome == "deny"


def test_history_count_asks_the_history_passed_in() -> None:
    policy = policy_of(rule("ok", "allow"), rule("too-often", "deny", "history.count('payments.transfer', '1h') >= 3"))
    history = FakeHistory(counts={"payments.transfer": 2})
    assert decide(policy, request(), WEDNESDAY, history).outcome == "allow"
    assert history.calls == [("count", "payments.transfer", 3600)]
    history.counts["payments.transfer"] = 3
    assert decide(policy, request(), WEDNESDAY, history).outcome == "deny"


def test_history_sum_asks_the_history_passed_in() -> None:
    policy = policy_of(rule("daily-limit", "allow",
                            "history.sum('payments.transfer', 'amount', '1d') + double(params.amount) <= 5000.0"))
    history = FakeHistory(sums={("payments.transfer", "amount"): 4000.0})
    assert decide(policy, request(amount=1000), WEDNESDAY, history).outcome == "allow"
    assert history.calls == [("sum", "payments.transfer", "amount", 86400)]
    assert decide(policy, request(amount=1001), WEDNESDAY, history).reasons == ("policy.no_matching_rule",)


def test_without_history_there_are_no_earlier_requests() -> None:
    policy = policy_of(rule("first", "allow", "history.count('payments.transfer', '24h') == 0"))
    assert decide(policy, request(), WEDNESDAY).outcome == "allow"


def test_history_is_not_asked_when_no_condition_needs_it() -> None:
    history = FakeHistory(fail=AssertionError("history must not be read"))
    assert decide(policy_of(rule("ok", "allow", "params.amount > 0")), request(), WEDNESDAY, history).outcome == "allow"
    assert history.calls == []


@pytest.mark.parametrize("effect", ["allow", "deny"])
def test_an_exception_inside_history_is_a_condition_error(effect: str) -> None:
    policy = policy_of(rule("ok", "allow"), rule("limit", effect, "history.count('payments.transfer', '1h') < 5"))
    history = FakeHistory(fail=RuntimeError("database is locked"))
    decision = decide(policy, request(), WEDNESDAY, history)
    assert decision.outcome == "deny"
    assert decision.reasons == ("policy.condition_error",)
    assert decision.matched_rules == ("limit",)


@pytest.mark.parametrize("window", ["24 hours", "0s", "", "1y", "-1h", "1h30"])
def test_a_bad_window_is_a_condition_error(window: str) -> None:
    policy = policy_of(rule("ok", "allow", f"history.count('payments.transfer', '{window}') < 5"))
    decision = decide(policy, request(), WEDNESDAY, FakeHistory())
    assert decision.outcome == "deny"
    assert decision.reasons == ("policy.condition_error",)


def test_combined_windows_are_summed() -> None:
    history = FakeHistory()
    policy = policy_of(rule("ok", "allow", "history.count('payments.transfer', '1h30m') < 5"))
    assert decide(policy, request(), WEDNESDAY, history).outcome == "allow"
    assert history.calls == [("count", "payments.transfer", 5400)]


def test_seed_small_transfer_is_allowed_until_the_daily_limit(seed_policy: Policy) -> None:
    known = "DE89370400440532013000"
    small = request(amount=900, recipient=known)
    small_direct = parse_request({**ceo_payment(amount=900, recipient=known), "on_behalf_of": []})
    assert decide(seed_policy, small_direct, WEDNESDAY, FakeHistory()).outcome == "allow"
    assert decide(seed_policy, small, WEDNESDAY, FakeHistory()).outcome == "allow"
    over_limit = FakeHistory(sums={("payments.transfer", "amount"): 4500.0})
    decision = decide(seed_policy, small, WEDNESDAY, over_limit)
    assert decision.outcome == "require_approval"
    assert decision.matched_rules == ("other-transfers-need-two",)


def test_seed_large_transfer_needs_two_finance_approvers(seed_policy: Policy) -> None:
    decision = decide(seed_policy, request(), WEDNESDAY, FakeHistory())
    assert decision.outcome == "require_approval"
    (requirement,) = decision.requirements
    assert requirement.quorum == 2
    assert requirement.separate_channel


def test_a_nul_in_a_param_never_reaches_a_condition(seed_policy: Policy) -> None:
    # `in known_recipients` would see the part before U+0000 only: an unknown recipient passing as known.
    known = "DE89370400440532013000"
    with pytest.raises(RequestError) as refused:
        parse_request({**ceo_payment(amount=500, recipient=f"{known}\x00GB33BUKB20201555555555"),
                       "on_behalf_of": [], "channel": "api"})
    assert refused.value.code == "input.invalid"
    assert "U+0000" in refused.value.message
