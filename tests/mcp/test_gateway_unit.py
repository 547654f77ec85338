"""`McpGateway` in process: a real Gate on a SQLite file, the upstream played by a stand-in (the outside world).

These are the orderings a process test cannot arrange at will: the upstream down just when an approved call
comes back, two identical calls at once, a policy change between approval and execution, a cancelled call.
"""

from __future__ import annotations

import datetime

import anyio
import pytest
from mcp import types
from mcp_support import POLICY, interlock_meta, request_ids, run, text_of
from stand_in import BIG, CONFIG, StandIn

from interlock.core.errors import RequestError
from interlock.core.policy import load_policy
from interlock.enforce.mcp_gateway import McpGateway, load_config, screen_message
from interlock.gate import Gate


def approve(gate: Gate, request_id: str) -> None:
    gate.decide_approval(request_id, "user:alice", "console", binding_code=gate.status(request_id).binding_code)


def test_an_approval_survives_an_upstream_that_is_down_when_the_call_comes_back(gate: Gate) -> None:
    upstream = StandIn()
    gateway = McpGateway(load_config(CONFIG), gate, upstream)

    async def body() -> None:
        held = interlock_meta(await gateway.call_tool("pay", BIG))
        approve(gate, held["request_id"])
        upstream.down = True
        down = await gateway.call_tool("pay", BIG)
        assert interlock_meta(down)["code"] == "mcp.upstream_unavailable"
        assert "nothing consumed" in text_of(down)
        assert gate.status(held["request_id"]).consumed is False  # the grant is still there to take
        upstream.down = False
        ran = await gateway.call_tool("pay", BIG)
        assert not ran.isError and interlock_meta(ran)["request_id"] == held["request_id"]
        assert ran.meta is not None and ran.meta["upstream"] == "kept"  # the upstream's own _meta is passed on

    run(body)
    assert upstream.calls == [BIG]


def test_a_new_call_while_the_upstream_is_down_is_decided_and_spends_no_grant(gate: Gate) -> None:
    upstream = StandIn()
    upstream.down = True
    gateway = McpGateway(load_config(CONFIG), gate, upstream)
    small = {"amount": 10, "recipient": "DE02100100100006820101"}

    async def body() -> None:
        down = await gateway.call_tool("pay", small)
        assert interlock_meta(down)["code"] == "mcp.upstream_unavailable"
        state = gate.status(interlock_meta(down)["request_id"])
        assert state.outcome == "allowed" and not state.consumed  # on the record, its grant unspent
        upstream.down = False
        ran = await gateway.call_tool("pay", small)  # up again: decided and consumed in one transaction
        assert not ran.isError and gate.status(interlock_meta(ran)["request_id"]).consumed

    run(body)
    assert upstream.calls == [small]


def test_two_identical_calls_at_once_after_approval_run_it_once(gate: Gate) -> None:
    upstream = StandIn()
    upstream.hold = anyio.Event()
    gateway = McpGateway(load_config(CONFIG), gate, upstream)
    results: list[types.CallToolResult] = []

    async def call() -> None:
        results.append(await gateway.call_tool("pay", BIG))

    async def body() -> None:
        held = interlock_meta(await gateway.call_tool("pay", BIG))
        approve(gate, held["request_id"])
        async with anyio.create_task_group() as group:
            group.start_soon(call)
            await upstream.entered.wait()  # the first is at the upstream, its grant consumed
            group.start_soon(call)
            await anyio.wait_all_tasks_blocked()
            assert upstream.hold is not None
            upstream.hold.set()
        outcomes = sorted((r.meta or {}).get("interlock", {}).get("outcome") for r in results)
        assert outcomes == ["executed", "pending_approval"]  # the second one is a new request, held

    run(body)
    assert upstream.calls == [BIG]


def test_a_policy_change_after_approval_refuses_the_call(gate: Gate) -> None:
    upstream = StandIn()
    gateway = McpGateway(load_config(CONFIG), gate, upstream)

    async def body() -> None:
        held = interlock_meta(await gateway.call_tool("pay", BIG))
        approve(gate, held["request_id"])
        gate.policy = load_policy(POLICY.read_text().replace('when: "params.amount > 100"', 'when: "false"'))
        refused = await gateway.call_tool("pay", BIG)
        assert interlock_meta(refused)["code"] == "grant.policy_changed"
        # That approval is spent; the same call now is a new request under the new policy.
        again = await gateway.call_tool("pay", BIG)
        assert interlock_meta(again)["outcome"] == "denied"

    run(body)
    assert upstream.calls == []


def test_an_approved_grant_that_expired_is_refused_and_the_next_call_is_a_new_request(gate: Gate) -> None:
    upstream = StandIn()
    gateway = McpGateway(load_config(CONFIG), gate, upstream)

    async def body() -> None:
        held = interlock_meta(await gateway.call_tool("pay", BIG))
        approve(gate, held["request_id"])
        gate.clock.now += datetime.timedelta(minutes=6)  # type: ignore[attr-defined] # the grant lives 5 minutes
        late = await gateway.call_tool("pay", BIG)
        assert interlock_meta(late)["code"] == "grant.expired"
        anew = interlock_meta(await gateway.call_tool("pay", BIG))
        assert anew["outcome"] == "pending_approval" and anew["request_id"] != held["request_id"]

    run(body)
    assert upstream.calls == []


def test_results_are_reported_failed_for_a_tool_error_and_for_a_cancelled_call(gate: Gate) -> None:
    upstream = StandIn()
    gateway = McpGateway(load_config(CONFIG), gate, upstream)
    small = {"amount": 10, "recipient": "DE02100100100006820101"}

    async def body() -> None:
        upstream.error_result = True
        failed = await gateway.call_tool("pay", small)
        assert failed.isError and text_of(failed) == "pay done"  # the upstream's own error, unchanged
        await gateway.reports.drain()  # recorded off the call's path
        assert gate.status(interlock_meta(failed)["request_id"]).result == "failed"

        upstream.error_result = False
        upstream.hold = anyio.Event()
        upstream.entered = anyio.Event()
        with anyio.move_on_after(5) as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(gateway.call_tool, "pay", {**small, "amount": 11})
                await upstream.entered.wait()
                group.cancel_scope.cancel()  # the agent cancels while the upstream works on it
        assert not scope.cancelled_caught

    run(body)
    # Both grants were consumed, and both executions recorded as failed: the cancelled one's outcome is unknown.
    states = [gate.status(request_id) for request_id in request_ids(gate)]
    assert [(s.consumed, s.result) for s in states] == [(True, "failed"), (True, "failed")]
    assert upstream.calls == [small, {**small, "amount": 11}]


@pytest.mark.parametrize(("text", "code"), [
    ("server: bank\nserver: other\n", "input.invalid"),           # a duplicate key
    ("server: bank\nsurprise: 1\n", "input.unknown_field"),
    ("server: ../bank\n", "input.invalid"),
    ("server: bank\ntools: {'a/b': {}}\n", "input.invalid"),
    ("server: bank\ntools: {pay: {action: 'no spaces'}}\n", "input.invalid"),
    ("server: bank\nfrom_meta: [channel, channel]\n", "input.invalid"),
    ("server: bank\nfrom_meta: [principal]\n", "input.invalid"),  # the agent's identity is never the call's
    ("- server\n", "input.invalid"),
    ("server: bank\nmax_argument_bytes: 100000000\n", "input.invalid"),
])
def test_bad_configs_are_refused_with_a_reason(text: str, code: str) -> None:
    with pytest.raises(RequestError) as refused:
        load_config(text)
    assert refused.value.code == code


def test_the_mapping_defaults_and_overrides() -> None:
    config = load_config("server: bank\ntools: {pay: {action: payments.transfer, resource: 'account:treasury'}}\n")
    assert (config.action_for("pay"), config.resource_for("pay")) == ("payments.transfer", "account:treasury")
    assert (config.action_for("lookup"), config.resource_for("lookup")) == ("mcp.bank.lookup", "mcp:bank")
    assert (config.channel, config.executor) == ("mcp", "mcp-gateway")


def test_a_refused_notification_is_dropped_and_a_good_message_passes() -> None:
    assert screen_message(b'{"jsonrpc": "2.0", "method": "notifications/x", "params": {"a": 1, "a": 2}}') \
        .reply is None
    passed = screen_message(b'{"jsonrpc": "2.0", "id": 3, "method": "tools/list"}')
    assert passed.message is not None and passed.reply is None
