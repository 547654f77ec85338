"""`interlock scan --format json`: the `interlock-scan/1` document, a stable shape for scripts and CI.

```
{"format": "interlock-scan/1",
 "tool": {"name": "interlock", "version": "0.1.0"},
 "summary": {"findings": 3, "by_severity": {"high": 1, "medium": 1, "low": 1}, "by_kind": {"policy": 3},
             "scanned": {"interlock-policy": 2}, "skipped": 0, "problems": 0, "complete": true,
             "fail_on": "high", "failing": 1},
 "findings": [{"id": "<32 hex>:1", "rule": "policy.recognition_as_approval", "severity": "high", "title": "...",
               "path": "policy.yaml", "line": 12, "message": "...", "identity": "...", "action": "...",
               "why": "...", "fix": "...", "owasp_nhi": [...], "nist_csf": [...], "nist_800_207": [...]}],
 "problems": [{"path": "broken.yaml", "code": "scan.unparseable", "message": "line 3: ..."}]}
```
Fields are only ever added within `interlock-scan/1`; `line`, `identity` and `action` may be null. `id` stays the
same when lines move (it is the SARIF partial fingerprint too).
"""

from __future__ import annotations

import json
from typing import Any

from interlock.scan.findings import ScanResult
from interlock.scan.summary import FailOn, fingerprints, summarize
from interlock.version import installed_version

FORMAT = "interlock-scan/1"


def document(result: ScanResult, fail_on: FailOn) -> dict[str, Any]:
    summary = summarize(result, fail_on)
    findings = [
        {
            "id": finding_id,
            "rule": f.rule.id,
            "severity": f.severity,
            "title": f.rule.title,
            "path": f.location.path,
            "line": f.location.line,
            "message": f.message,
            "identity": f.identity,
            "action": f.action,
            "why": f.rule.why,
            "fix": f.remedy,
            "owasp_nhi": list(f.rule.owasp_nhi),
            "nist_csf": list(f.rule.nist_csf),
            "nist_800_207": list(f.rule.nist_800_207),
        }
        for f, finding_id in zip(result.findings, fingerprints(result.findings), strict=True)
    ]
    return {
        "format": FORMAT,
        "tool": {"name": "interlock", "version": installed_version()},
        "summary": {
            "findings": summary.findings, "by_severity": summary.by_severity, "by_kind": summary.by_kind,
            "scanned": summary.scanned, "skipped": summary.skipped, "problems": summary.problems,
            "complete": summary.complete, "fail_on": summary.fail_on, "failing": summary.failing,
        },
        "findings": findings,
        "problems": [{"path": p.path, "code": p.code, "message": p.message} for p in result.problems],
    }


def render(result: ScanResult, fail_on: FailOn) -> str:
    return json.dumps(document(result, fail_on), indent=2, ensure_ascii=False) + "\n"
