"""`interlock proxy` in front of a real HTTP API that trusts only execution tokens (examples/no_direct_path).

The upstream records every call it receives; each test checks that record, not only the proxy's answers.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlock import Gate, Home

from .e2e_support import clean_env
from .proxy_support import Deployment, deployed, home_with_example_policy, proxy_config, transfer_request
from .served import free_port, running

pytestmark = pytest.mark.slow

BODY = {"amount": 4800, "currency": "EUR", "recipient": "DE89370400440532013000"}


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """One payments API and one proxy for the module; each test sees only the calls it caused."""
    with deployed(tmp_path_factory.mktemp("proxy")) as running:
        yield running


@pytest.fixture
def deployment(processes: Deployment) -> Deployment:
    return processes.fresh()


@pytest.fixture(scope="module")
def gate(processes: Deployment) -> Iterator[Gate]:
    """The proxy's gate, opened in this process too (the store takes writers from several processes)."""
    opened = Home.resolve(processes.home, None).open_gate()
    yield opened
    opened.store.close()


def approved_grant(gate: Gate, request: dict[str, Any]) -> str:
    """Submit `request`, approve it as user:alice with its binding code; the grant."""
    submitted = gate.submit(request)
    assert submitted.outcome == "pending_approval", submitted
    approved = gate.decide_approval(submitted.request_id, "user:alice", "console",
                                    binding_code=submitted.binding_code)
    assert approved.outcome == "approved" and approved.grant, approved
    return approved.grant


def reported(gate: Gate, request_id: str) -> str | None:
    """The request's reported result, once there (the proxy reports after it has answered)."""
    deadline = time.monotonic() + 10
    while True:  # bounded: the report is sent in the background after the response
        state = gate.status(request_id)
        if state.result or time.monotonic() > deadline:
            return state.result
        time.sleep(0.1)


def test_a_call_with_its_grant_runs_once_and_its_result_is_reported(deployment: Deployment, gate: Gate) -> None:
    grant = approved_grant(gate, transfer_request("acc-1", BODY))
    answer = httpx.post(f"{deployment.proxy}/payments/acc-1", json=BODY, headers={"Interlock-Grant": grant})
    assert answer.status_code == 201, answer.text
    executed = deployment.executed()
    assert len(executed) == 1 and json.loads(executed[0]["body"]) == BODY
    assert reported(gate, executed[0]["request_id"]) == "succeeded"

    again = httpx.post(f"{deployment.proxy}/payments/acc-1", json=BODY, headers={"Interlock-Grant": grant})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "grant.already_used")
    assert len(deployment.executed()) == 1


@pytest.mark.parametrize(("url", "body"), [
    ("/payments/acc-1", {**BODY, "amount": 4801}),       # the body changed after approval
    ("/payments/acc-2", BODY),                           # the path changed
    ("/payments/acc-1?priority=high", BODY),             # a query parameter was added
], ids=["body", "path", "query"])
def test_a_call_that_differs_from_its_grant_is_refused_and_never_forwarded(
        deployment: Deployment, gate: Gate, url: str, body: dict[str, Any]) -> None:
    grant = approved_grant(gate, transfer_request("acc-1", BODY))
    answer = httpx.post(f"{deployment.proxy}{url}", json=body, headers={"Interlock-Grant": grant})
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "grant.digest_mismatch")
    assert deployment.calls() == []
    # The grant was not spent on the refused call: the approved call still goes through.
    assert httpx.post(f"{deployment.proxy}/payments/acc-1", json=BODY,
                      headers={"Interlock-Grant": grant}).status_code == 201


def test_the_upstream_refuses_calls_that_skipped_the_proxy(deployment: Deployment, gate: Gate) -> None:
    direct = httpx.post(f"{deployment.upstream}/payments/acc-1", json=BODY)
    assert (direct.status_code, direct.json()["error"]["code"]) == (403, "execution.missing")

    grant = approved_grant(gate, transfer_request("acc-1", BODY))
    assert httpx.post(f"{deployment.proxy}/payments/acc-1", json=BODY,
                      headers={"Interlock-Grant": grant}).status_code == 201
    token = deployment.executed()[0]["execution"]
    content = json.dumps(BODY).encode()
    headers = {"Interlock-Execution": token, "Content-Type": "application/json"}
    # The token the proxy sent, replayed directly: the same call again, or another call under it.
    raw = httpx.post(f"{deployment.upstream}/payments/acc-1", content=deployment.executed()[0]["body"].encode(),
                     headers=headers)
    assert raw.json()["error"]["code"] == "execution.replayed"
    other = httpx.post(f"{deployment.upstream}/payments/acc-2", content=content, headers=headers)
    assert other.json()["error"]["code"] == "execution.request_mismatch"
    forged = httpx.post(f"{deployment.upstream}/payments/acc-1", content=content,
                        headers={**headers, "Interlock-Execution": token[:-4] + "AAAA"})
    assert forged.json()["error"]["code"] == "execution.bad_signature"
    assert len(deployment.executed()) == 1


def test_a_forged_execution_header_from_the_caller_never_reaches_the_upstream(
        deployment: Deployment, gate: Gate) -> None:
    grant = approved_grant(gate, transfer_request("acc-1", BODY))
    answer = httpx.post(f"{deployment.proxy}/payments/acc-1", json=BODY,
                        headers={"Interlock-Grant": grant, "Interlock-Execution": "forged"})
    assert answer.status_code == 201
    assert deployment.executed()[0]["execution"] != "forged"


def test_without_a_grant_or_a_requester_nothing_is_forwarded(tmp_path: Path) -> None:
    with deployed(tmp_path, requester=None) as deployment:
        answer = httpx.post(f"{deployment.proxy}/payments/acc-1", json=BODY)
        assert (answer.status_code, answer.json()["error"]["code"]) == (403, "grant.missing")
        assert deployment.calls() == []


def raw_exchange(base: str, request: bytes) -> bytes:
    """Send bytes as they are (no client normalises them) and read the answer."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(("request_bytes", "status", "code"), [
    (b"POST /health/../payments/acc-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
     400, b"input.invalid"),
    (b"POST /payments%2facc-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
     400, b"input.invalid"),
    (b"POST /payments//acc-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
     400, b"input.invalid"),
    (b"DELETE /payments/acc-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 403, b"proxy.unmapped_route"),
    (b"POST /payments/acc-1 HTTP/1.1\r\nHost: x\r\nInterlock-Grant: a.b.c\r\nInterlock-Grant: d.e.f\r\n"
     b"Content-Length: 0\r\nConnection: close\r\n\r\n", 400, b"input.duplicate_header"),
    (b"POST /payments/acc-1 HTTP/1.1\r\nHost: x\r\nInterlock-Grant: a.b.c\rX-Smuggled: 1\r\n"
     b"Content-Length: 0\r\nConnection: close\r\n\r\n", 400, None),
], ids=["dot-segments", "encoded-slash", "empty-segment", "unmapped", "duplicate-grant", "cr-in-header"])
def test_ambiguous_or_smuggled_requests_are_refused_and_never_forwarded(
        deployment: Deployment, request_bytes: bytes, status: int, code: bytes | None) -> None:
    answer = raw_exchange(deployment.proxy, request_bytes)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
    if code is not None:
        assert code in answer
    assert deployment.calls() == []


@pytest.mark.parametrize(("content", "headers", "code"), [
    (b"x" * 70_000, {"Content-Type": "application/json"}, "input.too_large"),
    (b'{"amount": 1, "amount": 2}', {"Content-Type": "application/json"}, "input.duplicate_key"),
    (b"amount=1", {"Content-Type": "application/x-www-form-urlencoded"}, "input.invalid"),
    (b'{"amount": NaN}', {"Content-Type": "application/json"}, "input.invalid"),
], ids=["too-large", "duplicate-key", "not-json", "nan"])
def test_bad_bodies_are_refused_before_anything_is_decided(
        deployment: Deployment, content: bytes, headers: dict[str, str], code: str) -> None:
    answer = httpx.post(f"{deployment.proxy}/payments/acc-1", content=content, headers=headers)
    assert answer.json()["error"]["code"] == code
    assert deployment.calls() == []


def test_a_query_parameter_given_twice_is_refused(deployment: Deployment) -> None:
    answer = httpx.get(f"{deployment.proxy}/accounts/acc-1/balance?view=a&view=b")
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "input.duplicate_key")
    assert deployment.calls() == []


# --- the proxy submits on the caller's behalf (the config's `requester`) --------------------------------------


def test_an_allowed_call_is_submitted_consumed_and_forwarded(deployment: Deployment, gate: Gate) -> None:
    answer = httpx.get(f"{deployment.proxy}/accounts/acc-1/balance")
    assert answer.status_code == 200 and answer.json()["balance"] == 1250
    executed = deployment.executed()
    assert [call["target"] for call in executed] == ["/accounts/acc-1/balance"]
    assert reported(gate, executed[0]["request_id"]) == "succeeded"
    decided = gate.status(executed[0]["request_id"])
    assert decided.outcome == "approved" or decided.consumed


def test_a_long_answer_is_streamed_through_whole(deployment: Deployment, gate: Gate) -> None:
    answer = httpx.get(f"{deployment.proxy}/accounts/acc-1/statement")
    assert answer.status_code == 200 and len(answer.content) > 200_000
    assert len(answer.json()["lines"]) == 1000
    assert reported(gate, deployment.executed()[0]["request_id"]) == "succeeded"


def test_a_held_call_runs_once_when_sent_again_after_approval(deployment: Deployment, gate: Gate) -> None:
    url = f"{deployment.proxy}/payments/acc-1"
    held = httpx.post(url, json=BODY)
    assert held.status_code == 202, held.text
    pending = held.json()
    assert pending["outcome"] == "pending_approval" and "user:alice" in pending["approval"]["approvers"][0]["approvers"]
    assert httpx.post(url, json=BODY).json()["request_id"] == pending["request_id"]  # still waiting: same request
    assert deployment.calls() == []

    gate.decide_approval(pending["request_id"], "user:alice", "console",
                         binding_code=pending["approval"]["binding_code"])
    changed = httpx.post(url, json={**BODY, "amount": 4900})  # other arguments: a new request, not forwarded
    assert changed.status_code == 202 and changed.json()["request_id"] != pending["request_id"]
    assert deployment.calls() == []

    assert httpx.post(url, json=BODY).status_code == 201
    assert [call["request_id"] for call in deployment.executed()] == [pending["request_id"]]
    again = httpx.post(url, json=BODY)  # the approval is spent: the same call again is a new request
    assert again.status_code == 202 and again.json()["request_id"] not in (pending["request_id"],
                                                                           changed.json()["request_id"])
    assert len(deployment.executed()) == 1


def test_a_denied_call_never_reaches_the_upstream(deployment: Deployment) -> None:
    answer = httpx.post(f"{deployment.proxy}/payments/acc-1", json={**BODY, "recipient": "blocked:mule"})
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert error["code"] == "policy.denied" and "no-transfers-to-blocked" in error["message"]
    assert deployment.calls() == []


def test_a_rejected_call_is_not_forwarded_and_the_next_one_is_a_new_request(
        deployment: Deployment, gate: Gate) -> None:
    url = f"{deployment.proxy}/payments/acc-3"
    pending = httpx.post(url, json=BODY).json()
    gate.decide_approval(pending["request_id"], "user:bob", "console", reject=True, comment="unknown invoice")
    rejected = httpx.post(url, json=BODY)
    assert (rejected.status_code, rejected.json()["error"]["code"]) == (409, "request.rejected")
    assert httpx.post(url, json=BODY).json()["request_id"] != pending["request_id"]
    assert deployment.calls() == []


# --- an upstream that hangs or is gone ------------------------------------------------------------------------


@pytest.fixture
def silent_upstream() -> Iterator[int]:
    """A port that accepts connections and reads, but never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(timeout=5)
    for conn in held:
        conn.close()
    listener.close()


def test_an_upstream_that_does_not_answer_costs_the_grant_and_is_reported_failed(
        tmp_path: Path, silent_upstream: int) -> None:
    home = home_with_example_policy(tmp_path)
    config = proxy_config(tmp_path, silent_upstream, upstream_timeout=1)
    port = free_port()
    with running([sys.executable, "-m", "interlock.cli", "proxy", "--config", str(config), "--port", str(port)],
                 f"http://127.0.0.1:{port}/no-such-route", clean_env(INTERLOCK_HOME=str(home)), "interlock proxy"):
        answer = httpx.get(f"http://127.0.0.1:{port}/accounts/acc-1/balance", timeout=30)
    assert (answer.status_code, answer.json()["error"]["code"]) == (504, "proxy.upstream_timeout")
    request_id = answer.json()["error"]["detail"]["request_id"]
    gate = Home.resolve(home, None).open_gate()
    try:
        state = gate.status(request_id)
        assert (state.consumed, state.result) == (True, "failed")  # spent, never re-sent, recorded as failed
    finally:
        gate.store.close()


def test_an_upstream_that_is_gone_is_a_502_and_nothing_is_retried(tmp_path: Path) -> None:
    home = home_with_example_policy(tmp_path)
    config = proxy_config(tmp_path, free_port())  # nothing listens there
    port = free_port()
    with running([sys.executable, "-m", "interlock.cli", "proxy", "--config", str(config), "--port", str(port)],
                 f"http://127.0.0.1:{port}/no-such-route", clean_env(INTERLOCK_HOME=str(home)), "interlock proxy"):
        answer = httpx.get(f"http://127.0.0.1:{port}/accounts/acc-1/balance", timeout=30)
    assert (answer.status_code, answer.json()["error"]["code"]) == (502, "proxy.upstream_failed")
