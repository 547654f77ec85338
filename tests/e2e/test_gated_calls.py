"""`CallGate`, the transport-free gating of one call, on a real Gate and SQLite file: the rules every
enforcement point shares (the request a retry finds, consume once, forget what is spent, report)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import anyio
import pytest

from interlock.core.errors import GrantError, StoreError
from interlock.core.policy import load_policy
from interlock.enforce.calls import Call, CallGate, Executed, Ruling
from interlock.gate import Gate

from .e2e_support import AGENT_TOOLS_POLICY


def pay(amount: int, recipient: str = "DE02100100100006820101") -> Call:
    return Call({"principal": {"id": "agent:assistant", "kind": "agent"}, "action": "tool.pay",
                 "resource": "account:treasury", "params": {"amount": amount, "recipient": recipient},
                 "channel": "chat", "executor": "agent-tools"}, again="calling `pay`")


@pytest.fixture
def gate(tools_gate: Gate) -> Gate:
    return tools_gate


def approve(gate: Gate, request_id: str) -> None:
    gate.decide_approval(request_id, "user:alice", "console", binding_code=gate.status(request_id).binding_code)


def test_a_call_is_bound_by_its_digest_whatever_the_key_order() -> None:
    first, second = pay(500), pay(500)
    reordered = Call({**second.request, "params": {"recipient": "DE02100100100006820101", "amount": 500}})
    assert first.digest == second.digest == reordered.digest != pay(501).digest
    assert first.spec == {"action": "tool.pay", "resource": "account:treasury",
                          "params": {"amount": 500, "recipient": "DE02100100100006820101"}}


def test_held_then_approved_runs_once_and_the_request_is_forgotten(gate: Gate) -> None:
    calls = CallGate(gate)
    ran: list[int] = []
    held = calls.run(pay(500), lambda: ran.append(1))
    assert isinstance(held, Ruling) and held.kind == "held"
    assert calls.pending == {pay(500).digest: held.state.request_id}
    assert calls.run(pay(500), lambda: ran.append(2)).kind == "held"  # type: ignore[union-attr]
    approve(gate, held.state.request_id)
    executed = calls.run(pay(500), lambda: ran.append(3) or "paid")
    assert isinstance(executed, Executed) and executed.value == "paid"
    assert executed.consumed.request_id == held.state.request_id and calls.pending == {}
    assert ran == [3] and gate.status(held.state.request_id).result == "succeeded"


def test_consuming_a_ruling_without_a_grant_spends_nothing_and_keeps_the_request(gate: Gate) -> None:
    calls = CallGate(gate)
    held = calls.decide(pay(500))
    assert held.kind == "held"
    for consume in (lambda: calls.consume(pay(500), held),
                    lambda: anyio.run(calls.consume_async, pay(500), held)):
        with pytest.raises(GrantError) as missing:
            consume()
        assert missing.value.code == "grant.missing"
        assert calls.pending == {pay(500).digest: held.state.request_id}  # a retry after approval still finds it


def test_allowed_and_denied_calls_are_not_remembered(gate: Gate) -> None:
    calls = CallGate(gate)
    assert isinstance(calls.run(pay(50), lambda: "paid"), Executed)
    denied = calls.run(pay(50, "blocked:x"), lambda: pytest.fail("a denied call ran"))
    assert isinstance(denied, Ruling) and denied.kind == "denied" and denied.state.reasons == ("policy.denied",)
    assert calls.pending == {}


def test_a_consume_refused_for_good_forgets_the_request(gate: Gate) -> None:
    calls = CallGate(gate)
    held = calls.decide(pay(500))
    approve(gate, held.state.request_id)
    gate.policy = load_policy(AGENT_TOOLS_POLICY.read_text().replace('when: "params.amount > 100"', 'when: "false"'))
    ruling = calls.decide(pay(500))
    assert ruling.kind == "run"
    with pytest.raises(GrantError) as refused:
        calls.consume(pay(500), ruling)
    assert refused.value.code == "grant.policy_changed" and calls.pending == {}
    assert calls.decide(pay(500)).kind == "denied"  # a new request, under the policy now in force


def test_a_grant_consumed_elsewhere_is_already_used_and_forgotten(gate: Gate) -> None:
    calls = CallGate(gate)
    held = calls.decide(pay(500))
    approve(gate, held.state.request_id)
    grant = gate.status(held.state.request_id).grant
    assert grant is not None
    gate.consume(grant, "agent-tools", pay(500).spec)
    with pytest.raises(GrantError, match="calling `pay` again makes a new request") as used:
        calls.decide(pay(500))
    assert used.value.code == "grant.already_used" and calls.pending == {}


class Outage:
    """The executor's way to the gate, down for some operations (the server is gone): the outside world."""

    def __init__(self, gate: Gate, *down: str) -> None:
        self.gate = gate
        self.down = down

    def consume(self, grant: str, executor: str, action: dict[str, Any]) -> Any:
        self._check("consume")
        return self.gate.consume(grant, executor, action)

    def report(self, jti: str, succeeded: bool, detail: str = "", *, executor: str | None = None) -> Any:
        self._check("report")
        return self.gate.report(jti, succeeded, detail, executor=executor)

    def _check(self, operation: str) -> None:
        if operation in self.down:
            raise StoreError("store.unavailable", "the server cannot be reached")

    def submit(self, document: dict[str, Any]) -> Any:
        raise AssertionError("the executor only consumes and reports")

    def status(self, request_id: str) -> Any:
        raise AssertionError("the executor only consumes and reports")


def test_a_store_failure_at_consume_keeps_the_approval_for_a_retry(gate: Gate) -> None:
    outage = Outage(gate, "consume")
    calls = CallGate(gate, outage)
    held = calls.decide(pay(500))
    approve(gate, held.state.request_id)
    with pytest.raises(StoreError):
        calls.run(pay(500), lambda: pytest.fail("ran without a consumed grant"))
    assert calls.pending == {pay(500).digest: held.state.request_id}
    outage.down = ()
    executed = calls.run(pay(500), lambda: "paid")
    assert isinstance(executed, Executed) and executed.consumed.request_id == held.state.request_id


def test_a_lost_report_is_logged_and_does_not_turn_the_result_into_an_error(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    calls = CallGate(gate, Outage(gate, "report"))
    with caplog.at_level(logging.ERROR, logger="interlock.enforce.calls"):
        executed = calls.run(pay(50), lambda: "paid")
    assert isinstance(executed, Executed) and executed.value == "paid"
    assert "could not report the result of grant" in caplog.text and "store.unavailable" in caplog.text


def test_identical_calls_take_turns_and_the_locks_are_dropped_after(gate: Gate) -> None:
    calls = CallGate(gate)
    approve(gate, calls.decide(pay(500)).state.request_id)
    inside, release = threading.Event(), threading.Event()
    outcomes: list[str] = []

    def slow() -> str:
        inside.set()
        assert release.wait(30)
        return "ran"

    def call() -> None:
        result = calls.run(pay(500), slow)
        outcomes.append(result.value if isinstance(result, Executed) else result.kind)

    first = threading.Thread(target=call)
    first.start()
    assert inside.wait(30)
    second = threading.Thread(target=call)
    second.start()
    release.set()
    first.join(30)
    second.join(30)
    assert outcomes == ["ran", "held"]  # the second waited its turn, then was a new request
    assert calls._locks == {} and calls._async_locks == {}


def test_run_async_gates_the_same_way_and_reports_an_exception(gate: Gate) -> None:
    calls = CallGate(gate)

    async def fails() -> str:
        raise ValueError("the bank said no")

    async def body() -> None:
        held = await calls.run_async(pay(500), fails)
        assert isinstance(held, Ruling) and held.kind == "held"
        approve(gate, held.state.request_id)
        with pytest.raises(ValueError, match="the bank said no"):
            await calls.run_async(pay(500), fails)
        assert gate.status(held.state.request_id).result == "failed"
        assert calls.pending == {}

    anyio.run(body)
