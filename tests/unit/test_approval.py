"""Approval rules: recognition is not approval (INVARIANT 4): who may approve, over which channel, and quorum."""

from __future__ import annotations

import datetime
import itertools
from typing import Any

import pytest

from conftest import WEDNESDAY, ceo_payment
from interlock.core.action import ActionRequest, parse_request
from interlock.core.approval import Approval, check_approver, is_rubber_stamp, is_satisfied, progress, takes_part
from interlock.core.errors import ApprovalError
from interlock.core.policy import ApprovalRequirement

_ids = itertools.count()


def requirement(approvers: set[str], quorum: int = 1, separate_channel: bool = False,
                rule_id: str = "r") -> ApprovalRequirement:
    return ApprovalRequirement(rule_id, frozenset(approvers), quorum, separate_channel, 900)


FINANCE = requirement({"user:alice", "user:bob", "user:carol", "user:ceo", "agent:finance-assistant",
                       "user:cfo"}, quorum=2, separate_channel=True)


def chained_request(**overrides: Any) -> ActionRequest:
    # agent acting for the CEO, who acts for the CFO: both are in the delegation chain.
    document = ceo_payment()
    document["on_behalf_of"] = [{"id": "user:ceo", "kind": "human"}, {"id": "user:cfo", "kind": "human"}]
    document.update(overrides)
    return parse_request(document)


def approval(approver: str, channel: str = "web", verdict: str = "approve") -> Approval:
    return Approval(f"apr_{next(_ids)}", "req_1", approver, channel, verdict, "", WEDNESDAY)  # type: ignore[arg-type]


def refusal(approver: str, channel: str = "web", earlier: list[Approval] | None = None,
            requirements: list[ApprovalRequirement] | None = None) -> ApprovalError:
    with pytest.raises(ApprovalError) as caught:
        check_approver(chained_request(), [FINANCE] if requirements is None else requirements, approver, channel,
                       earlier or [])
    return caught.value


# --- check_approver ----------------------------------------------------------------------------


def test_an_independent_listed_approver_over_another_channel_may_approve() -> None:
    check_approver(chained_request(), [FINANCE], "user:alice", "web", [])


def test_the_requester_may_not_approve_even_if_listed() -> None:
    error = refusal("agent:finance-assistant")
    assert error.code == "approval.not_independent"
    assert "requester" in error.message


@pytest.mark.parametrize("delegator", ["user:ceo", "user:cfo"])
def test_nobody_in_the_delegation_chain_may_approve_even_if_listed(delegator: str) -> None:
    error = refusal(delegator)
    assert error.code == "approval.not_independent"
    assert "delegation chain" in error.message


def test_independence_is_checked_before_anything_else() -> None:
    # Even a requester who is not listed, on the same channel, hears the most important reason.
    error = refusal("agent:finance-assistant", channel="chat", requirements=[requirement({"user:alice"})])
    assert error.code == "approval.not_independent"


def test_someone_not_listed_may_not_approve() -> None:
    error = refusal("user:mallory")
    assert error.code == "approval.not_an_approver"


def test_an_approver_decides_once() -> None:
    assert refusal("user:alice", earlier=[approval("user:alice")]).code == "approval.duplicate"
    assert refusal("user:alice", earlier=[approval("user:alice", verdict="reject")]).code == "approval.duplicate"


def test_same_channel_is_refused_when_the_rule_asks_for_another() -> None:
    error = refusal("user:alice", channel="chat")
    assert error.code == "approval.same_channel"
    assert "chat" in error.message


def test_same_channel_is_fine_when_the_rule_does_not_ask() -> None:
    check_approver(chained_request(), [requirement({"user:alice"})], "user:alice", "chat", [])


def test_same_channel_passes_if_any_rule_the_approver_serves_allows_it() -> None:
    strict = requirement({"user:alice"}, separate_channel=True, rule_id="strict")
    lax = requirement({"user:alice"}, rule_id="lax")
    check_approver(chained_request(), [strict, lax], "user:alice", "chat", [])
    # ...but that approval will not count toward the strict rule (see is_satisfied below).
    assert not is_satisfied(chained_request(), [strict, lax], [approval("user:alice", "chat")])


def test_no_requirements_means_nobody_may_approve() -> None:
    assert refusal("user:alice", requirements=[]).code == "approval.not_an_approver"


# --- is_satisfied ------------------------------------------------------------------------------


def test_quorum_counts_distinct_approvers() -> None:
    request = chained_request()
    assert not is_satisfied(request, [FINANCE], [approval("user:alice")])
    assert not is_satisfied(request, [FINANCE], [approval("user:alice"), approval("user:alice", "email")])
    assert is_satisfied(request, [FINANCE], [approval("user:alice"), approval("user:bob", "email")])


def test_any_rejection_ends_the_request() -> None:
    request = chained_request()
    approvals = [approval("user:alice"), approval("user:bob"), approval("user:carol", verdict="reject")]
    assert not is_satisfied(request, [FINANCE], approvals)


def test_a_rejection_by_an_ineligible_person_still_counts_as_a_rejection() -> None:
    # Rejections only ever close doors; whoever recorded one was checked by check_approver first.
    approvals = [approval("user:alice"), approval("user:bob"), approval("user:ceo", verdict="reject")]
    assert not is_satisfied(chained_request(), [FINANCE], approvals)


def test_approvals_over_the_requests_channel_do_not_count_when_separate_channel() -> None:
    request = chained_request()
    assert not is_satisfied(request, [FINANCE], [approval("user:alice", "chat"), approval("user:bob", "chat")])
    assert not is_satisfied(request, [FINANCE], [approval("user:alice", "chat"), approval("user:bob", "web")])
    lax = requirement({"user:alice", "user:bob"}, quorum=2)
    assert is_satisfied(request, [lax], [approval("user:alice", "chat"), approval("user:bob", "chat")])


def test_requester_and_delegators_never_count_even_if_recorded() -> None:
    request = chained_request()
    approvals = [approval("user:alice"), approval("user:ceo"), approval("user:cfo"),
                 approval("agent:finance-assistant")]
    assert not is_satisfied(request, [FINANCE], approvals)


def test_unlisted_approvers_do_not_count() -> None:
    assert not is_satisfied(chained_request(), [FINANCE], [approval("user:alice"), approval("user:mallory")])


def test_every_requirement_needs_its_own_quorum() -> None:
    finance = requirement({"user:alice", "user:bob"}, rule_id="finance")
    security = requirement({"user:sam"}, rule_id="security")
    request = chained_request()
    assert not is_satisfied(request, [finance, security], [approval("user:alice")])
    assert is_satisfied(request, [finance, security], [approval("user:alice"), approval("user:sam")])


def test_no_requirements_is_never_satisfied() -> None:
    assert not is_satisfied(chained_request(), [], [approval("user:alice")])


def test_no_approvals_is_not_satisfied() -> None:
    assert not is_satisfied(chained_request(), [FINANCE], [])


def test_progress_lists_who_counted_so_far() -> None:
    approvals = [approval("user:bob"), approval("user:ceo"), approval("user:alice", "chat")]
    assert progress(chained_request(), [FINANCE], approvals) == [
        {"rule_id": "r", "quorum": 2, "approved_by": ["user:bob"]},
    ]


def test_approval_records_are_frozen() -> None:
    record = approval("user:alice")
    with pytest.raises(AttributeError):
        record.verdict = "reject"  # type: ignore[misc]
    assert record.at == WEDNESDAY
    assert isinstance(record.at, datetime.datetime)


# --- is_rubber_stamp ------------------------------------------------------------------------------


def reviewed(seconds: float, verdict: str = "approve", approver: str = "user:alice") -> bool:
    careful = ApprovalRequirement("careful", frozenset({"user:alice"}), 1, False, 900, min_review_seconds=30)
    quick = ApprovalRequirement("quick", frozenset({"user:alice", "user:bob"}), 1, False, 900)
    at = WEDNESDAY + datetime.timedelta(seconds=seconds)
    return is_rubber_stamp([careful, quick], approver, verdict, WEDNESDAY, at)  # type: ignore[arg-type]


def test_an_approval_sooner_than_the_review_time_is_a_rubber_stamp() -> None:
    assert reviewed(0) and reviewed(29.999)
    assert not reviewed(30) and not reviewed(600)


def test_a_rejection_is_never_a_rubber_stamp() -> None:
    assert not reviewed(0, verdict="reject")


def test_only_the_review_times_of_the_rules_the_approver_answers_apply() -> None:
    assert not reviewed(0, approver="user:bob")  # bob answers only the rule without a review time
    assert not is_rubber_stamp([], "user:alice", "approve", WEDNESDAY, WEDNESDAY)


# --- takes_part: who may see a request ---------------------------------------------------------

GROUPS = {"finance": ["user:alice", "user:bob"], "change": ["user:erin"], "leads": ["user:ceo"]}


def part(person: str, decided_by: tuple[str, ...] = (), glass_broken: bool = False) -> bool:
    return takes_part(chained_request(), person, approvers=sorted(FINANCE.approvers), decided_by=decided_by,
                      glass_broken=glass_broken, groups=GROUPS)


def test_an_approver_the_rules_name_takes_part() -> None:
    assert part("user:alice") and part("user:carol")


def test_someone_the_rules_do_not_name_takes_no_part_even_in_a_group() -> None:
    assert not part("user:erin") and not part("user:zed")


@pytest.mark.parametrize("person", ["agent:finance-assistant", "user:ceo", "user:cfo"])
def test_the_requester_and_its_delegators_take_no_part_even_if_listed(person: str) -> None:
    assert not part(person)
    assert not part(person, glass_broken=True), "a group member, but not independent: may not review either"


def test_whoever_decided_on_it_takes_part() -> None:
    assert part("user:zed", decided_by=("user:zed",))


def test_once_the_glass_is_broken_any_group_member_takes_part_as_a_possible_reviewer() -> None:
    assert part("user:erin", glass_broken=True)
    assert not part("user:zed", glass_broken=True), "in no group and not named by the rules"


def test_without_groups_only_the_rules_and_the_decisions_count() -> None:
    request = chained_request()
    assert not takes_part(request, "user:erin", approvers=[], decided_by=[], glass_broken=True)
    assert takes_part(request, "user:alice", approvers=["user:alice"], decided_by=[])
