"""Helpers for the end-to-end tests: a finished command, a clean environment, a read-only look at the store."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "examples" / "seed"
SEED_POLICY = SEED / "policy.yaml"
AGENT_TOOLS_POLICY = REPO / "examples" / "agent_tools" / "policy.yaml"
REQUESTS = SEED / "requests"
TABLES = ("requests", "approvals", "grants", "audit")


@dataclass(frozen=True)
class Done:
    """A finished command: exit code and the two streams."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def ok(self) -> Any:
        """Assert exit 0 with nothing on stderr, and return the JSON printed on stdout."""
        assert self.code == 0, self
        assert self.stderr == "", self.stderr
        return self.json()

    def expect_refused(self, code: str, exit_code: int) -> dict[str, Any]:
        """Assert the refusal contract: exit code, `{"error": {code, message}}` on stdout, one line on stderr."""
        assert self.code == exit_code, self
        error = self.json()["error"]
        assert error["code"] == code, error
        assert error["message"], error
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, self.stderr
        assert lines[0] == f"interlock: {code}: {error['message']}", lines[0]
        return error


Run = Callable[..., Done]


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any INTERLOCK_* setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
    env.update(extra)
    return env


def snapshot(home: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, by column name, read through a read-only connection (no state is touched)."""
    db = sqlite3.connect(f"file:{home / 'interlock.db'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return {table: [dict(row) for row in db.execute(f"SELECT * FROM {table} ORDER BY rowid")] for table in TABLES}
    finally:
        db.close()


def audit_bodies(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """The audit rows' leaves (RFC 8785 JSON) as dicts."""
    return [json.loads(row["leaf"]) for row in rows]


def write(path: Path, body: dict[str, Any] | bytes | str) -> Path:
    """Write a JSON document (a dict is serialised; bytes and str are written as they are)."""
    if isinstance(body, dict):
        body = json.dumps(body)
    path.write_bytes(body.encode() if isinstance(body, str) else body)
    return path


def seed_request(name: str) -> dict[str, Any]:
    return json.loads((REQUESTS / f"{name}.json").read_bytes())


def spec_of(request: dict[str, Any]) -> dict[str, Any]:
    return {"action": request["action"], "resource": request["resource"], "params": request["params"]}
