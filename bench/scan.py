"""Issue 6's scan row: `interlock scan` over 10,000 files must take under 60 s on this machine.

The files are generated in the bench's temp dir, in 100 directories, one fifth of each kind the scanners read:
Interlock policies (YAML), GitHub Actions workflows (YAML), Kubernetes RBAC manifests (YAML), AWS IAM policy
documents (JSON) and Python agent tools. Each is small, valid and realistic; about half hold a finding.
Whichever scanners `engine.default_scanners()` has at run time read them; a kind without one is counted as skipped.

Timed in alternating rounds, on the same files (the page cache is warm for both after generation):
- scan: `engine.scan([root])` — the walk, the reads, recognition, every scanner, the findings;
- baseline: reading every file and parsing it plainly — `yaml.safe_load` for YAML and JSON, `ast.parse` for
  Python — the least any scanner of these files has to do. The ratio is scan ÷ baseline. A second baseline
  parses with libyaml's `CSafeLoader`, which the scan's own reader uses: scan ÷ that is the scanners' overhead.

Run alone with `python -m bench.scan [--files N] [--rounds N]`.
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from interlock.scan import engine

TARGET_SECONDS = 60.0
FILES = 10_000
DIRECTORIES = 100

POLICY = """\
version: 1
sensitive: ["payments.*", "access.*"]
groups:
  finance-{n}: ["user:a{n}", "user:b{n}", "user:c{n}"]
rules:
  - id: small-{n}
    action: payments.transfer
    when: "params.amount <= {limit}"
    effect: allow
  - id: large-{n}
    action: payments.transfer
    when: "params.amount > {limit}"
    effect: require_approval
    approval:
      approvers: ["group:finance-{n}"]
      quorum: {quorum}
      separate_channel: true
      expires_in: 30m
  - id: access-{n}
    action: access.grant
    {access}
"""
WORKFLOW = """\
name: release {n}
on:
  push:
    tags: ["v*"]
permissions:
  contents: read
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: make test
  publish:
    needs: build
    runs-on: ubuntu-latest
{environment}    permissions:
      id-token: write
    steps:
      - uses: actions/checkout@v4
      - run: python -m build
      - uses: pypa/gh-action-pypi-publish@release/v1
"""
RBAC = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: deployer-{n}
  namespace: {namespace}
rules:
  - apiGroups: ["apps"]
    resources: ["deployments"]
    verbs: [{verbs}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: deployer-{n}
  namespace: {namespace}
subjects:
  - kind: ServiceAccount
    name: ci-{n}
    namespace: {namespace}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: deployer-{n}
"""
AGENT = '''\
"""Tools of agent {n}."""

import requests
from langchain_core.tools import tool


@tool
def lookup_invoice(invoice_id: str) -> dict:
    """Read an invoice."""
    return requests.get(f"https://billing.internal/invoices/{{invoice_id}}", timeout=5).json()


@tool
def {verb}_refund(invoice_id: str, amount: float) -> dict:
    """Refund part of an invoice."""
    {body}
'''
ISSUE_REFUND = ('return requests.post("https://billing.internal/refunds",'
                ' json={"invoice": invoice_id, "amount": amount}, timeout=5).json()')
DRAFT_REFUND = 'return {"invoice": invoice_id, "amount": amount, "status": "draft"}'


def _iam(n: int) -> str:
    statements = [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"arn:aws:s3:::bucket-{n}/*"}]
    if n % 2:
        statements.append({"Effect": "Allow", "Action": ["iam:PassRole", "iam:CreateAccessKey"], "Resource": "*"})
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, indent=2) + "\n"


def generate(root: Path, files: int = FILES) -> Counter[str]:
    """Write `files` files under `root` (a fifth of each kind); returns how many of each were written."""
    written: Counter[str] = Counter()
    for n in range(files):
        directory = root / f"d{n % DIRECTORIES:03d}"
        directory.mkdir(exist_ok=True)
        kind = ("policy", "workflow", "rbac", "iam", "agent")[n % 5]
        bad = n % 2 == 0
        if kind == "policy":
            access = ("effect: allow" if bad else
                      f'effect: require_approval\n    approval: {{approvers: ["group:finance-{n}"], quorum: 2,'
                      " separate_channel: true}")
            text = POLICY.format(n=n, limit=100 + n, quorum=1 if bad else 2, access=access)
            path = directory / f"policy_{n}.yaml"
        elif kind == "workflow":
            text = WORKFLOW.format(n=n, environment="" if bad else "    environment: release\n")
            path = directory / f"release_{n}.yml"
        elif kind == "rbac":
            text = RBAC.format(n=n, namespace="production" if bad else f"team-{n}",
                               verbs='"*"' if bad else '"get", "list"')
            path = directory / f"rbac_{n}.yaml"
        elif kind == "iam":
            text, path = _iam(n), directory / f"iam_{n}.json"
        else:
            body = ISSUE_REFUND if bad else DRAFT_REFUND
            text, path = AGENT.format(n=n, verb="issue" if bad else "draft", body=body), directory / f"tools_{n}.py"
        path.write_text(text)
        written[kind] += 1
    return written


def _baseline(root: Path, loader: Any) -> int:
    parsed = 0
    for directory, _, names in os.walk(root):
        for name in names:
            text = Path(directory, name).read_text(encoding="utf-8")
            if name.endswith(".py"):
                ast.parse(text)
            else:
                list(yaml.load_all(text, Loader=loader))  # SafeLoader or CSafeLoader only
            parsed += 1
    return parsed


@dataclass
class ScanBench:
    files: int
    written: dict[str, int]
    scan_seconds: list[float] = field(default_factory=list)
    baseline_seconds: list[float] = field(default_factory=list)
    c_baseline_seconds: list[float] = field(default_factory=list)
    scanned: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    findings: int = 0
    problems: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)

    @property
    def scan(self) -> float:
        return statistics.median(self.scan_seconds)

    @property
    def baseline(self) -> float:
        return statistics.median(self.baseline_seconds)

    @property
    def c_baseline(self) -> float:
        return statistics.median(self.c_baseline_seconds)

    @property
    def passed(self) -> bool:
        return self.scan < TARGET_SECONDS and self.problems == 0

    def to_json(self) -> dict[str, Any]:
        return {"files": self.files, "written": self.written, "scan_seconds": self.scan_seconds,
                "baseline_seconds": self.baseline_seconds, "ratio": round(self.scan / self.baseline, 2),
                "c_baseline_seconds": self.c_baseline_seconds, "ratio_c": round(self.scan / self.c_baseline, 2),
                "target_seconds": TARGET_SECONDS, "passed": self.passed, "scanned": self.scanned,
                "skipped": self.skipped, "findings": self.findings, "problems": self.problems,
                "by_rule": self.by_rule}


def run(directory: Path, console: Console, files: int = FILES, rounds: int = 1) -> ScanBench:
    root = directory / "scan-corpus"
    root.mkdir(parents=True, exist_ok=True)
    with console.status(f"scan: writing {files:,} files"):
        bench = ScanBench(files, dict(generate(root, files)))
    for number in range(rounds):
        for loader, seconds in ((yaml.SafeLoader, bench.baseline_seconds),
                                (getattr(yaml, "CSafeLoader", yaml.SafeLoader), bench.c_baseline_seconds)):
            with console.status(f"scan: round {number + 1}/{rounds}, baseline with {loader.__name__}"):
                gc.collect()
                started = time.perf_counter()
                parsed = _baseline(root, loader)
                seconds.append(round(time.perf_counter() - started, 3))
                assert parsed == files
        with console.status(f"scan: round {number + 1}/{rounds}, engine.scan"):
            gc.collect()
            started = time.perf_counter()
            result = engine.scan([root])
            bench.scan_seconds.append(round(time.perf_counter() - started, 3))
    bench.scanned, bench.skipped = dict(sorted(result.scanned.items())), result.skipped
    bench.findings, bench.problems = len(result.findings), len(result.problems)
    bench.by_rule = dict(sorted(Counter(f.rule.id for f in result.findings).items()))
    return bench


def print_report(console: Console, bench: ScanBench) -> None:
    table = Table(title=f"interlock scan over {bench.files:,} generated files (issue 6: under {TARGET_SECONDS:.0f} s)")
    for column in ("subject", "seconds (median)", "rounds", "files/s", "÷ baseline"):
        table.add_column(column, justify="left" if column == "subject" else "right")
    table.add_row("engine.scan (walk, read, recognise, every scanner)", f"{bench.scan:.2f}",
                  " ".join(f"{s:.2f}" for s in bench.scan_seconds), f"{bench.files / bench.scan:,.0f}",
                  f"{bench.scan / bench.baseline:.2f}×")
    table.add_row("baseline: read + yaml.safe_load / ast.parse", f"{bench.baseline:.2f}",
                  " ".join(f"{s:.2f}" for s in bench.baseline_seconds), f"{bench.files / bench.baseline:,.0f}",
                  "1.00×")
    table.add_row("baseline with libyaml: read + CSafeLoader / ast.parse", f"{bench.c_baseline:.2f}",
                  " ".join(f"{s:.2f}" for s in bench.c_baseline_seconds), f"{bench.files / bench.c_baseline:,.0f}",
                  f"{bench.c_baseline / bench.baseline:.2f}×")
    console.print(table)
    scanned = ", ".join(f"{kind} {count:,}" for kind, count in bench.scanned.items()) or "none"
    console.print(f"files written: {', '.join(f'{k} {v:,}' for k, v in bench.written.items())}; scanned: {scanned};"
                  f" skipped {bench.skipped:,}; problems {bench.problems}; findings {bench.findings:,}")
    verdict = "[green]yes[/]" if bench.passed else "[red]NO[/]"
    console.print(f"under {TARGET_SECONDS:.0f} s with every file read: {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scan", description=__doc__)
    parser.add_argument("--files", type=int, default=FILES)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 140)
    with tempfile.TemporaryDirectory(prefix="interlock-bench-scan-", dir=os.environ.get("INTERLOCK_BENCH_DIR")) as tmp:
        bench = run(Path(tmp), console, args.files, args.rounds)
    print_report(console, bench)
    console.print_json(json.dumps(bench.to_json()))
    return 0 if bench.passed else 1


if __name__ == "__main__":
    sys.exit(main())
