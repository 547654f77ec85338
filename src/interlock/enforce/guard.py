"""The Python guard: a decorator that runs a function only after consuming a grant for its exact arguments."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable, Collection
from typing import Any, Protocol, TypeVar

from interlock.core.errors import GrantError, InterlockError, RequestError

F = TypeVar("F", bound=Callable[..., Any])
_log = logging.getLogger(__name__)


class GrantConsumer(Protocol):
    """What a guard needs from a gate, local or remote."""

    def consume(self, grant: str, executor: str, action: dict[str, Any]) -> Any: ...

    def report(self, jti: str, succeeded: bool, detail: str = "", *, executor: str | None = None) -> Any: ...


def guard(
    action: str,
    *,
    executor: str,
    gate: GrantConsumer | Callable[[], GrantConsumer],
    resource: str | Callable[[dict[str, Any]], str],
    grant_arg: str = "grant",
) -> Callable[[F], F]:
    """Gate a function: callers pass `grant=TOKEN`; the call's bound arguments are the params it must match.

    INVARIANT 1: without a grant consumed for exactly these arguments, the function never runs.
    Works on plain and `async def` functions; the result (succeeded/failed) is reported afterwards.
    """

    def decorate(function: F) -> F:
        signature = inspect.signature(function)
        if grant_arg in signature.parameters:
            raise TypeError(f"`{function.__name__}` already has a parameter named `{grant_arg}`")

        def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            token = kwargs.pop(grant_arg, None)
            if not isinstance(token, str) or not token:
                raise GrantError("grant.missing", f"`{function.__name__}` needs a grant (`{grant_arg}=...`)")
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise RequestError("input.invalid", str(exc)) from None
            bound.apply_defaults()
            return token, params_of(bound)

        def action_of(params: dict[str, Any]) -> dict[str, Any]:
            name = resource(params) if callable(resource) else resource
            return {"action": action, "resource": name, "params": params}

        def resolve() -> GrantConsumer:
            return gate() if callable(gate) and not hasattr(gate, "consume") else gate  # type: ignore[return-value]

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                token, params = bind(args, kwargs)
                consumer = resolve()
                consumption = await asyncio.to_thread(consumer.consume, token, executor, action_of(params))
                try:
                    result = await function(*args, **kwargs)
                except BaseException as exc:
                    await asyncio.to_thread(_report, consumer, executor, consumption.jti, False, repr(exc))
                    raise
                await asyncio.to_thread(_report, consumer, executor, consumption.jti, True, "")
                return result

            return guarded_async  # type: ignore[return-value]

        @functools.wraps(function)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            token, params = bind(args, kwargs)
            consumer = resolve()
            consumption = consumer.consume(token, executor, action_of(params))
            try:
                result = function(*args, **kwargs)
            except BaseException as exc:
                _report(consumer, executor, consumption.jti, False, repr(exc))
                raise
            _report(consumer, executor, consumption.jti, True, "")
            return result

        return guarded  # type: ignore[return-value]

    return decorate


def params_of(bound: inspect.BoundArguments, *, skip: Collection[str] = ()) -> dict[str, Any]:
    """A call's params: its bound arguments by name (`**kwargs` spread, `*args` a list), but those in `skip`."""
    params: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if name in skip:
            continue
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            params.update(value)
        else:
            params[name] = list(value) if kind is inspect.Parameter.VAR_POSITIONAL else value
    return params


def _report(consumer: GrantConsumer, executor: str, jti: str, succeeded: bool, detail: str) -> None:
    try:
        consumer.report(jti, succeeded, detail[:4096], executor=executor)
    except InterlockError as error:
        # The action ran; a lost result report must not turn its outcome into an error. Say so loudly.
        _log.error("could not report the result of grant %s: %s (%s)", jti, error.message, error.code)
