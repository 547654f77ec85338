"""The store under test: one factory per backend, so every backend runs the same contract suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from interlock.store.base import Store
from interlock.store.sqlite import SqliteStore


def _sqlite(tmp_path: Path) -> Store:
    return SqliteStore(tmp_path / "contract.db")


# To run the contract against another backend, add a factory here; a factory that needs an outside
# service (PostgreSQL) should `pytest.skip` when it is not configured, never pass silently.
STORE_FACTORIES: dict[str, Callable[[Path], Store]] = {
    "sqlite": _sqlite,
}


@pytest.fixture(params=list(STORE_FACTORIES))
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of each backend in turn."""
    store = STORE_FACTORIES[request.param](tmp_path)
    try:
        yield store
    finally:
        store.close()
