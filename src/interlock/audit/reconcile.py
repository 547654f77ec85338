"""Reconciliation: the executions a downstream system reports, each matched to one grant consumed in the audit log.

An execution log is JSON lines, one action that really ran per line:

    {"action": "payments.transfer", "resource": "account:treasury", "params": {...},
     "executor": "payments-service", "jti": "grt_...", "id": "tx-81", "at": "2026-11-25T09:00:03Z"}

`action`, `resource` and `params` (default `{}`) are what ran, digested as the gate digests them (SHA-256 of the
RFC 8785 JSON); a line may give the `digest` instead (64 lower-case hex), or both if they agree. `executor`
(who ran it) and `jti` (the grant it presented) narrow the match when given; `id` and `at` are echoed back.
Keys starting with `x-` are ignored; any other key is an error. Each `grant.consumed` entry accounts for at most
one execution, so a replay (the same action run twice on one grant) leaves an execution unmatched.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from interlock.core import strict_json
from interlock.core.action import ActionSpec, from_value
from interlock.core.errors import InterlockError, RequestError

KNOWN_KEYS = frozenset({"action", "resource", "params", "digest", "executor", "jti", "id", "at"})
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
MAX_LISTED_PROBLEMS = 50


@dataclass(frozen=True)
class Execution:
    """One action the downstream system says it ran (`line`: its 1-based line in the execution log)."""

    line: int
    digest: str
    action: str | None = None
    resource: str | None = None
    executor: str | None = None
    jti: str | None = None
    id: str | None = None
    at: str | None = None


@dataclass(frozen=True)
class ConsumedGrant:
    """A `grant.consumed` audit entry: the grant `jti`, consumed by `executor` for the action `digest`."""

    index: int
    jti: str
    executor: str
    digest: str
    request_id: str | None
    at: str
    action: str | None = None  # from the request's `request.decided` entry, when the log holds it
    resource: str | None = None


@dataclass(frozen=True)
class Unmatched:
    execution: Execution
    reason: str


@dataclass
class Reconciliation:
    """Which executions a consumed grant accounts for, which none does, and consumed grants never seen run."""

    matched: list[tuple[Execution, ConsumedGrant]] = field(default_factory=list)
    unmatched: list[Unmatched] = field(default_factory=list)
    unexecuted: list[ConsumedGrant] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unmatched

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "executions": len(self.matched) + len(self.unmatched),
            "matched": len(self.matched),
            "unmatched": [{**_execution_json(u.execution), "reason": u.reason} for u in self.unmatched],
            "matches": [{"line": e.line, "jti": g.jti, "entry": g.index} for e, g in self.matched],
            "consumed_without_execution": [_grant_json(g) for g in self.unexecuted],
        }


def parse_executions(text: bytes) -> list[Execution]:
    """Every line of an execution log; `input.invalid` naming every malformed line (line number and why)."""
    executions: list[Execution] = []
    problems: list[dict[str, Any]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            executions.append(_execution(number, raw))
        except InterlockError as error:
            problems.append({"line": number, "code": error.code, "message": error.message})
    if problems:
        shown = "; ".join(f"line {p['line']}: {p['message']}" for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise RequestError("input.invalid", f"{len(problems)} malformed line(s) in the execution log: {shown}{more}",
                           problems=problems[:MAX_LISTED_PROBLEMS], malformed=len(problems))
    return executions


def _execution(number: int, raw: bytes) -> Execution:
    value = strict_json.parse(raw)
    if not isinstance(value, dict):
        raise RequestError("input.invalid", "a line must be a JSON object")
    unknown = sorted(key for key in value if key not in KNOWN_KEYS and not key.startswith("x-"))
    if unknown:
        raise RequestError("input.unknown_field", "unknown key(s) " + ", ".join(f"`{key}`" for key in unknown))
    optional = {key: value.get(key) for key in ("executor", "jti", "id", "at")}
    for key, given in optional.items():
        if given is not None and (not isinstance(given, str) or not given):
            raise RequestError("input.invalid", f"`{key}` must be a non-empty string")
    digest, spec = value.get("digest"), None
    if digest is not None and (not isinstance(digest, str) or not _DIGEST.match(digest)):
        raise RequestError("input.invalid", "`digest` must be 64 lower-case hex digits (SHA-256)")
    if "action" in value or "resource" in value or "params" in value:
        spec = from_value(ActionSpec, {k: value[k] for k in ("action", "resource", "params") if k in value})
        if digest is not None and digest != spec.digest():
            raise RequestError("input.invalid", "`digest` is not the digest of `action`, `resource` and `params`")
        digest = spec.digest()
    if digest is None:
        raise RequestError("input.invalid", "a line needs `action` and `resource` (with `params`), or `digest`")
    return Execution(number, digest, spec.action if spec else None, spec.resource if spec else None, **optional)


def consumed_grants(leaves: Iterable[bytes]) -> list[ConsumedGrant]:
    """The `grant.consumed` entries of an audit log, in log order, named by their request's action."""
    requests: dict[str, tuple[str | None, str | None]] = {}
    grants: list[ConsumedGrant] = []
    for leaf in leaves:
        try:
            body = json.loads(leaf)
        except ValueError:
            continue  # `audit verify` names unreadable entries; here they hold no consumed grant
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            continue
        data, request_id = body["data"], body.get("request_id")
        if body.get("kind") == "request.decided" and isinstance(data.get("request"), dict):
            requests[str(request_id)] = (data["request"].get("action"), data["request"].get("resource"))
        elif body.get("kind") == "grant.consumed" and all(isinstance(data.get(k), str)
                                                          for k in ("jti", "executor", "digest")):
            action, resource = requests.get(str(request_id), (None, None))
            grants.append(ConsumedGrant(int(body.get("index", len(grants))), data["jti"], data["executor"],
                                        data["digest"], request_id, str(body.get("at", "")), action, resource))
    return grants


def reconcile(grants: Iterable[ConsumedGrant], executions: Iterable[Execution],
              signed: int | None = None) -> Reconciliation:
    """Match each execution to a consumed grant of the same digest (and executor, and jti, when given).

    A grant accounts for one execution at most. The matching is a maximum one (no other assignment accounts
    for more executions), and among those it keeps earlier lines matched: when one grant meets two executions,
    the later line is the one reported, as the replay it most likely is. With `signed` (the size of the newest
    checkpoint that verified), only grants whose entries a signature covers count: an entry past it can be
    written by whoever holds the file or the database.
    """
    everything = list(grants)
    consumed = [g for g in everything if signed is None or g.index < signed]
    unsigned = [g for g in everything if signed is not None and g.index >= signed]
    ran = sorted(executions, key=lambda e: e.line)
    by_digest: dict[str, list[int]] = {}
    for number, grant in enumerate(consumed):
        by_digest.setdefault(grant.digest, []).append(number)
    candidates = [[g for g in by_digest.get(e.digest, []) if _fits(consumed[g], e)] for e in ran]
    owner: dict[int, int] = {}  # grant -> execution it accounts for
    held: dict[int, int] = {}  # execution -> its grant
    for number in range(len(ran)):
        _augment(number, candidates, owner, held)
    used_by = {consumed[g].jti: ran[e] for g, e in owner.items()}
    result = Reconciliation()
    for number, execution in enumerate(ran):
        if number in held:
            result.matched.append((execution, consumed[held[number]]))
        else:
            result.unmatched.append(Unmatched(execution, _why(execution, consumed, used_by, unsigned)))
    result.unexecuted = [grant for number, grant in enumerate(consumed) if number not in owner]
    return result


def _augment(start: int, candidates: list[list[int]], owner: dict[int, int], held: dict[int, int]) -> bool:
    """Find `start` a grant, moving executions matched before to other grants if that frees one (Kuhn, by BFS)."""
    reached_by: dict[int, int] = {}  # grant -> the execution whose search reached it
    queue = deque([start])
    while queue:
        execution = queue.popleft()
        for grant in candidates[execution]:
            if grant in reached_by:
                continue
            reached_by[grant] = execution
            if grant not in owner:
                while True:  # flip the alternating path back to `start`
                    taker = reached_by[grant]
                    previous = held.get(taker)
                    owner[grant], held[taker] = taker, grant
                    if taker == start or previous is None:
                        return True
                    grant = previous
            queue.append(owner[grant])
    return False


def _fits(grant: ConsumedGrant, execution: Execution) -> bool:
    return (grant.digest == execution.digest and (execution.executor is None or grant.executor == execution.executor)
            and (execution.jti is None or grant.jti == execution.jti))


def _why(execution: Execution, grants: list[ConsumedGrant], used_by: dict[str, Execution],
         unsigned: list[ConsumedGrant]) -> str:
    """Why no consumed grant accounts for `execution`, in the terms an investigator needs."""
    unproven = [g for g in unsigned if _fits(g, execution)]
    if unproven:
        return (f"the only grant that would account for it (entry {unproven[0].index}) is not covered by a signed"
                " checkpoint")
    if execution.jti is not None:
        named = next((g for g in grants if g.jti == execution.jti), None)
        if named is None:
            return f"grant `{execution.jti}` was never consumed"
        if named.digest != execution.digest:
            return f"grant `{execution.jti}` was consumed for another action (digest {named.digest[:12]}…)"
        if execution.executor is not None and named.executor != execution.executor:
            return f"grant `{execution.jti}` was consumed by `{named.executor}`, not `{execution.executor}`"
        return (f"grant `{execution.jti}` already accounts for the execution on line"
                f" {used_by[execution.jti].line}: a replay")
    same = [g for g in grants if g.digest == execution.digest]
    if not same:
        return "no grant was consumed for this action"
    if execution.executor is not None and all(g.executor != execution.executor for g in same):
        return ("grants for this action were consumed only by "
                + ", ".join(sorted({f"`{g.executor}`" for g in same})) + f", not `{execution.executor}`")
    lines = sorted(used_by[g.jti].line for g in same if g.jti in used_by)
    return (f"every grant consumed for this action ({len(same)}) already accounts for another execution"
            f" (line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))}): a replay")


def _execution_json(execution: Execution) -> dict[str, Any]:
    body = {"line": execution.line, "id": execution.id, "action": execution.action, "resource": execution.resource,
            "digest": execution.digest, "executor": execution.executor, "jti": execution.jti, "at": execution.at}
    return {key: value for key, value in body.items() if value is not None}


def _grant_json(grant: ConsumedGrant) -> dict[str, Any]:
    body = {"jti": grant.jti, "entry": grant.index, "request_id": grant.request_id, "action": grant.action,
            "resource": grant.resource, "digest": grant.digest, "executor": grant.executor, "consumed_at": grant.at}
    return {key: value for key, value in body.items() if value is not None}
