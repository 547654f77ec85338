"""Webhooks to approver groups when a request waits for approval: signed, delivered off the request path,
retried with backoff, and each delivery audited.

Configured in the policy, per approver group (`notify:`); the HMAC secret is never in the policy, only the
name of the environment variable that holds it, read when the server starts (`targets_from_policy`).

Signature scheme (Stripe-style; a receiver verifies it with `verify_signature`):

    Interlock-Timestamp: <unix seconds when this attempt was signed>
    Interlock-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>
    Interlock-Delivery:  <delivery id, the same on every retry: deduplicate on it>

The timestamp is inside the signed material, so a receiver that refuses timestamps older than a few
minutes (300 s by default) cannot be replayed an old delivery; the secret is the environment variable's
value as UTF-8 bytes.

A delivery is retried after a connection error, a timeout, a 5xx, a 408 or a 429, at most
`max_attempts` times, waiting `backoff * 2**n` seconds (capped) between attempts; it ends as one
audit entry, `notification.delivered` or `notification.failed`, listing every attempt. A delivery
never changes a decision, and the submit that caused it only enqueues it (a bounded queue; when it
is full the delivery is recorded as failed at once).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import os
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from interlock.core.action import ActionRequest
from interlock.core.errors import InterlockError, PolicyError
from interlock.core.policy import GROUP_PREFIX, Policy
from interlock.gate import Gate
from interlock.ids import new_id
from interlock.results import RequestState
from interlock.store.base import AuditEvent, BreakGlassReview

SIGNATURE_HEADER = "Interlock-Signature"
TIMESTAMP_HEADER = "Interlock-Timestamp"
DELIVERY_HEADER = "Interlock-Delivery"
EVENT = "request.pending_approval"
BREAK_GLASS_EVENT = "request.break_glass"
_RETRIED_STATUSES = frozenset({408, 429})
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Where one approver group is told, and the secret its deliveries are signed with."""

    group: str
    url: str
    secret: bytes = field(repr=False)


def targets_from_policy(policy: Policy, environ: Mapping[str, str] | None = None) -> dict[str, Target]:
    """The policy's `notify:` targets with their secrets; `policy.invalid` if a named variable is unset or empty."""
    environ = os.environ if environ is None else environ
    targets: dict[str, Target] = {}
    for group, spec in policy.spec.notify.items():
        secret = environ.get(spec.secret_env, "")
        if not secret:
            raise PolicyError("policy.invalid", f"notify `{group}`: environment variable `{spec.secret_env}`"
                              " (its webhook secret) is not set")
        targets[group] = Target(group, spec.url, secret.encode())
    return targets


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The `Interlock-Signature` value for `body` sent at `timestamp`."""
    return "sha256=" + hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def verify_signature(
    secret: bytes, timestamp: str, signature: str, body: bytes, now: int, tolerance: int = 300
) -> bool:
    """What a receiver checks: the signature over timestamp and raw body, and a recent timestamp."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


@dataclass(frozen=True)
class Delivery:
    id: str
    request_id: str
    target: Target
    body: bytes


def _sleep_until_stopped(stopped: threading.Event) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        stopped.wait(seconds)

    return sleep


class Webhooks:
    """Builds, queues and delivers the notifications of new pending requests; `pending` is the Gate's hook."""

    def __init__(
        self,
        policy: Policy,
        targets: Mapping[str, Target],
        audit: Callable[[list[AuditEvent]], None],
        base_url: str,
        *,
        clock: Callable[[], datetime.datetime],
        sleep: Callable[[float], None] | None = None,
        max_attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 5.0,
        queue_size: int = 1000,
    ) -> None:
        self.policy = policy
        self.targets = dict(targets)
        self.audit = audit
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._stopped = threading.Event()
        self.sleep = sleep or _sleep_until_stopped(self._stopped)
        self._queue: queue.Queue[Delivery | None] = queue.Queue(maxsize=queue_size)
        import httpx  # here, not at the top: a `serve` whose policy names no target never loads it

        self._client = httpx.Client(timeout=timeout, follow_redirects=False)
        self._worker = threading.Thread(target=self._run, name="interlock-webhooks", daemon=True)

    @classmethod
    def attach(cls, gate: Gate, base_url: str, environ: Mapping[str, str] | None = None,
               **options: Any) -> Webhooks | None:
        """Deliver `gate`'s new pending requests to its policy's targets; None if the policy names none."""
        targets = targets_from_policy(gate.policy, environ)
        if not targets:
            return None
        webhooks = cls(gate.policy, targets, gate.store.append_audit, base_url, clock=gate.clock, **options)
        webhooks.start()
        gate.on_pending = webhooks.pending
        gate.on_break_glass = webhooks.break_glass
        return webhooks

    def start(self) -> None:
        self._worker.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop after the queued deliveries (retries are given up at once); wait at most `timeout`."""
        self._stopped.set()
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        if self._worker.is_alive():
            self._worker.join(timeout)
        self._client.close()

    # --- on the request path: only build and enqueue ------------------------------------------------

    def pending(self, state: RequestState, request: ActionRequest) -> None:
        """The Gate's `on_pending` hook: one delivery per notified group that a matched rule names."""
        for group in self._groups(state):
            target = self.targets[group]
            delivery = Delivery(new_id("dlv"), state.request_id, target,
                                self._body(state, request, group))
            try:
                self._queue.put_nowait(delivery)
            except queue.Full:
                self._record(delivery, [], delivered=False, reason="queue_full")

    def break_glass(self, state: RequestState, request: ActionRequest, review: BreakGlassReview) -> None:
        """The Gate's `on_break_glass` hook: every configured group is alerted at once, whoever the rules name."""
        for group, target in self.targets.items():
            body = {
                "event": BREAK_GLASS_EVENT,
                "group": group,
                "request_id": state.request_id,
                "action": request.action,
                "resource": request.resource,
                "requester": request.principal.id,
                "delegators": [p.id for p in request.on_behalf_of],
                "used_by": review.used_by,
                "break_glass_entry": review.entry_id,
                "justification": review.justification,
                "review_due": review.due_at.isoformat(),
                "inbox_url": f"{self.base_url}/inbox/requests/{state.request_id}",
            }
            delivery = Delivery(new_id("dlv"), state.request_id, target,
                                json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
            try:
                self._queue.put_nowait(delivery)
            except queue.Full:
                self._record(delivery, [], delivered=False, reason="queue_full")

    def _groups(self, state: RequestState) -> list[str]:
        rule_ids = {r["rule_id"] for r in state.requirements}
        named: list[str] = []
        for rule in self.policy.spec.rules:
            if rule.id in rule_ids and rule.approval is not None:
                named += [a[len(GROUP_PREFIX):] for a in rule.approval.approvers if a.startswith(GROUP_PREFIX)]
        return [group for group in dict.fromkeys(named) if group in self.targets]

    def _body(self, state: RequestState, request: ActionRequest, group: str) -> bytes:
        rule_ids = {rule.id for rule in self.policy.spec.rules if rule.approval is not None
                    and f"{GROUP_PREFIX}{group}" in rule.approval.approvers}
        requirements = [{"rule_id": r["rule_id"], "approvers": sorted(r["approvers"]), "quorum": r["quorum"]}
                        for r in state.requirements if r["rule_id"] in rule_ids]
        # Params stay in the inbox: a chat tool is told that something waits, not what it is about.
        body = {
            "event": EVENT,
            "group": group,
            "request_id": state.request_id,
            "action": request.action,
            "resource": request.resource,
            "requester": request.principal.id,
            "delegators": [p.id for p in request.on_behalf_of],
            "approvers": requirements[0]["approvers"] if requirements else [],
            "quorum": requirements[0]["quorum"] if requirements else 0,
            "requirements": requirements,
            "expires_at": state.expires_at.isoformat() if state.expires_at else None,
            "inbox_url": f"{self.base_url}/inbox/requests/{state.request_id}",
        }
        return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()

    # --- off the request path ---------------------------------------------------------------------

    def _run(self) -> None:
        while (delivery := self._queue.get()) is not None:
            try:
                self._deliver(delivery)
            except Exception:  # noqa: BLE001 - one broken delivery must not stop the worker
                _log.exception("webhook delivery %s failed unexpectedly", delivery.id)

    def _deliver(self, delivery: Delivery) -> None:
        attempts: list[dict[str, Any]] = []
        for attempt in range(1, self.max_attempts + 1):
            outcome, retry = self._attempt(delivery)
            attempts.append(outcome)
            if outcome.get("status") is not None and 200 <= outcome["status"] < 300:
                self._record(delivery, attempts, delivered=True)
                return
            if not retry or attempt == self.max_attempts:
                break
            self.sleep(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))
            if self._stopped.is_set():
                self._record(delivery, attempts, delivered=False, reason="shutdown")
                return
        self._record(delivery, attempts, delivered=False, reason="attempts_exhausted" if retry else "refused")

    def _attempt(self, delivery: Delivery) -> tuple[dict[str, Any], bool]:
        import httpx

        now = self.clock()
        timestamp = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "interlock-webhooks",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(delivery.target.secret, timestamp, delivery.body),
            DELIVERY_HEADER: delivery.id,
        }
        try:
            response = self._client.post(delivery.target.url, content=delivery.body, headers=headers)
        except httpx.HTTPError as error:
            return {"at": now.isoformat(), "error": f"{type(error).__name__}: {error}"[:300]}, True
        status = response.status_code
        return {"at": now.isoformat(), "status": status}, status >= 500 or status in _RETRIED_STATUSES

    def _record(self, delivery: Delivery, attempts: list[dict[str, Any]], *, delivered: bool,
                reason: str | None = None) -> None:
        # The URL's path may itself be a credential (chat tools' incoming webhooks): only its origin is kept.
        where = urlsplit(delivery.target.url)
        data: dict[str, Any] = {"delivery": delivery.id, "group": delivery.target.group,
                                "target": f"{where.scheme}://{where.netloc.rpartition('@')[2]}", "attempts": attempts}
        if reason:
            data["reason"] = reason
        kind = "notification.delivered" if delivered else "notification.failed"
        try:
            self.audit([AuditEvent(kind, delivery.request_id, data, self.clock())])
        except InterlockError as error:
            _log.error("could not audit %s for %s: %s", kind, delivery.id, error.message)
