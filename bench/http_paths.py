"""Issue 3's HTTP rows: `interlock serve` as a real process, loaded by httpx clients, against the same work in-process.

A temporary home gets bench/common.py's policy and two credentials made with the real CLI (the agent,
with the bench request's known recipients as attributes, and the executor). `interlock serve` runs as a
subprocess on a free loopback port; it is always terminated (only that process). The load generator is
this process: N clients, each with one keep-alive HTTP/1.1 connection on raw asyncio streams
(bench/raw_http.py), on one event loop. Two kinds of load:

- closed: each client sends its next request as soon as the previous one is answered (1, 8, 32 clients);
  after a warm-up, every response completed in a fixed window is counted and its latency kept. With 32
  clients always waiting, the mean latency is 32 / throughput (Little's law): a p99 under 20 ms at 32
  clients needs well over 1,600 answers/s, whatever the server.
- open (the issue's "sustains 1,500/s"): 32 clients together offer a fixed rate, each sending on its own
  schedule; a request's latency counts from the moment it was due, so a server that falls behind is
  charged for the wait (no coordinated omission).

The same requests are also decided in-process, sequentially, on a store in the same temp dir (the
subjects of bench/interlock_paths.py, with the collector on as in the server), so each HTTP row has a
ratio to in-process throughput.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench import interlock_paths, processes, raw_http
from bench.common import EXECUTOR, KNOWN_RECIPIENTS, POLICY_YAML, REQUEST, changed_requests, require
from bench.measure import p99

CLIENTS = (1, 8, 32)
OFFERED_RATES = (500.0, 750.0, 1_000.0, 1_500.0)
TARGET_RPS = 1_500.0
TARGET_P99_MS = 20.0
AGENT = str(REQUEST["principal"]["id"])
# The body an agent sends: the registry supplies its principal (id, kind, attributes), so the server decides
# exactly bench/common.py's REQUEST.
SUBMIT_BODY = {k: v for k, v in REQUEST.items() if k != "principal"}
ACTION = {k: REQUEST[k] for k in ("action", "resource", "params")}
PATHS = {"submit": "POST /v1/requests", "round_trip": "submit → consume"}
IN_PROCESS = {"submit": "Gate.submit", "round_trip": "submit → consume"}


@dataclass
class Row:
    """One measured load: a path at a number of concurrent clients (or in-process, clients=0)."""

    path: str
    clients: int
    seconds: float
    offered: float | None = None  # requests/s the clients offer together (open load); None: closed load
    latencies_ns: list[int] = field(default_factory=list)
    errors: int = 0
    server_cpu_s: float | None = None
    client_cpu_s: float = 0.0

    @property
    def key(self) -> str:
        if self.offered is not None:
            return f"h.{self.path}.{self.clients}@{self.offered:.0f}"
        return f"h.{self.path}.{self.clients}" if self.clients else f"h.{self.path}.inproc"

    @property
    def per_second(self) -> float:
        return len(self.latencies_ns) / self.seconds

    def percentile_ms(self, which: str) -> float:
        if not self.latencies_ns:
            return float("nan")
        ordered = sorted(self.latencies_ns)
        value = ordered[(len(ordered) - 1) // 2] if which == "p50" else p99(ordered)
        return value / 1e6

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "label": PATHS[self.path], "clients": self.clients, "seconds": self.seconds,
                "offered_per_second": self.offered,
                "completed": len(self.latencies_ns), "per_second": self.per_second, "errors": self.errors,
                "p50_ns": self.percentile_ms("p50") * 1e6, "p99_ns": self.percentile_ms("p99") * 1e6,
                "server_cpu_s": self.server_cpu_s, "client_cpu_s": self.client_cpu_s}


@dataclass
class HttpResults:
    rows: list[Row]
    in_process: dict[str, Row]
    startup_seconds: float
    passed: bool
    notes: list[str]

    def ratio(self, row: Row) -> float:
        return row.per_second / self.in_process[row.path].per_second

    def to_json(self) -> dict[str, Any]:
        target = _target(self.rows)
        return {
            "rows": {r.key: {**r.to_json(), "ratio_to_in_process": self.ratio(r)} for r in self.rows},
            "in_process": {r.key: r.to_json() for r in self.in_process.values()},
            "server_startup_s": self.startup_seconds,
            "target": {"description": f"HTTP allow path sustains {TARGET_RPS:,.0f} decisions/s offered by"
                       f" {max(CLIENTS)} clients with p99 under {TARGET_P99_MS:g} ms", "per_second": target.per_second,
                       "p99_ms": target.percentile_ms("p99"), "errors": target.errors, "passed": self.passed},
            "notes": self.notes,
        }


# --- the server -----------------------------------------------------------------------------------------------


def _cli(home: Path, *args: str) -> Any:
    """`interlock ARGS --home HOME` as a real process; its JSON output."""
    done = subprocess.run([sys.executable, "-m", "interlock.cli", *args, "--home", str(home)],
                          capture_output=True, timeout=60, env=processes.clean_env())
    require(done.returncode == 0, f"`interlock {' '.join(args)}` failed: {done.stderr.decode().strip()}")
    return json.loads(done.stdout)


def make_home(directory: Path) -> tuple[Path, dict[str, str]]:
    """A home with the bench policy and the agent's and executor's credentials; their tokens by role."""
    home = directory / "http-home"
    home.mkdir(mode=0o700)
    (home / "policy.yaml").write_text(POLICY_YAML)
    agent = _cli(home, "principals", "add", AGENT, "--kind", "agent",
                 "--attributes", json.dumps({"known_recipients": KNOWN_RECIPIENTS}))
    executor = _cli(home, "principals", "add", EXECUTOR, "--kind", "service")
    return home, {"agent": agent["token"], "executor": executor["token"]}


@contextmanager
def serving(home: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], float]]:
    """`interlock serve` on `home` and a free loopback port until the block ends: base URL, process, startup s."""
    port = processes.free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    with processes.running([sys.executable, "-m", "interlock.cli", "serve", "--port", str(port), "--home", str(home)],
                           f"{base}/healthz", home.parent / "http-serve.log", "interlock serve",
                           processes.clean_env()) as server:
        yield base, server, time.perf_counter() - started


# --- the load generator ---------------------------------------------------------------------------------------

Operation = Callable[[raw_http.Connection], Awaitable[bool]]


def operations(tokens: dict[str, str]) -> dict[str, Operation]:
    """One call of each path; True when the server answered as the rule says (allowed, then consumed)."""
    submit_body = json.dumps(SUBMIT_BODY).encode()

    async def submit(connection: raw_http.Connection) -> tuple[bool, str]:
        status, payload = await connection.post("/v1/requests", submit_body, tokens["agent"])
        if status != 201:
            return False, ""
        state = json.loads(payload)
        return state["outcome"] == "allowed" and bool(state.get("grant")), state.get("grant") or ""

    async def allow(connection: raw_http.Connection) -> bool:
        return (await submit(connection))[0]

    async def round_trip(connection: raw_http.Connection) -> bool:
        ok, grant = await submit(connection)
        if not ok:
            return False
        body = json.dumps({"grant": grant, **ACTION}).encode()
        status, payload = await connection.post("/v1/grants/consume", body, tokens["executor"])
        return status == 200 and json.loads(payload).get("consumed") is True

    return {"submit": allow, "round_trip": round_trip}


async def _check(base: str, tokens: dict[str, str]) -> None:
    """The served gate allows the bench request and denies the changed ones: a misconfigured server cannot look fast."""
    connection = raw_http.Connection("127.0.0.1", _port(base))
    try:
        require(await operations(tokens)["round_trip"](connection), "http: the server does not allow and consume")
    finally:
        connection.close()
    async with httpx.AsyncClient(base_url=base) as client:
        for name, changed in changed_requests().items():
            body = {k: v for k, v in changed.items() if k != "principal"}
            response = await client.post("/v1/requests", json=body,
                                         headers={"Authorization": f"Bearer {tokens['agent']}"})
            outcome = response.json().get("outcome") if response.status_code == 201 else response.status_code
            require(outcome == "denied", f"http: the server says {outcome} for the changed request ({name})")


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


async def _load(base: str, operation: Operation, row: Row, warmup: float, server_pid: int) -> None:
    """Closed load: `row.clients` clients, each sending again once answered, for warmup + row.seconds;
    offered load (`row.offered`): the clients send on a fixed schedule, latency counted from when a call was due.
    Calls completed in the window count."""
    pool = [raw_http.Connection("127.0.0.1", _port(base)) for _ in range(row.clients)]
    clock = time.perf_counter_ns
    start = clock() + int(warmup * 1e9)
    end = start + int(row.seconds * 1e9)
    interval = int(row.clients / row.offered * 1e9) if row.offered else 0

    async def client(number: int, connection: raw_http.Connection) -> None:
        due = clock() + number * interval // row.clients
        while due < end:
            if interval and (ahead := due - clock()) > 0:
                await asyncio.sleep(ahead / 1e9)
            sent = due if interval else clock()
            ok = await operation(connection)
            done = clock()
            if start <= done <= end:
                row.latencies_ns.append(done - sent)
                row.errors += not ok
            due = due + interval if interval else done

    async def measure_cpu() -> None:
        await asyncio.sleep((start - clock()) / 1e9)
        server, client_cpu = processes.cpu_seconds(server_pid), time.process_time()
        await asyncio.sleep(row.seconds)
        server_end = processes.cpu_seconds(server_pid)
        if server_end is not None and server is not None:
            row.server_cpu_s = server_end - server
        row.client_cpu_s = time.process_time() - client_cpu

    try:
        await asyncio.gather(measure_cpu(), *(client(n, c) for n, c in enumerate(pool)))
    finally:
        for connection in pool:
            connection.close()


# --- in-process -----------------------------------------------------------------------------------------------


def in_process(directory: Path, warmup: float, seconds: float) -> dict[str, Row]:
    """The same requests decided sequentially with Gate.submit / submit → consume (bench/interlock_paths.py)."""
    directory.mkdir(mode=0o700, exist_ok=True)
    gate = interlock_paths.open_gate(directory)
    try:
        subjects = {"submit": interlock_paths.submit_subject(gate),
                    "round_trip": interlock_paths.round_trip_subject(gate)}
        rows = {}
        clock = time.perf_counter_ns
        for path, subject in subjects.items():
            row = Row(path, 0, seconds)
            end = clock() + int(warmup * 1e9)
            while clock() < end:
                subject.fn()
            cpu = time.process_time()
            start = clock()
            end = start + int(seconds * 1e9)
            while (now := clock()) < end:
                subject.fn()
                row.latencies_ns.append(clock() - now)
            row.seconds = (clock() - start) / 1e9
            row.client_cpu_s = time.process_time() - cpu
            rows[path] = row
        return rows
    finally:
        gate.store.close()


# --- the whole section ----------------------------------------------------------------------------------------


def run(directory: Path, console: Console, *, seconds: float = 4.0, warmup: float = 1.0) -> HttpResults:
    """In-process rows, then the server's rows: every path at 1, 8 and 32 clients."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    console.print(f"HTTP: in-process baseline ({2 * (warmup / 2 + seconds / 2):g} s) …")
    baseline = in_process(directory / "http-in-process", warmup / 2, seconds / 2)
    home, tokens = make_home(directory)
    rows: list[Row] = []
    with serving(home) as (base, server, startup):
        raw_http.run(_check(base, tokens))
        ops = operations(tokens)
        with console.status("HTTP: measuring") as status:
            for path, operation in ops.items():
                for clients in CLIENTS:
                    status.update(f"HTTP: {PATHS[path]}, {clients} clients")
                    rows.append(Row(path, clients, seconds))
                    raw_http.run(_load(base, operation, rows[-1], warmup, server.pid))
            for rate in OFFERED_RATES:
                status.update(f"HTTP: {PATHS['submit']}, {rate:,.0f}/s offered by {max(CLIENTS)} clients")
                rows.append(Row("submit", max(CLIENTS), seconds, offered=rate))
                raw_http.run(_load(base, ops["submit"], rows[-1], warmup, server.pid))
    target = _target(rows)
    passed = (target.per_second >= 0.99 * TARGET_RPS and target.percentile_ms("p99") < TARGET_P99_MS
              and target.errors == 0)
    notes = [
        f"the load generator (this process: raw HTTP/1.1 connections on one"
        f" {'uvloop' if raw_http.has_uvloop() else 'asyncio'} loop) runs on the same {os.cpu_count()}-CPU machine"
        " as the server, so they compete for the CPUs: 'load CPU' is its share, 'server CPU' the server"
        " process's (100% = one core)",
        f"each row: {warmup:g} s warm-up, then every response completed in {seconds:g} s counts; a round trip is"
        " one submit then one consume of its grant (2 HTTP requests)",
        "rows with an offered rate: the clients send on a fixed schedule whether or not the server keeps up;"
        " latency counts from when each call was due; the target is judged on the row at"
        f" {TARGET_RPS:,.0f}/s (at least 99% of it answered in the window)",
        "in-process: the same request, Gate.submit / submit → consume called sequentially on a store in the same"
        " temp dir (collector on, as in the server); ratio = HTTP per second / in-process per second",
        f"the server is `interlock serve` (uvicorn, one process, its defaults); it answered /healthz"
        f" {startup:.1f} s after it was started",
    ]
    return HttpResults(rows, baseline, startup, passed, notes)


def _target(rows: list[Row]) -> Row:
    return next(r for r in rows if r.path == "submit" and r.offered == TARGET_RPS)


def _ms(value: float) -> str:
    return f"{value:.2f} ms"


def _cpu(cpu_s: float | None, seconds: float) -> str:
    return "" if cpu_s is None else f"{100 * cpu_s / seconds:.0f}%"


def print_report(console: Console, results: HttpResults) -> None:
    table = Table(title="Interlock over HTTP (issue 3): `interlock serve` subprocess, raw HTTP/1.1 load from the"
                  " same 2-core machine")
    for column, justify in (("row", "left"), ("what", "left"), ("clients", "right"), ("offered", "right"),
                            ("per s", "right"),
                            ("p50", "right"), ("p99", "right"), ("done", "right"), ("errors", "right"),
                            ("server CPU", "right"), ("load CPU", "right"), ("÷ in-proc", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for path, base in results.in_process.items():
        table.add_row(base.key, IN_PROCESS[path], "1 (seq)", "", f"{base.per_second:,.0f}",
                      _ms(base.percentile_ms("p50")), _ms(base.percentile_ms("p99")), f"{len(base.latencies_ns):,}",
                      "", "", _cpu(base.client_cpu_s, base.seconds), "base", style="dim")
    for row in results.rows:
        offered = "closed" if row.offered is None else f"{row.offered:,.0f}/s"
        table.add_row(row.key, PATHS[row.path], str(row.clients), offered, f"{row.per_second:,.0f}",
                      _ms(row.percentile_ms("p50")), _ms(row.percentile_ms("p99")), f"{len(row.latencies_ns):,}",
                      str(row.errors), _cpu(row.server_cpu_s, row.seconds), _cpu(row.client_cpu_s, row.seconds),
                      f"{results.ratio(row):.2f}×")
    console.print(table)
    target = _target(results.rows)
    verdict = "[green]PASS[/]" if results.passed else "[red]FAIL[/]"
    console.print(f"{verdict} HTTP allow path sustains {TARGET_RPS:,.0f} decisions/s offered by {max(CLIENTS)}"
                  f" clients with p99 under {TARGET_P99_MS:g} ms: {target.per_second:,.0f}/s answered,"
                  f" p99 {_ms(target.percentile_ms('p99'))}, {target.errors} errors")
    for note in results.notes:
        console.print(f"[dim]note: {note}[/]")


def main() -> int:
    """`python -m bench.http_paths`: the HTTP section alone (no results file)."""
    import tempfile

    console = Console(width=None if sys.stdout.isatty() else 140)
    with tempfile.TemporaryDirectory(prefix="interlock-bench-http-", dir=os.environ.get("INTERLOCK_BENCH_DIR")) as tmp:
        results = run(Path(tmp), console)
        print_report(console, results)
    return 0 if results.passed else 1


if __name__ == "__main__":
    sys.exit(main())
