"""`interlock scan` (find trust-to-action bypass paths) and `interlock policy diff` (find control downgrades)."""

from __future__ import annotations

import enum
import io
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from interlock.core.errors import RequestError

if TYPE_CHECKING:  # rich and the scanners load when a scan or a diff runs, not with every command
    from rich.console import Console

    from interlock.scan.findings import ScanResult

# `interlock scan` exit codes (2, bad usage, is the CLI's usual one).
EXIT_CLEAN, EXIT_FINDINGS, EXIT_INCOMPLETE = 0, 1, 5
# `interlock policy diff`: 1 when a sensitive action's control got weaker.
EXIT_DOWNGRADED = 1
TABLE_WIDTH = 160  # when the output is not a terminal: wide enough that findings stay readable in CI logs


class ReportFormat(enum.StrEnum):
    table = "table"
    json = "json"
    sarif = "sarif"
    html = "html"


class FailOn(enum.StrEnum):
    high = "high"
    medium = "medium"
    low = "low"
    never = "never"


class DiffFormat(enum.StrEnum):
    json = "json"
    table = "table"


def scan_exit_code(result: ScanResult, fail_on: str) -> int:
    """1 when a finding is at or above `fail_on`; else 5 when some input could not be scanned; else 0."""
    if fail_on != "never" and result.at_least(fail_on):  # type: ignore[arg-type]
        return EXIT_FINDINGS
    return EXIT_INCOMPLETE if result.problems else EXIT_CLEAN


def register(app: typer.Typer, policy_app: typer.Typer, refusals: Callable[[], AbstractContextManager[None]],
             print_json: Callable[[Any], None]) -> None:
    """Add `scan` to `app` and `diff` to the `policy` group."""

    @app.command("scan")
    def scan(
        paths: Annotated[list[Path], typer.Argument(help="Files and directories to scan (directories are walked).")],
        report_format: Annotated[ReportFormat, typer.Option("--format", help="Report format.")] = ReportFormat.table,
        fail_on: Annotated[FailOn, typer.Option(
            "--fail-on", help="Exit 1 when a finding has this severity or a higher one.")] = FailOn.high,
        output: Annotated[Path | None, typer.Option("--output", help="Write the report to FILE, not stdout.")] = None,
    ) -> None:
        """Find trust-to-action bypass paths: identities that reach a sensitive action with no second control.

        Files are recognised by content (policies, NHI inventories, workflows, RBAC, IAM, agent code); none is run.
        The SARIF logs of other scanners (zizmor, checkov…) found among them are imported into the same report.

        Exit 0: nothing at or above --fail-on. 1: findings at or above it. 2: usage error.
        5: no failing finding, but some inputs could not be scanned (the report lists them).
        """
        from interlock.scan import engine

        result = engine.scan(paths)
        text = _render(result, report_format, fail_on.value, output)
        if output is not None:
            with refusals():
                try:
                    output.write_text(text, encoding="utf-8")
                except OSError as exc:
                    raise RequestError("input.usage", f"cannot write --output {output}: {exc.strerror}") from None
            typer.echo(f"interlock: scan report written to {output}", err=True)
        elif text:
            sys.stdout.write(text)
        raise typer.Exit(scan_exit_code(result, fail_on.value))

    @policy_app.command("diff")
    def policy_diff(
        old: Annotated[Path, typer.Argument(help="The policy as it was.")],
        new: Annotated[Path, typer.Argument(help="The policy as it is proposed.")],
        diff_format: Annotated[DiffFormat, typer.Option("--format", help="Output format.")] = DiffFormat.json,
    ) -> None:
        """List every sensitive action whose control got weaker from OLD to NEW; exit 1 if any did, 2 on bad input."""
        from interlock.core.policy import load_policy
        from interlock.core.policy_diff import diff_policies

        with refusals():
            before, after = load_policy(_read(old)), load_policy(_read(new))
        downgrades = diff_policies(before, after)
        if diff_format is DiffFormat.json:
            print_json({"old": {"path": str(old), "version": before.version},
                        "new": {"path": str(new), "version": after.version},
                        "downgraded": bool(downgrades), "downgrades": [d.to_json() for d in downgrades]})
        else:
            from rich.table import Table
            from rich.text import Text

            console = _console(None)
            if downgrades:
                table = Table(title=f"Control downgrades from {old} to {new}", title_justify="left")
                for column in ("action", "downgrade", "old rule", "new rule", "what changed"):
                    table.add_column(column, overflow="fold")
                for d in downgrades:
                    table.add_row(Text(d.action), Text(d.kind), Text(d.old_rule or "—"), Text(d.new_rule or "—"),
                                  Text(d.message))
                console.print(table)
            console.print(Text(f"{len(downgrades)} downgrade{'s' if len(downgrades) != 1 else ''}"
                               " of the control over sensitive actions."))
        raise typer.Exit(EXIT_DOWNGRADED if downgrades else EXIT_CLEAN)


def _render(result: ScanResult, report_format: ReportFormat, fail_on: Any, output: Path | None) -> str:
    if report_format is ReportFormat.json:
        from interlock.scan import report_json

        return report_json.render(result, fail_on)
    if report_format is ReportFormat.sarif:
        from interlock.scan import report_sarif

        return report_sarif.render(result, Path.cwd())
    if report_format is ReportFormat.html:
        from interlock.scan import report_html

        return report_html.render(result, fail_on)
    from interlock.scan import report_table

    if output is None:
        report_table.render(result, fail_on, _console(None))
        return ""
    from rich.console import Console

    buffer = io.StringIO()
    report_table.render(result, fail_on, Console(file=buffer, width=TABLE_WIDTH, no_color=True, force_terminal=False))
    return buffer.getvalue()


def _console(file: Any) -> Console:
    from rich.console import Console

    console = Console(file=file)
    return console if console.is_terminal else Console(file=file, width=TABLE_WIDTH)


def _read(path: Path) -> bytes:
    try:
        return sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        raise RequestError("input.unreadable", f"cannot read {path}: {exc.strerror}") from None
