"""`interlock proxy`: serve the HTTP enforcing proxy in front of an existing API."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated

import typer

from interlock.cli_gates import ExecutorTokenOpt, HomeOpt, PolicyOpt, PrintJwksOpt, ServerOpt, TokenOpt, gates

Refusals = Callable[[], AbstractContextManager[None]]


def register(app: typer.Typer, refusals: Refusals) -> None:
    @app.command("proxy")
    def proxy(
        config: Annotated[Path, typer.Option("--config", help="Proxy config (YAML): upstream, routes, requester.")],
        host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="Port to listen on.", min=0, max=65535)] = 8081,
        server: ServerOpt = None, token: TokenOpt = None, executor_token: ExecutorTokenOpt = None,
        home: HomeOpt = None, policy: PolicyOpt = None, print_jwks: PrintJwksOpt = False,
    ) -> None:
        """Forward HTTP calls to an upstream API only after consuming a grant for exactly each call."""
        from interlock.enforce.execution import ExecutionKey
        from interlock.enforce.proxy_config import read_config

        with refusals():
            settings = read_config(config)
            key = ExecutionKey.load_or_create(settings.execution_key)
            if print_jwks:
                typer.echo(json.dumps(key.jwks(), indent=2))
                return
            with gates(server, token, executor_token, home, policy, submits=settings.requester is not None) as (
                    requester, executor):
                import uvicorn

                from interlock.enforce.proxy import EnforcingProxy

                uvicorn.run(EnforcingProxy(settings, executor, key, requester=requester), host=host, port=port,
                            access_log=False)
