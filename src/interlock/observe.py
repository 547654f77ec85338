"""Telling an observer (metrics) about each gate operation: what it was, how it ended, why, how long it took."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from interlock.core.errors import InterlockError
from interlock.results import RequestState

F = TypeVar("F", bound=Callable[..., Any])
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observation:
    """One gate operation as seen from outside: what it was, how it ended, why, and how long it took."""

    operation: str  # submit | approve | consume | take (a submit and its consume in one: Gate.take_async)
    outcome: str  # submit: allowed|denied|pending_approval; approve: approve|reject; consume: consumed; or refused
    codes: tuple[str, ...]  # the refusal's code, or a deny decision's reasons
    seconds: float
    flags: tuple[str, ...] = ()  # approve: `rubber_stamp` when given faster than the policy's review time


Observer = Callable[[Observation], None]


class Observed(Protocol):
    observer: Observer | None


# (result, positional arguments, keyword arguments) -> (outcome, codes, flags)
Outcome = Callable[[Any, tuple[Any, ...], dict[str, Any]], tuple[str, tuple[str, ...], tuple[str, ...]]]


def observed(operation: str, outcome: Outcome) -> Callable[[F], F]:
    """Report each call of a gate operation (a method or a coroutine method) to the gate's `observer`, if it
    has one; never changes the result."""

    def wrap(method: F) -> F:
        if inspect.iscoroutinefunction(method):
            @functools.wraps(method)
            async def call_async(self: Observed, *args: Any, **kwargs: Any) -> Any:
                observer = self.observer
                if observer is None:
                    return await method(self, *args, **kwargs)
                started = time.perf_counter()
                try:
                    result = await method(self, *args, **kwargs)
                except InterlockError as refusal:
                    _refused(observer, operation, refusal, started)
                    raise
                _ended(observer, operation, outcome(result, args, kwargs), started)
                return result

            return call_async  # type: ignore[return-value]

        @functools.wraps(method)
        def call(self: Observed, *args: Any, **kwargs: Any) -> Any:
            observer = self.observer
            if observer is None:
                return method(self, *args, **kwargs)
            started = time.perf_counter()
            try:
                result = method(self, *args, **kwargs)
            except InterlockError as refusal:
                _refused(observer, operation, refusal, started)
                raise
            _ended(observer, operation, outcome(result, args, kwargs), started)
            return result

        return call  # type: ignore[return-value]

    return wrap


def _refused(observer: Observer, operation: str, refusal: InterlockError, started: float) -> None:
    _tell(observer, Observation(operation, "refused", (refusal.code,), time.perf_counter() - started))


def _ended(observer: Observer, operation: str, ended: tuple[str, tuple[str, ...], tuple[str, ...]],
           started: float) -> None:
    outcome, codes, flags = ended
    _tell(observer, Observation(operation, outcome, codes, time.perf_counter() - started, flags))


def approve_outcome(
    state: RequestState, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """An accepted approve or reject, flagged when it was a rubber stamp (each approver decides once)."""
    approver = kwargs.get("approver_id", args[1] if len(args) > 1 else None)
    stamped = any(a["approver"] == approver and a["rubber_stamp"] for a in state.approvals)
    return "reject" if kwargs.get("reject") else "approve", (), ("rubber_stamp",) if stamped else ()


def _tell(observer: Observer, observation: Observation) -> None:
    try:
        observer(observation)
    except Exception:  # noqa: BLE001 - telemetry never changes an answer
        _log.exception("gate observer failed on %s", observation.operation)
