"""AWS IAM policies: handwritten documents for each rule and its near misses, then real public policies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from interlock.scan.aws_iam import RULES, AwsIamScanner
from interlock.scan.engine import default_scanners, scan
from interlock.scan.findings import Finding
from interlock.scan.sources import Source

CORPUS = Path(__file__).parent.parent / "corpus" / "aws-iam"


def findings_in(tmp_path: Path, document: Any, name: str = "policy.json") -> list[Finding]:
    path = tmp_path / name
    path.write_text(json.dumps(document, indent=2) if not isinstance(document, str) else document)
    result = scan([path], [AwsIamScanner()])
    assert not result.problems, result.problems
    assert result.scanned == {"aws-iam": 1}
    return result.findings


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


MFA = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}


def rule_ids(findings: list[Finding]) -> list[str]:
    return [finding.rule.id for finding in findings]


def test_admin_access_is_one_finding(tmp_path: Path) -> None:
    (finding,) = findings_in(tmp_path, policy(allow("*")))
    assert (finding.rule.id, finding.severity) == ("iam.admin_access", "high")
    assert finding.location.line == 4


@pytest.mark.parametrize(("action", "resource", "named"), [
    ("iam:CreateAccessKey", "arn:aws:iam::123456789012:user/alice", "iam:CreateAccessKey"),
    ("iam:Attach*", "*", "iam:AttachRolePolicy"),
    ("iam:Put*Policy", "*", "iam:PutRolePolicy"),
    ("kms:Schedule*", "*", "kms:ScheduleKeyDeletion"),
    ("KMS:disablekey", "*", "kms:DisableKey"),  # action names are case-insensitive
    ("aws-portal:*", "*", "aws-portal:ModifyBilling"),
    ("payments:*", "*", "payments:MakePayment"),
    ("s3:GetObject", "*", "s3:GetObject"),
    ("s3:PutBucketPolicy", "arn:aws:s3:::reports", "s3:PutBucketPolicy"),
    ("rds:ModifyDBSnapshotAttribute", "*", "rds:ModifyDBSnapshotAttribute"),
    ("dynamodb:Export*", "*", "dynamodb:ExportTableToPointInTime"),
    ("cloudtrail:StopLogging", "*", "cloudtrail:StopLogging"),
    ("organizations:LeaveOrganization", "*", "organizations:LeaveOrganization"),
    ("sts:AssumeRole", "*", "sts:AssumeRole"),
])
def test_sensitive_actions_without_mfa(tmp_path: Path, action: str, resource: str, named: str) -> None:
    (finding,) = findings_in(tmp_path, policy(allow(action, resource)))
    assert finding.rule.id == "iam.sensitive_action_without_mfa"
    assert finding.action is not None and named in finding.action.split(", ")


@pytest.mark.parametrize("statement", [
    allow("s3:GetObject", "arn:aws:s3:::reports/*"),  # one bucket, not all data
    allow("sts:AssumeRole", "arn:aws:iam::123456789012:role/deployer"),  # one role
    allow(["iam:Get*", "iam:List*"]),  # reading IAM
    allow("kms:Decrypt"),
    allow("ec2:Describe*"),
    allow("iam:CreateAccessKey", "*", Condition=MFA),
    allow("iam:CreateAccessKey", "*", Condition={"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}),
    {"Effect": "Deny", "Action": "*", "Resource": "*"},  # a Deny is never a finding
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"},  # trust policy
])
def test_near_misses(tmp_path: Path, statement: dict[str, Any]) -> None:
    assert findings_in(tmp_path, policy(statement)) == []


def test_mfa_if_exists_is_no_second_control_and_says_why(tmp_path: Path) -> None:
    condition = {"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}}
    (finding,) = findings_in(tmp_path, policy(allow("iam:CreateAccessKey", Condition=condition)))
    assert finding.rule.id == "iam.sensitive_action_without_mfa" and "IfExists" in finding.message


def test_a_deny_unless_mfa_in_the_same_document_is_the_second_control(tmp_path: Path) -> None:
    deny = {"Effect": "Deny", "NotAction": ["iam:ListMFADevices", "sts:GetSessionToken"], "Resource": "*",
            "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}}
    assert findings_in(tmp_path, policy(allow("iam:CreateAccessKey"), deny)) == []
    narrow_deny = {**deny, "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}}
    assert rule_ids(findings_in(tmp_path, policy(allow("iam:CreateAccessKey"), narrow_deny))) == [
        "iam.sensitive_action_without_mfa"]


def test_not_action_allows_everything_else(tmp_path: Path) -> None:
    statement = {"Effect": "Allow", "NotAction": ["iam:*", "organizations:*", "sts:*"], "Resource": "*"}
    (finding,) = findings_in(tmp_path, policy(statement))
    assert finding.rule.id == "iam.sensitive_action_without_mfa"
    assert finding.action is not None
    assert "kms:ScheduleKeyDeletion" in finding.action and "iam:CreateAccessKey" not in finding.action
    assert "`NotAction`" in finding.message
    everything_but_read = {"Effect": "Allow", "NotAction": "*", "Resource": "*"}
    assert findings_in(tmp_path, policy(everything_but_read)) == []


def test_pass_role_on_any_role(tmp_path: Path) -> None:
    assert rule_ids(findings_in(tmp_path, policy(allow("iam:PassRole")))) == ["iam.passrole_any_role"]
    role_star = allow("iam:PassRole", "arn:aws:iam::123456789012:role/*")
    assert rule_ids(findings_in(tmp_path, policy(role_star))) == ["iam.passrole_any_role"]
    one_role = allow("iam:PassRole", "arn:aws:iam::123456789012:role/lambda-exec")
    assert findings_in(tmp_path, policy(one_role)) == []


def test_iam_star_finds_both_iam_changes_and_pass_role(tmp_path: Path) -> None:
    assert sorted(rule_ids(findings_in(tmp_path, policy(allow("iam:*"))))) == [
        "iam.passrole_any_role", "iam.sensitive_action_without_mfa"]


def test_cloudformation_template_names_the_resource_and_skips_trust_policies(tmp_path: Path) -> None:
    template = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"Deployer": {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": "deployer",
            "AssumeRolePolicyDocument": policy({"Effect": "Allow", "Principal": {"AWS": "*"},
                                                "Action": "sts:AssumeRole"}),
            "Policies": [{"PolicyName": "p", "PolicyDocument": policy(allow("kms:ScheduleKeyDeletion"))}]}}}}
    (finding,) = findings_in(tmp_path, template, "template.json")
    assert finding.identity == "AWS::IAM::Role deployer"
    assert finding.rule.id == "iam.sensitive_action_without_mfa"


def test_a_policy_embedded_as_a_json_string(tmp_path: Path) -> None:
    plan = {"format_version": "1.2", "resource_changes": [{
        "address": "aws_iam_policy.ci", "type": "aws_iam_policy",
        "change": {"after": {"policy": json.dumps(policy(allow("*")))}}}]}
    (finding,) = findings_in(tmp_path, plan, "plan.json")
    assert (finding.rule.id, finding.identity) == ("iam.admin_access", "Terraform aws_iam_policy.ci")


def test_yaml_policies_are_read_too(tmp_path: Path) -> None:
    text = "Version: '2012-10-17'\nStatement:\n  - Effect: Allow\n    Action: iam:PassRole\n    Resource: '*'\n"
    (finding,) = findings_in(tmp_path, text, "policy.yaml")
    assert (finding.rule.id, finding.location.line) == ("iam.passrole_any_role", 3)


def test_recognition(tmp_path: Path) -> None:
    scanner = AwsIamScanner()
    cases = [(policy(allow("s3:ListBucket")), True), ({"Statement": "nope"}, False), ({"Version": "1"}, False),
             ({"Identifier": "IAM-IAM-1", "IAM Actions": ["iam:CreateUser"]}, False)]
    for document, expected in cases:
        path = tmp_path / "x.json"
        path.write_text(json.dumps(document))
        assert scanner.recognizes(Source(path, "x.json", path.read_text())) is expected, document


def test_rules_carry_why_fix_and_framework_mappings() -> None:
    for rule in RULES:
        assert rule.id.startswith("iam.") and rule.why and rule.fix
        assert rule.owasp_nhi and rule.nist_csf and rule.nist_800_207


# --- real public policies (tests/corpus/SOURCES.md) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus() -> tuple[dict[str, list[Finding]], int]:
    result = scan([CORPUS], default_scanners())
    assert not result.problems
    by_file: dict[str, list[Finding]] = {}
    for finding in result.findings:
        by_file.setdefault(finding.location.path, []).append(finding)
    return by_file, result.scanned.get("aws-iam", 0)


def found(corpus: tuple[dict[str, list[Finding]], int], path: str) -> list[tuple[str, int | None]]:
    return sorted((finding.rule.id, finding.location.line) for finding in corpus[0].get(path, []))


ROLLBACK = "RhinoSecurityLabs__cloudgoat/cloudgoat__scenarios__aws__iam_privesc_by_rollback__terraform__policies__"
CHECKOV = "bridgecrewio__checkov/tests__cloudformation__checks__resource__aws__example_IAMAdminPolicyDocument__"


def test_the_guardrail_catalogue_is_not_a_policy(corpus) -> None:  # type: ignore[no-untyped-def]
    assert corpus[1] == 10  # 11 files; IAM-IAM-1.json lists actions for a guardrail, with no Statement


def test_cloudgoat_privilege_escalation_by_policy_rollback(corpus) -> None:  # type: ignore[no-untyped-def]
    assert found(corpus, ROLLBACK + "v1.json") == [("iam.sensitive_action_without_mfa", 4)]  # SetDefaultPolicyVersion
    assert found(corpus, ROLLBACK + "v3.json") == [("iam.admin_access", 4)]
    assert found(corpus, ROLLBACK + "v4.json") == []  # iam:Get* in a time window: reading only


def test_checkov_admin_fail_is_found_and_pass_is_not(corpus) -> None:  # type: ignore[no-untyped-def]
    assert found(corpus, CHECKOV + "iam_role.fail.json") == [("iam.admin_access", 30)]
    assert found(corpus, CHECKOV + "iam_role.pass.json") == []
    assert found(corpus, CHECKOV + "iam_user.pass.json") == []


def test_cloudsplaining_wildcards(corpus) -> None:  # type: ignore[no-untyped-def]
    (finding,) = corpus[0]["salesforce__cloudsplaining/examples__policies__wildcards.json"]
    assert finding.rule.id == "iam.sensitive_action_without_mfa"
    assert finding.action is not None and "s3:PutBucketPolicy" in finding.action and "s3:GetObject" in finding.action


def test_authorization_details_export_names_who_holds_each_policy(corpus) -> None:  # type: ignore[no-untyped-def]
    findings = corpus[0]["salesforce__cloudsplaining/test__files__example-authz-details.json"]
    by_holder = {(f.rule.id, f.identity) for f in findings}
    assert ("iam.admin_access", "managed policy AdministratorAccess, attached to user/obama, group/admin") in by_holder
    assert ("iam.passrole_any_role", "role/MyRole, inline policy EC2-IAM-example") in by_holder
    assert ("iam.sensitive_action_without_mfa",
            "group/biden (members: user/biden), inline policy InlinePolicyForBidenGroup") in by_holder
    holders = " ".join(f.identity or "" for f in findings)
    assert "SecurityAudit" not in holders and "IAMReadOnlyAccess" not in holders  # read-only policies stay quiet
    assert len(findings) == 21


def test_only_the_default_policy_version_counts(corpus) -> None:  # type: ignore[no-untyped-def]
    assert found(corpus, "salesforce__cloudsplaining/test__files__managed_policy_mismatch.json") == []


def test_load_balancer_controller_policy_is_not_a_finding(corpus) -> None:  # type: ignore[no-untyped-def]
    assert found(corpus, "kubernetes-sigs__aws-load-balancer-controller/docs__install__iam_policy.json") == []
