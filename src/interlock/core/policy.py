"""Policy files: the YAML model, load-time validation (with line numbers) and compilation into an index."""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from interlock.core.conditions import Condition, ConditionSyntaxError
from interlock.core.durations import parse_duration
from interlock.core.errors import PolicyError

T = TypeVar("T")
Effect = Literal["allow", "deny", "require_approval"]
Independence = Literal["requester", "delegators"]
GROUP_PREFIX = "group:"
DEFAULT_APPROVAL_EXPIRY = "15m"
DEFAULT_BREAK_GLASS_REVIEW = "24h"
NO_MIN_REVIEW = "0s"
_FULL_INDEPENDENCE: tuple[Independence, ...] = ("requester", "delegators")
_ACTION_PATTERN = r"^[A-Za-z0-9_*?.\[\]-]{1,256}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApprovalSpec(_Strict):
    approvers: list[str] = Field(min_length=1)
    quorum: int = Field(default=1, ge=1)
    independent_of: list[Independence] = Field(default_factory=lambda: list(_FULL_INDEPENDENCE))
    separate_channel: bool = False
    expires_in: str = DEFAULT_APPROVAL_EXPIRY
    # An approval given sooner than this after the request was submitted is flagged as a rubber stamp.
    min_review: str = NO_MIN_REVIEW

    @field_validator("independent_of")
    @classmethod
    def _independence_cannot_be_waived(cls, value: list[str]) -> list[str]:
        # INVARIANT 4: recognition is not approval; the requester and its delegators never approve.
        missing = {"requester", "delegators"} - set(value)
        if missing:
            raise ValueError(f"independence from {sorted(missing)} cannot be waived")
        return value

    @field_validator("expires_in")
    @classmethod
    def _is_duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("min_review")
    @classmethod
    def _is_review_time(cls, value: str) -> str:
        _review_seconds(value)
        return value


def _review_seconds(text: str) -> int:
    """A review time in seconds; `0s` (the default) turns the rubber-stamp flag off."""
    return 0 if text == NO_MIN_REVIEW else parse_duration(text)


class RuleSpec(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    action: str = Field(pattern=_ACTION_PATTERN)
    when: str | None = None
    effect: Effect
    approval: ApprovalSpec | None = None
    description: str = ""


class NotifySpec(_Strict):
    """A webhook for one approver group; the HMAC secret is read from the environment variable it names."""

    url: str = Field(pattern=r"^https?://[^\s]{1,2040}$")
    secret_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class BreakGlassSpec(_Strict):
    """Who may proceed alone in an emergency, for which actions, and how soon the post-hoc review is due."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    who: list[str] = Field(min_length=1)
    actions: list[Annotated[str, Field(pattern=_ACTION_PATTERN)]] = Field(min_length=1)
    review_within: str = DEFAULT_BREAK_GLASS_REVIEW

    @field_validator("review_within")
    @classmethod
    def _is_duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class PolicySpec(_Strict):
    version: Literal[1]
    sensitive: list[str] = Field(default_factory=list)
    groups: dict[str, list[str]] = Field(default_factory=dict)
    executors: dict[str, str] = Field(default_factory=dict)
    notify: dict[str, NotifySpec] = Field(default_factory=dict)
    rules: list[RuleSpec] = Field(default_factory=list)
    break_glass: list[BreakGlassSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class ApprovalRequirement:
    """What one `require_approval` rule asks for, with groups resolved to approver ids."""

    rule_id: str
    approvers: frozenset[str]
    quorum: int
    separate_channel: bool
    expires_in: int
    min_review_seconds: int = 0


@dataclass(frozen=True)
class Rule:
    """A compiled rule."""

    id: str
    action: str
    effect: Effect
    condition: Condition | None
    requirement: ApprovalRequirement | None
    description: str

    def covers(self, action: str) -> bool:
        return fnmatch.fnmatchcase(action, self.action)


@dataclass(frozen=True)
class BreakGlass:
    """A compiled `break_glass` entry, with groups resolved to person ids."""

    id: str
    who: frozenset[str]
    actions: tuple[str, ...]
    review_within: int

    def covers(self, action: str) -> bool:
        return any(fnmatch.fnmatchcase(action, pattern) for pattern in self.actions)


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


@dataclass(frozen=True)
class Candidates:
    """What deciding one action involves: its rules in policy order, the CEL variables they read,
    and whether the action is sensitive."""

    rules: tuple[Rule, ...]
    variables: frozenset[str]
    sensitive: bool
    conditions: int
    executor: str | None


class _RuleIndex:
    """Rules by action: exact names in a dict, globs bucketed by their literal first segment.

    Decision cost stays flat in the number of rules for *other* actions; the result per action
    name is memoised (bounded) so repeated actions skip even the glob bucket scan.
    """

    _CACHE_LIMIT = 4096

    def __init__(self, rules: list[Rule], sensitive: list[str], executors: dict[str, str]) -> None:
        self._sensitive = sensitive
        self._executors = executors
        self._exact: dict[str, list[Rule]] = {}
        self._globs_by_head: dict[str, list[Rule]] = {}
        self._globs_anywhere: list[Rule] = []
        self._order = {id(rule): n for n, rule in enumerate(rules)}
        self._cache: dict[str, Candidates] = {}
        for rule in rules:
            if not _is_glob(rule.action):
                self._exact.setdefault(rule.action, []).append(rule)
                continue
            head = rule.action.split(".", 1)[0]
            if _is_glob(head):
                self._globs_anywhere.append(rule)
            else:
                self._globs_by_head.setdefault(head, []).append(rule)

    def _executor_for(self, action: str) -> str | None:
        if action in self._executors:
            return self._executors[action]
        matching = (name for pattern, name in self._executors.items() if fnmatch.fnmatchcase(action, pattern))
        return next(matching, None)

    def candidates(self, action: str) -> Candidates:
        cached = self._cache.get(action)
        if cached is not None:
            return cached
        head = action.split(".", 1)[0]
        found = list(self._exact.get(action, ()))
        found += [r for r in self._globs_by_head.get(head, ()) if r.covers(action)]
        found += [r for r in self._globs_anywhere if r.covers(action)]
        found.sort(key=lambda rule: self._order[id(rule)])
        variables = frozenset().union(*(r.condition.variables for r in found if r.condition))
        sensitive = any(fnmatch.fnmatchcase(action, pattern) for pattern in self._sensitive)
        conditions = sum(1 for r in found if r.condition)
        result = Candidates(tuple(found), variables, sensitive, conditions, self._executor_for(action))
        if len(self._cache) >= self._CACHE_LIMIT:
            self._cache.clear()
        self._cache[action] = result
        return result


@dataclass(frozen=True)
class Policy:
    """A compiled policy; `version` is the SHA-256 of the file it came from."""

    version: str
    spec: PolicySpec
    rules: tuple[Rule, ...]
    _index: _RuleIndex
    break_glass: tuple[BreakGlass, ...] = ()
    # Decisions by (action, matched rule ids): the same rules always combine the same way.
    decisions: dict[tuple[str, ...], Any] = field(default_factory=dict, compare=False, repr=False)

    def remember_decision(self, key: tuple[str, ...], decision: T) -> T:
        if len(self.decisions) >= 4096:
            self.decisions.clear()
        self.decisions[key] = decision
        return decision

    def candidates(self, action: str) -> Candidates:
        return self._index.candidates(action)

    def rules_for(self, action: str) -> tuple[Rule, ...]:
        return self._index.candidates(action).rules

    def is_sensitive(self, action: str) -> bool:
        return self._index.candidates(action).sensitive

    def executor_for(self, action: str) -> str | None:
        """The executor the policy names for `action` (exact name first, then the first matching glob)."""
        return self._index.candidates(action).executor

    def break_glass_for(self, person_id: str, action: str) -> BreakGlass | None:
        """The first `break_glass` entry that names `person_id` and covers `action`; None if none does."""
        return next((e for e in self.break_glass if person_id in e.who and e.covers(action)), None)


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader that refuses duplicate mapping keys (a silently overwritten rule is a hidden door)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                # SafeLoader would refuse it below, but `key in seen` must not crash first.
                raise yaml.constructor.ConstructorError(
                    None, None, f"a {type(key).__name__} cannot be a mapping key", key_node.start_mark
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key `{key}`", key_node.start_mark
                )
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at a pydantic error location, as far down as it exists."""
    node, line = root, None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line


def _fail(message: str, line: int | None) -> PolicyError:
    where = f"line {line}: " if line else ""
    return PolicyError("policy.invalid", f"{where}{message}", line=line)


def load_policy(text: str | bytes) -> Policy:
    """Parse, validate and compile a policy; any problem is a `policy.invalid` naming the line."""
    raw = text.encode() if isinstance(text, str) else text
    loader = _UniqueKeyLoader(raw)
    try:
        # Composed once: the node tree gives line numbers, and the document is constructed from it.
        root = loader.get_single_node()
        document = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise _fail(f"YAML error: {problem}", mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()
    if not isinstance(document, dict):
        raise _fail("a policy is a YAML mapping with `version` and `rules`", 1)
    try:
        spec = PolicySpec.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise _fail(f"`{where}`: {first['msg']}", _line_of(root, tuple(first["loc"]))) from None
    return compile_policy(spec, hashlib.sha256(raw).hexdigest(), root)


def compile_policy(spec: PolicySpec, version: str, root: yaml.Node | None = None) -> Policy:
    """Resolve groups, compile conditions and index the rules."""
    for group in spec.notify:
        if group not in spec.groups:
            raise _fail(f"notify: undefined group `{group}`", _line_of(root, ("notify", group)))
    seen_ids: set[str] = set()
    rules: list[Rule] = []
    for n, rule_spec in enumerate(spec.rules):
        def line(*field: Any, _n: int = n) -> int | None:
            return _line_of(root, ("rules", _n, *field))

        if rule_spec.id in seen_ids:
            raise _fail(f"rule id `{rule_spec.id}` is used twice", line("id"))
        seen_ids.add(rule_spec.id)
        condition = None
        if rule_spec.when is not None:
            try:
                condition = Condition.compile(rule_spec.when)
            except ConditionSyntaxError as exc:
                raise _fail(f"rule `{rule_spec.id}`: CEL error: {exc}", line("when")) from None
        requirement = None
        if rule_spec.effect == "require_approval":
            if rule_spec.approval is None:
                raise _fail(f"rule `{rule_spec.id}`: require_approval needs an `approval` block", line())
            requirement = _requirement(spec, rule_spec, rule_spec.approval, line)
        elif rule_spec.approval is not None:
            raise _fail(f"rule `{rule_spec.id}`: `approval` only goes with require_approval", line("approval"))
        rules.append(
            Rule(rule_spec.id, rule_spec.action, rule_spec.effect, condition, requirement, rule_spec.description)
        )
    return Policy(version, spec, tuple(rules), _RuleIndex(rules, spec.sensitive, spec.executors),
                  _break_glass(spec, root))


def _break_glass(spec: PolicySpec, root: yaml.Node | None) -> tuple[BreakGlass, ...]:
    entries: list[BreakGlass] = []
    for n, entry in enumerate(spec.break_glass):
        if entry.id in {e.id for e in entries}:
            raise _fail(f"break_glass id `{entry.id}` is used twice", _line_of(root, ("break_glass", n, "id")))
        who: set[str] = set()
        for name in entry.who:
            if name.startswith(GROUP_PREFIX):
                group = name[len(GROUP_PREFIX):]
                if group not in spec.groups:
                    raise _fail(f"break_glass `{entry.id}`: undefined group `{group}`",
                                _line_of(root, ("break_glass", n, "who")))
                who.update(spec.groups[group])
            else:
                who.add(name)
        entries.append(BreakGlass(entry.id, frozenset(who), tuple(entry.actions), parse_duration(entry.review_within)))
    return tuple(entries)


def _requirement(spec: PolicySpec, rule: RuleSpec, approval: ApprovalSpec, line: Any) -> ApprovalRequirement:
    approvers: set[str] = set()
    for entry in approval.approvers:
        if entry.startswith(GROUP_PREFIX):
            name = entry[len(GROUP_PREFIX):]
            if name not in spec.groups:
                raise _fail(f"rule `{rule.id}`: undefined group `{name}`", line("approval", "approvers"))
            approvers.update(spec.groups[name])
        else:
            approvers.add(entry)
    if approval.quorum > len(approvers):
        raise _fail(
            f"rule `{rule.id}`: quorum {approval.quorum} exceeds the {len(approvers)} approvers it names",
            line("approval", "quorum"),
        )
    return ApprovalRequirement(
        rule_id=rule.id,
        approvers=frozenset(approvers),
        quorum=approval.quorum,
        separate_channel=approval.separate_channel,
        expires_in=parse_duration(approval.expires_in),
        min_review_seconds=_review_seconds(approval.min_review),
    )
