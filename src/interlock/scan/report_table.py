"""`interlock scan` (the default `--format table`): findings and file problems as `rich` tables, then a verdict.

Every value from a scanned file goes into a `Text`, never into console markup, so `[bold]` in a file is shown
as written.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from interlock.scan.findings import ScanResult
from interlock.scan.summary import FailOn, summarize

STYLES = {"high": "bold red", "medium": "yellow", "low": "cyan"}


def render(result: ScanResult, fail_on: FailOn, console: Console) -> None:
    summary = summarize(result, fail_on)
    if result.findings:
        table = Table(title="Findings", show_lines=True, title_justify="left")
        table.add_column("severity", no_wrap=True)
        table.add_column("where", overflow="fold")
        table.add_column("rule", overflow="fold")
        table.add_column("identity → action", overflow="fold")
        table.add_column("finding, and the fix", overflow="fold", ratio=3)
        for f in result.findings:
            where = f.location.path + (f":{f.location.line}" if f.location.line else "")
            path = Text(f"{f.identity or '—'} → {f.action or '—'}")
            detail = Text(f.message)
            detail.append("\nfix: ", style="bold")
            detail.append(f.remedy)
            table.add_row(Text(f.severity, style=STYLES[f.severity]), Text(where), Text(f.rule.id), path, detail)
        console.print(table)
    if result.problems:
        problems = Table(title="Inputs that could not be scanned", title_justify="left")
        problems.add_column("file", overflow="fold")
        problems.add_column("code", no_wrap=True)
        problems.add_column("problem", overflow="fold")
        for p in result.problems:
            problems.add_row(Text(p.path), Text(p.code), Text(p.message))
        console.print(problems)
    scanned = ", ".join(f"{kind}: {count}" for kind, count in summary.scanned.items()) or "none"
    counts = ", ".join(f"{count} {severity}" for severity, count in summary.by_severity.items())
    verdict = Text(f"{summary.findings} finding{'s' if summary.findings != 1 else ''} ({counts}); "
                   f"files scanned: {scanned}; {summary.skipped} skipped; "
                   f"{summary.problems} could not be scanned. ")
    if summary.failing:
        verdict.append(f"{summary.failing} at or above {fail_on}: failed.", style="bold red")
    elif not summary.complete:
        verdict.append("Incomplete: some inputs could not be scanned.", style="yellow")
    elif fail_on == "never":
        verdict.append("--fail-on never: passed.", style="green")
    else:
        verdict.append(f"Nothing at or above {fail_on}: passed.", style="green")
    console.print(verdict)
