"""What every scan report shows the same way: counts, the verdict against `--fail-on`, stable finding ids."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from interlock.scan.findings import SEVERITIES, Finding, ScanResult, Severity

FailOn = Literal["high", "medium", "low", "never"]


@dataclass(frozen=True)
class Summary:
    findings: int
    by_severity: dict[Severity, int]
    by_kind: dict[str, int]  # rule id prefix (`policy`, `workflow`, …, or the tool of an imported one) -> findings
    scanned: dict[str, int]
    skipped: int
    problems: int
    fail_on: FailOn
    failing: int  # findings at or above `fail_on`

    @property
    def complete(self) -> bool:
        """Every input was scanned (no file problems)."""
        return self.problems == 0


def summarize(result: ScanResult, fail_on: FailOn) -> Summary:
    by_severity = Counter(f.severity for f in result.findings)
    by_kind = Counter(kind_of(f) for f in result.findings)
    failing = 0 if fail_on == "never" else len(result.at_least(fail_on))
    return Summary(
        findings=len(result.findings),
        by_severity={severity: by_severity.get(severity, 0) for severity in SEVERITIES},
        by_kind=dict(sorted(by_kind.items())),
        scanned=dict(sorted(result.scanned.items())),
        skipped=result.skipped,
        problems=len(result.problems),
        fail_on=fail_on,
        failing=failing,
    )


def kind_of(finding: Finding) -> str:
    """`policy` for `policy.…`; the tool for an imported `zizmor/…` (whose own id may hold dots)."""
    rule_id = finding.rule.id
    return rule_id.split("/", 1)[0] if "/" in rule_id else rule_id.split(".", 1)[0]


def fingerprints(findings: list[Finding]) -> list[str]:
    """A stable id per finding: the same finding keeps it when lines move; equal ones in a file are numbered."""
    seen: Counter[str] = Counter()
    ids = []
    for finding in findings:
        material = "\x1f".join((finding.rule.id, finding.location.path, finding.identity or "",
                                finding.action or "", finding.message))
        digest = hashlib.sha256(material.encode()).hexdigest()[:32]
        seen[digest] += 1
        ids.append(f"{digest}:{seen[digest]}")
    return ids
