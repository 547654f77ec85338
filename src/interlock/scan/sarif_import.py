"""Findings of other scanners: a SARIF 2.1.0 log written by zizmor, checkov or any other tool, imported as findings.

Interlock does not rewrite the rule sets of well-kept scanners; it carries their results into the same report.
A file is such a log when its first document is a mapping with `version: "2.1.0"` and `runs` (its name does not
matter). Each result becomes a `Finding`:

- rule id: the tool's own id, namespaced by the tool (`checkov/CKV_K8S_155`; zizmor's ids already are:
  `zizmor/template-injection` stays as it is);
- severity: the result's or its rule's `properties.security-severity` by GitHub's bands (>= 7.0 high, >= 4.0
  medium, else low) when there is one, else the SARIF `level` (the result's, else the rule's default, else
  SARIF's default `warning`): error → high, warning → medium, note and none → low;
- location: the first `physicalLocation` (`uri` as the tool wrote it, `region.startLine`);
- title, why, fix: the rule descriptor's `shortDescription`, `fullDescription`, `help` (and `helpUri`), with the
  rule's name, the result's message and the tool's documentation as fallbacks;
- no framework mappings: the tool gives none that Interlock can vouch for, so none are invented. The message says
  which tool and version reported it, and from which file it was imported.

Left out on purpose: results with `suppressions` (unless every suppression is `rejected`), with `baselineState:
"absent"` (no longer present), or of `kind` `pass` / `notApplicable` (not failures); and the runs Interlock itself
wrote (`tool.driver.name == "interlock"`): re-importing them would double every finding each time `interlock scan .`
runs in a repository that keeps its `interlock.sarif`. A log with only such runs is counted as skipped.
A log with more than `MAX_IMPORTED_RESULTS` results is imported up to the bound, most severe first, and the rest
is reported as a file problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import url2pathname

from interlock.scan.findings import SEVERITIES, Finding, IncompleteScan, Location, Rule, Severity, SkippedInput
from interlock.scan.sources import ParseError, Source

KIND = "sarif"
SARIF_VERSION = "2.1.0"
INTERLOCK_DRIVER = "interlock"
MAX_IMPORTED_RESULTS = 10_000  # per log; a 5 MiB file of compact results could hold tens of thousands
MAX_TEXT = 4_000  # characters kept of any one message or description
LEVEL_SEVERITY: dict[str, Severity] = {"error": "high", "warning": "medium", "note": "low", "none": "low"}
DEFAULT_LEVEL = "warning"  # SARIF 2.1.0 §3.27.10: a result with no level and no rule default is a warning
NOT_FAILURES = frozenset({"pass", "notApplicable"})  # SARIF §3.27.9 result kinds that report no problem


def security_severity_band(score: float) -> Severity:
    """GitHub code scanning's bands for `security-severity`: >= 7.0 high, >= 4.0 medium, else low."""
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low"


@dataclass(frozen=True)
class _Tool:
    name: str
    slug: str  # the namespace of its rule ids: the driver's name, lower case, [a-z0-9_-] only
    label: str  # "zizmor 1.32.0", as the finding names it
    information_uri: str | None
    rules: tuple[tuple[Any, ...], ...]  # rule descriptors of the driver (0) and of each extension (1…)


class SarifImportScanner:
    """SARIF 2.1.0 logs of other scanners, imported as findings (see the module docstring for the mapping)."""

    kind = KIND

    def recognizes(self, source: Source) -> bool:
        if source.syntax == "python":
            return False
        log = source.first_mapping()
        return log is not None and log.get("version") == SARIF_VERSION and "runs" in log

    def scan(self, source: Source) -> list[Finding]:
        log = source.first_mapping()
        if log is None:
            return []
        runs = _expect(log.get("runs"), list, "`runs`")
        imported: list[tuple[Severity, Finding]] = []
        foreign_runs = 0
        for n, run in enumerate(runs):
            run = _expect(run, dict, f"`runs[{n}]`")
            tool = _tool(run, n)
            if tool is None:
                continue
            foreign_runs += 1
            imported.extend(_findings(run, n, tool, source.display))
        if runs and not foreign_runs:
            raise SkippedInput("a SARIF log written by Interlock itself: its findings come from the files it names")
        imported.sort(key=lambda pair: SEVERITIES.index(pair[0]))  # stable: the tool's order within a severity
        findings = [finding for _, finding in imported[:MAX_IMPORTED_RESULTS]]
        if len(imported) > MAX_IMPORTED_RESULTS:
            left_out = len(imported) - MAX_IMPORTED_RESULTS
            raise IncompleteScan(findings, f"{len(imported)} results, over the {MAX_IMPORTED_RESULTS} Interlock imports"
                                           f" from one SARIF log: the {left_out} least severe were left out")
        return findings


def _tool(run: dict[str, Any], n: int) -> _Tool | None:
    """The tool of a run; None for a run Interlock wrote."""
    tool = _expect(run.get("tool"), dict, f"`runs[{n}].tool`")
    driver = _expect(tool.get("driver"), dict, f"`runs[{n}].tool.driver`")
    name = _expect(driver.get("name"), str, f"`runs[{n}].tool.driver.name`").strip()
    if name.lower() == INTERLOCK_DRIVER:
        return None
    version = driver.get("version") or driver.get("semanticVersion")
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-") or "sarif"
    components = [driver, *(e for e in tool.get("extensions") or () if isinstance(e, dict))]
    rules = tuple(tuple(c.get("rules") or ()) if isinstance(c.get("rules"), list) else () for c in components)
    information_uri = driver.get("informationUri")
    return _Tool(name=name, slug=slug, label=f"{name} {version}" if isinstance(version, str) and version else name,
                 information_uri=information_uri if isinstance(information_uri, str) else None, rules=rules)


def _findings(run: dict[str, Any], n: int, tool: _Tool, display: str) -> Iterator[tuple[Severity, Finding]]:
    results = run.get("results")
    results = [] if results is None else _expect(results, list, f"`runs[{n}].results`")  # null: the tool did not run
    by_id = {d["id"]: d for rules in tool.rules for d in rules if isinstance(d, dict) and isinstance(d.get("id"), str)}
    for m, result in enumerate(results):
        where = f"`runs[{n}].results[{m}]`"
        result = _expect(result, dict, where)
        if _left_out(result):
            continue
        descriptor = _descriptor(result, tool, by_id)
        raw_id = result.get("ruleId") or _get(result, "rule", "id") or descriptor.get("id")
        if not isinstance(raw_id, str) or not raw_id.strip():
            raise ParseError(f"{where} names no rule (`ruleId`)")
        rule_id = raw_id if raw_id.lower().startswith(f"{tool.slug}/") else f"{tool.slug}/{raw_id}"
        severity = _severity(result, descriptor)
        message = _message(result, descriptor) or _text(descriptor.get("shortDescription")) or raw_id
        title = _text(descriptor.get("shortDescription")) or _plain(descriptor.get("name")) or raw_id
        why = _text(descriptor.get("fullDescription")) or _text(descriptor.get("help")) or title
        rule = Rule(
            id=rule_id,
            title=title,
            severity=severity,
            why=why,
            fix=_fix(descriptor, title, why, tool, raw_id),
            # INVARIANT: no framework mappings — the tool's results are not Interlock's to map.
        )
        yield severity, Finding(rule, _location(result, run, display),
                                f"{message} (imported from {tool.label}, `{display}`)")


def _left_out(result: dict[str, Any]) -> bool:
    """Suppressed (SARIF §3.27.23: unless every suppression was rejected), absent from the run, or not a failure."""
    suppressions = result.get("suppressions")
    if isinstance(suppressions, list) and suppressions and not all(
            isinstance(s, dict) and s.get("status") == "rejected" for s in suppressions):
        return True
    return result.get("baselineState") == "absent" or result.get("kind") in NOT_FAILURES


def _descriptor(result: dict[str, Any], tool: _Tool, by_id: dict[str, Any]) -> dict[str, Any]:
    """The result's rule descriptor (by index, in the driver or an extension, else by id); {} when there is none."""
    component = _get(result, "rule", "toolComponent", "index")
    rules = tool.rules[component] if isinstance(component, int) and 0 <= component < len(tool.rules) else tool.rules[0]
    index = result.get("ruleIndex", _get(result, "rule", "index"))
    if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(rules):
        found = rules[index]
        if isinstance(found, dict):
            return found
    rule_id = result.get("ruleId") or _get(result, "rule", "id")
    return by_id.get(rule_id, {}) if isinstance(rule_id, str) else {}


def _severity(result: dict[str, Any], descriptor: dict[str, Any]) -> Severity:
    for properties in (result.get("properties"), descriptor.get("properties")):
        score = properties.get("security-severity") if isinstance(properties, dict) else None
        try:
            if score is not None and not isinstance(score, bool):
                return security_severity_band(float(score))
        except (TypeError, ValueError):
            pass  # not a number: the level decides
    level = result.get("level") or _get(descriptor, "defaultConfiguration", "level") or DEFAULT_LEVEL
    return LEVEL_SEVERITY.get(level, LEVEL_SEVERITY[DEFAULT_LEVEL]) if isinstance(level, str) else "medium"


def _message(result: dict[str, Any], descriptor: dict[str, Any]) -> str | None:
    message = result.get("message")
    text = _text(message)
    if text or not isinstance(message, dict):
        return text
    # SARIF §3.11.7: a message may be a template of the rule (`id`) filled with `arguments` ({0}, {1}…).
    template = _text(_get(descriptor, "messageStrings", message.get("id")))
    if not template:
        return None
    arguments = [str(a) for a in message.get("arguments") or ()]
    return _clip(re.sub(r"\{(\d+)\}", lambda m: arguments[int(m[1])] if int(m[1]) < len(arguments) else m[0],
                        template))


def _fix(descriptor: dict[str, Any], title: str, why: str, tool: _Tool, raw_id: str) -> str:
    help_text = _text(descriptor.get("help"))
    if help_text and (help_text.startswith(title) or help_text == why):
        help_text = None  # help that repeats the title or the why says nothing of a fix (checkov's adds a resource)
    help_uri = _plain(descriptor.get("helpUri"))
    if help_uri:
        return f"Follow {tool.name}'s guidance for `{raw_id}`: {help_uri}" + (f" — {help_text}" if help_text else "")
    if help_text:
        return help_text
    where = f" ({tool.information_uri})" if tool.information_uri else ""
    return f"See the documentation of {tool.label}{where} for `{raw_id}`."


def _location(result: dict[str, Any], run: dict[str, Any], display: str) -> Location:
    """The first physical location; the log itself when the result names none."""
    for location in result.get("locations") or ():
        physical = location.get("physicalLocation") if isinstance(location, dict) else None
        if not isinstance(physical, dict):
            continue
        path = _path(physical.get("artifactLocation"), run)
        if path is None:
            continue
        line = _get(physical, "region", "startLine")
        return Location(path, line if isinstance(line, int) and not isinstance(line, bool) and line >= 1 else None)
    return Location(display, None)


def _path(artifact: Any, run: dict[str, Any]) -> str | None:
    """The file an artifactLocation names: a relative URI stays relative (as the tool wrote it), decoded."""
    if not isinstance(artifact, dict):
        return None
    uri = artifact.get("uri")
    index = artifact.get("index")
    artifacts = run.get("artifacts")
    if not isinstance(uri, str) and isinstance(index, int) and isinstance(artifacts, list) \
            and 0 <= index < len(artifacts):
        return _path(_get(artifacts[index], "location"), run)  # SARIF §3.4.5: the run's artifacts table
    if not isinstance(uri, str) or not uri:
        return None
    base = _get(run, "originalUriBaseIds", artifact.get("uriBaseId"), "uri")
    if isinstance(base, str) and base and not urlsplit(uri).scheme:
        uri = urljoin(base if base.endswith("/") else base + "/", uri)
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return url2pathname(parts.path)
    return unquote(uri)


def _expect(value: Any, kind: type, where: str) -> Any:
    if not isinstance(value, kind):
        shape = "an object" if kind is dict else "an array" if kind is list else "a string"
        raise ParseError(f"not a SARIF 2.1.0 log: {where} is {_shape_of(value)}, not {shape}")
    return value


def _shape_of(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, dict):
        return "an object"
    return "an array" if isinstance(value, list) else "a string" if isinstance(value, str) else "a scalar"


def _get(value: Any, *keys: Any) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _text(message: Any) -> str | None:
    """The `text` of a SARIF message or multiformatMessageString, else its `markdown`; clipped."""
    if not isinstance(message, dict):
        return None
    return _plain(message.get("text")) or _plain(message.get("markdown"))


def _plain(value: Any) -> str | None:
    return _clip(value.strip()) if isinstance(value, str) and value.strip() else None


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
