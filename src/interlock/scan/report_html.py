"""`interlock scan --format html`: one self-contained page — summary charts (inline SVG), findings, file problems.

No script, no external style, font or image: the page's Content-Security-Policy allows nothing but its own
inline style block (by hash), so a value that slipped through escaping still could not load or run anything.
Every value from a scanned file is escaped by Jinja2's autoescape.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from importlib import resources

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from interlock.scan.findings import SEVERITIES, ScanResult
from interlock.scan.summary import FailOn, summarize
from interlock.version import installed_version

BAR_MAX_WIDTH = 280
LABEL_WIDTH = 110
ROW_HEIGHT = 26

_templates = Environment(loader=PackageLoader("interlock.scan", "templates"), autoescape=True,
                         undefined=StrictUndefined, keep_trailing_newline=True)
_CSS = resources.files("interlock.scan").joinpath("templates/report.css").read_text(encoding="utf-8")
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
CSP = (f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; img-src 'none'; script-src 'none'; "
       "base-uri 'none'; form-action 'none'")


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    width: int
    y: int
    css: str


@dataclass(frozen=True)
class Chart:
    title: str
    bars: tuple[Bar, ...]
    left: int = LABEL_WIDTH

    @property
    def width(self) -> int:
        return self.left + BAR_MAX_WIDTH + 50

    @property
    def height(self) -> int:
        return max(len(self.bars), 1) * ROW_HEIGHT


def _chart(title: str, counts: dict[str, int], css_prefix: str) -> Chart:
    largest = max(counts.values(), default=0) or 1
    bars = tuple(
        Bar(label, count, round(BAR_MAX_WIDTH * count / largest), n * ROW_HEIGHT, f"{css_prefix}{label}")
        for n, (label, count) in enumerate(counts.items())
    )
    return Chart(title, bars)


def render(result: ScanResult, fail_on: FailOn) -> str:
    summary = summarize(result, fail_on)
    findings = [
        {
            "severity": f.severity, "rule": f.rule.id, "title": f.rule.title, "message": f.message,
            "path": f.location.path, "line": f.location.line, "identity": f.identity, "action": f.action,
            "why": f.rule.why, "fix": f.remedy,
            "mappings": [*f.rule.owasp_nhi, *f.rule.nist_csf, *f.rule.nist_800_207],
        }
        for f in result.findings
    ]
    charts = [
        _chart("Findings by severity", {s: summary.by_severity[s] for s in SEVERITIES}, "sev-"),
        _chart("Findings by kind", summary.by_kind or {"none": 0}, "kind-"),
    ]
    return _templates.get_template("report.html.j2").render(
        csp=CSP, css=Markup(_CSS),  # noqa: S704 - our own stylesheet, hashed into the CSP above
        version=installed_version(), summary=summary, scanned_files=sum(summary.scanned.values()),
        charts=charts, findings=findings, problems=result.problems,
    )
