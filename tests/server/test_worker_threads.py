"""`create_app(worker_threads=N)`: once the app has started, at most N store and gate calls run at once."""

from __future__ import annotations

import threading
import time

import anyio
import anyio.to_thread

from interlock.server import create_app

from .conftest import Api


def test_the_app_runs_at_most_its_worker_threads_at_once(api: Api) -> None:
    app = create_app(api.gate, api.credentials, worker_threads=3)
    running, most = 0, 0
    lock = threading.Lock()

    def call() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    async def serve_calls() -> None:
        async with app.router.lifespan_context(app), anyio.create_task_group() as calls:
            for _ in range(9):
                calls.start_soon(anyio.to_thread.run_sync, call)

    anyio.run(serve_calls)
    assert most == 3
