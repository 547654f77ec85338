"""`make bench`: build every subject, time them all in interleaved rounds, print the table, write results.json."""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import audit_log, cluster, enforcement, floor, http_paths, interlock_paths, peers, report, rule_scaling
from bench import scan as scan_bench
from bench.common import POLICY_YAML, REQUEST_BYTES
from bench.measure import Subject, calibrate, run_rounds
from interlock.core.policy import load_policy

RESULTS = Path(__file__).parent / "results.json"
NOTES = [
    "(a1), (c), (e) decide an already-parsed request in memory; (c) peers get pre-parsed policies.",
    "(a2) uses a policy with one allow rule and no history functions (the same rule as a1); the seed"
    " policy's history.sum() would add one SQL query per evaluated condition.",
    "(a2)/(d) run on a real SQLite file (WAL, synchronous=FULL) in the temp dir below; every allowed submit"
    " commits a request, a grant and one audit entry in one transaction; every consume one more.",
    "b.as_run is no target: the floor's steps as a2 must run them (in a row, committing a request, a grant and"
    " an audit entry), with no Interlock code; what is above it is Interlock's own work.",
    "agent-governance-toolkit-core rules cannot compare two request fields, so the known-recipient"
    " list is written into their rules.",
]


def _filesystem(path: Path) -> str:
    """The filesystem type holding `path` (fsync cost depends on it: tmpfs makes commits free)."""
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount, fstype, *_ = line.split()
            if str(path.resolve()).startswith(mount) and len(mount) > len(best):
                best, kind = mount, fstype
    except OSError:
        pass
    return kind


def _environment(directory: Path, settings: dict[str, Any]) -> dict[str, Any]:
    versions = {}
    for name in ("interlock", "cel-expr-python", "rfc8785", "cryptography", "PyJWT", "cedarpy", "casbin",
                 "agent-governance-toolkit-core"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(), "temp_dir_filesystem": _filesystem(directory),
        "packages": versions, **settings,
    }


def _subjects(directory: Path, console: Console) -> tuple[list[Subject], dict[int, float]]:
    gate = interlock_paths.open_gate(directory)
    grant = gate.submit(REQUEST_BYTES).grant or ""
    console.print("compiling policies for (e) …")
    scaling, compile_seconds = rule_scaling.scaling_subjects()
    subjects = [
        interlock_paths.decision_subject("a1", "decide(), 1 allow rule with CEL", load_policy(POLICY_YAML)),
        interlock_paths.submit_subject(gate),
        floor.cel_subject(),
        floor.canonical_digest_subject(),
        floor.signature_subject(grant),
        floor.sqlite_commit_subject(directory),
        floor.as_run_subject(directory / "as-run", grant),
        *peers.peer_subjects(),
        interlock_paths.round_trip_subject(gate),
        interlock_paths.consume_subject(gate),
        *scaling,
    ]
    return subjects, compile_seconds


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=50, help="interleaved rounds (default 50)")
    parser.add_argument("--budget", type=float, default=0.08, help="seconds per subject per round (default 0.08)")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 0.05 s: a smoke run, not a measurement")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument("--http", action=argparse.BooleanOptionalAction, default=True,
                        help="after the table, run `interlock serve` and load it over HTTP (issue 3; default on)")
    parser.add_argument("--http-seconds", type=float, default=4.0,
                        help="measured seconds per HTTP row, after a 1 s warm-up (default 4)")
    parser.add_argument("--audit", action=argparse.BooleanOptionalAction, default=True,
                        help="the audit log section: append rate, checkpoints, proofs at 10^4..10^6 entries")
    parser.add_argument("--cluster", action=argparse.BooleanOptionalAction, default=True,
                        help="the several-nodes section: 64 consumers over 3 nodes on PostgreSQL vs 1 on SQLite")
    parser.add_argument("--scan", action=argparse.BooleanOptionalAction, default=True,
                        help="the scan section: `interlock scan` over 10,000 generated files (issue 6: under 60 s)")
    parser.add_argument("--enforcement", action=argparse.BooleanOptionalAction, default=True,
                        help="the enforcement section: an allowed call through the HTTP proxy and the MCP gateway")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    args = parser.parse_args()
    rounds, budget = (3, 0.05) if args.quick else (args.rounds, args.budget)
    console = Console(width=None if sys.stdout.isatty() else 140)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="interlock-bench-", dir=os.environ.get("INTERLOCK_BENCH_DIR")) as tmp:
        directory = Path(tmp)
        environment = _environment(directory, {"rounds": rounds, "budget_s": budget, "temp_dir": tmp})
        subjects, compile_seconds = _subjects(directory, console)
        gc.collect()
        gc.freeze()  # setup objects (10k compiled rules) are never collected: gc.collect() stays cheap
        for subject in subjects:
            calibrate(subject, budget)
        with console.status("measuring") as status:
            run_rounds(subjects, rounds, lambda r: status.update(f"measuring: round {r}/{rounds}"))
        environment["loadavg_end"] = os.getloadavg()
        environment["wall_seconds"] = round(time.perf_counter() - started, 1)
        by_key = {s.key: s for s in subjects}
        notes = [*NOTES, f"temp dir filesystem: {environment['temp_dir_filesystem']}; load average"
                 f" {environment['loadavg_start'][0]:.2f} → {environment['loadavg_end'][0]:.2f} on"
                 f" {environment['cpus']} CPUs; {rounds} rounds of ~{budget:g} s per subject;"
                 f" {environment['wall_seconds']} s in all"]
        found = report.print_report(console, by_key, compile_seconds, notes)
        document = report.results_json(by_key, found, compile_seconds, environment, notes)
        http_passed = True
        if args.http:
            seconds, warmup = (0.5, 0.2) if args.quick else (args.http_seconds, 1.0)
            http = http_paths.run(directory / "http", console, seconds=seconds, warmup=warmup)
            http_paths.print_report(console, http)
            http_passed = http.passed
            document["http"] = http.to_json()
            environment["wall_seconds"] = round(time.perf_counter() - started, 1)
        sections_passed = True
        if args.audit:
            sizes, audit_rounds = ((10**3, 10**4), 2) if args.quick else ((10**4, 10**5, 10**6), 10)
            audit = audit_log.run(directory / "audit", console, sizes=sizes, rounds=audit_rounds)
            audit_log.print_report(console, audit)
            sections_passed &= audit.passed
            document["audit_log"] = audit.to_json()
        if args.cluster:
            grants, cluster_rounds = (200, 1) if args.quick else (1000, 3)
            nodes = cluster.run(directory / "cluster", console, grants=grants, clients=64, rounds=cluster_rounds)
            cluster.print_report(console, nodes)
            sections_passed &= nodes.exactly_once
            document["cluster"] = nodes.to_json()
        if args.scan:
            scanned = scan_bench.run(directory / "scan", console, files=1000 if args.quick else scan_bench.FILES,
                                     rounds=1 if args.quick else 3)
            scan_bench.print_report(console, scanned)
            sections_passed &= scanned.passed
            document["scan"] = scanned.to_json()
        if args.enforcement:
            points = enforcement.run(directory / "enforcement", console, rounds=2 if args.quick else 10,
                                     calls=20 if args.quick else 50)
            enforcement.print_report(console, points)
            sections_passed &= points.passed
            document["enforcement"] = points.to_json()
        environment["wall_seconds"] = round(time.perf_counter() - started, 1)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        console.print(f"results written to {args.json}")
    return 1 if args.strict and not (http_passed and sections_passed and all(t.passed for t in found)) else 0


if __name__ == "__main__":
    sys.exit(main())
