"""The store under test: one factory per backend, so every backend runs the same contract suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from interlock.store.base import Store
from interlock.store.sqlite import SqliteStore

from .postgres_support import fresh_schema


@contextmanager
def _sqlite(tmp_path: Path) -> Iterator[Store]:
    store = SqliteStore(tmp_path / "contract.db")
    try:
        yield store
    finally:
        store.close()


@contextmanager
def _postgresql(tmp_path: Path) -> Iterator[Store]:
    from interlock.store.postgres import PostgresStore

    with fresh_schema() as url:  # skips, saying why, when INTERLOCK_TEST_POSTGRES is not set
        store = PostgresStore(url, max_size=4)
        try:
            yield store
        finally:
            store.close()


# Each factory gives a fresh, empty store and cleans up after it. A factory that needs an outside service
# (PostgreSQL) `pytest.skip`s with the reason when it is not configured, never passes silently.
STORE_FACTORIES: dict[str, Callable[[Path], AbstractContextManager[Store]]] = {
    "sqlite": _sqlite,
    "postgresql": _postgresql,
}


@pytest.fixture(params=list(STORE_FACTORIES))
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of each backend in turn."""
    with STORE_FACTORIES[request.param](tmp_path) as store:
        yield store
