"""Agent framework tools: `gated_tool` wraps a plain Python tool callable so that every call is gated.

The wrapped callable keeps its name, docstring, signature and type hints, so LangChain's `@tool` /
`StructuredTool.from_function`, the OpenAI Agents SDK's `function_tool` and the like build the same JSON
schema from it. Gating one call is `calls.CallGate`'s; the texts the model reads when a call did not run are here.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

from pydantic import ValidationError

from interlock.core import strict_json
from interlock.core.action import ACTION_NAME, CHANNEL_NAME, IDENTIFIER, Principal
from interlock.core.errors import InterlockError, RequestError
from interlock.enforce.calls import Call, CallGate, GateLike, Ruling, ended_code, waiting
from interlock.enforce.guard import params_of

__all__ = ["DEFAULT_MAX_ARGUMENT_BYTES", "ToolRefusal", "ToolRefused", "gated_tool"]

F = TypeVar("F", bound=Callable[..., Any])
OnRefusal = Literal["return", "raise"]
DEFAULT_MAX_ARGUMENT_BYTES = 256 * 1024
MAX_ARGUMENT_BYTES = strict_json.MAX_DOCUMENT_BYTES // 2  # the request around them must stay one document


class ToolRefusal(str):
    """What a gated tool returns when its call did not run: a text the model reads, and `data` for programs.

    `data["outcome"]` is `denied`, `pending_approval`, `rejected`, `expired` or `refused`; `data["code"]` the
    reason code; `data["request_id"]` the request, when one was made.
    """

    data: dict[str, Any]

    def __new__(cls, text: str, data: dict[str, Any]) -> ToolRefusal:
        refusal = super().__new__(cls, text)
        refusal.data = data
        return refusal

    @property
    def outcome(self) -> str:
        return str(self.data["outcome"])

    @property
    def code(self) -> str:
        return str(self.data["code"])

    @property
    def request_id(self) -> str | None:
        return self.data.get("request_id")


class ToolRefused(InterlockError):
    """Raised by a tool gated with `on_refusal="raise"` when its call did not run; the message is for the model."""

    def __init__(self, refusal: ToolRefusal) -> None:
        super().__init__(refusal.code, str(refusal),
                         **{k: v for k, v in refusal.data.items() if k not in ("code", "message")})
        self.refusal = refusal


@overload
def gated_tool(function: F, *, gate: GateLike, executor: str, agent: Principal | dict[str, Any] | None = None,
               action: str | None = None, resource: str | Callable[[dict[str, Any]], str] | None = None,
               on_behalf_of: Sequence[Principal | dict[str, Any]] = (), channel: str = "agent",
               justification: str = "", executor_gate: GateLike | None = None,
               context_params: Collection[str] = (), on_refusal: OnRefusal = "return",
               max_argument_bytes: int = DEFAULT_MAX_ARGUMENT_BYTES) -> F: ...


@overload
def gated_tool(function: None = None, *, gate: GateLike, executor: str,
               agent: Principal | dict[str, Any] | None = None, action: str | None = None,
               resource: str | Callable[[dict[str, Any]], str] | None = None,
               on_behalf_of: Sequence[Principal | dict[str, Any]] = (), channel: str = "agent",
               justification: str = "", executor_gate: GateLike | None = None,
               context_params: Collection[str] = (), on_refusal: OnRefusal = "return",
               max_argument_bytes: int = DEFAULT_MAX_ARGUMENT_BYTES) -> Callable[[F], F]: ...


def gated_tool(
    function: F | None = None,
    *,
    gate: GateLike,
    executor: str,
    agent: Principal | dict[str, Any] | None = None,
    action: str | None = None,
    resource: str | Callable[[dict[str, Any]], str] | None = None,
    on_behalf_of: Sequence[Principal | dict[str, Any]] = (),
    channel: str = "agent",
    justification: str = "",
    executor_gate: GateLike | None = None,
    context_params: Collection[str] = (),
    on_refusal: OnRefusal = "return",
    max_argument_bytes: int = DEFAULT_MAX_ARGUMENT_BYTES,
) -> F | Callable[[F], F]:
    """Gate every call of a tool: submit it as an action request as `agent`, run it only on a grant consumed for it.

    params = the call's bound arguments (defaults included; `context_params`, such as a framework's injected run
    context, left out: they must not change what the tool does). `allow` → consume, run, report; `deny`,
    `require_approval` and every refusal → the tool does not run, and the model gets a `ToolRefusal` text (or,
    with `on_refusal="raise"`, a `ToolRefused`). Once approved, the same call with the same arguments runs once;
    other arguments are a new request. `gate` submits and reads requests (a local `Gate`, or a `RemoteGate` with
    the agent's token: then leave `agent` out); `executor_gate` consumes and reports (default `gate`).
    """
    settings = _settings(agent=agent, executor=executor, on_behalf_of=on_behalf_of, channel=channel,
                               justification=justification, on_refusal=on_refusal,
                               max_argument_bytes=max_argument_bytes)

    def decorate(tool: F) -> F:
        return _wrap(tool, CallGate(gate, executor_gate), settings, action, resource, frozenset(context_params))

    return decorate if function is None else decorate(function)


@dataclass(frozen=True)
class _Settings:
    """The wrapper's configuration, checked once: the agent's identity and how it answers."""

    request: dict[str, Any]
    on_refusal: OnRefusal
    max_argument_bytes: int


def _settings(*, agent: Principal | dict[str, Any] | None, executor: str,
              on_behalf_of: Sequence[Principal | dict[str, Any]], channel: str, justification: str,
              on_refusal: OnRefusal, max_argument_bytes: int) -> _Settings:
    """Check the configuration when the tool is wrapped, not at its first call."""
    try:
        chain = [Principal.model_validate(p).model_dump(mode="json") for p in on_behalf_of]
        principal = Principal.model_validate(agent).model_dump(mode="json") if agent is not None else None
    except ValidationError as exc:
        raise RequestError("input.invalid", f"gated_tool: not a principal: {exc.errors()[0]['msg']}") from None
    if not isinstance(executor, str) or not re.fullmatch(IDENTIFIER, executor):
        raise RequestError("input.invalid", "gated_tool: `executor` must be 1-256 characters, no control ones")
    if not isinstance(channel, str) or not re.fullmatch(CHANNEL_NAME, channel):
        raise RequestError("input.invalid", f"gated_tool: `{channel}` is not a channel name")
    if not isinstance(justification, str) or len(justification) > 4096:
        raise RequestError("input.invalid", "gated_tool: `justification` is at most 4096 characters")
    if on_refusal not in ("return", "raise"):
        raise RequestError("input.invalid", "gated_tool: `on_refusal` is \"return\" or \"raise\"")
    if not isinstance(max_argument_bytes, int) or not 2 <= max_argument_bytes <= MAX_ARGUMENT_BYTES:
        raise RequestError("input.invalid", f"gated_tool: `max_argument_bytes` is 2 to {MAX_ARGUMENT_BYTES}")
    request: dict[str, Any] = {"on_behalf_of": chain, "channel": channel, "justification": justification,
                               "executor": executor}
    if principal is not None:
        request["principal"] = principal
    return _Settings(request, on_refusal, max_argument_bytes)


def _wrap(tool: F, calls: CallGate, settings: _Settings, action: str | None,
          resource: str | Callable[[dict[str, Any]], str] | None, context_params: frozenset[str]) -> F:
    name = getattr(tool, "__name__", "")
    action = action if action is not None else f"tool.{name}"
    if not isinstance(action, str) or len(action) > 256 or not re.fullmatch(ACTION_NAME, action):
        raise RequestError("input.invalid", f"gated_tool: `{action}` is not an action name (A-Z a-z 0-9 _ - in"
                                            " dotted parts): pass `action=`")
    if resource is None:
        resource = f"tool:{name}"
    if isinstance(resource, str) and not re.fullmatch(IDENTIFIER, resource):
        raise RequestError("input.invalid", "gated_tool: `resource` must be 1-256 characters, no control ones")
    signature = inspect.signature(tool)
    unknown = context_params - signature.parameters.keys()
    if unknown:
        raise RequestError("input.invalid", f"gated_tool: `{name}` has no parameter {sorted(unknown)}")
    shown = f"`{name}`"

    def prepare(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Call, inspect.BoundArguments]:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise RequestError("input.invalid", f"{shown}: {exc}") from None
        bound.apply_defaults()
        params = params_of(bound, skip=context_params)
        strict_json.check_value(params, path="$.params")
        size = len(json.dumps(params, ensure_ascii=False, separators=(",", ":")).encode())
        if size > settings.max_argument_bytes:
            raise RequestError("input.too_large", f"the arguments of {shown} are {size} bytes, over the"
                                                  f" {settings.max_argument_bytes} byte limit")
        # INVARIANT 2: the tool runs on a copy of what the grant binds, so nothing can change it in between.
        for key in bound.arguments:
            if key not in context_params:
                bound.arguments[key] = copy.deepcopy(bound.arguments[key])
        where = resource(params) if callable(resource) else resource
        request = {**settings.request, "action": action, "resource": where, "params": params,
                   "context": {"tool": {"name": name}}}
        return Call(request, again=f"calling {shown}"), bound

    def answer(ruling: Ruling | None, refused: InterlockError | None) -> Any:
        refusal = _refusal(ruling, refused, shown, settings.request["channel"])
        if settings.on_refusal == "raise":
            raise ToolRefused(refusal)
        return refusal

    if inspect.iscoroutinefunction(tool):

        @functools.wraps(tool)
        async def gated_async(*args: Any, **kwargs: Any) -> Any:
            ran = False

            async def execute() -> Any:
                nonlocal ran
                ran = True
                return await tool(*bound.args, **bound.kwargs)

            try:
                call, bound = prepare(args, kwargs)
                outcome = await calls.run_async(call, execute)
            except InterlockError as refused:
                if ran:
                    raise  # the tool's own error, raised while it ran: not a refusal
                return answer(None, refused)
            return answer(outcome, None) if isinstance(outcome, Ruling) else outcome.value

        gated_async.__signature__ = signature  # type: ignore[attr-defined]
        return gated_async  # type: ignore[return-value]

    @functools.wraps(tool)
    def gated(*args: Any, **kwargs: Any) -> Any:
        ran = False

        def execute() -> Any:
            nonlocal ran
            ran = True
            return tool(*bound.args, **bound.kwargs)

        try:
            call, bound = prepare(args, kwargs)
            outcome = calls.run(call, execute)
        except InterlockError as refused:
            if ran:
                raise
            return answer(None, refused)
        return answer(outcome, None) if isinstance(outcome, Ruling) else outcome.value

    gated.__signature__ = signature  # type: ignore[attr-defined]
    return gated  # type: ignore[return-value]


# --- what the model reads ---------------------------------------------------------------------------


def _refusal(ruling: Ruling | None, refused: InterlockError | None, tool: str, channel: str) -> ToolRefusal:
    if ruling is None:
        assert refused is not None
        data = {"outcome": "refused", "code": refused.code, "message": refused.message,
                **{k: refused.detail[k] for k in ("request_id",) if k in refused.detail}}
        return ToolRefusal(f"interlock: {refused.code}: {refused.message}. {tool} was not run.", data)
    state = ruling.state
    if ruling.kind == "denied":
        reasons = ", ".join(state.reasons)
        return ToolRefusal(
            f"interlock: denied ({reasons}): {state.explanation}. {tool} was not run; the same arguments will be"
            f" denied again. Request {state.request_id}.",
            {"outcome": "denied", "code": state.reasons[0] if state.reasons else "policy.denied",
             "request_id": state.request_id, "reasons": list(state.reasons), "explanation": state.explanation})
    if ruling.kind == "held":
        return _pending(ruling, tool, channel)
    word = {"rejected": "was rejected by an approver", "expired": "expired before it was approved"}.get(
        state.outcome, f"is {state.outcome}")
    return ToolRefusal(
        f"interlock: request {state.request_id} {word}; {tool} was not run. Calling it again makes a new request.",
        {"outcome": state.outcome, "code": ended_code(state),
         "request_id": state.request_id})


def _pending(ruling: Ruling, tool: str, channel: str) -> ToolRefusal:
    state = ruling.state
    wait = waiting(state, channel)
    lines = [f"interlock: {tool} waits for approval and was NOT run. Request {state.request_id}.", *wait.lines,
             f"Once approved, call {tool} again with exactly the same arguments: it then runs once. Other"
             " arguments are a new request that needs its own approval."]
    return ToolRefusal(" ".join(lines), {
        "outcome": "pending_approval", "code": "policy.approval_required", "request_id": state.request_id,
        "approvers": list(wait.approvers), "expires_at": wait.expires_at, "binding_code": wait.binding_code,
        "binding_code_required": wait.binding_code_required, "retry": "the same tool with exactly the same arguments",
    })
