"""Approval bombing in the inbox, over HTTP on the real ASGI app: near-identical requests collapse into one card."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import SEED, FixedClock, code_of
from interlock.core.policy import load_policy

from .conftest import Api, submission
from .test_inbox import Browser, approvals_of, assert_refused, browser_on

WARNING = "Possible approval bombing"
CARD = re.compile(r'<section class="card[^"]*">(.*?)</section>', re.S)
LINK = re.compile(r'href="/inbox/requests/([^"]+)"')


@pytest.fixture
def web(api: Api) -> Iterator[Browser]:
    client = browser_on(api, api.app, "https://interlock")
    yield Browser(api, client)
    api.portal.call(client.aclose)


def submit(api: Api, who: str = "agent", amount: int = 48000, **changes: Any) -> str:
    params = {"amount": amount, "currency": "EUR", "recipient": "GB33BUKB20201555555555"}
    response = api.call("POST", "/v1/requests", who, json=submission(params=params, **changes))
    assert response.status_code == 201 and response.json()["outcome"] == "pending_approval", response.text
    return str(response.json()["request_id"])


def bomb(api: Api, clock: FixedClock, count: int = 5, minutes: int = 1) -> list[str]:
    """`count` look-alike transfers from the agent, `minutes` apart, each with other params."""
    ids = []
    for n in range(count):
        if n:
            clock.advance(minutes=minutes)
        ids.append(submit(api, amount=48000 + n))
    return ids


def cards_of(page: str) -> list[str]:
    return CARD.findall(page)


def test_five_look_alikes_from_one_agent_are_one_card_with_a_warning(web: Browser, api: Api,
                                                                     clock: FixedClock) -> None:
    ids = bomb(api, clock)
    web.sign_in("alice")
    page = web.get("/inbox")

    assert page.status_code == 200
    [card] = cards_of(page.text)
    assert "<strong>5 requests</strong>" in card and "submitted over 4 min:" in card
    assert "payments.transfer" in card and "account:treasury" in card
    assert "agent:finance-assistant" in card and "user:ceo" in card
    assert WARNING in card and "5 look-alike requests" in card and "within 10 min" in card
    assert LINK.findall(card) == ids  # each request listed, oldest first


def test_another_action_requester_or_resource_is_its_own_card(web: Browser, api: Api, clock: FixedClock) -> None:
    # Refunds need finance approval too, so one approver sees all of them.
    api.gate.policy = load_policy((SEED / "policy.yaml").read_text().replace(
        "  - id: other-transfers-need-two\n    action: payments.transfer",
        '  - id: other-transfers-need-two\n    action: "payments.*"'))
    transfers = bomb(api, clock, count=3)
    others = []
    for changes in ({"action": "payments.refund"}, {"who": "other-agent"}, {"resource": "account:ops"}):
        clock.advance(seconds=1)  # the inbox lists cards oldest first
        others.append(submit(api, **changes))
    refund, other_requester, other_resource = others
    web.sign_in("alice")

    cards = cards_of(web.get("/inbox").text)
    assert [LINK.findall(card) for card in cards] == [transfers, [refund], [other_requester], [other_resource]]
    assert [WARNING in card for card in cards] == [True, False, False, False]
    assert "payments.refund" in cards[1] and "agent:other" in cards[2] and "account:ops" in cards[3]
    assert all("<strong>1 request</strong>" in card for card in cards[1:])


def test_a_single_request_shows_no_warning(web: Browser, api: Api) -> None:
    request_id = submit(api)
    web.sign_in("alice")
    [card] = cards_of(web.get("/inbox").text)
    assert "<strong>1 request</strong>" in card and WARNING not in card and "look-alike" not in card
    assert LINK.findall(card) == [request_id]


def test_look_alikes_spread_out_are_grouped_but_not_called_a_burst(web: Browser, api: Api,
                                                                   clock: FixedClock) -> None:
    ids = bomb(api, clock, count=3, minutes=6)  # never three within ten minutes
    web.sign_in("alice")
    [card] = cards_of(web.get("/inbox").text)
    assert "<strong>3 requests</strong>" in card and "submitted over 12 min:" in card
    assert WARNING not in card and "Look-alike requests" in card
    assert LINK.findall(card) == ids


def test_every_request_in_a_burst_is_still_reviewed_and_decided_on_its_own(web: Browser, api: Api,
                                                                          clock: FixedClock) -> None:
    ids = bomb(api, clock)
    web.sign_in("alice")
    inbox = web.get("/inbox").text
    assert "/decision" not in inbox and 'value="approve"' not in inbox  # no bulk approve on the card

    for request_id in ids:
        page = web.get(f"/inbox/requests/{request_id}")
        assert page.status_code == 200 and code_of(api.gate, request_id) in page.text

    # One request's code does not approve its look-alike; each needs its own.
    assert_refused(web.decide(ids[2], binding_code=code_of(api.gate, ids[1])), 409, "approval.binding_mismatch")
    assert web.decide(ids[1]).status_code == 303
    assert web.decide(ids[3], "reject").status_code == 303
    assert [approvals_of(api, request_id) for request_id in ids] == [
        [], [("user:alice", "web", "approve")], [], [("user:alice", "web", "reject")], []]

    [card] = cards_of(web.get("/inbox").text)
    assert LINK.findall(card) == [ids[0], ids[2], ids[4]]
    assert "<strong>3 requests</strong>" in card and WARNING in card
