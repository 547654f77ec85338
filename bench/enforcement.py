"""Issue 5's rows: what an allowed call costs through the HTTP proxy and the MCP gateway, against calling the
same upstream directly — p50 of sequential calls, the subjects interleaved in rounds, all in one run.

Real processes on loopback: a minimal upstream (bench/enforcement_upstreams.py), `interlock proxy` and
`interlock mcp-gateway` on a temporary SQLite home whose policy allows the calls. The proxy is measured two
ways: the caller brings a grant (`Interlock-Grant`, made beforehand in this process: the proxy consumes it,
forwards, reports), and the proxy submits on the caller's behalf (submit, consume, forward, report). The
pass-through rows gate nothing: the proxy's hop alone, and, for comparison, a relay built on the SDK's own
server and client sessions (what those sessions cost, which the gateway's lean sessions avoid).
Target (issue 5): under 2 ms added per allowed call at p50.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.table import Table

from bench import processes

REPO = Path(__file__).resolve().parents[1]
TARGET_ADDED_MS = 2.0
POLICY_YAML = """\
version: 1
executors:
  "accounts.*": http-proxy
  "mcp.*": mcp-gateway
rules:
  - {id: balance-lookups, action: accounts.balance, effect: allow}
  - {id: mcp-lookups, action: mcp.bench.lookup, effect: allow}
"""
REQUESTER = {"id": "service:bench", "kind": "service"}
BALANCE = "/accounts/a1/balance"


@dataclass
class Row:
    point: str
    path: str
    direct: str  # the key of the row it is compared with
    latencies_ns: list[int] = field(default_factory=list)

    def p50_ms(self) -> float:
        return statistics.median(self.latencies_ns) / 1e6 if self.latencies_ns else float("nan")


@dataclass
class Results:
    rows: dict[str, Row]
    rounds: int
    calls_per_round: int

    def added_ms(self, row: Row) -> float:
        return row.p50_ms() - self.rows[row.direct].p50_ms()

    def ratio(self, row: Row) -> float:
        return row.p50_ms() / self.rows[row.direct].p50_ms()

    @property
    def gated(self) -> list[Row]:
        return [row for key, row in self.rows.items() if row.direct != key and "pass-through" not in key]

    @property
    def passed(self) -> bool:
        return all(self.added_ms(row) < TARGET_ADDED_MS for row in self.gated)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": {key: {"point": row.point, "path": row.path, "calls": len(row.latencies_ns),
                           "p50_ms": round(row.p50_ms(), 3),
                           **({} if row.direct == key else {"baseline": row.direct,
                                                             "added_ms": round(self.added_ms(row), 3),
                                                             "ratio": round(self.ratio(row), 2)})}
                     for key, row in self.rows.items()},
            "rounds": self.rounds, "calls_per_round": self.calls_per_round,
            "target": {"description": f"under {TARGET_ADDED_MS:g} ms added per allowed call at p50",
                       "passed": self.passed},
        }


# --- processes ------------------------------------------------------------------------------------------


def _process(argv: list[str], url: str, log: Path, what: str) -> AbstractContextManager[object]:
    return processes.running(argv, url, log, what, processes.clean_env(), cwd=REPO)


def _home(directory: Path) -> Path:
    home = directory / "home"
    home.mkdir(parents=True, mode=0o700)
    (home / "policy.yaml").write_text(POLICY_YAML)
    return home


def _proxy_config(directory: Path, upstream: str, *, submits: bool) -> Path:
    config = {
        "upstream": upstream, "audience": "bench-api", "executor": "http-proxy",
        "routes": [{"method": "GET", "path": "/accounts/{account}/balance", "action": "accounts.balance",
                    "resource": "account:{account}", "body": "none"},
                   {"method": "GET", "path": "/health", "pass_through": True}],
        **({"requester": REQUESTER} if submits else {}),
    }
    path = directory / ("proxy-submits.yaml" if submits else "proxy.yaml")
    path.write_text(yaml.safe_dump(config))
    return path


# --- the HTTP proxy ------------------------------------------------------------------------------------------


def _grants(home: Path, count: int) -> list[str]:
    """Grants for `GET /accounts/a1/balance`, made in this process (outside the timed calls)."""
    from interlock.home import Home

    gate = Home.resolve(home, None).open_gate()
    try:
        request = {"principal": REQUESTER, "action": "accounts.balance", "resource": "account:a1",
                   "params": {"path": {"account": "a1"}, "query": {}, "body": None}, "channel": "api",
                   "executor": "http-proxy"}
        return [gate.submit(request).grant or "" for _ in range(count)]
    finally:
        gate.store.close()


def _time_calls(client: httpx.Client, url: str, count: int, headers: list[dict[str, str]] | None = None) -> list[int]:
    latencies = []
    for index in range(count):
        started = time.perf_counter_ns()
        answer = client.get(url, headers=headers[index] if headers else None)
        latencies.append(time.perf_counter_ns() - started)
        if answer.status_code != 200:
            raise SystemExit(f"bench: {url} answered {answer.status_code}: {answer.text[:300]}")
    return latencies


def measure_proxy(directory: Path, rows: dict[str, Row], rounds: int, calls: int) -> None:
    home = _home(directory)
    upstream_port, proxy_port, submits_port = processes.free_port(), processes.free_port(), processes.free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    proxy, submits = f"http://127.0.0.1:{proxy_port}", f"http://127.0.0.1:{submits_port}"
    interlock = [sys.executable, "-m", "interlock.cli", "proxy", "--home", str(home)]
    with ExitStack() as stack:
        stack.enter_context(_process([sys.executable, "-m", "bench.enforcement_upstreams", "http", str(upstream_port)],
                                     f"{upstream}/health", directory / "upstream.log", "the upstream"))
        stack.enter_context(_process([*interlock, "--config", str(_proxy_config(directory, upstream, submits=False)),
                                      "--port", str(proxy_port)], f"{proxy}/health",
                                     directory / "proxy.log", "interlock proxy"))
        stack.enter_context(_process([*interlock, "--config", str(_proxy_config(directory, upstream, submits=True)),
                                      "--port", str(submits_port)], f"{submits}/health",
                                     directory / "proxy-submits.log", "interlock proxy (submits)"))
        client = stack.enter_context(httpx.Client(timeout=30))
        for _ in range(rounds):
            rows["http.direct"].latencies_ns += _time_calls(client, f"{upstream}{BALANCE}", calls)
            rows["http.pass-through"].latencies_ns += _time_calls(client, f"{proxy}/health", calls)
            headers = [{"Interlock-Grant": grant} for grant in _grants(home, calls)]
            rows["http.grant"].latencies_ns += _time_calls(client, f"{proxy}{BALANCE}", calls, headers)
            rows["http.submits"].latencies_ns += _time_calls(client, f"{submits}{BALANCE}", calls)


# --- the MCP gateway -------------------------------------------------------------------------------------------


async def _mcp_rounds(home: Path, directory: Path, rows: dict[str, Row], rounds: int, calls: int) -> None:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    upstream = [sys.executable, "-m", "bench.enforcement_upstreams", "mcp"]
    config = directory / "gateway.yaml"
    config.write_text(yaml.safe_dump({"server": "bench", "agent": {"id": "agent:bench", "kind": "agent"},
                                      "executor": "mcp-gateway"}))
    gateway = [sys.executable, "-m", "interlock.cli", "mcp-gateway", "--config", str(config), "--home", str(home),
               "--upstream", " ".join(upstream)]
    passthrough = [sys.executable, "-m", "bench.enforcement_upstreams", "mcp-passthrough"]
    env, errors = processes.clean_env(), (directory / "mcp.log").open("w")

    def params(argv: list[str]) -> StdioServerParameters:
        return StdioServerParameters(command=argv[0], args=argv[1:], env={**env, "PYTHONPATH": str(REPO)},
                                     cwd=str(REPO))

    try:
        async with stdio_client(params(upstream), errlog=errors) as (d_read, d_write), \
                ClientSession(d_read, d_write) as direct, \
                stdio_client(params(passthrough), errlog=errors) as (p_read, p_write), \
                ClientSession(p_read, p_write) as forwarded, \
                stdio_client(params(gateway), errlog=errors) as (g_read, g_write), \
                ClientSession(g_read, g_write) as gated:
            for session in (direct, forwarded, gated):
                await session.initialize()
            for _ in range(rounds):
                for key, session in (("mcp.direct", direct), ("mcp.pass-through", forwarded), ("mcp.gateway", gated)):
                    for _ in range(calls):
                        started = time.perf_counter_ns()
                        result = await session.call_tool("lookup", {"account": "a1"})
                        rows[key].latencies_ns.append(time.perf_counter_ns() - started)
                        if result.isError:
                            raise SystemExit(f"bench: {key} refused the call: {result.content}")
    finally:
        errors.close()


def run(directory: Path, console: Console, *, rounds: int = 10, calls: int = 50) -> Results:
    directory.mkdir(parents=True)
    rows = {
        "http.direct": Row("HTTP", "GET upstream directly", "http.direct"),
        "http.pass-through": Row("HTTP", "proxy, pass-through route (the hop alone)", "http.direct"),
        "http.grant": Row("HTTP", "proxy, caller brings a grant: consume → forward → report", "http.direct"),
        "http.submits": Row("HTTP", "proxy submits for the caller: submit → consume → forward → report",
                            "http.direct"),
        "mcp.direct": Row("MCP", "tools/call to the upstream directly (stdio)", "mcp.direct"),
        "mcp.pass-through": Row("MCP", "through the SDK's server + client sessions, gating nothing (for comparison)",
                                "mcp.direct"),
        "mcp.gateway": Row("MCP", "gateway: submit → consume → forward → report", "mcp.direct"),
    }
    with console.status("enforcement points: HTTP proxy"):
        measure_proxy(directory / "proxy", rows, rounds, calls)
    with console.status("enforcement points: MCP gateway"):
        (directory / "mcp").mkdir()
        asyncio.run(_mcp_rounds(_home(directory / "mcp"), directory / "mcp", rows, rounds, calls))
    return Results(rows, rounds, calls)


def print_report(console: Console, results: Results) -> None:
    table = Table(title="Enforcement points (issue 5): p50 of sequential allowed calls, in one run")
    for column in ("point", "path", "calls", "p50", "added", "ratio", f"< {TARGET_ADDED_MS:g} ms added"):
        table.add_column(column, justify="left" if column in ("point", "path") else "right")
    for key, row in results.rows.items():
        baseline = row.direct == key
        target = "" if baseline else ("met" if results.added_ms(row) < TARGET_ADDED_MS else "NOT met")
        table.add_row(row.point, row.path, str(len(row.latencies_ns)), f"{row.p50_ms():.3f} ms",
                      "baseline" if baseline else f"{results.added_ms(row):+.3f} ms",
                      "" if baseline else f"{results.ratio(row):.2f}×",
                      "" if baseline or "pass-through" in key else target)
    console.print(table)


def main() -> int:
    import tempfile

    console = Console()
    with tempfile.TemporaryDirectory(prefix="interlock-bench-enforcement-") as tmp:
        results = run(Path(tmp) / "enforcement", console)
        print_report(console, results)
        console.print_json(json.dumps(results.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
