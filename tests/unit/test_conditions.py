"""CEL conditions: compile-time checks, evaluation over a request's variables, and the history functions."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from conftest import WEDNESDAY
from interlock.core.action import ActionRequest, parse_request
from interlock.core.conditions import (
    VARIABLES,
    Activation,
    Condition,
    ConditionSyntaxError,
    History,
    NoHistory,
)
from interlock.core.errors import RequestError


class TableHistory:
    def __init__(self, count: int = 0, total: float = 0.0) -> None:
        self._count, self._total = count, total
        self.windows: list[int] = []

    def count(self, action: str, window_seconds: int) -> int:
        self.windows.append(window_seconds)
        return self._count

    def sum(self, action: str, param: str, window_seconds: int) -> float:
        self.windows.append(window_seconds)
        return self._total


def variables(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "principal": {"id": "agent:a", "kind": "agent", "attributes": {"team": "finance"}},
        "delegators": [{"id": "user:ceo", "kind": "human", "attributes": {}}],
        "action": "payments.transfer",
        "resource": "account:treasury",
        "params": {"amount": 500, "currency": "EUR", "fields": ["name", "email"], "ratio": 0.5},
        "context": {"ip": "203.0.113.7"},
        "channel": "chat",
        "now": WEDNESDAY,
    }
    base.update(overrides)
    return base


def evaluate(source: str, history: History | None = None, **overrides: Any) -> bool | str:
    return Activation(variables(**overrides), history or NoHistory()).evaluate(Condition.compile(source))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("params.amount <= 1000", True),
        ("params.amount > 1000", False),
        ("params.ratio < 1.0", True),
        ("principal.kind == 'agent' && principal.attributes.team == 'finance'", True),
        ("delegators.size() == 1 && delegators[0].id == 'user:ceo'", True),
        ("delegators.exists(d, d.kind == 'human')", True),
        ("action.startsWith('payments.') && resource == 'account:treasury'", True),
        ("channel in ['api', 'cli']", False),
        ("params.fields.exists(f, f in ['ssn', 'health'])", False),
        ("'currency' in params && !('iban' in params)", True),
        ("has(params.currency)", True),
        ("context.ip.startsWith('203.0.113.')", True),
        ("now.getDayOfWeek() == 3", True),
        ("now.getHours() == 9", True),
        ("now > timestamp('2026-01-01T00:00:00Z')", True),
    ],
)
def test_conditions_see_the_request(source: str, expected: bool) -> None:
    assert evaluate(source) is expected


def test_the_cel_environment_declares_every_request_variable_and_history() -> None:
    assert set(VARIABLES) == {"principal", "delegators", "action", "resource", "params", "context", "channel",
                              "now", "history"}


@pytest.mark.parametrize(
    ("source", "read"),
    [
        ("params.amount <= 1000", {"params"}),
        ("now.getDayOfWeek() in [0, 6] && channel == 'chat'", {"now", "channel"}),
        ("history.count('payments.transfer', '1h') < 3", {"history"}),
        ("'params' == 'x' || true", {"params"}),  # over-approximates: a word in a string still binds
    ],
)
def test_a_condition_knows_which_variables_it_reads(source: str, read: set[str]) -> None:
    assert Condition.compile(source).variables == read


def test_a_variable_left_unbound_is_an_error_not_a_pass() -> None:
    # Only the variables a rule reads are bound; were one missed, the condition must deny, never allow.
    result = Activation({"params": {"amount": 5}}, NoHistory()).evaluate(Condition.compile("channel != 'chat'"))
    assert isinstance(result, str)


@pytest.mark.parametrize(
    "source",
    ["params.amount <= ", "amount > 1", "principal.id = 'x'", "history.count('a')", "history.median('a', 'x', '1h')",
     "size(params)", "params.amount + 1", "action", "now"],
)
def test_compile_refuses_bad_or_non_boolean_conditions(source: str) -> None:
    with pytest.raises(ConditionSyntaxError):
        Condition.compile(source)


def test_compile_error_drops_the_engine_status_prefix() -> None:
    with pytest.raises(ConditionSyntaxError) as caught:
        Condition.compile("nope == 1")
    assert not str(caught.value).startswith("INVALID_ARGUMENT")
    assert "nope" in str(caught.value)


@pytest.mark.parametrize(
    "source",
    ["params.missing", "params.amount", "params.missing > 1", "params.currency < 10", "params.amount / 0 == 1",
     "principal.attributes.nothing == 'x'", "params.fields[5] == 'x'"],
)
def test_evaluation_errors_come_back_as_a_message_not_a_bool(source: str) -> None:
    result = evaluate(source)
    assert isinstance(result, str)
    assert result


def test_a_dyn_condition_that_is_boolean_at_runtime_passes() -> None:
    assert evaluate("params.flag", params={"flag": True}) is True
    assert evaluate("params.flag", params={"flag": False}) is False
    assert isinstance(evaluate("params.flag", params={"flag": "true"}), str)


def test_history_functions_take_durations_in_seconds() -> None:
    history = TableHistory(count=2, total=1500.0)
    assert evaluate("history.count('payments.transfer', '15m') == 2", history) is True
    assert evaluate("history.sum('payments.transfer', 'amount', '7d') == 1500.0", history) is True
    assert history.windows == [900, 7 * 86400]


def test_history_failure_is_a_message() -> None:
    class Broken:
        def count(self, action: str, window_seconds: int) -> int:
            raise OSError("disk gone")

        def sum(self, action: str, param: str, window_seconds: int) -> float:
            raise OSError("disk gone")

    assert isinstance(evaluate("history.count('a', '1h') == 0", Broken()), str)
    assert isinstance(evaluate("history.sum('a', 'amount', '1h') == 0.0", Broken()), str)


def test_each_activation_uses_its_own_history() -> None:
    condition = Condition.compile("history.count('a', '1h') > 0")
    busy = Activation(variables(), TableHistory(count=5))
    quiet = Activation(variables(), TableHistory(count=0))
    assert busy.evaluate(condition) is True
    assert quiet.evaluate(condition) is False
    assert busy.evaluate(condition) is True


def test_history_outside_an_evaluation_is_not_left_behind() -> None:
    condition = Condition.compile("history.count('a', '1h') > 0")
    Activation(variables(), TableHistory(count=5)).evaluate(condition)
    # A later evaluation with no history must not see the previous one's.
    assert Activation(variables(), NoHistory()).evaluate(condition) is False


def test_no_history_has_no_earlier_requests() -> None:
    assert NoHistory().count("a", 60) == 0
    assert NoHistory().sum("a", "amount", 60) == 0.0


def test_now_is_whatever_time_is_passed() -> None:
    sunday = datetime.datetime(2026, 11, 29, 23, 59, tzinfo=datetime.UTC)
    assert evaluate("now.getDayOfWeek() == 0", now=sunday) is True
    assert evaluate("now.getDayOfWeek() == 0") is False


@pytest.mark.parametrize(
    "change",
    [
        {"params": {"recipient": "DE89\x00GB33"}},
        {"params": {"amount\x00": 5}},
        {"params": {"nested": [{"deep": "x\x00"}]}},
        {"context": {"ip": "10.0.0.1\x00"}},
        {"principal": {"id": "agent:a", "kind": "agent", "attributes": {"known": ["DE89\x00"]}}},
        {"on_behalf_of": [{"id": "user:ceo", "kind": "human", "attributes": {"x\x00": 1}}]},
    ],
)
def test_a_nul_anywhere_in_a_request_is_refused_before_any_condition_sees_it(change: dict[str, Any]) -> None:
    # The CEL engine cuts strings at U+0000: it would judge `DE89` while the grant binds `DE89\0GB33`.
    document = {"principal": {"id": "agent:a", "kind": "agent"}, "action": "payments.transfer",
                "resource": "account:treasury", "params": {}, "channel": "api", **change}
    with pytest.raises(RequestError) as refused:
        parse_request(document)
    assert refused.value.code == "input.invalid"
    with pytest.raises(RequestError):
        ActionRequest(**document)  # built in code, not parsed: the same check


def test_the_engine_truncates_at_nul_which_is_why_requests_with_it_are_refused() -> None:
    # Documents the engine's behaviour the refusal above protects against.
    assert evaluate("params.recipient == 'DE89'", params={"recipient": "DE89\x00GB33"}) is True
    assert evaluate("params.recipient == 'DE89'", params={"recipient": "DE89 GB33"}) is False
