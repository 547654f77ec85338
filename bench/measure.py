"""Timing helpers: subjects, calibration, interleaved measurement rounds, median and p99.

Every subject is timed call by call with `time.perf_counter_ns`, with the garbage collector off
during each timed block (for every subject alike). Rounds interleave the subjects, rotating their
order, so machine noise lands on all of them alike and ratios are taken within the same run.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Subject:
    """One thing to time: `fn()` is one call; `prepare(n)` (untimed) readies n calls before a block."""

    key: str
    label: str
    fn: Callable[[], object]
    prepare: Callable[[int], None] | None = None
    calls_per_round: int = 0
    samples: list[int] = field(default_factory=list)
    round_medians: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Stats:
    """Summary of one subject's samples, in nanoseconds."""

    median: float
    p99: float
    mean: float
    samples: int


def p99(values: list[int]) -> float:
    """Nearest-rank 99th percentile."""
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)])


def summarize(values: list[int]) -> Stats:
    return Stats(float(statistics.median(values)), p99(values), statistics.fmean(values), len(values))


def timed_block(fn: Callable[[], object], n: int) -> list[int]:
    """n calls of fn, each timed alone, with gc off during the block."""
    out = [0] * n
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for i in range(n):
            start = clock()
            fn()
            out[i] = clock() - start
    finally:
        gc.enable()
    return out


def calibrate(subject: Subject, budget_s: float, *, min_calls: int = 15, max_calls: int = 50_000) -> None:
    """Warm the subject up and size its per-round block to about `budget_s` seconds."""
    clock = time.perf_counter_ns
    deadline = clock() + int(max(0.2, budget_s) * 1e9)
    probe: list[int] = []
    while len(probe) < 20 or (clock() < deadline and len(probe) < 2_000):
        if subject.prepare:
            subject.prepare(1)
        start = clock()
        subject.fn()
        probe.append(clock() - start)
    per_call = statistics.median(probe[len(probe) // 2:]) / 1e9
    subject.calls_per_round = max(min_calls, min(max_calls, int(budget_s / max(per_call, 1e-9))))


def run_rounds(subjects: list[Subject], rounds: int, progress: Callable[[int], None] | None = None) -> None:
    """Time every subject once per round, rotating the order each round; samples are pooled."""
    for r in range(rounds):
        shift = r % len(subjects)
        for subject in subjects[shift:] + subjects[:shift]:
            n = subject.calls_per_round
            warmup = max(2, n // 20)
            if subject.prepare:
                subject.prepare(warmup + n)
            for _ in range(warmup):
                subject.fn()
            block = timed_block(subject.fn, n)
            subject.samples += block
            subject.round_medians.append(float(statistics.median(block)))
        if progress:
            progress(r + 1)
