"""No direct path for MCP: the gateway signs every call it forwards, and the example bank server
(examples/no_direct_path/bank_mcp.py, over streamable HTTP) runs a tool only with a valid token for exactly
that call. An agent that reaches the server directly, or replays a forwarded call, is refused by the server too.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp_support import (
    REPO,
    clean_env,
    gateway_args,
    gateway_session,
    http_server,
    interlock_meta,
    run,
    text_of,
    write_config,
)

BANK = REPO / "examples" / "no_direct_path" / "bank_mcp.py"
SMALL = {"amount": 40, "recipient": "DE89370400440532013000"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def bank(tmp_path: Path, config: Path) -> Iterator[tuple[str, Path]]:
    """The example bank server, trusting the gateway's key; its URL and the record of what it received."""
    jwks = subprocess.run([sys.executable, "-m", "interlock.cli", "mcp-gateway", "--config", str(config),
                           "--print-jwks"], capture_output=True, env=clean_env(), timeout=60, check=True).stdout
    (tmp_path / "gateway-jwks.json").write_bytes(jwks)
    port, record = free_port(), tmp_path / "bank-calls.jsonl"
    with http_server([sys.executable, str(BANK), "--port", str(port), "--jwks", str(tmp_path / "gateway-jwks.json"),
                      "--record", str(record)], f"http://127.0.0.1:{port}/mcp/", "the bank server") as url:
        yield url, record


def calls(record: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


async def call_directly(url: str, arguments: dict[str, Any], meta: dict[str, Any] | None = None) -> Any:
    async with streamable_http_client(url) as (read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        return await session.call_tool("pay", arguments, meta=meta)


def test_the_server_runs_gated_calls_and_refuses_direct_and_replayed_ones(tmp_path: Path, home: Path) -> None:
    config = write_config(tmp_path, execution={"audience": "bank"})
    with bank(tmp_path, config) as (url, record):
        async def body() -> None:
            async with gateway_session(gateway_args(config, upstream_url=url, home=home), tmp_path / "gw.log") as agent:
                paid = await agent.call_tool("pay", SMALL)
                assert not paid.isError, text_of(paid)
                assert interlock_meta(paid)["outcome"] == "executed"

            direct = await call_directly(url, SMALL)
            assert direct.isError and "execution.missing" in text_of(direct)
            token = calls(record)[0]["execution"]
            replayed = await call_directly(url, SMALL, {"interlock/execution": token})
            assert replayed.isError and "execution.replayed" in text_of(replayed)
            swapped = await call_directly(url, {**SMALL, "amount": 4000}, {"interlock/execution": token})
            assert swapped.isError and "execution.request_mismatch" in text_of(swapped)

        run(body)
    seen = calls(record)
    assert [c.get("executed") or c.get("refused") for c in seen] == [
        "pay", "execution.missing", "execution.replayed", "execution.request_mismatch"]
    assert seen[0]["arguments"] == SMALL and seen[0]["grant"]


def test_execution_settings_are_checked_when_the_gateway_starts(tmp_path: Path) -> None:
    config = write_config(tmp_path, execution={"audience": "bank", "ttl": 1})
    done = subprocess.run([sys.executable, "-m", "interlock.cli", "mcp-gateway", "--config", str(config),
                           "--print-jwks"], capture_output=True, env=clean_env(), timeout=60)
    assert done.returncode == 2 and done.stderr.decode().startswith("interlock: input.invalid: ")
