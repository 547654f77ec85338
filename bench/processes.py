"""The processes a bench section starts: a free loopback port, a bounded wait until one answers over HTTP, its
CPU time, and stopping it (only it) afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

STARTUP_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any INTERLOCK_* setting (a bench home is always named), plus `extra`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}, **extra}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), or None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def start(argv: list[str], log: Path, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start `argv` with its output in `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)


def wait_until_answers(process: subprocess.Popen[bytes], url: str, what: str, log: Path,
                       deadline: float) -> None:
    """Return once GET `url` answers 200; SystemExit if the process exits first or `deadline` (monotonic) passes."""
    while True:  # bounded: the process is starting, there is no event to wait on
        if process.poll() is not None:
            raise SystemExit(f"bench: {what} exited ({process.returncode}); see {log}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {what} did not answer {url} within its start-up time; see {log}")
        time.sleep(0.05)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """Terminate each process (only these), killing any that does not exit within 10 s."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def running(argv: list[str], url: str, log: Path, what: str, env: dict[str, str], *, cwd: Path | None = None,
            startup_seconds: float = STARTUP_SECONDS) -> Iterator[subprocess.Popen[bytes]]:
    """`argv` running until the block ends, entered once GET `url` answers 200."""
    process = start(argv, log, env, cwd)
    try:
        wait_until_answers(process, url, what, log, time.monotonic() + startup_seconds)
        yield process
    finally:
        stop([process])
