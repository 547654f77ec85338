"""The upstream MCP server played in process (the outside world), for the gateway tests that arrange orderings
a process test cannot: `StandIn` lists `pay`, records calls, and can be down, fail, or hold a call."""

from __future__ import annotations

import datetime
from typing import Any

import anyio
from mcp import types

from interlock.enforce.mcp_gateway import GatewayError

BIG = {"amount": 500, "recipient": "DE02100100100006820101"}
SCHEMA = {"type": "object", "properties": {"amount": {"type": "integer"}, "recipient": {"type": "string"}},
          "required": ["amount", "recipient"]}
CONFIG = """
server: bank
agent: {id: "agent:assistant", kind: agent}
on_behalf_of: [{id: "user:ceo", kind: human}]
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime.datetime(2026, 11, 25, 9, 0, tzinfo=datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now


class StandIn:
    """The upstream MCP server: lists `pay`, records calls, and can be down, fail, or hold a call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.down = False
        self.hold: anyio.Event | None = None
        self.entered = anyio.Event()
        self.error_result = False

    @property
    def connected(self) -> bool:
        return not self.down

    async def ready(self) -> None:
        if self.down:
            raise GatewayError("mcp.upstream_unavailable", "the upstream MCP server cannot be reached")

    async def list_tools(self) -> list[types.Tool]:
        return [types.Tool(name="pay", inputSchema=SCHEMA)]

    async def call_tool(self, name: str, arguments: dict[str, Any], timeout: float,
                        meta: dict[str, Any] | None = None) -> types.CallToolResult:
        self.calls.append(arguments)
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        return types.CallToolResult(content=[types.TextContent(type="text", text=f"{name} done")],
                                    isError=self.error_result, _meta={"upstream": "kept"})
