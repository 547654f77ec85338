"""Kubernetes RBAC manifests: service accounts bound to roles that change workloads, read secrets or rewrite RBAC.

Bindings are resolved against the roles of the same file first, then of the files in the same directory that the
same scan read (`scan_together`), then against the built-in ClusterRoles (cluster-admin, admin, edit, view).
A ServiceAccount's permission is the action; nothing in RBAC asks anyone else before the account uses it, so every
sensitive grant here is a path with no second control unless something outside RBAC (admission policy) adds one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interlock.scan import frameworks as fw
from interlock.scan.findings import Finding, Location, Rule
from interlock.scan.sources import Listed, Mapped, ParseError, Source

KIND = "k8s-rbac"
RBAC_GROUP = "rbac.authorization.k8s.io"
ROLE_KINDS = ("Role", "ClusterRole")
BINDING_KINDS = ("RoleBinding", "ClusterRoleBinding")
# Namespaces treated as production: kube-system (the control plane's own workloads), and any name with a
# prod/production/prd/live segment (`prod`, `payments-prod`, `production-eu`, `live`, `prd1`).
PRODUCTION_NAMESPACE = re.compile(r"^kube-system$|(?:^|[-_.])(?:prod|production|prd|live)(?:$|[-_.\d])")

_FIX_NARROW = ("Split the role: give the service account only the verbs and resources its controller uses, with "
               "`resourceNames` where it can; bind it with a RoleBinding in the one namespace it serves; put changes "
               "to workloads, secrets and RBAC behind an admission policy (e.g. a ValidatingAdmissionPolicy) or a "
               "deployment pipeline that requires an independent approval.")
CLUSTER_ADMIN_BINDING = Rule(
    id="k8s.cluster_admin_binding",
    title="Binding grants `cluster-admin`",
    severity="high",
    why="Whoever holds the subject's credential (a service account token, a client certificate) can do anything in "
        "the cluster, including reading every secret and granting itself more; holding the credential is the only "
        "check.",
    fix="Replace the cluster-admin binding with a role listing what the subject does; keep cluster-admin for a "
        "break-glass group used through an approved, time-limited elevation.",
    owasp_nhi=(fw.NHI5_OVERPRIVILEGED, fw.NHI8_ISOLATION),
    nist_csf=(fw.CSF_PR_AA_05,),
    nist_800_207=(fw.ZT_TENET_3, fw.ZT_TENET_6),
)
SENSITIVE_CLUSTER_WIDE = Rule(
    id="k8s.sensitive_binding_cluster_wide",
    title="Service account can change workloads, read secrets, rewrite RBAC or exec into pods in every namespace",
    severity="high",
    why="A ClusterRoleBinding gives the subject the role in every namespace, production included; anyone who obtains "
        "its token (a compromised pod, a leaked kubeconfig) acts on the whole cluster with no second check.",
    fix=_FIX_NARROW,
    owasp_nhi=(fw.NHI5_OVERPRIVILEGED, fw.NHI8_ISOLATION),
    nist_csf=(fw.CSF_PR_AA_05,),
    nist_800_207=(fw.ZT_TENET_3, fw.ZT_TENET_6),
)
SENSITIVE_PRODUCTION = Rule(
    id="k8s.sensitive_binding_production",
    title="Service account can change workloads, read secrets, rewrite RBAC or exec into pods in production",
    severity="high",
    why="The binding is in a production-like namespace (kube-system, or a name with prod/production/prd/live); the "
        "token alone is enough to change what runs there or read its secrets.",
    fix=_FIX_NARROW,
    owasp_nhi=(fw.NHI5_OVERPRIVILEGED, fw.NHI8_ISOLATION),
    nist_csf=(fw.CSF_PR_AA_05,),
    nist_800_207=(fw.ZT_TENET_3, fw.ZT_TENET_6),
)
SENSITIVE_NAMESPACED = Rule(
    id="k8s.sensitive_binding",
    title="Service account can change workloads, read secrets, rewrite RBAC or exec into pods in its namespace",
    severity="medium",
    why="Within the binding's namespace the token alone is enough to change what runs or read its secrets; the "
        "namespace does not look like production (or is set only when the manifest is applied).",
    fix=_FIX_NARROW,
    owasp_nhi=(fw.NHI5_OVERPRIVILEGED,),
    nist_csf=(fw.CSF_PR_AA_05,),
    nist_800_207=(fw.ZT_TENET_3,),
)
UNBOUND_SENSITIVE_ROLE = Rule(
    id="k8s.sensitive_role_unbound",
    title="Role grants sensitive permissions but no binding in the scan uses it",
    severity="low",
    why="Nobody holds it yet, as far as the scanned files show; the first binding to it (possibly in another "
        "repository) hands a service account a path to workloads, secrets or RBAC with no second control.",
    fix="Remove the sensitive rules the role does not need, or scan it together with the manifests that bind it.",
    owasp_nhi=(fw.NHI5_OVERPRIVILEGED,),
    nist_csf=(fw.CSF_PR_AA_05,),
    nist_800_207=(fw.ZT_TENET_3,),
)
WILDCARD = Rule(
    id="k8s.wildcard_permissions",
    title="Role rule uses a wildcard verb or resource",
    severity="medium",
    why="`*` grants every verb or resource of the group, including ones added later (new CRDs, subresources such as "
        "`pods/exec`); what the holder may do is no longer decided by anyone reviewing the role.",
    fix="List the verbs and resources explicitly.",
    owasp_nhi=(fw.NHI5_OVERPRIVILEGED,),
    nist_csf=(fw.CSF_PR_AA_05,),
    nist_800_207=(fw.ZT_TENET_3,),
)
RULES = (CLUSTER_ADMIN_BINDING, SENSITIVE_CLUSTER_WIDE, SENSITIVE_PRODUCTION, SENSITIVE_NAMESPACED,
         UNBOUND_SENSITIVE_ROLE, WILDCARD)

_WORKLOADS = ("pods", "deployments", "daemonsets", "statefulsets", "replicasets", "replicationcontrollers", "jobs",
              "cronjobs")
_WRITE = ("create", "update", "patch")
_MUTATING = ("create", "update", "patch", "delete", "deletecollection")
# What the built-in ClusterRoles can do (kubernetes.io/docs/reference/access-authn-authz/rbac/#user-facing-roles).
_BUILT_IN = {
    "admin": ("write workloads", "read secrets", "write secrets", "exec into pods", "change RBAC",
              "impersonate service accounts"),
    "edit": ("write workloads", "read secrets", "write secrets", "exec into pods", "impersonate service accounts"),
    "view": (),
}


@dataclass(frozen=True)
class RoleDef:
    kind: str
    name: str
    namespace: str | None
    path: str
    directory: str
    line: int
    capabilities: tuple[str, ...]
    aggregated: bool  # labelled to be aggregated into another ClusterRole: bound through that role


@dataclass(frozen=True)
class BindingDef:
    kind: str
    name: str
    namespace: str | None
    path: str
    directory: str
    line: int
    role_kind: str
    role_name: str
    subjects: tuple[str, ...]


class KubernetesRbacScanner:
    """Kubernetes manifests holding RBAC objects (one or several YAML documents, `List` wrappers included)."""

    kind = KIND

    def recognizes(self, source: Source) -> bool:
        if source.syntax not in ("yaml", "json"):
            return False
        try:
            return any(_is_rbac(item) for item in _objects(source.documents()))
        except ParseError:
            return False

    def scan(self, source: Source) -> list[Finding]:
        return self.scan_together([source])

    def scan_together(self, sources: Sequence[Source]) -> list[Finding]:
        """Findings over several files at once, so a binding in one file finds its role in another."""
        roles: list[RoleDef] = []
        bindings: list[BindingDef] = []
        findings: list[Finding] = []
        for source in sources:
            directory = str(Path(source.display).parent)
            for item in _objects(source.documents()):
                if not _is_rbac(item):
                    continue
                if item.get("kind") in ROLE_KINDS:
                    role = _role(item, source.display, directory)
                    roles.append(role)
                    findings.extend(_wildcards(item, role))
                elif item.get("kind") in BINDING_KINDS:
                    binding = _binding(item, source.display, directory)
                    if binding is not None:
                        bindings.append(binding)
        bound: set[RoleDef] = set()
        for binding in bindings:
            resolved = _resolve(binding, roles)
            if resolved is not None:
                bound.add(resolved)
            finding = _binding_finding(binding, resolved)
            if finding is not None:
                findings.append(finding)
        for role in roles:
            if role.capabilities and role not in bound and not role.aggregated:
                findings.append(Finding(
                    UNBOUND_SENSITIVE_ROLE, Location(role.path, role.line),
                    f"{role.kind} `{role.name}` can {_join(role.capabilities)}; no binding in the scanned files "
                    "refers to it", identity=f"{role.kind} {role.name} (not bound)", action=_join(role.capabilities)))
        return findings


def _objects(documents: Iterable[Any]) -> Iterator[Mapped]:
    for document in documents:
        if not isinstance(document, Mapped):
            continue
        kind = document.get("kind")
        items = document.get("items")
        if isinstance(kind, str) and kind.endswith("List") and isinstance(items, Listed):
            yield from (item for item in items if isinstance(item, Mapped))
        else:
            yield document


def _is_rbac(item: Mapped) -> bool:
    kind, api_version = item.get("kind"), item.get("apiVersion")
    if not isinstance(api_version, str):
        return False
    if kind in ROLE_KINDS + BINDING_KINDS:
        return api_version.startswith(RBAC_GROUP + "/")
    return kind == "ServiceAccount" and api_version == "v1"


def _metadata(item: Mapped) -> Mapped:
    metadata = item.get("metadata")
    return metadata if isinstance(metadata, Mapped) else Mapped()


def _namespace(item: Mapped) -> str | None:
    namespace = _metadata(item).get("namespace")
    return namespace if isinstance(namespace, str) and namespace else None


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    return {str(entry) for entry in value} if isinstance(value, list) else set()


def _role(item: Mapped, path: str, directory: str) -> RoleDef:
    metadata = _metadata(item)
    rules = item.get("rules")
    capabilities: list[str] = []
    if isinstance(rules, Listed):
        capabilities = _capabilities([rule for rule in rules if isinstance(rule, Mapped)])
    labels = metadata.get("labels")
    aggregated = isinstance(labels, Mapped) and any(
        isinstance(key, str) and key.startswith(RBAC_GROUP + "/aggregate-to-") for key in labels)
    kind = str(item.get("kind"))
    return RoleDef(kind, str(metadata.get("name", "")), _namespace(item) if kind == "Role" else None, path, directory,
                   item.line, tuple(capabilities), aggregated)


@dataclass(frozen=True)
class _PolicyRule:
    """One RBAC rule's apiGroups, resources and verbs (lower case)."""

    groups: frozenset[str]
    resources: frozenset[str]
    verbs: frozenset[str]

    def grants(self, groups: tuple[str, ...], resources: tuple[str, ...], verbs: tuple[str, ...]) -> bool:
        return (("*" in self.groups or any(group in self.groups for group in groups))
                and ("*" in self.resources or any(resource in self.resources for resource in resources))
                and ("*" in self.verbs or any(verb in self.verbs for verb in verbs)))


_ORDER = ("write workloads", "read secrets", "write secrets", "exec into pods", "change RBAC", "impersonate",
          "mint service account tokens", "control admission webhooks", "approve certificate requests")
_RBAC_RESOURCES = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")


def _capabilities(rules: list[Mapped]) -> list[str]:
    """The sensitive things a set of rules allows, in a fixed order, each named once."""
    found: set[str] = set()
    approves_csr = signs = False
    for raw in rules:
        rule = _PolicyRule(frozenset(_strings(raw.get("apiGroups")) or {""}),
                           frozenset(resource.lower() for resource in _strings(raw.get("resources"))),
                           frozenset(verb.lower() for verb in _strings(raw.get("verbs"))))
        if not rule.resources:
            continue  # nonResourceURLs only
        if rule.grants(("", "apps", "batch", "extensions"), _WORKLOADS, _WRITE):
            found.add("write workloads")
        if rule.grants(("",), ("secrets",), ("get", "list", "watch")):
            found.add("read secrets")
        if rule.grants(("",), ("secrets",), _WRITE):
            found.add("write secrets")
        if (rule.grants(("",), ("pods/exec", "pods/attach", "pods/*"), ("create", "get"))
                or rule.grants(("",), ("pods/ephemeralcontainers", "pods/*"), ("update", "patch"))
                or rule.grants(("",), ("nodes/proxy", "nodes/*"), ("get", "create"))):
            found.add("exec into pods")
        if rule.grants((RBAC_GROUP,), _RBAC_RESOURCES, (*_WRITE, "escalate", "bind")):
            found.add("change RBAC")
        if rule.grants(("", "authentication.k8s.io"), ("users", "groups", "serviceaccounts", "uids", "userextras/*"),
                       ("impersonate",)):
            found.add("impersonate")
        if rule.grants(("",), ("serviceaccounts/token", "serviceaccounts/*"), ("create",)):
            found.add("mint service account tokens")
        if rule.grants(("admissionregistration.k8s.io",),
                       ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"), _WRITE):
            found.add("control admission webhooks")
        approves_csr |= rule.grants(("certificates.k8s.io",), ("certificatesigningrequests/approval",),
                                    ("update", "patch"))
        signs |= rule.grants(("certificates.k8s.io",), ("signers",), ("approve",))
    if approves_csr and signs:
        found.add("approve certificate requests")
    return [capability for capability in _ORDER if capability in found]


def _wildcards(item: Mapped, role: RoleDef) -> Iterator[Finding]:
    rules = item.get("rules")
    if not isinstance(rules, Listed):
        return
    for index, rule in enumerate(rules):
        if not isinstance(rule, Mapped) or not _strings(rule.get("resources")):
            continue
        groups, resources, verbs = (_strings(rule.get(key)) for key in ("apiGroups", "resources", "verbs"))
        verbs.discard("")
        if not verbs:
            continue  # grants nothing
        starred = [key for key, values in (("verbs", verbs), ("resources", resources)) if "*" in values]
        if "*" in groups and ("*" in verbs or verbs & set(_MUTATING)):
            starred.append("apiGroups")
        if not starred:
            continue
        if starred == ["resources"] and verbs <= {"get", "list", "watch"} and not groups & {"", "*"}:
            continue  # reading every resource of named extension groups: no secrets there, nothing changes
        shown = f"apiGroups {sorted(groups) or ['']}, resources {sorted(resources)}, verbs {sorted(verbs)}"
        yield Finding(WILDCARD, Location(role.path, rules.line_of(index)),
                      f"{role.kind} `{role.name}` has `*` in {_join(starred)} ({shown})",
                      identity=f"{role.kind} {role.name}", action=f"* in {_join(starred)}")


def _binding(item: Mapped, path: str, directory: str) -> BindingDef | None:
    role_ref = item.get("roleRef")
    if not isinstance(role_ref, Mapped) or role_ref.get("kind") not in ROLE_KINDS:
        return None
    namespace = _namespace(item)
    kind = str(item.get("kind"))
    subjects = []
    raw = item.get("subjects")
    for subject in raw if isinstance(raw, Listed) else ():
        if not isinstance(subject, Mapped):
            continue
        subject_kind, name = subject.get("kind"), subject.get("name")
        if subject_kind == "ServiceAccount":
            subjects.append(f"ServiceAccount {subject.get('namespace') or namespace or '(namespace at apply)'}/{name}")
        else:
            subjects.append(f"{subject_kind} {name}")
    return BindingDef(kind, str(_metadata(item).get("name", "")), namespace if kind == "RoleBinding" else None, path,
                      directory, item.line, str(role_ref.get("kind")), str(role_ref.get("name")), tuple(subjects))


def _resolve(binding: BindingDef, roles: list[RoleDef]) -> RoleDef | None:
    """The role a binding refers to: same file first, then same directory; a Role must share the namespace."""
    candidates = [role for role in roles if role.kind == binding.role_kind and role.name == binding.role_name
                  and (role.kind == "ClusterRole" or role.namespace is None or binding.namespace is None
                       or role.namespace == binding.namespace)]
    for scope in ("path", "directory"):
        near = [role for role in candidates if getattr(role, scope) == getattr(binding, scope)]
        if near:
            return near[0]
    return None


def _binding_finding(binding: BindingDef, role: RoleDef | None) -> Finding | None:
    who = _join(binding.subjects) or "no subjects"
    location = Location(binding.path, binding.line)
    scope = ("every namespace" if binding.kind == "ClusterRoleBinding"
             else f"namespace `{binding.namespace}`" if binding.namespace else "the namespace it is applied to")
    if not binding.subjects:
        return None
    if binding.role_kind == "ClusterRole" and binding.role_name == "cluster-admin" and role is None:
        return Finding(CLUSTER_ADMIN_BINDING, location,
                       f"{binding.kind} `{binding.name}` grants cluster-admin in {scope} to {who}",
                       identity=who, action="cluster-admin")
    if role is not None:
        capabilities = role.capabilities
    elif binding.role_kind == "ClusterRole" and binding.role_name in _BUILT_IN:
        capabilities = _BUILT_IN[binding.role_name]
    else:
        return None  # the role is not in the scan: what it grants is unknown here
    if not capabilities:
        return None
    if binding.kind == "ClusterRoleBinding":
        rule = SENSITIVE_CLUSTER_WIDE
    elif binding.namespace and PRODUCTION_NAMESPACE.search(binding.namespace):
        rule = SENSITIVE_PRODUCTION
    else:
        rule = SENSITIVE_NAMESPACED
    return Finding(rule, location,
                   f"{binding.kind} `{binding.name}` lets {who} {_join(capabilities)} in {scope} "
                   f"(through {binding.role_kind} `{binding.role_name}`)",
                   identity=who, action=_join(capabilities))


def _join(items: Iterable[str]) -> str:
    return ", ".join(items)
