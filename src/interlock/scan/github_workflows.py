"""GitHub Actions workflows: jobs that deploy, publish or run untrusted code with credentials and no second control.

A job's identity is its token and secrets; the sensitive action is a deploy, a publication, an infrastructure change.
The second control GitHub offers is a protected `environment:` (required reviewers, wait timers, branch rules).
A workflow file shows only that an environment is named, never how it is protected: findings say so.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from interlock.scan import frameworks as fw
from interlock.scan.findings import Finding, Location, Rule
from interlock.scan.sources import Listed, Mapped, Source

KIND = "github-workflow"

UNPROTECTED_DEPLOY = Rule(
    id="workflow.unprotected_deploy",
    title="Job deploys, publishes or changes infrastructure without a protected environment",
    severity="high",
    why="Whoever can make this job run (push a tag, merge to the branch, dispatch the workflow) ships to users or "
        "production: being allowed to trigger the workflow is taken as approval of the release. Nothing independent "
        "of the trigger looks at what is about to be shipped.",
    fix="Give the job an `environment:` (e.g. `environment: release`) and protect that environment in the repository "
        "settings with required reviewers who did not trigger the run; bind the registry or cloud trust (PyPI trusted "
        "publisher, OIDC trust policy) to that environment name so the credential exists only behind the review.",
    owasp_nhi=(fw.NHI5_OVERPRIVILEGED, fw.NHI8_ISOLATION),
    nist_csf=(fw.CSF_PR_AA_05, fw.CSF_PR_PS_01),
    nist_800_207=(fw.ZT_TENET_6, fw.ZT_TENET_4),
)
UNPROTECTED_SITE_DEPLOY = Rule(
    id="workflow.unprotected_site_deploy",
    title="Job publishes a website (GitHub Pages, docs) without a protected environment",
    severity="medium",
    why="The site is published by whoever can trigger the workflow, with no independent look at what goes out; "
        "a documentation site often carries install commands that users paste into a shell.",
    fix="Deploy through `actions/deploy-pages` in a job with `environment: github-pages` (or another named "
        "environment) and restrict that environment to the default branch, with required reviewers where the site "
        "matters.",
    owasp_nhi=(fw.NHI8_ISOLATION,),
    nist_csf=(fw.CSF_PR_AA_05, fw.CSF_PR_PS_01),
    nist_800_207=(fw.ZT_TENET_6,),
)
UNTRUSTED_CHECKOUT = Rule(
    id="workflow.untrusted_checkout_with_secrets",
    title="`pull_request_target`/`workflow_run` job runs the pull request's code with secrets or a writable token",
    severity="high",
    why="The job runs in the base repository's trusted context (its secrets, a token that can write) but executes "
        "code chosen by the author of a pull request. Arriving through the repository's own pull request channel is "
        "treated as trust; no maintainer approves the code before it runs with the credentials.",
    fix="Run untrusted code under `pull_request` (no secrets, read-only token) and move the privileged part to a "
        "separate job that never checks out the head ref and treats its artifacts as data; if the privileged job must "
        "build the PR, put it behind an `environment:` with required reviewers and check out the reviewed commit SHA.",
    owasp_nhi=(fw.NHI3_THIRD_PARTY, fw.NHI2_SECRET_LEAKAGE, fw.NHI8_ISOLATION),
    nist_csf=(fw.CSF_PR_AA_05, fw.CSF_PR_AA_03),
    nist_800_207=(fw.ZT_TENET_6, fw.ZT_TENET_4),
)
WRITE_ALL = Rule(
    id="workflow.write_all_permissions",
    title="`permissions: write-all` gives the job token write access to everything",
    severity="medium",
    why="Every step, including third-party actions, holds a token that can push code, create releases and change "
        "settings that the job never needed; anything the job runs can act with the repository's full authority.",
    fix="Set `permissions: {}` at the workflow level and grant each job only the scopes it uses "
        "(e.g. `contents: read`, `id-token: write`, `packages: write`).",
    owasp_nhi=(fw.NHI5_OVERPRIVILEGED,),
    nist_csf=(fw.CSF_PR_AA_05,),
    nist_800_207=(fw.ZT_TENET_3,),
)
DEFAULT_PERMISSIONS = Rule(
    id="workflow.default_token_permissions",
    title="Workflow with a deploy or publish job leaves token permissions to the repository default",
    severity="medium",
    why="Jobs without a `permissions:` block get the repository's default token scopes, which are read-write for "
        "repositories and organisations created before February 2023 unless changed; in a workflow that deploys or "
        "publishes, every such job then holds write access it was never reviewed for.",
    fix="Add `permissions: {}` (or `contents: read`) at the top of the workflow and grant write scopes per job, only "
        "where a job needs them.",
    owasp_nhi=(fw.NHI5_OVERPRIVILEGED,),
    nist_csf=(fw.CSF_PR_AA_05, fw.CSF_PR_PS_01),
    nist_800_207=(fw.ZT_TENET_3,),
)
LONG_LIVED_CLOUD_KEY = Rule(
    id="workflow.long_lived_cloud_key",
    title="Job uses a long-lived cloud key where OIDC federation would serve",
    severity="medium",
    why="A static cloud key stored as a repository secret works for anyone who holds it, from anywhere, until "
        "someone rotates it; the cloud cannot tell the reviewed release job from a copy of the key. With OIDC the "
        "cloud's trust policy can require the repository, branch and protected environment on every use.",
    fix="Grant `id-token: write` to the job and exchange the GitHub OIDC token for short-lived credentials "
        "(`aws-actions/configure-aws-credentials` with `role-to-assume`, `google-github-actions/auth` with "
        "`workload_identity_provider`, `azure/login` with `client-id`/`tenant-id` and no secret); scope the cloud "
        "trust policy to `repo:OWNER/REPO:environment:NAME`, then delete the stored key.",
    owasp_nhi=(fw.NHI7_LONG_LIVED, fw.NHI2_SECRET_LEAKAGE),
    nist_csf=(fw.CSF_PR_AA_01, fw.CSF_PR_AA_03),
    nist_800_207=(fw.ZT_TENET_3, fw.ZT_TENET_6),
)
RULES = (UNPROTECTED_DEPLOY, UNPROTECTED_SITE_DEPLOY, UNTRUSTED_CHECKOUT, WRITE_ALL, DEFAULT_PERMISSIONS,
         LONG_LIVED_CLOUD_KEY)


@dataclass(frozen=True)
class Sensitive:
    """One sensitive thing a job does: `category` is publish, deploy, infrastructure, production secret or site."""

    category: str
    what: str
    line: int


# Actions that ship something; matched on `uses:` without the `@ref`, lower case.
_ACTIONS: dict[str, tuple[str, str]] = {
    "pypa/gh-action-pypi-publish": ("publish", "publishes to PyPI"),
    "js-devtools/npm-publish": ("publish", "publishes to npm"),
    "rubygems/release-gem": ("publish", "publishes to RubyGems"),
    "softprops/action-gh-release": ("publish", "creates a GitHub release"),
    "ncipollo/release-action": ("publish", "creates a GitHub release"),
    "actions/create-release": ("publish", "creates a GitHub release"),
    "actions/upload-release-asset": ("publish", "uploads release assets"),
    "svenstaro/upload-release-action": ("publish", "uploads release assets"),
    "helm/chart-releaser-action": ("publish", "publishes Helm charts"),
    "aws-actions/amazon-ecs-deploy-task-definition": ("deploy", "deploys to Amazon ECS"),
    "aws-actions/aws-cloudformation-github-deploy": ("infrastructure", "deploys a CloudFormation stack"),
    "azure/webapps-deploy": ("deploy", "deploys to Azure App Service"),
    "azure/functions-action": ("deploy", "deploys Azure Functions"),
    "azure/k8s-deploy": ("deploy", "deploys to Kubernetes (Azure)"),
    "azure/arm-deploy": ("infrastructure", "deploys an ARM template"),
    "azure/static-web-apps-deploy": ("deploy", "deploys an Azure static web app"),
    "google-github-actions/deploy-cloudrun": ("deploy", "deploys to Cloud Run"),
    "google-github-actions/deploy-appengine": ("deploy", "deploys to App Engine"),
    "google-github-actions/deploy-cloud-functions": ("deploy", "deploys Cloud Functions"),
    "hashicorp/tfc-workflows-github/actions/apply-run": ("infrastructure", "applies a Terraform Cloud run"),
    "cloudflare/wrangler-action": ("deploy", "deploys to Cloudflare"),
    "amondnet/vercel-action": ("deploy", "deploys to Vercel"),
    "akhileshns/heroku-deploy": ("deploy", "deploys to Heroku"),
    "firebaseextended/action-hosting-deploy": ("deploy", "deploys to Firebase Hosting"),
    "actions/deploy-pages": ("site", "deploys GitHub Pages"),
    "peaceiris/actions-gh-pages": ("site", "pushes a GitHub Pages site"),
    "jamesives/github-pages-deploy-action": ("site", "pushes a GitHub Pages site"),
}

# Shell commands that ship something, matched per line of `run:`; a line with --dry-run never counts.
_COMMANDS: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (category, re.compile(pattern), what) for category, pattern, what in (
        ("publish", r"\b(?:npm|pnpm)\s+publish\b", "runs `npm publish`"),
        ("publish", r"\byarn\s+(?:npm\s+)?publish\b", "runs `yarn publish`"),
        ("publish", r"\bcargo\s+publish\b", "runs `cargo publish`"),
        ("publish", r"\btwine\s+upload\b", "runs `twine upload`"),
        ("publish", r"\b(?:uv|poetry|flit|hatch|pdm)\s+publish\b", "publishes a Python package"),
        ("publish", r"\bgem\s+push\b", "runs `gem push`"),
        ("publish", r"\bnuget\s+push\b", "pushes a NuGet package"),
        ("publish", r"\bmvn\b[^\n|;&]*\sdeploy\b", "runs `mvn deploy`"),
        ("publish", r"\bgradlew?\b[^\n|;&]*\spublish\w*\b", "runs a Gradle publish task"),
        ("publish", r"\bgh\s+release\s+(?:create|upload|edit)\b", "creates or changes a GitHub release"),
        ("publish", r"\b(?:docker|podman)\s+(?:image\s+)?push\b", "pushes a container image"),
        ("publish", r"\bbuildx\s+(?:build|bake)\b[^\n]*\s--push\b", "pushes a container image"),
        ("publish", r"\bgoreleaser\s+release\b(?![^\n]*--snapshot)", "runs `goreleaser release`"),
        ("publish", r"\bko\s+(?:build|publish)\b", "pushes images with `ko`"),
        ("publish", r"\bhelm\s+push\b", "pushes a Helm chart"),
        ("publish", r"\bcrane\s+(?:push|copy|cp)\b", "pushes a container image"),
        ("publish", r"\bskopeo\s+copy\b", "copies a container image to a registry"),
        ("publish", r"\b(?:vsce|ovsx)\s+publish\b", "publishes an editor extension"),
        ("infrastructure", r"\b(?:terraform|tofu|terragrunt)\b[^\n|;&]*\s(?:apply|destroy)\b",
         "runs `terraform apply`"),
        ("infrastructure", r"\bpulumi\s+(?:up|destroy)\b", "runs `pulumi up`"),
        ("infrastructure", r"\bcdk\s+(?:deploy|destroy)\b", "runs `cdk deploy`"),
        ("infrastructure", r"\bsam\s+deploy\b", "runs `sam deploy`"),
        ("infrastructure", r"\b(?:serverless|sls)\s+deploy\b", "runs `serverless deploy`"),
        ("infrastructure", r"\bkubectl\s+(?!config\b)[^\n|;&]*\s(?:apply|create|delete|patch|replace|set|scale|edit)\s",
         "changes a cluster with `kubectl`"),
        ("infrastructure", r"\bkubectl\b[^\n|;&]*\srollout\s+(?:restart|undo)\b", "changes a cluster with `kubectl`"),
        ("infrastructure", r"\bhelm\s+(?:upgrade|install|uninstall|rollback)\b", "changes a cluster with `helm`"),
        ("infrastructure", r"\baws\s+s3\s+(?:sync|cp|mv)\s+(?!s3://)\S+\s+s3://", "writes to S3 with the AWS CLI"),
        ("infrastructure", r"\baws\s+s3\s+rm\b", "deletes from S3 with the AWS CLI"),
        ("infrastructure", r"\baws\s+(?!s3\s)[a-z0-9-]+\s+(?:create|update|delete|put|deploy|register|attach|detach|"
                           r"modify|terminate|run|start|stop|publish)[a-z0-9-]*\b",
         "changes AWS resources with the AWS CLI"),
        ("infrastructure", r"\bgcloud\b[^\n|;&]*\s(?:deploy|create|update|delete|apply|add-iam-policy-binding|"
                           r"set-iam-policy)\b", "changes Google Cloud resources with `gcloud`"),
        ("infrastructure",
         r"\baz\s+(?!login\b|account\b)[a-z-]+(?:\s+[a-z-]+)*\s+(?:create|update|delete|deploy|swap)\b",
         "changes Azure resources with `az`"),
        ("deploy", r"\b(?:flyctl|fly)\s+deploy\b", "runs `fly deploy`"),
        ("deploy", r"\bvercel\b[^\n]*\s--prod\b", "deploys to Vercel production"),
        ("deploy", r"\bnetlify\s+deploy\b[^\n]*\s--prod\b", "deploys to Netlify production"),
        ("deploy", r"\bfirebase\s+deploy\b", "runs `firebase deploy`"),
        ("deploy", r"\bwrangler\s+(?:deploy|publish)\b", "deploys to Cloudflare"),
        ("deploy", r"\bgit\s+push\s+heroku\b", "deploys to Heroku"),
        ("site", r"\bmkdocs\s+gh-deploy\b", "runs `mkdocs gh-deploy`"),
        ("site", r"\bmike\s+deploy\b[^\n]*\s--push\b", "pushes documentation with `mike`"),
    ))
# A local throwaway cluster: kubectl and helm in such a job change nothing that lives on.
_LOCAL_CLUSTER = re.compile(r"\bkind\s+create\s+cluster\b|\bminikube\s+start\b|\bk3d\s+cluster\s+create\b")
_LOCAL_CLUSTER_ACTIONS = re.compile(r"kind-action|setup-kind|setup-minikube|setup-k3[ds]|k3d-action|"
                                    r"replicated-actions/create-cluster")
_CLUSTER_CHANGE = ("changes a cluster with `kubectl`", "changes a cluster with `helm`")

_SECRET_REF = re.compile(r"secrets\s*\.\s*([A-Za-z_][A-Za-z0-9_-]*)|secrets\[\s*['\"]([^'\"]+)['\"]\s*\]")
_PRODUCTION_SECRET = re.compile(r"(?:^|_)(?:PROD|PRODUCTION|PRD|LIVE)(?:_|$)", re.IGNORECASE)
# Registry tokens that exist only to publish (npm tokens are left out: most are read tokens for private installs).
_PUBLISH_SECRET = re.compile(r"PYPI|CARGO_REGISTRY_TOKEN|CRATES?_?IO|RUBYGEMS|GEM_HOST_API_KEY|NUGET_API_KEY|"
                             r"OSSRH|SONATYPE|MAVEN_CENTRAL", re.IGNORECASE)
_UNTRUSTED_REF = re.compile(r"github\.event\.pull_request\.head\.(?:sha|ref|repo)|github\.head_ref|"
                            r"github\.event\.workflow_run\.head_(?:sha|branch|repository)|refs/pull/|"
                            r"github\.event\.pull_request\.merge_commit_sha")
_UNTRUSTED_FETCH = re.compile(r"\bgh\s+pr\s+checkout\b|\bgit\s+(?:fetch|checkout|pull)\b[^\n]*"
                              r"(?:pull/|\$\{\{\s*(?:github\.head_ref|github\.event\.pull_request\.head|"
                              r"github\.event\.workflow_run\.head_))")
_SAME_REPOSITORY = re.compile(r"head\.repo\.full_name\s*==\s*github\.repository\b|"
                              r"head_repository\.full_name\s*==\s*github\.repository\b|"
                              r"github\.repository\s*==\s*github\.event\.(?:pull_request\.head\.repo|workflow_run\."
                              r"head_repository)\.full_name|head\.repo\.fork\s*==\s*false|!\s*github\.event\."
                              r"pull_request\.head\.repo\.fork")
_PRIVILEGED_TRIGGERS = ("pull_request_target", "workflow_run")

# Long-lived cloud credentials: (provider, names of inputs or variables that carry them, secret-name pattern).
_CLOUD_KEYS: tuple[tuple[str, frozenset[str], re.Pattern[str]], ...] = (
    ("AWS access key", frozenset({"aws_secret_access_key", "aws-secret-access-key", "aws_access_key_id",
                                  "aws-access-key-id"}),
     re.compile(r"SECRET_ACCESS_KEY|ACCESS_KEY_ID", re.IGNORECASE)),
    ("Google Cloud service account key", frozenset({"credentials_json", "service_account_key",
                                                    "google_application_credentials", "google_credentials",
                                                    "gcp_sa_key", "gcloud_service_key"}),
     re.compile(r"(?:GCP|GOOGLE|GCLOUD|GKE)\w*(?:CREDENTIALS|SA_KEY|KEY_JSON|SERVICE_ACCOUNT_KEY)", re.IGNORECASE)),
    ("Azure client secret", frozenset({"creds", "azure_client_secret", "arm_client_secret", "client-secret"}),
     re.compile(r"(?:AZURE|ARM)\w*(?:CLIENT_SECRET|CREDENTIALS)", re.IGNORECASE)),
    ("Oracle Cloud API signing key", frozenset({"oci_api_key", "oci_cli_key_content", "private_key"}),
     re.compile(r"OCI\w*(?:API_KEY|KEY_CONTENT|PRIVATE_KEY)", re.IGNORECASE)),
)


class GitHubWorkflowScanner:
    """GitHub Actions workflow files, recognised by a mapping with `on` and `jobs`."""

    kind = KIND

    def recognizes(self, source: Source) -> bool:
        workflow = source.first_mapping()
        return workflow is not None and "on" in workflow and isinstance(workflow.get("jobs"), Mapped)

    def scan(self, source: Source) -> list[Finding]:
        workflow = source.first_mapping()
        if workflow is None:
            return []
        return list(_workflow_findings(workflow, source.display))


def _workflow_findings(workflow: Mapped, path: str) -> Iterator[Finding]:
    triggers = _triggers(workflow.get("on"))
    jobs: Mapped = workflow["jobs"]
    workflow_env = workflow.get("env")
    shipping_jobs: list[str] = []
    if workflow.get("permissions") == "write-all":
        yield Finding(WRITE_ALL, Location(path, workflow.line_of("permissions")),
                      "the workflow sets `permissions: write-all`: every job's token can write to everything",
                      identity="GITHUB_TOKEN of every job", action="write-all")
    for job_id, job in jobs.items():
        if not isinstance(job, Mapped):
            continue
        where = f"job `{job_id}`"
        if isinstance(job.get("uses"), str):
            continue  # a reusable workflow: its jobs are judged where it is defined
        protected = _environment(job)
        sensitive = _sensitive(job, workflow_env)
        shipping = [item for item in sensitive if item.category != "site"]
        if shipping:
            shipping_jobs.append(str(job_id))
        if sensitive and protected is None:
            rule = UNPROTECTED_DEPLOY if shipping else UNPROTECTED_SITE_DEPLOY
            listed = list({item.what: item for item in reversed(shipping or sensitive)}.values())[::-1]
            yield Finding(rule, Location(path, listed[0].line),
                          f"{where} {_join(item.what for item in listed)} and names no `environment:`, so no reviewer "
                          "stands between the trigger and the release",
                          identity=f"{where} (GITHUB_TOKEN and its secrets)", action=listed[0].what)
        if job.get("permissions") == "write-all":
            yield Finding(WRITE_ALL, Location(path, job.line_of("permissions")),
                          f"{where} sets `permissions: write-all`", identity=f"GITHUB_TOKEN of {where}",
                          action="write-all")
        if triggers & set(_PRIVILEGED_TRIGGERS) and protected is None and not _same_repository_only(job):
            yield from _untrusted_checkout(job, where, workflow, triggers, path)
        yield from _cloud_keys(job, where, path)
    if "permissions" not in workflow and shipping_jobs and triggers - {"workflow_call"}:
        defaulted = [str(job_id) for job_id, job in jobs.items()
                     if isinstance(job, Mapped) and "permissions" not in job and not isinstance(job.get("uses"), str)]
        if defaulted:
            yield Finding(DEFAULT_PERMISSIONS, Location(path, workflow.line_of("jobs")),
                          f"no workflow-level `permissions:`; {_join(f'`{job}`' for job in defaulted)} run with the "
                          f"repository's default token scopes in a workflow that ships "
                          f"({_join(f'`{job}`' for job in shipping_jobs)})",
                          identity=_join(f"GITHUB_TOKEN of job `{job}`" for job in defaulted),
                          action="default token permissions")


def _triggers(on: Any) -> set[str]:
    if isinstance(on, str):
        return {on}
    if isinstance(on, list):
        return {item for item in on if isinstance(item, str)}
    if isinstance(on, dict):
        return {key for key in on if isinstance(key, str)}
    return set()


def _environment(job: Mapped) -> str | None:
    environment = job.get("environment")
    if isinstance(environment, Mapped):
        environment = environment.get("name")
    return environment if isinstance(environment, str) and environment.strip() else None


def _steps(job: Mapped) -> list[tuple[int, Mapped]]:
    steps = job.get("steps")
    if not isinstance(steps, Listed):
        return []
    return [(steps.line_of(index), step) for index, step in enumerate(steps) if isinstance(step, Mapped)]


def _action(step: Mapped) -> str:
    uses = step.get("uses")
    return uses.split("@", 1)[0].strip().lower() if isinstance(uses, str) else ""


def _with(step: Mapped) -> Mapped:
    inputs = step.get("with")
    return inputs if isinstance(inputs, Mapped) else Mapped()


def _sensitive(job: Mapped, workflow_env: Any) -> list[Sensitive]:
    found: list[Sensitive] = []
    steps = _steps(job)
    local_cluster = any(_LOCAL_CLUSTER_ACTIONS.search(_action(step))
                        or (isinstance(step.get("run"), str) and _LOCAL_CLUSTER.search(step["run"]))
                        for _, step in steps)
    for line, step in steps:
        action = _action(step)
        inputs = _with(step)
        if action in _ACTIONS and _ships(action, inputs):
            category, what = _ACTIONS[action]
            found.append(Sensitive(category, f"{what} (`{action}`)", step.line_of("uses")))
        elif action == "docker/build-push-action" and _truthy(inputs.get("push")):
            found.append(Sensitive("publish", "pushes a container image (`docker/build-push-action`)", line))
        elif action == "goreleaser/goreleaser-action" and _goreleaser_releases(inputs):
            found.append(Sensitive("publish", "runs `goreleaser release` (`goreleaser/goreleaser-action`)", line))
        run = step.get("run")
        if isinstance(run, str):
            found.extend(_run_commands(run, step.line_of("run"), local_cluster))
    seen = {item.what for item in found}
    for name, line in _secret_names(job, workflow_env):
        if _PRODUCTION_SECRET.search(name):
            what = f"uses the production secret `{name}`"
            category = "production secret"
        elif _PUBLISH_SECRET.search(name):
            what = f"uses the publishing token `{name}`"
            category = "publish"
        else:
            continue
        if what not in seen:
            seen.add(what)
            found.append(Sensitive(category, what, line))
    return sorted(found, key=lambda item: item.line)


def _ships(action: str, inputs: Mapped) -> bool:
    if action == "firebaseextended/action-hosting-deploy":
        return inputs.get("channelId") == "live"  # other channels are previews
    if action == "amondnet/vercel-action":
        return "--prod" in str(inputs.get("vercel-args", ""))  # without it, a preview deployment
    return True


def _truthy(value: Any) -> bool:
    """`true`, or an expression that may be true at run time (e.g. `${{ github.event_name != 'pull_request' }}`)."""
    return value is True or (isinstance(value, str) and (value.strip().lower() == "true" or "${{" in value))


def _goreleaser_releases(inputs: Mapped) -> bool:
    args = inputs.get("args")
    if not isinstance(args, str):
        return False
    return bool(re.search(r"\brelease\b", args)) and not re.search(r"--snapshot|--skip[= ]?-?publish", args)


def _run_commands(run: str, first_line: int, local_cluster: bool) -> Iterator[Sensitive]:
    # A block scalar (`run: |`) starts on the line after its key.
    offset = 1 if "\n" in run.rstrip("\n") else 0
    for number, text in enumerate(run.splitlines()):
        code = text.strip()
        if not code or code.startswith("#") or re.search(r"--dry-?run", code) or code.startswith("echo "):
            continue
        for category, pattern, what in _COMMANDS:
            if local_cluster and what in _CLUSTER_CHANGE:
                continue
            if pattern.search(code):
                yield Sensitive(category, what, first_line + offset + number)
                break


def _strings(value: Any, key: Any = None, line: int = 0) -> Iterator[tuple[Any, str, int]]:
    """Every string under `value`, with the key it is the value of and its line (nearest known)."""
    if isinstance(value, Mapped):
        for child_key, child in value.items():
            yield from _strings(child, child_key, value.line_of(child_key))
    elif isinstance(value, Listed):
        for index, child in enumerate(value):
            yield from _strings(child, key, value.line_of(index))
    elif isinstance(value, str):
        yield key, value, line


def _secret_names(job: Mapped, workflow_env: Any) -> Iterator[tuple[str, int]]:
    for scope in (workflow_env, job):
        for _, text, line in _strings(scope):
            for match in _SECRET_REF.finditer(text):
                yield match.group(1) or match.group(2), line


def _untrusted_checkout(job: Mapped, where: str, workflow: Mapped, triggers: set[str],
                        path: str) -> Iterator[Finding]:
    steps = _steps(job)
    for index, (line, step) in enumerate(steps):
        untrusted = None
        if _action(step) == "actions/checkout":
            inputs = _with(step)
            for name in ("ref", "repository"):
                value = inputs.get(name)
                if isinstance(value, str) and _UNTRUSTED_REF.search(value):
                    untrusted = f"checks out `{name}: {value.strip()}`"
                    line = inputs.line_of(name)
                    break
        run = step.get("run")
        if untrusted is None and isinstance(run, str):
            match = _UNTRUSTED_FETCH.search(run)
            if match:
                untrusted = f"fetches the pull request's code (`{match.group(0).strip()}`)"
        if untrusted is None or index == len(steps) - 1:
            continue
        credentials = _credentials(job, workflow)
        if not credentials:
            continue
        trigger = _join(f"`{name}`" for name in _PRIVILEGED_TRIGGERS if name in triggers)
        yield Finding(UNTRUSTED_CHECKOUT, Location(path, line),
                      f"{where} runs on {trigger}, {untrusted}, then runs further steps while {credentials} "
                      "are available; no `environment:` holds it for review",
                      identity=f"{where} ({credentials})", action="run code from a pull request")
        return


def _same_repository_only(job: Mapped) -> bool:
    """The job's `if:` admits only pull requests from branches of this repository (authors who can push already)."""
    condition = job.get("if")
    return isinstance(condition, str) and "||" not in condition and bool(_SAME_REPOSITORY.search(condition))


def _credentials(job: Mapped, workflow: Mapped) -> str:
    """What the job can wield: named secrets and a token that can write, described; empty when nothing."""
    held = []
    secrets = sorted({name for name, _ in _secret_names(job, workflow.get("env"))
                      if name.upper() != "GITHUB_TOKEN"})
    if secrets:
        held.append("secrets " + _join(f"`{name}`" for name in secrets[:4]) + (" …" if len(secrets) > 4 else ""))
    if job.get("secrets") == "inherit":
        held.append("all inherited secrets")
    permissions = job.get("permissions", workflow.get("permissions"))
    if permissions is None:
        held.append("a token with the repository's default (possibly write) scopes")
    elif permissions == "write-all" or (isinstance(permissions, Mapped) and "write" in permissions.values()):
        writes = ("all scopes" if permissions == "write-all"
                  else _join(str(scope) for scope, level in permissions.items() if level == "write"))
        held.append(f"a token that can write ({writes})")
    return _join(held)


def _cloud_keys(job: Mapped, where: str, path: str) -> Iterator[Finding]:
    for provider, names, secret_pattern in _CLOUD_KEYS:
        for key, text, line in _strings(job):
            secrets = [match.group(1) or match.group(2) for match in _SECRET_REF.finditer(text)]
            if not secrets:
                continue
            by_name = isinstance(key, str) and key.lower() in names
            named = [name for name in secrets if secret_pattern.search(name)]
            if by_name or named:
                carried = named[0] if named else secrets[0]
                yield Finding(LONG_LIVED_CLOUD_KEY, Location(path, line),
                              f"{where} authenticates to the cloud with a stored {provider} "
                              f"(`secrets.{carried}`{f' as `{key}`' if isinstance(key, str) else ''})",
                              identity=f"{where} via `secrets.{carried}`", action=f"use a stored {provider}")
                break


def _join(items: Any) -> str:
    return ", ".join(items)
