"""CEL conditions: the compile-time environment, evaluation, and the `history` velocity functions.

The engine is `cel-expr-python` (Google's cel-cpp): it type-checks at compile time and evaluates a
condition in a few microseconds. It reports a failed evaluation as a value of type ERROR, not as an
exception, so `evaluate` accepts nothing but a BOOL result: anything else is a `policy.condition_error`.
"""

from __future__ import annotations

import contextvars
import re
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


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Condition:
    """A compiled CEL condition, and the variables it may read (so only those are bound per request).

    `variables` over-approximates: every declared name that appears as a word in the source. A name
    left out would leave its variable unbound, which evaluates to an error and so denies: safe either way.
    """

    source: str
    _program: Any
    variables: frozenset[str]

    @classmethod
    def compile(cls, source: str) -> Condition:
        try:
            program = _ENV.compile(source)
        except RuntimeError as exc:
            raise ConditionSyntaxError(_one_line(str(exc))) from None
        result_type = program.return_type()
        if result_type not in (cel.Type.BOOL, cel.Type.DYN):
            raise ConditionSyntaxError(f"condition yields {result_type.name()}, not a boolean")
        used = frozenset(_IDENTIFIER.findall(source)) & VARIABLES.keys()
        return cls(source, program, used)


class Activation:
    """The variables of one request, bound once and shared by every condition evaluated for it.

    The values must have passed `strict_json.check_value`: in particular no string may hold U+0000,
    which cel-cpp cuts strings at (a recipient `"DE89…\u0000evil"` would be judged as `"DE89…"`).
    With `shared=False` (one condition to evaluate) the variables are handed to the engine directly,
    which is faster than building an activation for a single use.
    """

    __slots__ = ("_bound", "_data", "_history")

    def __init__(self, variables: Mapping[str, Any], history: History, *, shared: bool = True) -> None:
        # `history` is only the receiver of history.count()/sum(), which read `_current_history` instead.
        self._data = variables if "history" in variables else {**variables, "history": ""}
        self._bound = _ENV.Activation(self._data) if shared else None
        self._history = history

    def evaluate(self, condition: Condition) -> bool | str:
        """True/False, or an error message (a str) when the condition did not yield a boolean."""
        token = _current_history.set(self._history) if "history" in condition.variables else None
        try:
            if self._bound is not None:
                value = condition._program.eval(self._bound)
            else:
                value = condition._program.eval(data=self._data)
        except Exception as exc:  # noqa: BLE001 — any engine failure is a condition error, never a pass
            return f"evaluation failed: {exc}"
        finally:
            if token is not None:
                _current_history.reset(token)
        result = value.value()
        # Only a BOOL value is a Python bool: an ERROR value (the engine's way to report a missing key,
        # a type mismatch, a failing function) gives its message instead, so it can never pass as true.
        if type(result) is bool:
            return result
        return f"yielded {value.type().name()}: {result!r}"
