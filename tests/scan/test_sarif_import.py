"""Importing other scanners' SARIF: real zizmor and checkov logs (tests/scan/imported/), the mapping, the skips."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from interlock.scan import engine, report_html, report_json, report_sarif, report_table, sarif_import
from interlock.scan.findings import Location
from interlock.scan.github_workflows import GitHubWorkflowScanner
from interlock.scan.sarif_import import SarifImportScanner

from .test_report_sarif import validate

IMPORTED = Path(__file__).resolve().parent / "imported"
ZIZMOR = IMPORTED / "zizmor-corpus-workflows.sarif"
CHECKOV = IMPORTED / "checkov-corpus-k8s-rbac.sarif"
CORPUS = Path(__file__).resolve().parents[1] / "corpus"
PWN_REQUESTS = ("tests/corpus/github-workflows/zizmorcore__zizmor/"
                "crates__github-actions-models__tests__sample-workflows__pwn-requests.yml")
INTERLOCK = Path(sys.executable).parent / "interlock"


def scan_log(tmp_path: Path, log: dict[str, Any], name: str = "tool.sarif") -> engine.ScanResult:
    (tmp_path / name).write_text(json.dumps(log))
    return engine.scan([tmp_path / name], [SarifImportScanner()])


def minimal(*results: dict[str, Any], rules: list[dict[str, Any]] | None = None, name: str = "acme") -> dict[str, Any]:
    driver: dict[str, Any] = {"name": name, "version": "2.0", "rules": rules or []}
    return {"version": "2.1.0", "runs": [{"tool": {"driver": driver}, "results": list(results)}]}


def result(rule_id: str = "r1", level: str | None = "warning", line: int = 3, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"ruleId": rule_id, "message": {"text": f"found {rule_id}"},
                             "locations": [{"physicalLocation": {"artifactLocation": {"uri": "ci.yml"},
                                                                 "region": {"startLine": line}}}], **extra}
    if level is not None:
        found["level"] = level
    return found


def test_real_zizmor_log_imports_every_result_with_its_severity_and_line() -> None:
    scanned = engine.scan([ZIZMOR], [SarifImportScanner()])
    assert scanned.problems == [] and scanned.scanned == {"sarif": 1}
    findings = scanned.findings
    assert len(findings) == 64
    assert Counter(f.severity for f in findings) == {"high": 29, "medium": 16, "low": 19}
    assert Counter(f.rule.id for f in findings) == {
        "zizmor/unpinned-uses": 14, "zizmor/artipacked": 14, "zizmor/template-injection": 12,
        "zizmor/cache-poisoning": 7, "zizmor/unsound-condition": 6, "zizmor/self-repository": 6,
        "zizmor/excessive-permissions": 3, "zizmor/dangerous-triggers": 1, "zizmor/superfluous-actions": 1}
    assert len({f.location.path for f in findings}) == 11
    (trigger,) = [f for f in findings if f.rule.id == "zizmor/dangerous-triggers"]
    assert trigger.severity == "high"  # level error
    assert (trigger.location.path, trigger.location.line) == (PWN_REQUESTS, 7)
    assert trigger.message.endswith("(imported from zizmor 1.32.0, `" + str(ZIZMOR) + "`)")
    assert trigger.rule.fix == ("Follow zizmor's guidance for `zizmor/dangerous-triggers`: "
                                "https://docs.zizmor.sh/audits/#dangerous-triggers")
    assert (trigger.rule.owasp_nhi, trigger.rule.nist_csf, trigger.rule.nist_800_207) == ((), (), ())
    assert trigger.identity is None and trigger.action is None
    injection = [f for f in findings if f.rule.id == "zizmor/template-injection"]
    assert {f.severity for f in injection} == {"low"}  # level note (zizmor's `kind: review`)
    assert min(f.location.line or 0 for f in injection if "flux2" in f.location.path) == 105
    permissions = sorted((f.location.path.rsplit("__", 1)[-1], f.severity) for f in findings
                         if f.rule.id == "zizmor/excessive-permissions")
    assert permissions == [("pwn-requests.yml", "medium"), ("workflow-read-all.yml", "medium"),
                           ("workflow-write-all.yml", "high")]
    for finding in findings:  # every location is a file of the corpus, as zizmor named it from the repository root
        assert (CORPUS.parent.parent / finding.location.path).is_file(), finding.location.path


def test_real_checkov_log_imports_with_namespaced_ids_and_no_borrowed_resource_in_the_fix() -> None:
    findings = engine.scan([CHECKOV], [SarifImportScanner()]).findings
    assert len(findings) == 52 and {f.severity for f in findings} == {"high"}  # checkov says `error` for all
    assert len({f.rule.id for f in findings}) == 27 and all(f.rule.id.startswith("checkov/CKV") for f in findings)
    (webhooks,) = [f for f in findings if f.rule.id == "checkov/CKV_K8S_155" and "failed" in f.location.path]
    assert webhooks.location == Location(
        "bridgecrewio__checkov/tests__kubernetes__checks__example_RbacControlWebhooks__clusterrole-failed-1.yaml", 2)
    assert webhooks.rule.title.startswith("Minimize ClusterRoles that grant control over validating or mutating")
    assert "Resource:" not in webhooks.remedy  # checkov's help names the first result's resource, not this one's
    assert webhooks.remedy == "See the documentation of Checkov 3.3.30 (https://checkov.io) for `CKV_K8S_155`."
    for finding in findings:
        assert (CORPUS / "k8s-rbac" / finding.location.path).is_file(), finding.location.path


def test_imported_findings_render_in_every_format_and_the_sarif_still_validates(tmp_path: Path) -> None:
    shutil.copy(CORPUS / "github-workflows/zizmorcore__zizmor/.github__workflows__release-pypi.yml",
                tmp_path / "ci.yml")
    shutil.copy(ZIZMOR, tmp_path / "zizmor.sarif")
    shutil.copy(CHECKOV, tmp_path / "checkov.sarif")
    scanned = engine.scan([tmp_path], [SarifImportScanner(), GitHubWorkflowScanner()])
    assert scanned.scanned == {"sarif": 2, "github-workflow": 1} and scanned.problems == []
    document = json.loads(report_json.render(scanned, "high"))
    assert document["summary"]["by_kind"] == {"checkov": 52, "zizmor": 64}  # the workflow itself has no finding
    log = report_sarif.log(scanned, tmp_path)
    validate(log)
    rules = {rule["id"]: rule for rule in log["runs"][0]["tool"]["driver"]["rules"]}
    assert {"zizmor/template-injection", "checkov/CKV_K8S_155"} <= set(rules)
    assert rules["checkov/CKV_K8S_155"]["properties"]["owasp_nhi"] == []
    html = report_html.render(scanned, "high")
    assert "zizmor/unsound-condition" in html and "imported from Checkov 3.3.30" in html
    buffer = io.StringIO()
    report_table.render(scanned, "high", Console(file=buffer, width=200, no_color=True))
    assert "checkov/CKV_K8S_155" in buffer.getvalue() and "116 findings" in buffer.getvalue()


def test_suppressed_absent_and_passing_results_are_left_out(tmp_path: Path) -> None:
    log = json.loads(ZIZMOR.read_text())
    results = log["runs"][0]["results"]
    results[0]["suppressions"] = [{"kind": "inSource"}]  # no status: accepted
    results[1]["suppressions"] = [{"kind": "external", "status": "underReview"}]
    results[2]["suppressions"] = [{"kind": "external", "status": "rejected"}]  # rejected: still reported
    results[3]["baselineState"] = "absent"
    results[4]["baselineState"] = "unchanged"
    results[5]["kind"] = "pass"
    results[6]["kind"] = "notApplicable"
    assert len(scan_log(tmp_path, log).findings) == 64 - 5


def test_severity_by_security_severity_bands_then_by_level(tmp_path: Path) -> None:
    rules = [{"id": "scored", "properties": {"security-severity": "7.0"}},
             {"id": "medium-score", "properties": {"security-severity": "4.0"}},
             {"id": "low-score", "properties": {"security-severity": "3.9"}},
             {"id": "defaulted", "defaultConfiguration": {"level": "error"}},
             {"id": "unscored", "properties": {"security-severity": "n/a"}}]
    log = minimal(result("scored", "note"), result("medium-score", "error"), result("low-score", "error"),
                  result("defaulted", None), result("plain", None), result("none", "none"), result("note", "note"),
                  result("unscored", "error"), result("own-score", "note", properties={"security-severity": 9.1}),
                  rules=rules)
    severities = {f.rule.id: f.severity for f in scan_log(tmp_path, log).findings}
    assert severities == {"acme/scored": "high", "acme/medium-score": "medium", "acme/low-score": "low",
                          "acme/defaulted": "high", "acme/plain": "medium", "acme/none": "low", "acme/note": "low",
                          "acme/unscored": "high", "acme/own-score": "high"}


def test_rule_text_fallbacks_message_templates_and_locations(tmp_path: Path) -> None:
    rules = [{"id": "T1", "name": "TemplateRule", "messageStrings": {"default": {"text": "{0} reaches {1}"}},
              "fullDescription": {"text": "why it matters"}, "help": {"text": "pin it"}}]
    base = {"SRC": {"uri": "file:///repo/"}}
    log = minimal(
        {"ruleIndex": 0, "message": {"id": "default", "arguments": ["token", "deploy"]},
         "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a%20b.yml", "uriBaseId": "SRC"},
                                             "region": {"startLine": 9}}}]},
        {"ruleId": "x.y", "message": {"markdown": "**bold**"},
         "locations": [{"physicalLocation": {"artifactLocation": {"index": 0}}}]},
        {"ruleId": "nowhere", "message": {"text": "no location"}},
        rules=rules, name="Acme Scanner")
    log["runs"][0]["originalUriBaseIds"] = base
    log["runs"][0]["artifacts"] = [{"location": {"uri": "dir/c.yml"}}]
    first, second, third = sorted(scan_log(tmp_path, log, "x.sarif").findings, key=lambda f: f.rule.id)
    assert first.rule.id == "acme-scanner/T1" and first.rule.title == "TemplateRule"
    assert first.message.startswith("token reaches deploy (imported from Acme Scanner 2.0")
    assert first.rule.why == "why it matters" and first.remedy == "pin it"
    assert first.location == Location("/repo/a b.yml", 9)
    assert third.rule.id == "acme-scanner/x.y" and third.message.startswith("**bold**")
    assert third.location == Location("dir/c.yml", None)
    assert second.rule.id == "acme-scanner/nowhere" and second.location.path == str(tmp_path / "x.sarif")
    assert second.remedy == "See the documentation of Acme Scanner 2.0 for `nowhere`."


def test_interlocks_own_sarif_is_skipped_not_reimported(tmp_path: Path) -> None:
    shutil.copy(CORPUS.parent.parent / PWN_REQUESTS, tmp_path / "ci.yml")
    first = engine.scan([tmp_path])
    assert first.findings
    (tmp_path / "interlock.sarif").write_text(report_sarif.render(first, tmp_path))
    second = engine.scan([tmp_path])
    assert second.findings == first.findings and second.problems == []
    assert second.skipped == first.skipped + 1
    named = engine.scan([tmp_path / "interlock.sarif"])  # named on the command line: still skipped, no problem
    assert (named.findings, named.problems, named.skipped) == ([], [], 1)
    mixed = json.loads((tmp_path / "interlock.sarif").read_text())
    mixed["runs"].append(minimal(result())["runs"][0])
    assert [f.rule.id for f in scan_log(tmp_path, mixed).findings] == ["acme/r1"]  # only the other tool's run


@pytest.mark.parametrize(("log", "expected"), [
    ({"version": "2.1.0", "runs": {}}, "`runs` is an object, not an array"),
    ({"version": "2.1.0", "runs": [{"results": []}]}, "`runs[0].tool` is missing, not an object"),
    ({"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]}, "`runs[0].tool.driver.name` is missing"),
    ({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "t"}}, "results": [1]}]},
     "`runs[0].results[0]` is a scalar, not an object"),
    ({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "t"}}, "results": [{"message": {"text": "m"}}]}]},
     "`runs[0].results[0]` names no rule"),
])
def test_malformed_sarif_is_a_problem_for_that_file_only(tmp_path: Path, log: dict[str, Any], expected: str) -> None:
    (tmp_path / "bad.sarif").write_text(json.dumps(log))
    (tmp_path / "good.sarif").write_text(json.dumps(minimal(result())))
    scanned = engine.scan([tmp_path], [SarifImportScanner()])
    (problem,) = scanned.problems
    assert (problem.path, problem.code) == ("bad.sarif", "scan.unparseable")
    assert expected in problem.message
    assert [f.rule.id for f in scanned.findings] == ["acme/r1"]


def test_only_sarif_2_1_0_is_recognised_whatever_the_file_is_called(tmp_path: Path) -> None:
    (tmp_path / "old.sarif").write_text(json.dumps({**minimal(result()), "version": "2.0.0"}))
    (tmp_path / "results.json").write_text(json.dumps(minimal(result())))
    scanned = engine.scan([tmp_path])
    assert scanned.skipped == 1 and [f.location.path for f in scanned.findings] == ["ci.yml"]
    (tmp_path / "broken.sarif").write_text('{"version": "2.1.0", "runs": [')
    (problem,) = engine.scan([tmp_path]).problems
    assert (problem.path, problem.code) == ("broken.sarif", "scan.unparseable") and "line 1" in problem.message


def test_a_log_over_the_bound_is_imported_up_to_it_most_severe_first(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sarif_import, "MAX_IMPORTED_RESULTS", 3)
    log = minimal(*(result(f"n{n}", "note") for n in range(4)), result("w", "warning"), result("e", "error"))
    scanned = scan_log(tmp_path, log)
    assert sorted(f.rule.id for f in scanned.findings) == ["acme/e", "acme/n0", "acme/w"]
    (problem,) = scanned.problems
    assert problem.code == "scan.incomplete" and scanned.scanned == {"sarif": 1}
    assert problem.message == ("6 results, over the 3 Interlock imports from one SARIF log:"
                               " the 3 least severe were left out")


def test_the_real_bound_takes_ten_thousand(tmp_path: Path) -> None:
    log = minimal(*(result("r", "warning", line=n + 1) for n in range(sarif_import.MAX_IMPORTED_RESULTS + 1)))
    scanned = scan_log(tmp_path, log)
    assert len(scanned.findings) == 10_000 and [p.code for p in scanned.problems] == ["scan.incomplete"]


@pytest.mark.slow
def test_cli_reports_a_workflow_and_a_zizmor_log_together(tmp_path: Path) -> None:
    shutil.copy(CORPUS / "github-workflows/python-poetry__poetry/.github__workflows__docs.yaml", tmp_path / "docs.yml")
    shutil.copy(ZIZMOR, tmp_path / "zizmor.sarif")
    done = subprocess.run([str(INTERLOCK), "scan", str(tmp_path), "--format", "json"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stderr  # high findings of both kinds
    report = json.loads(done.stdout)
    assert report["summary"]["scanned"] == {"github-workflow": 1, "sarif": 1}
    assert report["summary"]["by_kind"] == {"workflow": 1, "zizmor": 64}
    native = [f for f in report["findings"] if f["rule"].startswith("workflow.")]
    assert [(f["rule"], f["path"]) for f in native] == [("workflow.untrusted_checkout_with_secrets", "docs.yml")]
    imported = [f for f in report["findings"] if f["rule"] == "zizmor/dangerous-triggers"]
    assert [(f["path"], f["line"], f["severity"]) for f in imported] == [(PWN_REQUESTS, 7, "high")]
    again = subprocess.run([str(INTERLOCK), "scan", str(tmp_path), "--format", "sarif", "--output",
                            str(tmp_path / "interlock.sarif")], capture_output=True, text=True, timeout=120)
    assert again.returncode == 1, again.stderr
    rerun = json.loads(subprocess.run([str(INTERLOCK), "scan", str(tmp_path), "--format", "json"],
                                      capture_output=True, text=True, timeout=120).stdout)
    assert rerun["summary"]["findings"] == report["summary"]["findings"] and rerun["summary"]["skipped"] == 1
