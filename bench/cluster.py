"""Issue 4's cluster row: consume throughput and p99 with 64 concurrent consumers spread over 3 `interlock serve`
processes on one PostgreSQL, against the same load on one process on SQLite, as a ratio.

Each deployment is set up as an operator would, with the real CLI: a home with bench/common.py's policy, the
keys made once and copied to every node, the agent, executor and an admin registered once. Every round issues
fresh grants (untimed, over HTTP), consumes a warm-up batch, then times the consumption of `grants` grants:
`clients` consumers on one asyncio loop, consumer i on node i mod n with one keep-alive connection, each taking
the next grant from one shared list as soon as its previous consume is answered. Every grant must be consumed
(200) exactly once: afterwards each one is replayed on another node and must be refused with
`grant.already_used`, the store must hold one `grant.consumed` entry per grant, and the audit log must verify.
Rounds alternate between the two deployments; medians over rounds are reported.

The load generator speaks HTTP/1.1 on raw asyncio streams (bench/raw_http.py). Its CPU share is measured and
reported, with the servers' and the database backends'.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
from rich.console import Console
from rich.table import Table

from bench import processes, raw_http
from bench.common import EXECUTOR, KNOWN_RECIPIENTS, POLICY_YAML, REQUEST, require
from bench.measure import p99

GRANTS = 1_000
CLIENTS = 64
NODES = 3
ROUNDS = 3
STARTUP_SECONDS = 60.0
AGENT = str(REQUEST["principal"]["id"])
ADMIN = "user:bench-admin"
SUBMIT_BODY = json.dumps({k: v for k, v in REQUEST.items() if k != "principal"}).encode()
ACTION = {k: REQUEST[k] for k in ("action", "resource", "params")}
POSTGRES_ENV = ("INTERLOCK_BENCH_POSTGRES", "INTERLOCK_TEST_POSTGRES")
ISSUERS = 16  # concurrent submitters issuing the grants (untimed)


# --- deployments ------------------------------------------------------------------------------------------------


def _env(home: Path, store_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
    env["INTERLOCK_HOME"] = str(home)
    if store_url:
        env["INTERLOCK_STORE"] = store_url
    return env


def _cli(home: Path, store_url: str | None, *args: str) -> Any:
    done = subprocess.run([sys.executable, "-m", "interlock.cli", *args], capture_output=True, timeout=120,
                          env=_env(home, store_url))
    require(done.returncode == 0, f"`interlock {' '.join(args)}` failed: {done.stderr.decode().strip()}")
    return json.loads(done.stdout)


@dataclass
class Deployment:
    """`nodes` gate processes on one store, and the tokens of the agent, executor and admin."""

    name: str
    store: str  # "postgresql" or "sqlite"
    store_url: str | None
    homes: list[Path]
    tokens: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    @property
    def nodes(self) -> int:
        return len(self.homes)

    def snapshot(self) -> tuple[int, int, int]:
        """(grants consumed, `grant.consumed` entries, audit entries) as the store holds them."""
        sql = ("SELECT (SELECT count(*) FROM grants WHERE consumed_at IS NOT NULL), (SELECT count(*) FROM audit"
               " WHERE {kind} = 'grant.consumed'), (SELECT count(*) FROM audit)")
        if self.store_url:
            with psycopg.connect(self.store_url) as conn:
                row = conn.execute(sql.format(kind="convert_from(leaf, 'UTF8')::jsonb ->> 'kind'")).fetchone()
        else:
            import sqlite3

            db = sqlite3.connect(f"file:{self.homes[0] / 'interlock.db'}?mode=ro", uri=True)
            try:
                row = db.execute(sql.format(kind="json_extract(CAST(leaf AS TEXT), '$.kind')")).fetchone()
            finally:
                db.close()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])


def _prepare(directory: Path, name: str, nodes: int, store_url: str | None) -> Deployment:
    first = directory / f"{name}-node-0"
    first.mkdir(mode=0o700, parents=True)
    (first / "policy.yaml").write_text(POLICY_YAML)
    _cli(first, store_url, "migrate")
    _cli(first, None, "keys", "jwks")  # both signing keys, once, before any node starts
    tokens = {
        "agent": _cli(first, store_url, "principals", "add", AGENT, "--kind", "agent", "--attributes",
                      json.dumps({"known_recipients": KNOWN_RECIPIENTS}))["token"],
        "executor": _cli(first, store_url, "principals", "add", EXECUTOR, "--kind", "service")["token"],
        "admin": _cli(first, store_url, "admins", "add", ADMIN)["token"],
    }
    homes = [first]
    for number in range(1, nodes):  # every node: the same policy and keys (on SQLite: the one home)
        home = first
        if store_url:
            home = directory / f"{name}-node-{number}"
            home.mkdir(mode=0o700)
            shutil.copyfile(first / "policy.yaml", home / "policy.yaml")
            shutil.copytree(first / "keys", home / "keys")
        homes.append(home)
    return Deployment(name, "postgresql" if store_url else "sqlite", store_url, homes, tokens)


@contextmanager
def _serving(deployment: Deployment, logs: Path) -> Iterator[Deployment]:
    """Start every node of `deployment` and wait until each answers /readyz; stop them (only them) afterwards."""
    try:
        for number, home in enumerate(deployment.homes):
            port = processes.free_port()
            deployment.processes.append(processes.start(
                [sys.executable, "-m", "interlock.cli", "serve", "--port", str(port)],
                logs / f"{deployment.name}-node-{number}.log", _env(home, deployment.store_url)))
            deployment.ports.append(port)
        deadline = time.monotonic() + STARTUP_SECONDS
        for number, (process, port) in enumerate(zip(deployment.processes, deployment.ports, strict=True)):
            processes.wait_until_answers(process, f"http://127.0.0.1:{port}/readyz", "interlock serve",
                                         logs / f"{deployment.name}-node-{number}.log", deadline)
        yield deployment
    finally:
        processes.stop(deployment.processes)


@contextmanager
def _schema(postgres: str) -> Iterator[str]:
    """A fresh schema on `postgres` for the bench's deployment (dropped afterwards), as a store URL."""
    schema = f"ilk_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        # application_name marks the nodes' backends, whose CPU the bench reads.
        options = quote(f"-c search_path={schema}")
        yield f"{postgres}{'&' if '?' in postgres else '?'}options={options}&application_name={schema}"
    finally:
        with psycopg.connect(postgres, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


# --- one round --------------------------------------------------------------------------------------------------


@dataclass
class Round:
    """One timed consumption of `grants` grants on one deployment."""

    deployment: str
    grants: int
    seconds: float
    latencies_ns: list[int]
    errors: int
    replay_refused: int
    consumed_entries: int
    verified: bool
    server_cpu_s: float | None
    database_cpu_s: float | None
    client_cpu_s: float
    machine_busy: float | None  # share of all CPUs busy during the timed window

    @property
    def per_second(self) -> float:
        return len(self.latencies_ns) / self.seconds

    def percentile_ms(self, which: str) -> float:
        ordered = sorted(self.latencies_ns)
        return (ordered[(len(ordered) - 1) // 2] if which == "p50" else p99(ordered)) / 1e6

    def to_json(self) -> dict[str, Any]:
        return {"deployment": self.deployment, "grants": self.grants, "seconds": self.seconds,
                "per_second": self.per_second, "p50_ms": self.percentile_ms("p50"),
                "p99_ms": self.percentile_ms("p99"), "errors": self.errors, "replay_refused": self.replay_refused,
                "consumed_entries": self.consumed_entries, "verified": self.verified,
                "server_cpu_s": self.server_cpu_s, "database_cpu_s": self.database_cpu_s,
                "client_cpu_s": self.client_cpu_s, "machine_busy": self.machine_busy}


def _busy_jiffies() -> tuple[int, int] | None:
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def _backends_cpu(deployment: Deployment) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving this deployment's nodes (readable as root)."""
    if not deployment.store_url:
        return {}
    name = deployment.store_url.rsplit("application_name=", 1)[-1]
    with psycopg.connect(deployment.store_url, autocommit=True) as conn:
        pids = [row[0] for row in conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s"
                                               " AND pid <> pg_backend_pid()", (name,))]
    return {pid: cpu for pid in pids if (cpu := processes.cpu_seconds(pid)) is not None}


async def _issue(deployment: Deployment, count: int) -> list[bytes]:
    """`count` grants, submitted over every node (untimed); each as the consume body for its grant."""
    left = iter(range(count))
    bodies: list[bytes] = []

    async def issuer(number: int) -> None:
        connection = raw_http.Connection("127.0.0.1", deployment.ports[number % deployment.nodes])
        try:
            for _ in left:
                status, payload = await connection.post("/v1/requests", SUBMIT_BODY, deployment.tokens["agent"])
                state = json.loads(payload)
                require(status == 201 and state.get("outcome") == "allowed", f"cluster: submit answered {status}"
                        f" {payload[:200]!r}")
                bodies.append(json.dumps({"grant": state["grant"], **ACTION}).encode())
        finally:
            connection.close()

    await asyncio.gather(*(issuer(i) for i in range(ISSUERS)))
    return bodies


async def _consume(deployment: Deployment, bodies: list[bytes], clients: int,
                   shift: int = 0) -> tuple[list[int], list[tuple[int, bytes]], float]:
    """Consume every body once: `clients` consumers, consumer i on node (i + shift) mod n, sharing one list.
    Latency of each 200 (ns), every other answer, and the wall time from the first send to the last answer."""
    work = list(reversed(bodies))
    latencies: list[int] = []
    other: list[tuple[int, bytes]] = []
    clock = time.perf_counter_ns
    token = deployment.tokens["executor"]

    async def consumer(number: int) -> None:
        connection = raw_http.Connection("127.0.0.1", deployment.ports[(number + shift) % deployment.nodes])
        try:
            while work:
                body = work.pop()
                start = clock()
                status, payload = await connection.post("/v1/grants/consume", body, token)
                if status == 200:
                    latencies.append(clock() - start)
                else:
                    other.append((status, payload))
        finally:
            connection.close()

    started = clock()
    await asyncio.gather(*(consumer(i) for i in range(clients)))
    return latencies, other, (clock() - started) / 1e9


def _round(deployment: Deployment, grants: int, clients: int, warmup: int) -> Round:
    bodies = raw_http.run(_issue(deployment, grants + warmup))
    raw_http.run(_consume(deployment, bodies[:warmup], clients))
    timed = bodies[warmup:]
    before_consumed = deployment.snapshot()[1]
    pids = [p.pid for p in deployment.processes]
    server_before = [processes.cpu_seconds(pid) for pid in pids]
    backends_before = _backends_cpu(deployment)
    busy_before, client_before = _busy_jiffies(), time.process_time()
    latencies, other, seconds = raw_http.run(_consume(deployment, timed, clients))
    client_cpu = time.process_time() - client_before
    busy_after = _busy_jiffies()
    server_after = [processes.cpu_seconds(pid) for pid in pids]
    backends_after = _backends_cpu(deployment)
    server_cpu = (None if None in server_before or None in server_after
                  else sum(a - b for a, b in zip(server_after, server_before, strict=True)))  # type: ignore[operator]
    database_cpu = (sum(cpu - backends_before.get(pid, 0.0) for pid, cpu in backends_after.items())
                    if deployment.store_url else None)
    machine = (None if busy_before is None or busy_after is None
               else (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1]))
    # Exactly once: every grant again, on another node, must be refused as used; the log must agree and verify.
    _, replayed, _ = raw_http.run(_consume(deployment, timed, clients, shift=1))
    refused = sum(1 for status, payload in replayed
                  if status == 409 and json.loads(payload)["error"]["code"] == "grant.already_used")
    consumed_entries = deployment.snapshot()[1] - before_consumed
    verification = httpx.get(f"http://127.0.0.1:{deployment.ports[0]}/v1/audit/verify", timeout=120,
                             headers={"Authorization": f"Bearer {deployment.tokens['admin']}"}).json()
    return Round(deployment.name, len(timed), seconds, latencies, len(other), refused, consumed_entries,
                 bool(verification.get("ok")), server_cpu, database_cpu, client_cpu, machine)


# --- the whole section ------------------------------------------------------------------------------------------


@dataclass
class ClusterResults:
    rounds: list[Round]
    postgres: bool
    clients: int
    notes: list[str]

    def of(self, name: str) -> list[Round]:
        return [r for r in self.rounds if r.deployment == name]

    def median(self, name: str, what: str) -> float:
        rounds = self.of(name)
        if what == "per_second":
            return statistics.median(r.per_second for r in rounds)
        return statistics.median(r.percentile_ms(what) for r in rounds)

    @property
    def exactly_once(self) -> bool:
        return all(r.errors == 0 and len(r.latencies_ns) == r.grants and r.replay_refused == r.grants
                   and r.consumed_entries == r.grants and r.verified for r in self.rounds)

    def ratios(self) -> dict[str, float] | None:
        if not (self.of("postgresql-3") and self.of("sqlite-1")):
            return None
        return {"per_second": self.median("postgresql-3", "per_second") / self.median("sqlite-1", "per_second"),
                "p99": self.median("postgresql-3", "p99") / self.median("sqlite-1", "p99")}

    def to_json(self) -> dict[str, Any]:
        summary = {name: {"per_second": self.median(name, "per_second"), "p50_ms": self.median(name, "p50"),
                          "p99_ms": self.median(name, "p99")}
                   for name in ("postgresql-3", "sqlite-1") if self.of(name)}
        return {"rounds": [r.to_json() for r in self.rounds], "medians": summary, "ratio": self.ratios(),
                "exactly_once": self.exactly_once, "notes": self.notes}


def run(directory: Path, console: Console, *, grants: int = GRANTS, clients: int = CLIENTS, rounds: int = ROUNDS,
        postgres: str | None = None) -> ClusterResults:
    """Both deployments up at once, measured in alternating rounds (the idle one costs nothing meanwhile).

    `postgres`: a server URL (a fresh schema is made and dropped on it); default INTERLOCK_BENCH_POSTGRES, then
    INTERLOCK_TEST_POSTGRES; without one only the SQLite deployment is measured, and the report says so.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    logs = directory / "logs"
    logs.mkdir(exist_ok=True)
    postgres = postgres or next((os.environ[k] for k in POSTGRES_ENV if os.environ.get(k)), None)
    warmup = min(2 * clients, max(clients, grants // 4))
    measured: list[Round] = []
    with ExitStack() as stack:
        deployments = []
        if postgres:
            url = stack.enter_context(_schema(postgres))
            console.print(f"cluster: preparing {NODES} nodes on PostgreSQL …")
            deployments.append(stack.enter_context(_serving(_prepare(directory, "postgresql-3", NODES, url), logs)))
        console.print("cluster: preparing 1 node on SQLite …")
        deployments.append(stack.enter_context(_serving(_prepare(directory, "sqlite-1", 1, None), logs)))
        with console.status("cluster: measuring") as status:
            for number in range(rounds):
                order = deployments if number % 2 == 0 else list(reversed(deployments))
                for deployment in order:
                    status.update(f"cluster: round {number + 1}/{rounds}, {deployment.name}")
                    measured.append(_round(deployment, grants, clients, warmup))
    notes = [
        f"{clients} consumers on one asyncio loop ({'uvloop' if raw_http.has_uvloop() else 'asyncio'}, raw HTTP/1.1"
        f" keep-alive), consumer i on node i mod n; {grants:,} grants timed per round after {warmup} untimed;"
        f" {rounds} rounds alternating the deployments; medians over rounds",
        "every grant is then replayed on another node and must be refused (grant.already_used); the store must"
        " hold one grant.consumed entry per grant and the audit log must verify",
        f"everything runs on one {os.cpu_count()}-CPU machine: servers, PostgreSQL and the load generator share it"
        " ('load CPU', 'server CPU' and 'db CPU' are shares of one core; 'machine' of all CPUs)",
        "the SQLite deployment commits with synchronous=FULL; PostgreSQL is the machine's shared server with its"
        " own settings",
    ]
    if not postgres:
        notes.append(f"no PostgreSQL: set --postgres or {POSTGRES_ENV[0]} for the 3-node deployment and the ratio")
    return ClusterResults(measured, bool(postgres), clients, notes)


def _share(cpu_s: float | None, seconds: float) -> str:
    return "" if cpu_s is None else f"{100 * cpu_s / seconds:.0f}%"


def print_report(console: Console, results: ClusterResults) -> None:
    table = Table(title=f"Consume over HTTP, {results.clients} concurrent consumers (issue 4): {NODES} gate processes"
                  " on PostgreSQL against 1 on SQLite")
    for column in ("deployment", "round", "grants", "consumed/s", "p50", "p99", "errors", "replay refused",
                   "audit ok", "server CPU", "db CPU", "load CPU", "machine"):
        table.add_column(column, justify="left" if column == "deployment" else "right")
    for number, row in enumerate(results.rounds):
        table.add_row(row.deployment, str(number // (2 if results.postgres else 1) + 1), f"{row.grants:,}",
                      f"{row.per_second:,.0f}", f"{row.percentile_ms('p50'):.1f} ms",
                      f"{row.percentile_ms('p99'):.1f} ms", str(row.errors), f"{row.replay_refused:,}",
                      "yes" if row.verified and row.consumed_entries == row.grants else "NO",
                      _share(row.server_cpu_s, row.seconds), _share(row.database_cpu_s, row.seconds),
                      _share(row.client_cpu_s, row.seconds),
                      "" if row.machine_busy is None else f"{100 * row.machine_busy:.0f}%")
    console.print(table)
    for name in ("postgresql-3", "sqlite-1"):
        if results.of(name):
            console.print(f"median {name}: {results.median(name, 'per_second'):,.0f} consumed/s, p50"
                          f" {results.median(name, 'p50'):.1f} ms, p99 {results.median(name, 'p99'):.1f} ms")
    ratios = results.ratios()
    if ratios:
        console.print(f"PostgreSQL × 3 nodes ÷ SQLite × 1 node: throughput {ratios['per_second']:.2f}×,"
                      f" p99 {ratios['p99']:.2f}×")
    verdict = "[green]yes[/]" if results.exactly_once else "[red]NO[/]"
    console.print(f"every grant consumed exactly once, its entry in a log that verifies: {verdict}")
    for note in results.notes:
        console.print(f"[dim]note: {note}[/]")


def main() -> int:
    """`python -m bench.cluster`: this section alone (prints; `--json FILE` also writes the results)."""
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--grants", type=int, default=GRANTS, help=f"grants timed per round (default {GRANTS:,})")
    parser.add_argument("--clients", type=int, default=CLIENTS, help=f"concurrent consumers (default {CLIENTS})")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds per deployment (default {ROUNDS})")
    parser.add_argument("--quick", action="store_true", help="1 round of 200 grants: a smoke run")
    parser.add_argument("--postgres", help=f"PostgreSQL server URL (default ${POSTGRES_ENV[0]}, then"
                                           f" ${POSTGRES_ENV[1]})")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    grants, rounds = (200, 1) if args.quick else (args.grants, args.rounds)
    console = Console(width=None if sys.stdout.isatty() else 160)
    with tempfile.TemporaryDirectory(prefix="interlock-bench-cluster-",
                                     dir=os.environ.get("INTERLOCK_BENCH_DIR")) as tmp:
        results = run(Path(tmp), console, grants=grants, clients=args.clients, rounds=rounds, postgres=args.postgres)
    print_report(console, results)
    if args.json:
        args.json.write_text(json.dumps(results.to_json(), indent=2) + "\n")
    return 0 if results.exactly_once else 1


if __name__ == "__main__":
    sys.exit(main())
