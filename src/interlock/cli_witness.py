"""`interlock witness init|serve`: run a C2SP tlog-witness that cosigns other Interlock logs' checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, Any

import typer

from interlock.witness_home import WitnessHome

Refusals = Callable[[], AbstractContextManager[None]]
Emit = Callable[[Any], None]
DirArg = Annotated[Path, typer.Argument(help="The witness's directory: witness.yaml, its key, its state.")]


def register(app: typer.Typer, refusals: Refusals, emit: Emit) -> None:
    @app.command("init")
    def witness_init(
        directory: DirArg,
        name: Annotated[str, typer.Option("--name", help="The witness's key name, e.g. witness.example/w1.")],
    ) -> None:
        """Create a witness (key and config; an existing one is kept) and print its cosigner key."""
        with refusals():
            cosigner = WitnessHome(directory).init(name)
            emit({"name": cosigner.name, "key": cosigner.key.encode(), "config": str(directory / "witness.yaml")})

    @app.command("key")
    def witness_key(directory: DirArg) -> None:
        """Print the witness's cosigner key: give it to the logs it witnesses (`interlock audit witness --key`)."""
        with refusals():
            cosigner = WitnessHome(directory).cosigner()
            emit({"name": cosigner.name, "key": cosigner.key.encode()})

    @app.command("serve")
    def witness_serve(
        directory: DirArg,
        host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="Port to listen on.", min=0, max=65535)] = 8090,
    ) -> None:
        """Serve POST /add-checkpoint: cosign each checkpoint that extends the one cosigned before."""
        with refusals(), WitnessHome(directory).open() as witness:
            import uvicorn

            from interlock.server.witness import create_witness_app

            uvicorn.run(create_witness_app(witness), host=host, port=port, access_log=False)
