"""One racing process: open its own Gate on a shared home and try to consume each grant once, in step."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from interlock.core.errors import InterlockError
from interlock.home import Home


def race(home: str, policy: str, now: str, grants: list[str], action: dict[str, Any],
         barrier: Any, results: Any) -> None:
    """Put `(grant number, outcome)` on `results` for each grant; outcome is `consumed` or the refusal code."""
    gate = Home(Path(home), Path(policy)).open_gate()
    fixed = datetime.datetime.fromisoformat(now)
    gate.clock = lambda: fixed
    try:
        for number, token in enumerate(grants):
            barrier.wait(timeout=60)
            try:
                gate.consume(token, "payments-service", action)
                outcome = "consumed"
            except InterlockError as refusal:
                outcome = refusal.code
            results.put((number, outcome))
    finally:
        gate.store.close()
