"""Helpers for the MCP gateway tests: a recording upstream, the gateway as a real process, approvals.

This directory has no `__init__.py` on purpose: as a package named `mcp` it would shadow the MCP SDK. So
its modules are top-level modules, and these helpers live here rather than in `conftest` (a name that
tests/conftest.py already has).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import yaml
from mcp import ClientSession, types
from mcp.client.stdio import StdioServerParameters, stdio_client

from e2e.served import running
from interlock.gate import Gate
from interlock.home import Home

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
POLICY = HERE / "policy.yaml"
UPSTREAM = HERE / "upstream_server.py"
T = TypeVar("T")


def run(work: Callable[[], Awaitable[T]]) -> T:
    """Run one async test body on a fresh event loop (the MCP SDK is anyio-based)."""
    return anyio.run(work)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
    env.update(extra)
    return env


class Record:
    """What the upstream received: one `{"tool", "arguments"}` per call, written before the tool acts."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def calls(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def of(self, tool: str) -> list[dict[str, Any]]:
        return [c["arguments"] for c in self.calls() if c["tool"] == tool]


def write_config(tmp_path: Path, **settings: Any) -> Path:
    """A gateway config for the `bank` upstream; `settings` override or add keys (None removes one)."""
    config: dict[str, Any] = {
        "server": "bank",
        "agent": {"id": "agent:assistant", "kind": "agent"},
        "on_behalf_of": [{"id": "user:ceo", "kind": "human"}],
        "tools": {"pay": {"resource": "account:treasury"}},
    }
    for key, value in settings.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def upstream_command(record: Record) -> str:
    return f"{sys.executable} {UPSTREAM} {record.path}"


def gateway_args(config: Path, *, upstream: str | None = None, upstream_url: str | None = None,
                 home: Path | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    """`interlock mcp-gateway ...` as a command line for a real process."""
    args = [sys.executable, "-m", "interlock.cli", "mcp-gateway", "--config", str(config)]
    if upstream is not None:
        args += ["--upstream", upstream]
    if upstream_url is not None:
        args += ["--upstream-url", upstream_url]
    if home is not None:
        args += ["--home", str(home)]
    return [*args, *extra]


@asynccontextmanager
async def gateway_session(args: list[str], errlog: Path) -> AsyncIterator[ClientSession]:
    """The official Python MCP client, connected over stdio to the gateway started as `args`."""
    params = StdioServerParameters(command=args[0], args=args[1:], env=clean_env())
    with errlog.open("a") as log:
        async with stdio_client(params, errlog=log) as (read, write), ClientSession(read, write) as session:
            with anyio.fail_after(60):
                await session.initialize()
            yield session


def text_of(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))


def interlock_meta(result: types.CallToolResult) -> dict[str, Any]:
    meta = (result.meta or {}).get("interlock")
    assert isinstance(meta, dict), result
    return meta


def open_gate(home: Path) -> Gate:
    return Home(home, home / "policy.yaml").open_gate()


def approve_locally(home: Path, request_id: str, approver: str = "user:alice") -> None:
    """An approver decides in another process than the gateway's (the CLI's way), over the console."""
    gate = open_gate(home)
    try:
        code = gate.status(request_id).binding_code
        gate.decide_approval(request_id, approver, "console", binding_code=code)
    finally:
        gate.store.close()


def reject_locally(home: Path, request_id: str, approver: str = "user:bob") -> None:
    gate = open_gate(home)
    try:
        gate.decide_approval(request_id, approver, "console", reject=True, comment="not this one")
    finally:
        gate.store.close()


def request_rows(home: Path) -> list[dict[str, Any]]:
    """Every request the gate recorded, read through a read-only connection."""
    db = sqlite3.connect(f"file:{home / 'interlock.db'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute("SELECT * FROM requests ORDER BY rowid")]
    finally:
        db.close()


def request_ids(gate: Gate) -> list[str]:
    """The ids of every request a gate on a SQLite file recorded, oldest first (read-only)."""
    db = sqlite3.connect(f"file:{gate.store.path}?mode=ro", uri=True)  # type: ignore[attr-defined]
    try:
        return [row[0] for row in db.execute("SELECT id FROM requests ORDER BY rowid")]
    finally:
        db.close()


@contextmanager
def http_server(argv: list[str], url: str, what: str) -> Iterator[str]:
    """A process serving HTTP at `url` until the block ends; `url` once it answers (any status)."""
    with running(argv, url, clean_env(), what):
        yield url


def http_upstream(record: Record, port: int) -> AbstractContextManager[str]:
    """The recording upstream served over streamable HTTP; its endpoint URL once it answers."""
    return http_server([sys.executable, str(UPSTREAM), str(record.path), "--http", str(port)],
                       f"http://127.0.0.1:{port}/mcp", "the HTTP upstream")
