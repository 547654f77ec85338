"""`interlock mcp-gateway` on a local home, driven over stdio by the official Python MCP client.

The upstream is a real FastMCP server (upstream_server.py) that records every call it receives; each test
checks that record, since "the upstream never saw it" is the property an agent's user relies on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_support import (
    UPSTREAM,
    Record,
    approve_locally,
    clean_env,
    gateway_args,
    gateway_session,
    http_upstream,
    interlock_meta,
    open_gate,
    reject_locally,
    request_rows,
    run,
    text_of,
    upstream_command,
    write_config,
)

from e2e.served import free_port

pytestmark = pytest.mark.slow

BIG = {"amount": 500, "recipient": "DE02100100100006820101"}


def local_gateway(tmp_path: Path, home: Path, record: Record, **settings: object) -> list[str]:
    return gateway_args(write_config(tmp_path, **settings), upstream=upstream_command(record), home=home)


def test_tools_are_the_upstreams_with_their_schemas_unchanged(tmp_path: Path, home: Path, record: Record) -> None:
    async def body() -> None:
        direct = StdioServerParameters(command=sys.executable, args=[str(UPSTREAM), str(tmp_path / "direct.jsonl")])
        async with stdio_client(direct) as (read, write), ClientSession(read, write) as upstream:
            await upstream.initialize()
            expected = {t.name: t.model_dump(by_alias=True, exclude_none=True)
                        for t in (await upstream.list_tools()).tools}
        async with gateway_session(local_gateway(tmp_path, home, record), tmp_path / "gw.log") as agent:
            listed = {t.name: t.model_dump(by_alias=True, exclude_none=True) for t in (await agent.list_tools()).tools}
        # Every tool with an action-safe name, exactly as the upstream describes it; `bad/name` is not offered.
        assert listed == {name: tool for name, tool in expected.items() if name != "bad/name"}
        assert set(listed) == {"pay", "lookup"}

    run(body)
    assert "bad/name" in (tmp_path / "gw.log").read_text()  # hidden, and said so on stderr
    assert record.calls() == []


def test_allowed_calls_pass_through_once_each_with_the_upstreams_result(
        tmp_path: Path, home: Path, record: Record) -> None:
    async def body() -> None:
        async with gateway_session(local_gateway(tmp_path, home, record), tmp_path / "gw.log") as agent:
            found = await agent.call_tool("lookup", {"q": "exchange rates"})
            paid = await agent.call_tool("pay", {"amount": 40, "recipient": "DE89370400440532013000"})
        assert not found.isError and not paid.isError
        assert text_of(found) == "found exchange rates"
        assert found.structuredContent == {"result": "found exchange rates"}
        assert paid.structuredContent == {"result": "paid 40 to DE89370400440532013000"}
        meta = interlock_meta(paid)
        assert meta["outcome"] == "executed"
        gate = open_gate(home)
        try:
            state = gate.status(meta["request_id"])
        finally:
            gate.store.close()
        assert (state.outcome, state.consumed, state.result) == ("allowed", True, "succeeded")

    run(body)
    assert record.calls() == [{"tool": "lookup", "arguments": {"q": "exchange rates"}},
                              {"tool": "pay", "arguments": {"amount": 40, "recipient": "DE89370400440532013000"}}]
    rows = request_rows(home)
    assert [r["action"] for r in rows] == ["mcp.bank.lookup", "mcp.bank.pay"]


def test_sensitive_call_is_held_until_approved_then_the_same_call_runs_exactly_once(
        tmp_path: Path, home: Path, record: Record) -> None:
    async def body() -> None:
        async with gateway_session(local_gateway(tmp_path, home, record), tmp_path / "gw.log") as agent:
            held = await agent.call_tool("pay", BIG)
            meta = interlock_meta(held)
            assert held.isError and meta["outcome"] == "pending_approval"
            text = text_of(held)
            for told in ("NOT executed", meta["request_id"], "user:alice", "user:bob", meta["binding_code"],
                         "exactly the same arguments"):
                assert told in text, told
            assert meta["approvers"] == [{"rule_id": "larger-payments-need-finance",
                                          "approvers": ["user:alice", "user:bob"], "quorum": 1,
                                          "separate_channel": True}]
            assert meta["expires_at"] and meta["binding_code_required"] is True
            assert record.calls() == []

            again = await agent.call_tool("pay", BIG)  # asked again before anyone approved: the same request
            assert interlock_meta(again)["request_id"] == meta["request_id"]
            assert record.calls() == []

            approve_locally(home, meta["request_id"])
            ran = await agent.call_tool("pay", dict(reversed(BIG.items())))  # same arguments, other key order
            assert not ran.isError, text_of(ran)
            assert interlock_meta(ran) == {"outcome": "executed", "request_id": meta["request_id"],
                                           "grant": interlock_meta(ran)["grant"]}
            assert record.of("pay") == [BIG]

            # The approval was for one execution: the same call once more is a new request, held again.
            once_more = await agent.call_tool("pay", BIG)
            assert interlock_meta(once_more)["outcome"] == "pending_approval"
            assert interlock_meta(once_more)["request_id"] != meta["request_id"]
        assert record.of("pay") == [BIG]

    run(body)


def test_changed_arguments_after_approval_are_a_new_pending_request(
        tmp_path: Path, home: Path, record: Record) -> None:
    async def body() -> None:
        async with gateway_session(local_gateway(tmp_path, home, record), tmp_path / "gw.log") as agent:
            first = interlock_meta(await agent.call_tool("pay", BIG))
            approve_locally(home, first["request_id"])
            changed = await agent.call_tool("pay", {**BIG, "amount": 5000})
            other = interlock_meta(changed)
            assert changed.isError and other["outcome"] == "pending_approval"
            assert other["request_id"] != first["request_id"]
            other_recipient = interlock_meta(await agent.call_tool("pay", {**BIG, "recipient": "GB33BUKB2020155"}))
            assert other_recipient["request_id"] not in (first["request_id"], other["request_id"])
            assert record.calls() == []
            # The approved call itself is still there to be made, once.
            assert not (await agent.call_tool("pay", BIG)).isError
        assert record.of("pay") == [BIG]

    run(body)


def test_denied_and_rejected_calls_never_reach_the_upstream(tmp_path: Path, home: Path, record: Record) -> None:
    async def body() -> None:
        async with gateway_session(local_gateway(tmp_path, home, record), tmp_path / "gw.log") as agent:
            denied = await agent.call_tool("pay", {"amount": 5, "recipient": "blocked:mallory"})
            meta = interlock_meta(denied)
            assert denied.isError and meta["outcome"] == "denied" and meta["reasons"] == ["policy.denied"]
            assert "policy.denied" in text_of(denied) and "block list" in text_of(denied)
            assert "not executed" in text_of(denied)

            held = interlock_meta(await agent.call_tool("pay", BIG))
            reject_locally(home, held["request_id"])
            rejected = await agent.call_tool("pay", BIG)
            assert rejected.isError and interlock_meta(rejected) == {"outcome": "rejected",
                                                                     "request_id": held["request_id"]}
            assert "rejected" in text_of(rejected)
            # After a rejection the same call is a new request, which waits for approvers again.
            anew = interlock_meta(await agent.call_tool("pay", BIG))
            assert anew["outcome"] == "pending_approval" and anew["request_id"] != held["request_id"]

    run(body)
    assert record.calls() == []


def test_delegation_chain_and_channel_from_call_metadata(tmp_path: Path, home: Path, record: Record) -> None:
    async def body() -> None:
        args = local_gateway(tmp_path, home, record, from_meta=["on_behalf_of", "channel"])
        async with gateway_session(args, tmp_path / "gw.log") as agent:
            via_chat = await agent.call_tool("lookup", {"q": "x"}, meta={"interlock": {
                "on_behalf_of": [{"id": "user:cfo", "kind": "human"}], "channel": "chat"}})
            assert not via_chat.isError, text_of(via_chat)
            refused = await agent.call_tool("lookup", {"q": "y"}, meta={"interlock": {"justification": "trust me"}})
            assert refused.isError and interlock_meta(refused)["code"] == "input.invalid"
            unknown = await agent.call_tool("lookup", {"q": "z"}, meta={"interlock": {"principal": "user:root"}})
            assert interlock_meta(unknown)["code"] == "input.unknown_field"
        gate = open_gate(home)
        try:
            review = gate.review(interlock_meta(via_chat)["request_id"])
        finally:
            gate.store.close()
        assert review.request.delegator_ids == ("user:cfo",)
        assert review.request.channel == "chat"
        assert review.request.principal.id == "agent:assistant"  # the gateway's agent, never the call's say-so
        assert review.request.executor == "mcp-gateway"

    run(body)
    assert record.of("lookup") == [{"q": "x"}]


def test_a_crashing_upstream_gives_an_error_and_the_call_is_not_sent_again(
        tmp_path: Path, home: Path, record: Record) -> None:
    async def body() -> None:
        async with gateway_session(local_gateway(tmp_path, home, record), tmp_path / "gw.log") as agent:
            crashed = await agent.call_tool("lookup", {"q": "crash"})
            meta = interlock_meta(crashed)
            assert crashed.isError and meta["code"] == "mcp.upstream_failed"
            assert "may or may not have acted" in text_of(crashed) and "new request" in text_of(crashed)
            # The gateway starts the upstream again for the next call; the crashed one is not re-sent.
            after = await agent.call_tool("lookup", {"q": "after the crash"})
            assert not after.isError, text_of(after)
        gate = open_gate(home)
        try:
            state = gate.status(meta["request_id"])
        finally:
            gate.store.close()
        assert (state.consumed, state.result) == (True, "failed")  # the grant is spent, the failure recorded

    run(body)
    assert record.of("lookup") == [{"q": "crash"}, {"q": "after the crash"}]


def test_a_hanging_upstream_times_out_and_is_stopped(tmp_path: Path, home: Path, record: Record) -> None:
    async def body() -> None:
        args = local_gateway(tmp_path, home, record, call_timeout=2)
        async with gateway_session(args, tmp_path / "gw.log") as agent:
            hung = await agent.call_tool("lookup", {"q": "hang"})
            assert hung.isError and interlock_meta(hung)["code"] == "mcp.upstream_timeout"
            assert "within 2 s" in text_of(hung)
            after = await agent.call_tool("lookup", {"q": "after the hang"})
            assert not after.isError, text_of(after)

    run(body)
    assert record.of("lookup") == [{"q": "hang"}, {"q": "after the hang"}]


def test_streamable_http_upstream(tmp_path: Path, home: Path, record: Record) -> None:
    with http_upstream(record, free_port()) as url:
        async def body() -> None:
            args = gateway_args(write_config(tmp_path), upstream_url=url, home=home)
            async with gateway_session(args, tmp_path / "gw.log") as agent:
                assert {t.name for t in (await agent.list_tools()).tools} == {"pay", "lookup"}
                found = await agent.call_tool("lookup", {"q": "over http"})
                assert not found.isError and text_of(found) == "found over http"
                held = await agent.call_tool("pay", BIG)
                assert interlock_meta(held)["outcome"] == "pending_approval"
                approve_locally(home, interlock_meta(held)["request_id"])
                assert not (await agent.call_tool("pay", BIG)).isError

        run(body)
    assert record.calls() == [{"tool": "lookup", "arguments": {"q": "over http"}}, {"tool": "pay", "arguments": BIG}]


@pytest.mark.parametrize(("extra", "config", "code", "exit_code"), [
    ((), {"server": "bad name"}, "input.invalid", 2),
    ((), {"surprise": 1}, "input.unknown_field", 2),
    ((), {"agent": None}, "input.usage", 2),   # a local gate needs to know who the agent is
    (("--token", "ilk_x"), {}, "input.usage", 2),
])
def test_startup_refusals_keep_stdout_clean(tmp_path: Path, home: Path, record: Record, extra: tuple[str, ...],
                                            config: dict[str, object], code: str, exit_code: int) -> None:
    args = gateway_args(write_config(tmp_path, **config), upstream=upstream_command(record), home=home, extra=extra)
    done = subprocess.run(args, capture_output=True, env=clean_env(), timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == exit_code, done
    assert done.stdout == b""  # stdout is the MCP channel
    assert done.stderr.decode().startswith(f"interlock: {code}: ")


def test_an_upstream_that_cannot_start_is_a_startup_error(tmp_path: Path, home: Path) -> None:
    args = gateway_args(write_config(tmp_path, connect_timeout=10), upstream="/nonexistent/mcp-server", home=home)
    done = subprocess.run(args, capture_output=True, env=clean_env(), timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 4, done
    assert done.stdout == b""
    assert "interlock: mcp.upstream_unavailable: " in done.stderr.decode()


def test_stdin_and_stdout_may_be_files(tmp_path: Path, home: Path, record: Record) -> None:
    # Not pipes: the gateway reads and writes them in worker threads, and answers every line before it exits.
    lines = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                 "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "file", "version": "0"}}},
             {"jsonrpc": "2.0", "method": "notifications/initialized"},
             {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "lookup", "arguments": {"q": "x"}}}]
    given, answers = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    given.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with given.open("rb") as stdin, answers.open("wb") as stdout:
        done = subprocess.run(local_gateway(tmp_path, home, record), stdin=stdin, stdout=stdout,
                              stderr=subprocess.PIPE, env=clean_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    by_id = {message["id"]: message for message in map(json.loads, answers.read_text().splitlines())}
    assert by_id[1]["result"]["serverInfo"]["name"] == "interlock-gateway:bank"
    assert by_id[2]["result"]["content"][0]["text"] == "found x"
    assert record.of("lookup") == [{"q": "x"}]
