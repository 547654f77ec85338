"""Which store a home opens: INTERLOCK_STORE's postgresql:// URL, else the SQLite file; and `interlock migrate`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import SEED
from interlock.cli import app
from interlock.core.errors import StoreError
from interlock.home import Home
from interlock.notify import Notifier
from interlock.store.select import open_store, redact
from interlock.store.sqlite import SqliteStore

from .postgres_support import fresh_schema


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("INTERLOCK_HOME", "INTERLOCK_POLICY", "INTERLOCK_STORE"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "home"
    path.mkdir()
    shutil.copyfile(SEED / "policy.yaml", path / "policy.yaml")
    return path


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


def migrate(home: Path) -> tuple[int, Any, str]:
    result = CliRunner().invoke(app, ["migrate", "--home", str(home)], catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout), result.stderr


def test_without_a_store_url_a_home_keeps_its_sqlite_file(home: Path) -> None:
    location = Home.resolve(home, None)
    gate = location.open_gate()
    try:
        assert location.store_url is None
        assert isinstance(gate.store, SqliteStore) and Path(gate.store.path) == home / "interlock.db"
        assert type(gate.notifier) is Notifier
    finally:
        gate.store.close()


@pytest.mark.parametrize("url", ["mysql://root:hunter2@db/interlock", "sqlite:///tmp/x.db", "hunter2",
                                 "postgresql://root:hunter2@db/interlock?nonsense=1"])
def test_a_store_url_interlock_cannot_open_is_refused_without_echoing_a_password(
    home: Path, url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTERLOCK_STORE", url)

    with pytest.raises(StoreError) as refused:
        open_store(url, home / "interlock.db")
    assert refused.value.code == "store.invalid_url"
    assert "hunter2" not in refused.value.message

    code, body, _ = migrate(home)
    assert (code, body["error"]["code"]) == (2, "store.invalid_url")
    assert not (home / "interlock.db").exists()


def test_a_password_never_shows_in_a_redacted_url() -> None:
    assert redact("postgresql://ilk:s3cret@db:5432/interlock") == "postgresql://ilk:***@db:5432/interlock"
    assert redact("postgresql://ilk@db/interlock") == "postgresql://ilk@db/interlock"


def test_migrate_brings_the_sqlite_file_up_to_date_once(home: Path) -> None:
    code, first, _ = migrate(home)
    again = migrate(home)[1]

    assert code == 0
    assert first["store"] == "sqlite" and first["applied"] == list(range(1, first["version"] + 1))
    assert again == {**first, "applied": []}


def test_migrate_and_open_gate_use_the_postgresql_store_of_interlock_store(
    home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from interlock.store.postgres import PostgresStore, migrations
    from interlock.store.postgres_notify import PostgresNotifier

    monkeypatch.setenv("INTERLOCK_STORE", postgres_url)
    code, body, _ = migrate(home)
    assert code == 0
    assert body["store"] == "postgresql" and body["applied"] == [version for version, _, _ in migrations()]

    gate = Home.resolve(home, None).open_gate()
    try:
        assert isinstance(gate.store, PostgresStore) and isinstance(gate.notifier, PostgresNotifier)
        assert gate.submit(json.loads((SEED / "requests" / "ceo-payment.json").read_text())).outcome
    finally:
        gate.store.close()
    verified = CliRunner().invoke(app, ["audit", "verify", "--home", str(home)], catch_exceptions=False)
    assert verified.exit_code == 0 and json.loads(verified.stdout)["entries"] == 1
    assert not (home / "interlock.db").exists()
