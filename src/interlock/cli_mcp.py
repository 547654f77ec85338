"""`interlock mcp-gateway`: serve an upstream MCP server's tools to an agent, every tools/call gated."""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from interlock.cli_gates import ExecutorTokenOpt, HomeOpt, PolicyOpt, PrintJwksOpt, ServerOpt, TokenOpt, gates
from interlock.core.errors import InterlockError, RequestError

ExitCode = Callable[[InterlockError], int]
EXIT_UNAVAILABLE = 4


def register(app: typer.Typer, exit_code_for: ExitCode) -> None:
    """Add `mcp-gateway` to `app`. Its stdout is the MCP channel: refusals go to stderr only."""

    def fail(error: InterlockError) -> NoReturn:
        typer.echo(f"interlock: {error.code}: {error.message}", err=True)
        # An upstream that cannot be reached is "unavailable" (4), like a store that cannot be.
        raise typer.Exit(EXIT_UNAVAILABLE if error.code.startswith("mcp.upstream") else exit_code_for(error))

    @app.command("mcp-gateway")
    def mcp_gateway(
        config: Annotated[Path, typer.Option("--config", help="Gateway config (YAML): server name, agent, mapping.")],
        upstream: Annotated[str | None, typer.Option(
            "--upstream", help='Upstream MCP server to start, speaking stdio: "COMMAND ARGS".')] = None,
        upstream_url: Annotated[str | None, typer.Option(
            "--upstream-url", help="Upstream MCP server over streamable HTTP, e.g. http://127.0.0.1:9000/mcp.")] = None,
        server: ServerOpt = None, token: TokenOpt = None, executor_token: ExecutorTokenOpt = None,
        home: HomeOpt = None, policy: PolicyOpt = None, print_jwks: PrintJwksOpt = False,
    ) -> None:
        """Serve an upstream MCP server's tools over stdio; every call is submitted, and forwarded only with a grant."""
        import anyio

        from interlock.enforce.execution import ExecutionKey
        from interlock.enforce.mcp_gateway import McpGateway, read_config
        from interlock.enforce.mcp_transport import ConnectedUpstream, http_upstream, serve_stdio, stdio_upstream

        logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="interlock mcp-gateway: %(message)s")
        try:
            settings = read_config(config)
            execution_key = ExecutionKey.load_or_create(settings.execution.key) if settings.execution else None
            if print_jwks:
                if execution_key is None:
                    raise RequestError("input.usage", "--print-jwks needs `execution` in the gateway config")
                typer.echo(json.dumps(execution_key.jwks(), indent=2))
                return
            if (upstream is None) == (upstream_url is None):
                raise RequestError("input.usage", "give exactly one of --upstream and --upstream-url")
            if upstream is not None:
                command = shlex.split(upstream)
                if not command:
                    raise RequestError("input.usage", "--upstream needs a command")
                passed = {name: os.environ[name] for name in settings.upstream_env if name in os.environ}
                opened = stdio_upstream(command, passed or None)
                describe = command[0]
            else:
                assert upstream_url is not None  # one of the two, checked above
                if not upstream_url.startswith(("http://", "https://")):
                    raise RequestError("input.usage", "--upstream-url must be an http:// or https:// URL")
                opened, describe = http_upstream(upstream_url), upstream_url
            if server is None and settings.agent is None:
                raise RequestError("input.usage", "with a local gate the config must name the `agent` (id, kind)")
            with gates(server, token, executor_token, home, policy, submits=True) as (requester, executor):
                connection = ConnectedUpstream(opened, connect_timeout=settings.connect_timeout, describe=describe)
                gateway = McpGateway(settings, requester, connection, executor, execution_key)
                anyio.run(serve_stdio, gateway, settings, connection)
        except InterlockError as error:
            fail(error)
        except BaseExceptionGroup as group:
            refusal = _first_refusal(group)
            if refusal is None:
                raise
            fail(refusal)


def _first_refusal(group: BaseExceptionGroup[Any]) -> InterlockError | None:
    for error in group.exceptions:
        if isinstance(error, InterlockError):
            return error
        if isinstance(error, BaseExceptionGroup) and (inner := _first_refusal(error)) is not None:
            return inner
    return None
