"""`interlock principals|approvers|admins`: register, list and revoke API credentials; a token is shown once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from interlock.credentials import Credentials, Role, describe
from interlock.home import Home

HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="Data directory \\[env: INTERLOCK_HOME; default ./.interlock].")
]
Refusals = Callable[[], AbstractContextManager[None]]
Emit = Callable[[Any], None]


@contextmanager
def _registry(home: Path | None) -> Iterator[Credentials]:
    credentials = Home.resolve(home, None).open_credentials()
    try:
        yield credentials
    finally:
        credentials.store.close()


def register(app: typer.Typer, refusals: Refusals, emit: Emit) -> None:
    """Add the three credential command groups to `app`, printing and refusing the way every command does."""

    def run(home: Path | None, work: Callable[[Credentials], Any]) -> None:
        with refusals(), _registry(home) as credentials:
            emit(work(credentials))

    def added(role: Role, subject: str, kind: str | None, attributes: str | None) -> Callable[[Credentials], Any]:
        def add(credentials: Credentials) -> Any:
            issued = credentials.add(role, subject, kind, attributes)
            # The only time the token exists outside the caller's hands: the store keeps its SHA-256.
            return {**describe(issued.record), "token": issued.token}

        return add

    def listed(role: Role) -> Callable[[Credentials], Any]:
        return lambda credentials: [describe(c) for c in credentials.list(role)]

    def revoked(role: Role, credential_id: str) -> Callable[[Credentials], Any]:
        return lambda credentials: describe(credentials.revoke(credential_id, role))

    principals = typer.Typer(help="Requester and executor credentials.", no_args_is_help=True)
    approvers = typer.Typer(help="Approver credentials.", no_args_is_help=True)
    admins = typer.Typer(help="Admin credentials.", no_args_is_help=True)

    @principals.command("add")
    def principals_add(
        subject: Annotated[str, typer.Argument(metavar="ID", help="Principal id, e.g. agent:finance-assistant.")],
        kind: Annotated[str, typer.Option("--kind", help="human, agent, service or integration.")],
        attributes: Annotated[str | None, typer.Option("--attributes", help="JSON object of attributes.")] = None,
        home: HomeOpt = None,
    ) -> None:
        """Register a principal; prints its token once."""
        run(home, added("principal", subject, kind, attributes or "{}"))

    @approvers.command("add")
    def approvers_add(subject: Annotated[str, typer.Argument(metavar="ID", help="Person id, e.g. user:alice.")],
                      home: HomeOpt = None) -> None:
        """Register an approver; prints its token once."""
        run(home, added("approver", subject, None, None))

    @admins.command("add")
    def admins_add(subject: Annotated[str, typer.Argument(metavar="ID")], home: HomeOpt = None) -> None:
        """Register an admin; prints its token once."""
        run(home, added("admin", subject, None, None))

    for group, role in ((principals, "principal"), (approvers, "approver"), (admins, "admin")):
        _list_and_revoke(group, role, run, listed, revoked)  # type: ignore[arg-type]

    app.add_typer(principals, name="principals")
    app.add_typer(approvers, name="approvers")
    app.add_typer(admins, name="admins")


def _list_and_revoke(group: typer.Typer, role: Role, run: Any, listed: Any, revoked: Any) -> None:
    @group.command("list")
    def list_(home: HomeOpt = None) -> None:
        """List credentials (never their tokens)."""
        run(home, listed(role))

    @group.command("revoke")
    def revoke(credential_id: Annotated[str, typer.Argument(metavar="CREDENTIAL_ID")], home: HomeOpt = None) -> None:
        """Revoke a credential: its token is refused from now on."""
        run(home, revoked(role, credential_id))
