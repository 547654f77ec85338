"""The MCP gateway: gates every `tools/call` of an agent through a gate before an upstream MCP server runs it.

Transport-free: `McpGateway` takes a gate-like object (a local `Gate` or a `RemoteGate`) and an `Upstream`
(anything that lists and calls tools); `mcp_transport.py` connects it to stdio and streamable HTTP. Gating
one call (the request a retry finds, consume once, report) is `calls.CallGate`'s; the answers are MCP's, here.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import anyio
import jsonschema  # type: ignore[import-untyped]
from jsonschema.validators import validator_for  # type: ignore[import-untyped]
from mcp import types
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from referencing import Registry
from referencing.exceptions import Unresolvable

from interlock.config_files import load_model, read_bytes
from interlock.core import strict_json
from interlock.core.action import ACTION_NAME, CHANNEL_NAME, IDENTIFIER, Principal, PrincipalKind
from interlock.core.canonical import canonical_json
from interlock.core.errors import InterlockError, RequestError
from interlock.enforce.calls import Call, CallGate, GateLike, Ruling, waiting
from interlock.enforce.execution import EXECUTION_META, TOOL_CALL, ExecutionKey
from interlock.enforce.reports import GatheredReports
from interlock.results import Consumption, RequestState

__all__ = [
    "MAX_MESSAGE_BYTES",
    "TOOL_NAME",
    "AgentSpec",
    "ExecutionSpec",
    "GateLike",
    "GatewayConfig",
    "GatewayError",
    "McpGateway",
    "Screened",
    "ToolSpec",
    "Upstream",
    "load_config",
    "read_config",
    "refusal",
    "screen_message",
    "too_large_reply",
]

_log = logging.getLogger(__name__)

# MCP's tool-name rule (SEP-986): 1-128 of A-Z a-z 0-9 _ - . ; here also no empty dotted segment, so the
# name is one or more segments of an action name (`mcp.<server>.<tool>`). No `/`, `\`, spaces or controls.
TOOL_NAME = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
MAX_TOOL_NAME = 128
SERVER_NAME = r"^[A-Za-z0-9_-]{1,64}$"
# One JSON-RPC message from the agent; the strict parser's own document limit.
MAX_MESSAGE_BYTES = strict_json.MAX_DOCUMENT_BYTES
MAX_LISTED_PAGES = 100
META_KEY = "interlock"
MetaField = Literal["on_behalf_of", "channel", "justification"]
META_FIELDS = ("on_behalf_of", "channel", "justification")
# JSON-RPC 2.0 error codes.
PARSE_ERROR, INVALID_REQUEST = -32700, -32600


class GatewayError(InterlockError):
    """The gateway could not reach, or could not complete a call on, the upstream MCP server (`mcp.*`)."""


# --- configuration ----------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AgentSpec(_Strict):
    """The requester: the agent identity this gateway submits as (with `--server`, its token's principal)."""

    id: str = Field(pattern=IDENTIFIER)
    kind: PrincipalKind = "agent"
    attributes: dict[str, Any] = Field(default_factory=dict)


class ToolSpec(_Strict):
    """How one upstream tool maps to an action: its action name and resource (defaults from the gateway)."""

    action: str | None = Field(default=None, pattern=ACTION_NAME, max_length=256)
    resource: str | None = Field(default=None, pattern=IDENTIFIER)


class ExecutionSpec(_Strict):
    """Sign every forwarded call (`_meta["interlock/execution"]`) so the upstream can refuse calls that skipped
    the gateway: see `enforce/execution.py` and README "No direct path"."""

    audience: str = Field(pattern=IDENTIFIER, description="`aud`: the upstream's name")
    issuer: str = Field(default="interlock-mcp-gateway", pattern=IDENTIFIER)
    key: Path = Path("gateway-execution.pem")  # the gateway's own Ed25519 key, relative to the config file
    ttl: int = Field(default=60, ge=5, le=3600)


class GatewayConfig(_Strict):
    """`interlock mcp-gateway --config FILE`: the mapping from MCP tool calls to action requests."""

    server: str = Field(pattern=SERVER_NAME, description="the upstream's name in action names: mcp.<server>.<tool>")
    agent: AgentSpec | None = None
    executor: str = Field(default="mcp-gateway", pattern=IDENTIFIER)
    resource: str | None = Field(default=None, pattern=IDENTIFIER)
    on_behalf_of: tuple[Principal, ...] = ()
    channel: str = Field(default="mcp", pattern=CHANNEL_NAME)
    justification: str = Field(default="", max_length=4096)
    # Which request fields a call may set in `params._meta.interlock`; the others come from this file only.
    # None by default: the channel and the delegation chain feed policy conditions and `separate_channel`, so
    # an agent may claim them only where the deployment says so.
    from_meta: tuple[MetaField, ...] = ()
    tools: dict[str, ToolSpec] = Field(default_factory=dict)
    max_argument_bytes: int = Field(default=256 * 1024, ge=2, le=MAX_MESSAGE_BYTES // 2)
    call_timeout: float = Field(default=60.0, gt=0, le=3600)
    connect_timeout: float = Field(default=30.0, gt=0, le=600)
    execution: ExecutionSpec | None = None
    # Environment variables of the gateway passed on to a stdio upstream (the MCP SDK passes only HOME, PATH, ...).
    upstream_env: tuple[str, ...] = ()

    @field_validator("tools")
    @classmethod
    def _tool_names(cls, tools: dict[str, ToolSpec]) -> dict[str, ToolSpec]:
        for name in tools:
            _check_tool_name(name)
        return tools

    @model_validator(mode="after")
    def _distinct_meta(self) -> GatewayConfig:
        if len(set(self.from_meta)) != len(self.from_meta):
            raise ValueError("`from_meta` names a field twice")
        return self

    def action_for(self, tool: str) -> str:
        spec = self.tools.get(tool)
        return spec.action if spec and spec.action else f"mcp.{self.server}.{tool}"

    def resource_for(self, tool: str) -> str:
        spec = self.tools.get(tool)
        return (spec.resource if spec and spec.resource else None) or self.resource or f"mcp:{self.server}"


def load_config(text: str | bytes) -> GatewayConfig:
    """Parse a gateway config (YAML, duplicate keys refused); any problem is `input.invalid` naming where."""
    return load_model(text, GatewayConfig, "gateway config", "a YAML mapping with at least `server`")


def read_config(path: Path) -> GatewayConfig:
    """`load_config` of a file; the execution key's path is then relative to the file's directory."""
    config = load_config(read_bytes(path))
    if config.execution is None:
        return config
    return config.model_copy(update={"execution": config.execution.model_copy(
        update={"key": path.parent / config.execution.key})})


# --- what the gateway talks to -------------------------------------------------------------------------


class Upstream(Protocol):
    """The MCP server behind the gateway. Raises `GatewayError` (`mcp.*`) for anything but a result."""

    @property
    def connected(self) -> bool:
        """Whether a session is open now (a call would be sent at once, with no connecting first)."""

    async def ready(self) -> None:
        """Return once a session is open (connecting if needed); `mcp.upstream_unavailable` otherwise."""

    async def list_tools(self) -> list[types.Tool]: ...

    async def call_tool(self, name: str, arguments: dict[str, Any], timeout: float,
                        meta: dict[str, Any] | None = None) -> types.CallToolResult:
        """Send one tools/call (with `meta` as its `_meta`) once; never retried. A timeout or a lost connection is
        a `GatewayError`."""


# --- results the agent sees ------------------------------------------------------------------------------


def refusal(code: str, message: str, **data: Any) -> types.CallToolResult:
    """A tool error result naming a reason code: the call was not forwarded (or its outcome is unknown)."""
    return _result(f"interlock: {code}: {message}", {"outcome": "refused", "code": code, "message": message, **data})


def _result(text: str, meta: dict[str, Any]) -> types.CallToolResult:
    # isError: the tool did not run (or did not finish) here; it also keeps a client from checking this
    # text against the tool's outputSchema, which only a real result can match.
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], isError=True,
                                _meta={META_KEY: meta})


def _denied(state: RequestState) -> types.CallToolResult:
    reasons = ", ".join(state.reasons)
    return _result(
        f"interlock: denied ({reasons}): {state.explanation}. The call was not executed; the same arguments will"
        f" be denied again. Request {state.request_id}.",
        {"outcome": "denied", "request_id": state.request_id, "reasons": list(state.reasons),
         "explanation": state.explanation},
    )


def _pending(state: RequestState, tool: str, channel: str) -> types.CallToolResult:
    wait = waiting(state, channel)
    lines = [f"interlock: this call waits for approval and was NOT executed. Request {state.request_id}.",
             *wait.lines,
             f"Once approved, call `{tool}` again with exactly the same arguments: it then runs once. Other"
             " arguments are a new request that needs its own approval."]
    return _result(" ".join(lines), {
        "outcome": "pending_approval", "request_id": state.request_id, "approvers": list(wait.approvers),
        "expires_at": wait.expires_at, "binding_code": wait.binding_code,
        "binding_code_required": wait.binding_code_required, "retry": "the same tool with exactly the same arguments",
    })


def _ended(state: RequestState, tool: str) -> types.CallToolResult:
    word = {"rejected": "was rejected by an approver", "expired": "expired before it was approved"}.get(
        state.outcome, f"is {state.outcome}")
    return _result(
        f"interlock: request {state.request_id} {word}; the call was not executed. Calling `{tool}` again makes"
        " a new request.",
        {"outcome": state.outcome, "request_id": state.request_id},
    )


def _executed(result: types.CallToolResult, consumed: Consumption) -> types.CallToolResult:
    """The upstream's result unchanged, with what authorized it under `_meta.interlock`."""
    meta = dict(result.meta or {})
    meta[META_KEY] = {"outcome": "executed", "request_id": consumed.request_id, "grant": consumed.jti}
    return result.model_copy(update={"meta": meta})


# --- the gateway -----------------------------------------------------------------------------------------


def _check_tool_name(name: Any) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_TOOL_NAME or not re.fullmatch(TOOL_NAME, name):
        shown = json.dumps(name)[:80] if isinstance(name, str) else type(name).__name__
        raise RequestError("input.invalid", f"tool name {shown} is not 1-{MAX_TOOL_NAME} characters of"
                                            " A-Z a-z 0-9 _ - . (no paths, spaces or control characters)")
    return name


@dataclass(frozen=True)
class _Call:
    tool: str
    arguments: dict[str, Any]
    gated: Call


class McpGateway:
    """Gate each tools/call: submit it as an action request, and forward it only with a grant consumed for it.

    `requester` submits and reads requests (the agent's identity); `executor` consumes grants and reports
    results (defaults to `requester`: a local gate, or a server token that is both). Decisions and consumes run
    on the gateway's event loop (`CallGate.decide_async`); reports in worker threads, off the calls' path.
    """

    def __init__(self, config: GatewayConfig, requester: GateLike, upstream: Upstream,
                 executor: GateLike | None = None, execution_key: ExecutionKey | None = None) -> None:
        if (config.execution is None) != (execution_key is None):
            raise ValueError("an execution key goes with the config's `execution`, and only with it")
        self.config = config
        self.execution_key = execution_key
        self.calls = CallGate(requester, executor)
        self.reports = GatheredReports(self.calls.report)  # results of forwarded calls, off the calls' path
        self.upstream = upstream
        self._tools: dict[str, types.Tool] = {}
        self._validators: dict[str, Any] = {}  # tool -> its input schema's validator, built once per listing
        self._hidden: set[str] = set()

    @property
    def pending(self) -> dict[str, str]:
        """Action digest -> id of the request that waits for (or got) approval: a retry of the same call finds it."""
        return self.calls.pending

    # --- tools/list ---------------------------------------------------------------------------------

    async def list_tools(self) -> list[types.Tool]:
        """The upstream's tools, schemas unchanged; a tool whose name could not be an action is left out."""
        listed = await self.upstream.list_tools()
        tools = {}
        for tool in listed:
            try:
                _check_tool_name(tool.name)
            except RequestError as refused:
                if tool.name not in self._hidden:
                    self._hidden.add(tool.name)
                    _log.warning("upstream tool hidden from the agent: %s", refused.message)
                continue
            tools[tool.name] = tool
        self._tools, self._validators = tools, {}
        return list(tools.values())

    # --- tools/call ---------------------------------------------------------------------------------

    async def call_tool(self, name: Any, arguments: Any, meta: Any = None) -> types.CallToolResult:
        """One tools/call from the agent: the upstream's result, or a tool error naming why it did not run."""
        try:
            call = await self._prepare(name, arguments, meta)
            async with self.calls.one_at_a_time_async(call.gated.digest):
                return await self._decide(call)
        except InterlockError as refused:
            return refusal(refused.code, refused.message, **_request_of(refused))

    async def _prepare(self, name: Any, arguments: Any, meta: Any) -> _Call:
        tool = _check_tool_name(name)
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise RequestError("input.invalid", f"tool arguments must be a JSON object, not {_json_type(arguments)}")
        strict_json.check_value(arguments, path="$.arguments")
        size = len(json.dumps(arguments, ensure_ascii=False, separators=(",", ":")).encode())
        if size > self.config.max_argument_bytes:
            raise RequestError("input.too_large", f"tool arguments are {size} bytes, over this gateway's"
                                                  f" {self.config.max_argument_bytes} byte limit")
        described = self._tools.get(tool)
        if described is None:
            await self.list_tools()  # the upstream may have added it since the agent listed
            described = self._tools.get(tool)
        if described is None:
            raise GatewayError("mcp.unknown_tool", f"the upstream has no tool `{tool}`")
        if tool not in self._validators:
            self._validators[tool] = _validator(tool, described.inputSchema)
        _check_arguments(tool, self._validators[tool], arguments)
        action, resource = self.config.action_for(tool), self.config.resource_for(tool)
        request: dict[str, Any] = {
            "on_behalf_of": [p.model_dump(mode="json") for p in self.config.on_behalf_of],
            "action": action, "resource": resource, "params": arguments,
            "channel": self.config.channel, "justification": self.config.justification,
            "context": {"mcp": {"server": self.config.server, "tool": tool}},
            "executor": self.config.executor,
        }
        if self.config.agent is not None:
            request["principal"] = self.config.agent.model_dump(mode="json")
        request.update(self._from_meta(meta))
        return _Call(tool, arguments, Call(request, again=f"calling `{tool}`"))

    def _from_meta(self, meta: Any) -> dict[str, Any]:
        """`params._meta.interlock` of the call: only the fields `from_meta` lets a call set."""
        given = meta.get(META_KEY) if isinstance(meta, dict) else None
        if given is None:
            return {}
        if not isinstance(given, dict):
            raise RequestError("input.invalid", f"`_meta.{META_KEY}` must be a JSON object")
        for key in given:
            if key not in META_FIELDS:
                raise RequestError("input.unknown_field", f"unknown field `_meta.{META_KEY}.{key}`")
            if key not in self.config.from_meta:
                raise RequestError("input.invalid", f"this gateway takes `{key}` from its configuration only, not"
                                                    f" from `_meta.{META_KEY}`")
        return dict(given)  # validated with the rest of the request by the gate

    async def _decide(self, call: _Call) -> types.CallToolResult:
        consumed: Consumption | None = None
        if self.upstream.connected:  # decided and consumed at once (a new call in one transaction)
            ruling, consumed = await self.calls.take_async(call.gated)
        else:  # decided now, consumed only once the upstream is ready (see _run)
            ruling = await self.calls.decide_async(call.gated)
        if ruling.kind == "run":
            return await self._run(call, ruling, consumed)
        if ruling.kind == "held":
            return _pending(ruling.state, call.tool, call.gated.request["channel"])
        if ruling.kind == "denied":
            return _denied(ruling.state)
        return _ended(ruling.state, call.tool)

    async def _run(self, call: _Call, ruling: Ruling, consumed: Consumption | None) -> types.CallToolResult:
        """Consume the grant (once) unless it already is, forward the call (once), report the result. Never
        retried."""
        if consumed is None:
            try:
                # Before consuming: an upstream that is down costs no grant, and an approval survives for a retry.
                await self.upstream.ready()
            except GatewayError as down:
                raise GatewayError(down.code, f"{down.message}; not executed, nothing consumed",
                                   request_id=ruling.state.request_id) from None
            consumed = await self.calls.consume_async(call.gated, ruling)
        try:
            result = await self.upstream.call_tool(call.tool, call.arguments, self.config.call_timeout,
                                                   self._execution(call, consumed))
        except GatewayError as failed:
            await self._report(consumed, False, f"{failed.code}: {failed.message}")
            raise GatewayError(failed.code, f"{failed.message}. Its grant is used up: calling again is a new"
                               " request (the gateway never re-sends a call)", request_id=consumed.request_id,
                               grant=consumed.jti) from None
        except BaseException:
            # Cancelled by the agent (or the gateway stops) after the grant was consumed: record it, then go on.
            with anyio.CancelScope(shield=True):
                await self._report(consumed, False, "cancelled before the upstream answered: outcome unknown")
            raise
        self.reports.add(consumed, not result.isError, _summary(result) if result.isError else "")
        return _executed(result, consumed)

    async def _report(self, consumed: Consumption, succeeded: bool, detail: str) -> None:
        await anyio.to_thread.run_sync(self.calls.report, consumed, succeeded, detail)

    def _execution(self, call: _Call, consumed: Consumption) -> dict[str, Any] | None:
        """The forwarded call's `_meta`: a signed execution token bound to this tool and these arguments."""
        if self.execution_key is None or self.config.execution is None:
            return None
        spec = self.config.execution
        token = self.execution_key.issue(
            consumed, issuer=spec.issuer, audience=spec.audience, method=TOOL_CALL, target=call.tool,
            body=canonical_json(call.arguments), now=datetime.datetime.now(datetime.UTC), ttl=spec.ttl)
        return {EXECUTION_META: token}


def _request_of(error: InterlockError) -> dict[str, Any]:
    return {k: error.detail[k] for k in ("request_id", "grant") if k in error.detail}


def _validator(tool: str, schema: dict[str, Any]) -> Any:
    """A validator of the tool's own input schema; `mcp.upstream_error` when it is not a usable JSON Schema."""
    try:
        validator = validator_for(schema)
        validator.check_schema(schema)
        # An empty registry: `$ref`s resolve inside the schema only; nothing is ever fetched.
        return validator(schema, registry=Registry())
    except jsonschema.SchemaError:
        raise GatewayError("mcp.upstream_error", f"the input schema of `{tool}` is not a usable JSON Schema") from None


def _check_arguments(tool: str, validator: Any, arguments: dict[str, Any]) -> None:
    """Refuse arguments the tool's own input schema refuses: nobody approves a call that cannot run."""
    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    except Unresolvable:
        raise GatewayError("mcp.upstream_error", f"the input schema of `{tool}` is not a usable JSON Schema") from None
    if error is not None:
        where = "".join(f"[{json.dumps(p)}]" for p in error.absolute_path) or "the top level"
        raise RequestError("input.invalid", f"arguments do not match `{tool}`'s input schema at {where}:"
                                            f" {error.message[:300]}")


def _summary(result: types.CallToolResult) -> str:
    texts = [block.text for block in result.content if isinstance(block, types.TextContent)]
    return ("upstream tool error: " + " ".join(texts))[:4096]


# --- screening raw messages from the agent (strict JSON before the SDK sees them) -----------------------


@dataclass(frozen=True)
class Screened:
    """A raw message from the agent: the message to hand to the MCP session, or the reply that ends it here."""

    message: types.JSONRPCMessage | None = None
    reply: dict[str, Any] | None = None


def too_large_reply(max_bytes: int) -> dict[str, Any]:
    """The answer to a message over `max_bytes`, which was not read: it has no id to name (JSON-RPC: null)."""
    reply = _refuse(None, RequestError("input.too_large", f"a message over {max_bytes} bytes was not read")).reply
    assert reply is not None  # only a notification goes unanswered, and this is not known to be one
    return reply


def screen_message(raw: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Screened:
    """Parse one JSON-RPC message with Interlock's strict parser (INVARIANT 8: no parser differential).

    A tools/call that is refused gets a tool error naming the reason code; any other refused request gets a
    JSON-RPC error; a refused notification is dropped (there is no one to answer). Nothing refused reaches
    the gateway, so nothing refused is submitted or forwarded.
    """
    try:
        value = strict_json.parse(raw, max_bytes=max_bytes)
    except RequestError as refused:
        return _refuse(_salvage(raw), refused, PARSE_ERROR if refused.code == "input.invalid" else INVALID_REQUEST)
    if not isinstance(value, dict):
        return _refuse(None, RequestError("input.invalid", "a JSON-RPC message is a JSON object"), INVALID_REQUEST)
    if value.get("method") == "tools/call" and "id" in value:
        params = value.get("params")
        arguments = params.get("arguments") if isinstance(params, dict) else None
        if not isinstance(params, dict):
            return _refuse(value, RequestError("input.invalid", "tools/call needs `params`, a JSON object"))
        if arguments is not None and not isinstance(arguments, dict):
            return _refuse(value, RequestError(
                "input.invalid", f"tool arguments must be a JSON object, not {_json_type(arguments)}"))
        try:
            _check_tool_name(params.get("name"))
        except RequestError as refused:
            return _refuse(value, refused)
    try:
        return Screened(message=types.JSONRPCMessage.model_validate(value))
    except ValidationError:
        return _refuse(value, RequestError("input.invalid", "not a JSON-RPC 2.0 message MCP knows"), INVALID_REQUEST)


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), "null")


def _salvage(raw: bytes) -> dict[str, Any] | None:
    """The message as a lenient parser reads it, only to find whom to answer (never to act on)."""
    try:
        # Numbers are not converted (an integer of 5,000 digits would stop int()); an id is a short one.
        value = json.loads(raw, parse_int=lambda text: int(text) if len(text) <= 20 else None)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _refuse(message: dict[str, Any] | None, refused: RequestError, rpc_code: int = INVALID_REQUEST) -> Screened:
    request_id = message.get("id") if message else None
    if message is not None and "method" in message and "id" not in message:
        _log.warning("dropped a notification from the agent: %s: %s", refused.code, refused.message)
        return Screened()
    if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
        request_id = None  # JSON-RPC: an id that cannot be read is answered as null
    if message is not None and message.get("method") == "tools/call" and request_id is not None:
        result = refusal(refused.code, refused.message)
        return Screened(reply={"jsonrpc": "2.0", "id": request_id,
                               "result": result.model_dump(by_alias=True, mode="json", exclude_none=True)})
    return Screened(reply={"jsonrpc": "2.0", "id": request_id, "error": {
        "code": rpc_code, "message": f"interlock: {refused.code}: {refused.message}", "data": {"code": refused.code}}})

