"""The upstreams of bench/enforcement.py, as small as they can be, so the rows measure the enforcement point.

`python -m bench.enforcement_upstreams http PORT`: an HTTP API (Starlette on uvicorn) whose routes answer
a fixed JSON document at once. `python -m bench.enforcement_upstreams mcp`: an MCP server (FastMCP, stdio)
with one tool, `lookup`, that answers at once.
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


if __name__ == "__main__":
    if sys.argv[1] == "http":
        http(int(sys.argv[2]))
    else:
        mcp()
