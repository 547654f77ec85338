"""CEL conditions: compile-time checks, evaluation over a request's variables, and the history functions."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from conftest import WEDNESDAY
from interlock.core.conditions import (
    Activation,
    Condition,
    ConditionSyntaxError,
    History,
    NoHistory,
    variables_for,
)


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
    return variables_for(**base)


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


def test_variables_for_names_every_cel_variable_but_history() -> None:
    assert set(variables()) == {"principal", "delegators", "action", "resource", "params", "context", "channel",
                                "now"}


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
    "overrides",
    [
        {"params": {"recipient": "DE89\x00GB33"}},
        {"params": {"amount\x00": 5}},
        {"params": {"nested": [{"deep": "x\x00"}]}},
        {"context": {"ip": "10.0.0.1\x00"}},
        {"principal": {"id": "agent:a", "kind": "agent", "attributes": {"known": ["DE89\x00"]}}},
        {"delegators": [{"id": "user:ceo", "kind": "human", "attributes": {"x\x00": 1}}]},
    ],
)
def test_a_nul_anywhere_in_the_request_is_a_message_not_a_truncated_match(overrides: dict[str, Any]) -> None:
    # The CEL engine cuts strings at U+0000; judging `DE89` while the grant binds `DE89\0GB33` is a bypass.
    for source in ("params.recipient == 'DE89'", "'amount' in params", "true"):
        assert isinstance(evaluate(source, **overrides), str)


def test_the_engine_would_truncate_at_nul_which_is_why_it_is_refused() -> None:
    # Without the guard `'DE89\0GB33' == 'DE89'` came out true; a plain value still compares exactly.
    assert evaluate("params.recipient == 'DE89'", params={"recipient": "DE89"}) is True
    assert evaluate("params.recipient == 'DE89'", params={"recipient": "DE89 GB33"}) is False
