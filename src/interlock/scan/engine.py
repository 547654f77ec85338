"""Run a scan: read the inputs, give each file to the scanner that recognises it, collect the findings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from interlock.scan.findings import FileProblem, Finding, ScanResult
from interlock.scan.sources import ParseError, Source, read_sources


class Scanner(Protocol):
    """One kind of input (`kind`, e.g. "github-workflow"): recognised by content, then scanned."""

    kind: str

    def recognizes(self, source: Source) -> bool:
        """Whether `source` is this kind of file, judged by its content (never by its name alone)."""

    def scan(self, source: Source) -> list[Finding]:
        """The findings in one file. May raise `ParseError` for a file it recognised but cannot read."""


def default_scanners() -> list[Scanner]:
    """Every scanner, most specific first: the first that recognises a file owns it."""
    return []


def scan(paths: Sequence[Path], scanners: Sequence[Scanner] | None = None) -> ScanResult:
    result = ScanResult()
    chosen = list(scanners) if scanners is not None else default_scanners()
    for source, named in read_sources(list(paths), result.problems):
        scanner = next((candidate for candidate in chosen if candidate.recognizes(source)), None)
        if scanner is None:
            unreadable = _parse_problem(source)
            if unreadable is not None:  # nobody recognised it because it cannot be read: say that
                result.problems.append(unreadable)
            elif named:
                result.problems.append(FileProblem(source.display, "scan.unknown_format",
                                                   "not a kind of file Interlock scans (see `interlock scan --help`)"))
            else:
                result.skipped += 1
            continue
        try:
            result.findings.extend(scanner.scan(source))
        except ParseError as exc:
            result.problems.append(FileProblem(source.display, "scan.unparseable", str(exc)))
            continue
        except RecursionError:
            result.problems.append(FileProblem(source.display, "scan.unparseable", "nested too deeply"))
            continue
        result.scanned[scanner.kind] = result.scanned.get(scanner.kind, 0) + 1
    result.findings.sort(key=lambda f: (f.location.path, f.location.line or 0, f.rule.id))
    return result


def _parse_problem(source: Source) -> FileProblem | None:
    if source.syntax not in ("yaml", "json"):
        return None
    try:
        source.documents()
    except ParseError as exc:
        return FileProblem(source.display, "scan.unparseable", str(exc))
    return None
