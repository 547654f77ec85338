"""AWS IAM policy documents: sensitive actions allowed on a credential alone, with no second factor or approval.

Policies are found wherever they sit in a JSON/YAML file: a bare policy document, the `PolicyDocument`s of a
CloudFormation template, a `GetAccountAuthorizationDetails` export (the default version of each managed policy, every
inline policy, named by the user, group or role that holds it), a `GetPolicyVersion` answer, or a policy embedded as a
JSON string (Terraform plans). Trust policies (`AssumeRolePolicyDocument`) say who may assume a role, not what it may
do: they are not judged here. A Deny in the same document that requires MFA, or denies outright, removes what it covers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import PurePath
from typing import Any

from interlock.scan import frameworks as fw
from interlock.scan.findings import Finding, Location, Rule
from interlock.scan.sources import Mapped, ParseError, Source

KIND = "aws-iam"

ADMIN = Rule(
    id="iam.admin_access",
    title="Policy allows every action on every resource",
    severity="high",
    why="`Action: *` on `Resource: *` lets whoever holds the credential (an access key, a role session) do anything "
        "in the account, from creating new keys to deleting audit trails; the credential is the only check.",
    fix="Replace it with the actions the identity uses (IAM Access Analyzer can generate a policy from CloudTrail); "
        "keep administrator access for a role assumed through an approved, time-limited elevation that requires MFA "
        "(`\"Bool\": {\"aws:MultiFactorAuthPresent\": \"true\"}` in its trust policy).",
    owasp_nhi=(fw.NHI5_OVERPRIVILEGED, fw.NHI6_CLOUD_CONFIG),
    nist_csf=(fw.CSF_PR_AA_05,),
    nist_800_207=(fw.ZT_TENET_3, fw.ZT_TENET_6),
)
SENSITIVE = Rule(
    id="iam.sensitive_action_without_mfa",
    title="Sensitive action allowed with no MFA or approval condition",
    severity="high",
    why="Changing IAM, moving money, destroying keys, exporting data or silencing audit logs is allowed to whoever "
        "presents the credential; no condition asks for a second factor or an approval, so a leaked key or a "
        "confused workload performs it directly.",
    fix="Add `\"Condition\": {\"Bool\": {\"aws:MultiFactorAuthPresent\": \"true\"}}` (or `NumericLessThan` on "
        "`aws:MultiFactorAuthAge`) to the statement, or move these actions to a separate role that is assumed only "
        "through an approval step; narrow `Resource` to the specific ARNs.",
    owasp_nhi=(fw.NHI5_OVERPRIVILEGED, fw.NHI4_INSECURE_AUTH),
    nist_csf=(fw.CSF_PR_AA_03, fw.CSF_PR_AA_05),
    nist_800_207=(fw.ZT_TENET_6, fw.ZT_TENET_4),
)
PASS_ANY_ROLE = Rule(
    id="iam.passrole_any_role",
    title="`iam:PassRole` on any role",
    severity="high",
    why="Passing any role to a service (EC2, Lambda, ECS…) lets the holder run code as the most privileged role in "
        "the account: its permission is borrowed without anyone deciding it should be.",
    fix="List the role ARNs the identity must pass in `Resource`, and add an `iam:PassedToService` condition naming "
        "the service that receives them.",
    owasp_nhi=(fw.NHI5_OVERPRIVILEGED,),
    nist_csf=(fw.CSF_PR_AA_05,),
    nist_800_207=(fw.ZT_TENET_3,),
)
RULES = (ADMIN, SENSITIVE, PASS_ANY_ROLE)

# Sensitive on any resource, by what they do. Names as AWS spells them; compared case-insensitively.
SENSITIVE_ACTIONS: dict[str, tuple[str, ...]] = {
    "change IAM permissions or credentials": (
        "iam:CreateAccessKey", "iam:UpdateAccessKey", "iam:CreateLoginProfile", "iam:UpdateLoginProfile",
        "iam:PutUserPolicy", "iam:PutRolePolicy", "iam:PutGroupPolicy", "iam:AttachUserPolicy",
        "iam:AttachRolePolicy", "iam:AttachGroupPolicy", "iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion",
        "iam:UpdateAssumeRolePolicy", "iam:AddUserToGroup", "iam:CreateUser", "iam:CreateRole",
        "iam:PutUserPermissionsBoundary", "iam:PutRolePermissionsBoundary", "iam:DeleteUserPermissionsBoundary",
        "iam:DeleteRolePermissionsBoundary", "iam:DeactivateMFADevice", "iam:DeleteVirtualMFADevice",
        "iam:CreateSAMLProvider", "iam:CreateOpenIDConnectProvider"),
    "billing and payments": (
        "aws-portal:ModifyAccount", "aws-portal:ModifyBilling", "aws-portal:ModifyPaymentMethods",
        "billing:PutContractInformation", "billing:UpdateBillingPreferences", "billing:UpdateIAMAccessPreference",
        "billing:RedeemCredits", "payments:CreatePaymentInstrument", "payments:UpdatePaymentPreferences",
        "payments:MakePayment", "payments:DeletePaymentInstrument"),
    "disable or delete KMS keys": (
        "kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:PutKeyPolicy", "kms:DeleteImportedKeyMaterial"),
    "export or expose data": (
        "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutBucketAcl",
        "s3:PutBucketPublicAccessBlock", "s3:PutAccountPublicAccessBlock", "s3:PutBucketReplication",
        "rds:ModifyDBSnapshotAttribute", "rds:ModifyDBClusterSnapshotAttribute", "rds:StartExportTask",
        "ec2:ModifySnapshotAttribute", "ec2:ModifyImageAttribute", "dynamodb:ExportTableToPointInTime",
        "redshift:AuthorizeSnapshotAccess"),
    "stop audit logging": (
        "cloudtrail:StopLogging", "cloudtrail:DeleteTrail", "cloudtrail:UpdateTrail", "cloudtrail:PutEventSelectors",
        "guardduty:DeleteDetector", "config:StopConfigurationRecorder", "config:DeleteConfigurationRecorder",
        "config:DeleteDeliveryChannel"),
    "change the organization": (
        "organizations:LeaveOrganization", "organizations:DeleteOrganization",
        "organizations:RemoveAccountFromOrganization", "organizations:CloseAccount", "organizations:DetachPolicy",
        "organizations:DeletePolicy", "organizations:UpdatePolicy", "organizations:DisablePolicyType"),
}
# Sensitive only on every resource: reading all data, assuming any role.
SENSITIVE_ON_ANY_RESOURCE: dict[str, tuple[str, ...]] = {
    "read or expose all data": ("s3:GetObject", "s3:PutObjectAcl", "secretsmanager:GetSecretValue",
                                "ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"),
    "assume any role": ("sts:AssumeRole",),
}
PASS_ROLE = "iam:PassRole"  # noqa: S105 - an action name
_MFA_KEYS = ("aws:multifactorauthpresent", "aws:multifactorauthage")
_LISTED = 6  # actions named in one message


@dataclass(frozen=True)
class PolicyDocument:
    """One policy found in a file: its statements, where it starts, and who holds it (as far as the file says)."""

    statements: tuple[Any, ...]
    lines: tuple[int, ...]
    holder: str


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] | None
    resources: tuple[str, ...]
    any_resource: bool
    condition: Any
    line: int


class AwsIamScanner:
    """IAM policy documents, alone or embedded (CloudFormation, authorization-details exports, Terraform plans)."""

    kind = KIND

    def recognizes(self, source: Source) -> bool:
        if source.syntax not in ("yaml", "json", "text"):
            return False
        try:
            documents = source.documents()
        except ParseError:
            return False
        return any(True for document in documents for _ in _policies(document, source.display, include_trust=True))

    def scan(self, source: Source) -> list[Finding]:
        findings: list[Finding] = []
        for document in source.documents():
            for policy in _policies(document, source.display, include_trust=False):
                findings.extend(_judge(policy, source.display))
        return findings


# --- finding the policies in a file --------------------------------------------------------------------------------


def _policies(root: Any, display: str, include_trust: bool) -> Iterator[PolicyDocument]:
    if not isinstance(root, dict):
        return
    if any(key in root for key in ("UserDetailList", "RoleDetailList", "GroupDetailList")) and "Policies" in root:
        yield from _authorization_details(root, include_trust)
        return
    yield from _walk(root, f"the policy in `{PurePath(display).name}`", include_trust, depth=0)


def _walk(value: Any, holder: str, include_trust: bool, depth: int, key: Any = None,
          line: int = 0) -> Iterator[PolicyDocument]:
    if depth > 64:
        return
    trust = key == "AssumeRolePolicyDocument"
    if isinstance(value, str) and "Statement" in value and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except ValueError:
            return
    if isinstance(value, dict):
        statements = value.get("Statement")
        if _is_statement_list(statements):
            if include_trust or not trust:
                yield _document(statements, holder, getattr(value, "line", 0) or line)
            return
        holder = _holder(value, holder)
        for child_key, child in value.items():
            child_line = value.line_of(child_key) if isinstance(value, Mapped) else line
            yield from _walk(child, holder, include_trust, depth + 1, child_key, child_line)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _walk(child, holder, include_trust, depth + 1, key, _line_of(value, index, line))


def _holder(mapping: dict[Any, Any], inherited: str) -> str:
    """Who the policies under `mapping` belong to, when the mapping says (a CloudFormation or Terraform resource)."""
    kind = mapping.get("Type")
    if isinstance(kind, str) and kind.startswith("AWS::") and isinstance(mapping.get("Properties"), dict):
        properties = mapping["Properties"]
        for name_key in ("RoleName", "UserName", "GroupName", "PolicyName", "ManagedPolicyName"):
            if isinstance(properties.get(name_key), str):
                return f"{kind} {properties[name_key]}"
        return f"{kind} resource"
    address, resource_type = mapping.get("address"), mapping.get("type")
    if isinstance(address, str) and isinstance(resource_type, str) and resource_type.startswith("aws_"):
        return f"Terraform {address}"
    return inherited


def _is_statement_list(statements: Any) -> bool:
    items = statements if isinstance(statements, list) else [statements]
    return bool(items) and all(isinstance(item, dict) and ("Effect" in item) for item in items)


def _document(statements: Any, holder: str, line: int) -> PolicyDocument:
    if isinstance(statements, dict):
        return PolicyDocument((statements,), (getattr(statements, "line", 0) or line,), holder)
    lines = tuple(_line_of(statements, index, line) for index in range(len(statements)))
    return PolicyDocument(tuple(statements), lines, holder)


def _line_of(container: Any, index: int, default: int) -> int:
    return container.line_of(index) if hasattr(container, "line_of") else default


def _authorization_details(root: dict[Any, Any], include_trust: bool) -> Iterator[PolicyDocument]:
    """`aws iam get-account-authorization-details`: inline policies of each principal, default managed versions."""
    attached: dict[str, list[str]] = {}
    members: dict[str, list[str]] = {}
    principals = []
    for list_key, name_key, policies_key, label in (("UserDetailList", "UserName", "UserPolicyList", "user"),
                                                    ("GroupDetailList", "GroupName", "GroupPolicyList", "group"),
                                                    ("RoleDetailList", "RoleName", "RolePolicyList", "role")):
        for entry in _dicts(root.get(list_key)):
            name = f"{label}/{entry.get(name_key)}"
            principals.append((name, entry, policies_key))
            for policy in _dicts(entry.get("AttachedManagedPolicies")):
                attached.setdefault(str(policy.get("PolicyArn")), []).append(name)
            for group in entry.get("GroupList") or ():
                members.setdefault(f"group/{group}", []).append(name)
    for name, entry, policies_key in principals:
        holder = name + (f" (members: {', '.join(members[name])})" if name in members else "")
        for inline in _dicts(entry.get(policies_key)):
            document = inline.get("PolicyDocument")
            if isinstance(document, dict) and _is_statement_list(document.get("Statement")):
                yield _document(document["Statement"], f"{holder}, inline policy {inline.get('PolicyName')}",
                                getattr(document, "line", 0))
        trust = entry.get("AssumeRolePolicyDocument")
        if include_trust and isinstance(trust, dict) and _is_statement_list(trust.get("Statement")):
            yield _document(trust["Statement"], f"{name} trust policy", getattr(trust, "line", 0))
    for policy in _dicts(root.get("Policies")):
        users = attached.get(str(policy.get("Arn")), [])
        count = policy.get("AttachmentCount")
        holder = f"managed policy {policy.get('PolicyName')}" + (
            f", attached to {', '.join(users)}" if users
            else " (attached to no one)" if count == 0
            else f" (attached to {count} principal{'s' if count > 1 else ''} not in this export)"
            if isinstance(count, int)
            else " (attached to no one in this export)")
        for version in _dicts(policy.get("PolicyVersionList")):
            document = version.get("Document")
            if version.get("IsDefaultVersion") is not True or not isinstance(document, dict):
                continue  # only the default version is in force
            if _is_statement_list(document.get("Statement")):
                yield _document(document["Statement"], holder, getattr(document, "line", 0))


def _dicts(value: Any) -> list[dict[Any, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


# --- judging a policy ---------------------------------------------------------------------------------------------


def _judge(policy: PolicyDocument, path: str) -> Iterator[Finding]:
    # A statement without Resource is a trust policy's (who may assume a role), not judged here.
    statements = [_statement(raw, line) for raw, line in zip(policy.statements, policy.lines, strict=True)
                  if "Resource" in raw or "NotResource" in raw]
    denies = [statement for statement in statements if statement.effect == "deny"]
    for statement in statements:
        if statement.effect != "allow" or _second_control(statement.condition):
            continue
        location = Location(path, statement.line or None)
        if statement.not_actions is None and statement.any_resource and any(
                action in ("*", "*:*") for action in statement.actions):
            yield Finding(ADMIN, location, f"{policy.holder} allows `Action: *` on `Resource: *`"
                          + _condition_note(statement.condition), identity=policy.holder, action="*")
            continue
        sensitive = _sensitive(statement, denies)
        if sensitive:
            shown = ", ".join(f"`{action}`" for _, action in sensitive[:_LISTED])
            more = f" and {len(sensitive) - _LISTED} more" if len(sensitive) > _LISTED else ""
            categories = ", ".join(dict.fromkeys(category for category, _ in sensitive))
            granted = (f"`NotAction` {list(statement.not_actions)} allows every other action, including"
                       if statement.not_actions is not None else "allows")
            yield Finding(SENSITIVE, location,
                          f"{policy.holder} {granted} {shown}{more} ({categories}) on "
                          f"{_resources_text(statement)} with no MFA or approval condition"
                          + _condition_note(statement.condition),
                          identity=policy.holder, action=", ".join(action for _, action in sensitive))
        if _allows(statement, PASS_ROLE) and _any_role(statement) and not _denied(PASS_ROLE, denies):
            yield Finding(PASS_ANY_ROLE, location,
                          f"{policy.holder} allows `iam:PassRole` on {_resources_text(statement)}"
                          + _condition_note(statement.condition), identity=policy.holder, action=PASS_ROLE)


def _statement(raw: dict[Any, Any], line: int) -> Statement:
    not_actions = _texts(raw["NotAction"]) if "NotAction" in raw else None
    resources = _texts(raw.get("Resource"))
    any_resource = "NotResource" in raw or "*" in resources
    return Statement(str(raw.get("Effect", "")).lower(), _texts(raw.get("Action")), not_actions, resources,
                     any_resource, raw.get("Condition"), getattr(raw, "line", 0) or line)


def _texts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value.strip(),)
    if isinstance(value, list):
        return tuple(item.strip() for item in value if isinstance(item, str))
    return ()


def _matches(pattern: str, action: str) -> bool:
    """IAM action matching: case-insensitive, `*` and `?` wildcards."""
    return fnmatchcase(action.lower(), pattern.lower())


def _allows(statement: Statement, action: str) -> bool:
    if statement.not_actions is not None:
        return not any(_matches(pattern, action) for pattern in statement.not_actions)
    return any(_matches(pattern, action) for pattern in statement.actions)


def _sensitive(statement: Statement, denies: list[Statement]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    catalogues = [SENSITIVE_ACTIONS] + ([SENSITIVE_ON_ANY_RESOURCE] if statement.any_resource else [])
    for catalogue in catalogues:
        for category, actions in catalogue.items():
            found.extend((category, action) for action in actions
                         if _allows(statement, action) and not _denied(action, denies))
    return found


def _denied(action: str, denies: list[Statement]) -> bool:
    """Denied everywhere by the same document, outright or unless MFA is present (either takes the path away)."""
    return any(deny.any_resource and _allows(deny, action) and (not deny.condition or _denies_without_mfa(deny))
               for deny in denies)


def _any_role(statement: Statement) -> bool:
    return statement.any_resource or any(re.search(r"(?::\*|:role/\*)$", resource) for resource in statement.resources)


def _resources_text(statement: Statement) -> str:
    if statement.any_resource:
        return "every resource" if "*" in statement.resources else "every resource but `NotResource`"
    shown = ", ".join(f"`{resource}`" for resource in statement.resources[:3])
    return shown + (" …" if len(statement.resources) > 3 else "")


def _conditions(condition: Any) -> Iterator[tuple[str, str, Any]]:
    """(operator, key, value) of a Condition block, lower-cased operator and key."""
    if not isinstance(condition, dict):
        return
    for operator, block in condition.items():
        if isinstance(block, dict):
            for key, value in block.items():
                yield str(operator).lower(), str(key).lower(), value


def _is_true(value: Any, wanted: str) -> bool:
    values = value if isinstance(value, list) else [value]
    return bool(values) and all(str(item).lower() == wanted for item in values)


def _second_control(condition: Any) -> bool:
    """The statement applies only with MFA (strictly: `...IfExists` passes when the key is absent) or an approval."""
    for operator, key, value in _conditions(condition):
        if key == "aws:multifactorauthpresent" and operator == "bool" and _is_true(value, "true"):
            return True
        if key == "aws:multifactorauthage" and operator in ("numericlessthan", "numericlessthanequals"):
            return True
        if key in _MFA_KEYS and operator == "null" and _is_true(value, "false"):
            return True
        if "approv" in key:
            return True
    return False


def _denies_without_mfa(deny: Statement) -> bool:
    for operator, key, value in _conditions(deny.condition):
        if key == "aws:multifactorauthpresent" and operator in ("bool", "boolifexists") and _is_true(value, "false"):
            return True
        if key in _MFA_KEYS and operator == "null" and _is_true(value, "true"):
            return True
    return False


def _condition_note(condition: Any) -> str:
    keys = [(operator, key) for operator, key, _ in _conditions(condition)]
    if not keys:
        return ""
    if any(key in _MFA_KEYS and operator.endswith("ifexists") for operator, key in keys):
        return ("; its MFA condition uses `...IfExists`, which passes when the key is absent (access-key calls carry "
                "no MFA key at all)")
    return "; its conditions (" + ", ".join(sorted({key for _, key in keys})) + ") narrow where, not who approves"
