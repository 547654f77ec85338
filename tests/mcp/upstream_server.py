"""A small real MCP server for the gateway tests (FastMCP): it records every call it receives in a file.

`python upstream_server.py RECORD [--http PORT]`. Each call appends one JSON line `{"tool", "arguments"}` to
RECORD *before* it acts, so a call that crashes or hangs the server is in the record too.
`lookup("crash")` exits the process; `lookup("hang")` never answers.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from mcp.server.fastmcp import FastMCP

RECORD = Path(sys.argv[1])
PORT = int(sys.argv[sys.argv.index("--http") + 1]) if "--http" in sys.argv else 0

bank = FastMCP("bank", instructions="A test bank: pay and look things up.", host="127.0.0.1", port=PORT or 8000,
               log_level="ERROR")


def record(tool: str, arguments: dict[str, object]) -> None:
    with RECORD.open("a", encoding="utf-8") as out:
        out.write(json.dumps({"tool": tool, "arguments": arguments}) + "\n")
        out.flush()
        os.fsync(out.fileno())


@bank.tool()
def pay(amount: int, recipient: str) -> str:
    """Pay `amount` to `recipient`."""
    record("pay", {"amount": amount, "recipient": recipient})
    return f"paid {amount} to {recipient}"


@bank.tool()
def lookup(q: str) -> str:
    """Look `q` up (harmless)."""
    record("lookup", {"q": q})
    if q == "crash":
        os._exit(3)
    if q == "hang":
        time.sleep(3600)
    return f"found {q}"


@bank.tool(name="bad/name")
def bad_name() -> str:
    """A tool whose name is a path: the gateway must not offer it."""
    record("bad/name", {})
    return "should never run"


if __name__ == "__main__":
    bank.run("streamable-http" if PORT else "stdio")
