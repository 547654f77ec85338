"""`interlock scan --format sarif`: SARIF 2.1.0 (OASIS), one run, as GitHub code scanning and other viewers read it.

Severity maps to `level` (high → error, medium → warning, low → note) and to GitHub's `security-severity`.
File paths are URIs relative to `base` (the current directory: run the scan from the repository root for code
scanning), absolute `file://` URIs outside it. Files that could not be scanned are `toolExecutionNotifications`,
and the invocation is then not `executionSuccessful`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from interlock.scan.findings import FileProblem, Finding, Rule, ScanResult, Severity
from interlock.scan.summary import fingerprints
from interlock.version import installed_version

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
LEVELS: dict[Severity, str] = {"high": "error", "medium": "warning", "low": "note"}
# GitHub code scanning ranks security results by this property of the rule: >= 7.0 high, >= 4.0 medium.
SECURITY_SEVERITY: dict[Severity, str] = {"high": "8.0", "medium": "5.5", "low": "3.0"}
FINGERPRINT_KEY = "interlockFinding/v1"


def log(result: ScanResult, base: Path) -> dict[str, Any]:
    """The SARIF log of one scan."""
    rules = result.rules()
    index = {rule.id: n for n, rule in enumerate(rules)}
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "interlock",
                "version": installed_version(),
                "rules": [_descriptor(rule) for rule in rules],
            }},
            "invocations": [{
                "executionSuccessful": not result.problems,
                "toolExecutionNotifications": [_notification(p, result, base) for p in result.problems],
            }],
            "results": [
                _result(finding, index[finding.rule.id], fingerprint, result, base)
                for finding, fingerprint in zip(result.findings, fingerprints(result.findings), strict=True)
            ],
        }],
    }


def render(result: ScanResult, base: Path) -> str:
    return json.dumps(log(result, base), indent=2, ensure_ascii=False) + "\n"


def _descriptor(rule: Rule) -> dict[str, Any]:
    mappings = [*rule.owasp_nhi, *rule.nist_csf, *rule.nist_800_207]
    return {
        "id": rule.id,
        "name": "".join(part.capitalize() for part in rule.id.replace(".", "_").split("_")),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.why},
        "help": {"text": rule.fix},
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": {
            "tags": list(dict.fromkeys(["security", "trust-to-action-bypass", *mappings])),
            "security-severity": SECURITY_SEVERITY[rule.severity],
            "owasp_nhi": list(rule.owasp_nhi),
            "nist_csf": list(rule.nist_csf),
            "nist_800_207": list(rule.nist_800_207),
        },
    }


def _result(finding: Finding, rule_index: int, fingerprint: str, result: ScanResult, base: Path) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(finding.location.path, result, base)}}
    if finding.location.line is not None and finding.location.line >= 1:
        physical["region"] = {"startLine": finding.location.line}
    properties: dict[str, Any] = {
        "severity": finding.severity,
        "fix": finding.remedy,
        "owasp_nhi": list(finding.rule.owasp_nhi),
        "nist_csf": list(finding.rule.nist_csf),
        "nist_800_207": list(finding.rule.nist_800_207),
    }
    if finding.identity is not None:
        properties["identity"] = finding.identity
    if finding.action is not None:
        properties["action"] = finding.action
    return {
        "ruleId": finding.rule.id,
        "ruleIndex": rule_index,
        "level": LEVELS[finding.severity],
        "message": {"text": finding.message},
        "locations": [{"physicalLocation": physical}],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint},
        "properties": properties,
    }


def _notification(problem: FileProblem, result: ScanResult, base: Path) -> dict[str, Any]:
    return {
        "level": "error",
        "message": {"text": f"{problem.code}: {problem.message}"},
        "descriptor": {"id": problem.code},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(problem.path, result, base)}}}],
    }


def _uri(display: str, result: ScanResult, base: Path) -> str:
    """The file as a URI reference: relative to `base` when under it (POSIX separators, percent-encoded)."""
    absolute = Path(os.path.abspath(result.paths.get(display, Path(display))))
    try:
        return quote(absolute.relative_to(os.path.abspath(base)).as_posix())
    except ValueError:
        return absolute.as_uri()
