"""End-to-end fixtures: the `interlock` command as a real process or in-process, and a fresh data home."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import FixedClock
from interlock.cli import app
from interlock.core.policy import load_policy
from interlock.gate import Gate
from interlock.keys import KeyRing
from interlock.store.sqlite import SqliteStore

from .e2e_support import AGENT_TOOLS_POLICY, SEED_POLICY, Done, Run, clean_env


@pytest.fixture
def interlock(tmp_path: Path) -> Run:
    """Run `python -m interlock.cli ARGS` as a real process, in tmp_path unless told otherwise."""

    def run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None,
            input: bytes | None = None) -> Done:
        done = subprocess.run(
            [sys.executable, "-m", "interlock.cli", *map(str, args)],
            capture_output=True, input=input, env=clean_env(**(env or {})), cwd=cwd or tmp_path, timeout=60,
        )
        return Done(done.returncode, done.stdout.decode(), done.stderr.decode())

    return run


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """The same command in-process (typer's CliRunner): fast, for the bulk of a matrix."""
    for name in [k for k in os.environ if k.startswith("INTERLOCK_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str | Path, env: dict[str, str] | None = None, input: bytes | None = None) -> Done:
        result = runner.invoke(app, [str(a) for a in args], env=env, input=input, catch_exceptions=False)
        return Done(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A data directory holding the seed policy; the store and keys appear on first use."""
    path = tmp_path / "home"
    path.mkdir()
    shutil.copyfile(SEED_POLICY, path / "policy.yaml")
    return path


@pytest.fixture
def tools_gate(tmp_path: Path) -> Iterator[Gate]:
    """A Gate on a real SQLite file with examples/agent_tools' policy, on a clock the test moves by hand."""
    store = SqliteStore(tmp_path / "interlock.db")
    yield Gate(store, load_policy(AGENT_TOOLS_POLICY.read_bytes()), KeyRing.generate(), clock=FixedClock())
    store.close()
