"""MCP gateway fixtures: a data home holding the gateway policy, and the upstream's record of calls."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp_support import POLICY, Record
from stand_in import Clock

from interlock.core.policy import load_policy
from interlock.gate import Gate
from interlock.keys import KeyRing
from interlock.store.sqlite import SqliteStore


@pytest.fixture
def record(tmp_path: Path) -> Record:
    """What the upstream started for this test receives (it writes each call before acting on it)."""
    return Record(tmp_path / "upstream-calls.jsonl")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A data home holding the gateway policy (mcp.bank.lookup allowed, large payments need approval)."""
    path = tmp_path / "home"
    path.mkdir()
    shutil.copyfile(POLICY, path / "policy.yaml")
    return path


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    """A gate on a SQLite file with the gateway policy, on a clock the test moves."""
    store = SqliteStore(tmp_path / "interlock.db")
    yield Gate(store, load_policy(POLICY.read_bytes()), KeyRing.generate(), clock=Clock())
    store.close()


def _keep_root_helpers_importable() -> None:
    """pytest imports this file as the top-level module `conftest`, the name under which tests/adversarial
    imports tests/conftest.py's helpers (`from conftest import FixedClock`); when this directory is collected
    first (`pytest tests/mcp tests/adversarial`) this module holds that name, so it offers those helpers too."""
    root_conftest = Path(__file__).parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("_interlock_tests_conftest", root_conftest)
    assert spec is not None and spec.loader is not None
    root = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(root)
    for name, value in vars(root).items():
        if not name.startswith("_") and name not in globals() and not hasattr(value, "_fixture_function_marker"):
            globals()[name] = value


_keep_root_helpers_importable()
