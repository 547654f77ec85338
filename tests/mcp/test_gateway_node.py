"""`interlock mcp-gateway` driven by the official MCP TypeScript SDK client (npm @modelcontextprotocol/sdk).

An implementation nobody here wrote: it lists the tools, makes an allowed, a denied and a held call over stdio.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_support import HERE, UPSTREAM, Record, clean_env, gateway_args, run, upstream_command, write_config

NODE_CLIENT = HERE / "node"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NODE is None or shutil.which("npm") is None,
                       reason="node and npm are not installed: the TypeScript SDK client cannot drive the gateway"),
]


def upstream_tools(tmp_path: Path) -> dict[str, dict[str, object]]:
    """The tools as the upstream itself lists them (to the Python client, straight, not through the gateway)."""

    async def body() -> dict[str, dict[str, object]]:
        direct = StdioServerParameters(command=sys.executable, args=[str(UPSTREAM), str(tmp_path / "direct.jsonl")])
        async with stdio_client(direct) as (read, write), ClientSession(read, write) as upstream:
            await upstream.initialize()
            return {t.name: t.model_dump(mode="json", by_alias=True, exclude_none=True)
                    for t in (await upstream.list_tools()).tools}

    return run(body)


def test_typescript_sdk_client_lists_calls_and_is_refused(tmp_path: Path, home: Path, record: Record) -> None:
    if not (NODE_CLIENT / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir():
        pytest.fail("tests/mcp/node is not installed: run `npm ci --prefix tests/mcp/node` (`make test` does)")
    assert NODE is not None
    gateway = gateway_args(write_config(tmp_path), upstream=upstream_command(record), home=home)
    done = subprocess.run([NODE, str(NODE_CLIENT / "client.mjs"), json.dumps(gateway)], capture_output=True,
                          text=True, timeout=120, cwd=NODE_CLIENT, env=clean_env())
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)

    assert seen["server"]["name"] == "interlock-gateway:bank"
    expected = upstream_tools(tmp_path)
    assert {t["name"]: t for t in seen["tools"]} == {name: t for name, t in expected.items() if name != "bad/name"}

    allowed = seen["allowed"]
    assert allowed.get("isError") is not True
    assert allowed["structuredContent"] == {"result": "found from-node"}
    assert allowed["_meta"]["interlock"]["outcome"] == "executed"

    denied = seen["denied"]
    assert denied["isError"] is True
    assert denied["_meta"]["interlock"]["reasons"] == ["policy.denied"]
    assert "policy.denied" in denied["content"][0]["text"]

    pending = seen["pending"]
    assert pending["isError"] is True and pending["_meta"]["interlock"]["outcome"] == "pending_approval"
    assert pending["_meta"]["interlock"]["binding_code"] in pending["content"][0]["text"]

    # What the upstream received: the allowed call, once; neither the denied nor the held payment.
    assert record.calls() == [{"tool": "lookup", "arguments": {"q": "from-node"}}]
