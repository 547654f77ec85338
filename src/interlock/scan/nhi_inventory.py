"""NHI inventories: identities that reach sensitive actions with no second control, and how their secrets age.

The inventory format is `schemas/nhi-inventory.schema.json` (JSON Schema 2020-12), in YAML or JSON. A file is
an inventory when its top-level mapping says `kind: nhi-inventory` or its `$schema` names that schema file;
an inventory that does not validate is a per-file problem naming each error's path and line.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs installed; used through a narrow surface

from interlock.scan import frameworks as fw
from interlock.scan.findings import Finding, Location, Rule
from interlock.scan.sources import Listed, Mapped, ParseError, Source

KIND = "nhi-inventory"
SCHEMA_PATH = Path(__file__).with_name("schemas") / "nhi-inventory.schema.json"
ROTATION_DAYS = 90  # a stored secret not rotated for longer than this is reported
MAX_LIFETIME_DAYS = 365  # a stored secret that stays valid longer than this after issue is reported
SHORT_LIVED_TYPES = frozenset({"federated", "oidc", "workload_identity", "managed_identity"})
SECOND_CONTROLS = frozenset({"interlock", "approval"})
MAX_REPORTED_ERRORS = 20

SENSITIVE_WITHOUT_SECOND_CONTROL = Rule(
    id="nhi.sensitive_without_second_control",
    title="An identity can run a sensitive action with no second control",
    severity="high",
    why="Whoever holds this identity's credential — the service, a leaked key, an agent steered by a convincing"
        " message — runs the action on recognition alone: nothing independent checks that this action, now,"
        " should happen.",
    fix="Put the action behind Interlock (the executor consumes a grant bound to the exact action, with an"
        " independent approval where policy requires it) and mark it `second_control: interlock`; or remove the"
        " permission if the identity does not need it.",
    owasp_nhi=(fw.NHI5_OVERPRIVILEGED,),
    nist_csf=(fw.CSF_PR_AA_05, fw.CSF_PR_AA_03),
    nist_800_207=(fw.ZT_TENET_4, fw.ZT_TENET_6),
)
SECRET_UNROTATED = Rule(
    id="nhi.secret_unrotated",
    title="A stored secret has not been rotated within the threshold",
    severity="medium",
    why="An old secret has had time to be copied into scripts, laptops and logs; anyone holding a copy is"
        " recognised as the identity and reaches everything it may do.",
    fix=f"Rotate the secret (at least every {ROTATION_DAYS} days), or replace it with a short-lived federated"
        " credential (OIDC, workload identity).",
    owasp_nhi=(fw.NHI7_LONG_LIVED, fw.NHI2_SECRET_LEAKAGE),
    nist_csf=(fw.CSF_PR_AA_01,),
    nist_800_207=(fw.ZT_TENET_6,),
)
SECRET_LONG_LIVED = Rule(
    id="nhi.secret_long_lived",
    title="A stored secret never expires, or stays valid for more than a year",
    severity="low",
    why="A secret with no end date keeps working after it leaks, after its owner leaves and after its purpose"
        " is gone: recognition that outlives every reason for it.",
    fix=f"Give the secret an expiry at most {MAX_LIFETIME_DAYS} days after issue, or move to a short-lived"
        " federated credential.",
    owasp_nhi=(fw.NHI7_LONG_LIVED,),
    nist_csf=(fw.CSF_PR_AA_01,),
    nist_800_207=(fw.ZT_TENET_3,),
)
UNOWNED = Rule(
    id="nhi.unowned",
    title="A non-human identity has no owner",
    severity="medium",
    why="Nobody answers for what an unowned identity does: nobody reviews its privileges, rotates its secrets"
        " or offboards it, so its access persists on recognition alone.",
    fix="Name the accountable person or team in `owner`, or decommission the identity.",
    owasp_nhi=(fw.NHI1_OFFBOARDING,),
    nist_csf=(fw.CSF_ID_AM_08, fw.CSF_PR_AA_01),
    nist_800_207=(fw.ZT_TENET_7,),
)
HUMAN_USE = Rule(
    id="nhi.human_use",
    title="Humans act through a non-human identity",
    severity="medium",
    why="A person using a service account borrows its privileges and hides behind its name: the action is"
        " attributed to the machine, and any control keyed to the person (approval, separation of duties) is"
        " skipped.",
    fix="Give each person their own identity with their own approvals; keep the non-human identity for the"
        " workload it was made for.",
    owasp_nhi=(fw.NHI10_HUMAN_USE,),
    nist_csf=(fw.CSF_PR_AA_02, fw.CSF_PR_AA_03),
    nist_800_207=(fw.ZT_TENET_6,),
)
UNUSED_PRIVILEGE = Rule(
    id="nhi.unused_privilege",
    title="A permission the usage data shows was never used",
    severity="low",
    why="A permission nobody uses is pure exposure: it gives whoever holds the identity a path to an action"
        " that no legitimate work needs.",
    fix="Remove the permission; grant it again, behind a second control, when a real need appears.",
    owasp_nhi=(fw.NHI5_OVERPRIVILEGED,),
    nist_csf=(fw.CSF_PR_AA_05,),
    nist_800_207=(fw.ZT_TENET_3,),
)
RULES = (SENSITIVE_WITHOUT_SECOND_CONTROL, SECRET_UNROTATED, SECRET_LONG_LIVED, UNOWNED, HUMAN_USE, UNUSED_PRIVILEGE)


@cache
def schema() -> dict[str, Any]:
    """The NHI inventory JSON Schema."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


def is_inventory(document: Any) -> bool:
    """Whether a parsed document declares itself an NHI inventory (by `kind` or `$schema`)."""
    if not isinstance(document, dict):
        return False
    marker = document.get("$schema")
    return document.get("kind") == KIND or (isinstance(marker, str) and marker.endswith(f"{KIND}.schema.json"))


@dataclass(frozen=True)
class NhiInventoryScanner:
    """Scans NHI inventories; `today` is the date secret ages are measured at (passed in, for repeatable scans)."""

    today: datetime.date
    rotation_days: int = ROTATION_DAYS
    max_lifetime_days: int = MAX_LIFETIME_DAYS
    kind: str = KIND

    def recognizes(self, source: Source) -> bool:
        if source.syntax not in ("yaml", "json"):
            return False
        return is_inventory(source.first_mapping())

    def scan(self, source: Source) -> list[Finding]:
        findings: list[Finding] = []
        for document in source.documents():
            if is_inventory(document):
                validate(document)
                findings.extend(self._inventory(source.display, document))
        return findings

    def _inventory(self, path: str, document: Mapped) -> Iterator[Finding]:
        patterns = [str(p).lower() for p in document.get("sensitive", ())]
        identities: Listed = document["identities"]
        for index, identity in enumerate(identities):
            where = Location(path, identities.line_of(index))
            yield from _ownership(path, identity, where)
            for position, credential in enumerate(identity.get("credentials", ())):
                yield from self._credential(path, identity, credential, identity["credentials"].line_of(position))
            for position, permission in enumerate(identity.get("permissions", ())):
                yield from _permission(path, identity, permission, identity["permissions"].line_of(position),
                                       patterns)

    def _credential(self, path: str, identity: Mapped, credential: Mapped, line: int) -> Iterator[Finding]:
        kind = credential["type"]
        if kind in SHORT_LIVED_TYPES:
            return
        name = _credential_name(credential)
        issued = _date(credential, "last_rotated") or _date(credential, "created")
        assert issued is not None  # the schema requires `created` for stored secrets
        age = (self.today - issued).days
        if age > self.rotation_days:
            when = (f"was last rotated on {issued.isoformat()}" if credential.get("last_rotated")
                    else f"was created on {issued.isoformat()} and never rotated")
            yield Finding(SECRET_UNROTATED, Location(path, line),
                          f"{kind} `{name}` of `{identity['id']}` {when}: {age} days ago"
                          f" (threshold {self.rotation_days} days)",
                          identity=identity["id"], action=name)
        expires = _date(credential, "expires")
        if expires is None:
            yield Finding(SECRET_LONG_LIVED, Location(path, credential.line_of("expires")),
                          f"{kind} `{name}` of `{identity['id']}` never expires",
                          identity=identity["id"], action=name)
        elif (expires - issued).days > self.max_lifetime_days:
            yield Finding(SECRET_LONG_LIVED, Location(path, credential.line_of("expires")),
                          f"{kind} `{name}` of `{identity['id']}` stays valid {(expires - issued).days} days after"
                          f" issue, until {expires.isoformat()} (limit {self.max_lifetime_days} days)",
                          identity=identity["id"], action=name)


def _ownership(path: str, identity: Mapped, where: Location) -> Iterator[Finding]:
    if identity["kind"] == "human":
        return
    owner = identity.get("owner")
    if owner is None or not owner.strip():
        yield Finding(UNOWNED, Location(path, identity.line_of("owner") if "owner" in identity else where.line),
                      f"{identity['kind']} `{identity['id']}` has no owner", identity=identity["id"])
    users = identity.get("used_by") or []
    if users:
        yield Finding(HUMAN_USE, Location(path, identity.line_of("used_by")),
                      f"{identity['kind']} `{identity['id']}` is used by {len(users)} human(s): "
                      + ", ".join(f"`{user}`" for user in users), identity=identity["id"])


def _permission(path: str, identity: Mapped, permission: str | Mapped, line: int,
                patterns: list[str]) -> Iterator[Finding]:
    details: dict[str, Any] = permission if isinstance(permission, dict) else {"action": permission}
    action = details["action"]
    flagged = details.get("sensitive") is True
    matched = next((p for p in patterns if _covers(action.lower(), p)), None)
    if (flagged or matched) and not _controlled(details.get("second_control")):
        because = "flagged sensitive" if flagged else f"sensitive: {_how(action, matched or '')} `{matched}`"
        yield Finding(SENSITIVE_WITHOUT_SECOND_CONTROL, Location(path, line),
                      f"{identity['kind']} `{identity['id']}` holds `{action}` ({because}) with no second control",
                      identity=identity["id"], action=action)
    if details.get("last_used") == "never":
        yield Finding(UNUSED_PRIVILEGE, Location(path, line),
                      f"{identity['kind']} `{identity['id']}` holds `{action}` and the usage data shows it never"
                      " used it", identity=identity["id"], action=action)


def _covers(action: str, pattern: str) -> bool:
    """`action` is sensitive under `pattern` when the pattern matches it, or when it is a wildcard over the pattern."""
    return fnmatch.fnmatchcase(action, pattern) or fnmatch.fnmatchcase(pattern, action)


def _how(action: str, pattern: str) -> str:
    return "matches" if fnmatch.fnmatchcase(action.lower(), pattern) else "a wildcard over"


def _controlled(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(v in SECOND_CONTROLS for v in values)


def _credential_name(credential: Mapped) -> str:
    return str(credential.get("id") or f"{credential['type']} (line {credential.line})")


def _date(mapping: Mapped, key: str) -> datetime.date | None:
    value = mapping.get(key)
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ParseError(f"line {mapping.line_of(key)}: `{key}`: `{value}` is not a date") from None


# --- validation ---------------------------------------------------------------------------------------


def validate(document: Mapped) -> None:
    """Check an inventory against the schema; `ParseError` lists every error with its path and line."""
    problems = sorted(_problem(document, error) for error in _validator().iter_errors(_plain(document)))
    if problems:
        shown = [f"line {line}: {where}: {message}" for line, where, message in problems[:MAX_REPORTED_ERRORS]]
        more = f"; and {len(problems) - MAX_REPORTED_ERRORS} more" if len(problems) > MAX_REPORTED_ERRORS else ""
        raise ParseError(f"not a valid NHI inventory ({SCHEMA_PATH.name}): " + "; ".join(shown) + more)
    for identity in document["identities"]:
        for credential in identity.get("credentials", ()):
            for key in ("created", "last_rotated", "expires"):
                _date(credential, key)  # raises on a date-shaped string that is no date (2025-02-30)
        for permission in identity.get("permissions", ()):
            if isinstance(permission, Mapped) and permission.get("last_used") != "never":
                _date(permission, "last_used")


def _problem(document: Mapped, error: jsonschema.ValidationError) -> tuple[int, str, str]:
    """(line, path, message) of one schema error, in the words of the inventory rather than of the schema."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        unknown = [key for key in error.instance if key not in known and not str(key).startswith("x-")]
        return (_line(document, [*path, unknown[0]]) if unknown else _line(document, path), _path(path),
                "unknown key " + ", ".join(f"`{key}`" for key in unknown) + " (keys of your own start with `x-`)")
    if error.validator in ("oneOf", "anyOf") and error.context:
        expected = dict.fromkeys(_expected(sub) for sub in error.context if not sub.relative_path)
        return _line(document, path), _path(path), f"`{error.instance}` is not " + " or ".join(expected)
    return _line(document, path), _path(path), error.message


def _expected(error: jsonschema.ValidationError) -> str:
    if error.validator == "pattern":
        return "a date (YYYY-MM-DD)"
    if error.validator == "const":
        return f"`{error.validator_value}`"
    if error.validator == "enum":
        return "one of " + ", ".join(f"`{value}`" for value in error.validator_value)
    if error.validator == "type":
        return f"of type {error.validator_value}"
    return str(error.message)


def _plain(value: Any) -> Any:
    """The document as JSON values: YAML dates become ISO strings, keys strings, for the schema to check."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _line(document: Any, path: Any) -> int:
    """The line of the value at `path` (its key's line inside a mapping), as near as the document knows."""
    node, line = document, getattr(document, "line", 1)
    for step in path:
        if isinstance(node, Mapped):
            key = next((k for k in node if str(k) == step), step)
            line, node = node.line_of(key), node.get(key)
        elif isinstance(node, Listed) and isinstance(step, int):
            line, node = node.line_of(step), node[step] if step < len(node) else None
        else:
            break
    return line or 1


def _path(path: Any) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text or "(top level)"
