"""GatheredReports: results queued by an enforcement point are recorded together, off the calls' path, and
none is left behind by `drain()`."""

from __future__ import annotations

import asyncio
import threading

from interlock.enforce import reports
from interlock.enforce.reports import GatheredReports
from interlock.results import Consumption


def consumption(number: int) -> Consumption:
    return Consumption(f"grt_{number}", f"req_{number}", "payments-service", "payments.transfer", "d" * 64)


def test_results_are_recorded_after_the_delay_together_and_drain_waits_for_every_one() -> None:
    recorded: list[tuple[str, bool, str, str]] = []

    def record(consumed: Consumption, succeeded: bool, detail: str) -> None:
        recorded.append((consumed.jti, succeeded, detail, threading.current_thread().name))

    async def body() -> None:
        gathered = GatheredReports(record)
        gathered.add(consumption(1), True, "")
        gathered.add(consumption(2), False, "the upstream answered 500")
        assert recorded == []  # queued: the caller's answer does not wait for them
        await asyncio.sleep(reports.REPORT_DELAY / 2)
        gathered.add(consumption(3), True, "")
        await gathered.drain()
        assert sorted(jti for jti, *_ in recorded) == ["grt_1", "grt_2", "grt_3"]
        gathered.add(consumption(4), True, "")  # after a drain, a new batch
        await gathered.drain()

    asyncio.run(body())
    assert sorted(recorded)[1][:3] == ("grt_2", False, "the upstream answered 500")
    assert [jti for jti, *_ in recorded][-1] == "grt_4"
    assert all(thread != threading.main_thread().name for *_, thread in recorded)  # blocking calls off the loop
