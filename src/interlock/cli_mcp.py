"""`interlock mcp-gateway`: serve an upstream MCP server's tools to an agent, every tools/call gated."""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

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
        server: Annotated[str | None, typer.Option(
            "--server", envvar="INTERLOCK_SERVER", help="An `interlock serve` URL; without it the local home is used.")
        ] = None,
        token: Annotated[str | None, typer.Option(
            "--token", envvar="INTERLOCK_TOKEN", show_default=False,
            help="With --server: the agent's principal token (submits, reads its requests).")] = None,
        executor_token: Annotated[str | None, typer.Option(
            "--executor-token", envvar="INTERLOCK_EXECUTOR_TOKEN", show_default=False,
            help="With --server: the token of the config's `executor` (consumes grants); default --token.")] = None,
        home: Annotated[Path | None, typer.Option(
            "--home", help="Data directory \\[env: INTERLOCK_HOME; default ./.interlock].")] = None,
        policy: Annotated[Path | None, typer.Option(
            "--policy", help="Policy file \\[env: INTERLOCK_POLICY; default HOME/policy.yaml].")] = None,
    ) -> None:
        """Serve an upstream MCP server's tools over stdio; every call is submitted, and forwarded only with a grant."""
        import anyio

        from interlock.enforce.mcp_gateway import McpGateway, read_config
        from interlock.enforce.mcp_transport import ConnectedUpstream, http_upstream, serve_stdio, stdio_upstream

        logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="interlock mcp-gateway: %(message)s")
        closers: list[Callable[[], Any]] = []
        try:
            settings = read_config(config)
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
            requester, executor = _gates(settings.agent is not None, server, token, executor_token, home, policy,
                                         closers)
            connection = ConnectedUpstream(opened, connect_timeout=settings.connect_timeout, describe=describe)
            gateway = McpGateway(settings, requester, connection, executor)
            anyio.run(serve_stdio, gateway, settings, connection)
        except InterlockError as error:
            fail(error)
        except BaseExceptionGroup as group:
            refusal = _first_refusal(group)
            if refusal is None:
                raise
            fail(refusal)
        finally:
            for close in closers:
                close()


def _gates(has_agent: bool, server: str | None, token: str | None, executor_token: str | None,
           home: Path | None, policy: Path | None, closers: list[Callable[[], Any]]) -> tuple[Any, Any]:
    """(requester, executor): a local gate for both, or a RemoteGate per token."""
    if server is None:
        if token or executor_token:
            raise RequestError("input.usage", "--token and --executor-token go with --server")
        if not has_agent:
            raise RequestError("input.usage", "with a local gate the config must name the `agent` (id, kind)")
        from interlock.home import Home

        gate = Home.resolve(home, policy).open_gate()
        closers.append(gate.store.close)
        return gate, gate
    if home or policy:
        raise RequestError("input.usage", "--home and --policy are for a local gate, not with --server")
    if not token:
        raise RequestError("input.usage", "--server needs --token (or INTERLOCK_TOKEN): the agent's principal token")
    from interlock.client import RemoteGate

    requester = RemoteGate(server, token)
    closers.append(requester.close)
    if not executor_token or executor_token == token:
        return requester, requester
    executor = RemoteGate(server, executor_token)
    closers.append(executor.close)
    return requester, executor


def _first_refusal(group: BaseExceptionGroup[Any]) -> InterlockError | None:
    for error in group.exceptions:
        if isinstance(error, InterlockError):
            return error
        if isinstance(error, BaseExceptionGroup) and (inner := _first_refusal(error)) is not None:
            return inner
    return None
