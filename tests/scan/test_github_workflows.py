"""GitHub Actions workflows: handwritten cases for each rule and its near misses, then real public workflows."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from interlock.scan.engine import default_scanners, scan
from interlock.scan.findings import Finding
from interlock.scan.github_workflows import GitHubWorkflowScanner
from interlock.scan.sources import Source

CORPUS = Path(__file__).parent.parent / "corpus" / "github-workflows"


def findings_in(tmp_path: Path, text: str) -> list[Finding]:
    path = tmp_path / "workflow.yml"
    path.write_text(textwrap.dedent(text))
    result = scan([path], [GitHubWorkflowScanner()])
    assert not result.problems, result.problems
    assert result.scanned == {"github-workflow": 1}
    return result.findings


def rule_ids(findings: list[Finding]) -> list[str]:
    return [finding.rule.id for finding in findings]


PUBLISH = """
on:
  push:
    tags: ["v*"]
permissions: {}
jobs:
  publish:
    runs-on: ubuntu-latest
    permissions:
      id-token: write
    ENVIRONMENT
    steps:
      - uses: actions/download-artifact@v4
      - uses: pypa/gh-action-pypi-publish@release/v1
"""


def test_publish_without_environment_is_found_on_the_publishing_step(tmp_path: Path) -> None:
    (finding,) = findings_in(tmp_path, PUBLISH.replace("ENVIRONMENT", ""))
    assert finding.rule.id == "workflow.unprotected_deploy"
    assert finding.severity == "high"
    assert finding.location.line == 14
    assert "publishes to PyPI" in finding.message and "job `publish`" in finding.message
    assert finding.identity is not None and "publish" in finding.identity


@pytest.mark.parametrize("environment", ["environment: pypi", "environment:\n      name: release\n      url: x"])
def test_a_named_environment_is_the_second_control(tmp_path: Path, environment: str) -> None:
    assert findings_in(tmp_path, PUBLISH.replace("ENVIRONMENT", environment)) == []


def job(steps: str, trigger: str = "push", extra: str = "") -> str:
    return (f"on: {trigger}\npermissions:\n  contents: read\njobs:\n  ship:\n    runs-on: ubuntu-latest\n{extra}"
            f"    steps:\n" + textwrap.indent(textwrap.dedent(steps), "      "))


@pytest.mark.parametrize("steps", [
    "- uses: docker/build-push-action@v6\n  with:\n    push: true\n",
    "- uses: docker/build-push-action@v6\n  with:\n    push: ${{ github.event_name != 'pull_request' }}\n",
    "- run: cargo publish --locked\n",
    "- run: |\n    npm ci\n    npm publish --access public\n",
    "- run: terraform -chdir=infra apply -auto-approve\n",
    "- run: kubectl -n prod apply -f k8s/\n",
    "- run: helm upgrade --install app ./chart\n",
    "- run: aws s3 sync ./site s3://example-bucket --delete\n",
    "- run: gh release create v1.0 dist/*\n",
    "- run: ./deploy.sh\n  env:\n    DB_PASSWORD: ${{ secrets.PROD_DB_PASSWORD }}\n",
    "- run: make upload\n  env:\n    TWINE_PASSWORD: ${{ secrets.PYPI_API_TOKEN }}\n",
])
def test_shipping_steps_without_environment_are_found(tmp_path: Path, steps: str) -> None:
    assert rule_ids(findings_in(tmp_path, job(steps))) == ["workflow.unprotected_deploy"]


@pytest.mark.parametrize("steps", [
    "- uses: docker/build-push-action@v6\n  with:\n    push: false\n",
    "- uses: docker/build-push-action@v6\n",
    "- run: cargo publish --dry-run\n",
    "- run: |\n    # npm publish happens in release.yml\n    npm test\n",
    "- run: echo 'run terraform apply by hand'\n",
    "- run: terraform plan -out plan.tfplan\n",
    "- run: helm plugin install https://github.com/helm-unittest/helm-unittest\n",
    "- run: aws s3 cp s3://example-bucket/data.json ./data.json\n",
    "- uses: helm/kind-action@v1\n- run: kubectl apply -f test/manifests\n",
    "- run: ./test.sh\n  env:\n    TOKEN: ${{ secrets.DATABASE_URL }}\n",
    "- uses: amondnet/vercel-action@v25\n  with:\n    vercel-token: ${{ secrets.VERCEL_TOKEN }}\n",
])
def test_builds_tests_previews_and_throwaway_clusters_are_not_deploys(tmp_path: Path, steps: str) -> None:
    assert findings_in(tmp_path, job(steps)) == []


def test_a_pages_deploy_is_a_site_deploy_of_medium_severity(tmp_path: Path) -> None:
    (finding,) = findings_in(tmp_path, job("- uses: actions/deploy-pages@v4\n"))
    assert (finding.rule.id, finding.severity) == ("workflow.unprotected_site_deploy", "medium")
    protected = job("- uses: actions/deploy-pages@v4\n", extra="    environment: github-pages\n")
    assert findings_in(tmp_path, protected) == []


def test_a_reusable_workflow_call_is_judged_where_it_is_defined(tmp_path: Path) -> None:
    text = ("on: push\npermissions: {}\njobs:\n  release:\n    uses: ./.github/workflows/release.yml\n"
            "    secrets: inherit\n")
    assert findings_in(tmp_path, text) == []


PR_TARGET = """
on: TRIGGER
PERMISSIONS
jobs:
  build:
    runs-on: ubuntu-latest
    IF
    steps:
      - uses: actions/checkout@v4
        with:
          ref: REF
      - run: npm ci && npm test
        env:
          TOKEN: ${{ secrets.NPM_TOKEN }}
"""


def pr_target(trigger: str = "pull_request_target", ref: str = "${{ github.event.pull_request.head.sha }}",
              permissions: str = "", condition: str = "", secret: bool = True) -> str:
    text = (PR_TARGET.replace("TRIGGER", trigger).replace("REF", ref).replace("PERMISSIONS", permissions)
            .replace("IF", condition))
    return text if secret else text.replace("TOKEN: ${{ secrets.NPM_TOKEN }}", "CI: 'true'")


def test_pull_request_target_running_the_head_with_secrets_is_found(tmp_path: Path) -> None:
    (finding,) = findings_in(tmp_path, pr_target())
    assert finding.rule.id == "workflow.untrusted_checkout_with_secrets"
    assert finding.location.line == 11
    assert "`NPM_TOKEN`" in finding.message and "default (possibly write)" in finding.message


def test_workflow_run_checking_out_its_head_with_a_writable_token_is_found(tmp_path: Path) -> None:
    text = pr_target(trigger="workflow_run", ref="${{ github.event.workflow_run.head_sha }}",
                     permissions="permissions:\n  pull-requests: write", secret=False)
    (finding,) = findings_in(tmp_path, text)
    assert finding.rule.id == "workflow.untrusted_checkout_with_secrets"
    assert "a token that can write (pull-requests)" in finding.message


@pytest.mark.parametrize("variant", [
    {"trigger": "pull_request"},  # no secrets reach fork pull requests
    {"ref": "${{ github.sha }}"},  # the base commit: the repository's own code
    {"permissions": "permissions: {}", "secret": False},  # nothing to steal
    {"condition": "environment: external-pr"},  # a reviewer releases the run
    {"condition": "if: github.event.pull_request.head.repo.full_name == github.repository"},  # no forks
])
def test_pull_request_target_near_misses(tmp_path: Path, variant: dict[str, object]) -> None:
    assert "workflow.untrusted_checkout_with_secrets" not in rule_ids(findings_in(tmp_path, pr_target(**variant)))


def test_write_all_is_found_and_read_all_is_not(tmp_path: Path) -> None:
    text = "on: push\npermissions: PERMS\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - run: make\n"
    (finding,) = findings_in(tmp_path, text.replace("PERMS", "write-all"))
    assert (finding.rule.id, finding.location.line) == ("workflow.write_all_permissions", 2)
    assert findings_in(tmp_path, text.replace("PERMS", "read-all")) == []


DEFAULTED = """
on: ON
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: python -m build
  publish:
    runs-on: ubuntu-latest
    environment: pypi
    permissions:
      id-token: write
    steps:
      - uses: pypa/gh-action-pypi-publish@release/v1
"""


def test_default_token_permissions_in_a_shipping_workflow_name_the_jobs_that_rely_on_them(tmp_path: Path) -> None:
    (finding,) = findings_in(tmp_path, DEFAULTED.replace("ON", "release"))
    assert finding.rule.id == "workflow.default_token_permissions"
    assert "`build`" in finding.message and "`publish` run" not in finding.message


@pytest.mark.parametrize("text", [
    DEFAULTED.replace("ON", "release").replace("jobs:", "permissions: {}\njobs:"),  # a workflow-level block
    DEFAULTED.replace("ON", "workflow_call"),  # a reusable workflow: the caller sets the permissions
    DEFAULTED.replace("ON", "push").replace("      - uses: pypa/gh-action-pypi-publish@release/v1", "      - run: ls"),
])
def test_default_token_permissions_near_misses(tmp_path: Path, text: str) -> None:
    assert findings_in(tmp_path, text) == []


@pytest.mark.parametrize(("step", "provider"), [
    ("- uses: aws-actions/configure-aws-credentials@v4\n  with:\n"
     "    aws-access-key-id: ${{ secrets.AWS_ACCESS_KEY_ID }}\n"
     "    aws-secret-access-key: ${{ secrets.AWS_SECRET_ACCESS_KEY }}\n", "AWS access key"),
    ("- run: aws s3 ls\n  env:\n    AWS_SECRET_ACCESS_KEY: ${{ secrets.CI_KEY }}\n", "AWS access key"),
    ("- uses: google-github-actions/auth@v2\n  with:\n    credentials_json: ${{ secrets.GCP_SA }}\n",
     "Google Cloud service account key"),
    ("- uses: azure/login@v2\n  with:\n    creds: ${{ secrets.AZURE_CREDENTIALS }}\n", "Azure client secret"),
])
def test_long_lived_cloud_keys_are_found(tmp_path: Path, step: str, provider: str) -> None:
    (finding,) = findings_in(tmp_path, job(step))
    assert finding.rule.id == "workflow.long_lived_cloud_key"
    assert provider in finding.message


@pytest.mark.parametrize("step", [
    "- uses: aws-actions/configure-aws-credentials@v4\n  with:\n"
    "    role-to-assume: arn:aws:iam::123456789012:role/ci\n    aws-region: eu-west-1\n",
    "- uses: google-github-actions/auth@v2\n  with:\n"
    "    workload_identity_provider: projects/1/locations/global/workloadIdentityPools/p/providers/gh\n",
    "- uses: azure/login@v2\n  with:\n    client-id: ${{ secrets.AZURE_CLIENT_ID }}\n"
    "    tenant-id: ${{ secrets.AZURE_TENANT_ID }}\n",
])
def test_oidc_federation_is_not_a_long_lived_key(tmp_path: Path, step: str) -> None:
    assert findings_in(tmp_path, job(step, extra="    permissions:\n      id-token: write\n")) == []


def test_recognised_by_content_not_by_name(tmp_path: Path) -> None:
    scanner = GitHubWorkflowScanner()
    workflow = tmp_path / "anything.yaml"
    workflow.write_text("on: push\njobs:\n  a:\n    runs-on: x\n    steps: []\n")
    compose = tmp_path / "ci.yml"
    compose.write_text("services:\n  web:\n    image: nginx\n")
    jobs_only = tmp_path / "jobs.yml"
    jobs_only.write_text("jobs:\n  a: {}\n")
    assert scanner.recognizes(Source(workflow, "anything.yaml", workflow.read_text()))
    assert not scanner.recognizes(Source(compose, "ci.yml", compose.read_text()))
    assert not scanner.recognizes(Source(jobs_only, "jobs.yml", jobs_only.read_text()))


def test_rules_carry_why_fix_and_framework_mappings() -> None:
    from interlock.scan.github_workflows import RULES

    for rule in RULES:
        assert rule.id.startswith("workflow.") and rule.why and rule.fix
        assert rule.owasp_nhi and rule.nist_csf and rule.nist_800_207


# --- real public workflows (tests/corpus/SOURCES.md) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[Finding]]:
    result = scan([CORPUS], default_scanners())
    assert not result.problems
    assert result.scanned == {"github-workflow": 13}
    by_file: dict[str, list[Finding]] = {}
    for finding in result.findings:
        by_file.setdefault(finding.location.path, []).append(finding)
    return by_file


def found(corpus: dict[str, list[Finding]], path: str) -> list[tuple[str, int | None]]:
    return [(finding.rule.id, finding.location.line) for finding in corpus.get(path, [])]


def test_poetry_release_flags_the_github_upload_and_not_the_pypi_job_with_its_environment(corpus) -> None:  # type: ignore[no-untyped-def]
    findings = corpus["python-poetry__poetry/.github__workflows__release.yaml"]
    assert [(f.rule.id, f.location.line) for f in findings] == [("workflow.unprotected_deploy", 43)]
    assert "upload-github" in findings[0].message and "upload-pypi" not in findings[0].message


def test_poetry_docs_preview_runs_the_pull_request_docs_with_the_vercel_token(corpus) -> None:  # type: ignore[no-untyped-def]
    assert found(corpus, "python-poetry__poetry/.github__workflows__docs.yaml") == [
        ("workflow.untrusted_checkout_with_secrets", 47)]


def test_sigstore_publishes_to_pypi_and_github_without_an_environment(corpus) -> None:  # type: ignore[no-untyped-def]
    assert found(corpus, "sigstore__sigstore-python/.github__workflows__release.yml") == [
        ("workflow.unprotected_deploy", 111), ("workflow.unprotected_deploy", 129)]


def test_zizmor_publishes_behind_an_environment(corpus) -> None:  # type: ignore[no-untyped-def]
    assert found(corpus, "zizmorcore__zizmor/.github__workflows__release-pypi.yml") == []


def test_terraform_apply_without_environment_but_not_the_plan(corpus) -> None:  # type: ignore[no-untyped-def]
    base = "hashicorp-education__learn-terraform-github-actions/.github__workflows__"
    assert found(corpus, base + "terraform-apply.yml") == [("workflow.unprotected_deploy", 42)]
    assert found(corpus, base + "terraform-plan.yml") == []


def test_long_lived_cloud_keys_in_real_workflows(corpus) -> None:  # type: ignore[no-untyped-def]
    assert found(corpus, "fluxcd__flux2/.github__workflows__e2e-gcp.yaml") == [("workflow.long_lived_cloud_key", 56)]
    trivy = found(corpus, "aquasecurity__trivy/.github__workflows__reusable-release.yaml")
    assert ("workflow.long_lived_cloud_key", 76) in trivy  # ECR login with a stored access key
    assert ("workflow.unprotected_deploy", 105) in trivy
    assert all(rule != "workflow.default_token_permissions" for rule, _ in trivy)  # workflow_call: caller decides


def test_throwaway_clusters_and_helm_plugins_are_not_infrastructure_changes(corpus) -> None:  # type: ignore[no-untyped-def]
    assert found(corpus, "fluxcd__flux2/.github__workflows__conformance.yaml") == []
    assert found(corpus, "kubernetes__ingress-nginx/.github__workflows__ci.yaml") == []


def test_zizmor_fixtures(corpus) -> None:  # type: ignore[no-untyped-def]
    base = "zizmorcore__zizmor/crates__"
    assert found(corpus, base + "github-actions-models__tests__sample-workflows__pwn-requests.yml") == [
        ("workflow.untrusted_checkout_with_secrets", 16)]
    write_all = "zizmor__tests__integration__test-data__excessive-permissions__workflow-write-all.yml"
    assert found(corpus, base + write_all) == [("workflow.write_all_permissions", 5)]
    read_all = "zizmor__tests__integration__test-data__excessive-permissions__workflow-read-all.yml"
    assert found(corpus, base + read_all) == []
