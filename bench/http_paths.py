"""Issue 3's HTTP rows: `interlock serve` as a real process, loaded by httpx clients, against the same work in-process.

A temporary home gets bench/common.py's policy and two credentials made with the real CLI (the agent,
with the bench request's known recipients as attributes, and the executor). `interlock serve` runs as a
subprocess on a free loopback port; it is always terminated (only that process). The load generator is
this process: N workers, each with its own `httpx.AsyncClient` (HTTP/1.1, one keep-alive connection),
on one asyncio loop, each sending its next request as soon as the previous one is answered. After a
warm-up, every response completed in a fixed window is counted and its latency kept.

The same requests are also decided in-process, sequentially, on a store in the same temp dir (the
subjects of bench/interlock_paths.py, with the collector on as in the server), so each HTTP row has a
ratio to in-process throughput.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
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

from bench import interlock_paths
from bench.common import EXECUTOR, KNOWN_RECIPIENTS, POLICY_YAML, REQUEST, changed_requests, require
from bench.measure import p99

CLIENTS = (1, 8, 32)
TARGET_RPS = 1_500.0
TARGET_P99_MS = 20.0
STARTUP_SECONDS = 30.0
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
    latencies_ns: list[int] = field(default_factory=list)
    errors: int = 0
    server_cpu_s: float | None = None
    client_cpu_s: float = 0.0

    @property
    def key(self) -> str:
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
        target = next(r for r in self.rows if r.path == "submit" and r.clients == max(CLIENTS))
        return {
            "rows": {r.key: {**r.to_json(), "ratio_to_in_process": self.ratio(r)} for r in self.rows},
            "in_process": {r.key: r.to_json() for r in self.in_process.values()},
            "server_startup_s": self.startup_seconds,
            "target": {"description": f"HTTP allow path ≥ {TARGET_RPS:,.0f} decisions/s with p99 under"
                       f" {TARGET_P99_MS:g} ms at {max(CLIENTS)} clients", "per_second": target.per_second,
                       "p99_ms": target.percentile_ms("p99"), "errors": target.errors, "passed": self.passed},
            "notes": self.notes,
        }


# --- the server -----------------------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}


def _cli(home: Path, *args: str) -> Any:
    """`interlock ARGS --home HOME` as a real process; its JSON output."""
    done = subprocess.run([sys.executable, "-m", "interlock.cli", *args, "--home", str(home)],
                          capture_output=True, timeout=60, env=_env())
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(home: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], float]]:
    """`interlock serve` on `home` and a free loopback port until the block ends: base URL, process, startup s."""
    port = _free_port()
    log_path = home.parent / "http-serve.log"
    started = time.perf_counter()
    with log_path.open("wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "interlock.cli", "serve", "--port", str(port),
                                   "--home", str(home)], env=_env(), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:  # bounded: the process is starting, there is no event to wait on
            if server.poll() is not None:
                raise SystemExit(f"bench: interlock serve exited ({server.returncode}):\n{log_path.read_text()}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: interlock serve did not answer /healthz within {STARTUP_SECONDS:g} s")
            time.sleep(0.05)
        yield base, server, time.perf_counter() - started
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), or None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


# --- the load generator ---------------------------------------------------------------------------------------

Operation = Callable[[httpx.AsyncClient], Awaitable[bool]]


def operations(tokens: dict[str, str]) -> dict[str, Operation]:
    """One call of each path; True when the server answered as the rule says (allowed, then consumed)."""
    agent = {"Authorization": f"Bearer {tokens['agent']}"}
    executor = {"Authorization": f"Bearer {tokens['executor']}"}
    submit_body = json.dumps(SUBMIT_BODY).encode()

    async def submit(client: httpx.AsyncClient) -> tuple[bool, str]:
        response = await client.post("/v1/requests", content=submit_body, headers=agent)
        if response.status_code != 201:
            return False, ""
        state = response.json()
        return state["outcome"] == "allowed" and bool(state.get("grant")), state.get("grant") or ""

    async def allow(client: httpx.AsyncClient) -> bool:
        return (await submit(client))[0]

    async def round_trip(client: httpx.AsyncClient) -> bool:
        ok, grant = await submit(client)
        if not ok:
            return False
        body = json.dumps({"grant": grant, **ACTION}).encode()
        response = await client.post("/v1/grants/consume", content=body, headers=executor)
        return response.status_code == 200 and response.json().get("consumed") is True

    return {"submit": allow, "round_trip": round_trip}


async def _check(base: str, tokens: dict[str, str]) -> None:
    """The served gate allows the bench request and denies the changed ones: a misconfigured server cannot look fast."""
    async with httpx.AsyncClient(base_url=base) as client:
        require(await operations(tokens)["round_trip"](client), "http: the server does not allow and consume")
        for name, changed in changed_requests().items():
            body = {k: v for k, v in changed.items() if k != "principal"}
            response = await client.post("/v1/requests", json=body,
                                         headers={"Authorization": f"Bearer {tokens['agent']}"})
            outcome = response.json().get("outcome") if response.status_code == 201 else response.status_code
            require(outcome == "denied", f"http: the server says {outcome} for the changed request ({name})")


async def _load(base: str, operation: Operation, clients: int, warmup: float, seconds: float,
                row: Row, server_pid: int) -> None:
    """`clients` workers, one keep-alive client each, for warmup + seconds; responses completed in the window count."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    pool = [httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) for _ in range(clients)]
    clock = time.perf_counter_ns
    window: dict[str, int] = {}
    cpu: dict[str, float | None] = {}

    async def worker(client: httpx.AsyncClient) -> None:
        while not window or clock() < window["end"]:
            start = clock()
            ok = await operation(client)
            end = clock()
            if window and window["start"] <= end <= window["end"]:
                row.latencies_ns.append(end - start)
                row.errors += not ok

    async def timer() -> None:
        await asyncio.sleep(warmup)
        cpu["server"], cpu["client"] = _cpu_seconds(server_pid), time.process_time()
        now = clock()
        window.update(start=now, end=now + int(seconds * 1e9))
        await asyncio.sleep(seconds)
        server_end = _cpu_seconds(server_pid)
        if server_end is not None and cpu["server"] is not None:
            row.server_cpu_s = server_end - cpu["server"]
        row.client_cpu_s = time.process_time() - (cpu["client"] or 0.0)

    try:
        await asyncio.gather(timer(), *(worker(c) for c in pool))
    finally:
        await asyncio.gather(*(c.aclose() for c in pool))


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
        asyncio.run(_check(base, tokens))
        ops = operations(tokens)
        with console.status("HTTP: measuring") as status:
            for path, operation in ops.items():
                for clients in CLIENTS:
                    status.update(f"HTTP: {PATHS[path]}, {clients} clients")
                    row = Row(path, clients, seconds)
                    asyncio.run(_load(base, operation, clients, warmup, seconds, row, server.pid))
                    rows.append(row)
    target = next(r for r in rows if r.path == "submit" and r.clients == max(CLIENTS))
    passed = (target.per_second >= TARGET_RPS and target.percentile_ms("p99") < TARGET_P99_MS
              and target.errors == 0)
    notes = [
        f"the load generator (this process: {max(CLIENTS)} httpx.AsyncClient workers on one asyncio loop) runs on"
        f" the same {os.cpu_count()}-CPU machine as the server, so they compete for the CPUs: 'load CPU' is its"
        " share, 'server CPU' the server process's (100% = one core)",
        f"each row: {warmup:g} s warm-up, then every response completed in {seconds:g} s counts; a round trip is"
        " one submit then one consume of its grant (2 HTTP requests)",
        "in-process: the same request, Gate.submit / submit → consume called sequentially on a store in the same"
        " temp dir (collector on, as in the server); ratio = HTTP per second / in-process per second",
        f"the server is `interlock serve` (uvicorn, one process, its default HTTP implementation and access"
        f" log); it answered /healthz {startup:.1f} s after it was started",
    ]
    return HttpResults(rows, baseline, startup, passed, notes)


def _ms(value: float) -> str:
    return f"{value:.2f} ms"


def _cpu(cpu_s: float | None, seconds: float) -> str:
    return "" if cpu_s is None else f"{100 * cpu_s / seconds:.0f}%"


def print_report(console: Console, results: HttpResults) -> None:
    table = Table(title="Interlock over HTTP (issue 3): `interlock serve` subprocess, httpx load from the same"
                  " 2-core machine")
    for column, justify in (("row", "left"), ("what", "left"), ("clients", "right"), ("per s", "right"),
                            ("p50", "right"), ("p99", "right"), ("done", "right"), ("errors", "right"),
                            ("server CPU", "right"), ("load CPU", "right"), ("÷ in-proc", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for path, base in results.in_process.items():
        table.add_row(base.key, IN_PROCESS[path], "1 (seq)", f"{base.per_second:,.0f}",
                      _ms(base.percentile_ms("p50")), _ms(base.percentile_ms("p99")), f"{len(base.latencies_ns):,}",
                      "", "", _cpu(base.client_cpu_s, base.seconds), "base", style="dim")
    for row in results.rows:
        table.add_row(row.key, PATHS[row.path], str(row.clients), f"{row.per_second:,.0f}",
                      _ms(row.percentile_ms("p50")), _ms(row.percentile_ms("p99")), f"{len(row.latencies_ns):,}",
                      str(row.errors), _cpu(row.server_cpu_s, row.seconds), _cpu(row.client_cpu_s, row.seconds),
                      f"{results.ratio(row):.2f}×")
    console.print(table)
    target = next(r for r in results.rows if r.path == "submit" and r.clients == max(CLIENTS))
    verdict = "[green]PASS[/]" if results.passed else "[red]FAIL[/]"
    console.print(f"{verdict} HTTP allow path ≥ {TARGET_RPS:,.0f} decisions/s with p99 under {TARGET_P99_MS:g} ms"
                  f" at {max(CLIENTS)} clients: {target.per_second:,.0f}/s, p99 {_ms(target.percentile_ms('p99'))},"
                  f" {target.errors} errors")
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
