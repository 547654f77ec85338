"""An MCP server (streamable HTTP) that runs a tool only for calls the Interlock MCP gateway let through.

Every `tools/call` must carry, in `params._meta["interlock/execution"]`, an execution token signed by the
gateway's key (its JWK Set, from `interlock mcp-gateway --config gateway.yaml --print-jwks`), for this server
(`aud`), fresh, never seen before, and bound to exactly this tool and these arguments. An agent that reaches
this server directly — or replays a call the gateway forwarded — gets a tool error and nothing runs.

    python bank_mcp.py --port 9100 --jwks gateway-jwks.json --audience bank [--record calls.jsonl]

Written on the SDK's low-level server, whose handler sees the call's raw arguments: the token binds those.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.applications import Starlette
from starlette.routing import Mount

from interlock.core.errors import ExecutionError
from interlock.enforce.execution import ExecutionVerifier, verify_tool_call

PAY_SCHEMA = {"type": "object", "required": ["amount", "recipient"], "additionalProperties": False,
              "properties": {"amount": {"type": "integer", "minimum": 1}, "recipient": {"type": "string"}}}


def create_server(verifier: ExecutionVerifier, record: Path | None = None) -> Server[Any, Any]:
    server: Server[Any, Any] = Server("bank")

    def log(entry: dict[str, Any]) -> None:
        if record is not None:
            with record.open("a") as handle:
                handle.write(json.dumps(entry) + "\n")

    @server.list_tools()
    async def list_tools() -> list[types.Tool]:
        return [types.Tool(name="pay", description="Pay `amount` to `recipient`.", inputSchema=PAY_SCHEMA)]

    @server.call_tool(validate_input=False)
    async def call_tool(name: str, arguments: dict[str, Any]) -> list[types.TextContent]:
        meta = server.request_context.meta
        given = meta.model_extra if meta is not None else None
        try:
            execution = verify_tool_call(verifier, given, name, arguments)
        except ExecutionError as refused:
            log({"refused": refused.code, "tool": name, "arguments": arguments})
            raise ValueError(f"{refused.code}: {refused.message}") from None  # the SDK makes it a tool error
        log({"executed": name, "arguments": arguments, "grant": execution.grant,
             "execution": given.get("interlock/execution") if given else None})
        return [types.TextContent(type="text", text=f"paid {arguments['amount']} to {arguments['recipient']}")]

    return server


def create_app(verifier: ExecutionVerifier, record: Path | None = None) -> Starlette:
    sessions = StreamableHTTPSessionManager(app=create_server(verifier, record), stateless=True)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with sessions.run():
            yield

    return Starlette(routes=[Mount("/mcp", app=sessions.handle_request)], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--jwks", type=Path, required=True, help="the gateway's JWK Set")
    parser.add_argument("--audience", default="bank")
    parser.add_argument("--record", type=Path)
    args = parser.parse_args()
    verifier = ExecutionVerifier(json.loads(args.jwks.read_text()), audience=args.audience)
    uvicorn.run(create_app(verifier, args.record), host="127.0.0.1", port=args.port, access_log=False,
                log_level="warning")


if __name__ == "__main__":
    main()
