"""Results of calls that ran, recorded off the calls' path.

An enforcement point answers its caller as soon as the upstream has answered; the result is queued and,
after REPORT_DELAY, recorded with every other result queued meanwhile (concurrently, so the store's group
commit makes them one transaction). The next call's consume then never queues behind the last call's
report. A crash in between loses the queued results, as a crash between running and reporting always
could: the consumption itself is on disk before anything runs, and `interlock audit reconcile` lists
consumed grants without a result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio

from interlock.results import Consumption

REPORT_DELAY = 0.05  # seconds

# Records one result; blocking (it runs in a worker thread), and logs its own failures rather than raising.
Record = Callable[[Consumption, bool, str], None]


class GatheredReports:
    """A queue of results, recorded together every REPORT_DELAY by `record` (used from one event loop)."""

    def __init__(self, record: Record) -> None:
        self._record = record
        self._waiting: list[tuple[Consumption, bool, str]] = []
        self._recording: asyncio.Task[None] | None = None

    def add(self, consumed: Consumption, succeeded: bool, detail: str) -> None:
        """Queue a result; it is recorded within about REPORT_DELAY (call from the event loop)."""
        self._waiting.append((consumed, succeeded, detail))
        if self._recording is None or self._recording.done():
            self._recording = asyncio.get_running_loop().create_task(self._record_gathered())

    async def drain(self) -> None:
        """Return once every result queued so far is recorded (before shutting down, for one)."""
        while self._recording is not None and not self._recording.done():
            await asyncio.shield(self._recording)

    async def _record_gathered(self) -> None:
        while self._waiting:
            await asyncio.sleep(REPORT_DELAY)
            batch, self._waiting = self._waiting, []
            await asyncio.gather(*(anyio.to_thread.run_sync(self._record, *result) for result in batch))
