"""The MCP gateway's transports: the upstream connection (stdio or streamable HTTP), and the agent side (stdio)."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, BinaryIO

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import McpError
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from interlock.enforce.mcp_gateway import (
    MAX_LISTED_PAGES,
    MAX_MESSAGE_BYTES,
    GatewayConfig,
    GatewayError,
    McpGateway,
    screen_message,
)

__all__ = ["ConnectedUpstream", "build_server", "http_upstream", "serve_stdio", "stdio_upstream", "strict_stdio"]

_log = logging.getLogger(__name__)
OpenTransport = Callable[[], AbstractAsyncContextManager[Any]]
# A line from the agent longer than this is not read into memory at all (answered with a null-id error).
MAX_LINE_BYTES = 4 * MAX_MESSAGE_BYTES
_SKIP_CHUNK = 64 * 1024


def stdio_upstream(command: list[str], env: dict[str, str] | None = None) -> OpenTransport:
    """An upstream started as a child process speaking MCP on its stdin/stdout (its stderr is the gateway's)."""
    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    return lambda: stdio_client(params)


def http_upstream(url: str) -> OpenTransport:
    """An upstream reached over MCP's streamable HTTP transport."""
    return lambda: streamable_http_client(url)


class ConnectedUpstream:
    """One MCP client session to the upstream, opened on demand and opened again after it was lost.

    `run` owns the connection (the child process, the HTTP session) for the gateway's lifetime, in a task of
    its own, since anyio scopes must close in the task that opened them. Calls use the session from any task.
    """

    def __init__(self, open_transport: OpenTransport, *, connect_timeout: float, describe: str) -> None:
        self._open = open_transport
        self._timeout = connect_timeout
        self.describe = describe
        self._session: ClientSession | None = None
        self._stop = anyio.Event()
        self._want = anyio.Event()
        self._attempt = anyio.Event()
        self._connecting = anyio.Lock()
        self._closing = False
        self._error = ""
        self.initialized: types.InitializeResult | None = None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Open a connection whenever one is wanted, until `close`."""
        task_status.started()
        while True:
            await self._want.wait()
            if self._closing:
                return
            self._want = anyio.Event()
            attempt, stop = self._attempt, anyio.Event()
            self._stop = stop
            try:
                await self._connection(attempt, stop)
            except Exception as exc:  # noqa: BLE001 - any failure to start or talk is "unavailable", told to callers
                self._error = _describe(exc)
                _log.warning("upstream %s: %s", self.describe, self._error)
            finally:
                self._session = None
                attempt.set()

    async def _connection(self, attempt: anyio.Event, stop: anyio.Event) -> None:
        async with AsyncExitStack() as stack:
            streams = await stack.enter_async_context(self._open())
            read, write = streams[0], streams[1]
            # Relay what the upstream sends, to see at once when it went away (a stdio server exited).
            relay_in, relay_out = anyio.create_memory_object_stream[SessionMessage | Exception](0)
            relay = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(relay.cancel_scope.cancel)
            relay.start_soon(_relay, read, relay_in, stop)
            session = await stack.enter_async_context(ClientSession(relay_out, write))
            with anyio.fail_after(self._timeout):
                self.initialized = await session.initialize()
            self._error = ""
            self._session = session
            attempt.set()
            await stop.wait()

    async def ready(self) -> None:
        """Return once a session is open, connecting if needed; `mcp.upstream_unavailable` otherwise."""
        await self._current()

    async def _current(self) -> ClientSession:
        session = self._session
        if session is not None and not self._stop.is_set():
            return session
        async with self._connecting:
            if self._session is None or self._stop.is_set():
                if self._closing:
                    raise GatewayError("mcp.upstream_unavailable", "the gateway is stopping")
                self._attempt = attempt = anyio.Event()
                self._want.set()
                with anyio.move_on_after(self._timeout + 5):
                    await attempt.wait()
            session = self._session
            if session is None or self._stop.is_set():
                raise GatewayError("mcp.upstream_unavailable", f"the upstream MCP server ({self.describe}) cannot be"
                                   f" reached: {self._error or 'no answer in time'}")
            return session

    def drop(self, session: ClientSession) -> None:
        """End this session (a stdio upstream is stopped); the next call opens a new one."""
        if self._session is session:
            self._stop.set()

    async def close(self) -> None:
        """End the connection and `run`: a stdio upstream gets its stdin closed, then SIGTERM, then SIGKILL."""
        self._closing = True
        self._stop.set()
        self._want.set()

    async def list_tools(self) -> list[types.Tool]:
        session = await self._current()
        tools: list[types.Tool] = []
        cursor: str | None = None
        try:
            with anyio.fail_after(self._timeout):
                for _ in range(MAX_LISTED_PAGES):
                    page = await session.send_request(
                        types.ClientRequest(types.ListToolsRequest(
                            params=types.PaginatedRequestParams(cursor=cursor) if cursor else None)),
                        types.ListToolsResult)
                    tools.extend(page.tools)
                    cursor = page.nextCursor
                    if not cursor:
                        break
        except TimeoutError:
            self.drop(session)
            raise GatewayError("mcp.upstream_timeout", f"the upstream did not list its tools within"
                                                       f" {self._timeout:g} s") from None
        except Exception as exc:  # noqa: BLE001 - told to the agent as an error, never as an empty list
            raise self._failure(session, exc, "listing tools") from None
        return tools

    async def call_tool(self, name: str, arguments: dict[str, Any], timeout: float,
                        meta: dict[str, Any] | None = None) -> types.CallToolResult:
        """Send one tools/call and wait at most `timeout`; never re-sent. The result is passed on unvalidated."""
        session = await self._current()
        stop = self._stop
        request = types.ClientRequest(types.CallToolRequest(params=types.CallToolRequestParams.model_validate(
            {"name": name, "arguments": arguments, **({"_meta": meta} if meta else {})})))
        result: types.CallToolResult | None = None
        try:
            with anyio.fail_after(timeout):
                async with anyio.create_task_group() as call:
                    # The upstream going away (a stdio server that exited) ends the wait at once.
                    call.start_soon(_cancel_on, stop, call.cancel_scope)
                    result = await session.send_request(request, types.CallToolResult)
                    call.cancel_scope.cancel()
        except TimeoutError:
            # Abandoned: the session is ended (a stdio upstream is stopped), so the call cannot finish unseen later.
            self.drop(session)
            raise GatewayError("mcp.upstream_timeout", f"the upstream did not answer `{name}` within {timeout:g} s"
                               " and was stopped: it may or may not have acted") from None
        except Exception as exc:  # noqa: BLE001 - every failure becomes the agent's error, named
            raise self._failure(session, _single(exc), f"calling `{name}`") from None
        if result is None:
            raise self._failure(session, ConnectionError("the upstream went away"), f"calling `{name}`")
        return result

    def _failure(self, session: ClientSession, exc: Exception, doing: str) -> GatewayError:
        if isinstance(exc, McpError) and exc.error.code != types.CONNECTION_CLOSED:
            return GatewayError("mcp.upstream_error", f"the upstream answered {doing} with an error:"
                                                      f" {exc.error.message[:500]}")
        if isinstance(exc, ValidationError):
            return GatewayError("mcp.upstream_error", f"the upstream's answer to {doing} is not MCP")
        self.drop(session)
        return GatewayError("mcp.upstream_failed", f"the connection to the upstream was lost while {doing}: it may"
                                                   f" or may not have acted ({_describe(exc)})")


async def _relay(source: MemoryObjectReceiveStream[Any], sink: MemoryObjectSendStream[Any], stop: anyio.Event) -> None:
    try:
        async with sink:
            async for item in source:
                await sink.send(item)
    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
        pass
    finally:
        stop.set()


async def _cancel_on(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _single(exc: Exception) -> Exception:
    """The one error inside task-group wrappers (a call has a single failure)."""
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _version() -> str:
    try:
        return importlib.metadata.version("interlock")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"[:300]


# --- the agent side ------------------------------------------------------------------------------------------


def build_server(gateway: McpGateway, config: GatewayConfig, upstream: types.InitializeResult | None) -> Server[Any]:
    """An MCP server that offers the upstream's tools and hands every call to `gateway`."""
    server: Server[Any] = Server(f"interlock-gateway:{config.server}", version=_version(),
                                 instructions=upstream.instructions if upstream else None)

    async def list_tools(_: types.ListToolsRequest) -> types.ServerResult:
        try:
            return types.ServerResult(types.ListToolsResult(tools=await gateway.list_tools()))
        except GatewayError as error:
            raise McpError(types.ErrorData(code=types.INTERNAL_ERROR,
                                           message=f"interlock: {error.code}: {error.message}")) from None

    async def call_tool(request: types.CallToolRequest) -> types.ServerResult:
        meta = request.params.meta.model_extra if request.params.meta is not None else None
        return types.ServerResult(await gateway.call_tool(request.params.name, request.params.arguments, meta))

    # Registered as raw handlers: the SDK's own call_tool wrapper would re-list tools and re-validate output.
    server.request_handlers[types.ListToolsRequest] = list_tools
    server.request_handlers[types.CallToolRequest] = call_tool
    return server


Streams = tuple[MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage]]


@asynccontextmanager
async def strict_stdio(
    stdin: BinaryIO, stdout: BinaryIO, *, max_bytes: int = MAX_MESSAGE_BYTES
) -> AsyncIterator[Streams]:
    """MCP's stdio transport, with every line from the agent bounded and parsed by Interlock's strict parser.

    A refused line is answered here (see `screen_message`) and never reaches the MCP session.
    """
    writing = anyio.Lock()
    incoming_in, incoming_out = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    outgoing_in, outgoing_out = anyio.create_memory_object_stream[SessionMessage](0)

    async def emit(line: bytes) -> None:
        async with writing:
            await anyio.to_thread.run_sync(_write_line, stdout, line)

    async def read() -> None:
        async with incoming_in:
            while line := await anyio.to_thread.run_sync(stdin.readline, MAX_LINE_BYTES + 1):
                if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                    rest = line
                    while rest and not rest.endswith(b"\n"):  # skip to the end of the line, unread
                        rest = await anyio.to_thread.run_sync(stdin.readline, _SKIP_CHUNK)
                    await emit(json.dumps({"jsonrpc": "2.0", "id": None, "error": {
                        "code": -32600, "message": f"interlock: input.too_large: a message over {MAX_LINE_BYTES}"
                        " bytes was not read", "data": {"code": "input.too_large"}}}).encode())
                    continue
                if not line.strip():
                    continue
                screened = screen_message(line, max_bytes=max_bytes)
                if screened.message is not None:
                    await incoming_in.send(SessionMessage(screened.message))
                elif screened.reply is not None:
                    await emit(json.dumps(screened.reply, ensure_ascii=False, allow_nan=False).encode())

    async def write() -> None:
        async with outgoing_out:
            async for message in outgoing_out:
                await emit(message.message.model_dump_json(by_alias=True, exclude_none=True).encode())

    async with anyio.create_task_group() as group:
        group.start_soon(read)
        group.start_soon(write)
        try:
            yield incoming_out, outgoing_in
        finally:
            group.cancel_scope.cancel()


def _write_line(stdout: BinaryIO, line: bytes) -> None:
    stdout.write(line + b"\n")
    stdout.flush()


async def serve_stdio(gateway: McpGateway, config: GatewayConfig, upstream: ConnectedUpstream,
                      stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
    """Serve the gateway to one agent over stdio until the agent closes stdin; the upstream is closed after."""
    async with anyio.create_task_group() as group:
        await group.start(upstream.run)
        try:
            await upstream.ready()  # an upstream that cannot start is a startup error, not a silent empty tool list
            server = build_server(gateway, config, upstream.initialized)
            async with strict_stdio(stdin or sys.stdin.buffer, stdout or sys.stdout.buffer) as (read, write):
                await server.run(read, write, server.create_initialization_options())
        finally:
            with anyio.CancelScope(shield=True):
                await gateway.reports.drain()  # every result still on its way is recorded before exit
            await upstream.close()
