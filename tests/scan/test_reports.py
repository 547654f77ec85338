"""JSON, HTML and table reports: the documented shape, every value escaped, file problems always listed."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from html.parser import HTMLParser

from rich.console import Console

from interlock.scan import report_html, report_json, report_table
from interlock.scan.findings import FileProblem, Finding, Location, Rule, ScanResult

HOSTILE = '<script>alert(1)</script>"\'&[bold red]x[/]'
RULE = Rule(id="policy.example", title="Example", severity="high", why="why it matters", fix="the fix",
            owasp_nhi=("NHI5:2025 Overprivileged NHI",), nist_csf=("PR.AA-05 separation",),
            nist_800_207=("tenet 6",))
MEDIUM = Rule(id="workflow.example", title="Medium one", severity="medium", why="w", fix="f")


def result() -> ScanResult:
    return ScanResult(
        findings=[Finding(RULE, Location(f"dir/{HOSTILE}.yaml", 7), f"found {HOSTILE}", identity=HOSTILE,
                          action="payments.transfer"),
                  Finding(MEDIUM, Location("ci.yml", None), "second", fix="specific fix")],
        problems=[FileProblem(f"{HOSTILE}.json", "scan.binary", f"a binary file {HOSTILE}")],
        scanned={"interlock-policy": 1, "github-workflow": 1}, skipped=2,
    )


def test_json_document_shape() -> None:
    document = json.loads(report_json.render(result(), "high"))
    assert document["format"] == "interlock-scan/1" and document["tool"]["name"] == "interlock"
    assert document["summary"] == {
        "findings": 2, "by_severity": {"high": 1, "medium": 1, "low": 0}, "by_kind": {"policy": 1, "workflow": 1},
        "scanned": {"github-workflow": 1, "interlock-policy": 1}, "skipped": 2, "problems": 1, "complete": False,
        "fail_on": "high", "failing": 1}
    first, second = document["findings"]
    assert set(first) == {"id", "rule", "severity", "title", "path", "line", "message", "identity", "action", "why",
                          "fix", "owasp_nhi", "nist_csf", "nist_800_207"}
    assert first["identity"] == HOSTILE and first["line"] == 7
    assert first["owasp_nhi"] == ["NHI5:2025 Overprivileged NHI"]
    assert second["line"] is None and second["fix"] == "specific fix" and second["identity"] is None
    assert document["problems"] == [{"path": f"{HOSTILE}.json", "code": "scan.binary",
                                     "message": f"a binary file {HOSTILE}"}]
    assert json.loads(report_json.render(result(), "medium"))["summary"]["failing"] == 2
    assert json.loads(report_json.render(result(), "never"))["summary"]["failing"] == 0


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def test_html_is_self_contained_escaped_and_locked_down_by_its_csp() -> None:
    html = report_html.render(result(), "high")
    assert "<script" not in html and HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    page = _Page()
    page.feed(html)
    tags = [tag for tag, _ in page.tags]
    assert "script" not in tags and "link" not in tags and "img" not in tags and "iframe" not in tags
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)
    assert not any("style" in attrs for _, attrs in page.tags)  # no inline style attributes: the CSP forbids them
    assert not re.search(r"(?:src|href)\s*=", html) and "url(" not in html and "@import" not in html
    (csp,) = [attrs["content"] for tag, attrs in page.tags
              if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy"]
    assert csp is not None and "default-src 'none'" in csp and "script-src 'none'" in csp
    (style,) = page.styles
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in csp  # the one inline stylesheet is allowed by its hash, nothing else


def test_html_charts_and_tables_carry_the_counts() -> None:
    html = report_html.render(result(), "high")
    page = _Page()
    page.feed(html)
    bars = [(attrs["class"], attrs["width"]) for tag, attrs in page.tags if tag == "rect"]
    assert bars == [("bar sev-high", "280"), ("bar sev-medium", "280"), ("bar sev-low", "0"),
                    ("bar kind-policy", "280"), ("bar kind-workflow", "280")]
    assert "1 finding at or above high" in html and "scan.binary" in html and "the fix" in html
    assert "NHI5:2025 Overprivileged NHI" in html and "specific fix" in html
    clean = report_html.render(ScanResult(scanned={"interlock-policy": 3}), "high")
    assert "No finding at or above high" in clean and "No findings." in clean


def test_the_table_shows_values_as_written_not_as_markup() -> None:
    buffer = io.StringIO()
    report_table.render(result(), "high", Console(file=buffer, width=200, no_color=True))
    text = buffer.getvalue()
    assert "[bold red]x[/]" in text and "alert(1)" in text
    assert "scan.binary" in text and "1 at or above high: failed." in text
    assert "fix: the fix" in text and "fix: specific fix" in text


def test_the_table_verdicts() -> None:
    def verdict(scan: ScanResult, fail_on: str) -> str:
        buffer = io.StringIO()
        report_table.render(scan, fail_on, Console(file=buffer, width=200, no_color=True))  # type: ignore[arg-type]
        return buffer.getvalue().strip().splitlines()[-1]

    assert verdict(ScanResult(), "high").endswith("Nothing at or above high: passed.")
    assert verdict(ScanResult(problems=[FileProblem("x", "scan.binary", "b")]), "high").endswith(
        "Incomplete: some inputs could not be scanned.")
    assert verdict(result(), "never").endswith("Incomplete: some inputs could not be scanned.")
