"""Newline-delimited messages on this process's stdin and stdout (MCP's stdio framing), on the event loop.

Pipes and sockets are read and written by the event loop itself; anything else (a terminal, a file) in a
worker thread. Lines are bounded: one longer than the limit is skipped without being kept in memory.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import BinaryIO

import anyio

__all__ = ["Output", "read_lines", "stdio"]

CHUNK = 64 * 1024
WRITE_BUFFER = 1024 * 1024  # unread answers held for a slow reader before writing waits for it
CLOSE_TIMEOUT = 5.0


def _is_pipe(file: BinaryIO) -> bool:
    mode = os.fstat(file.fileno()).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


async def read_lines(read: Callable[[], Awaitable[bytes]], max_bytes: int) -> AsyncIterator[bytes | None]:
    """The non-blank lines `read` delivers, without their newline, until it returns b"" (the end).

    A line over `max_bytes` is dropped as it arrives and stands as `None`, so the caller can answer it.
    """
    buffer = bytearray()
    searched = 0  # the buffer holds no newline before this
    skipping = False  # inside a line over the limit
    while chunk := await read():
        buffer += chunk
        while (end := buffer.find(b"\n", searched)) >= 0:
            line = bytes(buffer[:end])
            del buffer[:end + 1]
            searched = 0
            if skipping:
                skipping = False
                yield None
            elif line.strip():
                yield line
        searched = len(buffer)
        if len(buffer) > max_bytes:
            buffer.clear()
            searched, skipping = 0, True
    if skipping:
        yield None
    elif buffer.strip():
        yield bytes(buffer)


class Output:
    """Lines written to a file: a pipe or socket by the event loop (the answer waits only for a slow reader),
    anything else in a worker thread."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._transport: asyncio.WriteTransport | None = None
        self._protocol: _Flow | None = None

    async def open(self) -> None:
        if _is_pipe(self._file):
            loop = asyncio.get_running_loop()
            self._transport, self._protocol = await loop.connect_write_pipe(_Flow, self._file)
            self._transport.set_write_buffer_limits(high=WRITE_BUFFER)

    async def write(self, line: bytes) -> None:
        if self._transport is None:
            await anyio.to_thread.run_sync(self._write_blocking, line)
            return
        assert self._protocol is not None
        if self._transport.is_closing():
            return  # the reader went away: there is no one left to answer
        self._transport.write(line + b"\n")
        await self._protocol.writable()

    def _write_blocking(self, line: bytes) -> None:
        self._file.write(line + b"\n")
        self._file.flush()

    async def close(self) -> None:
        """Flush what is still buffered (for at most a few seconds), then let go of the file."""
        if self._transport is not None and self._protocol is not None:
            self._transport.close()
            with anyio.move_on_after(CLOSE_TIMEOUT):
                await self._protocol.closed


class _Flow(asyncio.Protocol):
    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._resumed = asyncio.Event()
        self._resumed.set()

    def pause_writing(self) -> None:
        self._resumed.clear()

    def resume_writing(self) -> None:
        self._resumed.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._resumed.set()
        if not self.closed.done():
            self.closed.set_result(None)

    async def writable(self) -> None:
        await self._resumed.wait()


@asynccontextmanager
async def stdio(stdin: BinaryIO, stdout: BinaryIO, max_line: int) -> AsyncIterator[tuple[AsyncIterator[bytes | None],
                                                                                        Output]]:
    """The lines of `stdin` (see `read_lines`), and `stdout` to answer on."""
    read: Callable[[], Awaitable[bytes]]
    transport: asyncio.BaseTransport | None = None
    if _is_pipe(stdin):
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=CHUNK)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)

        async def read() -> bytes:
            return await reader.read(CHUNK)
    else:
        async def read() -> bytes:
            return await anyio.to_thread.run_sync(os.read, stdin.fileno(), CHUNK)

    output = Output(stdout)
    await output.open()
    try:
        yield read_lines(read, max_line), output
    finally:
        await output.close()
        if transport is not None:
            transport.close()
