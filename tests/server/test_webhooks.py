"""Webhooks to approver groups, delivered to a real HTTP receiver on 127.0.0.1: signed, retried, audited,
and never in the way of a submit."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from conftest import SEED, FixedClock
from interlock.core.errors import PolicyError
from interlock.core.policy import Policy, load_policy
from interlock.store.base import AuditEvent
from interlock.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Webhooks,
    sign,
    targets_from_policy,
    verify_signature,
)

from .conftest import Api, submission

SECRET = "s3cret-for-finance"
ENV = {"FINANCE_HOOK_SECRET": SECRET}
WAIT = 10.0  # seconds a test waits for something it was promised before failing; never slept


@dataclass
class Receiver:
    """A real HTTP server that records each POST and answers with the next scripted status (then 200)."""

    statuses: list[int] = field(default_factory=list)
    received: queue.Queue[tuple[dict[str, str], bytes]] = field(default_factory=queue.Queue)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/finance"

    def next(self) -> tuple[dict[str, str], bytes]:
        return self.received.get(timeout=WAIT)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.put(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(state.statuses.pop(0) if state.statuses else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    state.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=state.server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.server.shutdown()
    state.server.server_close()


def notifying_policy(url: str, secret_env: str = "FINANCE_HOOK_SECRET") -> Policy:
    text = (SEED / "policy.yaml").read_text()
    return load_policy(text + f"\nnotify:\n  finance-approvers:\n    url: {url}\n    secret_env: {secret_env}\n")


@dataclass
class Hooked:
    webhooks: Webhooks
    audited: queue.Queue[AuditEvent]
    sleeps: list[float]

    def next_record(self) -> AuditEvent:
        return self.audited.get(timeout=WAIT)


def hook_up(api: Api, url: str, **options: Any) -> Hooked:
    """Give the API's gate a policy that notifies `url`, and webhooks whose audit writes the test can wait on."""
    api.gate.policy = notifying_policy(url)
    audited: queue.Queue[AuditEvent] = queue.Queue()
    sleeps: list[float] = []
    sleep = options.pop("sleep", sleeps.append)

    def audit(events: list[AuditEvent]) -> None:
        api.gate.store.append_audit(events)
        for event in events:
            audited.put(event)

    webhooks = Webhooks(api.gate.policy, targets_from_policy(api.gate.policy, ENV), audit, "https://interlock.example",
                        clock=api.gate.clock, sleep=sleep, **options)
    webhooks.start()
    api.gate.on_pending = webhooks.pending
    return Hooked(webhooks, audited, sleeps)


def audit_kinds(api: Api) -> list[str]:
    return [json.loads(entry.leaf)["kind"] for entry in api.gate.store.audit_entries()]


def test_a_pending_request_is_posted_to_its_group_signed_with_the_inbox_link(
    api: Api, receiver: Receiver, clock: FixedClock
) -> None:
    hooked = hook_up(api, receiver.url)
    pending = api.call("POST", "/v1/requests", "agent", json=submission()).json()
    headers, body = receiver.next()

    timestamp = headers[TIMESTAMP_HEADER.lower()]
    assert timestamp == str(int(clock.now.timestamp()))
    assert verify_signature(SECRET.encode(), timestamp, headers[SIGNATURE_HEADER.lower()], body,
                            now=int(clock.now.timestamp()))
    assert headers[SIGNATURE_HEADER.lower()] == sign(SECRET.encode(), int(timestamp), body)
    sent = json.loads(body)
    assert sent == {
        "event": "request.pending_approval", "group": "finance-approvers", "request_id": pending["request_id"],
        "action": "payments.transfer", "resource": "account:treasury", "requester": "agent:finance-assistant",
        "delegators": ["user:ceo"], "approvers": ["user:alice", "user:bob", "user:carol"], "quorum": 2,
        "requirements": [{"rule_id": "other-transfers-need-two", "approvers": ["user:alice", "user:bob", "user:carol"],
                          "quorum": 2}],
        "expires_at": pending["approval"]["expires_at"],
        "inbox_url": f"https://interlock.example/inbox/requests/{pending['request_id']}",
    }
    assert "params" not in sent  # what is asked stays in the inbox

    record = hooked.next_record()
    assert (record.kind, record.request_id) == ("notification.delivered", pending["request_id"])
    assert record.data["group"] == "finance-approvers" and record.data["delivery"] == headers[DELIVERY_HEADER.lower()]
    assert record.data["target"] == receiver.url.rsplit("/hooks", 1)[0]
    assert [a["status"] for a in record.data["attempts"]] == [200]

    # An allowed request and a request for a group without a webhook notify no one.
    staging = submission(action="config.apply", resource="env:staging/app", params={}, on_behalf_of=[])
    assert api.call("POST", "/v1/requests", "agent", json=staging).json()["outcome"] == "allowed"
    access = submission(action="access.emergency_grant", resource="db:prod", params={}, on_behalf_of=[])
    assert api.call("POST", "/v1/requests", "agent", json=access).json()["outcome"] == "pending_approval"
    hooked.webhooks.close()
    assert receiver.received.empty()
    assert "notification.delivered" in audit_kinds(api)
    assert api.call("GET", "/v1/audit/verify", "admin").json()["ok"] is True


def test_a_receiver_that_fails_twice_gets_three_attempts_and_one_delivery(api: Api, receiver: Receiver) -> None:
    receiver.statuses = [503, 500]
    hooked = hook_up(api, receiver.url)
    api.call("POST", "/v1/requests", "agent", json=submission())
    deliveries = {receiver.next()[0][DELIVERY_HEADER.lower()] for _ in range(3)}

    record = hooked.next_record()
    assert record.kind == "notification.delivered"
    assert [a["status"] for a in record.data["attempts"]] == [503, 500, 200]
    assert len(deliveries) == 1  # one delivery id on every retry: the receiver deduplicates on it
    assert hooked.sleeps == [0.5, 1.0]  # exponential backoff
    hooked.webhooks.close()
    assert receiver.received.empty() and hooked.audited.empty()


def test_a_receiver_that_is_down_neither_slows_nor_changes_the_submit_and_the_failure_is_recorded(api: Api) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{unused.getsockname()[1]}/hooks"
    # The worker's backoff waits on an event this test holds: if the submit waited for the delivery, it would hang.
    release = threading.Event()
    hooked = hook_up(api, down, sleep=lambda _: release.wait(WAIT), max_attempts=3)

    started = time.perf_counter()
    response = api.call("POST", "/v1/requests", "agent", json=submission())
    elapsed = time.perf_counter() - started
    assert response.status_code == 201 and response.json()["outcome"] == "pending_approval"
    assert elapsed < 1.0, elapsed
    assert hooked.audited.empty()
    release.set()

    record = hooked.next_record()
    assert record.kind == "notification.failed" and record.data["reason"] == "attempts_exhausted"
    assert len(record.data["attempts"]) == 3 and all("ConnectError" in a["error"] for a in record.data["attempts"])
    request_id, code = response.json()["request_id"], response.json()["approval"]["binding_code"]
    assert api.call("GET", f"/v1/requests/{request_id}", "agent").json()["outcome"] == "pending_approval"
    body = {"decision": "approve", "binding_code": code}
    api.call("POST", f"/v1/requests/{request_id}/approvals", "alice", json=body)
    assert api.call("POST", f"/v1/requests/{request_id}/approvals", "bob", json=body).json()["outcome"] == "approved"
    assert api.call("GET", f"/v1/requests/{request_id}", "agent").json()["grant"]
    hooked.webhooks.close()
    assert "notification.failed" in audit_kinds(api)


def test_a_client_error_is_not_retried(api: Api, receiver: Receiver) -> None:
    receiver.statuses = [404]
    hooked = hook_up(api, receiver.url)
    api.call("POST", "/v1/requests", "agent", json=submission())
    record = hooked.next_record()
    assert record.kind == "notification.failed" and record.data["reason"] == "refused"
    assert [a["status"] for a in record.data["attempts"]] == [404] and hooked.sleeps == []
    hooked.webhooks.close()


def test_a_replayed_or_altered_delivery_does_not_verify() -> None:
    body = b'{"request_id":"req_1"}'
    signature = sign(b"k", 1_000_000, body)
    assert verify_signature(b"k", "1000000", signature, body, now=1_000_100)
    assert not verify_signature(b"k", "1000000", signature, body, now=1_000_000 + 301)  # too old: a replay
    assert not verify_signature(b"k", "1000001", signature, body, now=1_000_100)  # timestamp is signed
    assert not verify_signature(b"k", "1000000", signature, body + b" ", now=1_000_100)
    assert not verify_signature(b"other", "1000000", signature, body, now=1_000_100)


def test_a_secret_is_named_in_the_policy_and_must_be_set_when_serving(api: Api) -> None:
    policy = notifying_policy("https://chat.example/hook", secret_env="MISSING_HOOK_SECRET")
    with pytest.raises(PolicyError) as refused:
        targets_from_policy(policy, {})
    assert refused.value.code == "policy.invalid" and "`MISSING_HOOK_SECRET`" in refused.value.message
    api.gate.policy = policy
    with pytest.raises(PolicyError):
        Webhooks.attach(api.gate, "http://127.0.0.1:8080", {"MISSING_HOOK_SECRET": ""})
    assert api.gate.on_pending is None
    target = targets_from_policy(policy, {"MISSING_HOOK_SECRET": "x"})["finance-approvers"]
    assert "x" not in repr(target).replace("example", "")


def test_a_policy_notifying_an_undefined_group_or_a_bad_url_is_refused_at_load() -> None:
    text = (SEED / "policy.yaml").read_text()
    with pytest.raises(PolicyError, match="undefined group `nobody`"):
        load_policy(text + "\nnotify:\n  nobody:\n    url: https://x.example\n    secret_env: X\n")
    with pytest.raises(PolicyError, match="url"):
        load_policy(text + "\nnotify:\n  finance-approvers:\n    url: file:///etc/passwd\n    secret_env: X\n")
    with pytest.raises(PolicyError, match="secret"):
        load_policy(text + "\nnotify:\n  finance-approvers:\n    url: https://x.example\n    secret: hunter2\n")


def test_a_policy_without_notify_attaches_nothing(api: Api) -> None:
    assert Webhooks.attach(api.gate, "http://127.0.0.1:8080", {}) is None and api.gate.on_pending is None
