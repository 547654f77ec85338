"""Gate nodes for the cluster and crash tests: `interlock serve` processes on one store, each one a test may
`kill -9` and start again, and a consistent read of what the store holds afterwards."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from .e2e_support import clean_env
from .served import free_port

AGENT = "agent:finance-assistant"
EXECUTOR = "payments-service"
APPROVER = "user:alice"
ADMIN = "user:root"
SMALL_LIMIT = 1000
# Small transfers are allowed (a grant at once); large ones wait for one independent approver. Payments are
# sensitive, so the approver types the binding code the requester was given.
POLICY = f"""\
version: 1
sensitive: ["payments.*"]
executors:
  "payments.*": {EXECUTOR}
rules:
  - id: small-transfers
    action: payments.transfer
    when: "params.amount <= {SMALL_LIMIT}"
    effect: allow
  - id: large-transfers-need-one
    action: payments.transfer
    when: "params.amount > {SMALL_LIMIT}"
    effect: require_approval
    approval:
      approvers: ["{APPROVER}"]
      quorum: 1
      expires_in: 1h
"""
STARTUP_SECONDS = 60.0  # generous: several nodes start at once on a 2-core machine that runs other tests too
LAUNCHER = Path(__file__).with_name("serve_launcher.py")


def transfer(number: int, amount: int) -> dict[str, Any]:
    """The action of transfer `number`: the reference makes every request's digest, and so its grant, its own."""
    return {"action": "payments.transfer", "resource": "account:treasury",
            "params": {"amount": amount, "currency": "EUR", "recipient": "DE89370400440532013000",
                       "reference": f"transfer-{number}"}}


def jti_of(grant: str) -> str:
    """The `jti` claim of a grant token (read, not verified: the gate verifies it; the test only names it)."""
    payload = grant.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def http_client(token: str | None = None, timeout: float = 60) -> httpx.AsyncClient:
    """A test client that never reuses a connection the server may be closing: uvicorn drops a keep-alive
    connection idle for 5 s, and a POST sent on it just then fails without an answer (and is not retried)."""
    return httpx.AsyncClient(timeout=timeout, headers=bearer(token) if token else None,
                             limits=httpx.Limits(keepalive_expiry=1.0))


# --- a deployment ---------------------------------------------------------------------------------------------


def _env(home: Path, store_url: str | None) -> dict[str, str]:
    return clean_env(INTERLOCK_HOME=str(home), **({"INTERLOCK_STORE": store_url} if store_url else {}))


def _cli(home: Path, store_url: str | None, *args: str) -> Any:
    done = subprocess.run([sys.executable, "-m", "interlock.cli", *args], capture_output=True, timeout=120,
                          env=_env(home, store_url))
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout) if done.stdout.strip() else None


def prepare(folder: Path, nodes: int, store_url: str | None) -> tuple[list[Path], dict[str, str]]:
    """Homes for `nodes` gate nodes on one store, and the tokens of the agent, executor, approver and admin.

    Done as an operator would, with the real CLI: migrate, create the keys once, register each credential
    once; then every node gets the same policy and the same `keys/`. On SQLite the store is the file in the
    home, so every node serves from that one home.
    """
    first = folder / "node-0"
    first.mkdir(parents=True)
    (first / "policy.yaml").write_text(POLICY)
    with ThreadPoolExecutor(2) as pool:
        # The schema, and the grant and log signing keys once, before any node could race to make them.
        for future in [pool.submit(_cli, first, store_url, "migrate"), pool.submit(_cli, first, None, "keys", "jwks")]:
            future.result()
    attributes = json.dumps({"known_recipients": ["DE89370400440532013000"]})
    commands = {"agent": ("principals", "add", AGENT, "--kind", "agent", "--attributes", attributes),
                "executor": ("principals", "add", EXECUTOR, "--kind", "service"),
                "approver": ("approvers", "add", APPROVER), "admin": ("admins", "add", ADMIN)}
    with ThreadPoolExecutor(len(commands)) as pool:
        made = {who: pool.submit(_cli, first, store_url, *command) for who, command in commands.items()}
        tokens = {who: future.result()["token"] for who, future in made.items()}
    if store_url is None:
        return [first] * nodes, tokens
    homes = [first]
    for number in range(1, nodes):
        home = folder / f"node-{number}"
        home.mkdir()
        shutil.copyfile(first / "policy.yaml", home / "policy.yaml")
        shutil.copytree(first / "keys", home / "keys")
        homes.append(home)
    return homes, tokens


class Launched:
    """A process a `Launcher` forked: what `Node` uses of `subprocess.Popen`, with the launcher doing the signalling
    and the reaping (a pid it has reaped is never signalled)."""

    def __init__(self, launcher: Launcher, pid: int) -> None:
        self.launcher, self.pid = launcher, pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        self.returncode = self.launcher.returncode(self.pid, timeout=0)
        return self.returncode

    def wait(self, timeout: float) -> int:
        self.returncode = self.launcher.returncode(self.pid, timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(f"launched pid {self.pid}", timeout)
        return self.returncode

    def send_signal(self, number: int) -> None:
        self.launcher.signal(self.pid, number)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Launcher:
    """`serve_launcher.py` running: it starts `interlock serve` processes by forking an interpreter that has
    already imported what they import, so a restart costs a fraction of a cold start (see its docstring)."""

    def __init__(self, log: Path) -> None:
        with log.open("ab") as errors:
            self._process = subprocess.Popen([sys.executable, str(LAUNCHER)], stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=errors, env=clean_env())
        self._answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self._exits: dict[int, int] = {}
        self._exited = threading.Condition()
        self._asking = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="launcher-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            message = json.loads(line)
            if "exited" in message:
                with self._exited:
                    self._exits[message["exited"]] = message["returncode"]
                    self._exited.notify_all()
            else:
                self._answers.put(message)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None
        with self._asking:
            self._process.stdin.write(json.dumps(request).encode() + b"\n")
            self._process.stdin.flush()
            try:
                return self._answers.get(timeout=STARTUP_SECONDS)
            except queue.Empty:
                raise AssertionError(f"the serve launcher did not answer (exit {self._process.poll()})") from None

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> Launched:
        return Launched(self, self._ask({"start": argv, "env": env, "cwd": os.getcwd(), "log": str(log)})["started"])

    def signal(self, pid: int, number: int) -> None:
        self._ask({"signal": pid, "number": int(number)})

    def returncode(self, pid: int, timeout: float) -> int | None:
        with self._exited:
            self._exited.wait_for(lambda: pid in self._exits, timeout)
            return self._exits.get(pid)

    def close(self) -> None:
        """Stop the launcher; it kills the children still running first."""
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=30)
        self._reader.join(timeout=30)  # it reads to the end of the launcher's output, then the pipe can close
        assert self._process.stdout is not None
        self._process.stdout.close()


@contextmanager
def launching(log: Path) -> Iterator[Launcher]:
    """A `Launcher` until the block ends (its errors in `log`); then it and every child it still has are stopped."""
    started = Launcher(log)
    try:
        yield started
    finally:
        started.close()


class Node:
    """One `interlock serve` process; it keeps its port across restarts, so clients keep its URL."""

    def __init__(self, name: str, home: Path, store_url: str | None, log: Path, *extra: str) -> None:
        self.name, self.home, self.store_url, self.log, self.extra = name, home, store_url, log, extra
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | Launched | None = None
        self.starts = 0

    def start(self, launcher: Launcher | None = None) -> None:
        """Start the process, a new interpreter or one forked by `launcher` (ready once `wait_ready` returns)."""
        assert self.process is None, f"{self.name} is running"
        argv = ["serve", "--port", str(self.port), *self.extra]
        if launcher is not None:
            self.process = launcher.start(argv, _env(self.home, self.store_url), self.log)
        else:
            with self.log.open("ab") as log:
                self.process = subprocess.Popen([sys.executable, "-m", "interlock.cli", *argv],
                                                env=_env(self.home, self.store_url), stdout=log,
                                                stderr=subprocess.STDOUT)
        self.starts += 1

    async def wait_ready(self) -> None:
        """Return once /readyz answers 200 (the node serves and its store answers); fail if the process exits."""
        deadline = time.monotonic() + STARTUP_SECONDS
        async with http_client(timeout=2) as client:
            while True:  # bounded: the process is starting, there is no event to wait on
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"{self.name} exited ({self.process.returncode}):\n{self.tail()}")
                try:
                    if (await client.get(f"{self.base}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"{self.name} was not ready within {STARTUP_SECONDS:g} s"
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        """`kill -9` this node's process (only it: by its own pid) and reap it."""
        assert self.process is not None, f"{self.name} is not running"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        """Stop gracefully (it signs a last checkpoint), or kill it if it does not stop within 10 s."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextmanager
def running(homes: list[Path], store_url: str | None, logs: Path, *extra: str) -> Iterator[list[Node]]:
    """One started, ready node per home until the block ends; then every one still running is stopped."""
    logs.mkdir(exist_ok=True)
    nodes = [Node(f"node-{i}", home, store_url, logs / f"node-{i}.log", *extra) for i, home in enumerate(homes)]
    try:
        for node in nodes:
            node.start()

        async def ready() -> None:
            await asyncio.gather(*(node.wait_ready() for node in nodes))

        asyncio.run(ready())
        yield nodes
    finally:
        for node in nodes:
            node.stop()


# --- what the store holds ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The store's grants, approvals, requests and audit log, all read in one transaction."""

    consumed_at: dict[str, int | None]  # jti -> consumed_at
    approvals: set[tuple[str, str, str]]  # (request_id, approver_id, verdict)
    requests: set[str]
    audit: list[tuple[int, dict[str, Any]]]  # (idx, leaf)

    def kinds(self) -> Counter[str]:
        return Counter(leaf["kind"] for _, leaf in self.audit)

    def jtis(self, kind: str) -> Counter[str]:
        """How many entries of `kind` name each grant (consumptions and refusals name it in `data.jti`)."""
        return Counter(leaf["data"]["jti"] for _, leaf in self.audit if leaf["kind"] == kind)

    def issued(self) -> Counter[str]:
        """How many entries issued each grant (a decision or an approval carrying `data.grant`)."""
        return Counter(leaf["data"]["grant"]["jti"] for _, leaf in self.audit if "grant" in leaf["data"])

    def check(self) -> None:
        """The invariants a crash must not break, whatever was in flight.

        Indexes 0..n-1 with no gap; no grant consumed twice; a grant is consumed exactly when the log says so
        (the state change and its entry commit together or not at all); every grant was issued by one entry.
        """
        assert [index for index, _ in self.audit] == list(range(len(self.audit))), "audit indexes have a gap"
        consumed_entries = self.jtis("grant.consumed")
        twice = {jti: n for jti, n in consumed_entries.items() if n > 1}
        assert not twice, f"grants consumed more than once: {twice}"
        consumed = {jti for jti, at in self.consumed_at.items() if at is not None}
        assert consumed - set(consumed_entries) == set(), "grants consumed without their grant.consumed entry"
        assert set(consumed_entries) - consumed == set(), "grant.consumed entries for grants the store holds unused"
        issued = self.issued()
        assert set(issued) == set(self.consumed_at), "grants without their issuing entry, or entries without grants"
        assert max(issued.values(), default=1) == 1, "a grant issued by more than one entry"


def _snapshot(rows: dict[str, list[Any]]) -> Snapshot:
    return Snapshot(
        consumed_at={jti: at for jti, at in rows["grants"]},
        approvals={(r, a, v) for r, a, v in rows["approvals"]},
        requests={r for (r,) in rows["requests"]},
        audit=[(idx, json.loads(bytes(leaf))) for idx, leaf in rows["audit"]],
    )


_QUERIES = {"grants": "SELECT jti, consumed_at FROM grants",
            "approvals": "SELECT request_id, approver_id, verdict FROM approvals",
            "requests": "SELECT id FROM requests",
            "audit": "SELECT idx, leaf FROM audit ORDER BY idx"}


def snapshot(home: Path, store_url: str | None) -> Snapshot:
    """Read the store in one snapshot, without writing anything (other nodes may be writing meanwhile)."""
    if store_url:
        with psycopg.connect(store_url, autocommit=True) as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return _snapshot({name: conn.execute(sql).fetchall() for name, sql in _QUERIES.items()})
    db = sqlite3.connect(f"file:{home / 'interlock.db'}?mode=ro", uri=True, isolation_level=None, timeout=30)
    try:
        db.execute("BEGIN")  # in WAL mode, every read until COMMIT sees one snapshot
        rows = {name: db.execute(sql).fetchall() for name, sql in _QUERIES.items()}
        db.execute("COMMIT")
        return _snapshot(rows)
    finally:
        db.close()
