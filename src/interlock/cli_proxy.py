"""`interlock proxy`: serve the HTTP enforcing proxy in front of an existing API."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from interlock.core.errors import RequestError

Refusals = Callable[[], AbstractContextManager[None]]


def register(app: typer.Typer, refusals: Refusals) -> None:
    @app.command("proxy")
    def proxy(
        config: Annotated[Path, typer.Option("--config", help="Proxy config (YAML): upstream, routes, requester.")],
        host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="Port to listen on.", min=0, max=65535)] = 8081,
        server: Annotated[str | None, typer.Option(
            "--server", envvar="INTERLOCK_SERVER", help="An `interlock serve` URL; without it the local home is used.")
        ] = None,
        token: Annotated[str | None, typer.Option(
            "--token", envvar="INTERLOCK_TOKEN", show_default=False,
            help="With --server: the config's `requester` token (submits calls that come without a grant).")] = None,
        executor_token: Annotated[str | None, typer.Option(
            "--executor-token", envvar="INTERLOCK_EXECUTOR_TOKEN", show_default=False,
            help="With --server: the token of the config's `executor` (consumes grants); default --token.")] = None,
        home: Annotated[Path | None, typer.Option(
            "--home", help="Data directory \\[env: INTERLOCK_HOME; default ./.interlock].")] = None,
        policy: Annotated[Path | None, typer.Option(
            "--policy", help="Policy file \\[env: INTERLOCK_POLICY; default HOME/policy.yaml].")] = None,
        print_jwks: Annotated[bool, typer.Option(
            "--print-jwks", help="Print the execution key's JWK Set (what the upstream verifies with) and exit.")
        ] = False,
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
            with _gates(settings.requester is not None, server, token, executor_token, home, policy) as gates:
                import uvicorn

                from interlock.enforce.proxy import EnforcingProxy

                requester, executor = gates
                uvicorn.run(EnforcingProxy(settings, executor, key, requester=requester), host=host, port=port,
                            access_log=False)


@contextmanager
def _gates(submits: bool, server: str | None, token: str | None, executor_token: str | None,
           home: Path | None, policy: Path | None) -> Iterator[tuple[Any, Any]]:
    """(requester or None, executor): a local gate, or one RemoteGate per token; closed on exit."""
    closers: list[Callable[[], Any]] = []
    try:
        yield _open(submits, server, token, executor_token, home, policy, closers)
    finally:
        for close in closers:
            close()


def _open(submits: bool, server: str | None, token: str | None, executor_token: str | None,
          home: Path | None, policy: Path | None, closers: list[Callable[[], Any]]) -> tuple[Any, Any]:
    if server is None:
        if token or executor_token:
            raise RequestError("input.usage", "--token and --executor-token go with --server")
        from interlock.home import Home

        gate = Home.resolve(home, policy).open_gate()
        closers.append(gate.store.close)
        return (gate if submits else None), gate
    if home or policy:
        raise RequestError("input.usage", "--home and --policy are for a local gate, not with --server")
    if submits and not token:
        raise RequestError("input.usage", "the config has a `requester`: --server needs its --token")
    if not (executor_token or token):
        raise RequestError("input.usage", "--server needs --executor-token (or --token): the executor's token")
    from interlock.client import RemoteGate

    requester = RemoteGate(server, token) if submits and token else None
    if requester is not None:
        closers.append(requester.close)
        if executor_token in (None, token):
            return requester, requester
    executor = RemoteGate(server, executor_token or token or "")
    closers.append(executor.close)
    return requester, executor
