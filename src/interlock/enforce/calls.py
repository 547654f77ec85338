"""Gating one call, whatever carries it: submit it, find the request a retry of the same call made, and run it
only on a grant consumed for exactly it.

The MCP gateway, the agent tool wrapper and the HTTP proxy share this; each turns a `Ruling` into its own answer.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

import anyio

from interlock.core.action import action_digest
from interlock.core.errors import GrantError, InterlockError
from interlock.results import Consumption, RequestState

__all__ = ["Call", "CallGate", "Executed", "GateLike", "Ruling", "RulingKind", "TakesAtOnce", "Waiting", "ended_code",
           "report_result", "waiting"]

_log = logging.getLogger(__name__)
T = TypeVar("T")
RulingKind = Literal["run", "held", "denied", "ended"]
MAX_DETAIL = 4096  # the gate's limit on a reported result's detail
CANCELLED = "cancelled before the call finished: outcome unknown"


class GateLike(Protocol):
    """What gating a call needs from a gate, local (`Gate`) or remote (`RemoteGate`)."""

    def submit(self, document: dict[str, Any]) -> RequestState: ...

    async def submit_async(self, document: dict[str, Any]) -> RequestState: ...

    def status(self, request_id: str) -> RequestState: ...

    def consume(self, grant: str, executor: str, action: dict[str, Any]) -> Consumption: ...

    async def consume_async(self, grant: str, executor: str, action: dict[str, Any]) -> Consumption: ...

    def report(self, jti: str, succeeded: bool, detail: str = "", *, executor: str | None = None) -> Any: ...


@runtime_checkable
class TakesAtOnce(Protocol):
    """A gate that can decide a request and consume its grant in one transaction (`Gate.take_async`)."""

    async def take_async(self, document: dict[str, Any], executor: str) -> tuple[RequestState, Consumption | None]: ...


@dataclass(frozen=True)
class Call:
    """One call to gate: the action request submitted for it; `spec` and `digest` are what its grant binds."""

    request: dict[str, Any]
    # How messages name doing it again: "calling `pay`" reads "... calling `pay` again makes a new request".
    again: str = "the same call"
    spec: dict[str, Any] = field(init=False)
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        action, resource, params = self.request["action"], self.request["resource"], self.request["params"]
        object.__setattr__(self, "spec", {"action": action, "resource": resource, "params": params})
        object.__setattr__(self, "digest", action_digest(action, resource, params))

    @property
    def executor(self) -> str:
        return str(self.request["executor"])


@dataclass(frozen=True)
class Ruling:
    """What to do with a call now, and the request state that says so.

    `run`: a grant is there to consume (allowed, or the request a retry found was approved); `held`: its request
    waits for approval (remembered: the same call again finds it); `denied`: policy said no; `ended`: the
    request a retry found was rejected or expired (forgotten: the next call is a new request).
    """

    kind: RulingKind
    state: RequestState


@dataclass(frozen=True)
class Executed(Generic[T]):
    """A call that ran: what its function returned, and the grant consumed for it."""

    value: T
    consumed: Consumption


class CallGate:
    """Gate calls to one executor through a gate: decide, consume once, report.

    `requester` submits and reads requests (the caller's identity); `executor` consumes grants and reports
    results (defaults to `requester`). Remembers, per action digest, the request that waits for approval, so
    that the same call again, once approved, consumes that request's grant; other arguments are other digests,
    so new requests. The plain steps block (SQLite, or HTTP to a server); the `_async` steps are for a process
    whose one event loop owns the gate (the gateway, the proxy): a SQLite store takes async writes from one loop
    at a time. `run_async`, for any caller's loop, runs the blocking steps in worker threads.
    """

    def __init__(self, requester: GateLike, executor: GateLike | None = None) -> None:
        self.requester = requester
        self.executor = executor or requester
        # A gate that asks and executes here, and can do both in one transaction: its Gate.take_async.
        self._take_at_once = (requester.take_async if self.executor is requester and isinstance(requester, TakesAtOnce)
                              else None)
        # action digest -> id of the request that waits for (or got) approval: a retry of the same call finds it.
        self.pending: dict[str, str] = {}
        self._mutex = threading.Lock()  # guards the tables below, touched from worker threads too
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}
        self._async_locks: dict[str, tuple[anyio.Lock, list[int]]] = {}

    # --- one decision at a time per action --------------------------------------------------------------

    @contextmanager
    def one_at_a_time(self, digest: str) -> Iterator[None]:
        """Hold the calls of one action digest to one at a time (threads): a retry never races its approval."""
        lock = self._take(self._locks, digest, threading.Lock)
        try:
            with lock:
                yield
        finally:
            self._give_back(self._locks, digest)

    @asynccontextmanager
    async def one_at_a_time_async(self, digest: str) -> AsyncIterator[None]:
        """`one_at_a_time` for tasks of one event loop: waiting for the lock does not block the loop."""
        lock = self._take(self._async_locks, digest, anyio.Lock)
        try:
            async with lock:
                yield
        finally:
            self._give_back(self._async_locks, digest)

    def _take(self, table: dict[str, tuple[Any, list[int]]], digest: str, new: Callable[[], Any]) -> Any:
        with self._mutex:
            lock, users = table.setdefault(digest, (new(), [0]))
            users[0] += 1
            return lock

    def _give_back(self, table: dict[str, tuple[Any, list[int]]], digest: str) -> None:
        with self._mutex:
            users = table[digest][1]
            users[0] -= 1
            if not users[0]:
                del table[digest]

    # --- the steps (blocking) --------------------------------------------------------------------------

    def decide(self, call: Call) -> Ruling:
        """Submit the call, or, for a call seen before, read the state of the request it made."""
        request_id = self._pending_request(call)
        if request_id is None:
            return self._submitted(call, self.requester.submit(call.request))
        return self._found(call, request_id, self.requester.status(request_id))

    def consume(self, call: Call, ruling: Ruling) -> Consumption:
        """Consume the grant of a `run` ruling for exactly this call; either way its request is spent here."""
        grant = self._grant_of(ruling)  # no grant to spend: the call's request stays remembered
        with self._spending(call):
            return self.executor.consume(grant, call.executor, call.spec)

    def take(self, call: Call) -> tuple[Ruling, Consumption | None]:
        """`decide`, then `consume` the grant of a `run` ruling: the blocking steps before a call may run, in one
        go (async code pays one worker-thread hop for both)."""
        ruling = self.decide(call)
        return ruling, self.consume(call, ruling) if ruling.kind == "run" else None

    # --- the steps on the event loop that owns the gate ------------------------------------------------
    # A local gate decides and consumes on the loop's thread (only SQLite's commit runs on another): no
    # worker-thread hop. A remote gate's async calls run in worker threads.

    async def decide_async(self, call: Call) -> Ruling:
        request_id = self._pending_request(call)
        if request_id is None:
            return self._submitted(call, await self.requester.submit_async(call.request))
        return self._found(call, request_id, await anyio.to_thread.run_sync(self.requester.status, request_id))

    async def consume_async(self, call: Call, ruling: Ruling) -> Consumption:
        grant = self._grant_of(ruling)
        with self._spending(call):
            return await self.executor.consume_async(grant, call.executor, call.spec)

    async def take_async(self, call: Call) -> tuple[Ruling, Consumption | None]:
        """`decide_async`, then `consume_async` of a `run` ruling. A new call to a gate that both asks and
        executes here, and can (`TakesAtOnce`), is decided and consumed in one transaction: one commit."""
        if self._take_at_once is not None and self._pending_request(call) is None:
            state, consumed = await self._take_at_once(call.request, call.executor)
            return (Ruling("run", state), consumed) if consumed is not None else (self._submitted(call, state), None)
        ruling = await self.decide_async(call)
        return ruling, await self.consume_async(call, ruling) if ruling.kind == "run" else None

    # --- what the steps share ------------------------------------------------------------------------

    @contextmanager
    def _spending(self, call: Call) -> Iterator[None]:
        """Around a consume: once it is consumed, or refused for good (used, expired, policy changed), the call's
        request is spent and the next call is a new request; any other failure keeps it for a retry."""
        try:
            yield
        except GrantError:
            self.forget(call)
            raise
        self.forget(call)

    def _pending_request(self, call: Call) -> str | None:
        with self._mutex:
            return self.pending.get(call.digest)

    def _submitted(self, call: Call, state: RequestState) -> Ruling:
        if state.outcome == "allowed":
            if not state.grant:
                raise GrantError("grant.missing", f"request {state.request_id} was allowed without a grant for"
                                                  f" `{call.executor}`", request_id=state.request_id)
            return Ruling("run", state)
        if state.outcome == "pending_approval":
            with self._mutex:
                self.pending[call.digest] = state.request_id
            return Ruling("held", state)
        return Ruling("denied", state)

    def _found(self, call: Call, request_id: str, state: RequestState) -> Ruling:
        """A call seen before: the same action and arguments, so the same request, whatever its approvers did since."""
        if state.outcome == "pending_approval":
            return Ruling("held", state)
        if state.outcome == "approved" and state.grant:
            return Ruling("run", state)
        self.forget(call)
        if state.outcome == "approved":  # approved, but its grant is no longer there to take: consumed
            raise GrantError("grant.already_used", f"the grant of request {request_id} was already used;"
                                                   f" {call.again} again makes a new request", request_id=request_id)
        return Ruling("ended", state)

    @staticmethod
    def _grant_of(ruling: Ruling) -> str:
        if ruling.kind != "run" or not ruling.state.grant:
            raise GrantError("grant.missing", f"request {ruling.state.request_id} has no grant to consume",
                             request_id=ruling.state.request_id)
        return ruling.state.grant

    def report(self, consumed: Consumption, succeeded: bool, detail: str = "") -> None:
        """Record the result of a consumed grant; a report that fails is logged, never raised."""
        report_result(self.executor, consumed, succeeded, detail)

    def forget(self, call: Call) -> None:
        with self._mutex:
            self.pending.pop(call.digest, None)

    # --- the whole call ------------------------------------------------------------------------------

    def run(self, call: Call, execute: Callable[[], T]) -> Executed[T] | Ruling:
        """Gate one call from sync code: what `execute` returned once its grant was consumed, or why it did not run.

        INVARIANT 1: `execute` runs only after the grant for exactly `call` was consumed, at most once per grant.
        An exception from it is reported `failed` (the grant is spent) and raised.
        """
        with self.one_at_a_time(call.digest):
            ruling, consumed = self.take(call)
            if consumed is None:
                return ruling
            try:
                value = execute()
            except BaseException as exc:
                self.report(consumed, False, f"{type(exc).__name__}: {exc}")
                raise
            self.report(consumed, True)
            return Executed(value, consumed)

    async def run_async(self, call: Call, execute: Callable[[], Awaitable[T]]) -> Executed[T] | Ruling:
        """`run` from async code: the gate calls in worker threads, one call per action digest at a time."""
        async with self.one_at_a_time_async(call.digest):
            ruling, consumed = await anyio.to_thread.run_sync(self.take, call)
            if consumed is None:
                return ruling
            try:
                value = await execute()
            except BaseException as exc:
                # Also when cancelled after the grant was consumed: record it, then go on being cancelled.
                detail = (CANCELLED if isinstance(exc, anyio.get_cancelled_exc_class())
                          else f"{type(exc).__name__}: {exc}")
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self.report, consumed, False, detail)
                raise
            await anyio.to_thread.run_sync(self.report, consumed, True)
            return Executed(value, consumed)


def report_result(executor: GateLike, consumed: Consumption, succeeded: bool, detail: str = "") -> None:
    """Record the result of a consumed grant with the gate that consumed it; a report that fails is logged,
    never raised: the call ran (or may have), and a lost report must not turn its outcome into an error."""
    try:
        executor.report(consumed.jti, succeeded, detail[:MAX_DETAIL], executor=consumed.executor)
    except InterlockError as error:
        _log.error("could not report the result of grant %s: %s (%s)", consumed.jti, error.message, error.code)


# The reason code of a request that a repeated call found ended: it did not run, and will not.
ENDED_CODES = {"rejected": "request.rejected", "expired": "approval.expired"}


def ended_code(state: RequestState) -> str:
    return ENDED_CODES.get(state.outcome, "request.not_pending")


@dataclass(frozen=True)
class Waiting:
    """What a caller is told of a request that waits for approval: who must approve, until when, the binding code."""

    lines: tuple[str, ...]
    approvers: tuple[dict[str, Any], ...]
    expires_at: str | None
    binding_code: str | None
    binding_code_required: bool


def waiting(state: RequestState, channel: str) -> Waiting:
    """The approvers, the approval window and the binding code of a pending request, in sentences and as data."""
    lines = []
    approvers = []
    for requirement in state.requirements:
        who = ", ".join(requirement.get("approvers", ()))
        other = f", over another channel than `{channel}`" if requirement.get("separate_channel") else ""
        lines.append(f"Needs {requirement.get('quorum')} approval(s) from: {who}{other}.")
        approvers.append({key: requirement.get(key) for key in ("rule_id", "approvers", "quorum", "separate_channel")})
    expires = state.expires_at.astimezone(datetime.UTC).isoformat() if state.expires_at else None
    if expires:
        lines.append(f"The approval window closes at {expires}.")
    if state.binding_code:
        need = "must type it to approve" if state.sensitive else "use it to recognise this request"
        lines.append(f"Binding code: {state.binding_code}. Give it to your user, who passes it to the approvers on"
                     f" their own channel; the approvers {need}.")
    return Waiting(tuple(lines), tuple(approvers), expires, state.binding_code, state.sensitive)
