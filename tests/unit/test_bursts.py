"""Approval bombing: near-identical requests grouped into bursts (same requester, chain, action and resource)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from interlock.core.action import ActionRequest, parse_request
from interlock.core.bursts import BURST_WINDOW, Burst, LookAlike, group, peak

T0 = datetime.datetime(2026, 11, 25, 9, 0, tzinfo=datetime.UTC)
Item = tuple[ActionRequest, datetime.datetime]


def request(**changes: Any) -> ActionRequest:
    body: dict[str, Any] = {
        "principal": {"id": "agent:finance-assistant", "kind": "agent"},
        "on_behalf_of": [{"id": "user:ceo", "kind": "human"}],
        "action": "payments.transfer",
        "resource": "account:treasury",
        "params": {"amount": 48000, "currency": "EUR"},
        "channel": "chat",
    }
    body.update(changes)
    return parse_request(body)


def at(minutes: float) -> datetime.datetime:
    return T0 + datetime.timedelta(minutes=minutes)


def bursts_of(items: list[Item], **kwargs: Any) -> list[Burst[Item]]:
    return group(items, lambda item: item[0], lambda item: item[1], **kwargs)


def test_look_alikes_with_different_params_form_one_burst() -> None:
    items = [(request(params={"amount": 48000 + n}), at(n)) for n in range(5)]
    [burst] = bursts_of(items)
    assert burst.key == LookAlike("agent:finance-assistant", ("user:ceo",), "payments.transfer", "account:treasury")
    assert burst.members == tuple(items) and burst.count == 5
    assert (burst.first_at, burst.last_at, burst.span) == (at(0), at(4), datetime.timedelta(minutes=4))
    assert burst.peak == 5 and burst.suspect


@pytest.mark.parametrize("changes", [
    {"principal": {"id": "agent:other", "kind": "agent"}},
    {"on_behalf_of": [{"id": "user:cfo", "kind": "human"}]},
    {"on_behalf_of": [{"id": "user:ceo", "kind": "human"}, {"id": "user:cfo", "kind": "human"}]},
    {"on_behalf_of": []},
    {"action": "payments.refund"},
    {"resource": "account:ops"},
])
def test_another_requester_chain_action_or_resource_is_another_burst(changes: dict[str, Any]) -> None:
    bursts = bursts_of([(request(), at(0)), (request(**changes), at(1)), (request(), at(2))])
    assert [b.count for b in bursts] == [2, 1]
    assert not any(b.suspect for b in bursts)


def test_the_channel_justification_and_executor_do_not_split_a_burst() -> None:
    items = [(request(), at(0)), (request(channel="email", justification="urgent!"), at(1)),
             (request(executor="payments-service"), at(2))]
    assert [b.count for b in bursts_of(items)] == [3]


def test_a_single_request_is_not_suspect() -> None:
    [burst] = bursts_of([(request(), at(0))])
    assert burst.count == 1 and burst.peak == 1 and not burst.suspect and burst.span == datetime.timedelta(0)


def test_suspect_means_enough_requests_within_one_window() -> None:
    spread = [(request(), at(n * 6)) for n in range(4)]  # 0, 6, 12, 18 minutes: at most 2 in any 10
    [burst] = bursts_of(spread)
    assert burst.count == 4 and burst.peak == 2 and not burst.suspect
    assert bursts_of(spread, window=datetime.timedelta(minutes=12))[0].suspect  # 0, 6, 12: three
    assert bursts_of(spread, size=2)[0].suspect


def test_the_window_includes_both_ends() -> None:
    assert peak([at(0), at(5), at(10)], BURST_WINDOW) == 3
    assert peak([at(0), at(5), at(10.01)], BURST_WINDOW) == 2
    assert peak([], BURST_WINDOW) == 0


def test_bursts_are_ordered_by_their_oldest_request_and_members_oldest_first() -> None:
    late, early, middle = (request(), at(5)), (request(), at(1)), (request(), at(3))
    other = (request(action="payments.refund"), at(2))
    bursts = bursts_of([late, other, early, middle])
    assert [b.members for b in bursts] == [(early, middle, late), (other,)]
    assert bursts_of([]) == []


@pytest.mark.parametrize("kwargs", [{"size": 1}, {"window": datetime.timedelta(seconds=-1)}])
def test_a_nonsense_threshold_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        bursts_of([], **kwargs)
