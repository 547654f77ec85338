"""Kubernetes RBAC: handwritten manifests for each rule and its near misses, then real public manifests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from interlock.scan.engine import default_scanners, scan
from interlock.scan.findings import Finding
from interlock.scan.k8s_rbac import PRODUCTION_NAMESPACE, RULES, KubernetesRbacScanner
from interlock.scan.sources import Source

CORPUS = Path(__file__).parent.parent / "corpus" / "k8s-rbac"


def findings_in(tmp_path: Path, *texts: str) -> list[Finding]:
    paths = []
    for index, text in enumerate(texts):
        path = tmp_path / f"manifest-{index}.yaml"
        path.write_text(textwrap.dedent(text))
        paths.append(path)
    result = scan([tmp_path] if len(paths) > 1 else paths, [KubernetesRbacScanner()])
    assert not result.problems, result.problems
    return result.findings


def rule_ids(findings: list[Finding]) -> list[str]:
    return sorted(finding.rule.id for finding in findings)


def role(kind: str = "Role", name: str = "deployer", namespace: str | None = "apps",
         rules: str = '- apiGroups: ["apps"]\n  resources: ["deployments"]\n  verbs: ["get", "patch"]\n') -> str:
    metadata = f"  name: {name}\n" + (f"  namespace: {namespace}\n" if namespace else "")
    return (f"apiVersion: rbac.authorization.k8s.io/v1\nkind: {kind}\nmetadata:\n{metadata}rules:\n"
            + rules)


SERVICE_ACCOUNT = "- kind: ServiceAccount\n  name: ci\n  namespace: apps\n"


def binding(kind: str = "RoleBinding", namespace: str | None = "apps", role_kind: str = "Role",
            role_name: str = "deployer", subject: str = SERVICE_ACCOUNT) -> str:
    metadata = "  name: ci-deployer\n" + (f"  namespace: {namespace}\n" if namespace else "")
    return (f"apiVersion: rbac.authorization.k8s.io/v1\nkind: {kind}\nmetadata:\n{metadata}"
            f"roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: {role_kind}\n  name: {role_name}\n"
            f"subjects:\n{subject}")


def stream(*documents: str) -> str:
    return "---\n".join(documents)


def test_service_account_that_can_patch_deployments_in_its_namespace(tmp_path: Path) -> None:
    (finding,) = findings_in(tmp_path, stream(role(), binding()))
    assert (finding.rule.id, finding.severity) == ("k8s.sensitive_binding", "medium")
    assert finding.identity == "ServiceAccount apps/ci"
    assert finding.action == "write workloads"
    assert finding.location.line == 11  # the RoleBinding document


@pytest.mark.parametrize("namespace", ["prod", "payments-prod", "production", "kube-system", "live", "prd1"])
def test_production_like_namespaces_raise_the_severity(tmp_path: Path, namespace: str) -> None:
    text = stream(role(namespace=namespace), binding(namespace=namespace))
    assert rule_ids(findings_in(tmp_path, text)) == ["k8s.sensitive_binding_production"]


@pytest.mark.parametrize("namespace", ["apps", "productivity", "staging", "preprod-tools", "delivery"])
def test_names_that_only_look_like_production_do_not(tmp_path: Path, namespace: str) -> None:
    assert PRODUCTION_NAMESPACE.search(namespace) is None
    (finding,) = findings_in(tmp_path, stream(role(namespace=namespace), binding(namespace=namespace)))
    assert finding.severity == "medium"


def test_cluster_wide_binding_is_high(tmp_path: Path) -> None:
    text = stream(role(kind="ClusterRole", namespace=None),
                  binding(kind="ClusterRoleBinding", namespace=None, role_kind="ClusterRole"))
    (finding,) = findings_in(tmp_path, text)
    assert (finding.rule.id, finding.severity) == ("k8s.sensitive_binding_cluster_wide", "high")
    assert "every namespace" in finding.message


@pytest.mark.parametrize(("rules", "capability"), [
    ('- apiGroups: [""]\n  resources: ["secrets"]\n  verbs: ["list"]\n', "read secrets"),
    ('- apiGroups: [""]\n  resources: ["pods/exec"]\n  verbs: ["create"]\n', "exec into pods"),
    ('- apiGroups: ["rbac.authorization.k8s.io"]\n  resources: ["clusterroles"]\n  verbs: ["escalate"]\n',
     "change RBAC"),
    ('- apiGroups: [""]\n  resources: ["serviceaccounts"]\n  verbs: ["impersonate"]\n', "impersonate"),
    ('- apiGroups: ["batch"]\n  resources: ["cronjobs"]\n  verbs: ["create"]\n', "write workloads"),
    ('- apiGroups: ["admissionregistration.k8s.io"]\n  resources: ["mutatingwebhookconfigurations"]\n'
     '  verbs: ["patch"]\n', "control admission webhooks"),
])
def test_each_sensitive_capability(tmp_path: Path, rules: str, capability: str) -> None:
    (finding,) = findings_in(tmp_path, stream(role(rules=rules), binding()))
    assert finding.action == capability


@pytest.mark.parametrize("rules", [
    '- apiGroups: ["apps"]\n  resources: ["deployments"]\n  verbs: ["get", "list", "watch"]\n',
    '- apiGroups: [""]\n  resources: ["configmaps"]\n  verbs: ["get", "update"]\n',
    '- apiGroups: [""]\n  resources: ["pods/log", "pods/status"]\n  verbs: ["get", "patch"]\n',
    '- apiGroups: ["apps"]\n  resources: ["deployments/scale"]\n  verbs: ["patch"]\n',
    '- nonResourceURLs: ["/metrics"]\n  verbs: ["get"]\n',
])
def test_ordinary_permissions_are_not_findings(tmp_path: Path, rules: str) -> None:
    assert findings_in(tmp_path, stream(role(rules=rules), binding())) == []


def test_cluster_admin_binding_is_one_finding_even_undefined_in_the_file(tmp_path: Path) -> None:
    text = binding(kind="ClusterRoleBinding", namespace=None, role_kind="ClusterRole", role_name="cluster-admin")
    (finding,) = findings_in(tmp_path, text)
    assert (finding.rule.id, finding.severity) == ("k8s.cluster_admin_binding", "high")


def test_built_in_edit_role_is_known_without_its_definition(tmp_path: Path) -> None:
    (finding,) = findings_in(tmp_path, binding(role_kind="ClusterRole", role_name="edit"))
    assert finding.rule.id == "k8s.sensitive_binding" and "read secrets" in finding.message
    assert findings_in(tmp_path, binding(role_kind="ClusterRole", role_name="view")) == []


def test_a_role_nobody_binds_is_low_and_an_unknown_role_is_silent(tmp_path: Path) -> None:
    (finding,) = findings_in(tmp_path, role())
    assert (finding.rule.id, finding.severity) == ("k8s.sensitive_role_unbound", "low")
    assert findings_in(tmp_path, binding(role_name="defined-elsewhere")) == []


def test_binding_in_another_file_of_the_same_directory_resolves(tmp_path: Path) -> None:
    assert rule_ids(findings_in(tmp_path, role(), binding())) == ["k8s.sensitive_binding"]


def test_a_role_in_another_namespace_does_not_match(tmp_path: Path) -> None:
    found = rule_ids(findings_in(tmp_path, stream(role(namespace="other"), binding())))
    assert found == ["k8s.sensitive_role_unbound"]


def test_wildcards(tmp_path: Path) -> None:
    rules = '- apiGroups: ["*"]\n  resources: ["*"]\n  verbs: ["*"]\n'
    found = findings_in(tmp_path, role(rules=rules))
    assert rule_ids(found) == ["k8s.sensitive_role_unbound", "k8s.wildcard_permissions"]
    wildcard = next(f for f in found if f.rule.id == "k8s.wildcard_permissions")
    assert wildcard.action == "* in verbs, resources, apiGroups" and wildcard.location.line == 7


@pytest.mark.parametrize("rules", [
    '- apiGroups: ["*"]\n  resources: ["pods"]\n  verbs: ["get", "list"]\n',  # any group, read only
    '- apiGroups: [""]\n  resources: ["*"]\n  verbs: [""]\n',  # grants nothing
])
def test_wildcards_that_grant_nothing_dangerous_are_not_findings(tmp_path: Path, rules: str) -> None:
    assert "k8s.wildcard_permissions" not in rule_ids(findings_in(tmp_path, role(rules=rules)))


def test_list_wrappers_and_other_kinds_in_the_stream(tmp_path: Path) -> None:
    listed = ("apiVersion: v1\nkind: List\nitems:\n- " + textwrap.indent(role(), "  ").lstrip()
              + "- " + textwrap.indent(binding(), "  ").lstrip())
    deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec: {}\n"
    assert rule_ids(findings_in(tmp_path, stream(deployment, listed))) == ["k8s.sensitive_binding"]


def test_recognised_by_rbac_kinds_only(tmp_path: Path) -> None:
    scanner = KubernetesRbacScanner()
    for text, expected in [(role(), True), ("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n", True),
                           ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\n", False),
                           ("kind: Role\nrules: []\n", False)]:
        path = tmp_path / "m.yaml"
        path.write_text(text)
        assert scanner.recognizes(Source(path, "m.yaml", text)) is expected, text


def test_rules_carry_why_fix_and_framework_mappings() -> None:
    for rule in RULES:
        assert rule.id.startswith("k8s.") and rule.why and rule.fix
        assert rule.owasp_nhi and rule.nist_csf and rule.nist_800_207


# --- real public manifests (tests/corpus/SOURCES.md) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[Finding]]:
    result = scan([CORPUS], default_scanners())
    assert not result.problems
    assert result.scanned == {"k8s-rbac": 17}
    by_file: dict[str, list[Finding]] = {}
    for finding in result.findings:
        by_file.setdefault(finding.location.path, []).append(finding)
    return by_file


def found(corpus: dict[str, list[Finding]], path: str) -> list[tuple[str, str | None]]:
    return sorted((finding.rule.id, finding.action) for finding in corpus.get(path, []))


CHECKOV = "bridgecrewio__checkov/tests__kubernetes__checks__example_"


def test_checkov_failed_fixtures_are_found_with_the_matching_capability(corpus) -> None:  # type: ignore[no-untyped-def]
    assert ("k8s.sensitive_role_unbound", "control admission webhooks") in found(
        corpus, CHECKOV + "RbacControlWebhooks__clusterrole-failed-1.yaml")
    assert ("k8s.sensitive_role_unbound", "write workloads, change RBAC") in found(
        corpus, CHECKOV + "RbacBindRoleBindings__clusterrole-failed-1.yaml")
    assert ("k8s.sensitive_role_unbound", "change RBAC") in found(
        corpus, CHECKOV + "RbacEscalateRoles__clusterrole-failed-1.yaml")
    assert ("k8s.sensitive_role_unbound", "approve certificate requests") in found(
        corpus, CHECKOV + "RbacApproveCertificateSigningRequests__clusterrole-failed-1.yaml")


def test_checkov_passed_fixtures_give_no_finding_of_their_kind(corpus) -> None:  # type: ignore[no-untyped-def]
    for name, capability in [("RbacControlWebhooks__clusterrole-passed-1.yaml", "webhook"),
                             ("RbacControlWebhooks__clusterrole-passed-2.yaml", "webhook"),
                             ("RbacApproveCertificateSigningRequests__clusterrole-passed-1.yaml", "certificate"),
                             ("RbacApproveCertificateSigningRequests__clusterrole-passed-2.yaml", "certificate")]:
        assert all(capability not in (action or "") for _, action in found(corpus, CHECKOV + name)), name
    # passed-2 holds `resources: ["*"]` with `verbs: [""]`: it grants nothing at all
    assert found(corpus, CHECKOV + "RbacApproveCertificateSigningRequests__clusterrole-passed-2.yaml") == []


def test_flux_cluster_admin_bindings(corpus) -> None:  # type: ignore[no-untyped-def]
    assert found(corpus, "fluxcd__flux2/manifests__rbac__reconciler.yaml") == [
        ("k8s.cluster_admin_binding", "cluster-admin")]
    (tenant,) = corpus["fluxcd__flux2/cmd__flux__testdata__create_tenant__tenant-basic.yaml"]
    assert tenant.rule.id == "k8s.cluster_admin_binding" and "namespace `apps`" in tenant.message


def test_kube_state_metrics_binding_resolves_its_role_in_another_file(corpus) -> None:  # type: ignore[no-untyped-def]
    assert found(corpus, "kubernetes__kube-state-metrics/examples__standard__cluster-role-binding.yaml") == [
        ("k8s.sensitive_binding_cluster_wide", "read secrets")]
    assert found(corpus, "kubernetes__kube-state-metrics/examples__standard__cluster-role.yaml") == []  # it is bound


def test_ingress_nginx_install_bundle_ignores_its_deployments(corpus) -> None:  # type: ignore[no-untyped-def]
    assert found(corpus, "kubernetes__ingress-nginx/deploy__static__provider__cloud__deploy.yaml") == [
        ("k8s.sensitive_binding", "read secrets"),
        ("k8s.sensitive_binding", "read secrets, write secrets"),
        ("k8s.sensitive_binding_cluster_wide", "control admission webhooks"),
        ("k8s.sensitive_binding_cluster_wide", "read secrets"),
    ]


def test_controllers_without_sensitive_permissions_are_not_findings(corpus) -> None:  # type: ignore[no-untyped-def]
    assert found(corpus, "kubernetes-sigs__aws-load-balancer-controller/config__rbac__role.yaml") == []
    assert found(corpus, "kubernetes-sigs__aws-load-balancer-controller/config__rbac__role_binding.yaml") == []
    assert found(corpus, "kubernetes-sigs__aws-load-balancer-controller/docs__examples__external-dns.yaml") == []
