"""`interlock serve` as a real process on a free port, and credentials made with the real CLI."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from .e2e_support import SEED_POLICY, clean_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seeded_home(tmp_path: Path) -> Path:
    """A data home holding the seed policy."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(SEED_POLICY, home / "policy.yaml")
    return home


def cli(home: Path, *args: str) -> Any:
    """`interlock ARGS` as a real process on `home`; its JSON output."""
    done = subprocess.run([sys.executable, "-m", "interlock.cli", *args], capture_output=True, timeout=60,
                          env=clean_env(INTERLOCK_HOME=str(home)))
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def seed_callers(home: Path) -> dict[str, str]:
    """Tokens for the seed scenario's callers, registered with the real CLI: the agent (with its known
    recipient), the payments executor, and the finance approvers alice and bob."""
    attributes = json.dumps({"known_recipients": ["DE89370400440532013000"]})
    return {
        "agent": cli(home, "principals", "add", "agent:finance-assistant", "--kind", "agent",
                     "--attributes", attributes)["token"],
        "payments": cli(home, "principals", "add", "payments-service", "--kind", "service")["token"],
        "alice": cli(home, "approvers", "add", "user:alice")["token"],
        "bob": cli(home, "approvers", "add", "user:bob")["token"],
    }


@contextmanager
def running(argv: list[str], ready_url: str, env: dict[str, str], what: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process until the block ends, once `ready_url` answers (any status); stopped and reaped after."""
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:  # bounded: the process is starting, there is no event to wait on
            if process.poll() is not None:
                raise AssertionError(process.stderr.read().decode() if process.stderr else f"{what} exited")
            try:
                httpx.get(ready_url, timeout=1)
                break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{what} did not come up within 30 s"
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()


@contextmanager
def serving(home: Path) -> Iterator[str]:
    """Run `interlock serve` on `home` until the block ends; its base URL once /healthz answers."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-m", "interlock.cli", "serve", "--port", str(port)], f"{base}/healthz",
                 clean_env(INTERLOCK_HOME=str(home)), "interlock serve"):
        yield base
