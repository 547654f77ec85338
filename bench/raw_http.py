"""A load generator's HTTP/1.1 client on raw asyncio streams (uvloop when installed).

On a 2-core machine every CPU cycle the client spends is taken from the server it measures; httpx costs about
1 ms of CPU per request here, these connections a few percent of that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Connection:
    """One keep-alive HTTP/1.1 connection; uvicorn always answers with a Content-Length."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: bytes, token: str) -> tuple[int, bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        writer.write(b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\nContent-Type: application/json"
                     b"\r\nContent-Length: %d\r\n\r\n%s" % (path.encode(), self.host.encode(), self.port,
                                                          token.encode(), len(body), body))
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        payload = await reader.readexactly(length)
        if close:
            self.close()
        return status, payload

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a load generator's coroutine on uvloop when it is installed, else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True
