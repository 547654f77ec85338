"""Run a scan: read the inputs, give each file to the scanner that recognises it, collect the findings."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from interlock.scan.findings import FileProblem, Finding, IncompleteScan, ScanResult, SkippedInput
from interlock.scan.sources import ParseError, Source, read_sources

_log = logging.getLogger(__name__)


class Scanner(Protocol):
    """One kind of input (`kind`, e.g. "github-workflow"): recognised by content, then scanned."""

    @property
    def kind(self) -> str:
        """The kind of file it owns, e.g. "github-workflow"."""

    def recognizes(self, source: Source) -> bool:
        """Whether `source` is this kind of file, judged by its content (never by its name alone)."""

    def scan(self, source: Source) -> list[Finding]:
        """The findings in one file. May raise `ParseError` for a file it recognised but cannot read."""


@runtime_checkable
class CrossFileScanner(Scanner, Protocol):
    """A scanner whose files refer to each other (Kubernetes bindings name roles in other files): it gets every
    file it recognised at once, after the walk, instead of one `scan` per file."""

    def scan_together(self, sources: Sequence[Source]) -> list[Finding]:
        """The findings in all of `sources` together."""


def default_scanners(today: datetime.date | None = None) -> list[Scanner]:
    """Every scanner, most specific first: the first that recognises a file owns it.

    `today` is the date secret ages are measured at (default: the current UTC date; tests pass a fixed one).
    """
    from interlock.scan.agent_code import AgentCodeScanner
    from interlock.scan.aws_iam import AwsIamScanner
    from interlock.scan.github_workflows import GitHubWorkflowScanner
    from interlock.scan.k8s_rbac import KubernetesRbacScanner
    from interlock.scan.nhi_inventory import NhiInventoryScanner
    from interlock.scan.policies import PolicyScanner
    from interlock.scan.sarif_import import SarifImportScanner

    nhi = NhiInventoryScanner(today or datetime.datetime.now(datetime.UTC).date())
    return [SarifImportScanner(), PolicyScanner(), nhi, GitHubWorkflowScanner(), KubernetesRbacScanner(),
            AwsIamScanner(), AgentCodeScanner()]


def scan(paths: Sequence[Path], scanners: Sequence[Scanner] | None = None) -> ScanResult:
    result = ScanResult()
    chosen = list(scanners) if scanners is not None else default_scanners()
    together: dict[int, tuple[CrossFileScanner, list[Source]]] = {}
    for source, named in read_sources(list(paths), result.problems):
        result.paths[source.display] = source.path
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
            if isinstance(scanner, CrossFileScanner):
                together.setdefault(id(scanner), (scanner, []))[1].append(source)
            else:
                result.findings.extend(scanner.scan(source))
        except SkippedInput as exc:
            _log.info("%s skipped: %s", source.display, exc)
            result.skipped += 1
            continue
        except IncompleteScan as exc:  # what was read is reported, and the file is a problem: the scan is incomplete
            result.findings.extend(exc.findings)
            result.problems.append(FileProblem(source.display, "scan.incomplete", str(exc)))
        except ParseError as exc:
            result.problems.append(FileProblem(source.display, "scan.unparseable", str(exc)))
            continue
        except RecursionError:
            result.problems.append(FileProblem(source.display, "scan.unparseable", "nested too deeply"))
            continue
        except Exception as exc:  # noqa: BLE001 - a scanner's bug must not end the scan: the file is reported
            result.problems.append(_failed(source.display, scanner, exc))
            continue
        result.scanned[scanner.kind] = result.scanned.get(scanner.kind, 0) + 1
    for scanner, sources in together.values():
        try:
            result.findings.extend(scanner.scan_together(sources))
        except Exception as exc:  # noqa: BLE001 - as above, for every file the scanner had
            result.problems.extend(_failed(source.display, scanner, exc) for source in sources)
    result.findings.sort(key=lambda f: (f.location.path, f.location.line or 0, f.rule.id))
    return result


def _failed(display: str, scanner: Scanner, exc: Exception) -> FileProblem:
    _log.error("the %s scanner failed on %s", scanner.kind, display, exc_info=exc)
    return FileProblem(display, "scan.scanner_failed", f"the {scanner.kind} scanner failed: {type(exc).__name__}:"
                                                       f" {str(exc)[:300]} (a bug: please report it)")


def _parse_problem(source: Source) -> FileProblem | None:
    if source.syntax not in ("yaml", "json"):
        return None
    try:
        source.documents()
    except ParseError as exc:
        return FileProblem(source.display, "scan.unparseable", str(exc))
    return None
