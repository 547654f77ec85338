"""The gate an enforcement point talks to (`mcp-gateway`, `proxy`): the local home, or `interlock serve` with a
token for the requester and one for the executor. The shared options, and opening (and closing) those gates."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from interlock.core.errors import RequestError

ServerOpt = Annotated[str | None, typer.Option(
    "--server", envvar="INTERLOCK_SERVER", help="An `interlock serve` URL; without it the local home is used.")]
TokenOpt = Annotated[str | None, typer.Option(
    "--token", envvar="INTERLOCK_TOKEN", show_default=False,
    help="With --server: the requester's principal token (submits and reads its requests).")]
ExecutorTokenOpt = Annotated[str | None, typer.Option(
    "--executor-token", envvar="INTERLOCK_EXECUTOR_TOKEN", show_default=False,
    help="With --server: the token of the config's `executor` (consumes grants); default --token.")]
HomeOpt = Annotated[Path | None, typer.Option(
    "--home", help="Data directory \\[env: INTERLOCK_HOME; default ./.interlock].")]
PolicyOpt = Annotated[Path | None, typer.Option(
    "--policy", help="Policy file \\[env: INTERLOCK_POLICY; default HOME/policy.yaml].")]
PrintJwksOpt = Annotated[bool, typer.Option(
    "--print-jwks", help="Print the execution key's JWK Set (what the upstream verifies with) and exit.")]


@contextmanager
def gates(server: str | None, token: str | None, executor_token: str | None, home: Path | None,
          policy: Path | None, *, submits: bool) -> Iterator[tuple[Any, Any]]:
    """(requester, executor), closed on exit: one local gate for both, or a `RemoteGate` per token.

    Without `submits` the requester is None: the enforcement point only consumes grants callers bring.
    """
    closers: list[Callable[[], Any]] = []
    try:
        yield _open(server, token, executor_token, home, policy, submits, closers)
    finally:
        for close in closers:
            close()


def _open(server: str | None, token: str | None, executor_token: str | None, home: Path | None,
          policy: Path | None, submits: bool, closers: list[Callable[[], Any]]) -> tuple[Any, Any]:
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
        raise RequestError("input.usage", "--server needs --token (or INTERLOCK_TOKEN): the requester's principal"
                                          " token")
    if not (executor_token or token):
        raise RequestError("input.usage", "--server needs --executor-token (or --token): the executor's token")
    from interlock.client import RemoteGate

    requester = RemoteGate(server, token) if submits and token else None
    if requester is not None:
        closers.append(requester.close)
        if executor_token in (None, "", token):
            return requester, requester
    executor = RemoteGate(server, executor_token or token or "")
    closers.append(executor.close)
    return requester, executor
