"""CEL conditions: the compile-time environment, evaluation, and the `history` velocity functions.

The engine is `cel-expr-python` (Google's cel-cpp): it type-checks at compile time and evaluates a
condition in a few microseconds. It reports a failed evaluation as a value of type ERROR, not as an
exception, so `evaluate` accepts nothing but a BOOL result: anything else is a `policy.condition_error`.
"""

from __future__ import annotations

import contextvars
import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cel_expr_python import cel

from interlock.core.durations import parse_duration


class History(Protocol):
    """The requester's recent requests, as the store counts them (passed in; core does no I/O)."""

    def count(self, action: str, window_seconds: int) -> int:
        """Requests for `action` in the last `window_seconds` that were not denied or rejected."""
        ...

    def sum(self, action: str, param: str, window_seconds: int) -> float:
        """Sum of numeric `params[param]` over the same requests."""
        ...


class NoHistory:
    """History for dry runs: no earlier requests."""

    def count(self, action: str, window_seconds: int) -> int:
        return 0

    def sum(self, action: str, param: str, window_seconds: int) -> float:
        return 0.0


# The History of the evaluation in progress; cel-cpp calls the functions below without it.
_current_history: contextvars.ContextVar[History] = contextvars.ContextVar("interlock_history")


def _history_count(_: str, action: str, window: str) -> int:
    return int(_current_history.get().count(action, parse_duration(window)))


def _history_sum(_: str, action: str, param: str, window: str) -> float:
    return float(_current_history.get().sum(action, param, parse_duration(window)))


_STR = cel.Type.STRING
_MAP = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
_HISTORY_FUNCTIONS = [
    cel.FunctionDecl(
        "count",
        [cel.Overload("history_count", cel.Type.INT, [_STR, _STR, _STR], is_member=True, impl=_history_count)],
    ),
    cel.FunctionDecl(
        "sum",
        [cel.Overload("history_sum", cel.Type.DOUBLE, [_STR, _STR, _STR, _STR], is_member=True, impl=_history_sum)],
    ),
]
VARIABLES = {
    "principal": _MAP,
    "delegators": cel.Type.List(_MAP),
    "action": _STR,
    "resource": _STR,
    "params": _MAP,
    "context": _MAP,
    "channel": _STR,
    "now": cel.Type.TIMESTAMP,
    "history": _STR,
}
_ENV = cel.NewEnv(variables=VARIABLES, functions=_HISTORY_FUNCTIONS)


class ConditionSyntaxError(ValueError):
    """A condition that does not compile or cannot yield a boolean."""


def _one_line(engine_message: str) -> str:
    """The engine's errors as one line: each `ERROR: <input>:LINE:COL: ...` kept, the caret drawings dropped."""
    text = engine_message.replace("INVALID_ARGUMENT: ", "", 1).replace(" [INVALID_ARGUMENT]", "")
    problems = [line.strip() for line in text.splitlines() if line.startswith("ERROR:")]
    return "; ".join(problems) or " ".join(text.split())


@dataclass(frozen=True)
class Condition:
    """A compiled CEL condition."""

    source: str
    _program: Any

    @classmethod
    def compile(cls, source: str) -> Condition:
        try:
            program = _ENV.compile(source)
        except RuntimeError as exc:
            raise ConditionSyntaxError(_one_line(str(exc))) from None
        result_type = program.return_type()
        if result_type not in (cel.Type.BOOL, cel.Type.DYN):
            raise ConditionSyntaxError(f"condition yields {result_type.name()}, not a boolean")
        return cls(source, program)


class Activation:
    """The variables of one request, built once and shared by every condition evaluated for it."""

    __slots__ = ("_activation", "_history", "_unfaithful")

    def __init__(self, variables: Mapping[str, Any], history: History) -> None:
        # INVARIANT 8 (parser differentials are a bypass): cel-cpp cuts strings at U+0000, so a recipient
        # `"DE89…\u0000evil"` would be judged as `"DE89…"` while the grant binds the whole string.
        self._unfaithful = _has_nul(variables)
        self._activation = None if self._unfaithful else _ENV.Activation({**variables, "history": ""})
        self._history = history

    def evaluate(self, condition: Condition) -> bool | str:
        """True/False, or an error message (a str) when the condition did not yield a boolean."""
        if self._unfaithful:
            return "cannot be evaluated: a string in the request contains U+0000"
        token = _current_history.set(self._history)
        try:
            value = condition._program.eval(self._activation)
        except Exception as exc:  # noqa: BLE001 — any engine failure is a condition error, never a pass
            return f"evaluation failed: {exc}"
        finally:
            _current_history.reset(token)
        if value.type() != cel.Type.BOOL:
            return f"yielded {value.type().name()}: {value.value()}"
        result = value.value()
        return result if isinstance(result, bool) else f"yielded non-boolean {result!r}"


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(item) for item in value)
    return False


def variables_for(
    *,
    principal: dict[str, Any],
    delegators: list[dict[str, Any]],
    action: str,
    resource: str,
    params: dict[str, Any],
    context: dict[str, Any],
    channel: str,
    now: datetime.datetime,
) -> dict[str, Any]:
    """The CEL variables for a request (`history` is bound separately)."""
    return {
        "principal": principal,
        "delegators": delegators,
        "action": action,
        "resource": resource,
        "params": params,
        "context": context,
        "channel": channel,
        "now": now,
    }
