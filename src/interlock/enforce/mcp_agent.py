"""The agent's MCP session with the gateway: the server side of MCP, for the few methods a gateway offers.

`initialize` and `ping`; `tools/list` (the upstream's tools, see `McpGateway.list_tools`); `tools/call` (gated,
see `McpGateway.call_tool`); `notifications/cancelled` for a call still running. Every other method is
answered "method not found". Each message was parsed and screened by Interlock's strict parser first
(`screen_message`); parameters are then validated with the SDK's own types, so an agent is held to MCP as the
SDK reads it. The SDK's server session is not used: it cost about 0.4 ms per call on this project's machine.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from mcp import types
from mcp.shared.version import SUPPORTED_PROTOCOL_VERSIONS
from pydantic import BaseModel, ValidationError

from interlock.enforce.mcp_gateway import GatewayConfig, GatewayError, McpGateway, screen_message, too_large_reply
from interlock.version import installed_version

__all__ = ["AgentSession"]

_log = logging.getLogger(__name__)
Send = Callable[[bytes], Awaitable[None]]


class _Refused(Exception):
    """A JSON-RPC error answer to a request."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.error = types.ErrorData(code=code, message=message)


class AgentSession:
    """Serve one agent: answer each request in a task of its own, until the agent's input ends."""

    def __init__(self, gateway: McpGateway, config: GatewayConfig, upstream: types.InitializeResult | None,
                 send: Send, *, max_line: int) -> None:
        self.gateway = gateway
        self._send_line = send
        self._max_line = max_line
        self._initialized = False
        self._running: dict[types.RequestId, anyio.CancelScope] = {}
        self._info = types.InitializeResult(
            protocolVersion=types.LATEST_PROTOCOL_VERSION,
            capabilities=types.ServerCapabilities(tools=types.ToolsCapability(listChanged=False)),
            serverInfo=types.Implementation(name=f"interlock-gateway:{config.server}", version=installed_version()),
            instructions=upstream.instructions if upstream else None)

    async def serve(self, lines: AsyncIterator[bytes | None]) -> None:
        """Answer every line (None: one over the limit, unread); once the input ends, wait for running calls."""
        async with anyio.create_task_group() as calls:
            async for line in lines:
                if line is None:
                    await self._send(too_large_reply(self._max_line))
                    continue
                screened = screen_message(line)
                if screened.reply is not None:
                    await self._send(screened.reply)
                if screened.message is None:
                    continue
                message = screened.message.root
                if isinstance(message, types.JSONRPCRequest):
                    scope = self._running[message.id] = anyio.CancelScope()
                    calls.start_soon(self._answer, message, scope)
                elif isinstance(message, types.JSONRPCNotification):
                    self._notified(message)
                # Answers from the agent: the gateway asks it nothing.

    def _notified(self, notification: types.JSONRPCNotification) -> None:
        if notification.method == "notifications/cancelled":
            request_id = (notification.params or {}).get("requestId")
            scope = self._running.get(request_id) if isinstance(request_id, str | int) else None
            if scope is not None:
                scope.cancel()  # no answer follows (MCP: a cancelled request is not answered)

    async def _answer(self, request: types.JSONRPCRequest, scope: anyio.CancelScope) -> None:
        try:
            with scope:
                try:
                    reply: dict[str, Any] = {"result": _dumped(await self._result(request.method, request.params))}
                    line = _encoded(request.id, reply)
                except _Refused as refused:
                    line = _encoded(request.id, {"error": refused.error.model_dump(mode="json", exclude_none=True)})
                except Exception:  # noqa: BLE001 - a bug, or an answer that is not JSON (NaN): told, and serving goes on
                    _log.exception("could not answer %s", request.method)
                    line = _encoded(request.id, {"error": {"code": types.INTERNAL_ERROR, "message":
                                                           "interlock: internal error (the gateway's log says more)"}})
                await self._send_line(line)
        finally:
            if self._running.get(request.id) is scope:
                del self._running[request.id]

    async def _result(self, method: str, params: dict[str, Any] | None) -> BaseModel:
        if method == "initialize":
            asked = _params(types.InitializeRequestParams, params)
            self._initialized = True
            version = asked.protocolVersion  # the agent's, when the SDK speaks it; else the latest
            agreed = version if version in SUPPORTED_PROTOCOL_VERSIONS else types.LATEST_PROTOCOL_VERSION
            return self._info.model_copy(update={"protocolVersion": agreed})
        if method == "ping":
            return types.EmptyResult()
        if not self._initialized:
            raise _Refused(types.INVALID_REQUEST, "interlock: the session is not initialized: send `initialize` first")
        if method == "tools/list":
            try:
                return types.ListToolsResult(tools=await self.gateway.list_tools())
            except GatewayError as error:
                raise _Refused(types.INTERNAL_ERROR, f"interlock: {error.code}: {error.message}") from None
        if method == "tools/call":
            call = _params(types.CallToolRequestParams, params)
            meta = call.meta.model_extra if call.meta is not None else None
            return await self.gateway.call_tool(call.name, call.arguments, meta)
        raise _Refused(types.METHOD_NOT_FOUND, f"interlock: this gateway offers tools only, not `{method}`")

    async def _send(self, message: dict[str, Any]) -> None:
        await self._send_line(_json(message))


def _params(model: type[Any], params: dict[str, Any] | None) -> Any:
    try:
        return model.model_validate(params or {})
    except ValidationError as invalid:
        raise _Refused(types.INVALID_PARAMS, f"interlock: invalid params: {str(invalid)[:500]}") from None


def _encoded(request_id: types.RequestId, reply: dict[str, Any]) -> bytes:
    return _json({"jsonrpc": "2.0", "id": request_id, **reply})


def _json(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _dumped(result: BaseModel) -> dict[str, Any]:
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)
