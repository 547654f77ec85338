"""The gateway's MCP client session to its upstream, over the SDK's transport streams (stdio or streamable HTTP).

It does what the gateway asks of an upstream — initialize, then one request at a time per caller, answers
matched by id — and what a client owes a server: `ping` answered, other server requests refused. The SDK's
transports, message types and protocol versions are used as they are; its `ClientSession` is not, because on
this project's machine it added about 0.6 ms to every forwarded call (a receive task, a response stream per
request, a second validation of each answer), close to a third of the gateway's 2 ms budget (issue 5).
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import types
from mcp.shared.exceptions import McpError
from mcp.shared.message import SessionMessage
from mcp.shared.version import SUPPORTED_PROTOCOL_VERSIONS
from pydantic import BaseModel

__all__ = ["UpstreamSession"]

_log = logging.getLogger(__name__)
Result = TypeVar("Result", bound=BaseModel)
Answer = types.JSONRPCResponse | types.JSONRPCError
CLOSED = types.ErrorData(code=types.CONNECTION_CLOSED, message="the upstream closed the connection")


class _Waiting:
    """One request's answer, once it came (None: the upstream went away first)."""

    def __init__(self) -> None:
        self.came = anyio.Event()
        self.answer: Answer | None = None

    def settle(self, answer: Answer | None) -> None:
        self.answer = answer
        self.came.set()


class UpstreamSession:
    """One MCP session with the upstream over a transport's streams; `run` reads, `send_request` asks.

    `gone` is set once the transport's read stream ends (a stdio server exited, the HTTP session closed):
    every request still waiting then fails with `CONNECTION_CLOSED`, and so does every later one.
    """

    def __init__(self, read: MemoryObjectReceiveStream[SessionMessage | Exception],
                 write: MemoryObjectSendStream[SessionMessage], gone: anyio.Event, *, client_version: str) -> None:
        self._read, self._write, self._gone = read, write, gone
        self._client_version = client_version
        self._waiting: dict[types.RequestId, _Waiting] = {}
        self._last_id = 0

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Read everything the upstream sends until it goes away."""
        task_status.started()
        try:
            async for item in self._read:
                if isinstance(item, Exception):  # a line the transport could not read as JSON-RPC
                    _log.warning("the upstream sent something that is not JSON-RPC: %s", str(item)[:300])
                    continue
                message = item.message.root
                if isinstance(message, types.JSONRPCResponse | types.JSONRPCError):
                    waiting = self._waiting.pop(message.id, None)
                    if waiting is not None:
                        waiting.settle(message)
                elif isinstance(message, types.JSONRPCRequest):
                    await self._answer(message)
                # Notifications (progress, logging, list changes) ask nothing of the gateway.
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
            pass
        finally:
            self._gone.set()
            for waiting in self._waiting.values():
                waiting.settle(None)
            self._waiting.clear()

    async def _answer(self, request: types.JSONRPCRequest) -> None:
        """A request from the upstream: `ping` is answered; the gateway offers no sampling, roots or elicitation."""
        answer: types.JSONRPCResponse | types.JSONRPCError
        if request.method == "ping":
            answer = types.JSONRPCResponse(jsonrpc="2.0", id=request.id, result={})
        else:
            answer = types.JSONRPCError(jsonrpc="2.0", id=request.id, error=types.ErrorData(
                code=types.METHOD_NOT_FOUND, message=f"the Interlock gateway does not offer `{request.method}`"))
        await self._write.send(SessionMessage(types.JSONRPCMessage(answer)))

    async def initialize(self) -> types.InitializeResult:
        """The MCP handshake: `initialize`, a protocol version both speak, then `notifications/initialized`."""
        result = await self.send_request(types.ClientRequest(types.InitializeRequest(
            params=types.InitializeRequestParams(
                protocolVersion=types.LATEST_PROTOCOL_VERSION, capabilities=types.ClientCapabilities(),
                clientInfo=types.Implementation(name="interlock-gateway", version=self._client_version)))),
            types.InitializeResult)
        if str(result.protocolVersion) not in SUPPORTED_PROTOCOL_VERSIONS:
            raise McpError(types.ErrorData(code=types.INVALID_REQUEST, message="the upstream speaks MCP"
                                           f" {result.protocolVersion}, which this gateway does not"))
        notification = types.ClientNotification(types.InitializedNotification())
        await self._write.send(SessionMessage(types.JSONRPCMessage(types.JSONRPCNotification(
            jsonrpc="2.0", **_dumped(notification)))))
        return result

    async def send_request(self, request: types.ClientRequest, result_type: type[Result]) -> Result:
        """Send `request` and wait for its answer: the result as `result_type` (a pydantic `ValidationError` if it
        is not one), or `McpError` for an error answer or an upstream that went away."""
        if self._gone.is_set():
            raise McpError(CLOSED)
        self._last_id += 1
        request_id = self._last_id
        waiting = self._waiting[request_id] = _Waiting()
        try:
            await self._write.send(SessionMessage(types.JSONRPCMessage(types.JSONRPCRequest(
                jsonrpc="2.0", id=request_id, **_dumped(request)))))
            await waiting.came.wait()
        finally:
            self._waiting.pop(request_id, None)
        if waiting.answer is None:
            raise McpError(CLOSED)
        if isinstance(waiting.answer, types.JSONRPCError):
            raise McpError(waiting.answer.error)
        return result_type.model_validate(waiting.answer.result)


def _dumped(message: types.ClientRequest | types.ClientNotification) -> dict[str, Any]:
    dumped: dict[str, Any] = message.model_dump(by_alias=True, mode="json", exclude_none=True)
    return dumped
