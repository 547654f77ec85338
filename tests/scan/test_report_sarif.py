"""SARIF output, validated against the official SARIF 2.1.0 schema (tests/vectors/sarif, from OASIS)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from interlock.scan import engine, report_sarif
from interlock.scan.findings import FileProblem, Finding, Location, Rule, ScanResult
from interlock.scan.policies import PolicyScanner

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "vectors/sarif/sarif-schema-2.1.0.json").read_text())
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    return isinstance(value, str) and bool(urlsplit(value).scheme) and value.isascii() and " " not in value


@FORMATS.checks("uri-reference")
def _is_uri_reference(value: object) -> bool:
    return isinstance(value, str) and value.isascii() and not any(ch in value for ch in ' \\"<>{}|^`')


VALIDATOR = jsonschema.Draft4Validator(SCHEMA, format_checker=FORMATS)
RULE = Rule(id="policy.example_rule", title="An example", severity="high", why="because", fix="do this",
            owasp_nhi=("NHI5:2025 Overprivileged NHI",), nist_csf=("PR.AA-05 x",), nist_800_207=("tenet 4",))
LOW = Rule(id="workflow.other", title="Other", severity="low", why="w", fix="f")


def validate(log: dict[str, Any]) -> None:
    errors = sorted(VALIDATOR.iter_errors(log), key=lambda e: list(e.absolute_path))
    assert errors == [], [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def test_the_schema_and_the_validator_refuse_a_broken_log() -> None:
    jsonschema.Draft4Validator.check_schema(SCHEMA)
    result = ScanResult(findings=[Finding(RULE, Location("a.yaml", 3), "m")])
    log = report_sarif.log(result, Path.cwd())
    validate(log)
    log["runs"][0]["results"][0]["level"] = "critical"
    with pytest.raises(AssertionError):
        validate(log)
    log["runs"][0]["results"][0]["level"] = "error"
    log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] = "a b.yaml"
    with pytest.raises(AssertionError):
        validate(log)


def test_a_log_with_findings_and_problems_validates(tmp_path: Path) -> None:
    (tmp_path / "dir with space").mkdir()
    result = ScanResult(
        findings=[Finding(RULE, Location("dir with space/p.yaml", 12), "allowed <b>on</b> \"recognition\"",
                          identity="user:cfo", action="payments.transfer", fix="specific fix"),
                  Finding(LOW, Location("ci.yml", None), "no line")],
        problems=[FileProblem("broken.yaml", "scan.unparseable", "line 2: bad"),
                  FileProblem("/elsewhere/x.json", "scan.not_found", "`x` does not exist")],
        paths={"dir with space/p.yaml": tmp_path / "dir with space/p.yaml", "ci.yml": tmp_path / "ci.yml",
               "broken.yaml": tmp_path / "broken.yaml"},
    )
    log = report_sarif.log(result, tmp_path)
    validate(log)
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    # No informationUri: the project publishes no URL yet, and SARIF makes it optional.
    assert driver["name"] == "interlock" and driver["version"] and "informationUri" not in driver
    assert [r["id"] for r in driver["rules"]] == ["policy.example_rule", "workflow.other"]
    rule = driver["rules"][0]
    assert rule["name"] == "PolicyExampleRule"
    assert rule["fullDescription"]["text"] == "because" and rule["help"]["text"] == "do this"
    assert rule["defaultConfiguration"]["level"] == "error"
    assert {"NHI5:2025 Overprivileged NHI", "PR.AA-05 x", "tenet 4"} <= set(rule["properties"]["tags"])
    first, second = run["results"]
    assert first["ruleIndex"] == 0 and first["level"] == "error" and second["level"] == "note"
    location = first["locations"][0]["physicalLocation"]
    assert location == {"artifactLocation": {"uri": "dir%20with%20space/p.yaml"}, "region": {"startLine": 12}}
    assert "region" not in second["locations"][0]["physicalLocation"]
    assert first["properties"] == {
        "severity": "high", "fix": "specific fix", "identity": "user:cfo", "action": "payments.transfer",
        "owasp_nhi": ["NHI5:2025 Overprivileged NHI"], "nist_csf": ["PR.AA-05 x"], "nist_800_207": ["tenet 4"]}
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    notes = invocation["toolExecutionNotifications"]
    assert [n["descriptor"]["id"] for n in notes] == ["scan.unparseable", "scan.not_found"]
    assert notes[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "broken.yaml"
    assert notes[1]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "file:///elsewhere/x.json"


def test_fingerprints_survive_moved_lines_and_tell_equal_findings_apart() -> None:
    def fingerprints(*lines: int) -> list[str]:
        result = ScanResult(findings=[Finding(RULE, Location("p.yaml", line), "same") for line in lines])
        return [r["partialFingerprints"][report_sarif.FINGERPRINT_KEY]
                for r in report_sarif.log(result, Path.cwd())["runs"][0]["results"]]

    assert fingerprints(3) == fingerprints(30)
    first, second = fingerprints(3, 9)
    assert first != second and first.split(":")[0] == second.split(":")[0]


def test_a_real_scan_validates_and_says_it_succeeded(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(
        "version: 1\nsensitive: ['payments.*']\nrules:\n  - {id: open, action: 'payments.*', effect: allow}\n")
    log = report_sarif.log(engine.scan([tmp_path], [PolicyScanner()]), tmp_path)
    validate(log)
    (result,) = log["runs"][0]["results"]
    assert result["ruleId"] == "policy.recognition_as_approval"
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 4}
    assert log["runs"][0]["invocations"][0] == {"executionSuccessful": True, "toolExecutionNotifications": []}
