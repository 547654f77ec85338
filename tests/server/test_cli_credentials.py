"""`interlock principals|approvers|admins`: a token is printed once, stored only as a hash, and refused once revoked."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from conftest import SEED
from interlock.cli import app
from interlock.credentials import Credentials
from interlock.home import Home
from interlock.server import create_app


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("INTERLOCK_HOME", "INTERLOCK_POLICY", "INTERLOCK_STORE"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "home"
    path.mkdir()
    shutil.copyfile(SEED / "policy.yaml", path / "policy.yaml")
    return path


def run(home: Path, *args: str) -> tuple[int, Any, str]:
    result = CliRunner().invoke(app, [*args, "--home", str(home)], catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else None, result.stderr


def status_with(home: Path, token: str) -> int:
    """The status of an authenticated call on an app built from the home, as `interlock serve` builds it."""
    gate = Home.resolve(home, None).open_gate()

    async def call() -> int:
        transport = httpx.ASGITransport(app=create_app(gate, Credentials(gate.store, gate.clock)))
        async with httpx.AsyncClient(transport=transport, base_url="http://interlock") as client:
            response = await client.get("/v1/requests/req_x", headers={"Authorization": f"Bearer {token}"})
            return response.status_code

    try:
        return asyncio.run(call())
    finally:
        gate.store.close()


def test_a_principal_is_added_with_its_registry_attributes_and_its_token_is_shown_once(home: Path) -> None:
    code, added, _ = run(home, "principals", "add", "agent:finance-assistant", "--kind", "agent",
                         "--attributes", '{"known_recipients": ["DE89370400440532013000"]}')
    assert code == 0
    token = added["token"]
    assert token.startswith("ilk_") and len(token) == 47
    assert added["subject"] == "agent:finance-assistant" and added["kind"] == "agent"
    assert added["attributes"] == {"known_recipients": ["DE89370400440532013000"]}
    assert added["revoked_at"] is None

    code, listed, _ = run(home, "principals", "list")
    assert code == 0 and [c["id"] for c in listed] == [added["id"]]
    assert "token" not in listed[0] and token not in json.dumps(listed)

    db = sqlite3.connect(home / "interlock.db")
    stored = db.execute("SELECT token_sha256 FROM credentials").fetchall()
    leaves = b"".join(bytes(row[0]) for row in db.execute("SELECT leaf FROM audit"))
    db.close()
    assert stored == [(hashlib.sha256(token.encode()).hexdigest(),)], "only the hash is kept"
    assert token.encode() not in leaves and stored[0][0].encode() not in leaves, "the audit log has neither"
    assert b"credential.added" in leaves


def test_roles_are_listed_apart_and_a_revoked_token_is_refused(home: Path) -> None:
    _, alice, _ = run(home, "approvers", "add", "user:alice")
    _, root, _ = run(home, "admins", "add", "user:root")
    assert "kind" not in alice and root["role"] == "admin"
    assert [c["subject"] for c in run(home, "approvers", "list")[1]] == ["user:alice"]
    assert run(home, "principals", "list")[1] == []
    assert status_with(home, alice["token"]) == 404  # authenticated; the request just does not exist

    code, error, stderr = run(home, "principals", "revoke", alice["id"])
    assert code == 3 and error["error"]["code"] == "auth.unknown_credential", "not a principal credential"
    code, revoked, _ = run(home, "approvers", "revoke", alice["id"])
    assert code == 0 and revoked["revoked_at"] is not None
    code, error, stderr = run(home, "approvers", "revoke", alice["id"])
    assert code == 3 and error["error"]["code"] == "auth.already_revoked"
    assert stderr.strip() == f"interlock: auth.already_revoked: {error['error']['message']}"
    assert status_with(home, alice["token"]) == 401
    assert run(home, "approvers", "list")[1][0]["revoked_at"] == revoked["revoked_at"]


@pytest.mark.parametrize(("args", "code"), [
    (("principals", "add", "agent:x", "--kind", "robot"), "input.invalid"),
    (("principals", "add", "agent:x", "--kind", "agent", "--attributes", "[1]"), "input.invalid"),
    (("principals", "add", "agent:x", "--kind", "agent", "--attributes", '{"a": 1, "a": 2}'), "input.duplicate_key"),
    (("principals", "add", "agent:x", "--kind", "agent", "--attributes", '{"a": NaN}'), "input.invalid"),
    (("approvers", "add", "user:\x07bell"), "input.invalid"),
])
def test_bad_credential_input_is_refused_with_exit_2_and_nothing_written(home: Path, args: tuple[str, ...],
                                                                         code: str) -> None:
    exit_code, error, _ = run(home, *args)
    assert exit_code == 2 and error["error"]["code"] == code
    assert run(home, "principals", "list")[1] == [] and run(home, "approvers", "list")[1] == []
