"""NHI inventories: each problem found where it is, nothing found where there is none, bad documents reported."""

from __future__ import annotations

import datetime
import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from interlock.scan.engine import default_scanners, scan
from interlock.scan.nhi_inventory import SCHEMA_PATH, NhiInventoryScanner, schema

HERE = Path(__file__).parent / "nhi_inventories"
TODAY = datetime.date(2026, 11, 25)


def findings_of(path: Path, today: datetime.date = TODAY) -> list[tuple[str, int | None, str | None, str | None]]:
    result = scan([path], [NhiInventoryScanner(today)])
    assert result.problems == [], result.problems
    assert result.scanned == {"nhi-inventory": 1}
    return [(f.rule.id, f.location.line, f.identity, f.action) for f in result.findings]


def write(tmp_path: Path, text: str, name: str = "inventory.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_each_problem_is_found_on_its_line() -> None:
    assert findings_of(HERE / "risky.yaml") == [
        ("nhi.human_use", 9, "svc-payments", None),
        ("nhi.secret_unrotated", 11, "svc-payments", "payments-api-key"),
        ("nhi.secret_long_lived", 14, "svc-payments", "payments-api-key"),
        ("nhi.sensitive_without_second_control", 18, "svc-payments", "payments.transfer"),
        ("nhi.unused_privilege", 22, "svc-payments", "reports.read"),
        ("nhi.sensitive_without_second_control", 24, "svc-payments", "ledger.close"),
        ("nhi.unowned", 26, "deploy-bot", None),
        ("nhi.secret_long_lived", 33, "deploy-bot", "deploy-token"),
        ("nhi.sensitive_without_second_control", 35, "deploy-bot", "iam:*"),
    ]


def test_messages_name_the_values_involved() -> None:
    result = scan([HERE / "risky.yaml"], [NhiInventoryScanner(TODAY)])
    messages = {(f.rule.id, f.location.line): f.message for f in result.findings}
    assert messages[("nhi.secret_unrotated", 11)] == (
        "api_key `payments-api-key` of `svc-payments` was created on 2025-01-10 and never rotated: 684 days ago"
        " (threshold 90 days)")
    assert messages[("nhi.sensitive_without_second_control", 18)] == (
        "service_account `svc-payments` holds `payments.transfer` (sensitive: matches `payments.*`) with no second"
        " control")
    assert messages[("nhi.secret_long_lived", 33)] == (
        "token `deploy-token` of `deploy-bot` stays valid 731 days after issue, until 2028-10-01 (limit 365 days)")
    assert messages[("nhi.human_use", 9)] == "service_account `svc-payments` is used by 1 human(s): `alice@example.com`"
    high = [f for f in result.findings if f.severity == "high"]
    assert {f.rule.id for f in high} == {"nhi.sensitive_without_second_control"}
    assert all(f.rule.owasp_nhi and f.rule.nist_csf and f.rule.nist_800_207 for f in result.findings)


@pytest.mark.parametrize("name", ["clean.yaml", "clean.json"])
def test_a_well_kept_inventory_has_no_findings(name: str) -> None:
    assert findings_of(HERE / name) == []


def test_the_fixtures_follow_the_published_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    validator = jsonschema.Draft202012Validator(schema())
    for path in HERE.iterdir():
        document = yaml.safe_load(path.read_text())
        document = json.loads(json.dumps(document, default=str))  # YAML dates as the ISO strings JSON would carry
        assert list(validator.iter_errors(document)) == [], path
    assert SCHEMA_PATH.is_file()


@pytest.mark.parametrize(("rotated_days_ago", "reported"), [(90, False), (91, True)])
def test_the_rotation_threshold_is_measured_at_the_date_passed_in(tmp_path: Path, rotated_days_ago: int,
                                                                  reported: bool) -> None:
    rotated = TODAY - datetime.timedelta(days=rotated_days_ago)
    path = write(tmp_path, f"""\
        kind: nhi-inventory
        identities:
          - id: svc
            kind: service_account
            owner: ops
            credentials:
              - {{id: k, type: access_key, created: 2020-01-01, last_rotated: {rotated.isoformat()},
                 expires: {(rotated + datetime.timedelta(days=365)).isoformat()}}}
        """)
    assert (("nhi.secret_unrotated", 7, "svc", "k") in findings_of(path)) is reported
    assert findings_of(path, today=rotated) == []  # the same file, scanned on the day of rotation


def test_what_counts_as_sensitive_and_as_a_second_control(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        kind: nhi-inventory
        sensitive: ["Payments.*", "iam:Create*"]
        identities:
          - id: agent-1
            kind: agent
            owner: ml
            permissions:
              - payments.transfer
              - action: iam:*
                second_control: [none]
              - action: iam:CreateUser
                sensitive: false
              - action: iam:GetUser
              - action: payments.refund
                second_control: [none, approval]
              - action: reports.delete
                sensitive: true
                second_control: approval
              - action: reports.read
        """)
    assert [(rule, line, action) for rule, line, _, action in findings_of(path)] == [
        ("nhi.sensitive_without_second_control", 8, "payments.transfer"),  # a pattern, case-insensitively
        ("nhi.sensitive_without_second_control", 9, "iam:*"),  # a wildcard that covers a sensitive pattern
        ("nhi.sensitive_without_second_control", 11, "iam:CreateUser"),  # `sensitive: false` never exempts a match
    ]


def test_usage_findings_need_usage_data(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        kind: nhi-inventory
        identities:
          - id: svc
            kind: workload
            owner: ops
            permissions:
              - action: a.never
                last_used: never
              - action: a.recent
                last_used: 2026-11-01
              - action: a.unknown
        """)
    assert findings_of(path) == [("nhi.unused_privilege", 7, "svc", "a.never")]


def test_humans_and_short_lived_credentials_are_not_held_to_nhi_rules(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        kind: nhi-inventory
        identities:
          - id: bob
            kind: human
            used_by: [bob]
            credentials:
              - {type: federated}
              - {type: workload_identity}
          - id: ci
            kind: ci
            owner: ""
            used_by: []
            credentials:
              - {type: oidc}
        """)
    assert findings_of(path) == [("nhi.unowned", 11, "ci", None)]  # an empty owner is no owner


@pytest.mark.parametrize(("text", "expected"), [
    ("""\
     kind: nhi-inventory
     identities:
       - id: svc
         kind: service_acount
     """, "line 4: identities[0].kind: 'service_acount' is not one of"),
    ("""\
     kind: nhi-inventory
     identities:
       - id: svc
         kind: bot
         permissions:
           - action: payments.transfer
             sensitve: true
     """, "line 7: identities[0].permissions[0]: unknown key `sensitve` (keys of your own start with `x-`)"),
    ("""\
     kind: nhi-inventory
     identities:
       - id: svc
         kind: bot
         credentials:
           - id: k
             type: api_key
     """, "line 6: identities[0].credentials[0]: 'created' is a required property"),
    ("""\
     kind: nhi-inventory
     identities:
       - id: svc
         kind: bot
         permissions:
           - action: x
             last_used: sometimes
           - action: y
             second_control: maybe
     """, "line 7: identities[0].permissions[0].last_used: `sometimes` is not a date (YYYY-MM-DD) or `never`; "
          "line 9: identities[0].permissions[1].second_control: `maybe` is not one of `interlock`, `approval`, `none`"),
    ("""\
     kind: nhi-inventory
     identities:
       - id: svc
         kind: bot
         credentials:
           - {id: k, type: token, created: 2025-02-30}
     """, "line 6: `2025-02-30` is not a valid date"),
    ("""\
     kind: nhi-inventory
     sensitive: payments.*
     """, "line 1: (top level): 'identities' is a required property; line 2: sensitive: 'payments.*' is not of type"),
])
def test_an_invalid_inventory_is_a_problem_of_its_file_naming_path_and_line(tmp_path: Path, text: str,
                                                                             expected: str) -> None:
    bad = write(tmp_path, text, "bad.yaml")
    good = HERE / "risky.yaml"
    result = scan([bad, good], [NhiInventoryScanner(TODAY)])
    assert [(p.path, p.code) for p in result.problems] == [(str(bad), "scan.unparseable")]
    assert expected in result.problems[0].message, result.problems[0].message
    assert result.scanned == {"nhi-inventory": 1} and len(result.findings) == 9  # the scan went on


def test_a_json_inventory_with_an_impossible_date_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps({"kind": "nhi-inventory", "identities": [
        {"id": "a", "kind": "bot", "owner": "x", "credentials": [{"type": "token", "created": "2025-02-30"}]}]}))
    result = scan([path], [NhiInventoryScanner(TODAY)])
    assert [p.code for p in result.problems] == ["scan.unparseable"]
    assert "`created`: `2025-02-30` is not a date" in result.problems[0].message


def test_only_a_declared_inventory_is_recognised(tmp_path: Path) -> None:
    undeclared = write(tmp_path, """\
        identities:
          - id: svc
            kind: bot
        """, "identities.yaml")
    declared = write(tmp_path, """\
        $schema: ./nhi-inventory.schema.json
        identities:
          - id: svc
            kind: bot
        """, "declared.yaml")
    result = scan([tmp_path], [NhiInventoryScanner(TODAY)])
    assert result.scanned == {"nhi-inventory": 1} and result.skipped == 1
    assert [(f.location.path, f.rule.id) for f in result.findings] == [(declared.name, "nhi.unowned")]
    named = scan([undeclared], [NhiInventoryScanner(TODAY)])
    assert [p.code for p in named.problems] == ["scan.unknown_format"]


def test_the_default_scanners_take_the_date_from_the_caller() -> None:
    result = scan([HERE / "risky.yaml"], default_scanners(TODAY))
    assert result.scanned == {"nhi-inventory": 1}
    assert len(result.findings) == 9
    early = scan([HERE / "risky.yaml"], default_scanners(datetime.date(2025, 1, 11)))
    assert "nhi.secret_unrotated" not in {f.rule.id for f in early.findings}


def test_the_readme_example_finds_what_the_readme_says(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("### NHI inventories"):]
    example = section[section.index("```yaml\n") + 8:section.index("```\n", section.index("```yaml\n") + 8)]
    path = write(tmp_path, example)
    shown = [(rule, line) for rule, line, _, _ in findings_of(path)]
    assert ("nhi.sensitive_without_second_control", 12) in shown and ("nhi.secret_unrotated", 9) in shown
    assert "inventory.yaml:12" in section and "inventory.yaml:9" in section
