"""`interlock migrate`: bring the configured store's schema up to date (every node also does so when it starts)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, Any

import typer

from interlock.home import Home
from interlock.store.select import migrate

HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="Data directory \\[env: INTERLOCK_HOME; default ./.interlock].")
]
Refusals = Callable[[], AbstractContextManager[None]]
Emit = Callable[[Any], None]


def register(app: typer.Typer, refusals: Refusals, emit: Emit) -> None:
    """Add `migrate` to `app`, printing and refusing the way every command does."""

    @app.command("migrate")
    def migrate_command(home: HomeOpt = None) -> None:
        """Apply the store's pending migrations (INTERLOCK_STORE, else HOME/interlock.db); prints what was applied."""
        with refusals():
            location = Home.resolve(home, None)
            if location.store_url is None:
                location.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            emit(migrate(location.store_url, location.store_path))
