"""Wake-ups for long-polls: the gate says a request changed; waiters on that request in this process wake."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Subscription:
    """One waiter's interest in one request; `changed` may have fired before `wait` is called."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()

    def fire(self) -> None:
        # Called from whichever thread ran the gate; the event belongs to the waiter's loop.
        self._loop.call_soon_threadsafe(self._event.set)

    def clear(self) -> None:
        self._event.clear()

    async def wait(self, timeout: float) -> bool:
        """True when woken, False at the timeout."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True


class Notifier:
    """In-process only: a change made by another process is seen by the waiter's bounded poll instead."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, set[Subscription]] = {}

    def changed(self, request_id: str) -> None:
        with self._lock:
            waiting = list(self._waiting.get(request_id, ()))
        for subscription in waiting:
            subscription.fire()

    @contextmanager
    def subscribe(self, request_id: str) -> Iterator[Subscription]:
        """Subscribe (from a coroutine) before reading the state, so no change falls between read and wait."""
        subscription = Subscription(asyncio.get_running_loop())
        with self._lock:
            self._waiting.setdefault(request_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            with self._lock:
                waiting = self._waiting.get(request_id)
                if waiting is not None:
                    waiting.discard(subscription)
                    if not waiting:
                        del self._waiting[request_id]
