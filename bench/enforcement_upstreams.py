"""The upstreams of bench/enforcement.py, as small as they can be, so the rows measure the enforcement point.

`python -m bench.enforcement_upstreams http PORT`: an HTTP API (Starlette on uvicorn) whose routes answer
a fixed JSON document at once. `python -m bench.enforcement_upstreams mcp`: an MCP server (FastMCP, stdio)
with one tool, `lookup`, that answers at once. `python -m bench.enforcement_upstreams mcp-passthrough`: an MCP
server that forwards every call to that one through the SDK's server and client sessions and gates nothing —
what those sessions cost by themselves (the gateway speaks MCP with lean sessions of its own).
"""

from __future__ import annotations

import sys


def http(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def answer(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"ok": True, "account": request.path_params.get("account")})

    app = Starlette(routes=[Route("/accounts/{account}/balance", answer, methods=["GET"]),
                            Route("/health", answer, methods=["GET"])])
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")


def mcp() -> None:
    from mcp.server.fastmcp import FastMCP

    server = FastMCP("bench", log_level="ERROR")

    @server.tool()
    def lookup(account: str) -> str:
        """Look an account up (harmless)."""
        return f"balance of {account}: 1250"

    server.run("stdio")


def mcp_passthrough() -> None:
    import anyio
    from mcp import ClientSession, types
    from mcp.client.stdio import StdioServerParameters, stdio_client
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    async def serve() -> None:
        upstream = StdioServerParameters(command=sys.executable, args=["-m", "bench.enforcement_upstreams", "mcp"])
        async with stdio_client(upstream) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            server: Server[object, object] = Server("bench-passthrough")

            async def list_tools(_: types.ListToolsRequest) -> types.ServerResult:
                return types.ServerResult(await session.list_tools())

            async def call_tool(request: types.CallToolRequest) -> types.ServerResult:
                return types.ServerResult(await session.call_tool(request.params.name, request.params.arguments))

            server.request_handlers[types.ListToolsRequest] = list_tools
            server.request_handlers[types.CallToolRequest] = call_tool
            async with stdio_server() as (agent_read, agent_write):
                await server.run(agent_read, agent_write, server.create_initialization_options())

    anyio.run(serve)


if __name__ == "__main__":
    {"http": lambda: http(int(sys.argv[2])), "mcp": mcp, "mcp-passthrough": mcp_passthrough}[sys.argv[1]]()
