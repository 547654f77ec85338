"""The MCP gateway's transports: the upstream connection (stdio or streamable HTTP), and the agent side (stdio)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, BinaryIO

import anyio
from anyio.abc import TaskStatus
from mcp import types
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError
from pydantic import ValidationError

from interlock.enforce import stdio_lines
from interlock.enforce.mcp_agent import AgentSession
from interlock.enforce.mcp_client import UpstreamSession
from interlock.enforce.mcp_gateway import MAX_LISTED_PAGES, MAX_MESSAGE_BYTES, GatewayConfig, GatewayError, McpGateway
from interlock.version import installed_version

__all__ = ["ConnectedUpstream", "http_upstream", "serve_stdio", "stdio_upstream"]

_log = logging.getLogger(__name__)
OpenTransport = Callable[[], AbstractAsyncContextManager[Any]]
# A line from the agent longer than this is not kept in memory at all (answered with a null-id error).
MAX_LINE_BYTES = 4 * MAX_MESSAGE_BYTES


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
        self._session: UpstreamSession | None = None
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
            # `stop` is set as soon as the upstream goes away (a stdio server exited).
            session = UpstreamSession(streams[0], streams[1], stop, client_version=installed_version())
            reader = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(reader.cancel_scope.cancel)
            await reader.start(session.run)
            with anyio.fail_after(self._timeout):
                self.initialized = await session.initialize()
            self._error = ""
            self._session = session
            attempt.set()
            await stop.wait()

    @property
    def connected(self) -> bool:
        """Whether a session is open now (a call would be sent at once, with no connecting first)."""
        return self._session is not None and not self._stop.is_set()

    async def ready(self) -> None:
        """Return once a session is open, connecting if needed; `mcp.upstream_unavailable` otherwise."""
        await self._current()

    async def _current(self) -> UpstreamSession:
        if self.connected:
            assert self._session is not None  # what `connected` checked
            return self._session
        async with self._connecting:
            if not self.connected:
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

    def drop(self, session: UpstreamSession) -> None:
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
        request = types.ClientRequest(types.CallToolRequest(params=types.CallToolRequestParams.model_validate(
            {"name": name, "arguments": arguments, **({"_meta": meta} if meta else {})})))
        try:
            # An upstream that goes away (a stdio server that exited) fails the wait at once (UpstreamSession).
            with anyio.fail_after(timeout):
                return await session.send_request(request, types.CallToolResult)
        except TimeoutError:
            # Abandoned: the session is ended (a stdio upstream is stopped), so the call cannot finish unseen later.
            self.drop(session)
            raise GatewayError("mcp.upstream_timeout", f"the upstream did not answer `{name}` within {timeout:g} s"
                               " and was stopped: it may or may not have acted") from None
        except Exception as exc:  # noqa: BLE001 - every failure becomes the agent's error, named
            raise self._failure(session, exc, f"calling `{name}`") from None

    def _failure(self, session: UpstreamSession, exc: Exception, doing: str) -> GatewayError:
        if isinstance(exc, McpError) and exc.error.code != types.CONNECTION_CLOSED:
            return GatewayError("mcp.upstream_error", f"the upstream answered {doing} with an error:"
                                                      f" {exc.error.message[:500]}")
        if isinstance(exc, ValidationError):
            return GatewayError("mcp.upstream_error", f"the upstream's answer to {doing} is not MCP")
        self.drop(session)
        return GatewayError("mcp.upstream_failed", f"the connection to the upstream was lost while {doing}: it may"
                                                   f" or may not have acted ({_describe(exc)})")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"[:300]


# --- the agent side ------------------------------------------------------------------------------------------


async def serve_stdio(gateway: McpGateway, config: GatewayConfig, upstream: ConnectedUpstream,
                      stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
    """Serve the gateway to one agent over stdio until the agent closes stdin; the upstream is closed after."""
    async with anyio.create_task_group() as group:
        await group.start(upstream.run)
        try:
            await upstream.ready()  # an upstream that cannot start is a startup error, not a silent empty tool list
            async with stdio_lines.stdio(stdin or sys.stdin.buffer, stdout or sys.stdout.buffer,
                                         MAX_LINE_BYTES) as (lines, output):
                agent = AgentSession(gateway, config, upstream.initialized, output.write, max_line=MAX_LINE_BYTES)
                await agent.serve(lines)
        finally:
            with anyio.CancelScope(shield=True):
                await gateway.reports.drain()  # every result still on its way is recorded before exit
            await upstream.close()
