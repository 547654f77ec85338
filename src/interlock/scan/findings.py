"""What a scan reports: rules (what is checked and why), findings (where it was found), and file problems."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Severity = Literal["high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("high", "medium", "low")


@dataclass(frozen=True)
class Rule:
    """One check. `id` is stable (`<kind>.<name>`, lower case), used as the SARIF ruleId and in suppressions.

    A rule imported from another scanner's SARIF is `<tool>/<its own id>`, spelled as the tool spells it.
    """

    id: str
    title: str
    severity: Severity
    why: str  # why what it finds is a trust-to-action bypass
    fix: str  # a concrete fix
    owasp_nhi: tuple[str, ...] = ()
    nist_csf: tuple[str, ...] = ()
    nist_800_207: tuple[str, ...] = ()


@dataclass(frozen=True)
class Location:
    path: str  # as reported: relative to the scan root when under it
    line: int | None = None  # 1-based; None when the format carries no lines


@dataclass(frozen=True)
class Finding:
    """One place where `rule` holds: `identity` can reach `action` without a second control."""

    rule: Rule
    location: Location
    message: str  # what exactly was found here, naming the values involved
    identity: str | None = None
    action: str | None = None
    fix: str | None = None  # a fix specific to this finding; the rule's otherwise

    @property
    def severity(self) -> Severity:
        return self.rule.severity

    @property
    def remedy(self) -> str:
        return self.fix or self.rule.fix


@dataclass(frozen=True)
class FileProblem:
    """An input that could not be scanned (`scan.*` code); the scan went on without it."""

    path: str
    code: str
    message: str


class SkippedInput(Exception):  # not an error: the scanner declines the file, and says why
    """Raised by a scanner's `scan` for a file it recognised and leaves out on purpose: counted as skipped."""


class IncompleteScan(Exception):
    """Raised by a scanner's `scan` that reports `findings` but could not take the whole file (the message says
    what was left out): the findings are kept and the file is also a `scan.incomplete` problem."""

    def __init__(self, findings: list[Finding], message: str) -> None:
        super().__init__(message)
        self.findings = findings


@dataclass
class ScanResult:
    findings: list[Finding] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    scanned: dict[str, int] = field(default_factory=dict)  # kind -> number of files scanned
    # files seen while walking a directory that no scanner recognised, and files a scanner left out on purpose
    skipped: int = 0
    # display path -> the path as read, for reports that locate files from elsewhere (SARIF: the repository root)
    paths: dict[str, Path] = field(default_factory=dict)

    def rules(self) -> list[Rule]:
        """Every rule with at least one finding, in id order."""
        return sorted({f.rule.id: f.rule for f in self.findings}.values(), key=lambda rule: rule.id)

    def at_least(self, severity: Severity) -> list[Finding]:
        allowed = SEVERITIES[: SEVERITIES.index(severity) + 1]
        return [f for f in self.findings if f.severity in allowed]
