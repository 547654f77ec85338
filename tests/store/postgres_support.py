"""PostgreSQL for the store tests: the server named by INTERLOCK_TEST_POSTGRES, one fresh schema per test."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

ENV = "INTERLOCK_TEST_POSTGRES"


def server_url() -> str:
    """The test server's URL; skips the test, saying why, when none is configured."""
    url = os.environ.get(ENV)
    if not url:
        pytest.skip(f"PostgreSQL store tests need {ENV}=postgresql://USER@HOST:PORT/DB (not set)")
    return url


def with_options(url: str, **settings: str) -> str:
    """`url` with server settings (`-c name=value`) in its `options`, still a URL as INTERLOCK_STORE takes."""
    options = " ".join(f"-c {name}={value}" for name, value in settings.items())
    return f"{url}{'&' if '?' in url else '?'}options={quote(options)}"


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A URL whose connections work in a new, empty schema, dropped afterwards: tests never see each other's rows.

    A server that is configured but does not answer fails the test: only a missing configuration skips.
    """
    base = server_url()
    schema = f"ilk_test_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_options(base, search_path=schema)
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


class PrivateServer:
    """A PostgreSQL server of the test's own (`initdb` + `pg_ctl` on a free port), for tests that stop it."""

    def __init__(self) -> None:
        tools = [shutil.which("initdb"), shutil.which("pg_ctl")]
        if None in tools:
            pytest.skip("stopping PostgreSQL needs a private server: initdb and pg_ctl are not on PATH")
        self._initdb, self._pg_ctl = str(tools[0]), str(tools[1])
        self._as_postgres: list[str] = []
        # A folder of its own, not the test's tmp_path: as root the server runs as `postgres`, who must reach it.
        self.folder = Path(tempfile.mkdtemp(prefix="interlock-pg-"))
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            if shutil.which("runuser") is None:
                pytest.skip("running a private PostgreSQL as root needs runuser and a postgres user")
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.folder, "postgres")
        self.data = self.folder / "data"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._run(self._initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self._as_postgres, *command], capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> None:
        settings = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off"
        self._run(self._pg_ctl, "-D", str(self.data), "-o", settings, "-l", str(self.data / "log"), "-w",
                  "start")

    def stop(self) -> None:
        """Stop at once, as a crash or a failover does: every connection is cut."""
        self._run(self._pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")


@contextmanager
def private_server() -> Iterator[PrivateServer]:
    """A started private server, removed afterwards; skipped, like every PostgreSQL test, without the variable."""
    server_url()
    server = PrivateServer()
    try:
        server.start()
        yield server
    finally:
        with contextlib.suppress(RuntimeError):
            server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)
