"""The gateway's own MCP sessions, in process: the agent's side (`AgentSession`), the upstream's side
(`UpstreamSession`) and stdio's line framing. A real Gate on a SQLite file; the upstream is the stand-in, or
the SDK transport's streams with the test playing the upstream server.

The process tests (official Python and TypeScript clients, a real upstream) show the sessions speak MCP;
these show what those clients never send: cancellations, methods the gateway does not offer, messages out
of order, an upstream that asks the gateway something or goes away mid-call.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from mcp import types
from mcp.shared.exceptions import McpError
from mcp.shared.message import SessionMessage
from mcp_support import request_ids, run
from stand_in import BIG, CONFIG, StandIn

from interlock.enforce.mcp_agent import AgentSession
from interlock.enforce.mcp_client import UpstreamSession
from interlock.enforce.mcp_gateway import McpGateway, load_config
from interlock.enforce.stdio_lines import read_lines
from interlock.gate import Gate

SMALL = {"amount": 10, "recipient": "DE02100100100006820101"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}}


# --- stdio's framing -----------------------------------------------------------------------------------


def _lines(chunks: list[bytes], max_bytes: int) -> list[bytes | None]:
    async def body() -> list[bytes | None]:
        source = iter(chunks)

        async def read() -> bytes:
            return next(source, b"")

        return [line async for line in read_lines(read, max_bytes)]

    return run(body)


def test_lines_are_split_across_chunks_and_blank_ones_skipped() -> None:
    assert _lines([b'{"a"', b': 1}\n\n  \n{"b": 2}\n{"c"', b": 3}"], 100) == [b'{"a": 1}', b'{"b": 2}', b'{"c": 3}']


def test_a_line_over_the_limit_is_dropped_as_it_arrives_and_reading_goes_on() -> None:
    assert _lines([b"x" * 60, b"x" * 60, b"x" * 60 + b"\nok\n"], 100) == [None, b"ok"]
    assert _lines([b"ok\n" + b"y" * 101], 100) == [b"ok", None]  # over the limit when the input ends
    assert _lines([b"z" * 100 + b"\n"], 100) == [b"z" * 100]  # at the limit is fine


# --- the agent's side ----------------------------------------------------------------------------------


class Agent:
    """An agent's messages in, the gateway's answers out; the lines go in one at a time."""

    def __init__(self, gateway: McpGateway) -> None:
        self.session = AgentSession(gateway, gateway.config, None, self._sent, max_line=1 << 20)
        self.answers: dict[Any, dict[str, Any]] = {}
        self.answered = anyio.Event()
        self._send, self._lines = anyio.create_memory_object_stream[bytes | None](16)

    async def _sent(self, line: bytes) -> None:
        message = json.loads(line)
        self.answers[message.get("id")] = message
        self.answered.set()

    async def _input(self) -> AsyncIterator[bytes | None]:
        async with self._lines:
            async for line in self._lines:
                yield line

    async def say(self, message: dict[str, Any]) -> None:
        await self._send.send(json.dumps(message).encode())

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.say(message)
        with anyio.fail_after(10):
            while message["id"] not in self.answers:
                self.answered = anyio.Event()
                await self.answered.wait()
        return self.answers[message["id"]]

    async def serve(self, work: Any) -> None:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as group:
                group.start_soon(self.session.serve, self._input())
                await work()
                await self._send.aclose()  # the agent closes stdin: the session ends once calls finished


def _call(request_id: int, arguments: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": "pay", "arguments": arguments, **params}}


def test_the_agent_must_initialize_first_and_gets_the_version_it_speaks(gate: Gate) -> None:
    agent = Agent(McpGateway(load_config(CONFIG), gate, StandIn()))

    async def body() -> None:
        assert (await agent.ask({"jsonrpc": "2.0", "id": 0, "method": "ping"}))["result"] == {}
        early = await agent.ask({"jsonrpc": "2.0", "id": 9, "method": "tools/list"})
        assert early["error"]["code"] == types.INVALID_REQUEST and "initialize" in early["error"]["message"]
        started = (await agent.ask(INITIALIZE))["result"]
        assert started["protocolVersion"] == "2025-06-18"
        assert started["capabilities"] == {"tools": {"listChanged": False}}
        assert started["serverInfo"]["name"] == "interlock-gateway:bank"
        future = await agent.ask({**INITIALIZE, "id": 2, "params": {**INITIALIZE["params"], "protocolVersion": "2099"}})
        assert future["result"]["protocolVersion"] == types.LATEST_PROTOCOL_VERSION
        tools = (await agent.ask({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}))["result"]["tools"]
        assert [tool["name"] for tool in tools] == ["pay"]

    run(lambda: agent.serve(body))


@pytest.mark.parametrize(("message", "code"), [
    ({"jsonrpc": "2.0", "id": 5, "method": "resources/list"}, types.METHOD_NOT_FOUND),  # tools only: no side door
    ({"jsonrpc": "2.0", "id": 5, "method": "prompts/get", "params": {"name": "x"}}, types.METHOD_NOT_FOUND),
    (_call(5, SMALL, _meta="not an object"), types.INVALID_PARAMS),
    ({**INITIALIZE, "id": 5, "params": {"protocolVersion": "2025-06-18"}}, types.INVALID_PARAMS),
])
def test_what_the_gateway_does_not_offer_is_refused_and_nothing_is_decided(
        gate: Gate, message: dict[str, Any], code: int) -> None:
    upstream = StandIn()
    agent = Agent(McpGateway(load_config(CONFIG), gate, upstream))

    async def body() -> None:
        await agent.ask(INITIALIZE)
        assert (await agent.ask(message))["error"]["code"] == code

    run(lambda: agent.serve(body))
    assert upstream.calls == [] and request_ids(gate) == []


class Broken(StandIn):
    async def list_tools(self) -> list[types.Tool]:
        raise RuntimeError("a bug")


def test_a_failure_inside_the_gateway_is_an_internal_error_and_the_session_goes_on(gate: Gate) -> None:
    agent = Agent(McpGateway(load_config(CONFIG), gate, Broken()))

    async def body() -> None:
        await agent.ask(INITIALIZE)
        failed = await agent.ask({"jsonrpc": "2.0", "id": 4, "method": "tools/list"})
        assert failed["error"]["code"] == types.INTERNAL_ERROR
        assert (await agent.ask({"jsonrpc": "2.0", "id": 5, "method": "ping"}))["result"] == {}

    run(lambda: agent.serve(body))


def test_a_cancelled_call_is_not_answered_and_its_consumed_grant_is_reported_failed(gate: Gate) -> None:
    upstream = StandIn()
    upstream.hold = anyio.Event()
    gateway = McpGateway(load_config(CONFIG), gate, upstream)
    agent = Agent(gateway)

    async def body() -> None:
        await agent.ask(INITIALIZE)
        await agent.say(_call(7, SMALL))
        with anyio.fail_after(10):
            await upstream.entered.wait()  # at the upstream, its grant consumed
        await agent.say({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}})
        assert (await agent.ask({"jsonrpc": "2.0", "id": 8, "method": "ping"}))["result"] == {}
        await gateway.reports.drain()

    run(lambda: agent.serve(body))
    assert 7 not in agent.answers  # MCP: a cancelled request gets no answer
    consumed = [state for state in map(gate.status, request_ids(gate)) if state.consumed]
    assert len(consumed) == 1 and consumed[0].result == "failed"
    assert upstream.calls == [SMALL]


def test_calls_run_side_by_side_and_each_answer_finds_its_id(gate: Gate) -> None:
    upstream = StandIn()
    upstream.hold = anyio.Event()
    agent = Agent(McpGateway(load_config(CONFIG), gate, upstream))

    async def body() -> None:
        await agent.ask(INITIALIZE)
        await agent.say(_call(20, SMALL))
        with anyio.fail_after(10):
            await upstream.entered.wait()
        held = await agent.ask(_call(21, BIG))  # needs approval: answered while the first call still runs
        assert held["result"]["_meta"]["interlock"]["outcome"] == "pending_approval"
        assert upstream.hold is not None
        upstream.hold.set()
        with anyio.fail_after(10):
            while 20 not in agent.answers:
                agent.answered = anyio.Event()
                await agent.answered.wait()

    run(lambda: agent.serve(body))
    assert agent.answers[20]["result"]["_meta"]["interlock"]["outcome"] == "executed"


# --- the upstream's side -------------------------------------------------------------------------------


class Server:
    """The test plays the upstream server on the SDK transport's streams."""

    def __init__(self) -> None:
        self.to_gateway, gateway_reads = anyio.create_memory_object_stream[SessionMessage | Exception](16)
        gateway_writes, self.from_gateway = anyio.create_memory_object_stream[SessionMessage](16)
        self.gone = anyio.Event()
        self.session = UpstreamSession(gateway_reads, gateway_writes, self.gone, client_version="test")
        self._streams = (self.to_gateway, gateway_reads, gateway_writes, self.from_gateway)

    async def close(self) -> None:
        for stream in self._streams:
            await stream.aclose()

    async def receive(self) -> Any:
        with anyio.fail_after(10):
            return (await self.from_gateway.receive()).message.root

    async def send(self, message: Any) -> None:
        await self.to_gateway.send(SessionMessage(types.JSONRPCMessage(message)))


def test_the_upstream_may_ping_but_is_refused_anything_else_it_asks() -> None:
    server = Server()

    async def body() -> None:
        async with anyio.create_task_group() as group:
            await group.start(server.session.run)
            await server.send(types.JSONRPCRequest(jsonrpc="2.0", id="p", method="ping"))
            assert (await server.receive()).result == {}
            await server.send(types.JSONRPCRequest(jsonrpc="2.0", id="s", method="sampling/createMessage",
                                                   params={"messages": [], "maxTokens": 1}))
            refused = await server.receive()
            assert refused.id == "s" and refused.error.code == types.METHOD_NOT_FOUND
            await server.to_gateway.aclose()
        await server.close()

    run(body)
    assert server.gone.is_set()


def test_an_upstream_that_goes_away_fails_the_waiting_call_and_every_later_one() -> None:
    server = Server()
    failures: list[int] = []
    request = types.ClientRequest(types.CallToolRequest(params=types.CallToolRequestParams(name="pay")))

    async def call() -> None:
        with pytest.raises(McpError) as closed:
            await server.session.send_request(request, types.CallToolResult)
        failures.append(closed.value.error.code)

    async def body() -> None:
        async with anyio.create_task_group() as group:
            await group.start(server.session.run)
            group.start_soon(call)
            sent = await server.receive()
            assert sent.method == "tools/call" and sent.params["name"] == "pay"
            await server.to_gateway.send(ValueError("a line that is not JSON-RPC"))  # logged, not fatal
            await server.to_gateway.aclose()  # the upstream exits before answering
        await call()
        await server.close()

    run(body)
    assert failures == [types.CONNECTION_CLOSED, types.CONNECTION_CLOSED]


def test_answers_are_matched_by_id_and_an_error_answer_is_an_mcp_error() -> None:
    server = Server()
    listed: dict[str, types.ListToolsResult] = {}
    list_tools = types.ClientRequest(types.ListToolsRequest())

    async def ask(name: str) -> None:
        listed[name] = await server.session.send_request(list_tools, types.ListToolsResult)

    async def refused() -> None:
        with pytest.raises(McpError) as error:
            await server.session.send_request(list_tools, types.ListToolsResult)
        assert (error.value.error.code, error.value.error.message) == (-32000, "no")

    async def body() -> None:
        async with anyio.create_task_group() as group:
            await group.start(server.session.run)
            group.start_soon(ask, "first")
            first = await server.receive()
            group.start_soon(ask, "second")
            second = await server.receive()
            await server.send(types.JSONRPCResponse(jsonrpc="2.0", id=second.id, result={"tools": []}))
            await server.send(types.JSONRPCResponse(jsonrpc="2.0", id=first.id, result={"tools": [
                {"name": "pay", "inputSchema": {"type": "object"}}]}))
            group.start_soon(refused)
            third = await server.receive()
            await server.send(types.JSONRPCError(jsonrpc="2.0", id=third.id,
                                                 error=types.ErrorData(code=-32000, message="no")))
            await anyio.wait_all_tasks_blocked()
            await server.to_gateway.aclose()
        await server.close()

    run(body)
    assert (len(listed["first"].tools), len(listed["second"].tools)) == (1, 0)
