"""The gate: the one place that combines policy, approvals, grants, the store, the audit log, keys and the clock."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread

from interlock.audit.log import Verification
from interlock.core import approval as approval_rules
from interlock.core import binding
from interlock.core.action import CHANNEL_NAME, ActionRequest, ActionSpec, parse_action, parse_request
from interlock.core.approval import AUTH_METHODS, Approval, ApproverAuth, Verdict
from interlock.core.conditions import History
from interlock.core.decision import Decision, decide
from interlock.core.errors import ApprovalError, GrantError, InterlockError, PolicyError, RequestError
from interlock.core.grant import DEFAULT_TTL_SECONDS, GrantDetails, build_claims, check_claims
from interlock.core.policy import ApprovalRequirement, Policy
from interlock.grant_tokens import GrantTokens
from interlock.ids import new_id
from interlock.keys import KeyRing
from interlock.ledger import Ledger
from interlock.notify import Notifier
from interlock.observe import Observer, approve_outcome, observed
from interlock.results import OUTCOME_STATUS, Consumption, RequestReview, RequestState
from interlock.store.base import (
    AuditEvent,
    BreakGlassReview,
    GrantRecord,
    LoadRequest,
    NewRequest,
    RequestChange,
    RequestRecord,
    ReviewChange,
    ReviewSignoff,
    Store,
)

Clock = Callable[[], datetime.datetime]
_log = logging.getLogger(__name__)


def _submit_outcome(state: RequestState, *_: Any) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    return state.outcome, state.reasons if state.outcome == "denied" else (), ()


def _take_outcome(taken: tuple[RequestState, Consumption | None], *_: Any) -> tuple[str, tuple[str, ...],
                                                                                    tuple[str, ...]]:
    state, consumed = taken
    return ("consumed", (), ()) if consumed is not None else _submit_outcome(state)


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


PendingHook = Callable[[RequestState, ActionRequest], None]
BreakGlassHook = Callable[[RequestState, ActionRequest, BreakGlassReview], None]
# Distinct sign-offs, by people other than the requester, its delegators and the break-glass user, that close a review.
REVIEW_SIGNOFFS = 2
MAX_JUSTIFICATION = 4096


@dataclass
class Gate:
    """Submit requests, collect approvals, issue and consume grants; every step audited."""

    store: Store
    policy: Policy
    keys: KeyRing
    clock: Clock = utc_now
    issuer: str = "interlock"
    grant_ttl: int = DEFAULT_TTL_SECONDS
    nbf_leeway: int = 5
    ids: Callable[[str], str] = field(default=new_id)
    notifier: Notifier = field(default_factory=Notifier)
    # Told of every submit, approve and consume (metrics); called after the fact, its failures only logged.
    observer: Observer | None = None
    # Told of each new pending_approval request once it is committed (webhooks); must not block.
    on_pending: PendingHook | None = None
    # Told of each break-glass use once it is committed (alert every approver group); its failures only logged.
    on_break_glass: BreakGlassHook | None = None

    def __post_init__(self) -> None:
        self._grant_tokens = GrantTokens(self.keys)

    # --- requests -----------------------------------------------------------------------------

    @observed("submit", _submit_outcome)
    def submit(self, document: ActionRequest | dict[str, Any] | bytes | str) -> RequestState:
        """Decide on a request; an allow comes with a grant, a require_approval waits for approvers."""
        submission = self._submission(document)
        return self._submitted(submission, self.store.create_request(*submission.store_args))

    @observed("submit", _submit_outcome)
    async def submit_async(self, document: ActionRequest | dict[str, Any] | bytes | str) -> RequestState:
        """`submit` on an event loop: the decision runs on the loop's thread, only the commit on another."""
        submission = self._submission(document)
        return self._submitted(submission, await self.store.create_request_async(*submission.store_args))

    @observed("take", _take_outcome)
    async def take_async(
        self, document: ActionRequest | dict[str, Any] | bytes | str, executor: str
    ) -> tuple[RequestState, Consumption | None]:
        """`submit`, and when it is allowed, its grant consumed by `executor` in the same transaction (one commit
        instead of two): for an enforcement point that both asks and executes, such as the MCP gateway or the
        proxy submitting for its caller. The record is the one `submit` then `consume` leave: the decision with
        its grant, then `grant.consumed`. A grant for another executor is refused as `consume` refuses it."""
        submission = self._submission(document, consume_as=executor)
        new = await self.store.create_request_async(*submission.store_args)
        state = self._submitted(submission, new)
        if new.grant is None:
            return state, None
        if new.grant.consumed_at is None:  # issued to another executor: refused, and on the record, by consume
            return state, await self.consume_async(new.grant.token, executor, submission.request.spec())
        return state, self._consumption(new.grant.jti, state.request_id, executor, submission.request.action,
                                        submission.digest)

    def _submission(
        self, document: ActionRequest | dict[str, Any] | bytes | str, consume_as: str | None = None
    ) -> _Submission:
        """The request parsed, and the decision to record with it; with `consume_as`, an allow's grant is
        recorded consumed by that executor, if it is the grant's (see `take_async`)."""
        request = document if isinstance(document, ActionRequest) else parse_request(document)
        digest = request.digest()
        now = self.clock()
        request_id = self.ids("req")
        policy = self.policy

        executor = self._executor(request, policy)

        def record(history: History) -> NewRequest:
            decision = decide(policy, request, now, history)
            if executor is None and decision.outcome != "deny":
                decision = Decision(
                    "deny", decision.policy_version, decision.matched_rules, ("policy.no_executor",),
                    f"no executor is named for `{request.action}`: set `executor` in the request"
                    " or `executors` in the policy", sensitive=decision.sensitive,
                )
            status = OUTCOME_STATUS[decision.outcome]
            grant = None
            expires_at = None
            if decision.outcome == "allow":
                grant = self._issue(request_id, request, digest, decision.policy_version, (), now)
            elif decision.outcome == "require_approval":
                expires_at = now + datetime.timedelta(seconds=decision.approval_expires_in or 0)
            events = [self._event("request.decided", request_id, now, request=request.model_dump(mode="json"),
                                  digest=digest, decision=decision.to_json(), **_issued(grant))]
            if grant is not None and grant.executor == consume_as:
                grant = dataclasses.replace(grant, consumed_at=now)
                events.append(_consumed_event(request_id, now, grant.jti, consume_as, digest, decision.policy_version))
            return NewRequest(status, decision.to_json(), expires_at, events, grant)

        return _Submission(request_id, request, digest, now, record)

    def _submitted(self, submission: _Submission, new: NewRequest) -> RequestState:
        written = RequestRecord(submission.request_id, submission.request, submission.digest, new.status,
                                new.decision, submission.now, new.expires_at, grant=new.grant)
        state = self._state(written, submission.now)
        if state.outcome == "pending_approval" and self.on_pending is not None:
            try:
                self.on_pending(state, submission.request)
            except Exception:  # noqa: BLE001 - a notification never changes or fails a decision already made
                _log.exception("on_pending hook failed for %s", submission.request_id)
        return state

    def status(self, request_id: str) -> RequestState:
        """A request's state now: its outcome (expired once the approval window closed), approvals and grant."""
        record = self.store.get_request(request_id)
        return self._state(record, self.clock())

    def review(self, request_id: str) -> RequestReview:
        """A request with everything an approver must see before deciding on it."""
        return self._review(self.store.get_request(request_id), self.clock())

    def pending_for(self, approver_id: str) -> list[RequestReview]:
        """The requests waiting for `approver_id`: pending, not expired, theirs to decide, not yet decided."""
        now = self.clock()
        waiting = []
        for record in self.store.pending_requests(now):
            request = record.request
            if approver_id == request.principal.id or approver_id in request.delegator_ids:
                continue  # INVARIANT 4: they could not decide it anyway
            if not any(approver_id in r.approvers for r in _requirements(record.decision)):
                continue
            if any(a.approver_id == approver_id for a in record.approvals):
                continue
            waiting.append(self._review(record, now))
        return waiting

    @observed("approve", lambda state, args, kwargs: approve_outcome(state, args, kwargs))
    def decide_approval(
        self, request_id: str, approver_id: str, channel: str, *, reject: bool = False, comment: str = "",
        auth: ApproverAuth = "local", binding_code: str | None = None,
    ) -> RequestState:
        """Record an approver's approve or reject; issue the grant once every quorum is met.

        `auth` is how the approver authenticated (`token`, `session`, `local`); it goes into the grant.
        Approving a sensitive action needs the request's `binding_code`, which the requester was given.
        """
        _check_approval_args(approver_id, channel, comment, auth)
        now = self.clock()
        verdict: Verdict = "reject" if reject else "approve"

        def change(record: RequestRecord) -> RequestChange:
            self._require_pending(record, now)
            requirements = _requirements(record.decision)
            approval_rules.check_approver(record.request, requirements, approver_id, channel, record.approvals)
            if not reject:
                _check_binding_code(record, binding_code, "approving")
            approval = Approval(self.ids("apr"), record.id, approver_id, channel, verdict, comment, now, auth)
            flagged: dict[str, bool] = {}
            if approval_rules.is_rubber_stamp(requirements, approver_id, verdict, record.created_at, now):
                flagged["rubber_stamp"] = True

            def recorded(grant: GrantRecord | None = None) -> list[AuditEvent]:
                return [self._event(f"approval.{verdict}d", record.id, now, approval_id=approval.id,
                                    approver=approver_id, channel=channel, auth=auth, comment=comment, **flagged,
                                    **_issued(grant))]

            if reject:
                return RequestChange(recorded(), status="rejected", approval=approval)
            approvals = (*record.approvals, approval)
            if not approval_rules.is_satisfied(record.request, requirements, approvals):
                return RequestChange(recorded(), approval=approval)
            grant = self._issue(record.id, record.request, record.digest, record.decision["policy_version"],
                                [{"id": a.id, "approver": a.approver_id, "channel": a.channel, "auth": a.auth}
                                 for a in approvals], now)
            return RequestChange(recorded(grant), status="approved", approval=approval, grant=grant)

        try:
            self.store.update_request(request_id, change)
        except ApprovalError as refusal:
            if refusal.code != "request.not_found":
                self._audit_refusal("approval.refused", request_id, now, refusal, approver=approver_id,
                                    channel=channel, auth=auth, verdict=verdict)
            raise
        self.notifier.changed(request_id)
        return self.status(request_id)

    # --- break-glass ----------------------------------------------------------------------------

    def break_glass(
        self, request_id: str, person_id: str, channel: str, justification: str, *, auth: ApproverAuth = "local",
        binding_code: str | None = None,
    ) -> RequestState:
        """Approve a pending request alone, as a person a policy `break_glass` entry names for its action.

        The grant is issued at once; the use is audited (`break_glass.used`) and opens a post-hoc review that
        two other people must sign off (`review_break_glass`) before its due time. As for an approval, a
        sensitive action needs the request's `binding_code`, which the requester was given.
        """
        _check_approval_args(person_id, channel, "", auth)
        if not isinstance(justification, str) or not justification.strip() or len(justification) > MAX_JUSTIFICATION:
            raise RequestError("input.invalid", f"break-glass needs a justification of 1-{MAX_JUSTIFICATION}"
                                                " characters")
        now = self.clock()
        policy = self.policy
        opened: list[BreakGlassReview] = []

        def change(record: RequestRecord) -> RequestChange:
            self._require_pending(record, now)
            # INVARIANT 4 holds here too: break-glass replaces a quorum by one *independent* person.
            approval_rules.check_independent(record.request, person_id)
            entry = policy.break_glass_for(person_id, record.request.action)
            if entry is None:
                raise ApprovalError("approval.break_glass_not_allowed",
                                    f"no break_glass entry of the policy lets `{person_id}` proceed alone with"
                                    f" `{record.request.action}`")
            if any(a.approver_id == person_id for a in record.approvals):
                raise ApprovalError("approval.duplicate", f"`{person_id}` has already decided on this request")
            # One person acting alone in a hurry is who a look-alike request is made for: the code counts here too.
            _check_binding_code(record, binding_code, "breaking the glass on")
            approval = Approval(self.ids("apr"), record.id, person_id, channel, "approve", justification, now, auth,
                                break_glass=True)
            review = BreakGlassReview(record.id, entry.id, person_id, justification, now,
                                      now + datetime.timedelta(seconds=entry.review_within))
            approvals = [{"id": a.id, "approver": a.approver_id, "channel": a.channel, "auth": a.auth}
                         for a in (*record.approvals, approval) if a.verdict == "approve"]
            grant = self._issue(record.id, record.request, record.digest, record.decision["policy_version"],
                                approvals, now, {"break_glass": True, "break_glass_entry": entry.id})
            events = [self._event("break_glass.used", record.id, now, approval_id=approval.id, who=person_id,
                                  channel=channel, auth=auth, why=justification, entry=entry.id,
                                  review_due=review.due_at.isoformat(), **_issued(grant))]
            opened.append(review)
            return RequestChange(events, status="approved", approval=approval, grant=grant, review=review)

        try:
            self.store.update_request(request_id, change)
        except ApprovalError as refusal:
            if refusal.code != "request.not_found":
                self._audit_refusal("break_glass.refused", request_id, now, refusal, who=person_id,
                                    channel=channel, auth=auth)
            raise
        self.notifier.changed(request_id)
        record = self.store.get_request(request_id)
        state = self._state(record, now)
        if self.on_break_glass is not None:
            try:
                self.on_break_glass(state, record.request, opened[0])
            except Exception:  # noqa: BLE001 - an alert never changes or fails a grant already issued
                _log.exception("on_break_glass hook failed for %s", request_id)
        return state

    def review_break_glass(
        self, request_id: str, reviewer_id: str, channel: str, comment: str = ""
    ) -> BreakGlassReview:
        """Sign off a break-glass use after the fact; the second distinct sign-off closes its review.

        A reviewer is an approver of the request's rules or of any policy group, and neither the requester, one
        of its delegators, nor the person who broke the glass.
        """
        _check_approval_args(reviewer_id, channel, comment)
        now = self.clock()
        groups = self.policy.spec.groups

        def change(review: BreakGlassReview, record: RequestRecord) -> ReviewChange:
            approval_rules.check_independent(record.request, reviewer_id)
            if reviewer_id == review.used_by:
                raise ApprovalError("approval.not_independent", f"`{reviewer_id}` broke the glass on this request")
            eligible = any(reviewer_id in r.approvers for r in _requirements(record.decision)) or any(
                reviewer_id in members for members in groups.values())
            if not eligible:
                raise ApprovalError("approval.not_an_approver", f"`{reviewer_id}` is not an approver")
            if any(s.reviewer_id == reviewer_id for s in review.signoffs):
                raise ApprovalError("approval.duplicate", f"`{reviewer_id}` has already signed off")
            signoff = ReviewSignoff(self.ids("rvw"), record.id, reviewer_id, channel, comment, now)
            closes = len(review.signoffs) + 1 >= REVIEW_SIGNOFFS
            closed = {"closed": {"entry": review.entry_id,
                                 "reviewers": [*(s.reviewer_id for s in review.signoffs), reviewer_id]}}
            events = [self._event("break_glass.reviewed", record.id, now, signoff_id=signoff.id,
                                  reviewer=reviewer_id, channel=channel, comment=comment,
                                  overdue=now > review.due_at, **(closed if closes else {}))]
            return ReviewChange(events, signoff, closes)

        try:
            return self.store.sign_off_review(request_id, change)
        except ApprovalError as refusal:
            self._audit_refusal("break_glass.review_refused", request_id, now, refusal, reviewer=reviewer_id,
                                channel=channel)
            raise

    def open_reviews(self) -> list[BreakGlassReview]:
        """Break-glass reviews not yet signed off by two people, soonest due first."""
        return self.store.open_reviews()

    def overdue_reviews(self, now: datetime.datetime | None = None) -> list[BreakGlassReview]:
        """Open break-glass reviews past their due time at `now` (the gate's clock by default)."""
        at = now or self.clock()
        return [r for r in self.store.open_reviews() if at >= r.due_at]

    # --- grants ---------------------------------------------------------------------------------

    @observed("consume", lambda *_: ("consumed", (), ()))
    def consume(
        self, grant: str, executor: str, action: ActionSpec | dict[str, Any] | bytes | str
    ) -> Consumption:
        """Verify a grant against exactly what the executor is about to run, and mark it used once."""
        attempt = self._consume_attempt(executor, action)
        try:
            self.store.consume_grant(*self._checked(attempt, grant))
        except GrantError as refusal:
            self._refused(attempt, refusal)
            raise
        return self._consumed(attempt)

    @observed("consume", lambda *_: ("consumed", (), ()))
    async def consume_async(
        self, grant: str, executor: str, action: ActionSpec | dict[str, Any] | bytes | str
    ) -> Consumption:
        """`consume` on an event loop: the checks run on the loop's thread, only the commit on another."""
        attempt = self._consume_attempt(executor, action)
        try:
            await self.store.consume_grant_async(*self._checked(attempt, grant))
        except GrantError as refusal:
            await anyio.to_thread.run_sync(self._refused, attempt, refusal)
            raise
        return self._consumed(attempt)

    def _consume_attempt(self, executor: str, action: ActionSpec | dict[str, Any] | bytes | str) -> _Consume:
        spec = action if isinstance(action, ActionSpec) else parse_action(action)
        return _Consume(executor, spec, self.clock())

    def _checked(
        self, attempt: _Consume, grant: str
    ) -> tuple[str, Callable[[GrantRecord, LoadRequest], list[AuditEvent]], datetime.datetime]:
        """The grant's signature and claims checked (`grant.*` refusals), and what the store checks and records."""
        claims = self._grant_tokens.verify(grant)
        attempt.jti = claims.get("jti") if isinstance(claims.get("jti"), str) else None
        details = attempt.details = check_claims(
            claims, executor=attempt.executor, digest=attempt.spec.digest(), now=int(attempt.now.timestamp()),
            leeway=self.nbf_leeway,
        )
        policy, now = self.policy, attempt.now

        def recheck(record: GrantRecord, load: LoadRequest) -> list[AuditEvent]:
            if record.digest != details.digest or record.request_id != details.request_id:
                raise GrantError("grant.digest_mismatch", "grant does not match the request it names")
            if record.policy_version != policy.version:
                # INVARIANT 7: a grant issued under another policy version is re-decided under this one.
                self._recheck_policy(policy, record, *load(), now)
            return [_consumed_event(record.request_id, now, details.jti, attempt.executor, details.digest,
                                    policy.version)]

        return details.jti, recheck, now

    def _refused(self, attempt: _Consume, refusal: GrantError) -> None:
        self._audit_refusal("grant.refused", None, attempt.now, refusal, jti=attempt.jti, executor=attempt.executor,
                            action=attempt.spec.action, digest=attempt.spec.digest())

    def _consumed(self, attempt: _Consume) -> Consumption:
        details = attempt.details
        assert details is not None  # set by _checked before the store was asked
        return self._consumption(details.jti, details.request_id, attempt.executor, attempt.spec.action,
                                 details.digest)

    def _consumption(self, jti: str, request_id: str, executor: str, action: str, digest: str) -> Consumption:
        """A committed consume, told to whoever waits on its request."""
        self.notifier.changed(request_id)
        return Consumption(jti, request_id, executor, action, digest)

    def report(self, jti: str, succeeded: bool, detail: str = "", *, executor: str | None = None) -> GrantRecord:
        """Record the execution result of a consumed grant (only by `executor`, when it is given)."""
        if not isinstance(detail, str) or len(detail) > 4096:
            raise RequestError("input.invalid", "result detail must be a string of at most 4096 characters")
        now = self.clock()
        result = "succeeded" if succeeded else "failed"
        event = self._event("execution.reported", None, now, jti=jti, result=result, detail=detail)
        recorded = self.store.record_result(jti, result, detail, event, executor)
        self.notifier.changed(recorded.request_id)
        return recorded

    def check_ready(self) -> None:
        """Return if the store answers; `store.unavailable` otherwise."""
        self.store.ping()

    # --- audit and keys ---------------------------------------------------------------------------

    @property
    def ledger(self) -> Ledger:
        """The audit log: verify it, sign its checkpoints, prove entries and consistency."""
        return Ledger(self.store, self.keys, self.clock)

    def verify_audit(self) -> Verification:
        return self.ledger.verify()

    # --- internals ------------------------------------------------------------------------------

    def _issue(
        self, request_id: str, request: ActionRequest, digest: str, policy_version: str,
        approvals: list[dict[str, str]] | tuple[dict[str, str], ...], now: datetime.datetime,
        details: dict[str, Any] | None = None,
    ) -> GrantRecord:
        executor = self._executor(request, self.policy)
        if executor is None:
            raise PolicyError("policy.no_executor", f"no executor is named for `{request.action}`")
        jti = self.ids("grt")
        issued_at = int(now.timestamp())
        claims = build_claims(
            issuer=self.issuer, request=request, request_id=request_id, digest=digest, executor=executor,
            jti=jti, issued_at=issued_at, ttl=self.grant_ttl, policy_version=policy_version,
            approvals=approvals,
        )
        if details:
            claims["authorization_details"][0].update(details)
        token = self._grant_tokens.sign(claims)
        expires = datetime.datetime.fromtimestamp(issued_at + self.grant_ttl, tz=datetime.UTC)
        return GrantRecord(jti, request_id, executor, token, digest, policy_version, now, expires)

    @staticmethod
    def _executor(request: ActionRequest, policy: Policy) -> str | None:
        """The grant audience: the request's `executor`, which must agree with the policy's, if it names one."""
        named = policy.executor_for(request.action)
        if request.executor and named and request.executor != named:
            raise RequestError(
                "input.wrong_executor",
                f"policy names `{named}` as the executor of `{request.action}`, not `{request.executor}`",
            )
        return request.executor or named

    def _recheck_policy(
        self, policy: Policy, grant: GrantRecord, request: RequestRecord, history: History, now: datetime.datetime
    ) -> None:
        named = policy.executor_for(request.request.action)
        if named and named != grant.executor:
            raise GrantError(
                "grant.policy_changed", f"policy now names `{named}` as the executor, not `{grant.executor}`"
            )
        decision = decide(policy, request.request, now, history)
        if decision.outcome == "allow":
            return
        if decision.outcome == "require_approval" and approval_rules.is_satisfied(
            request.request, decision.requirements, request.approvals
        ):
            return
        if decision.outcome == "require_approval" and any(
            a.break_glass and policy.break_glass_for(a.approver_id, request.request.action) for a in request.approvals
        ):
            return  # the policy now in force still lets that person proceed alone
        raise GrantError(
            "grant.policy_changed",
            f"policy changed since the grant was issued and now says {decision.outcome}: {decision.explanation}",
        )

    def _require_pending(self, record: RequestRecord, now: datetime.datetime) -> None:
        """Refuse a decision on a request that no longer waits for one."""
        outcome = self._state(record, now).outcome
        if outcome == "expired":
            raise ApprovalError("approval.expired", "the approval window for this request has closed")
        if outcome == "rejected":
            raise ApprovalError("request.rejected", "this request was rejected")
        if outcome != "pending_approval":
            raise ApprovalError("request.not_pending", f"request is {outcome}, not pending approval")

    def _state(self, record: RequestRecord, now: datetime.datetime) -> RequestState:
        decision = record.decision
        outcome: str = record.status
        if outcome == "pending_approval" and record.expires_at is not None and now >= record.expires_at:
            outcome = "expired"
        requirements = _requirements(decision)
        grant = record.grant
        return RequestState(
            request_id=record.id,
            outcome=outcome,
            reasons=tuple(decision["reasons"]),
            explanation=decision["explanation"],
            digest=record.digest,
            policy_version=decision["policy_version"],
            grant=grant.token if grant and grant.consumed_at is None else None,
            requester=record.request.principal.id,
            expires_at=record.expires_at,
            requirements=tuple(decision["requirements"]),
            progress=tuple(approval_rules.progress(record.request, requirements, record.approvals)),
            approvals=tuple(
                {"id": a.id, "approver": a.approver_id, "channel": a.channel, "auth": a.auth, "verdict": a.verdict,
                 "comment": a.comment, "at": a.at.isoformat(),
                 "rubber_stamp": approval_rules.is_rubber_stamp(requirements, a.approver_id, a.verdict,
                                                                record.created_at, a.at),
                 **({"break_glass": True} if a.break_glass else {})}
                for a in record.approvals
            ),
            consumed=bool(grant and grant.consumed_at),
            result=grant.result if grant else None,
            binding_code=binding.binding_code(record.id, record.digest) if requirements else None,
            sensitive=bool(decision.get("sensitive", True)),
        )

    def _review(self, record: RequestRecord, now: datetime.datetime) -> RequestReview:
        return RequestReview(record.request, self._state(record, now),
                             tuple(record.decision.get("matched_rules", ())), record.created_at)

    @staticmethod
    def _event(kind: str, request_id: str | None, at: datetime.datetime, **data: Any) -> AuditEvent:
        return AuditEvent(kind, request_id, data, at)

    def _audit_refusal(
        self, kind: str, request_id: str | None, now: datetime.datetime, refusal: InterlockError, **data: Any
    ) -> None:
        try:
            self.store.append_audit([self._event(kind, request_id, now, code=refusal.code,
                                                 message=refusal.message, **data)])
        except InterlockError as error:
            # The refusal stands whether or not it could be written down; say that it was not.
            _log.error("could not audit a %s (%s): %s", kind, refusal.code, error.message)


@dataclass
class _Consume:
    """One consume: who is about to run what, when; the grant's id and checked claims once they are known."""

    executor: str
    spec: ActionSpec
    now: datetime.datetime
    jti: str | None = None
    details: GrantDetails | None = None


@dataclass(frozen=True)
class _Submission:
    """A submitted request, parsed and named, with the decision to record in the store's transaction."""

    request_id: str
    request: ActionRequest
    digest: str
    now: datetime.datetime
    record: Callable[[History], NewRequest]

    @property
    def store_args(self) -> tuple[str, ActionRequest, str, datetime.datetime, Callable[[History], NewRequest]]:
        return self.request_id, self.request, self.digest, self.now, self.record


def _consumed_event(request_id: str, at: datetime.datetime, jti: str, executor: str, digest: str,
                    policy_version: str) -> AuditEvent:
    """The audit entry of a consumed grant, consumed on its own or taken at once with its decision."""
    return AuditEvent("grant.consumed", request_id,
                      {"jti": jti, "executor": executor, "digest": digest, "policy_version": policy_version}, at)


def _issued(grant: GrantRecord | None) -> dict[str, Any]:
    """The `grant` field of the audit entry of the state change that issued it (none when it issued none)."""
    if grant is None:
        return {}
    return {"grant": {"jti": grant.jti, "executor": grant.executor, "expires_at": grant.expires_at.isoformat()}}


def _check_binding_code(record: RequestRecord, code: str | None, doing: str) -> None:
    """Refuse `doing` (approving, breaking the glass on) a sensitive action without the request's binding code.

    A decision that does not say whether it is sensitive is treated as sensitive (fail closed).
    """
    if record.decision.get("sensitive", True) and not binding.matches(record.id, record.digest, code):
        raise ApprovalError(
            "approval.binding_mismatch",
            f"{doing} this sensitive action needs its binding code, which the requester was given:"
            " the code is missing or belongs to another request",
        )


def _requirements(decision: dict[str, Any]) -> list[ApprovalRequirement]:
    return [
        ApprovalRequirement(r["rule_id"], frozenset(r["approvers"]), r["quorum"], r["separate_channel"],
                            r["expires_in"], r.get("min_review_seconds", 0))
        for r in decision["requirements"]
    ]


def _check_approval_args(approver_id: str, channel: str, comment: str, auth: str = "local") -> None:
    if not isinstance(approver_id, str) or not 0 < len(approver_id) <= 256 or not approver_id.isprintable():
        raise RequestError("input.invalid", "approver id must be 1-256 printable characters")
    if not isinstance(channel, str) or not re.fullmatch(CHANNEL_NAME, channel):
        raise RequestError("input.invalid", f"`{channel}` is not a channel name")
    if not isinstance(comment, str) or len(comment) > 4096:
        raise RequestError("input.invalid", "comment must be a string of at most 4096 characters")
    if not isinstance(auth, str) or auth not in AUTH_METHODS:
        raise RequestError("input.invalid", f"`{auth}` is not an approver authentication ({sorted(AUTH_METHODS)})")
