"""Bad input to `interlock mcp-gateway`, written as raw JSON-RPC lines on its stdin (no SDK would send these).

Every refusal is an answer naming a reason code; nothing refused is submitted to the gate or reaches the
upstream; the gateway keeps serving afterwards.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp_support import POLICY, Record, clean_env, gateway_args, request_rows, upstream_command, write_config

pytestmark = pytest.mark.slow


class Wire:
    """The gateway as a process, spoken to line by line."""

    def __init__(self, args: list[str], errlog: Path) -> None:
        self.log = errlog.open("wb")
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                        env=clean_env())
        self.next_id = 100

    def send(self, line: bytes | str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((line.encode() if isinstance(line, str) else line) + b"\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, "the gateway closed its stdout"
        message = json.loads(line)
        assert isinstance(message, dict)
        return message

    def call(self, params: Any, *, raw: str | None = None) -> dict[str, Any]:
        """A tools/call (or the raw line given), and the answer to it."""
        self.next_id += 1
        line = raw if raw is not None else json.dumps(
            {"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call", "params": params})
        self.send(line)
        return self.receive()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=10)
            if self.process.stdout:
                self.process.stdout.close()
            self.log.close()


@pytest.fixture(scope="module")
def gateway_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gateway")
    (path / "home").mkdir()
    shutil.copyfile(POLICY, path / "home" / "policy.yaml")
    return path


@pytest.fixture(scope="module")
def shared_wire(gateway_dir: Path) -> Iterator[Wire]:
    """One gateway for the whole module (each start costs seconds); tests look at what changed."""
    args = gateway_args(write_config(gateway_dir, max_argument_bytes=4096),
                        upstream=upstream_command(Record(gateway_dir / "upstream-calls.jsonl")),
                        home=gateway_dir / "home")
    gateway = Wire(args, gateway_dir / "gw.log")
    gateway.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}))
    assert gateway.receive()["result"]["serverInfo"]["name"] == "interlock-gateway:bank"
    gateway.send('{"jsonrpc": "2.0", "method": "notifications/initialized"}')
    yield gateway
    gateway.close()


class Seen:
    """What the upstream received and what the gate recorded since the test began."""

    def __init__(self, gateway_dir: Path) -> None:
        self.record = Record(gateway_dir / "upstream-calls.jsonl")
        self.home = gateway_dir / "home"
        self.calls_before = len(self.record.calls())
        self.requests_before = len(request_rows(self.home))

    def calls(self) -> list[dict[str, Any]]:
        return self.record.calls()[self.calls_before:]

    def actions(self) -> list[str]:
        return [row["action"] for row in request_rows(self.home)[self.requests_before:]]


@pytest.fixture
def wire(shared_wire: Wire) -> Wire:
    assert shared_wire.process.poll() is None, "the gateway exited"
    return shared_wire


@pytest.fixture
def seen(gateway_dir: Path, shared_wire: Wire) -> Seen:
    return Seen(gateway_dir)


def tool_refusal(answer: dict[str, Any], request_id: int) -> str:
    """The reason code of a tool error answer (the call was refused and not forwarded)."""
    assert answer["id"] == request_id, answer
    result = answer["result"]
    assert result["isError"] is True, answer
    code = result["_meta"]["interlock"]["code"]
    assert result["content"][0]["text"].startswith(f"interlock: {code}: "), result
    return str(code)


LOOKUP = '{"jsonrpc": "2.0", "id": %d, "method": "tools/call", "params": {"name": "lookup", "arguments": %s}}'


@pytest.mark.parametrize(("arguments", "code"), [
    ('{"q": "a", "q": "b"}', "input.duplicate_key"),         # which `q` would the upstream run?
    ('{"q": NaN}', "input.invalid"),
    ('{"q": Infinity}', "input.invalid"),
    ('{"q": 9007199254740993}', "input.invalid"),            # beyond 2^53: another parser rounds it
    ('{"q": 1' + "0" * 5000 + "}", "input.invalid"),          # an integer Python's int() refuses
    ('{"q": "\\ud800"}', "input.invalid"),                   # a lone surrogate is not a character
    ('{"q": "a\\u0000b"}', "input.invalid"),
    ('["q", "a"]', "input.invalid"),                         # arguments that are not a JSON object
    ('"q=a"', "input.invalid"),
    ("42", "input.invalid"),
    ('{"q": ' + "[" * 40 + "]" * 40 + "}", "input.too_deep"),
    ('{"q": "' + "x" * 5000 + '"}', "input.too_large"),       # over this gateway's max_argument_bytes (4096)
    ('{"q": 7}', "input.invalid"),                           # not what the tool's input schema accepts
])
def test_bad_arguments_are_refused_before_anything_is_decided(
        wire: Wire, seen: Seen, arguments: str, code: str) -> None:
    request_id = wire.next_id + 1
    assert tool_refusal(wire.call(None, raw=LOOKUP % (request_id, arguments)), request_id) == code
    ok = wire.call({"name": "lookup", "arguments": {"q": "still serving"}})
    assert ok["result"]["isError"] is False, ok
    assert seen.calls() == [{"tool": "lookup", "arguments": {"q": "still serving"}}]
    assert seen.actions() == ["mcp.bank.lookup"]  # only the good call was submitted


@pytest.mark.parametrize("name", [
    "../lookup", "lookup/../pay", "/etc/passwd", "C:\\tools\\pay", "look up", "lookup\n", "lookup\u0000",
    "look\u202eup", "lo\u043ekup", "", "a" * 129, ".lookup", "lookup.", "look..up",
])
def test_tool_names_with_paths_or_control_characters_are_refused(wire: Wire, seen: Seen, name: str) -> None:
    request_id = wire.next_id + 1
    assert tool_refusal(wire.call({"name": name, "arguments": {}}), request_id) == "input.invalid"
    assert seen.calls() == [] and seen.actions() == []


def test_oversize_and_broken_messages(wire: Wire, seen: Seen) -> None:
    # Over the strict parser's 1 MiB document limit: refused, answered to its id.
    huge = LOOKUP % (wire.next_id + 1, '{"q": "' + "x" * (1024 * 1024) + '"}')
    assert tool_refusal(wire.call(None, raw=huge), wire.next_id) == "input.too_large"
    # Over 4 MiB the line is not even read: the answer has no id to name (JSON-RPC: null).
    answer = wire.call(None, raw=LOOKUP % (wire.next_id + 1, '{"q": "' + "x" * (5 * 1024 * 1024) + '"}'))
    assert answer["id"] is None and answer["error"]["data"]["code"] == "input.too_large"
    answer = wire.call(None, raw="{not json")
    assert answer["id"] is None and answer["error"]["code"] == -32700
    answer = wire.call(None, raw='{"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {"a": 1, "a": 2}}')
    assert answer["id"] == 7 and answer["error"]["data"]["code"] == "input.duplicate_key"
    answer = wire.call(None, raw='[{"jsonrpc": "2.0", "id": 8, "method": "tools/list"}]')
    assert answer["id"] is None and answer["error"]["code"] == -32600
    answer = wire.call(None, raw='{"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": "lookup"}')
    assert tool_refusal(answer, 9) == "input.invalid"
    # Still serving, and nothing refused was submitted or forwarded.
    assert wire.call({"name": "lookup", "arguments": {"q": "fine"}})["result"]["isError"] is False
    assert seen.calls() == [{"tool": "lookup", "arguments": {"q": "fine"}}]
    assert seen.actions() == ["mcp.bank.lookup"]
