"""A warm launcher of `interlock serve` processes, for tests that restart nodes many times (test_crash.py).

Run as a script by `nodes.Launcher`: it imports what `interlock serve` imports, then forks one child per
request; the child runs the real CLI (`interlock.cli.main`, argv and environment as given) with its output in a
log file. A restart so skips only the interpreter's start and the module imports (about 1.3 s of CPU on a slow
machine); everything that reads or writes state runs in the child as in any `interlock serve`: the home, keys and
policy are read, the store is opened (SQLite recovers its WAL, PostgreSQL migrations take their lock), the
checkpointer and the HTTP server start.

Protocol, one JSON object a line. Requests on stdin, each answered on stdout in order:
    {"start": [argv...], "env": {...}, "cwd": "...", "log": "path"}  ->  {"started": pid}
    {"signal": pid, "number": 9}                                       ->  {"signalled": pid, "running": bool}
Events, on stdout between answers: {"exited": pid, "returncode": code} (negative: killed by that signal).
The launcher reaps its children itself, so it alone signals them: a pid it has reaped is never signalled.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import threading
from typing import Any

# What `interlock serve` loads on its way to serving (cli.py imports the rest of the server lazily).
import uvicorn
import uvicorn.lifespan.on
import uvicorn.loops.asyncio
import uvicorn.protocols.http.h11_impl

import interlock.checkpointer
import interlock.cli
import interlock.credentials
import interlock.server
import interlock.store.postgres
import interlock.store.sqlite
import interlock.webhooks

_PRELOADED = (interlock.checkpointer, interlock.credentials, interlock.server, interlock.store.postgres,
              interlock.store.sqlite, interlock.webhooks, uvicorn.lifespan.on, uvicorn.loops.asyncio,
              uvicorn.protocols.http.h11_impl)


def _run_child(argv: list[str], env: dict[str, str], cwd: str, log: str) -> None:
    """In the forked child: become `interlock ARGV` with its output in `log`; never returns."""
    code = 1
    try:
        log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        os.close(null_fd)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = ["interlock", *argv]
        try:
            interlock.cli.main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # anything else: its trace in the log, and a non-zero exit the test sees
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # the launcher's own exit handlers and buffers are not the child's


def _send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _reap(children: set[int]) -> None:
    for pid in list(children):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            children.discard(pid)
            _send({"exited": pid, "returncode": os.waitstatus_to_exitcode(status)})


def _handle(request: dict[str, Any], children: set[int]) -> None:
    if "start" in request:
        pid = os.fork()
        if pid == 0:
            _run_child(request["start"], request["env"], request["cwd"], request["log"])
        children.add(pid)
        _send({"started": pid})
    else:
        pid = request["signal"]
        running = pid in children
        if running:
            os.kill(pid, request["number"])
        _send({"signalled": pid, "running": running})


def main() -> None:
    assert threading.active_count() == 1, "a launcher with threads cannot fork safely"
    children: set[int] = set()
    pending = b""
    while True:
        readable, _, _ = select.select([0], [], [], 0.02)  # the pause bounds how late an exit is reported
        _reap(children)
        if not readable:
            continue
        chunk = os.read(0, 65536)
        if not chunk:  # the test closed our stdin: stop every child still running, then go
            for pid in children:
                os.kill(pid, signal.SIGKILL)
            for pid in children:
                os.waitpid(pid, 0)
            return
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            _handle(json.loads(line), children)


if __name__ == "__main__":
    main()
