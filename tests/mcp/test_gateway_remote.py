"""`interlock mcp-gateway --server URL --token ...` against a real `interlock serve`; approvals over its API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp_support import (
    Record,
    gateway_args,
    gateway_session,
    interlock_meta,
    run,
    text_of,
    upstream_command,
    write_config,
)

from e2e.served import cli, serving
from interlock.client import RemoteGate

pytestmark = pytest.mark.slow

BIG = {"amount": 900, "recipient": "FR7630006000011234567890189"}


@pytest.fixture
def server(home: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A served home with the gateway policy; tokens for the agent, the gateway (executor) and two approvers."""
    tokens = {
        "agent": cli(home, "principals", "add", "agent:assistant", "--kind", "agent")["token"],
        "gateway": cli(home, "principals", "add", "mcp-gateway", "--kind", "service")["token"],
        "alice": cli(home, "approvers", "add", "user:alice")["token"],
        "bob": cli(home, "approvers", "add", "user:bob")["token"],
    }
    with serving(home) as base:
        yield base, tokens


def remote_gateway(tmp_path: Path, record: Record, base: str, *tokens: str) -> list[str]:
    # No `agent` in the config: with a server, the token says who the agent is.
    extra: tuple[str, ...] = ("--server", base, "--token", tokens[0])
    if len(tokens) > 1:
        extra += ("--executor-token", tokens[1])
    return gateway_args(write_config(tmp_path, agent=None), upstream=upstream_command(record), extra=extra)


def test_held_until_approved_through_the_api_then_runs_once(
        tmp_path: Path, record: Record, server: tuple[str, dict[str, str]]) -> None:
    base, tokens = server

    async def body() -> None:
        args = remote_gateway(tmp_path, record, base, tokens["agent"], tokens["gateway"])
        async with gateway_session(args, tmp_path / "gw.log") as agent:
            found = await agent.call_tool("lookup", {"q": "remote"})
            assert not found.isError, text_of(found)

            held = interlock_meta(await agent.call_tool("pay", BIG))
            assert held["outcome"] == "pending_approval" and held["binding_code"]
            assert record.of("pay") == []
            with RemoteGate(base, tokens["alice"]) as alice:
                # The agent's user passes the binding code on; the approver types it.
                alice.decide_approval(held["request_id"], binding_code=held["binding_code"])

            changed = interlock_meta(await agent.call_tool("pay", {**BIG, "amount": 901}))
            assert changed["outcome"] == "pending_approval" and changed["request_id"] != held["request_id"]
            assert record.of("pay") == []

            ran = await agent.call_tool("pay", BIG)
            assert not ran.isError, text_of(ran)
            assert interlock_meta(ran)["request_id"] == held["request_id"]
            again = interlock_meta(await agent.call_tool("pay", BIG))
            assert again["outcome"] == "pending_approval" and again["request_id"] != held["request_id"]

            denied = await agent.call_tool("pay", {"amount": 1, "recipient": "blocked:x"})
            assert denied.isError and interlock_meta(denied)["reasons"] == ["policy.denied"]

        with RemoteGate(base, tokens["agent"]) as requester:
            state = requester.status(held["request_id"])
        assert (state.outcome, state.consumed, state.result) == ("approved", True, "succeeded")

    run(body)
    assert record.calls() == [{"tool": "lookup", "arguments": {"q": "remote"}}, {"tool": "pay", "arguments": BIG}]


def test_a_gateway_without_the_executors_credential_cannot_consume(
        tmp_path: Path, record: Record, server: tuple[str, dict[str, str]]) -> None:
    base, tokens = server

    async def body() -> None:
        # Only the agent's token: the server refuses to let the agent consume a grant made out to `mcp-gateway`.
        async with gateway_session(remote_gateway(tmp_path, record, base, tokens["agent"]),
                                   tmp_path / "gw.log") as agent:
            refused = await agent.call_tool("lookup", {"q": "who executes?"})
        assert refused.isError and interlock_meta(refused)["code"] == "auth.principal_mismatch", text_of(refused)

    run(body)
    assert record.calls() == []


def test_an_unreachable_server_fails_closed(tmp_path: Path, record: Record) -> None:
    from e2e.served import free_port

    async def body() -> None:
        args = remote_gateway(tmp_path, record, f"http://127.0.0.1:{free_port()}", "ilk_nobody")
        async with gateway_session(args, tmp_path / "gw.log") as agent:
            refused = await agent.call_tool("lookup", {"q": "anyone there?"})
        assert refused.isError and interlock_meta(refused)["code"] == "store.unavailable"

    run(body)
    assert record.calls() == []
